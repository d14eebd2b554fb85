//! The committed `openapi/openapi.json` is the code's document. `make openapi`
//! (`UPDATE_OPENAPI=1`) rewrites it; otherwise any drift fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json")
}

#[test]
fn committed_spec_matches_the_code() {
    let generated = adapter_http::openapi::openapi_json().unwrap();
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
fn spec_documents_every_operation_and_its_problem_codes() {
    let spec: serde_json::Value = serde_json::from_str(&adapter_http::openapi::openapi_json().unwrap()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], "1.0.0");
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/points/{userId}", "post"),
        ("/api/v1/points/{userId}", "get"),
        ("/api/v1/points/{userId}/history", "get"),
        ("/api/v1/products", "get"),
        ("/api/v1/products/best", "get"),
        ("/api/v1/coupons/{couponId}/issue", "post"),
        ("/api/v1/coupons", "get"),
        ("/api/v1/orders", "post"),
        ("/api/v1/orders/{orderId}", "get"),
        ("/api/v1/payments", "post"),
        ("/api/v1/admin/users", "post"),
        ("/api/v1/admin/products", "post"),
        ("/api/v1/admin/coupons", "post"),
        ("/api/v1/admin/best-products/refresh", "post"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
    }
    let text = spec.to_string();
    for code in [
        "INVALID_USER_ID",
        "INVALID_AMOUNT",
        "CHARGE_LIMIT_EXCEEDED",
        "USER_NOT_FOUND",
        "BALANCE_LIMIT_EXCEEDED",
        "COUPON_NOT_FOUND",
        "COUPON_ALREADY_ISSUED",
        "COUPON_SOLD_OUT",
        "COUPON_EXPIRED",
        "PRODUCT_NOT_FOUND",
        "COUPON_NOT_OWNED",
        "OUT_OF_STOCK",
        "COUPON_ALREADY_USED",
        "COUPON_NOT_APPLICABLE",
        "ORDER_NOT_FOUND",
        "ORDER_ALREADY_PAID",
        "ORDER_EXPIRED",
        "INSUFFICIENT_BALANCE",
        "DATA_PLATFORM_UNAVAILABLE",
        "UNAUTHORIZED",
    ] {
        assert!(text.contains(code), "problem code {code} is not documented");
    }
}
