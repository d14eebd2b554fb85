//! `kill -9` of the real binary in the middle of charges, coupon issues, orders and
//! payments, then a restart on the same database: every invariant of the contract
//! (docs/API.md, "After a crash") is checked in SQL.

use std::process::Stdio;
use std::time::{Duration, Instant};

use adapter_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{ADMIN_TOKEN, USER_TOKEN_SECRET, client, eventually, token};

const PRODUCTS: i64 = 3;
const STOCK: i64 = 10_000;
const USERS: i64 = 40;

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(database_url: &str, port: u16) -> Child {
    start_with(database_url, port, &[])
}

fn start_with(database_url: &str, port: u16, vars: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ecommerce"))
        .arg("serve")
        .envs(vars.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AUTH_JWT_SECRET", USER_TOKEN_SECRET)
        .env("HTTP_WORKERS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn ready(base: &str) -> bool {
    let client = client();
    eventually(Duration::from_secs(30), async || {
        client.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await
}

/// A POST as the admin, or, with `user`, as that user.
async fn post_as(client: &reqwest::Client, user: Option<&Value>, url: String, body: Value) -> Option<Value> {
    let bearer = match user.and_then(Value::as_i64) {
        Some(user) => token(user),
        None => ADMIN_TOKEN.to_owned(),
    };
    let response = client.post(url).bearer_auth(bearer).json(&body).send().await.ok()?;
    response.json().await.ok()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Option<Value> {
    post_as(client, None, url, body).await
}

/// The trace id of the caller in the trace tests.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The user's payment of the order, sent in the caller's trace: the status.
async fn pay_in_the_callers_trace(client: &reqwest::Client, base: &str, user: &Value, order: &Value) -> u16 {
    let response = client
        .post(format!("{base}/api/v1/payments"))
        .bearer_auth(token(user.as_i64().unwrap()))
        .header("traceparent", format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01"))
        .json(&json!({"userId": user, "orderId": order}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Sends SIGTERM to `server`, as a supervisor stopping it does.
fn sigterm(server: &Child) {
    let pid = server.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// A user with 100 points and an unpaid order of one product at 10, created through
/// the API of the instance at `base`: (user id, order id).
async fn user_with_an_unpaid_order(client: &reqwest::Client, base: &str) -> (Value, Value) {
    let user =
        post(client, format!("{base}/api/v1/admin/users"), json!({"name": "u"})).await.unwrap()["userId"].clone();
    let product = post(client, format!("{base}/api/v1/admin/products"), json!({"name": "p", "price": 10, "stock": 5}))
        .await
        .unwrap()["productId"]
        .clone();
    post_as(client, Some(&user), format!("{base}/api/v1/points/{user}"), json!({"amount": 100})).await.unwrap();
    let order = post_as(
        client,
        Some(&user),
        format!("{base}/api/v1/orders"),
        json!({"userId": user, "items": [{"productId": product, "quantity": 1}]}),
    )
    .await
    .unwrap()["orderId"]
        .clone();
    (user, order)
}

pub async fn run() {
    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(db.url(), port);
    assert!(ready(&base).await, "the service starts");
    let client = client();

    let mut products = Vec::new();
    for _ in 0..PRODUCTS {
        let body = json!({"name": "p", "price": 100, "stock": STOCK});
        products.push(post(&client, format!("{base}/api/v1/admin/products"), body).await.unwrap()["productId"].clone());
    }
    let now = chrono::Utc::now();
    let coupon = post(
        &client,
        format!("{base}/api/v1/admin/coupons"),
        json!({"name": "c", "discountType": "FIXED", "discountValue": 10, "totalQuantity": 25,
               "validFrom": now - chrono::Duration::hours(1), "validUntil": now + chrono::Duration::days(1)}),
    )
    .await
    .unwrap()["couponId"]
        .clone();
    let mut users = Vec::new();
    for _ in 0..USERS {
        users.push(
            post(&client, format!("{base}/api/v1/admin/users"), json!({"name": "u"})).await.unwrap()["userId"].clone(),
        );
    }

    // Each user loops: charge, take the coupon, order, then pay it, cancel it, or pay it
    // and have the shop refund it — until the process dies.
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for (i, user) in users.iter().cloned().enumerate() {
        let (client, base, coupon) = (client.clone(), base.clone(), coupon.clone());
        let product = products[i % products.len()].clone();
        load.spawn(async move {
            for round in 0..200 {
                if started.elapsed() > Duration::from_secs(10) {
                    break;
                }
                let as_user = Some(&user);
                let charged =
                    post_as(&client, as_user, format!("{base}/api/v1/points/{user}"), json!({"amount": 1_000})).await;
                if charged.is_none() {
                    break;
                }
                let issue = format!("{base}/api/v1/coupons/{coupon}/issue");
                let _ = post_as(&client, as_user, issue, json!({"userId": user})).await;
                let order = post_as(
                    &client,
                    as_user,
                    format!("{base}/api/v1/orders"),
                    json!({"userId": user, "items": [{"productId": product, "quantity": 1}]}),
                )
                .await;
                let Some(order_id) = order.and_then(|o| o.get("orderId").cloned()) else { continue };
                if round % 3 == 1 {
                    let cancel = format!("{base}/api/v1/orders/{order_id}/cancel");
                    let _ = post_as(&client, as_user, cancel, json!({"userId": user})).await;
                    continue;
                }
                let pay = format!("{base}/api/v1/payments");
                let paid = post_as(&client, as_user, pay, json!({"userId": user, "orderId": order_id})).await;
                if round % 3 == 2 && paid.is_some_and(|p| p.get("paymentId").is_some()) {
                    let _ = post(&client, format!("{base}/api/v1/admin/orders/{order_id}/refund"), json!({})).await;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    while load.join_next().await.is_some() {}

    let paid_before = db_scalar(db.url(), "SELECT count(*) FROM payments").await;
    assert!(paid_before > 0, "the load did something before the kill");
    for status in ["CANCELLED", "REFUNDED"] {
        let ended = db_scalar(db.url(), &format!("SELECT count(*) FROM orders WHERE status = '{status}'")).await;
        assert!(ended > 0, "the load ended some orders {status} before the kill");
    }

    // Restart on the same database, then check every invariant.
    let mut restarted = start(db.url(), port);
    assert!(ready(&base).await, "the service restarts on the same database");
    for (what, sql) in [
        (
            "every balance equals its ledger",
            "SELECT count(*) FROM users u WHERE u.balance <> COALESCE((SELECT sum(CASE h.kind WHEN 'USE' \
             THEN -h.amount ELSE h.amount END) FROM point_history h WHERE h.user_id = u.id), 0)",
        ),
        (
            "stock plus reserved and sold equals what was stocked",
            &format!(
                "SELECT count(*) FROM products p WHERE p.stock + COALESCE((SELECT sum(l.quantity) FROM order_lines l \
                 JOIN orders o ON o.id = l.order_id WHERE l.product_id = p.id AND o.status IN ('NOT_PAID', 'PAID')), 0) \
                 <> {STOCK}"
            ),
        ),
        (
            "remaining quantity equals total minus holders",
            "SELECT count(*) FROM coupons c WHERE \
             (SELECT coalesce(sum(s.remaining), 0) FROM coupon_stock s WHERE s.coupon_id = c.id) <> c.total_quantity - \
             (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id)",
        ),
        (
            "no coupon stays used by an order that ended unpaid",
            "SELECT count(*) FROM user_coupons uc JOIN orders o ON o.id = uc.order_id \
             WHERE o.status IN ('FAILED', 'CANCELLED')",
        ),
        (
            "every PAID or REFUNDED order has exactly one payment and one USE entry",
            "SELECT count(*) FROM orders o WHERE o.status IN ('PAID', 'REFUNDED') AND ( \
             (SELECT count(*) FROM payments p WHERE p.order_id = o.id) <> 1 OR \
             (SELECT count(*) FROM point_history h WHERE h.order_id = o.id AND h.kind = 'USE') <> 1)",
        ),
        (
            "every REFUNDED order has exactly one REFUND entry, any other none",
            "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM point_history h \
             WHERE h.order_id = o.id AND h.kind = 'REFUND') <> (o.status = 'REFUNDED')::int",
        ),
        (
            "no payment or ledger entry for an order never paid",
            "SELECT count(*) FROM orders o WHERE o.status NOT IN ('PAID', 'REFUNDED') AND (EXISTS (SELECT 1 \
             FROM payments p WHERE p.order_id = o.id) OR EXISTS (SELECT 1 FROM point_history h WHERE h.order_id = o.id))",
        ),
    ] {
        assert_eq!(db_scalar(db.url(), sql).await, 0, "{what}");
    }
    // And it serves.
    let user = users[0].as_i64().unwrap();
    let charged = client
        .post(format!("{base}/api/v1/points/{user}"))
        .bearer_auth(token(user))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(charged.status(), 200);
    restarted.start_kill().unwrap();
    restarted.wait().await.unwrap();
}

async fn db_scalar(url: &str, sql: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})"))).get_result(&mut conn).await.unwrap()
}

/// A second SIGTERM during a graceful stop exits at once, with a non-zero status,
/// abandoning a request still in flight.
pub async fn second_signal() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&platform)
        .await;
    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let platform_url = platform.uri();
    let vars = [("DATA_PLATFORM_URL", platform_url.as_str()), ("DATA_PLATFORM_TIMEOUT_MS", "30000")];
    let mut server = start_with(db.url(), port, &vars);
    assert!(ready(&base).await);
    let client = client();
    let (user, order) = user_with_an_unpaid_order(&client, &base).await;
    // A payment that will wait 20 s on the platform.
    let paying = tokio::spawn({
        let (client, base, user) = (client.clone(), base.clone(), user.clone());
        async move {
            post_as(&client, Some(&user), format!("{base}/api/v1/payments"), json!({"userId": user, "orderId": order}))
                .await
        }
    });
    let in_flight = eventually(Duration::from_secs(5), async || {
        platform.received_requests().await.is_some_and(|received| !received.is_empty())
    })
    .await;
    assert!(in_flight, "the payment waits on the platform");

    let pid = server.id().unwrap().to_string();
    let term = || std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.try_wait().unwrap().is_none(), "the first signal waits for the payment");
    let sent = Instant::now();
    assert!(term().success());
    let status = tokio::time::timeout(Duration::from_secs(5), server.wait()).await.expect("exits at once").unwrap();
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(!status.success(), "a forced exit is not a clean one: {status:?}");
    paying.abort();
    assert_eq!(db_scalar(db.url(), "SELECT count(*) FROM payments").await, 0, "the abandoned payment left nothing");
}

/// A payment whose `ORDER_PAID` the platform holds, then `kill -9` of the process while
/// it waits, then a restart on the same database: the order expires unpaid and the
/// platform receives exactly one void for it (the send was recorded before it left),
/// and the balance is untouched.
pub async fn void_after_a_kill_during_the_send() {
    use wiremock::matchers::{body_partial_json, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let platform = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"type": "ORDER_PAID"})))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&platform)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let events = |kind: &'static str| {
        let platform = &platform;
        async move {
            let all = platform.received_requests().await.unwrap_or_default();
            all.into_iter().filter(|r| r.body_json::<Value>().is_ok_and(|b| b["type"] == kind)).collect::<Vec<_>>()
        }
    };

    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = platform.uri();
    let vars = [
        ("DATA_PLATFORM_URL", url.as_str()),
        ("DATA_PLATFORM_TIMEOUT_MS", "30000"),
        ("ORDER_PAYMENT_TIMEOUT_SECS", "3"),
        ("ORDER_EXPIRY_SWEEP_MS", "100"),
    ];
    let mut server = start_with(db.url(), port, &vars);
    assert!(ready(&base).await, "the service starts");
    let client = client();
    let user =
        post(&client, format!("{base}/api/v1/admin/users"), json!({"name": "kim"})).await.unwrap()["userId"].clone();
    let product =
        post(&client, format!("{base}/api/v1/admin/products"), json!({"name": "p", "price": 700, "stock": 5}))
            .await
            .unwrap()["productId"]
            .clone();
    let as_user = Some(&user);
    post_as(&client, as_user, format!("{base}/api/v1/points/{user}"), json!({"amount": 5_000})).await.unwrap();
    let order = post_as(
        &client,
        as_user,
        format!("{base}/api/v1/orders"),
        json!({"userId": user, "items": [{"productId": product, "quantity": 1}]}),
    )
    .await
    .unwrap()["orderId"]
        .as_i64()
        .unwrap();

    let paying = tokio::spawn({
        let (client, base, user) = (client.clone(), base.clone(), user.clone());
        async move {
            post_as(&client, Some(&user), format!("{base}/api/v1/payments"), json!({"userId": user, "orderId": order}))
                .await
        }
    });
    let sent = eventually(Duration::from_secs(10), async || !events("ORDER_PAID").await.is_empty()).await;
    assert!(sent, "the platform holds the payment's ORDER_PAID");
    server.start_kill().unwrap(); // SIGKILL, while the platform holds the request
    server.wait().await.unwrap();
    let _ = paying.await;

    let mut restarted = start_with(db.url(), port, &vars);
    assert!(ready(&base).await, "the service restarts on the same database");
    let voided = eventually(Duration::from_secs(20), async || events("ORDER_PAYMENT_VOIDED").await.len() == 1).await;
    assert!(voided, "the void reaches the platform once the order has expired");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let voids = events("ORDER_PAYMENT_VOIDED").await;
    assert_eq!(voids.len(), 1, "exactly one void");
    assert_eq!(voids[0].headers.get("idempotency-key").unwrap(), &format!("order-{order}-void"));
    assert_eq!(
        db_scalar(db.url(), &format!("SELECT count(*) FROM orders WHERE id = {order} AND status = 'FAILED'")).await,
        1
    );
    let balance = db_scalar(db.url(), &format!("SELECT balance FROM users WHERE id = {user}")).await;
    assert_eq!(balance, 5_000, "the balance is untouched");
    assert_eq!(db_scalar(db.url(), "SELECT count(*) FROM outbox").await, 0, "nothing left to send");
    restarted.start_kill().unwrap();
    restarted.wait().await.unwrap();
}

/// SIGTERM with a drain: for the drain, readiness answers 503 while every other request
/// is served on new connections as before; then the listener closes and the process
/// exits cleanly. The drain's end is what a load balancer waits for.
pub async fn drain_on_sigterm() {
    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_with(db.url(), port, &[("SHUTDOWN_DRAIN_MS", "1500")]);
    assert!(ready(&base).await);
    // A fresh connection per request: what matters is whether the listener accepts.
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let status = async |path: &str| fresh().get(format!("{base}{path}")).send().await.ok().map(|r| r.status().as_u16());

    let signalled = Instant::now();
    sigterm(&server);
    let unready = eventually(Duration::from_millis(500), async || status("/health/ready").await == Some(503)).await;
    assert!(unready, "readiness answers 503 at once");
    let mut rounds = 0;
    while signalled.elapsed() < Duration::from_millis(1_200) {
        assert_eq!(status("/api/v1/products").await, Some(200), "served during the drain");
        assert_eq!(status("/health/live").await, Some(200));
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rounds >= 5, "{rounds} rounds of requests in the drain");
    assert!(server.try_wait().unwrap().is_none(), "still running within the drain");

    let exit = tokio::time::timeout(Duration::from_secs(10), server.wait()).await.expect("stops after the drain");
    assert!(exit.unwrap().success(), "a drained stop is a clean one");
    assert!(signalled.elapsed() >= Duration::from_millis(1_500), "not before the drain ended");
    assert!(status("/health/live").await.is_none(), "the listener is closed");
}

/// Every log line written while a request is handled carries its trace id — those of
/// the HTTP layer and those of the use case, which runs on another runtime — and the
/// logs are plain JSON, without terminal colour codes, when they go to a pipe.
pub async fn logs_carry_the_trace() {
    use tokio::io::AsyncReadExt;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&platform).await;
    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ecommerce"))
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AUTH_JWT_SECRET", USER_TOKEN_SECRET)
        .env("DATA_PLATFORM_URL", platform.uri())
        .env("SHUTDOWN_DRAIN_MS", "0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(ready(&base).await);
    let client = client();
    let (user, order) = user_with_an_unpaid_order(&client, &base).await;
    // The platform refuses with a 500: the payment is rolled back, with warnings logged
    // by the use case (main runtime) and by the data platform's adapter.
    assert_eq!(pay_in_the_callers_trace(&client, &base, &user, &order).await, 503);
    sigterm(&server);
    let mut output = String::new();
    let mut stdout = server.stdout.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut output)).await.unwrap().unwrap();
    let _ = server.wait().await;

    assert!(!output.contains('\u{1b}'), "no terminal colour codes in piped logs");
    let lines: Vec<Value> =
        output.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let traced: Vec<&Value> = lines.iter().filter(|line| line.to_string().contains(CALLER_TRACE)).collect();
    let warnings: Vec<&&Value> = traced.iter().filter(|line| line["level"] == "WARN").collect();
    assert!(
        warnings.iter().any(|line| line["target"].as_str().is_some_and(|t| t.starts_with("adapter_data_platform"))),
        "the data platform adapter's warning carries the trace: {traced:#?}\n{output}"
    );
    // Every line written inside a request's span carries a trace id.
    for line in &lines {
        let in_request =
            line["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["name"] == "HTTP request"));
        if in_request {
            let id = line["spans"][0]["trace_id"].as_str().unwrap_or_default();
            assert_eq!(id.len(), 32, "{line}");
        }
    }
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans of a request — the request, its use
/// case, its SQL statements — reach an OTLP/HTTP receiver in the caller's trace, and the
/// span the data platform is told is the parent of its event is one of them.
pub async fn spans_exported_over_otlp() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let receiver = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/traces")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let platform = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let db = TestDatabase::new().await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (receiver_url, platform_url) = (receiver.uri(), platform.uri());
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver_url.as_str()),
        ("DATA_PLATFORM_URL", platform_url.as_str()),
        ("SHUTDOWN_DRAIN_MS", "0"),
    ];
    let mut server = start_with(db.url(), port, &vars);
    assert!(ready(&base).await);
    let client = client();
    let (user, order) = user_with_an_unpaid_order(&client, &base).await;
    assert_eq!(pay_in_the_callers_trace(&client, &base, &user, &order).await, 201);
    // Stopping flushes what the exporter still buffers.
    sigterm(&server);
    let exit = tokio::time::timeout(Duration::from_secs(15), server.wait()).await.expect("stops").unwrap();
    assert!(exit.success());

    let exports = receiver.received_requests().await.unwrap_or_default();
    assert!(!exports.is_empty(), "spans were exported");
    assert!(exports.iter().all(|r| r.headers.get("content-type").is_some_and(|v| v == "application/x-protobuf")));
    let body: Vec<u8> = exports.iter().flat_map(|r| r.body.clone()).collect();
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let bytes = |hex: &str| -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    };
    assert!(contains(&bytes(CALLER_TRACE)), "the request's spans are in the caller's trace");
    for name in [&b"POST /api/v1/payments"[..], b"execute_keyed", b"statement", b"ecommerce"] {
        assert!(contains(name), "a span or resource named {:?} was exported", String::from_utf8_lossy(name));
    }
    let sent = platform.received_requests().await.unwrap_or_default();
    let header = sent[0].headers.get("traceparent").unwrap().to_str().unwrap().to_owned();
    let parent = header.split('-').nth(2).unwrap().to_owned();
    assert!(contains(&bytes(&parent)), "the platform's parent span {parent} is an exported span");
}
