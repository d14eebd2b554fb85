//! The drill's database: created fresh, checked in SQL afterwards, dropped.

use std::collections::HashMap;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use crate::load::Applied;

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| "connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// The URL of database `name` on the server of `admin_url`.
fn sibling(admin_url: &str, name: &str) -> String {
    let (address, query) = admin_url.split_once('?').map_or((admin_url, None), |(a, q)| (a, Some(q)));
    let server = match address.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => server,
        _ => address,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Creates database `name` anew and returns its URL.
pub async fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = connect(admin_url).await?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await?;
    Ok(sibling(admin_url, name))
}

pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    connect(admin_url).await?.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    Ok(())
}

/// The contract's invariants after a crash, each with the number of rows that break it.
pub async fn invariants(url: &str, stock: i64) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let db = connect(url).await?;
    let stocked = format!(
        "SELECT count(*) FROM products p WHERE p.stock + COALESCE((SELECT sum(l.quantity) FROM order_lines l \
         JOIN orders o ON o.id = l.order_id WHERE l.product_id = p.id AND o.status IN ('NOT_PAID', 'PAID')), 0) <> {stock}"
    );
    let checks: [(&'static str, &str); 5] = [
        (
            "every balance equals its ledger",
            "SELECT count(*) FROM users u WHERE u.balance <> COALESCE((SELECT sum(CASE h.kind WHEN 'USE' \
             THEN -h.amount ELSE h.amount END) FROM point_history h WHERE h.user_id = u.id), 0)",
        ),
        ("stock plus reserved and sold equals what was stocked", &stocked),
        (
            "every PAID order has exactly one payment and one USE entry",
            "SELECT count(*) FROM orders o WHERE o.status IN ('PAID', 'REFUNDED') AND ( \
             (SELECT count(*) FROM payments p WHERE p.order_id = o.id) <> 1 OR \
             (SELECT count(*) FROM point_history h WHERE h.order_id = o.id AND h.kind = 'USE') <> 1)",
        ),
        (
            "no payment or ledger entry for an order never paid",
            "SELECT count(*) FROM orders o WHERE o.status NOT IN ('PAID', 'REFUNDED') AND (EXISTS (SELECT 1 \
             FROM payments p WHERE p.order_id = o.id) OR EXISTS (SELECT 1 FROM point_history h WHERE h.order_id = o.id))",
        ),
        (
            "no balance below zero or above the limit",
            "SELECT count(*) FROM users WHERE balance < 0 OR balance > 5000000",
        ),
    ];
    let mut found = Vec::new();
    for (what, sql) in checks {
        found.push((what, db.query_one(sql, &[]).await?.get::<_, i64>(0)));
    }
    Ok(found)
}

/// Whether what the clients saw succeed is what the database holds, per user: the
/// charges' sum, the orders and the payments. A keyed write retried after an error and
/// applied twice, or lost, shows here.
pub async fn applied_once(url: &str, applied: &HashMap<i64, Applied>) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let db = connect(url).await?;
    let rows = db
        .query(
            "SELECT u.id, \
             COALESCE((SELECT sum(h.amount) FROM point_history h WHERE h.user_id = u.id AND h.kind = 'CHARGE'), 0)::bigint, \
             (SELECT count(*) FROM orders o WHERE o.user_id = u.id), \
             (SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.user_id = u.id) \
             FROM users u",
            &[],
        )
        .await?;
    let (mut charges, mut orders, mut payments) = (0, 0, 0);
    for row in &rows {
        let expected = applied.get(&row.get::<_, i64>(0)).copied().unwrap_or_default();
        charges += i64::from(row.get::<_, i64>(1) != expected.charged);
        orders += i64::from(row.get::<_, i64>(2) != expected.orders);
        payments += i64::from(row.get::<_, i64>(3) != expected.payments);
    }
    Ok(vec![
        ("every charge that succeeded was applied exactly once, and no other", charges),
        ("every order that succeeded was placed exactly once, and no other", orders),
        ("every payment that succeeded was made exactly once, and no other", payments),
    ])
}

#[cfg(test)]
mod tests {
    use super::sibling;

    #[test]
    fn the_database_name_is_replaced_in_the_url() {
        assert_eq!(sibling("postgres://u@h:1/postgres", "d"), "postgres://u@h:1/d");
        assert_eq!(sibling("postgres://u@h:1", "d"), "postgres://u@h:1/d");
        assert_eq!(sibling("postgres://u@h/postgres?sslmode=disable", "d"), "postgres://u@h/d?sslmode=disable");
    }
}
