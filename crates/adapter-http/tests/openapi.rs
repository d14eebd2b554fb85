//! The committed `openapi/openapi.json` is the code's document. `make openapi`
//! (`UPDATE_OPENAPI=1`) rewrites it; otherwise any drift fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&adapter_http::openapi_json().unwrap()).unwrap()
}

/// Every operation of the document: (method, path, operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

#[test]
fn committed_spec_matches_the_code() {
    let generated = adapter_http::openapi_json().unwrap();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the code; run `make openapi` and commit it"
    );
}

#[test]
fn the_document_holds_the_registered_operations() {
    let spec = document();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], "1.0.0");
    // Which operations exist is stated once, where they are registered; the committed
    // document (above) shows any change to that list in review.
    let operations = operations(&spec);
    assert!(!operations.is_empty());
    for (method, path, operation) in &operations {
        assert!(operation["operationId"].is_string(), "{method} {path} has no operationId");
        assert!(!operation["tags"].as_array().unwrap().is_empty(), "{method} {path} has no tag");
    }
}

#[test]
fn every_error_response_is_a_problem_listing_codes_of_its_status() {
    let spec = document();
    let codes: std::collections::HashMap<&str, u16> =
        adapter_http::problem::ProblemCode::ALL.iter().map(|c| (c.as_str(), c.status().as_u16())).collect();
    for (method, path, operation) in operations(&spec) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let status: u16 = status.parse().unwrap();
            if status < 400 {
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"];
            assert_eq!(schema["allOf"][0]["$ref"], "#/components/schemas/Problem", "{method} {path} {status}");
            let listed = schema["allOf"][1]["properties"]["code"]["enum"].as_array().unwrap();
            assert!(!listed.is_empty(), "{method} {path} {status} lists no code");
            for code in listed {
                let code = code.as_str().unwrap();
                assert_eq!(codes.get(code), Some(&status), "{method} {path}: {code} is not a {status} code");
            }
        }
    }
}

#[test]
fn every_operation_with_a_json_body_documents_its_unreadable_bodies() {
    let spec = document();
    for (method, path, operation) in operations(&spec) {
        if operation.get("requestBody").is_none() {
            continue;
        }
        for status in ["400", "413", "415"] {
            assert!(operation["responses"].get(status).is_some(), "{method} {path} does not document {status}");
        }
    }
}

#[test]
fn every_503_documents_retry_after_and_every_keyed_success_idempotent_replayed() {
    let spec = document();
    let mut keyed = 0;
    for (method, path, operation) in operations(&spec) {
        let responses = operation["responses"].as_object().unwrap();
        if let Some(unavailable) = responses.get("503") {
            assert!(unavailable["headers"]["Retry-After"].is_object(), "{method} {path}");
        }
        if let Some(unauthenticated) = responses.get("401").filter(|r| r.to_string().contains("UNAUTHENTICATED")) {
            assert!(unauthenticated["headers"]["WWW-Authenticate"].is_object(), "{method} {path}");
        }
        if operation["responses"].to_string().contains("IDEMPOTENCY_KEY_REUSED") {
            keyed += 1;
            for (status, response) in responses.iter().filter(|(status, _)| status.starts_with('2')) {
                assert!(response["headers"]["Idempotent-Replayed"].is_object(), "{method} {path} {status}");
            }
        }
    }
    assert_eq!(
        keyed, 9,
        "charge, coupon issue, order, cancel, payment, refund and the three admin creates store their keys"
    );
}
