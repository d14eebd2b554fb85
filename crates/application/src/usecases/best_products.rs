//! Best products: computing the daily snapshot and serving the latest one.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use domain::ranking::{SalesWindow, rank_best};

use super::opaque_debug;
use crate::ports::{BestProducts, Clock, StoreError, UnitOfWork, Work, finish};

/// Computes the ranking of a window and stores it as that window's one snapshot.
#[derive(Clone)]
pub struct RefreshBestProducts {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
}
opaque_debug!(RefreshBestProducts);

impl RefreshBestProducts {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, time_zone: Tz) -> Self {
        Self { uow, clock, time_zone }
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Recomputes the window ending at 00:00 of `date` (default: today) in the
    /// service's time zone, stores it, and returns it.
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, date: Option<NaiveDate>) -> Result<BestProducts, StoreError> {
        let window = match date {
            Some(date) => SalesWindow::ending_on(date, self.time_zone),
            None => SalesWindow::latest_at(self.clock.now(), self.time_zone),
        };
        let mut work = self.uow.begin().await?;
        let outcome = self.compute(work.as_mut(), &window).await;
        finish(work, outcome).await
    }

    /// Computes the latest window unless it is already stored (start-up catch-up).
    /// Returns whether it computed.
    #[tracing::instrument(skip(self))]
    pub async fn ensure_latest(&self) -> Result<bool, StoreError> {
        let window = SalesWindow::latest_at(self.clock.now(), self.time_zone);
        let mut work = self.uow.begin().await?;
        let outcome = async {
            if work.rankings().has_snapshot(&window).await? {
                return Ok(false);
            }
            self.compute(work.as_mut(), &window).await.map(|_| true)
        }
        .await;
        finish(work, outcome).await
    }

    async fn compute(&self, work: &mut dyn Work, window: &SalesWindow) -> Result<BestProducts, StoreError> {
        let rankings = work.rankings();
        let ranked = rank_best(rankings.sales_in(window).await?);
        rankings.save_snapshot(window, &ranked, self.clock.now()).await?;
        rankings.find(window).await?.ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!("the snapshot of the window ending {} was not stored", window.to()))
        })
    }
}

/// Serves the stored snapshot whose window ends latest; never aggregates orders.
#[derive(Clone)]
pub struct GetBestProducts {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(GetBestProducts);

impl GetBestProducts {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    /// `None` before the first computation.
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self) -> Result<Option<BestProducts>, StoreError> {
        let mut work = self.uow.read().await?;
        let outcome = work.rankings().latest().await;
        finish(work, outcome).await
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Seoul;
    use domain::ProductId;
    use domain::ranking::ProductSales;

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork, at, fixed_clock};

    fn sales(id: i64, sold: i64) -> ProductSales {
        ProductSales { product_id: ProductId::new(id).unwrap(), sold_quantity: sold }
    }

    #[tokio::test]
    async fn refresh_ranks_the_window_of_the_given_date_and_stores_it() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let window = SalesWindow::ending_on(date, Seoul);
        let mut work = FakeWork::default();
        work.rankings
            .expect_sales_in()
            .withf(move |w| *w == window)
            .returning(|_| Ok(vec![sales(2, 3), sales(1, 3), sales(9, 7)]));
        work.rankings
            .expect_save_snapshot()
            .withf(move |w, ranked, calculated_at| {
                *w == window
                    && ranked.iter().map(|r| r.product_id.get()).collect::<Vec<_>>() == [9, 1, 2]
                    && *calculated_at == at(5)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        work.rankings
            .expect_find()
            .returning(move |w| Ok(Some(BestProducts { window: *w, calculated_at: at(5), items: vec![] })));
        let (uow, ended) = work.into_uow();
        let stored = RefreshBestProducts::new(uow, fixed_clock(at(5)), Seoul).execute(Some(date)).await.unwrap();
        assert_eq!(stored.window, window);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn start_up_does_not_recompute_a_stored_window() {
        let mut work = FakeWork::default();
        work.rankings.expect_has_snapshot().returning(|_| Ok(true));
        let (uow, _) = work.into_uow();
        let computed = RefreshBestProducts::new(uow, fixed_clock(at(5)), Seoul).ensure_latest().await.unwrap();
        assert!(!computed);
    }
}
