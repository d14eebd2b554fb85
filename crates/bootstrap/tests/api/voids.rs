//! Data-platform events (docs/API.md, "Data platform events"): typed events, and a void for a payment the platform
//! may have recorded although it was rolled back.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{TestApp, eventually};

const PAID: &str = "ORDER_PAID";
const VOIDED: &str = "ORDER_PAYMENT_VOIDED";

/// Orders expire after a second; sends give up after 300 ms.
const FAST: [(&str, &str); 3] =
    [("ORDER_PAYMENT_TIMEOUT_SECS", "1"), ("ORDER_EXPIRY_SWEEP_MS", "100"), ("DATA_PLATFORM_TIMEOUT_MS", "300")];

fn of_type(kind: &str) -> wiremock::matchers::BodyPartialJsonMatcher {
    body_partial_json(json!({"type": kind}))
}

async fn received(platform: &MockServer, kind: &str) -> Vec<Request> {
    let all = platform.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| r.body_json::<Value>().is_ok_and(|b| b["type"] == kind)).collect()
}

/// A platform that answers `ORDER_PAID` too late (every payment's send is uncertain)
/// and voids with `voids`.
async fn answering_late(voids: ResponseTemplate) -> MockServer {
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(of_type(PAID))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&platform)
        .await;
    Mock::given(method("POST")).and(of_type(VOIDED)).respond_with(voids).mount(&platform).await;
    platform
}

async fn spawn(platform: &MockServer) -> TestApp {
    let url = platform.uri();
    let mut vars = FAST.to_vec();
    vars.push(("DATA_PLATFORM_URL", &url));
    TestApp::spawn_with(&vars).await
}

/// A user with a balance and an unpaid order of one unit.
async fn order(app: &TestApp) -> (i64, i64) {
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 5_000).await.status, 200);
    (user, app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap())
}

async fn expired(app: &TestApp, order: i64) -> bool {
    eventually(Duration::from_secs(10), async || {
        app.scalar(&format!("SELECT count(*) FROM orders WHERE id = {order} AND status = 'FAILED'")).await == 1
    })
    .await
}

#[tokio::test]
async fn a_late_answer_then_expiry_sends_exactly_one_void_with_its_key_and_body() {
    let platform = answering_late(ResponseTemplate::new(200)).await;
    let app = spawn(&platform).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert!(expired(&app, order).await);

    let delivered = eventually(Duration::from_secs(10), async || received(&platform, VOIDED).await.len() == 1).await;
    assert!(delivered, "the void was delivered");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let voids = received(&platform, VOIDED).await;
    assert_eq!(voids.len(), 1, "exactly one void");
    let void = &voids[0];
    assert_eq!(void.headers.get("idempotency-key").unwrap(), &format!("order-{order}-void"));
    let body: Value = void.body_json().unwrap();
    assert_eq!((body["orderId"].as_i64(), body["userId"].as_i64()), (Some(order), Some(user)));
    assert!(body["voidedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let paid: Value = received(&platform, PAID).await[0].body_json().unwrap();
    assert_eq!(paid["orderId"], order, "a payment's event is typed ORDER_PAID");
    assert_eq!(app.scalar("SELECT count(*) FROM outbox").await, 0, "nothing left to send");
}

#[tokio::test]
async fn a_4xx_refusal_needs_no_void() {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&platform).await;
    let app = spawn(&platform).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert_eq!(app.scalar("SELECT count(*) FROM outbox").await, 0, "a refusal is not uncertain");
    assert!(expired(&app, order).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(received(&platform, VOIDED).await.is_empty());
}

#[tokio::test]
async fn a_gateways_502_gets_a_void_once_the_order_fails() {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).and(of_type(PAID)).respond_with(ResponseTemplate::new(502)).mount(&platform).await;
    Mock::given(method("POST")).and(of_type(VOIDED)).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let app = spawn(&platform).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert!(expired(&app, order).await);
    let delivered = eventually(Duration::from_secs(10), async || received(&platform, VOIDED).await.len() == 1).await;
    assert!(delivered, "a 5xx is uncertain: the void follows");
    let void = &received(&platform, VOIDED).await[0];
    assert_eq!(void.headers.get("idempotency-key").unwrap(), &format!("order-{order}-void"));
    assert_eq!(app.balance(user).await, 5_000, "nothing was charged");
}

#[tokio::test]
async fn an_order_paid_after_an_uncertain_send_gets_no_void_and_its_record_is_dropped() {
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(of_type(PAID))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&platform)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let url = platform.uri();
    // Orders stay payable long enough for the retry.
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url), ("DATA_PLATFORM_TIMEOUT_MS", "300")]).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert_eq!(app.scalar("SELECT count(*) FROM outbox").await, 1, "the uncertain send is recorded");
    assert_eq!(app.pay(user, order).await.status, 201);
    let dropped =
        eventually(Duration::from_secs(10), async || app.scalar("SELECT count(*) FROM outbox").await == 0).await;
    assert!(dropped, "the record of a paid order is dropped");
    assert!(received(&platform, VOIDED).await.is_empty(), "no void for a paid order");
}

