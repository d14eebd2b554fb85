use application::StoreError;
use application::ports::{BestProduct, BestProducts, RankingRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::ranking::{ProductSales, RankedProduct, SalesWindow, TOP_N};

use crate::error::{StoreContext, corrupt};
use crate::functions::paid_sales;
use crate::records::{ProductRow, product_id};
use crate::schema::{best_product_snapshot_items, best_product_snapshots, products};
use crate::work::PgWork;

/// A snapshot's columns, then its item and the item's product (null for a snapshot
/// without items).
type SnapshotRow = (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, Option<(i16, i64)>, Option<(i64, String, i64, i32)>);

impl PgWork {
    /// The snapshot ending at `at_or_before` or, failing that, the latest one before
    /// it. One statically typed statement (prepared once per connection): the newest
    /// window end comes from the unique index, the items in rank order from their
    /// primary key, each product from its primary key — no aggregation, no scan.
    async fn snapshot(&mut self, at_or_before: DateTime<Utc>) -> Result<Option<BestProducts>, StoreError> {
        let newest = diesel::alias!(best_product_snapshots as newest);
        let newest_end = newest
            .filter(newest.field(best_product_snapshots::window_to).le(at_or_before))
            .select(diesel::dsl::max(newest.field(best_product_snapshots::window_to)))
            .single_value();
        let rows: Vec<SnapshotRow> = best_product_snapshots::table
            .left_join(best_product_snapshot_items::table.left_join(products::table))
            .filter(best_product_snapshots::window_to.nullable().eq(newest_end))
            .order(best_product_snapshot_items::rank.asc())
            .select((
                best_product_snapshots::window_from,
                best_product_snapshots::window_to,
                best_product_snapshots::calculated_at,
                (best_product_snapshot_items::rank, best_product_snapshot_items::sold_quantity).nullable(),
                (products::id, products::name, products::price, products::stock).nullable(),
            ))
            .load(self.conn())
            .await
            .store_context("reading a best-products snapshot")?;
        let Some(&(window_from, window_to, calculated_at, ..)) = <[SnapshotRow]>::first(&rows) else { return Ok(None) };
        let window = SalesWindow::between(window_from, window_to).map_err(|e| corrupt("sales window", e))?;
        let mut items = Vec::with_capacity(rows.len());
        for (_, _, _, item, product) in rows {
            let (Some((rank, sold_quantity)), Some((id, name, price, stock))) = (item, product) else { continue };
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
        let rows: Vec<(i64, i64)> =
            diesel::select(paid_sales(window.from(), window.to(), i64::try_from(TOP_N).unwrap_or(i64::MAX)))
                .load(self.conn())
                .await
                .store_context("aggregating sales")?;
        rows.into_iter()
            .map(|(id, sold_quantity)| Ok(ProductSales { product_id: product_id(id)?, sold_quantity }))
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

    async fn latest(&mut self, ended_by: DateTime<Utc>) -> Result<Option<BestProducts>, StoreError> {
        self.snapshot(ended_by).await
    }

    async fn find(&mut self, window: &SalesWindow) -> Result<Option<BestProducts>, StoreError> {
        Ok(self.snapshot(window.to()).await?.filter(|found| found.window == *window))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;
    use domain::ranking::{RankedProduct, SalesWindow};
    use domain::testing::at;

    use crate::fixtures::{count, fixture, product};

    #[tokio::test]
    async fn concurrent_snapshots_of_one_window_store_one() {
        let f = fixture().await;
        let p = product(&f.uow, 1_000, 10).await;
        let window =
            SalesWindow::ending_on(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(), chrono_tz::Asia::Seoul);
        let tasks = (0..8).map(|i| {
            let uow = f.uow.clone();
            tokio::spawn(async move {
                let mut work = uow.begin().await.unwrap();
                let ranked = [RankedProduct { rank: 1, product_id: p, sold_quantity: 10 + i }];
                work.rankings().save_snapshot(&window, &ranked, at(i)).await.unwrap();
                work.commit().await.unwrap();
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.unwrap();
        }
        assert_eq!(count(&f.pool, "SELECT count(*) FROM best_product_snapshots").await, 1);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM best_product_snapshot_items").await, 1);
        let mut read = f.uow.autocommit().await.unwrap();
        let latest = read.rankings().latest(window.to()).await.unwrap().unwrap();
        assert_eq!(latest.window, window);
        let before_it_ended = window.to() - chrono::Duration::seconds(1);
        assert!(
            read.rankings().latest(before_it_ended).await.unwrap().is_none(),
            "a window not yet ended is not served"
        );
        assert_eq!(latest.items.len(), 1);
        assert_eq!(latest.items[0].product.id, p);
    }
}
