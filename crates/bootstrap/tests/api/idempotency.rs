//! Idempotency keys (docs/API.md, "Idempotency keys"): a retried POST never charges, orders or pays twice.

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, all};

/// Sends `body` to `path` twice with one key: the second is the first's replay.
async fn replayed(app: &TestApp, path: &str, body: &Value, key: &str) -> Value {
    let first = app.post_keyed(path, body, key).await;
    assert!((200..300).contains(&first.status), "{path}: {}", first.body);
    assert!(!first.replayed, "{path}: a first request is not a replay");
    let again = app.post_keyed(path, body, key).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body), "{path}: the replay is identical");
    assert!(again.replayed, "{path}: the replay says so");
    first.body
}

#[tokio::test]
async fn every_keyed_post_replayed_answers_the_same_and_applies_once() {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &platform.uri())]).await;

    // Admin creates.
    let user =
        replayed(&app, "/api/v1/admin/users", &json!({"name": "kim"}), "create-user").await["userId"].as_i64().unwrap();
    let product = replayed(&app, "/api/v1/admin/products", &json!({"name": "pen", "price": 1000, "stock": 5}), "p")
        .await["productId"]
        .as_i64()
        .unwrap();
    let now = chrono::Utc::now();
    let coupon_body = json!({"name": "c", "discountType": "FIXED", "discountValue": 100, "totalQuantity": 3,
        "validFrom": now - chrono::Duration::hours(1), "validUntil": now + chrono::Duration::days(1)});
    let coupon = replayed(&app, "/api/v1/admin/coupons", &coupon_body, "c").await["couponId"].as_i64().unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM users").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM products").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM coupons").await, 1);

    // A charge.
    replayed(&app, &format!("/api/v1/points/{user}"), &json!({"amount": 10_000}), "charge-1").await;
    assert_eq!(app.balance(user).await, 10_000);
    assert_eq!(app.scalar("SELECT count(*) FROM point_history").await, 1);

    // A coupon issue.
    replayed(&app, &format!("/api/v1/coupons/{coupon}/issue"), &json!({"userId": user}), "issue-1").await;
    assert_eq!(
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        2
    );
    assert_eq!(app.scalar("SELECT count(*) FROM user_coupons").await, 1);

    // An order.
    let order_body = json!({"userId": user, "couponId": coupon, "items": [{"productId": product, "quantity": 2}]});
    let order = replayed(&app, "/api/v1/orders", &order_body, "order-1").await["orderId"].as_i64().unwrap();
    assert_eq!(app.stock(product).await, 3);
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 1);

    // A payment: the replay answers the payment it made, not ORDER_ALREADY_PAID.
    let paid = replayed(&app, "/api/v1/payments", &json!({"userId": user, "orderId": order}), "pay-1").await;
    assert_eq!(paid["balance"], 10_000 - 1_900);
    assert_eq!(app.balance(user).await, 8_100);
    assert_eq!(app.scalar("SELECT count(*) FROM payments").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'USE'").await, 1);
    assert_eq!(platform.received_requests().await.unwrap().len(), 1, "the platform was told once");
}

#[tokio::test]
async fn a_key_reused_for_another_body_or_path_is_422_and_runs_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let charge = format!("/api/v1/points/{user}");
    assert_eq!(app.post_keyed(&charge, &json!({"amount": 100}), "k").await.status, 200);
    app.post_keyed(&charge, &json!({"amount": 200}), "k").await.assert_problem(422, "IDEMPOTENCY_KEY_REUSED");
    let product = app.create_product(10, 5).await;
    let order = json!({"userId": user, "items": [{"productId": product, "quantity": 1}]});
    app.post_keyed("/api/v1/orders", &order, "k").await.assert_problem(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.balance(user).await, 100);
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.stock(product).await, 5);
}

#[tokio::test]
async fn a_malformed_key_is_400_and_runs_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let charge = format!("/api/v1/points/{user}");
    for bad in [String::new(), "x".repeat(256), "tab\there".to_owned()] {
        let request = app
            .client
            .post(app.url(&charge))
            .bearer_auth(crate::helpers::token(user))
            .header("idempotency-key", bad.as_str())
            .json(&json!({"amount": 100}));
        app.send(request).await.assert_problem(400, "INVALID_IDEMPOTENCY_KEY");
    }
    assert_eq!(app.post_keyed(&charge, &json!({"amount": 1}), &"y".repeat(255)).await.status, 200);
    assert_eq!(app.balance(user).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_simultaneous_requests_with_one_key_take_effect_once() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let charge = format!("/api/v1/points/{user}");
    let body = json!({"amount": 700});
    let replies = all((0..30).map(|_| app.post_keyed(&charge, &body, "same-key"))).await;
    assert_eq!(app.balance(user).await, 700, "charged once");
    assert_eq!(app.scalar("SELECT count(*) FROM point_history").await, 1);
    let succeeded: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(!succeeded.is_empty());
    assert!(succeeded.iter().all(|r| r.body == succeeded[0].body), "every success is the one charge");
    assert_eq!(succeeded.iter().filter(|r| !r.replayed).count(), 1, "exactly one ran");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_problem(409, "IDEMPOTENCY_KEY_IN_FLIGHT");
    }
}

