use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, all, count_status};

async fn platform(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/orders")).respond_with(ResponseTemplate::new(status)).mount(&server).await;
    server
}

async fn app_with_platform(server: &MockServer, extra: &[(&str, &str)]) -> TestApp {
    let url = format!("{}/orders", server.uri());
    let mut vars = vec![("DATA_PLATFORM_URL", url.as_str()), ("DATA_PLATFORM_TIMEOUT_MS", "500")];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

#[tokio::test]
async fn a_payment_deducts_records_marks_paid_and_tells_the_platform() {
    let server = platform(200).await;
    let app = app_with_platform(&server, &[]).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 15_000).await.status, 200);
    let order = app.order(user, None, &[(product, 2)]).await.body["orderId"].as_i64().unwrap();

    let paid = app.pay(user, order).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!((paid.body["amount"].as_i64(), paid.body["balance"].as_i64()), (Some(2_000), Some(13_000)));
    assert_eq!(paid.body["status"], "PAID");
    assert_eq!(paid.body["orderId"].as_i64(), Some(order));
    let history = app.get(&format!("/api/v1/points/{user}/history")).await;
    assert_eq!(history.body["items"][0]["type"], "USE");
    assert_eq!(history.body["items"][0]["orderId"].as_i64(), Some(order));
    assert_eq!(history.body["items"][0]["balanceAfter"], 13_000);
    assert_eq!(app.get(&format!("/api/v1/orders/{order}?userId={user}")).await.body["status"], "PAID");

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers.get("idempotency-key").unwrap(), &format!("order-{order}"));
    let event: serde_json::Value = received[0].body_json().unwrap();
    assert_eq!(event["orderId"].as_i64(), Some(order));
    assert_eq!(event["paymentAmount"], 2_000);
    assert_eq!(event["items"][0]["quantity"], 2);

    app.pay(user, order).await.assert_problem(409, "ORDER_ALREADY_PAID");
    assert_eq!(app.balance(user).await, 13_000);
}

#[tokio::test]
async fn payment_refusals_change_nothing() {
    let server = platform(200).await;
    let app = app_with_platform(&server, &[]).await;
    let user = app.create_user().await;
    let stranger = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 999).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    app.pay(user, order).await.assert_problem(409, "INSUFFICIENT_BALANCE");
    app.pay(stranger, order).await.assert_problem(404, "ORDER_NOT_FOUND");
    app.pay(user + 100, order).await.assert_problem(404, "USER_NOT_FOUND");
    app.pay(user, order + 100).await.assert_problem(404, "ORDER_NOT_FOUND");
    app.post("/api/v1/payments", &json!({"userId": user, "orderId": 0})).await.assert_problem(400, "INVALID_REQUEST");
    app.post("/api/v1/payments", &json!({"userId": "1", "orderId": order}))
        .await
        .assert_problem(400, "INVALID_REQUEST");
    assert_eq!(app.balance(user).await, 999);
    assert_eq!(app.scalar("SELECT count(*) FROM payments").await, 0);
    assert!(server.received_requests().await.unwrap().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_payments_of_one_order_succeed_once() {
    let server = platform(200).await;
    let app = app_with_platform(&server, &[]).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 100_000).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let replies = all((0..20).map(|_| app.pay(user, order))).await;
    assert_eq!(count_status(&replies, 201), 1);
    assert_eq!(count_status(&replies, 409), 19);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "ORDER_ALREADY_PAID"));
    assert_eq!(app.balance(user).await, 99_000);
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'USE'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_orders_against_a_balance_for_ten() {
    let server = platform(200).await;
    // One user holds all 25 unpaid orders at once.
    let app = app_with_platform(&server, &[("MAX_UNPAID_ORDERS_PER_USER", "25")]).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 100).await;
    assert_eq!(app.charge(user, 10_000).await.status, 200);
    let mut orders = Vec::new();
    for _ in 0..25 {
        orders.push(app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap());
    }
    let replies = all(orders.iter().map(|order| app.pay(user, *order))).await;
    assert_eq!(count_status(&replies, 201), 10);
    assert_eq!(count_status(&replies, 409), 15);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "INSUFFICIENT_BALANCE"));
    assert_eq!(app.balance(user).await, 0);
    assert_eq!(app.scalar("SELECT min(balance_after) FROM point_history").await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM orders WHERE status = 'PAID'").await, 10);
}

async fn assert_unchanged(app: &TestApp, user: i64, order: i64) {
    assert_eq!(app.balance(user).await, 5_000);
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'USE'").await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM payments").await, 0);
    assert_eq!(app.get(&format!("/api/v1/orders/{order}?userId={user}")).await.body["status"], "NOT_PAID");
}

