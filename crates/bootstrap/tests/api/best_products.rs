use std::time::Duration;

use chrono::{Days, Utc};
use chrono_tz::Asia::Seoul;

use serde_json::json;

use crate::helpers::{TestApp, eventually};

#[tokio::test]
async fn the_ranking_counts_paid_orders_of_the_window_only() {
    let app = TestApp::spawn().await;
    let before = app.get("/api/v1/products/best").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["items"].as_array().map(Vec::len), Some(0), "nothing sold yet");

    let buyer = app.create_user().await;
    assert_eq!(app.charge(buyer, 1_000_000).await.status, 200);
    let products: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..7 {
            ids.push(app.create_product(100, 100).await);
        }
        ids
    };
    let buy = async |lines: &[(i64, i64)], pay: bool| {
        let order = app.order(buyer, None, lines).await;
        assert_eq!(order.status, 201, "{}", order.body);
        if pay {
            assert_eq!(app.pay(buyer, order.body["orderId"].as_i64().unwrap()).await.status, 201);
        }
    };
    // Paid: p0 × 5, p1 × 3, p2 × 3 (tie: lower id first), p3 × 1, p4 × 2, p5 × 1.
    buy(&[(products[0], 2), (products[1], 3)], true).await;
    buy(&[(products[0], 3), (products[2], 3), (products[3], 1)], true).await;
    buy(&[(products[4], 2), (products[5], 1)], true).await;
    // Not paid: never counts.
    buy(&[(products[6], 50)], false).await;
    // Paid, then refunded before the ranking is computed: no longer counts.
    let refunded = app.order(buyer, None, &[(products[5], 20)]).await.body["orderId"].as_i64().unwrap();
    assert_eq!(app.pay(buyer, refunded).await.status, 201);
    let refund = app.admin_post(&format!("/api/v1/admin/orders/{refunded}/refund"), &json!({})).await;
    assert_eq!(refund.status, 200, "{}", refund.body);
    // Only ended windows are ranked: these sales move to yesterday, inside the window
    // that ended at today's midnight.
    app.execute(YESTERDAY).await;

    let today = Utc::now().with_timezone(&Seoul).date_naive();
    let refreshed = app.refresh_best_products(&today.to_string()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let best = app.get("/api/v1/products/best").await;
    assert_eq!(best.body, refreshed.body, "the stored snapshot is served");
    let items = best.body["items"].as_array().unwrap();
    let ranked: Vec<(i64, i64, i64)> = items
        .iter()
        .map(|i| (i["rank"].as_i64().unwrap(), i["productId"].as_i64().unwrap(), i["soldQuantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        ranked,
        vec![(1, products[0], 5), (2, products[1], 3), (3, products[2], 3), (4, products[4], 2), (5, products[3], 1)]
    );
    assert_eq!(items[0]["price"], 100);
    assert_eq!(items[0]["stock"], 95);
    let to = chrono::DateTime::parse_from_rfc3339(best.body["to"].as_str().unwrap()).unwrap();
    let from = chrono::DateTime::parse_from_rfc3339(best.body["from"].as_str().unwrap()).unwrap();
    assert_eq!(to.with_timezone(&Seoul).date_naive(), today);
    assert_eq!(to.with_timezone(&Seoul).time(), chrono::NaiveTime::MIN, "a Seoul midnight");
    assert_eq!(to - from, chrono::Duration::days(3));

    // A window that ended before these sales ranks nothing, and is not the latest.
    let long_ago = app.refresh_best_products("2020-01-01").await;
    assert_eq!(long_ago.body["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(app.get("/api/v1/products/best").await.body, refreshed.body);
}

#[tokio::test]
async fn refresh_is_an_admin_operation_with_a_valid_date() {
    let app = TestApp::spawn().await;
    app.post("/api/v1/admin/best-products/refresh", &serde_json::json!({})).await.assert_problem(401, "UNAUTHORIZED");
    let bad = app.refresh_best_products("2026-13-01").await;
    bad.assert_problem(400, "INVALID_REQUEST");
    let ancient = app.refresh_best_products("-5000-01-01").await;
    ancient.assert_problem(400, "INVALID_REQUEST");
    let today = app.refresh_best_products("").await;
    assert_eq!(today.status, 200, "an empty date is today's window: {}", today.body);
    let to = chrono::DateTime::parse_from_rfc3339(today.body["to"].as_str().unwrap()).unwrap();
    assert_eq!(to.with_timezone(&Seoul).date_naive(), Utc::now().with_timezone(&Seoul).date_naive());
    // A window that has not ended cannot be ranked.
    let tomorrow = Utc::now().with_timezone(&Seoul).date_naive().checked_add_days(Days::new(1)).unwrap();
    app.refresh_best_products(&tomorrow.to_string()).await.assert_problem(400, "INVALID_REQUEST");
    assert_eq!(app.scalar("SELECT count(*) FROM best_product_snapshots").await, 1, "only today's window is stored");
}

#[tokio::test]
async fn a_stored_window_that_has_not_ended_is_never_served() {
    let app = TestApp::spawn().await;
    let today = app.refresh_best_products("").await;
    assert_eq!(today.status, 200);
    // A snapshot of a future window, as an older version could store.
    app.execute(
        "INSERT INTO best_product_snapshots (window_from, window_to, calculated_at) \
         VALUES ('2029-12-29', '2030-01-01', now())",
    )
    .await;
    let best = app.get("/api/v1/products/best").await;
    assert_eq!(best.body["to"], today.body["to"], "the latest ended window is served");
}

/// Moves every paid order of the test a day back, sales included.
const YESTERDAY: &str = "UPDATE orders SET created_at = created_at - interval '1 day', \
    expires_at = expires_at - interval '1 day', paid_at = paid_at - interval '1 day' WHERE paid_at IS NOT NULL";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_serves_a_refresh_within_a_second() {
    let app = TestApp::spawn().await;
    let (second, second_handle, second_stopped) = TestApp::start_on(app.db.url(), &[]).await;
    let from_second = async || {
        let reply = app.client.get(format!("{second}/api/v1/products/best")).send().await.unwrap();
        reply.json::<serde_json::Value>().await.unwrap()
    };
    assert_eq!(from_second().await["items"].as_array().map(Vec::len), Some(0), "read and kept by the second");

    let buyer = app.create_user().await;
    assert_eq!(app.charge(buyer, 1_000).await.status, 200);
    let product = app.create_product(100, 10).await;
    let order = app.order(buyer, None, &[(product, 2)]).await.body["orderId"].as_i64().unwrap();
    assert_eq!(app.pay(buyer, order).await.status, 201);
    app.execute(YESTERDAY).await;
    let refreshed = app.refresh_best_products("").await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(app.get("/api/v1/products/best").await.body, refreshed.body, "the refreshing instance at once");

    let caught_up = eventually(Duration::from_secs(3), async || from_second().await == refreshed.body).await;
    assert!(caught_up, "the other instance once its copy is a second old");
    second_handle.stop(true).await;
    second_stopped.await.unwrap().unwrap();
}
