//! Swagger UI in a real browser (headless Chromium through chromedriver): a user
//! authorizes with their token, tries the charge operation, executes it, and reads the
//! 200 and the new balance from the page. Needs Debian's `chromium` and
//! `chromium-driver`, which `make browser-test` installs and then runs this with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the `api` test binary, which uses other parts of them.
#[allow(dead_code)]
#[path = "../api/contract.rs"]
mod contract;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod webdriver;

use std::time::Duration;

use crate::helpers::{TestApp, eventually, token};
use crate::webdriver::Session;

/// chromedriver on a free loopback port, stopped with the test.
async fn chromedriver() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver is installed (make browser-test installs it)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(20), async || {
        client.get(format!("{base}/status")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "chromedriver answers");
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and chromedriver: run it with `make browser-test`"]
async fn a_user_authorizes_in_swagger_ui_tries_the_charge_and_reads_the_new_balance() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    assert_eq!(app.charge(user, 1_000).await.status, 200);
    let (_driver, driver_url) = chromedriver().await;
    let page = Session::start(&driver_url).await;

    page.open(&app.url("/swagger-ui/")).await;
    // Authorize: the user_token scheme, with the user's token.
    page.click(&page.find(".auth-wrapper button.authorize").await).await;
    let user_scheme = "//div[contains(@class,'auth-container')][.//code[text()='user_token']]";
    page.type_into(&page.find_xpath(&format!("{user_scheme}//input")).await, &token(user)).await;
    page.click(&page.find_xpath(&format!("{user_scheme}//button[contains(@class,'authorize')]")).await).await;
    page.click(&page.find("button.btn-done").await).await;

    // Try it out on the charge operation.
    let operation = "#operations-points-charge";
    page.click(&page.find(&format!("{operation} .opblock-summary")).await).await;
    page.click(&page.find(&format!("{operation} .try-out__btn")).await).await;
    page.type_into(&page.find(&format!("{operation} tr[data-param-name='userId'] input")).await, &user.to_string())
        .await;
    let body = page.find(&format!("{operation} textarea.body-param__text")).await;
    page.clear(&body).await;
    page.type_into(&body, r#"{"amount": 5000}"#).await;
    page.click(&page.find(&format!("{operation} button.execute")).await).await;

    let status = page
        .wait_for_text(&format!("{operation} .live-responses-table .response .response-col_status"), |t| !t.is_empty())
        .await;
    let shown = page
        .wait_for_text(&format!("{operation} .live-responses-table .response .response-col_description"), |t| {
            t.contains("balance")
        })
        .await;
    page.close().await;

    assert_eq!(status.trim(), "200", "the page shows the status: {shown}");
    let compact: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(&format!("\"userId\":{user}")), "{shown}");
    assert!(compact.contains("\"balance\":6000"), "the page shows the new balance: {shown}");
    assert_eq!(app.balance(user).await, 6_000, "and the charge happened");
}
