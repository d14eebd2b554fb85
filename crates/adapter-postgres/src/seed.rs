use anyhow::Context;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use domain::UserId;

use crate::pool::PgPool;
use crate::schema::users;

/// A small catalog to try every endpoint with: users, products and coupons, each added
/// only when no row of that name exists, so running it twice adds nothing twice.
const DEMO_CATALOG: &str = r"
BEGIN;
INSERT INTO users (name, balance)
SELECT v.name, v.balance FROM (VALUES ('kim', 50000), ('lee', 0), ('park', 1000000)) AS v(name, balance)
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.name = v.name);

-- Each seeded balance has the ledger entry that explains it.
INSERT INTO point_history (user_id, kind, amount, balance_after, created_at)
SELECT u.id, 'CHARGE', u.balance, u.balance, now() FROM users u
WHERE u.name IN ('kim', 'park') AND u.balance > 0
  AND NOT EXISTS (SELECT 1 FROM point_history h WHERE h.user_id = u.id);

INSERT INTO products (name, price, stock)
SELECT v.name, v.price, v.stock FROM (VALUES
    ('Mechanical keyboard', 89000, 12),
    ('Wireless mouse', 32000, 40),
    ('27-inch monitor', 329000, 5),
    ('USB-C hub', 45000, 25),
    ('Laptop stand', 39000, 18),
    ('Noise-cancelling headphones', 259000, 7),
    ('Webcam', 69000, 15),
    ('Desk lamp', 27000, 30)
) AS v(name, price, stock)
WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.name = v.name);

INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, total_quantity, valid_from, valid_until, buckets)
SELECT v.name, v.discount_type, v.discount_value, v.min_order_amount, v.quantity, now() - interval '1 day', now() + interval '30 days', least(v.quantity, 16)
FROM (VALUES
    ('Welcome 3,000 KRW off', 'FIXED', 3000, 10000, 100),
    ('10% off first-come', 'PERCENT', 10, 50000, 10)
) AS v(name, discount_type, discount_value, min_order_amount, quantity)
WHERE NOT EXISTS (SELECT 1 FROM coupons c WHERE c.name = v.name);

-- The stock of each new coupon, split over its buckets as the service does.
SELECT fill_coupon_stock(c.id) FROM coupons c
WHERE NOT EXISTS (SELECT 1 FROM coupon_stock s WHERE s.coupon_id = c.id);
COMMIT;
";

/// The demo users, by name.
const DEMO_USERS: [&str; 3] = ["kim", "lee", "park"];

/// Loads the demo catalog (see `DEMO_CATALOG`) and returns the demo users' ids and
/// names, in id order.
pub async fn seed_demo_catalog(pool: &PgPool) -> anyhow::Result<Vec<(UserId, String)>> {
    let mut conn = pool.get().await.context("connecting to the database")?;
    conn.batch_execute(DEMO_CATALOG).await.context("loading the demo catalog")?;
    let rows: Vec<(i64, String)> = users::table
        .filter(users::name.eq_any(DEMO_USERS))
        .order(users::id.asc())
        .select((users::id, users::name))
        .load(&mut conn)
        .await
        .context("reading the demo users")?;
    rows.into_iter()
        .map(|(id, name)| Ok((UserId::new(id).context("a stored user id is not positive")?, name)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use crate::fixtures::{count, fixture};
    use crate::seed_demo_catalog;

    #[tokio::test]
    async fn the_demo_catalog_loads_once_however_often_it_is_seeded() {
        let f = fixture().await;
        seed_demo_catalog(&f.pool).await.unwrap();
        let counts = async || {
            let mut counts = Vec::new();
            for table in ["users", "products", "coupons", "point_history"] {
                counts.push(count(&f.pool, &format!("SELECT count(*) FROM {table}")).await);
            }
            counts
        };
        let first = counts().await;
        assert!(first.iter().all(|c| *c > 0), "every table has demo rows: {first:?}");
        seed_demo_catalog(&f.pool).await.unwrap();
        assert_eq!(counts().await, first, "a second seed adds nothing");
        assert_eq!(
            count(&f.pool, "SELECT count(*) FROM users u WHERE balance <> COALESCE((SELECT sum(amount) FROM point_history h WHERE h.user_id = u.id), 0)").await,
            0,
            "every seeded balance is explained by its ledger"
        );
    }
}
