//! The order lifecycle (docs/API.md, "Order lifecycle"): a user cancels an unpaid
//! order, the shop refunds a paid one; every row of both tables, the events, and the
//! races that must have exactly one winner.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ADMIN_TOKEN, Reply, TestApp, all, count_status, eventually, token};

/// Orders expire after a second.
const FAST_EXPIRY: [(&str, &str); 2] = [("ORDER_PAYMENT_TIMEOUT_SECS", "1"), ("ORDER_EXPIRY_SWEEP_MS", "100")];

/// Moves `order`'s deadline into the past and waits for the sweep to fail it.
async fn expire_now(app: &TestApp, user: i64, order: i64) {
    app.execute(&format!("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = {order}")).await;
    let failed = eventually(Duration::from_secs(5), async || order_status(app, user, order).await == "FAILED").await;
    assert!(failed, "the sweep failed order {order}");
}

async fn cancel(app: &TestApp, user: i64, order: i64) -> Reply {
    app.post(&format!("/api/v1/orders/{order}/cancel"), &json!({"userId": user})).await
}

/// An admin refund without a body (it is optional).
async fn refund(app: &TestApp, order: i64) -> Reply {
    let url = app.url(&format!("/api/v1/admin/orders/{order}/refund"));
    app.send(app.client.post(url).bearer_auth(ADMIN_TOKEN)).await
}

async fn order_status(app: &TestApp, user: i64, order: i64) -> Value {
    app.get(&format!("/api/v1/orders/{order}?userId={user}")).await.body["status"].clone()
}

/// A user with `balance`, holding a 300 KRW coupon, and their unpaid order of 2 units
/// of a 1,000 KRW product of stock 5: (user, product, coupon, order).
async fn unpaid_order_with_coupon(app: &TestApp, balance: i64) -> (i64, i64, i64, i64) {
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    let coupon = app.create_coupon("FIXED", 300, 0, 1).await;
    assert_eq!(app.issue(coupon, user).await.status, 201);
    if balance > 0 {
        assert_eq!(app.charge(user, balance).await.status, 200);
    }
    let order = app.order(user, Some(coupon), &[(product, 2)]).await;
    assert_eq!(order.status, 201, "{}", order.body);
    (user, product, coupon, order.body["orderId"].as_i64().unwrap())
}

async fn coupon_used(app: &TestApp, user: i64) -> Value {
    app.get(&format!("/api/v1/coupons?userId={user}")).await.body["items"][0]["used"].clone()
}

