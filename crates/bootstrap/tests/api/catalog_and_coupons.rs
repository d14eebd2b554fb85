use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{TestApp, all, at_most, count_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_race_for_a_hundred_coupons() {
    let app = TestApp::spawn().await;
    let coupon = app.create_coupon("FIXED", 1_000, 0, 100).await;
    let users = app.bulk_users(1_000, 0).await;
    let replies = all(users.iter().map(|user| app.issue(coupon, *user))).await;
    assert_eq!(count_status(&replies, 201), 100);
    assert_eq!(count_status(&replies, 409), 900);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "COUPON_SOLD_OUT"));
    assert_eq!(
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        0
    );
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM user_coupons WHERE coupon_id = {coupon}")).await, 100);
    assert_eq!(
        app.scalar(&format!("SELECT count(DISTINCT user_id) FROM user_coupons WHERE coupon_id = {coupon}")).await,
        100
    );
    let remaining: HashSet<i64> = replies.iter().filter_map(|r| r.body["remainingQuantity"].as_i64()).collect();
    assert_eq!(remaining, (0..100).collect(), "each success saw its own remaining quantity");
}

/// The coupon's stock and holders once a rush is over: what is left, how many hold
/// it, how many distinct users hold it, and whether it is flagged sold out.
async fn after_the_rush(app: &TestApp, coupon: i64) -> (i64, i64, i64, i64) {
    (
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        app.scalar(&format!("SELECT count(*) FROM user_coupons WHERE coupon_id = {coupon}")).await,
        app.scalar(&format!("SELECT count(DISTINCT user_id) FROM user_coupons WHERE coupon_id = {coupon}")).await,
        app.scalar(&format!("SELECT sold_out::int::int8 FROM coupons WHERE id = {coupon}")).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_users_race_for_a_thousand_units_and_exactly_a_thousand_are_issued() {
    let app = TestApp::spawn().await;
    let coupon = app.create_coupon("FIXED", 1_000, 0, 1_000).await;
    let users = app.bulk_users(10_000, 0).await;
    // 500 requests in flight at a time: every bucket is contended throughout.
    let replies = at_most(500, users.iter().map(|user| app.issue(coupon, *user))).await;
    assert_eq!(count_status(&replies, 201), 1_000);
    assert_eq!(count_status(&replies, 409), 9_000);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "COUPON_SOLD_OUT"));
    assert_eq!(after_the_rush(&app, coupon).await, (0, 1_000, 1_000, 1), "none left, no user twice, flagged");
    let remaining: HashSet<i64> = replies.iter().filter_map(|r| r.body["remainingQuantity"].as_i64()).collect();
    assert_eq!(remaining, (0..1_000).collect(), "every success reports its own place in the count-down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_users_sending_five_requests_each_at_once_get_one_each_at_most() {
    let app = TestApp::spawn().await;
    let coupon = app.create_coupon("FIXED", 1_000, 0, 100).await;
    let users = app.bulk_users(200, 0).await;
    let requests = users.iter().flat_map(|user| std::iter::repeat_n(*user, 5)).collect::<Vec<_>>();
    let replies = all(requests.iter().map(|user| app.issue(coupon, *user))).await;
    assert_eq!(count_status(&replies, 201), 100);
    assert_eq!(count_status(&replies, 409), 900);
    assert!(
        replies
            .iter()
            .filter(|r| r.status == 409)
            .all(|r| ["COUPON_SOLD_OUT", "COUPON_ALREADY_ISSUED"].contains(&r.code())),
        "only sold-out and already-issued refusals"
    );
    let winners: HashSet<i64> =
        requests.iter().zip(&replies).filter(|(_, reply)| reply.status == 201).map(|(user, _)| *user).collect();
    assert_eq!(winners.len(), 100, "no user issued twice");
    assert_eq!(after_the_rush(&app, coupon).await, (0, 100, 100, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_requests_by_one_user_issue_once() {
    let app = TestApp::spawn().await;
    let coupon = app.create_coupon("PERCENT", 10, 0, 10).await;
    let user = app.create_user().await;
    let replies = all((0..50).map(|_| app.issue(coupon, user))).await;
    assert_eq!(count_status(&replies, 201), 1);
    assert_eq!(count_status(&replies, 409), 49);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "COUPON_ALREADY_ISSUED"));
    assert_eq!(
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        9
    );
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM user_coupons WHERE coupon_id = {coupon}")).await, 1);
}

#[tokio::test]
async fn issue_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let coupon = app.create_coupon("FIXED", 500, 0, 1).await;
    app.issue(coupon + 100, user).await.assert_problem(404, "COUPON_NOT_FOUND");
    app.issue(coupon, user + 100).await.assert_problem(404, "USER_NOT_FOUND");
    app.post("/api/v1/coupons/abc/issue", &json!({"userId": user})).await.assert_problem(400, "INVALID_REQUEST");
    app.post(&format!("/api/v1/coupons/{coupon}/issue"), &json!({"userId": -1}))
        .await
        .assert_problem(400, "INVALID_REQUEST");
    app.post(&format!("/api/v1/coupons/{coupon}/issue"), &json!({})).await.assert_problem(400, "INVALID_REQUEST");

    let issued = app.issue(coupon, user).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    assert_eq!(issued.body["remainingQuantity"], 0);
    assert_eq!(issued.body["used"], false);
    assert_eq!(issued.body["discountType"], "FIXED");
    app.issue(coupon, user).await.assert_problem(409, "COUPON_ALREADY_ISSUED");
    let other = app.create_user().await;
    app.issue(coupon, other).await.assert_problem(409, "COUPON_SOLD_OUT");

    app.execute(&format!("UPDATE coupons SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day', sold_out = false, total_quantity = 2 WHERE id = {coupon}; UPDATE coupon_stock SET remaining = 1 WHERE coupon_id = {coupon}")).await;
    app.issue(coupon, other).await.assert_problem(409, "COUPON_EXPIRED");
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM user_coupons WHERE coupon_id = {coupon}")).await, 1);
    assert_eq!(
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        1
    );
}

#[tokio::test]
async fn a_user_lists_the_coupons_they_hold() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let first = app.create_coupon("FIXED", 500, 0, 5).await;
    let second = app.create_coupon("PERCENT", 15, 1_000, 5).await;
    assert_eq!(app.issue(first, user).await.status, 201);
    assert_eq!(app.issue(second, user).await.status, 201);
    let reply = app.get(&format!("/api/v1/coupons?userId={user}")).await;
    assert_eq!(reply.status, 200);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|c| c["couponId"].as_i64().unwrap()).collect::<Vec<_>>(), vec![first, second]);
    assert_eq!(items[1]["discountValue"], 15);
    assert_eq!(items[1]["minOrderAmount"], 1_000);
    assert!(items[0]["usedAt"].is_null());
    assert!(items[0].get("remainingQuantity").is_none());
    app.get("/api/v1/coupons").await.assert_problem(400, "INVALID_REQUEST");
    app.get("/api/v1/coupons?userId=x").await.assert_problem(400, "INVALID_REQUEST");
    app.get(&format!("/api/v1/coupons?userId={}", user + 50)).await.assert_problem(404, "USER_NOT_FOUND");
}

