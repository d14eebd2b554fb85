//! End-to-end throughput and latency through the real server and PostgreSQL (the
//! database from `DATABASE_URL`, as `make bench` sets it):
//! - a coupon rush: 1,000 distinct users at once for a campaign of 100;
//! - reading the best products (a full top five), meant to be the cheapest endpoint;
//! - one page of 20 products.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use adapter_postgres::testing::TestDatabase;
use bootstrap::{Application, config};
use criterion::{Criterion, criterion_group, criterion_main};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

const RUSH_USERS: usize = 1_000;

struct Bench {
    _db: TestDatabase,
    url: String,
    address: String,
    client: reqwest::Client,
    /// A bearer token per rush user, made before the measurement.
    tokens: Vec<String>,
}

const SECRET: &str = "a bench secret of more than thirty-two bytes";

fn token(user: usize) -> String {
    let claims = serde_json::json!({"sub": user.to_string(), "exp": chrono::Utc::now().timestamp() + 86_400});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

async fn start() -> Bench {
    let db = TestDatabase::new().await.unwrap();
    let env: HashMap<&str, String> = [
        ("DATABASE_URL", db.url().to_owned()),
        ("HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("ADMIN_TOKEN", "bench-admin-token-of-32-characters".to_owned()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
    ]
    .into_iter()
    .collect();
    let config = config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let app = Application::start(&config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO users (name) SELECT 'bench ' || g FROM generate_series(1, {RUSH_USERS}) g;
         INSERT INTO products (name, price, stock) SELECT 'product ' || g, 1000, 100 FROM generate_series(1, 200) g;
         INSERT INTO best_product_snapshots (window_from, window_to, calculated_at)
             VALUES (date_trunc('day', now()) - interval '3 days', date_trunc('day', now()), now());
         INSERT INTO best_product_snapshot_items (snapshot_id, rank, product_id, sold_quantity)
             SELECT (SELECT max(id) FROM best_product_snapshots), g, g * 3, 100 - g FROM generate_series(1, 5) g;"
    ))
    .await
    .unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(RUSH_USERS).build().unwrap();
    let url = db.url().to_owned();
    let tokens = (1..=RUSH_USERS).map(token).collect();
    Bench { _db: db, url, address, client, tokens }
}

async fn new_campaign(url: &str, quantity: i32) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute(&format!(
        "WITH c AS (INSERT INTO coupons (name, discount_type, discount_value, total_quantity, valid_from, valid_until, buckets)
                    VALUES ('rush', 'FIXED', 1000, {quantity}, now() - interval '1 hour', now() + interval '1 day',
                            least({quantity}, 16)) RETURNING id)
         INSERT INTO coupon_stock (coupon_id, bucket, remaining)
         SELECT c.id, b.n, {quantity} / least({quantity}, 16) + (b.n < {quantity} % least({quantity}, 16))::int
         FROM c, generate_series(0, least({quantity}, 16) - 1) AS b(n)"
    ))
    .await
    .unwrap();
    let id: i64 = diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT max(id) FROM coupons)")),
        &mut conn,
    )
    .await
    .unwrap();
    id
}

fn api(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let bench = runtime.block_on(start());
    let mut group = c.benchmark_group("api");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("coupon rush: 1000 users, 100 coupons", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let bench = &bench;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let coupon = new_campaign(&bench.url, 100).await;
                    let started = Instant::now();
                    let requests = (1..=RUSH_USERS).map(|user| {
                        bench
                            .client
                            .post(format!("{}/api/v1/coupons/{coupon}/issue", bench.address))
                            .bearer_auth(&bench.tokens[user - 1])
                            .json(&serde_json::json!({"userId": user}))
                            .send()
                    });
                    let replies = futures::future::join_all(requests).await;
                    total += started.elapsed();
                    let issued = replies.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == 201)).count();
                    assert_eq!(issued, 100);
                }
                total
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("api");
    group.sample_size(50);
    group.bench_function("GET /api/v1/products/best", |b| {
        b.to_async(&runtime).iter(|| async {
            let reply = bench.client.get(format!("{}/api/v1/products/best", bench.address)).send().await.unwrap();
            assert_eq!(reply.status(), 200);
            reply.bytes().await.unwrap()
        });
    });
    group.bench_function("GET /api/v1/products?limit=20", |b| {
        b.to_async(&runtime).iter(|| async {
            let reply = bench.client.get(format!("{}/api/v1/products?limit=20", bench.address)).send().await.unwrap();
            assert_eq!(reply.status(), 200);
            reply.bytes().await.unwrap()
        });
    });
    // The cost of an idempotency key: the same 1 KRW charge, without and with a fresh key
    // (claim, stored reply, in the charge's own transaction).
    let charges = std::sync::atomic::AtomicUsize::new(0);
    let charge = |keyed: bool| {
        let n = charges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let user = n % RUSH_USERS + 1;
        let mut request = bench
            .client
            .post(format!("{}/api/v1/points/{user}", bench.address))
            .bearer_auth(&bench.tokens[user - 1])
            .json(&serde_json::json!({"amount": 1}));
        if keyed {
            request = request.header("idempotency-key", format!("bench-{n}"));
        }
        async move {
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status(), 200);
            reply.bytes().await.unwrap()
        }
    };
    group.bench_function("POST /api/v1/points/{userId} (charge)", |b| b.to_async(&runtime).iter(|| charge(false)));
    group.bench_function("POST /api/v1/points/{userId} (charge, Idempotency-Key)", |b| {
        b.to_async(&runtime).iter(|| charge(true));
    });
    group.finish();
}

criterion_group!(benches, api);
criterion_main!(benches);