#[tokio::test]
async fn a_failing_or_hanging_platform_rolls_everything_back_until_it_recovers() {
    let server = MockServer::start().await;
    let app = app_with_platform(&server, &[]).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    assert_eq!(app.charge(user, 5_000).await.status, 200);
    let order = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();

    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert_unchanged(&app, user, order).await;

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    app.pay(user, order).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the platform timeout");
    assert_unchanged(&app, user, order).await;

    server.reset().await;
    Mock::given(method("POST"))
        .and(header("idempotency-key", format!("order-{order}").as_str()))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let paid = app.pay(user, order).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(app.balance(user).await, 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_racing_the_expiry_sweep_end_paid_or_failed_never_both() {
    let server = platform(200).await;
    let app = app_with_platform(&server, &[("ORDER_PAYMENT_TIMEOUT_SECS", "1"), ("ORDER_EXPIRY_SWEEP_MS", "10")]).await;
    let product = app.create_product(1_000, 1_000).await;
    let coupon = app.create_coupon("FIXED", 100, 0, 100).await;
    let users = app.bulk_users(30, 10_000).await;
    let mut orders = Vec::new();
    for user in &users {
        assert_eq!(app.issue(coupon, *user).await.status, 201);
        let order = app.order(*user, Some(coupon), &[(product, 2)]).await;
        orders.push((*user, order.body["orderId"].as_i64().unwrap()));
    }
    // Aim at the deadline: the last order was placed just now, the first up to ~1 s ago.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let replies = all(orders.iter().map(|(user, order)| app.pay(*user, *order))).await;
    assert!(
        replies.iter().all(|r| r.status == 201 || r.code() == "ORDER_EXPIRED"),
        "{:?}",
        replies.iter().find(|r| r.status != 201)
    );
    let done = crate::helpers::eventually(Duration::from_secs(5), async || {
        app.scalar("SELECT count(*) FROM orders WHERE status = 'NOT_PAID'").await == 0
    })
    .await;
    assert!(done);

    let mut paid_units = 0;
    for ((user, order), reply) in orders.iter().zip(&replies) {
        let status = app.get(&format!("/api/v1/orders/{order}?userId={user}")).await.body["status"].clone();
        let balance = app.balance(*user).await;
        let coupon_used = app
            .scalar(&format!("SELECT count(*) FROM user_coupons WHERE user_id = {user} AND used_at IS NOT NULL"))
            .await;
        if reply.status == 201 {
            assert_eq!(status, "PAID");
            assert_eq!(balance, 10_000 - 1_900);
            assert_eq!(coupon_used, 1);
            paid_units += 2;
        } else {
            assert_eq!(status, "FAILED");
            assert_eq!(balance, 10_000, "an expired order charges nothing");
            assert_eq!(coupon_used, 0, "its coupon is usable again");
        }
    }
    assert_eq!(app.stock(product).await, 1_000 - paid_units, "stock returned for exactly the failed orders");
}

#[tokio::test]
async fn with_the_breaker_open_a_committed_keyed_payment_still_replays() {
    let server = MockServer::start().await;
    // The first payment is accepted; every send after it fails.
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).up_to_n_times(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&server).await;
    let app = app_with_platform(
        &server,
        &[("DATA_PLATFORM_BREAKER_FAILURES", "1"), ("DATA_PLATFORM_BREAKER_COOLDOWN_MS", "60000")],
    )
    .await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 10).await;
    assert_eq!(app.charge(user, 10_000).await.status, 200);
    let paid = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let other = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let body = json!({"userId": user, "orderId": paid});
    let first = app.post_keyed("/api/v1/payments", &body, "pay-once").await;
    assert_eq!(first.status, 201, "{}", first.body);
    // A failed send opens the breaker.
    app.pay(user, other).await.assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");
    app.post_keyed("/api/v1/payments", &json!({"userId": user, "orderId": other}), "pay-other")
        .await
        .assert_problem(503, "DATA_PLATFORM_UNAVAILABLE");

    let replay = app.post_keyed("/api/v1/payments", &body, "pay-once").await;
    assert_eq!((replay.status, replay.replayed), (201, true), "{}", replay.body);
    assert_eq!(replay.body, first.body);
    assert_eq!(app.balance(user).await, 9_000, "charged once");
    assert_eq!(server.received_requests().await.unwrap().len(), 2, "the replay sent nothing");
}
