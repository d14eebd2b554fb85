//! Just enough of the W3C WebDriver protocol (JSON over HTTP to chromedriver) to drive a
//! page: open a URL, find elements by CSS selector, click, type, read text.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver uses for an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Session {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    /// A new headless Chromium session on the chromedriver at `driver`.
    pub async fn start(driver: &str) -> Self {
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1400,2000"]
            }
        }}});
        let created: Value =
            http.post(format!("{driver}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Self { http, base: format!("{driver}/session/{id}") }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let request = self.http.request(method, format!("{}{path}", self.base));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap().json::<Value>().await.unwrap()["value"].take()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching the CSS selector, waiting for it up to ten seconds.
    pub async fn find(&self, css: &str) -> Element {
        self.locate("css selector", css).await
    }

    /// The first element matching the XPath expression, waiting up to ten seconds.
    pub async fn find_xpath(&self, xpath: &str) -> Element {
        self.locate("xpath", xpath).await
    }

    async fn locate(&self, using: &str, value: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found =
                self.call(reqwest::Method::POST, "/element", Some(json!({"using": using, "value": value}))).await;
            if let Some(id) = found[ELEMENT_KEY].as_str() {
                return Element(id.to_owned());
            }
            assert!(Instant::now() < deadline, "no element matches {value}: {found}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, element: &Element) {
        let done = self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await;
        assert!(done.is_null(), "click failed: {done}");
    }

    /// Empties a text field as a person would (select all, delete), so that the page's
    /// own state sees the change too.
    pub async fn clear(&self, element: &Element) {
        // Control-A, release the modifiers, Backspace.
        self.type_into(element, "\u{E009}a\u{E000}\u{E003}").await;
    }

    pub async fn type_into(&self, element: &Element, text: &str) {
        let done = self
            .call(reqwest::Method::POST, &format!("/element/{}/value", element.0), Some(json!({"text": text})))
            .await;
        assert!(done.is_null(), "typing failed: {done}");
    }

    pub async fn text(&self, element: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to ten seconds until the text of the first element matching `css`
    /// satisfies `check`, and returns it.
    pub async fn wait_for_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(&self.find(css).await).await;
            if check(&text) || Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