#[tokio::test]
async fn a_failed_payment_stores_nothing_and_its_retry_with_the_same_key_runs_afresh() {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).mount(&platform).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &platform.uri())]).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 5_000).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let pay = json!({"userId": user, "orderId": order});
    app.post_keyed("/api/v1/payments", &pay, "pay").await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert_eq!(app.scalar("SELECT count(*) FROM idempotency_keys").await, 0, "a failure stores nothing");
    let retried = app.post_keyed("/api/v1/payments", &pay, "pay").await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(!retried.replayed, "processed afresh");
    assert_eq!(app.balance(user).await, 4_000);
}

#[tokio::test]
async fn two_users_keys_do_not_collide() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_user().await, app.create_user().await);
    for user in [a, b] {
        let reply = app.post_keyed(&format!("/api/v1/points/{user}"), &json!({"amount": 300}), "shared").await;
        assert_eq!(reply.status, 200);
        assert!(!reply.replayed);
    }
    assert_eq!((app.balance(a).await, app.balance(b).await), (300, 300));
}

#[tokio::test]
async fn expired_keys_are_deleted_and_an_expired_key_runs_afresh() {
    let db = adapter_postgres::testing::TestDatabase::new().await.unwrap();
    let mut conn =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(db.url()).await.unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        "INSERT INTO users (name) VALUES ('kim'); \
         INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) VALUES \
           ('user:1', 'stale', '\\x00', '{}', now() - interval '2 days'), \
           ('user:1', 'fresh', '\\x00', '{}', now());",
    )
    .await
    .unwrap();
    // The purge runs when the service starts, then every minute.
    let (address, handle, stopped) = TestApp::start_on(db.url(), &[]).await;
    let count = async |conn: &mut diesel_async::AsyncPgConnection| -> i64 {
        diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT count(*) FROM idempotency_keys)")),
            conn,
        )
        .await
        .unwrap()
    };
    let purged =
        crate::helpers::eventually(std::time::Duration::from_secs(10), async || count(&mut conn).await == 1).await;
    assert!(purged, "the expired key was deleted, the fresh one kept");
    // A key past its lifetime is free again: another request with it runs.
    let client = crate::helpers::client();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        "INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) \
         VALUES ('user:1', 'old', '\\x00', '{}', now() - interval '2 days')",
    )
    .await
    .unwrap();
    let reply = client
        .post(format!("{address}/api/v1/points/1"))
        .bearer_auth(crate::helpers::token(1))
        .header("idempotency-key", "old")
        .json(&json!({"amount": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers().get("idempotent-replayed").is_none());
    handle.stop(true).await;
    stopped.await.unwrap().unwrap();
}

/// `IDEMPOTENCY_KEY_TTL_SECS` bounds how long a key replays: a key two minutes old is
/// still taken (here: by another request, 422) under the default day, and is free again
/// under a lifetime of one minute.
#[tokio::test]
async fn the_configured_key_lifetime_is_the_one_keys_live() {
    for (vars, expected) in [(&[][..], 422), (&[("IDEMPOTENCY_KEY_TTL_SECS", "60")][..], 200)] {
        let app = TestApp::spawn_with(vars).await;
        let user = app.create_user().await;
        app.execute(&format!(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) \
             VALUES ('user:{user}', 'two-minutes-old', '\\x00', '{{}}', now() - interval '2 minutes')"
        ))
        .await;
        let reply = app.post_keyed(&format!("/api/v1/points/{user}"), &json!({"amount": 50}), "two-minutes-old").await;
        assert_eq!(reply.status, expected, "{vars:?}: {}", reply.body);
        assert!(!reply.replayed);
        assert_eq!(app.balance(user).await, if expected == 200 { 50 } else { 0 }, "{vars:?}");
    }
}

/// `body` compressed with gzip.
fn gzip(body: &serde_json::Value) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.to_string().as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_gzip_body_is_taken_like_the_same_body_uncompressed_keyed_or_not_and_replays() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let charge = |body: &serde_json::Value, key: Option<&str>| {
        let mut request = app
            .client
            .post(app.url(&format!("/api/v1/points/{user}")))
            .bearer_auth(crate::helpers::token(user))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(body));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        app.send(request)
    };
    let plain = charge(&json!({"amount": 1_000}), None).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    let first = charge(&json!({"amount": 500}), Some("gz-1")).await;
    assert_eq!((first.status, first.replayed), (200, false), "{}", first.body);
    let replay = charge(&json!({"amount": 500}), Some("gz-1")).await;
    assert_eq!((replay.status, replay.replayed), (200, true), "{}", replay.body);
    assert_eq!(replay.body, first.body);
    // The same body uncompressed has the same fingerprint: a replay, not a reuse.
    let uncompressed = app.post_keyed(&format!("/api/v1/points/{user}"), &json!({"amount": 500}), "gz-1").await;
    assert_eq!((uncompressed.status, uncompressed.replayed), (200, true), "{}", uncompressed.body);
    assert_eq!(app.balance(user).await, 1_500, "charged once per request, never twice");
}
