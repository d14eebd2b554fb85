use serde_json::json;

use crate::helpers::{TestApp, all, count_status, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_simultaneous_charges_stop_exactly_at_the_cap() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let replies = all((0..60).map(|_| app.charge(user, 100_000))).await;
    assert_eq!(count_status(&replies, 200), 50);
    assert_eq!(count_status(&replies, 409), 10);
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.code() == "BALANCE_LIMIT_EXCEEDED"));
    assert_eq!(app.balance(user).await, 5_000_000);
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM point_history WHERE user_id = {user}")).await, 50);
    assert_eq!(
        app.scalar(&format!("SELECT max(balance_after) FROM point_history WHERE user_id = {user}")).await,
        5_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hundred_charges_over_twenty_users_lose_no_update() {
    let app = TestApp::spawn().await;
    let users = app.bulk_users(20, 0).await;
    let replies = all((0..400).map(|i| app.charge(users[i % 20], 1))).await;
    assert_eq!(count_status(&replies, 200), 400);
    for user in users {
        assert_eq!(app.balance(user).await, 20, "user {user}");
        assert_eq!(app.scalar(&format!("SELECT count(*) FROM point_history WHERE user_id = {user}")).await, 20);
    }
}

#[tokio::test]
async fn charge_limits_are_inclusive_and_rejections_write_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let reply = app.charge(user, 1_000_000).await;
    assert_eq!((reply.status, reply.body["balance"].as_i64()), (200, Some(1_000_000)));
    assert_eq!(reply.body["userId"].as_i64(), Some(user));
    app.charge(user, 1_000_001).await.assert_problem(400, "CHARGE_LIMIT_EXCEEDED");
    for _ in 0..4 {
        assert_eq!(app.charge(user, 1_000_000).await.status, 200);
    }
    app.charge(user, 1).await.assert_problem(409, "BALANCE_LIMIT_EXCEEDED");
    assert_eq!(app.balance(user).await, 5_000_000);
    assert_eq!(
        app.scalar(&format!("SELECT count(*) FROM point_history WHERE user_id = {user}")).await,
        5,
        "rejected charges leave no row"
    );
}

#[tokio::test]
async fn malformed_charges_get_the_contract_codes() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let path = format!("/api/v1/points/{user}");
    for body in [
        json!({}),
        json!({"amount": null}),
        json!({"amount": "100"}),
        json!({"amount": 1.5}),
        json!({"amount": 0}),
        json!({"amount": -5}),
        json!({"amount": 1e30}),
    ] {
        app.post(&path, &body).await.assert_problem(400, "INVALID_AMOUNT");
    }
    app.post(&path, &json!({"amount": i64::MAX})).await.assert_problem(400, "CHARGE_LIMIT_EXCEEDED");
    app.post(&path, &json!({"amount": u64::MAX})).await.assert_problem(400, "CHARGE_LIMIT_EXCEEDED");
    let beyond_64_bits =
        app.client.post(app.url(&path)).bearer_auth(token(user)).header("content-type", "application/json");
    app.send(beyond_64_bits.body(r#"{"amount": 18446744073709551616}"#)).await.assert_problem(400, "INVALID_AMOUNT");
    for bad in ["-1", "abc", "0", "1.5", "99999999999999999999"] {
        app.post(&format!("/api/v1/points/{bad}"), &json!({"amount": 1})).await.assert_problem(400, "INVALID_USER_ID");
        let bad_body = app
            .client
            .post(app.url(&format!("/api/v1/points/{bad}")))
            .bearer_auth(token(user))
            .header("content-type", "application/json");
        app.send(bad_body.body("{not json")).await.assert_problem(400, "INVALID_USER_ID");
        app.get(&format!("/api/v1/points/{bad}")).await.assert_problem(400, "INVALID_USER_ID");
    }
    app.charge(user + 1_000, 10).await.assert_problem(404, "USER_NOT_FOUND");
    app.get(&format!("/api/v1/points/{}", user + 1_000)).await.assert_problem(404, "USER_NOT_FOUND");
    assert_eq!(app.scalar("SELECT count(*) FROM point_history").await, 0);
    assert_eq!(app.balance(user).await, 0);
}

#[tokio::test]
async fn history_pages_newest_first() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    for amount in 1..=5 {
        assert_eq!(app.charge(user, amount).await.status, 200);
    }
    let first = app.get(&format!("/api/v1/points/{user}/history?limit=2")).await;
    assert_eq!(first.status, 200);
    let amounts = |reply: &crate::helpers::Reply| -> Vec<i64> {
        reply.body["items"].as_array().unwrap().iter().map(|e| e["amount"].as_i64().unwrap()).collect()
    };
    assert_eq!(amounts(&first), vec![5, 4]);
    assert_eq!(first.body["items"][0]["type"], "CHARGE");
    assert_eq!(first.body["items"][0]["balanceAfter"], 15);
    assert!(first.body["items"][0]["orderId"].is_null());
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let rest = app.get(&format!("/api/v1/points/{user}/history?limit=10&cursor={cursor}")).await;
    assert_eq!(amounts(&rest), vec![3, 2, 1]);
    assert!(rest.body["nextCursor"].is_null());
    let empty_values = app.get(&format!("/api/v1/points/{user}/history?cursor=&limit=")).await;
    assert_eq!(amounts(&empty_values), vec![5, 4, 3, 2, 1], "empty values count as absent");
    app.get(&format!("/api/v1/points/{user}/history?cursor=bogus")).await.assert_problem(400, "INVALID_REQUEST");
    app.get(&format!("/api/v1/points/{user}/history?limit=0")).await.assert_problem(400, "INVALID_REQUEST");
}
