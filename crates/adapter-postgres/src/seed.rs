use anyhow::Context;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use domain::UserId;

use crate::pool::PgPool;
use crate::schema::users;

/// A small catalog to try every endpoint with: users, products and coupons, each added
/// only when no row of that name exists, so running it twice adds nothing twice; and
/// one paid order (park's wireless mouse) for a newcomer to refund, added while park has
/// no order.
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

-- A paid order, written as a payment writes it: stock taken, balance debited with its
-- USE entry, the payment recorded.
WITH buyer AS (
    SELECT u.id FROM users u
    WHERE u.name = 'park' AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)
), item AS (
    UPDATE products p SET stock = p.stock - 1
    WHERE p.name = 'Wireless mouse' AND p.stock > 0 AND EXISTS (SELECT 1 FROM buyer)
    RETURNING p.id, p.name, p.price
), placed AS (
    INSERT INTO orders (user_id, status, total_amount, discount_amount, payment_amount, created_at, expires_at, paid_at)
    SELECT buyer.id, 'PAID', item.price, 0, item.price, now(), now() + interval '5 minutes', now() FROM buyer, item
    RETURNING id, user_id, payment_amount
), line AS (
    INSERT INTO order_lines (order_id, line_no, product_id, product_name, unit_price, quantity, amount)
    SELECT placed.id, 1, item.id, item.name, item.price, 1, item.price FROM placed, item
), debited AS (
    UPDATE users u SET balance = u.balance - placed.payment_amount FROM placed WHERE u.id = placed.user_id
    RETURNING u.id, u.balance, placed.id AS order_id, placed.payment_amount
), ledger AS (
    INSERT INTO point_history (user_id, kind, amount, balance_after, order_id, created_at)
    SELECT debited.id, 'USE', debited.payment_amount, debited.balance, debited.order_id, now() FROM debited
)
INSERT INTO payments (order_id, user_id, amount, paid_at)
SELECT placed.id, placed.user_id, placed.payment_amount, now() FROM placed;
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
            for table in ["users", "products", "coupons", "point_history", "orders", "payments"] {
                counts.push(count(&f.pool, &format!("SELECT count(*) FROM {table}")).await);
            }
            counts
        };
        let first = counts().await;
        assert!(first.iter().all(|c| *c > 0), "every table has demo rows: {first:?}");
        seed_demo_catalog(&f.pool).await.unwrap();
        assert_eq!(counts().await, first, "a second seed adds nothing");
        assert_eq!(
            count(&f.pool, "SELECT count(*) FROM users u WHERE balance <> COALESCE((SELECT sum(CASE h.kind WHEN 'USE' THEN -h.amount ELSE h.amount END) FROM point_history h WHERE h.user_id = u.id), 0)").await,
            0,
            "every seeded balance is explained by its ledger"
        );
        assert_eq!(
            count(
                &f.pool,
                "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id JOIN payments p ON p.order_id = o.id \
                 WHERE u.name = 'park' AND o.status = 'PAID' AND u.balance = 1000000 - o.payment_amount"
            )
            .await,
            1,
            "park has one paid order to refund"
        );
    }
}