#[tokio::test]
async fn a_user_cancels_an_unpaid_order_and_gets_stock_and_coupon_back_at_once() {
    let app = TestApp::spawn().await;
    let (user, product, coupon, order) = unpaid_order_with_coupon(&app, 10_000).await;
    assert_eq!(app.stock(product).await, 3);

    let cancelled = cancel(&app, user, order).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    assert_eq!(cancelled.body["orderId"], order);
    assert!(cancelled.body["cancelledAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(cancelled.body["refundedAt"].is_null() && cancelled.body["paidAt"].is_null());
    assert_eq!(app.stock(product).await, 5, "the stock came back at once");
    assert_eq!(coupon_used(&app, user).await, false, "the coupon is usable again at once");
    assert_eq!(order_status(&app, user, order).await, "CANCELLED");
    let listed = app.get(&format!("/api/v1/orders?userId={user}&status=CANCELLED")).await;
    assert_eq!(listed.body["items"][0]["orderId"], order);

    cancel(&app, user, order).await.assert_problem(409, "ORDER_CANCELLED");
    app.pay(user, order).await.assert_problem(409, "ORDER_CANCELLED");
    assert_eq!(app.balance(user).await, 10_000, "nothing was charged");
    assert_eq!(app.stock(product).await, 5, "a second cancel gives nothing back again");
    let again = app.order(user, Some(coupon), &[(product, 5)]).await;
    assert_eq!(again.status, 201, "coupon and all the stock can be ordered again: {}", again.body);
}

#[tokio::test]
async fn a_cancel_is_refused_for_an_order_that_is_not_the_users_or_not_unpaid() {
    let app = TestApp::spawn().await;
    let (user, product, _, unpaid) = unpaid_order_with_coupon(&app, 10_000).await;
    let other = app.create_user().await;
    cancel(&app, other, unpaid).await.assert_problem(404, "ORDER_NOT_FOUND");
    cancel(&app, user, 999_999).await.assert_problem(404, "ORDER_NOT_FOUND");
    // A token of another user than the body names.
    let forged = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/orders/{unpaid}/cancel")))
                .bearer_auth(token(other))
                .json(&json!({"userId": user})),
        )
        .await;
    forged.assert_problem(403, "FORBIDDEN");
    cancel(&app, user, 0).await.assert_problem(400, "INVALID_REQUEST");
    app.post(&format!("/api/v1/orders/{unpaid}/cancel"), &json!({"userId": "x"}))
        .await
        .assert_problem(400, "INVALID_REQUEST");
    assert_eq!(order_status(&app, user, unpaid).await, "NOT_PAID", "the refusals changed nothing");

    assert_eq!(app.pay(user, unpaid).await.status, 201);
    cancel(&app, user, unpaid).await.assert_problem(409, "ORDER_ALREADY_PAID");
    assert_eq!(refund(&app, unpaid).await.status, 200);
    cancel(&app, user, unpaid).await.assert_problem(409, "ORDER_ALREADY_PAID");

    let expiring = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    expire_now(&app, user, expiring).await;
    cancel(&app, user, expiring).await.assert_problem(409, "ORDER_EXPIRED");
}

#[tokio::test]
async fn a_keyed_cancel_replays_its_answer() {
    let app = TestApp::spawn().await;
    let (user, product, _, order) = unpaid_order_with_coupon(&app, 0).await;
    let path = format!("/api/v1/orders/{order}/cancel");
    let first = app.post_keyed(&path, &json!({"userId": user}), "cancel-1").await;
    assert_eq!((first.status, first.replayed), (200, false), "{}", first.body);
    let replay = app.post_keyed(&path, &json!({"userId": user}), "cancel-1").await;
    assert_eq!((replay.status, replay.replayed), (200, true));
    assert_eq!(replay.body, first.body);
    assert_eq!(app.stock(product).await, 5, "given back once");
    app.post_keyed(&path, &json!({"userId": user}), "cancel-2").await.assert_problem(409, "ORDER_CANCELLED");
}

/// A platform that accepts every event (and records them).
async fn accepting_platform() -> MockServer {
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    platform
}

async fn refunds_received(platform: &MockServer) -> Vec<wiremock::Request> {
    let all = platform.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| r.body_json::<Value>().is_ok_and(|b| b["type"] == "ORDER_REFUNDED")).collect()
}