async fn walk(app: &TestApp, limit: u32) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/products?limit={limit}&cursor={c}"),
            None => format!("/api/v1/products?limit={limit}"),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        seen.extend(items.iter().map(|p| p["productId"].as_i64().unwrap()));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_visits_every_product_once_even_while_products_are_added() {
    let app = TestApp::spawn().await;
    app.execute("INSERT INTO products (name, price, stock) SELECT 'p' || g, g * 100, g FROM generate_series(1, 250) g")
        .await;
    let ids = walk(&app, 7).await;
    assert_eq!(ids.len(), 250);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");

    let inserting = async {
        for _ in 0..40 {
            app.create_product(1_000, 1).await;
        }
    };
    let (walked, ()) = tokio::join!(walk(&app, 7), inserting);
    assert!(walked.windows(2).all(|w| w[0] < w[1]), "no product twice, in id order");
    assert!(walked.len() >= 250, "every product that existed before the walk is visited");
    assert_eq!(&walked[..250], &ids[..]);

    let page = app.get("/api/v1/products?limit=1").await;
    let first = &page.body["items"][0];
    assert_eq!(
        (first["name"].as_str(), first["price"].as_i64(), first["stock"].as_i64()),
        (Some("p1"), Some(100), Some(1))
    );
    let first_page = app.get("/api/v1/products").await;
    assert_eq!(first_page.body["items"].as_array().unwrap().len(), 20, "default limit");
    let empty_values = app.get("/api/v1/products?cursor=&limit=").await;
    assert_eq!(empty_values.body, first_page.body, "empty values count as absent");
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=bogus", "cursor=djE6cG9pbnRzOjM"] {
        app.get(&format!("/api/v1/products?{bad}")).await.assert_problem(400, "INVALID_REQUEST");
    }
}

#[tokio::test]
async fn a_campaign_cannot_be_issued_before_it_starts() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let now = chrono::Utc::now();
    let created = app
        .admin_post(
            "/api/v1/admin/coupons",
            &json!({"name": "later", "discountType": "FIXED", "discountValue": 100, "totalQuantity": 5,
                    "validFrom": now + chrono::Duration::hours(1), "validUntil": now + chrono::Duration::days(1)}),
        )
        .await;
    let coupon = created.body["couponId"].as_i64().unwrap();
    app.issue(coupon, user).await.assert_problem(409, "COUPON_NOT_YET_VALID");
    assert_eq!(
        app.scalar(&format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {coupon}")).await,
        5
    );
    assert_eq!(app.scalar("SELECT count(*) FROM user_coupons").await, 0, "no holder recorded");
}
