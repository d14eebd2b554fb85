use application::StoreError;
use application::ports::{BestProduct, BestProducts, RankingRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::ranking::{ProductSales, RankedProduct, SalesWindow, TOP_N};

use crate::error::{StoreContext, corrupt};
use crate::records::{ProductRow, product_id};
use crate::schema::{best_product_snapshot_items, best_product_snapshots};
use crate::work::PgWork;

#[derive(QueryableByName)]
struct SalesRow {
    #[diesel(sql_type = BigInt)]
    product_id: i64,
    #[diesel(sql_type = BigInt)]
    sold_quantity: i64,
}

/// A snapshot joined with its items and their products; item columns are null for a
/// snapshot with no items.
#[derive(QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = Timestamptz)]
    window_from: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    window_to: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    calculated_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    rank: Option<i16>,
    #[diesel(sql_type = Nullable<BigInt>)]
    sold_quantity: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    product_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    price: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    stock: Option<i32>,
}

/// One statement for the whole snapshot. `$1` null selects the latest window.
const SNAPSHOT_QUERY: &str = "\
    WITH s AS (\
        SELECT id, window_from, window_to, calculated_at FROM best_product_snapshots \
        WHERE $1::timestamptz IS NULL OR window_to = $1 \
        ORDER BY window_to DESC LIMIT 1) \
    SELECT s.window_from, s.window_to, s.calculated_at, i.rank, i.sold_quantity, \
           p.id AS product_id, p.name, p.price, p.stock \
    FROM s \
    LEFT JOIN best_product_snapshot_items i ON i.snapshot_id = s.id \
    LEFT JOIN products p ON p.id = i.product_id \
    ORDER BY i.rank";

impl PgWork {
    async fn snapshot(&mut self, window_to: Option<DateTime<Utc>>) -> Result<Option<BestProducts>, StoreError> {
        let rows: Vec<SnapshotRow> = diesel::sql_query(SNAPSHOT_QUERY)
            .bind::<Nullable<Timestamptz>, _>(window_to)
            .load(self.conn())
            .await
            .store_context("reading a best-products snapshot")?;
        let Some(first) = <[SnapshotRow]>::first(&rows) else {
            return Ok(None);
        };
        let window =
            SalesWindow::between(first.window_from, first.window_to).map_err(|e| corrupt("sales window", e))?;
        let calculated_at = first.calculated_at;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let (Some(rank), Some(sold_quantity), Some(id), Some(name), Some(price), Some(stock)) =
                (row.rank, row.sold_quantity, row.product_id, row.name, row.price, row.stock)
            else {
                continue;
            };
            let product = ProductRow { id, name, price, stock }.into_domain()?;
            let rank = u8::try_from(rank).map_err(|e| corrupt("rank", e))?;
            items.push(BestProduct { ranked: RankedProduct { rank, product_id: product.id, sold_quantity }, product });
        }
        Ok(Some(BestProducts { window, calculated_at, items }))
    }
}

#[async_trait]
impl RankingRepository for PgWork {
    async fn has_snapshot(&mut self, window: &SalesWindow) -> Result<bool, StoreError> {
        diesel::select(diesel::dsl::exists(
            best_product_snapshots::table.filter(best_product_snapshots::window_to.eq(window.to())),
        ))
        .get_result(self.conn())
        .await
        .store_context("checking for a snapshot")
    }

    async fn sales_in(&mut self, window: &SalesWindow) -> Result<Vec<ProductSales>, StoreError> {
        // One aggregate over the paid orders of the window (partial index on paid_at),
        // cut at the top N with the ranking's own tie-break.
        let rows: Vec<SalesRow> = diesel::sql_query(
            "SELECT l.product_id, SUM(l.quantity)::int8 AS sold_quantity \
             FROM orders o JOIN order_lines l ON l.order_id = o.id \
             WHERE o.status = 'PAID' AND o.paid_at >= $1 AND o.paid_at < $2 \
             GROUP BY l.product_id \
             ORDER BY sold_quantity DESC, l.product_id ASC \
             LIMIT $3",
        )
        .bind::<Timestamptz, _>(window.from())
        .bind::<Timestamptz, _>(window.to())
        .bind::<BigInt, _>(i64::try_from(TOP_N).unwrap_or(i64::MAX))
        .load(self.conn())
        .await
        .store_context("aggregating sales")?;
        rows.into_iter()
            .map(|row| Ok(ProductSales { product_id: product_id(row.product_id)?, sold_quantity: row.sold_quantity }))
            .collect()
    }

    async fn save_snapshot(
        &mut self,
        window: &SalesWindow,
        ranked: &[RankedProduct],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // The upsert locks the window's row: a concurrent save of the same window waits
        // here, then replaces this one's items — one snapshot per window either way.
        let snapshot_id: i64 = diesel::insert_into(best_product_snapshots::table)
            .values((
                best_product_snapshots::window_from.eq(window.from()),
                best_product_snapshots::window_to.eq(window.to()),
                best_product_snapshots::calculated_at.eq(at),
            ))
            .on_conflict(best_product_snapshots::window_to)
            .do_update()
            .set((best_product_snapshots::window_from.eq(window.from()), best_product_snapshots::calculated_at.eq(at)))
            .returning(best_product_snapshots::id)
            .get_result(self.conn())
            .await
            .store_context("storing a snapshot")?;
        diesel::delete(
            best_product_snapshot_items::table.filter(best_product_snapshot_items::snapshot_id.eq(snapshot_id)),
        )
        .execute(self.conn())
        .await
        .store_context("clearing a snapshot's items")?;
        if ranked.is_empty() {
            return Ok(());
        }
        let items: Vec<_> = ranked
            .iter()
            .map(|r| {
                (
                    best_product_snapshot_items::snapshot_id.eq(snapshot_id),
                    best_product_snapshot_items::rank.eq(i16::from(r.rank)),
                    best_product_snapshot_items::product_id.eq(r.product_id.get()),
                    best_product_snapshot_items::sold_quantity.eq(r.sold_quantity),
                )
            })
            .collect();
        diesel::insert_into(best_product_snapshot_items::table)
            .values(items)
            .execute(self.conn())
            .await
            .store_context("storing a snapshot's items")
            .map(drop)
    }

    async fn latest(&mut self) -> Result<Option<BestProducts>, StoreError> {
        self.snapshot(None).await
    }

    async fn find(&mut self, window: &SalesWindow) -> Result<Option<BestProducts>, StoreError> {
        self.snapshot(Some(window.to())).await
    }
}
