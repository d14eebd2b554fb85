use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, TestApp, eventually, token};

#[tokio::test]
async fn health_metrics_and_the_api_documents_are_served() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health/live").await.status, 200);
    assert_eq!(app.get("/health/ready").await.status, 200);
    let served = app.get("/api-docs/openapi.json").await;
    assert_eq!(served.status, 200);
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served.body, committed, "the served document is the committed one");
    let ui = app.client.get(app.url("/swagger-ui/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let bare = redirect.get(app.url("/swagger-ui")).send().await.unwrap();
    assert!(bare.status().is_redirection());
    assert_eq!(bare.headers()["location"], "/swagger-ui/");

    app.get("/api/v1/points/1").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/api/v1/points/{userId}",status="404"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn framework_failures_are_problems_too() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let charge = app.url(&format!("/api/v1/points/{user}"));
    let malformed = app
        .send(
            app.client
                .post(&charge)
                .bearer_auth(token(user))
                .header("content-type", "application/json")
                .body("{\"amount\":"),
        )
        .await;
    malformed.assert_problem(400, "INVALID_REQUEST");
    let wrong_type = app.post("/api/v1/payments", &json!({"userId": true, "orderId": 1})).await;
    wrong_type.assert_problem(400, "INVALID_REQUEST");
    let not_json = app
        .send(app.client.post(&charge).bearer_auth(token(user)).header("content-type", "text/plain").body("amount=1"))
        .await;
    not_json.assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    let huge = app
        .send(
            app.client
                .post(&charge)
                .bearer_auth(token(user))
                .header("content-type", "application/json")
                .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000))),
        )
        .await;
    huge.assert_problem(413, "PAYLOAD_TOO_LARGE");
    app.get("/api/v1/nowhere").await.assert_problem(404, "NOT_FOUND");
    app.send(app.client.delete(app.url("/api/v1/orders"))).await.assert_problem(405, "METHOD_NOT_ALLOWED");
    app.send(app.client.put(&charge).json(&json!({"amount": 1}))).await.assert_problem(405, "METHOD_NOT_ALLOWED");
    assert_eq!(app.balance(user).await, 0);
}

