use std::collections::HashMap;

use actix_web::dev::ServerHandle;
use adapter_postgres::testing::TestDatabase;
use bootstrap::{Application, config};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};

use crate::contract;

pub const ADMIN_TOKEN: &str = "test-admin-token-of-32-characters";
/// The HS256 secret the test instances verify user tokens with.
pub const USER_TOKEN_SECRET: &str = "a test secret of more than thirty-two bytes";

/// A user token as a client would hold it: signed with the instance's secret, `sub` the
/// user id, valid for an hour. Made here, independently of the service's own signer.
pub fn token(user: i64) -> String {
    token_with(&json!({"sub": user.to_string(), "exp": chrono::Utc::now().timestamp() + 3_600}))
}

/// A token with any claims, signed with the instance's secret.
pub fn token_with(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(USER_TOKEN_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

/// The user a request to a user endpoint acts for, as its client would know it: the
/// path's, query's or body's `userId`; user 1 when the request names none (or a
/// malformed one, which the service refuses with 400 after authenticating).
fn acting_user(path: &str, body: Option<&Value>) -> Option<i64> {
    const USER_ENDPOINTS: [&str; 4] = ["/api/v1/points", "/api/v1/coupons", "/api/v1/orders", "/api/v1/payments"];
    if !USER_ENDPOINTS.iter().any(|prefix| path.starts_with(prefix)) {
        return None;
    }
    let named = path
        .strip_prefix("/api/v1/points/")
        .and_then(|rest| rest.split(['/', '?']).next())
        .and_then(|id| id.parse::<i64>().ok())
        .or_else(|| {
            path.split_once('?').and_then(|(_, query)| {
                query.split('&').find_map(|pair| pair.strip_prefix("userId=")).and_then(|id| id.parse().ok())
            })
        })
        .or_else(|| body.and_then(|b| b["userId"].as_i64()));
    Some(named.filter(|id| *id > 0).unwrap_or(1))
}

/// A running application with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub handle: ServerHandle,
    pub stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A response's status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    /// Whether it carried `Idempotent-Replayed: true`.
    pub replayed: bool,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts a problem response with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.body);
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the application on a new database; `vars` override the environment.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        Self::spawn_on(TestDatabase::new().await.unwrap(), vars).await
    }

    /// Starts the application on `db`, prepared beforehand; `vars` override the environment.
    pub async fn spawn_on(db: TestDatabase, vars: &[(&str, &str)]) -> Self {
        let (address, handle, stopped) = Self::start_on(db.url(), vars).await;
        Self { address, client: client(), db, handle, stopped }
    }

    /// Starts another instance of the application on the same database.
    pub async fn start_on(
        database_url: &str,
        vars: &[(&str, &str)],
    ) -> (String, ServerHandle, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("AUTH_JWT_SECRET", USER_TOKEN_SECRET),
            ("HTTP_WORKERS", "2"),
            ("DATABASE_POOL_SIZE", "12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in vars {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = config::from_lookup(|name| env.get(name).cloned()).unwrap();
        let app = Application::start(&config).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let stopped = tokio::spawn(app.run_until_stopped());
        (address, handle, stopped)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request and checks the reply against the OpenAPI document (see [`contract`]).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let (client, request) = request.build_split();
        let request = request.unwrap();
        let (method, path) = (request.method().to_string(), request.url().path().to_owned());
        let response = reqwest::Client::execute(&client, request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        contract::check(&method, &path, status, &content_type, &body);
        Reply { status, content_type, body, replayed }
    }

    /// A GET; to a user endpoint, with the token of the user it names.
    pub async fn get(&self, path: &str) -> Reply {
        let request = self.client.get(self.url(path));
        match acting_user(path, None) {
            Some(user) => self.send(request.bearer_auth(token(user))).await,
            None => self.send(request).await,
        }
    }

    /// The admin refresh of the window ending at 00:00 of `date` (as sent, so it may be invalid).
    pub async fn refresh_best_products(&self, date: &str) -> Reply {
        let url = self.url(&format!("/api/v1/admin/best-products/refresh?date={date}"));
        self.send(self.client.post(url).bearer_auth(ADMIN_TOKEN)).await
    }

    /// A POST with an `Idempotency-Key`, authenticated like [`TestApp::post`] (as the
    /// admin under `/api/v1/admin`).
    pub async fn post_keyed(&self, path: &str, body: &Value, key: &str) -> Reply {
        let request = self.client.post(self.url(path)).header("idempotency-key", key).json(body);
        let bearer = match acting_user(path, Some(body)) {
            Some(user) => token(user),
            None => ADMIN_TOKEN.to_owned(),
        };
        self.send(request.bearer_auth(bearer)).await
    }

    /// A POST; to a user endpoint, with the token of the user it names.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let request = self.client.post(self.url(path)).json(body);
        match acting_user(path, Some(body)) {
            Some(user) => self.send(request.bearer_auth(token(user))).await,
            None => self.send(request).await,
        }
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(body)).await
    }

    pub async fn create_user(&self) -> i64 {
        let reply = self.admin_post("/api/v1/admin/users", &json!({"name": "user"})).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["userId"].as_i64().unwrap()
    }

    pub async fn create_product(&self, price: i64, stock: i64) -> i64 {
        let reply = self
            .admin_post("/api/v1/admin/products", &json!({"name": "product", "price": price, "stock": stock}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["productId"].as_i64().unwrap()
    }

    /// A campaign valid from an hour ago for a day.
    pub async fn create_coupon(&self, discount_type: &str, value: i64, min_order: i64, quantity: i64) -> i64 {
        let now = chrono::Utc::now();
        let reply = self
            .admin_post(
                "/api/v1/admin/coupons",
                &json!({
                    "name": "coupon", "discountType": discount_type, "discountValue": value,
                    "minOrderAmount": min_order, "totalQuantity": quantity,
                    "validFrom": now - chrono::Duration::hours(1), "validUntil": now + chrono::Duration::days(1),
                }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["couponId"].as_i64().unwrap()
    }

    pub async fn charge(&self, user: i64, amount: i64) -> Reply {
        self.post(&format!("/api/v1/points/{user}"), &json!({"amount": amount})).await
    }

    pub async fn issue(&self, coupon: i64, user: i64) -> Reply {
        self.post(&format!("/api/v1/coupons/{coupon}/issue"), &json!({"userId": user})).await
    }

    /// Places an order; the body is built before the returned future runs, so the
    /// lines need not outlive it.
    pub fn order(&self, user: i64, coupon: Option<i64>, items: &[(i64, i64)]) -> impl Future<Output = Reply> + use<'_> {
        let items: Vec<Value> = items.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect();
        let body = json!({"userId": user, "couponId": coupon, "items": items});
        async move { self.post("/api/v1/orders", &body).await }
    }

    pub async fn pay(&self, user: i64, order: i64) -> Reply {
        self.post("/api/v1/payments", &json!({"userId": user, "orderId": order})).await
    }

    pub async fn balance(&self, user: i64) -> i64 {
        self.get(&format!("/api/v1/points/{user}")).await.body["balance"].as_i64().unwrap()
    }

    pub async fn stock(&self, product: i64) -> i64 {
        self.scalar(&format!("SELECT stock::int8 FROM products WHERE id = {product}")).await
    }

    /// One bigint from SQL run directly against the test database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = AsyncPgConnection::establish(self.db.url()).await.unwrap();
        diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})"))).get_result(&mut conn).await.unwrap()
    }

    pub async fn execute(&self, sql: &str) {
        let mut conn = AsyncPgConnection::establish(self.db.url()).await.unwrap();
        conn.batch_execute(sql).await.unwrap();
    }

    /// `count` users inserted directly, each with `balance` and the charge that explains
    /// it (the ledger invariants of the tests hold), returning their ids in ascending
    /// order.
    pub async fn bulk_users(&self, count: i64, balance: i64) -> Vec<i64> {
        static BATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tag = format!("bulk {} ", BATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.execute(&format!(
            "INSERT INTO users (name, balance) SELECT '{tag}' || g, {balance} FROM generate_series(1, {count}) g; \
             INSERT INTO point_history (user_id, kind, amount, balance_after, created_at) \
             SELECT id, 'CHARGE', balance, balance, now() FROM users WHERE name LIKE '{tag}%' AND balance > 0"
        ))
        .await;
        let mut conn = AsyncPgConnection::establish(self.db.url()).await.unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Array<BigInt>>(&format!(
            "(SELECT array_agg(id ORDER BY id) FROM users WHERE name LIKE '{tag}%')"
        )))
        .get_result(&mut conn)
        .await
        .unwrap()
    }
}

/// Runs every future at once and returns their outputs in order.
pub async fn all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(futures).await
}

/// Runs `futures` with at most `limit` of them in flight at once, in any order.
pub async fn at_most<F: std::future::Future>(limit: usize, futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use futures::StreamExt;
    futures::stream::iter(futures).buffer_unordered(limit).collect().await
}

/// How many replies have this status.
pub fn count_status(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

/// Polls until `check` holds, for at most `within`.
pub async fn eventually(within: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    check().await
}