#[tokio::test]
async fn the_shop_refunds_a_paid_order_and_the_platform_hears_of_it_once() {
    let platform = accepting_platform().await;
    let url = platform.uri();
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url)]).await;
    let (user, product, _, order) = unpaid_order_with_coupon(&app, 10_000).await;
    let paid = app.pay(user, order).await;
    assert_eq!(paid.status, 201);
    assert_eq!(app.balance(user).await, 8_300);

    let refunded =
        app.admin_post(&format!("/api/v1/admin/orders/{order}/refund"), &json!({"reason": "parcel damaged"})).await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    assert_eq!(refunded.body["status"], "REFUNDED");
    assert_eq!(refunded.body["paidAt"], paid.body["paidAt"], "a refunded order keeps its payment instant");
    assert!(refunded.body["refundedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(refunded.body["cancelledAt"].is_null());
    assert_eq!(app.balance(user).await, 10_000, "the payment amount went back");
    assert_eq!(app.stock(product).await, 5, "the quantities went back");
    assert_eq!(coupon_used(&app, user).await, true, "the coupon stays used");
    let history = app.get(&format!("/api/v1/points/{user}/history")).await;
    let newest = &history.body["items"][0];
    assert_eq!((newest["type"].as_str(), newest["amount"].as_i64()), (Some("REFUND"), Some(1_700)));
    assert_eq!((newest["orderId"].as_i64(), newest["balanceAfter"].as_i64()), (Some(order), Some(10_000)));
    assert_eq!(
        app.scalar(&format!("SELECT count(*) FROM orders WHERE id = {order} AND refund_reason = 'parcel damaged'"))
            .await,
        1
    );

    let delivered = eventually(Duration::from_secs(10), async || refunds_received(&platform).await.len() == 1).await;
    assert!(delivered, "ORDER_REFUNDED was delivered");
    let event = &refunds_received(&platform).await[0];
    assert_eq!(event.headers.get("idempotency-key").unwrap(), &format!("order-{order}-refund"));
    let body: Value = event.body_json().unwrap();
    assert_eq!((body["orderId"].as_i64(), body["userId"].as_i64()), (Some(order), Some(user)));
    assert_eq!(body["refundAmount"], 1_700);
    assert!(body["refundedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(eventually(Duration::from_secs(5), async || app.scalar("SELECT count(*) FROM outbox").await == 0).await);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(refunds_received(&platform).await.len(), 1, "sent once");

    refund(&app, order).await.assert_problem(409, "ORDER_ALREADY_REFUNDED");
    app.pay(user, order).await.assert_problem(409, "ORDER_ALREADY_PAID");
    assert_eq!(app.balance(user).await, 10_000);
}

#[tokio::test]
async fn a_refund_is_refused_for_an_order_that_is_not_paid_or_would_pass_the_cap() {
    let app = TestApp::spawn().await;
    let (user, product, _, unpaid) = unpaid_order_with_coupon(&app, 0).await;
    refund(&app, 999_999).await.assert_problem(404, "ORDER_NOT_FOUND");
    refund(&app, unpaid).await.assert_problem(409, "ORDER_NOT_PAID");
    assert_eq!(cancel(&app, user, unpaid).await.status, 200);
    refund(&app, unpaid).await.assert_problem(409, "ORDER_NOT_PAID");
    let expiring = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    expire_now(&app, user, expiring).await;
    refund(&app, expiring).await.assert_problem(409, "ORDER_NOT_PAID");

    // Paid, then charged up to the cap: the refund would pass it.
    assert_eq!(app.charge(user, 1_000).await.status, 200);
    let paid = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    assert_eq!(app.pay(user, paid).await.status, 201);
    for _ in 0..5 {
        assert_eq!(app.charge(user, 1_000_000).await.status, 200);
    }
    assert_eq!(app.balance(user).await, 5_000_000);
    let stock = app.stock(product).await;
    refund(&app, paid).await.assert_problem(409, "BALANCE_LIMIT_EXCEEDED");
    assert_eq!(app.balance(user).await, 5_000_000);
    assert_eq!(app.stock(product).await, stock, "nothing went back");
    assert_eq!(order_status(&app, user, paid).await, "PAID");

    let long = "r".repeat(501);
    app.admin_post(&format!("/api/v1/admin/orders/{paid}/refund"), &json!({"reason": long}))
        .await
        .assert_problem(400, "INVALID_REQUEST");
    app.send(app.client.post(app.url(&format!("/api/v1/admin/orders/{paid}/refund"))).bearer_auth(token(user)))
        .await
        .assert_problem(401, "UNAUTHORIZED");
    app.send(
        app.client
            .post(app.url(&format!("/api/v1/admin/orders/{paid}/refund")))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await
    .assert_problem(400, "INVALID_REQUEST");
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'REFUND'").await, 0);
}

#[tokio::test]
async fn a_refund_waits_out_a_platform_that_is_down_and_never_blocks() {
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"type": "ORDER_REFUNDED"})))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&platform)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let url = platform.uri();
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url)]).await;
    let (user, _, _, order) = unpaid_order_with_coupon(&app, 10_000).await;
    assert_eq!(app.pay(user, order).await.status, 201);
    assert_eq!(refund(&app, order).await.status, 200, "the refund does not wait for the platform");
    let delivered =
        eventually(Duration::from_secs(15), async || app.scalar("SELECT count(*) FROM outbox").await == 0).await;
    assert!(delivered, "delivered after two refusals, with backoff");
    assert_eq!(refunds_received(&platform).await.len(), 3);
}

