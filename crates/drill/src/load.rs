//! The load: clients that read, charge, order and pay through the balancer, each write
//! with an idempotency key, and retry what failed with that same key until it succeeds.
//! What each request's first attempt met is tallied under the phase it started in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Refusals the load can meet in normal operation: answers, not failures.
const BUSINESS_CONFLICTS: [&str; 4] =
    ["BALANCE_LIMIT_EXCEEDED", "OUT_OF_STOCK", "INSUFFICIENT_BALANCE", "TOO_MANY_UNPAID_ORDERS"];

/// How long a failed request is retried with its key before it counts as unresolved.
const RETRY_FOR: Duration = Duration::from_secs(20);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the first attempts of one phase's requests met.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub requests: u64,
    pub ok: u64,
    pub business_conflicts: u64,
    /// Any other answer than a 2xx or a business conflict, or no answer.
    pub failed: u64,
    /// Of `failed`: no answer at all (the connection failed).
    pub connection_errors: u64,
    /// Of `failed`: retried with the same key until they succeeded.
    pub retried_ok: u64,
    /// Of `failed`: still failing after the retries.
    pub unresolved: u64,
    /// Failures by what they met (`502`, `503 SERVICE_UNAVAILABLE`, `connection`, ...).
    pub kinds: HashMap<String, u64>,
    /// Business conflicts by code.
    pub conflicts: HashMap<String, u64>,
    pub latencies: Vec<Duration>,
}

impl Tally {
    pub fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }
}

/// What the service must have applied, exactly once each, per user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    pub charged: i64,
    pub orders: i64,
    pub payments: i64,
}

/// A seeded user and their bearer token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

/// The state the clients share with the drill's conductor.
#[derive(Debug)]
pub struct Load {
    base: String,
    client: reqwest::Client,
    users: Vec<User>,
    products: Vec<i64>,
    phase: AtomicUsize,
    stop: AtomicBool,
    tallies: Mutex<Vec<Tally>>,
    applied: Mutex<HashMap<i64, Applied>>,
}

/// One request as the clients send it (and send it again, the same, on a failure).
struct Call<'a> {
    method: reqwest::Method,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<&'a Value>,
    key: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str, token: Option<&'a str>) -> Self {
        Self { method: reqwest::Method::GET, path, token, body: None, key: None }
    }

    /// A keyed POST as a user.
    fn post(path: &'a str, token: &'a str, body: &'a Value, key: &'a str) -> Self {
        Self { method: reqwest::Method::POST, path, token: Some(token), body: Some(body), key: Some(key) }
    }
}

/// How one attempt ended.
enum Attempt {
    Ok(Value),
    /// A business conflict: its code.
    Conflict(String),
    /// Worth another attempt with the same key: what it met.
    Failed(String, bool),
}

impl Load {
    pub fn new(base: String, client: reqwest::Client, users: Vec<User>, products: Vec<i64>, phases: usize) -> Self {
        Self {
            base,
            client,
            users,
            products,
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            tallies: Mutex::new(vec![Tally::default(); phases]),
            applied: Mutex::new(HashMap::new()),
        }
    }

