use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, all, count_status, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_users_race_for_the_last_ten_units() {
    let app = TestApp::spawn().await;
    let product = app.create_product(1_000, 10).await;
    let users = app.bulk_users(40, 0).await;
    let replies = all(users.iter().map(|user| app.order(*user, None, &[(product, 1)]))).await;
    assert_eq!(count_status(&replies, 201), 10);
    assert_eq!(count_status(&replies, 409), 30);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "OUT_OF_STOCK"));
    assert_eq!(app.stock(product).await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 10);
    assert_eq!(app.scalar("SELECT COALESCE(sum(quantity), 0)::int8 FROM order_lines").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossed_orders_do_not_deadlock() {
    let app = TestApp::spawn().await;
    let a = app.create_product(100, 1_000).await;
    let b = app.create_product(200, 1_000).await;
    let users = app.bulk_users(20, 0).await;
    let replies = all(users.iter().enumerate().map(|(i, user)| {
        let lines = if i % 2 == 0 { [(a, 1), (b, 2)] } else { [(b, 2), (a, 1)] };
        app.order(*user, None, &lines)
    }))
    .await;
    assert_eq!(count_status(&replies, 201), 20, "{:?}", replies.iter().find(|r| r.status != 201));
    assert_eq!(app.stock(a).await, 980);
    assert_eq!(app.stock(b).await, 960);
}

#[tokio::test]
async fn an_order_reserves_stock_uses_the_coupon_and_reads_back() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let keyboard = app.create_product(1_000, 5).await;
    let mouse = app.create_product(250, 5).await;
    let coupon = app.create_coupon("PERCENT", 10, 1_000, 5).await;
    assert_eq!(app.issue(coupon, user).await.status, 201);
    let reply = app.order(user, Some(coupon), &[(keyboard, 2), (mouse, 1)]).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let order = &reply.body;
    assert_eq!(order["status"], "NOT_PAID");
    assert_eq!(
        (order["totalAmount"].as_i64(), order["discountAmount"].as_i64(), order["paymentAmount"].as_i64()),
        (Some(2_250), Some(225), Some(2_025))
    );
    assert_eq!(order["items"][0]["productId"].as_i64(), Some(keyboard));
    assert_eq!(order["items"][0]["amount"], 2_000);
    assert_eq!(order["couponId"].as_i64(), Some(coupon));
    let created = chrono::DateTime::parse_from_rfc3339(order["createdAt"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(order["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, chrono::Duration::minutes(5));
    assert_eq!(app.stock(keyboard).await, 3);
    assert_eq!(app.stock(mouse).await, 4);
    let held = app.get(&format!("/api/v1/coupons?userId={user}")).await;
    assert_eq!(held.body["items"][0]["used"], true);

    let order_id = order["orderId"].as_i64().unwrap();
    let read = app.get(&format!("/api/v1/orders/{order_id}?userId={user}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, reply.body);
    let stranger = app.create_user().await;
    app.get(&format!("/api/v1/orders/{order_id}?userId={stranger}")).await.assert_problem(404, "ORDER_NOT_FOUND");
    app.get(&format!("/api/v1/orders/{}?userId={user}", order_id + 9)).await.assert_problem(404, "ORDER_NOT_FOUND");

    app.order(user, Some(coupon), &[(keyboard, 1)]).await.assert_problem(409, "COUPON_ALREADY_USED");
}

#[tokio::test]
async fn order_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 2).await;
    let cheap = app.create_coupon("FIXED", 100, 5_000, 5).await;
    assert_eq!(app.issue(cheap, user).await.status, 201);
    let not_held = app.create_coupon("FIXED", 100, 0, 5).await;

    let too_many: Vec<serde_json::Value> = (1..=101).map(|p| json!({"productId": p, "quantity": 1})).collect();
    for body in [
        json!({"userId": user, "items": []}),
        json!({"userId": user, "items": too_many}),
        json!({"userId": user, "items": [{"productId": product, "quantity": 0}]}),
        json!({"userId": user, "items": [{"productId": product, "quantity": 1}, {"productId": product, "quantity": 1}]}),
        json!({"userId": -1, "items": [{"productId": product, "quantity": 1}]}),
        json!({"userId": user, "items": [{"productId": "x", "quantity": 1}]}),
        json!({"userId": user}),
    ] {
        app.post("/api/v1/orders", &body).await.assert_problem(400, "INVALID_REQUEST");
    }
    app.order(user + 100, None, &[(product, 1)]).await.assert_problem(404, "USER_NOT_FOUND");
    app.order(user, None, &[(product, 1), (product + 100, 1)]).await.assert_problem(404, "PRODUCT_NOT_FOUND");
    app.order(user, Some(not_held), &[(product, 1)]).await.assert_problem(404, "COUPON_NOT_OWNED");
    app.order(user, None, &[(product, 3)]).await.assert_problem(409, "OUT_OF_STOCK");
    app.order(user, Some(cheap), &[(product, 2)]).await.assert_problem(409, "COUPON_NOT_APPLICABLE");
    app.execute(&format!("UPDATE coupons SET valid_from = now() + interval '1 day', valid_until = now() + interval '2 days' WHERE id = {cheap}")).await;
    app.execute(&format!("UPDATE coupons SET min_order_amount = 0 WHERE id = {cheap}")).await;
    app.order(user, Some(cheap), &[(product, 1)]).await.assert_problem(409, "COUPON_EXPIRED");

    assert_eq!(app.stock(product).await, 2);
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM user_coupons WHERE used_at IS NOT NULL").await, 0);
}

pub const FAST_EXPIRY: [(&str, &str); 2] = [("ORDER_PAYMENT_TIMEOUT_SECS", "1"), ("ORDER_EXPIRY_SWEEP_MS", "100")];

#[tokio::test]
async fn an_unpaid_order_fails_and_gives_back_stock_and_coupon_once() {
    let app = TestApp::spawn_with(&FAST_EXPIRY).await;
    let user = app.create_user().await;
    let product = app.create_product(1_000, 5).await;
    let coupon = app.create_coupon("FIXED", 300, 0, 1).await;
    assert_eq!(app.issue(coupon, user).await.status, 201);
    assert_eq!(app.charge(user, 10_000).await.status, 200);
    let order = app.order(user, Some(coupon), &[(product, 2)]).await.body["orderId"].as_i64().unwrap();
    assert_eq!(app.stock(product).await, 3);

    let failed = eventually(Duration::from_secs(5), async || {
        app.get(&format!("/api/v1/orders/{order}?userId={user}")).await.body["status"] == "FAILED"
    })
    .await;
    assert!(failed, "the sweep fails the order after its deadline");
    assert_eq!(app.stock(product).await, 5, "stock given back exactly once");
    let held = app.get(&format!("/api/v1/coupons?userId={user}")).await;
    assert_eq!(held.body["items"][0]["used"], false);
    assert!(held.body["items"][0]["usedAt"].is_null());
    app.pay(user, order).await.assert_problem(409, "ORDER_EXPIRED");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.stock(product).await, 5, "later sweeps do not give it back again");
    assert_eq!(app.balance(user).await, 10_000);

    let again = app.order(user, Some(coupon), &[(product, 1)]).await;
    assert_eq!(again.status, 201, "the coupon is usable again: {}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sweeping_one_database_restore_stock_once() {
    let app = TestApp::spawn_with(&FAST_EXPIRY).await;
    let (_second, second_handle, second_stopped) = TestApp::start_on(app.db.url(), &FAST_EXPIRY).await;
    let product = app.create_product(10, 1_000).await;
    let users = app.bulk_users(30, 0).await;
    let replies = all(users.iter().map(|user| app.order(*user, None, &[(product, 3)]))).await;
    assert_eq!(count_status(&replies, 201), 30);
    assert_eq!(app.stock(product).await, 910);
    let all_failed = eventually(Duration::from_secs(8), async || {
        app.scalar("SELECT count(*) FROM orders WHERE status = 'FAILED'").await == 30
    })
    .await;
    assert!(all_failed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stock(product).await, 1_000, "every order's stock came back exactly once");
    second_handle.stop(true).await;
    second_stopped.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_order_no_balance_could_pay_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let product = app.create_product(2_600_000, 10).await;
    app.order(user, None, &[(product, 10)]).await.assert_problem(409, "ORDER_AMOUNT_TOO_LARGE");
    assert_eq!(app.stock(product).await, 10);
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.order(user, None, &[(product, 1)]).await.status, 201, "a payable order is placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_simultaneous_orders_of_one_user_with_a_cap_of_five_place_exactly_five() {
    let app = TestApp::spawn_with(&[("MAX_UNPAID_ORDERS_PER_USER", "5")]).await;
    let user = app.create_user().await;
    let product = app.create_product(100, 100).await;
    let replies = all((0..10).map(|_| app.order(user, None, &[(product, 1)]))).await;
    assert_eq!(count_status(&replies, 201), 5);
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.assert_problem(409, "TOO_MANY_UNPAID_ORDERS");
    }
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM orders WHERE user_id = {user}")).await, 5);
    assert_eq!(app.stock(product).await, 95, "only the placed orders hold stock");
    // Another user is not limited by this one's orders.
    let other = app.create_user().await;
    assert_eq!(app.order(other, None, &[(product, 1)]).await.status, 201);
}

#[tokio::test]
async fn a_user_lists_their_orders_newest_first_page_by_page_and_by_status() {
    let app = TestApp::spawn().await;
    let (kim, lee) = (app.create_user().await, app.create_user().await);
    assert_eq!(app.charge(kim, 100_000).await.status, 200);
    let product = app.create_product(1_000, 100).await;
    let mut placed = Vec::new();
    for buyer in [kim, lee, kim, kim] {
        placed.push(app.order(buyer, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap());
    }
    assert_eq!(app.pay(kim, placed[2]).await.status, 201);
    let ids = |reply: &crate::helpers::Reply| -> Vec<i64> {
        reply.body["items"].as_array().unwrap().iter().map(|o| o["orderId"].as_i64().unwrap()).collect()
    };

    let first = app.get(&format!("/api/v1/orders?userId={kim}&limit=2")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(ids(&first), [placed[3], placed[2]], "newest first, only kim's");
    assert_eq!(first.body["items"][1]["status"], "PAID");
    assert_eq!(first.body["items"][0]["items"][0]["productId"], product, "each order with its lines");
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let rest = app.get(&format!("/api/v1/orders?userId={kim}&limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&rest), [placed[0]]);
    assert!(rest.body["nextCursor"].is_null(), "the last page");

    let paid = app.get(&format!("/api/v1/orders?userId={kim}&status=PAID")).await;
    assert_eq!(ids(&paid), [placed[2]]);
    let unpaid = app.get(&format!("/api/v1/orders?userId={kim}&status=NOT_PAID&cursor=&limit=")).await;
    assert_eq!(ids(&unpaid), [placed[3], placed[0]], "empty cursor and limit count as absent");

    for bad in ["status=SHIPPED", "limit=0", "limit=101", "cursor=abc"] {
        app.get(&format!("/api/v1/orders?userId={kim}&{bad}")).await.assert_problem(400, "INVALID_REQUEST");
    }
    app.get("/api/v1/orders?userId=x").await.assert_problem(400, "INVALID_REQUEST");
    app.get("/api/v1/orders").await.assert_problem(400, "INVALID_REQUEST");
    // Another list's cursor is not this list's.
    app.create_product(1_000, 1).await;
    let foreign = app.get("/api/v1/products?limit=1").await.body["nextCursor"].as_str().unwrap().to_owned();
    app.get(&format!("/api/v1/orders?userId={kim}&cursor={foreign}")).await.assert_problem(400, "INVALID_REQUEST");

    let theirs =
        app.client.get(app.url(&format!("/api/v1/orders?userId={kim}"))).bearer_auth(crate::helpers::token(lee));
    app.send(theirs).await.assert_problem(403, "FORBIDDEN");
    app.get("/api/v1/orders?userId=999999").await.assert_problem(404, "USER_NOT_FOUND");
}