/// The §C invariants, in SQL: every balance is its ledger, stock never negative, and
/// every order's stock is out exactly when it is unpaid-and-live or paid.
async fn invariants_hold(app: &TestApp, product: i64, initial_stock: i64) {
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM users u WHERE u.balance <> COALESCE((SELECT sum(CASE h.kind WHEN 'USE' \
             THEN -h.amount ELSE h.amount END) FROM point_history h WHERE h.user_id = u.id), 0)"
        )
        .await,
        0,
        "every balance is the sum of its ledger"
    );
    let held = app
        .scalar(&format!(
            "SELECT COALESCE(sum(l.quantity), 0)::int8 FROM order_lines l JOIN orders o ON o.id = l.order_id \
             WHERE l.product_id = {product} AND o.status IN ('NOT_PAID', 'PAID')"
        ))
        .await;
    assert_eq!(app.stock(product).await + held, initial_stock, "stock given back exactly once per ended order");
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM user_coupons c JOIN orders o ON o.id = c.order_id \
             WHERE o.status IN ('FAILED', 'CANCELLED')"
        )
        .await,
        0,
        "no coupon stays used by an order that ended unpaid"
    );
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM orders o WHERE (o.status IN ('PAID', 'REFUNDED')) <> \
             EXISTS (SELECT 1 FROM point_history h WHERE h.order_id = o.id AND h.kind = 'USE')"
        )
        .await,
        0,
        "an order was charged exactly when it was paid"
    );
    assert_eq!(
        app.scalar(
            "SELECT count(*) FROM orders o WHERE (o.status = 'REFUNDED') <> \
             EXISTS (SELECT 1 FROM point_history h WHERE h.order_id = o.id AND h.kind = 'REFUND')"
        )
        .await,
        0,
        "an order was refunded exactly when it is REFUNDED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_and_a_payment_of_one_order_racing_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let product = app.create_product(100, 1_000).await;
    let coupon = app.create_coupon("FIXED", 10, 0, 40).await;
    let users = app.bulk_users(40, 10_000).await;
    for user in &users {
        assert_eq!(app.issue(coupon, *user).await.status, 201);
    }
    let orders = all(users.iter().map(|user| app.order(*user, Some(coupon), &[(product, 3)]))).await;
    let orders: Vec<i64> = orders.iter().map(|o| o.body["orderId"].as_i64().unwrap()).collect();
    let app = &app;
    let races = all(users
        .iter()
        .zip(&orders)
        .map(|(user, order)| async move { tokio::join!(cancel(app, *user, *order), app.pay(*user, *order)) }))
    .await;
    for (cancelled, paid) in &races {
        let winners = usize::from(cancelled.status == 200) + usize::from(paid.status == 201);
        assert_eq!(winners, 1, "cancel {} / pay {}", cancelled.body, paid.body);
        if cancelled.status == 200 {
            paid.assert_problem(409, "ORDER_CANCELLED");
        } else {
            cancelled.assert_problem(409, "ORDER_ALREADY_PAID");
        }
    }
    let paid = i64::try_from(races.iter().filter(|(_, p)| p.status == 201).count()).unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM orders WHERE status = 'PAID'").await, paid);
    assert_eq!(app.scalar("SELECT count(*) FROM orders WHERE status = 'CANCELLED'").await, 40 - paid);
    assert_eq!(app.scalar("SELECT sum(balance)::int8 FROM users").await, 40 * 10_000 - paid * 290);
    invariants_hold(app, product, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_the_expiry_gives_stock_and_coupon_back_once() {
    let app = TestApp::spawn_with(&FAST_EXPIRY).await;
    let product = app.create_product(100, 1_000).await;
    let coupon = app.create_coupon("FIXED", 10, 0, 30).await;
    let users = app.bulk_users(30, 0).await;
    for user in &users {
        assert_eq!(app.issue(coupon, *user).await.status, 201);
    }
    let orders = all(users.iter().map(|user| app.order(*user, Some(coupon), &[(product, 2)]))).await;
    let orders: Vec<i64> = orders.iter().map(|o| o.body["orderId"].as_i64().unwrap()).collect();
    // The deadline is a second away: cancel across it, a few at a time.
    tokio::time::sleep(Duration::from_millis(850)).await;
    let replies = all(users.iter().zip(&orders).map(|(user, order)| cancel(&app, *user, *order))).await;
    for reply in &replies {
        assert!(
            reply.status == 200 || (reply.status == 409 && reply.code() == "ORDER_EXPIRED"),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let all_ended = eventually(Duration::from_secs(5), async || {
        app.scalar("SELECT count(*) FROM orders WHERE status IN ('CANCELLED', 'FAILED')").await == 30
    })
    .await;
    assert!(all_ended);
    let cancelled = i64::try_from(count_status(&replies, 200)).unwrap();
    assert_eq!(app.scalar("SELECT count(*) FROM orders WHERE status = 'CANCELLED'").await, cancelled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stock(product).await, 1_000, "every order's stock came back exactly once");
    assert_eq!(app.scalar("SELECT count(*) FROM user_coupons WHERE used_at IS NOT NULL").await, 0);
    invariants_hold(&app, product, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_ten_simultaneous_refunds_of_one_order_exactly_one_succeeds() {
    let platform = accepting_platform().await;
    let url = platform.uri();
    let app = TestApp::spawn_with(&[("DATA_PLATFORM_URL", &url)]).await;
    let (user, product, _, order) = unpaid_order_with_coupon(&app, 10_000).await;
    assert_eq!(app.pay(user, order).await.status, 201);
    let replies = all((0..10).map(|_| refund(&app, order))).await;
    assert_eq!(count_status(&replies, 200), 1);
    assert!(replies.iter().filter(|r| r.status != 200).all(|r| r.code() == "ORDER_ALREADY_REFUNDED"));
    assert_eq!(app.balance(user).await, 10_000, "refunded once");
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'REFUND'").await, 1);
    invariants_hold(&app, product, 5).await;
    assert!(eventually(Duration::from_secs(10), async || refunds_received(&platform).await.len() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_and_a_charge_that_together_pass_the_cap_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let product = app.create_product(500_000, 100).await;
    let users = app.bulk_users(20, 4_500_000).await;
    let mut orders = Vec::new();
    for user in &users {
        let order = app.order(*user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
        assert_eq!(app.pay(*user, order).await.status, 201);
        orders.push(order);
    }
    // Each balance is 4,000,000: the refund (500,000) and the charge (600,000) each fit,
    // both do not.
    let app = &app;
    let races = all(users
        .iter()
        .zip(&orders)
        .map(|(user, order)| async move { tokio::join!(refund(app, *order), app.charge(*user, 600_000)) }))
    .await;
    for (refunded, charged) in &races {
        assert_eq!(usize::from(refunded.status == 200) + usize::from(charged.status == 200), 1);
        let loser = if refunded.status == 200 { charged } else { refunded };
        loser.assert_problem(409, "BALANCE_LIMIT_EXCEEDED");
    }
    for user in &users {
        assert!([4_500_000, 4_600_000].contains(&app.balance(*user).await));
    }
    invariants_hold(app, product, 100).await;
}