    pub fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn tallies(&self) -> Vec<Tally> {
        self.tallies.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn applied(&self) -> HashMap<i64, Applied> {
        self.applied.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Records what a user was charged before the load (the seed's charge).
    pub fn seeded(&self, user: i64, charged: i64) {
        if let Ok(mut applied) = self.applied.lock() {
            applied.entry(user).or_default().charged += charged;
        }
    }

    /// One client: reads, a keyed charge, a keyed order and its keyed payment, in turn,
    /// for the users in turn, until the load stops.
    pub async fn client(self: Arc<Self>, id: usize) {
        let mut step = id;
        while !self.stop.load(Ordering::SeqCst) {
            // Each user in turn for each kind of request (not one kind per user).
            let user = &self.users[(step / 4 + id) % self.users.len()];
            let key = format!("drill-{id}-{step}");
            match step % 4 {
                0 => {
                    self.call(Call::get("/api/v1/products?limit=20", None)).await;
                }
                1 => {
                    let path = format!("/api/v1/points/{}", user.id);
                    self.call(Call::get(&path, Some(&user.token))).await;
                }
                2 => {
                    let path = format!("/api/v1/points/{}", user.id);
                    let body = json!({"amount": 100});
                    if self.call(Call::post(&path, &user.token, &body, &key)).await.is_some() {
                        self.record(user.id, |a| a.charged += 100);
                    }
                }
                _ => self.order_and_pay(user, &key, step).await,
            }
            step += 1;
        }
    }

    async fn order_and_pay(&self, user: &User, key: &str, step: usize) {
        let product = self.products[step % self.products.len()];
        let body = json!({"userId": user.id, "items": [{"productId": product, "quantity": 1}]});
        let order_key = format!("{key}-order");
        let Some(order) = self.call(Call::post("/api/v1/orders", &user.token, &body, &order_key)).await else {
            return;
        };
        self.record(user.id, |a| a.orders += 1);
        let Some(order) = order["orderId"].as_i64() else { return };
        let body = json!({"userId": user.id, "orderId": order});
        let pay_key = format!("{key}-pay");
        if self.call(Call::post("/api/v1/payments", &user.token, &body, &pay_key)).await.is_some() {
            self.record(user.id, |a| a.payments += 1);
        }
    }

    fn record(&self, user: i64, change: impl FnOnce(&mut Applied)) {
        if let Ok(mut applied) = self.applied.lock() {
            change(applied.entry(user).or_default());
        }
    }

    /// Sends a request; on a failure, sends it again with the same key until it
    /// succeeds (or [`RETRY_FOR`] passes). Returns the successful body.
    async fn call(&self, call: Call<'_>) -> Option<Value> {
        let phase = self.phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let first = self.attempt(&call).await;
        let took = started.elapsed();
        let (result, conflict, failure) = match first {
            Attempt::Ok(value) => (Some(value), None, None),
            Attempt::Conflict(code) => (None, Some(code), None),
            Attempt::Failed(kind, connection) => (None, None, Some((kind, connection))),
        };
        let resolved = match &failure {
            None => None,
            Some(_) => Some(self.retry(&call).await),
        };
        if let Ok(mut tallies) = self.tallies.lock()
            && let Some(tally) = tallies.get_mut(phase)
        {
            tally.requests += 1;
            tally.latencies.push(took);
            if let Some(code) = conflict {
                *tally.conflicts.entry(code).or_default() += 1;
            }
            match (&failure, &resolved) {
                (None, _) if result.is_some() => tally.ok += 1,
                (None, _) => tally.business_conflicts += 1,
                (Some((kind, connection)), resolved) => {
                    tally.failed += 1;
                    tally.connection_errors += u64::from(*connection);
                    *tally.kinds.entry(kind.clone()).or_default() += 1;
                    match resolved {
                        Some(Some(_)) => tally.retried_ok += 1,
                        _ => tally.unresolved += 1,
                    }
                }
            }
        }
        result.or(resolved.flatten())
    }

    async fn retry(&self, call: &Call<'_>) -> Option<Value> {
        let started = Instant::now();
        while started.elapsed() < RETRY_FOR {
            tokio::time::sleep(RETRY_PAUSE).await;
            match self.attempt(call).await {
                Attempt::Ok(value) => return Some(value),
                Attempt::Conflict(_) => return None,
                Attempt::Failed(..) => {}
            }
        }
        None
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        let mut request = self.client.request(call.method.clone(), format!("{}{}", self.base, call.path));
        if let Some(token) = call.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        if let Some(key) = call.key {
            request = request.header("Idempotency-Key", key);
        }
        let Ok(response) = request.timeout(Duration::from_secs(30)).send().await else {
            return Attempt::Failed("connection".to_owned(), true);
        };
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Attempt::Ok(body);
        }
        let code = body["code"].as_str().unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT && BUSINESS_CONFLICTS.contains(&code) {
            return Attempt::Conflict(code.to_owned());
        }
        Attempt::Failed(format!("{} {code}", status.as_u16()).trim().to_owned(), false)
    }
}