#[tokio::test]
async fn a_wrong_method_is_told_which_methods_the_path_allows() {
    let app = TestApp::spawn().await;
    for (path, allowed) in [
        ("/api/v1/points/1", "GET, HEAD, POST"),
        ("/api/v1/orders", "GET, HEAD, POST"),
        ("/api/v1/payments", "POST"),
        ("/health/ready", "GET, HEAD"),
    ] {
        let response = app.client.delete(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(allow.as_deref(), Some(allowed), "{path}");
    }
    let unknown = app.client.delete(app.url("/api/v1/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().get("allow").is_none());
}

#[tokio::test]
async fn the_admin_api_needs_the_token_and_validates_input() {
    let app = TestApp::spawn().await;
    let users = app.url("/api/v1/admin/users");
    app.send(app.client.post(&users).json(&json!({"name": "kim"}))).await.assert_problem(401, "UNAUTHORIZED");
    app.send(app.client.post(&users).bearer_auth("wrong").json(&json!({"name": "kim"})))
        .await
        .assert_problem(401, "UNAUTHORIZED");
    app.send(app.client.post(&users).header("authorization", ADMIN_TOKEN).json(&json!({"name": "kim"})))
        .await
        .assert_problem(401, "UNAUTHORIZED");
    let created = app.admin_post("/api/v1/admin/users", &json!({"name": "kim"})).await;
    assert_eq!(
        (created.status, created.body["name"].as_str(), created.body["balance"].as_i64()),
        (201, Some("kim"), Some(0))
    );

    let product =
        app.admin_post("/api/v1/admin/products", &json!({"name": "Keyboard", "price": 89_000, "stock": 12})).await;
    assert_eq!(product.status, 201);
    assert_eq!(product.body["stock"], 12);
    for body in [
        json!({"name": "x", "price": -1, "stock": 1}),
        json!({"name": "x", "price": 1, "stock": -1}),
        json!({"name": " ", "price": 1, "stock": 1}),
        json!({"name": "x", "price": 1}),
    ] {
        app.admin_post("/api/v1/admin/products", &body).await.assert_problem(400, "INVALID_REQUEST");
    }
    app.admin_post("/api/v1/admin/users", &json!({"name": ""})).await.assert_problem(400, "INVALID_REQUEST");
    app.admin_post("/api/v1/admin/users", &json!({"name": "k\u{0}m"})).await.assert_problem(400, "INVALID_REQUEST");

    let valid = json!({"name": "c", "discountType": "PERCENT", "discountValue": 10, "totalQuantity": 5,
        "validFrom": "2026-01-01T00:00:00Z", "validUntil": "2026-12-31T00:00:00Z"});
    let coupon = app.admin_post("/api/v1/admin/coupons", &valid).await;
    assert_eq!(coupon.status, 201, "{}", coupon.body);
    assert_eq!((coupon.body["remainingQuantity"].as_i64(), coupon.body["minOrderAmount"].as_i64()), (Some(5), Some(0)));
    for (field, value) in [
        ("discountValue", json!(101)),
        ("discountValue", json!(0)),
        ("discountType", json!("HALF")),
        ("totalQuantity", json!(0)),
        ("validUntil", json!("2025-12-31T00:00:00Z")),
        ("validFrom", json!("yesterday")),
        ("validFrom", json!("-5000-01-01T00:00:00Z")),
        ("name", json!("nul\u{0}")),
        ("minOrderAmount", json!(-1)),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        app.admin_post("/api/v1/admin/coupons", &body).await.assert_problem(400, "INVALID_REQUEST");
    }
    assert_eq!(app.scalar("SELECT count(*) FROM coupons").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM products").await, 1);
}

#[tokio::test]
async fn without_a_configured_token_the_admin_api_is_closed() {
    let app = TestApp::spawn_with(&[("ADMIN_TOKEN", "")]).await;
    let reply = app
        .send(
            app.client
                .post(app.url("/api/v1/admin/users"))
                .header("authorization", "Bearer ")
                .json(&json!({"name": "kim"})),
        )
        .await;
    reply.assert_problem(401, "UNAUTHORIZED");
    app.admin_post("/api/v1/admin/users", &json!({"name": "kim"})).await.assert_problem(401, "UNAUTHORIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_finishes_requests_in_flight() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,actix_server=trace,actix_http=debug")
        .with_test_writer()
        .try_init();
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&platform)
        .await;
    let app =
        TestApp::spawn_with(&[("DATA_PLATFORM_URL", &platform.uri()), ("DATA_PLATFORM_TIMEOUT_MS", "5000")]).await;
    let user = app.create_user().await;
    let product = app.create_product(100, 1).await;
    assert_eq!(app.charge(user, 1_000).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();

    // A client of its own, so the request cannot land on an idle keep-alive
    // connection that the stop closes.
    let paying = tokio::spawn({
        let url = app.url("/api/v1/payments");
        async move {
            let client = reqwest::Client::new();
            let request = client.post(url).bearer_auth(token(user)).json(&json!({"userId": user, "orderId": order}));
            request.send().await.map(|r| r.status().as_u16())
        }
    });
    let in_flight = eventually(Duration::from_secs(5), async || {
        platform.received_requests().await.is_some_and(|received| !received.is_empty())
    })
    .await;
    assert!(in_flight, "the payment reached the data platform");
    let TestApp { client, handle, stopped, db: _db, .. } = app;
    drop(client);
    handle.stop(true).await;
    assert_eq!(paying.await.unwrap().unwrap(), 201, "the in-flight payment completed");
    stopped.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_closes_keep_alive_connections_instead_of_serving_them() {
    let app = TestApp::spawn().await;
    let live = app.url("/health/live");
    assert_eq!(app.client.get(&live).send().await.unwrap().status(), 200, "a keep-alive connection is open");

    let handle = app.handle.clone();
    let stopping = tokio::spawn(async move { handle.stop(true).await });
    // A client that keeps using its connection must not hold the instance open until
    // the shutdown timeout: the connection is closed, and no new one is accepted.
    let turned_away = eventually(Duration::from_secs(10), async || app.client.get(&live).send().await.is_err()).await;
    assert!(turned_away, "the keep-alive connection was still served after the stop");
    stopping.await.unwrap();
    let TestApp { stopped, .. } = app;
    stopped.await.unwrap().unwrap();
}

#[tokio::test]
async fn every_get_route_answers_head_without_a_body() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    for path in ["/api/v1/products", "/api/v1/products/best", "/health/live", "/health/ready", "/metrics"] {
        let response = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
    let own =
        app.client.head(app.url(&format!("/api/v1/points/{user}"))).bearer_auth(token(user)).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let anonymous = app.client.head(app.url(&format!("/api/v1/points/{user}"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "HEAD is judged like GET");
}
