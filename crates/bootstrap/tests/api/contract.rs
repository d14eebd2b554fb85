//! Every reply the tests receive is held against the OpenAPI document: the status must
//! be documented on the operation that answered, and a problem's `code` must be one the
//! document lists for that operation and status. So a handler cannot answer with a code
//! its operation does not document without some end-to-end test failing.

use std::sync::LazyLock;

use serde_json::Value;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let json = adapter_http::openapi_json().expect("the OpenAPI document serialises");
    serde_json::from_str(&json).expect("the OpenAPI document is JSON")
});

/// The documented operation for `method` at the concrete `path`, if there is one.
fn operation(method: &str, path: &str) -> Option<(&'static str, &'static Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"].as_object()?.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
        matches.then(|| item.get(method.to_ascii_lowercase())).flatten().map(|op| (template.as_str(), op))
    })
}

/// Panics when a reply breaks the document. Requests outside it (unknown paths or
/// methods, the 404s and 405s the tests provoke on purpose) are not judged here.
#[track_caller]
pub fn check(method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
    let Some((template, op)) = operation(method, path) else { return };
    let Some(response) = op["responses"].get(status.to_string()) else {
        panic!("{method} {template} answered {status}, which its OpenAPI operation does not document: {body}");
    };
    if content_type == "application/problem+json" {
        let code = body["code"].as_str().unwrap_or_default();
        let listed =
            &response["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"]["enum"];
        let listed = listed.as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(
            listed.iter().any(|c| c == code),
            "{method} {template} answered {status} {code}, which its OpenAPI operation does not list ({listed:?})"
        );
    }
}
