//! Fault tests: a data platform that hangs, a row locked from outside, an order that
//! cannot be expired, a database that goes silent, and `kill -9` under load. Each
//! uses its own database (and, where it needs one, its own TCP proxy or server
//! process), bounds its loops in count and time, and targets loopback only. They run
//! one at a time (a lock below), so that no latency they measure is taken under
//! another fault test's load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

// Shared with the `api` test binary, which uses other parts of them.
#[allow(dead_code)]
#[path = "../api/contract.rs"]
mod contract;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod kill;
mod proxy;

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, eventually, token};
use crate::proxy::Proxy;

/// One fault test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A user created through the admin API of the instance at `address`.
async fn new_user(client: &reqwest::Client, address: &str) -> i64 {
    let reply = client
        .post(format!("{address}/api/v1/admin/users"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .json(&json!({"name": "kim"}))
        .send()
        .await
        .unwrap();
    reply.json::<serde_json::Value>().await.unwrap()["userId"].as_i64().unwrap()
}

/// The `q`-quantile of `samples` (sorted in place).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1);
    samples[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_data_platform_costs_payments_only_and_payments_recover_without_a_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let platform = MockServer::start().await;
    // Accepts and never answers in time.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&platform)
        .await;
    let app = TestApp::spawn_with(&[
        ("DATA_PLATFORM_URL", &platform.uri()),
        ("DATA_PLATFORM_TIMEOUT_MS", "2000"),
        ("DATA_PLATFORM_BREAKER_COOLDOWN_MS", "2000"),
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    let product = app.create_product(100, 1_000).await;
    let users = app.bulk_users(90, 0).await;
    let mut orders = Vec::new();
    for user in &users {
        assert_eq!(app.charge(*user, 10_000).await.status, 200);
        orders.push((*user, app.order(*user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap()));
    }
    let reader = users[0];

    // 15 payments a second for 6 seconds, with reads beside them.
    let started = Instant::now();
    let payments = async {
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / 15));
        for (user, order) in orders.iter().copied().take(90) {
            tick.tick().await;
            sent.push(tokio::spawn({
                let client = app.client.clone();
                let url = app.url("/api/v1/payments");
                async move {
                    let at = Instant::now();
                    let response = client
                        .post(url)
                        .bearer_auth(token(user))
                        .json(&json!({"userId": user, "orderId": order}))
                        .send()
                        .await
                        .unwrap();
                    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap();
                    (status, body["code"].as_str().unwrap_or_default().to_owned(), retry_after, at.elapsed())
                }
            }));
        }
        let mut outcomes = Vec::new();
        for payment in sent {
            outcomes.push(payment.await.unwrap());
        }
        outcomes
    };
    let reads = async {
        let mut latencies = Vec::new();
        let paths = ["/api/v1/products".to_owned(), format!("/api/v1/points/{reader}"), "/health/ready".to_owned()];
        while started.elapsed() < Duration::from_secs(6) {
            for path in &paths {
                let at = Instant::now();
                let response = app.client.get(app.url(path)).bearer_auth(token(reader)).send().await.unwrap();
                latencies.push(at.elapsed());
                assert_eq!(response.status(), 200, "{path} while the platform hangs");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies
    };
    let (outcomes, mut latencies) = tokio::join!(payments, reads);

    assert!(latencies.len() > 100, "{} reads", latencies.len());
    let p99 = quantile(&mut latencies, 0.99);
    assert!(p99 < Duration::from_millis(500), "reads beside a hanging platform: p99 {p99:?}");
    for (status, code, retry_after, took) in &outcomes {
        assert_eq!((*status, code.as_str()), (503, "DATA_PLATFORM_UNAVAILABLE"));
        assert!(retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "{retry_after:?}");
        assert!(*took < Duration::from_secs(3), "a payment answered after {took:?} (timeout 2 s + 1 s)");
    }
    assert_eq!(app.scalar("SELECT count(*) FROM payments").await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM point_history WHERE kind = 'USE'").await, 0);
    assert_eq!(app.scalar("SELECT count(*) FROM users WHERE balance <> 10000").await, 0, "balances untouched");

    // The platform answers again: a payment succeeds within 15 s, without a restart.
    platform.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&platform).await;
    let (user, order) = orders[0];
    let paid = eventually(Duration::from_secs(15), async || app.pay(user, order).await.status == 201).await;
    assert!(paid, "payments succeed again once the platform answers");
    assert_eq!(app.balance(user).await, 9_900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_locked_from_outside_answers_503_within_the_lock_timeout_and_writes_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(&[("DATABASE_LOCK_TIMEOUT_MS", "500")]).await;
    a_locked_row_answers_503_and_writes_nothing(&app).await;
}

/// The locale the localized server speaks; `make setup` generates it as root.
const FOREIGN_LOCALE: &str = "de_DE.UTF-8";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_whose_messages_are_in_german_gives_the_same_answers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = adapter_postgres::testing::TestDatabase::new().await.unwrap();
    let mut admin = AsyncPgConnection::establish(db.url()).await.unwrap();
    let localized =
        admin.batch_execute(&format!("ALTER DATABASE {} SET lc_messages = '{FOREIGN_LOCALE}'", db.name())).await;
    if let Err(error) = localized {
        eprintln!(
            "SKIPPED a_server_whose_messages_are_in_german_gives_the_same_answers: the server cannot use \
             {FOREIGN_LOCALE} ({error}); `make setup` run as root generates it"
        );
        return;
    }
    // Sessions opened from now on read German; check that the server really speaks it.
    let mut session = AsyncPgConnection::establish(db.url()).await.unwrap();
    let message = session.batch_execute("SELECT 1/0").await.unwrap_err().to_string();
    assert!(message.to_lowercase().contains("division durch null"), "the server answers in German: {message}");

    let app = TestApp::spawn_on(db, &[("DATABASE_LOCK_TIMEOUT_MS", "500")]).await;
    a_locked_row_answers_503_and_writes_nothing(&app).await;
}

/// A product row locked by another session: an order of it answers 503
/// `SERVICE_UNAVAILABLE` within the lock timeout (500 ms here) and writes nothing,
/// while the rest of the service works.
async fn a_locked_row_answers_503_and_writes_nothing(app: &TestApp) {
    let user = app.create_user().await;
    let locked = app.create_product(100, 10).await;
    let free = app.create_product(100, 10).await;
    assert_eq!(app.charge(user, 1_000).await.status, 200);

    // Another session holds the product's row.
    let mut holder = AsyncPgConnection::establish(app.db.url()).await.unwrap();
    holder.batch_execute(&format!("BEGIN; SELECT * FROM products WHERE id = {locked} FOR UPDATE;")).await.unwrap();

    let at = Instant::now();
    let refused = app.order(user, None, &[(locked, 1)]).await;
    let took = at.elapsed();
    refused.assert_problem(503, "SERVICE_UNAVAILABLE");
    assert!(took < Duration::from_millis(2_500), "answered after {took:?} (lock timeout 500 ms)");
    assert_eq!(app.scalar("SELECT count(*) FROM orders").await, 0, "nothing written");
    assert_eq!(app.stock(locked).await, 10);

    // Others are unaffected meanwhile.
    assert_eq!(app.order(user, None, &[(free, 1)]).await.status, 201);
    assert_eq!(app.charge(user, 1).await.status, 200);
    assert_eq!(app.get("/api/v1/products").await.status, 200);
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(app.order(user, None, &[(locked, 1)]).await.status, 201, "the product is orderable once released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_that_cannot_be_expired_does_not_stop_the_others_from_expiring() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(&[("ORDER_PAYMENT_TIMEOUT_SECS", "1"), ("ORDER_EXPIRY_SWEEP_MS", "100")]).await;
    let user = app.create_user().await;
    let product = app.create_product(100, 10).await;
    let broken = app.order(user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap();
    let fine = app.order(user, None, &[(product, 2)]).await.body["orderId"].as_i64().unwrap();
    // The oldest order cannot be failed: a trigger refuses any update of it.
    app.execute(&format!(
        "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'order % is broken', OLD.id; END $$; \
         CREATE TRIGGER broken_order BEFORE UPDATE ON orders FOR EACH ROW \
         WHEN (OLD.id = {broken}) EXECUTE FUNCTION refuse_update();"
    ))
    .await;

    let expired = eventually(Duration::from_secs(10), async || {
        app.scalar(&format!("SELECT count(*) FROM orders WHERE id = {fine} AND status = 'FAILED'")).await == 1
    })
    .await;
    assert!(expired, "the other order expired");
    assert_eq!(app.stock(product).await, 9, "only the expired order's stock came back");
    assert_eq!(
        app.scalar(&format!("SELECT count(*) FROM orders WHERE id = {broken} AND status = 'NOT_PAID'")).await,
        1
    );
    let metrics = app.get("/metrics").await.body;
    let failures = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("order_expiry_failures_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(failures >= 1.0, "the failure is counted");

    // Once it can be expired, a later pass does.
    app.execute("DROP TRIGGER broken_order ON orders").await;
    let retried = eventually(Duration::from_secs(10), async || {
        app.scalar(&format!("SELECT count(*) FROM orders WHERE id = {broken} AND status = 'FAILED'")).await == 1
    })
    .await;
    assert!(retried, "the broken order is retried by a later pass");
    assert_eq!(app.stock(product).await, 10);
}

/// An instance on a database of its own reached through a [`Proxy`], with
/// `DATABASE_STATEMENT_TIMEOUT_MS` as given: the database (dropped last), the proxy,
/// and what [`TestApp::start_on`] returns.
async fn behind_a_proxy(
    statement_timeout_ms: &str,
) -> (
    adapter_postgres::testing::TestDatabase,
    Proxy,
    (String, actix_web::dev::ServerHandle, tokio::task::JoinHandle<anyhow::Result<()>>),
) {
    let db = adapter_postgres::testing::TestDatabase::new().await.unwrap();
    let url = url::Url::parse(db.url()).unwrap();
    let proxy = Proxy::start(url.port().unwrap_or(5432)).await;
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let app = TestApp::start_on(via_proxy.as_str(), &[("DATABASE_STATEMENT_TIMEOUT_MS", statement_timeout_ms)]).await;
    (db, proxy, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_database_answers_503_promptly_and_the_service_recovers_once_it_heals() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The pool's own wait stays at its default (5 s): the request's deadline covers it.
    let (_db, proxy, (address, handle, stopped)) = behind_a_proxy("2000").await;
    let client = crate::helpers::client();
    let user = new_user(&client, &address).await;
    let charge = async || {
        let at = Instant::now();
        let response = client
            .post(format!("{address}/api/v1/points/{user}"))
            .bearer_auth(token(user))
            .json(&json!({"amount": 10}))
            .send()
            .await
            .unwrap();
        answer(response, at).await
    };
    let get = async |path: &str| {
        let at = Instant::now();
        let response = client.get(format!("{address}{path}")).bearer_auth(token(user)).send().await.unwrap();
        answer(response, at).await
    };
    assert_eq!(charge().await.0, 200);

    proxy.silence();
    // One deadline per request, the pool wait included: statement timeout 2 s + 1 s,
    // answered within 3.5 s.
    let bound = Duration::from_millis(3_500);
    let replies = [charge().await, get("/api/v1/products").await, get(&format!("/api/v1/points/{user}")).await];
    for (i, (status, code, retry_after, took)) in replies.into_iter().enumerate() {
        assert_eq!(status, 503);
        // A read changes nothing; the charge's statement may have been sent before the
        // silence (then its outcome is unknown) or not (then nothing changed).
        let codes: &[&str] =
            if i == 0 { &["OUTCOME_UNKNOWN", "SERVICE_UNAVAILABLE"] } else { &["SERVICE_UNAVAILABLE"] };
        assert!(codes.contains(&code.as_str()), "reply {i}: {code}");
        assert!(retry_after, "a 503 says when to retry");
        assert!(took < bound, "answered after {took:?}");
    }
    let (status, _, _, took) = get("/health/ready").await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "readiness answered after {took:?}");

    proxy.heal();
    let recovered = eventually(Duration::from_secs(10), async || charge().await.0 == 200).await;
    assert!(recovered, "charges succeed again without a restart");
    assert_eq!(get("/health/ready").await.0, 200);
    handle.stop(true).await;
    stopped.await.unwrap().unwrap();
}

/// A response's status, problem code (empty if none), whether it says when to retry,
/// and how long it took since `at`.
async fn answer(response: reqwest::Response, at: Instant) -> (u16, String, bool, Duration) {
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned(), retry_after, at.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadline_while_a_write_or_its_commit_is_in_flight_answers_outcome_unknown_and_closes_that_connection() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The request's deadline: 1 s statement timeout + 1 s.
    let (_db, proxy, (address, handle, stopped)) = behind_a_proxy("1000").await;
    let client = crate::helpers::client();
    let user = new_user(&client, &address).await;
    let charge = async |amount: i64, key: Option<&str>| {
        let at = Instant::now();
        let mut request = client
            .post(format!("{address}/api/v1/points/{user}"))
            .bearer_auth(token(user))
            .json(&json!({"amount": amount}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        (answer(response, at).await, replayed)
    };
    let balance = async || {
        let response =
            client.get(format!("{address}/api/v1/points/{user}")).bearer_auth(token(user)).send().await.unwrap();
        response.json::<serde_json::Value>().await.unwrap()["balance"].as_i64().unwrap()
    };
    let closed_by_the_service =
        async |held: usize| eventually(Duration::from_secs(5), async || proxy.held() == (held, held)).await;

    // The one-statement charge runs in autocommit mode: the server applies it, its
    // answer never comes back. (Its amount's eight bytes mark it.)
    proxy.hold_answers_to(&[&123_457_i64.to_be_bytes()]);
    let ((status, code, retry_after, took), _) = charge(123_457, None).await;
    assert_eq!((status, code.as_str()), (503, "OUTCOME_UNKNOWN"));
    assert!(retry_after, "says when to retry");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert!(closed_by_the_service(1).await, "the connection is closed, not reused: {:?}", proxy.held());
    assert_eq!(balance().await, 123_457, "applied after all: the outcome was unknown, not nothing");

    // A keyed charge whose COMMIT's answer is held: unknown too; the retry with its key
    // answers what was committed, without applying it again.
    proxy.hold_answers_to(&[b"held-commit", b"COMMIT"]);
    let ((status, code, _, _), _) = charge(50, Some("held-commit")).await;
    assert_eq!((status, code.as_str()), (503, "OUTCOME_UNKNOWN"));
    assert!(closed_by_the_service(2).await, "the connection is closed, not reused: {:?}", proxy.held());
    let ((status, _, _, _), replayed) = charge(50, Some("held-commit")).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(balance().await, 123_507, "applied exactly once");

    // A statement inside a transaction whose answer is held: the connection's close
    // rolls it back, so nothing was changed, and the answer says so.
    proxy.hold_answers_to(&[b"held-claim"]);
    let ((status, code, _, _), _) = charge(70, Some("held-claim")).await;
    assert_eq!((status, code.as_str()), (503, "SERVICE_UNAVAILABLE"));
    assert!(closed_by_the_service(3).await, "the connection is closed, not reused: {:?}", proxy.held());
    assert_eq!(balance().await, 123_507, "nothing was changed");
    assert_eq!(charge(70, Some("held-claim")).await.0.0, 200, "the key is free: the retry runs");
    assert_eq!(balance().await, 123_577);
    handle.stop(true).await;
    stopped.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_readiness_first_serving_everything_else_then_stops_cleanly() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::drain_on_sigterm().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_log_line_of_a_request_carries_its_trace_id_and_piped_logs_have_no_colour_codes() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::logs_carry_the_trace().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_an_otlp_endpoint_the_spans_of_a_request_are_exported_in_its_trace() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::spans_exported_over_otlp().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_stop_signal_exits_at_once_abandoning_what_is_in_flight() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::second_signal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_mixed_load_then_a_restart_leaves_every_invariant_intact() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_while_the_platform_holds_a_payment_is_followed_by_exactly_one_void_after_the_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    kill::void_after_a_kill_during_the_send().await;
}

/// A data platform on loopback that answers every request after `delay`, and counts the
/// most requests it held at once.
async fn slow_platform(delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let held = most.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (now, most) = (now.clone(), most.clone());
            tokio::spawn(async move {
                // The request: its head, then as many bytes as its Content-Length says.
                let mut request = Vec::new();
                let mut buffer = [0; 4096];
                loop {
                    let Ok(read) = stream.read(&mut buffer).await else { return };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let holding = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(holding, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_give_up_on_slow_payments_never_let_more_than_the_bulkhead_reach_the_platform() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (url, most) = slow_platform(Duration::from_secs(4)).await;
    let app = TestApp::spawn_with(&[
        ("DATA_PLATFORM_URL", &url),
        ("DATA_PLATFORM_TIMEOUT_MS", "6000"),
        ("DATA_PLATFORM_MAX_IN_FLIGHT", "2"),
        ("DATABASE_POOL_SIZE", "12"),
    ])
    .await;
    let product = app.create_product(100, 1_000).await;
    let users = app.bulk_users(12, 10_000).await;
    let mut orders = Vec::new();
    for user in &users {
        orders.push(app.order(*user, None, &[(product, 1)]).await.body["orderId"].as_i64().unwrap());
    }
    // Impatient clients: each gives up after 300 ms and drops its connection.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    for wave in users.chunks(4).zip(orders.chunks(4)) {
        let sends = wave.0.iter().zip(wave.1).map(|(user, order)| {
            impatient
                .post(app.url("/api/v1/payments"))
                .bearer_auth(token(*user))
                .json(&json!({"userId": user, "orderId": order}))
                .send()
        });
        let replies = futures::future::join_all(sends).await;
        assert!(replies.iter().all(Result::is_err), "every client gave up before its answer");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // Let every payment still running end.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(held >= 1, "payments reached the platform");
    assert!(held <= 2, "the platform held {held} sends at once; the bulkhead allows 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_under_load_answers_503_with_retry_after_and_the_service_recovers_by_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = adapter_postgres::testing::TestDatabase::new().await.unwrap();
    let url = url::Url::parse(db.url()).unwrap();
    let mut proxy = Proxy::start(url.port().unwrap_or(5432)).await;
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let (address, handle, stopped) = TestApp::start_on(via_proxy.as_str(), &[]).await;
    let client = crate::helpers::client();
    let get = async |path: &str| client.get(format!("{address}{path}")).send().await.unwrap();
    assert_eq!(get("/health/ready").await.status(), 200);
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(new_user(&client, &address).await);
    }

    // Charges keep coming while the database goes away and comes back.
    let stop_load = tokio_util::sync::CancellationToken::new();
    let load = {
        let (client, address, users, stop) = (client.clone(), address.clone(), users.clone(), stop_load.clone());
        tokio::spawn(async move {
            let mut replies = Vec::new();
            for round in 0..2_000 {
                if stop.is_cancelled() {
                    break;
                }
                let user = users[round % users.len()];
                let response = client
                    .post(format!("{address}/api/v1/points/{user}"))
                    .bearer_auth(token(user))
                    .json(&json!({"amount": 1}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                replies.push((Instant::now(), response.status().as_u16(), retry_after));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            replies
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    assert!(ready.headers().contains_key("retry-after"));
    let products = get("/api/v1/products").await;
    assert_eq!(products.status(), 503);
    let body: serde_json::Value = products.json().await.unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    assert!(!body.to_string().contains("127.0.0.1"), "no internals leak: {body}");
    assert_eq!(get("/health/live").await.status(), 200, "alive while the database is down");
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.restore().await;
    let back = Instant::now();
    let recovered = eventually(Duration::from_secs(10), async || get("/health/ready").await.status() == 200).await;
    assert!(recovered, "ready again once the database is back");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_load.cancel();
    let replies = load.await.unwrap();
    assert!(replies.iter().any(|(_, status, _)| *status == 503), "the outage was seen");
    for (at, status, retry_after) in &replies {
        assert!(*status == 200 || *status == 503, "only successes and 503s, got {status}");
        assert!(*status == 200 || *retry_after, "every 503 carries Retry-After");
        if at.duration_since(back) > Duration::from_secs(5) {
            assert_eq!(*status, 200, "all succeed from 5 s after the database is back");
        }
    }
    assert!(replies.iter().rev().take(10).all(|(_, status, _)| *status == 200));
    let mut conn =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(db.url()).await.unwrap();
    let unbalanced: i64 = diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM users u WHERE u.balance <> COALESCE((SELECT sum(h.amount) \
             FROM point_history h WHERE h.user_id = u.id AND h.kind = 'CHARGE'), 0))",
        )),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(unbalanced, 0, "every balance equals its ledger");
    handle.stop(true).await;
    stopped.await.unwrap().unwrap();
}