#[tokio::test]
async fn a_void_due_while_the_platform_is_down_is_delivered_once_it_is_back() {
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(of_type(PAID))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&platform)
        .await;
    Mock::given(method("POST"))
        .and(of_type(VOIDED))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&platform)
        .await;
    Mock::given(method("POST")).and(of_type(VOIDED)).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let app = spawn(&platform).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert!(expired(&app, order).await);
    let delivered =
        eventually(Duration::from_secs(15), async || app.scalar("SELECT count(*) FROM outbox").await == 0).await;
    assert!(delivered, "delivered once the platform takes it");
    assert_eq!(received(&platform, VOIDED).await.len(), 3, "two refused attempts, then the accepted one");
    let metrics = app.get("/metrics").await.body;
    assert!(metrics.as_str().unwrap().contains("data_platform_outbox_deliveries_total{outcome=\"failed\"} 2"));
}

#[tokio::test]
async fn a_void_pending_across_a_restart_is_delivered_after_it_by_one_of_two_instances() {
    let platform = answering_late(ResponseTemplate::new(503)).await;
    let app = spawn(&platform).await;
    let (user, order) = order(&app).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert!(expired(&app, order).await);
    let tried = eventually(Duration::from_secs(10), async || !received(&platform, VOIDED).await.is_empty()).await;
    assert!(tried, "the void was due and refused");

    // The instance stops with the void still pending.
    let TestApp { handle, stopped, db, .. } = app;
    handle.stop(true).await;
    stopped.await.unwrap().unwrap();
    assert_eq!(pending(db.url()).await, 1, "the record survives the stop");

    // The platform is back; two new instances share the database.
    platform.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let url = platform.uri();
    let mut vars = FAST.to_vec();
    vars.push(("DATA_PLATFORM_URL", &url));
    let first = TestApp::start_on(db.url(), &vars).await;
    let second = TestApp::start_on(db.url(), &vars).await;
    let delivered = eventually(Duration::from_secs(15), async || pending(db.url()).await == 0).await;
    assert!(delivered, "delivered after the restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received(&platform, VOIDED).await.len(), 1, "by one instance, once");
    for (_, handle, stopped) in [first, second] {
        handle.stop(true).await;
        stopped.await.unwrap().unwrap();
    }
}

async fn pending(url: &str) -> i64 {
    let mut conn = <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(url).await.unwrap();
    diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT count(*) FROM outbox)")),
        &mut conn,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_deliver_each_due_void_once() {
    let platform = answering_late(ResponseTemplate::new(200).set_delay(Duration::from_millis(50))).await;
    let app = spawn(&platform).await;
    let url = platform.uri();
    let mut vars = FAST.to_vec();
    vars.push(("DATA_PLATFORM_URL", &url));
    let (_, other, other_stopped) = TestApp::start_on(app.db.url(), &vars).await;
    let mut orders = Vec::new();
    // Fewer than the breaker's threshold (5), so that every payment reaches the platform.
    for _ in 0..4 {
        let (user, order) = order(&app).await;
        app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
        orders.push(order);
    }
    let delivered =
        eventually(Duration::from_secs(15), async || app.scalar("SELECT count(*) FROM outbox").await == 0).await;
    assert!(delivered);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let voids = received(&platform, VOIDED).await;
    for order in orders {
        let key = format!("order-{order}-void");
        let sent = voids.iter().filter(|r| r.headers.get("idempotency-key").is_some_and(|k| *k == key)).count();
        assert_eq!(sent, 1, "the void of order {order} was delivered once");
    }
    other.stop(true).await;
    other_stopped.await.unwrap().unwrap();
}
