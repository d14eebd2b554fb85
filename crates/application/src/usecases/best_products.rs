//! Best products: computing the daily snapshot and serving the latest one.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use domain::ranking::{SalesWindow, rank_best};

use crate::opaque_debug::opaque_debug;
use crate::ports::{BestProducts, Clock, Ports, StoreError, UnitOfWork, Work, finish};
use crate::settings::Settings;

/// How long this instance serves the latest snapshot from memory before reading it
/// again. The ranking changes once a day; what the read refreshes is the products'
/// name, price and stock, which may therefore lag by up to this much.
pub const LATEST_SNAPSHOT_MAX_AGE: TimeDelta = TimeDelta::seconds(1);

/// The latest snapshot as this instance last read it, shared by [`GetBestProducts`]
/// (which fills it) and [`RefreshBestProducts`] (which empties it after storing a
/// snapshot, so that a refresh is visible here at once; other instances see it once
/// their copy is older than [`LATEST_SNAPSHOT_MAX_AGE`]).
///
/// Requests that miss at the same moment each read: a handful of reads once a second
/// costs less than making them queue behind one read, where a failing database would
/// make each waiter time out in turn.
#[derive(Debug, Default)]
pub struct LatestSnapshot {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    cached: Option<Cached>,
    /// Bumped by every [`LatestSnapshot::forget`]: a read that began before it must
    /// not store what it read.
    generation: u64,
}

#[derive(Debug, Clone)]
struct Cached {
    read_at: DateTime<Utc>,
    snapshot: Option<Arc<BestProducts>>,
}

impl LatestSnapshot {
    /// The cached snapshot if it was read less than the maximum age before `now`
    /// (and not after it: a clock that went back does not keep a copy forever).
    fn fresh(&self, now: DateTime<Utc>) -> Option<Cached> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = state.cached.as_ref()?;
        let age = now - cached.read_at;
        (age >= TimeDelta::zero() && age < LATEST_SNAPSHOT_MAX_AGE).then(|| cached.clone())
    }

    fn generation(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).generation
    }

    /// Stores a read unless a snapshot was stored since it began.
    fn keep(&self, began_at_generation: u64, read_at: DateTime<Utc>, snapshot: Option<Arc<BestProducts>>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.generation == began_at_generation {
            state.cached = Some(Cached { read_at, snapshot });
        }
    }

    fn forget(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.cached = None;
        state.generation = state.generation.wrapping_add(1);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the window ending at {ends} has not ended; it cannot be ranked yet")]
    NotEnded { ends: chrono::DateTime<chrono::Utc> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Computes the ranking of a window and stores it as that window's one snapshot.
#[derive(Clone)]
pub struct RefreshBestProducts {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
    latest: Arc<LatestSnapshot>,
}
opaque_debug!(RefreshBestProducts);

impl RefreshBestProducts {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, time_zone: Tz, latest: Arc<LatestSnapshot>) -> Self {
        Self { uow, clock, time_zone, latest }
    }

    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Recomputes the window ending at 00:00 of `date` (default: today) in the
    /// service's time zone, stores it, and returns it.
    ///
    /// # Errors
    /// [`RefreshError::NotEnded`] for a window that has not ended: its sales are not
    /// all in yet.
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, date: Option<NaiveDate>) -> Result<BestProducts, RefreshError> {
        let now = self.clock.now();
        let window = match date {
            Some(date) => SalesWindow::ending_on(date, self.time_zone),
            None => SalesWindow::latest_at(now, self.time_zone),
        };
        if window.to() > now {
            return Err(RefreshError::NotEnded { ends: window.to() });
        }
        let mut work = self.uow.begin().await?;
        let outcome = self.compute(work.as_mut(), &window).await;
        let stored = finish(work, outcome).await?;
        self.latest.forget();
        Ok(stored)
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
        let computed = finish(work, outcome).await?;
        if computed {
            self.latest.forget();
        }
        Ok(computed)
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

/// Serves the stored snapshot whose window ends latest, from a copy at most
/// [`LATEST_SNAPSHOT_MAX_AGE`] old; never aggregates orders.
#[derive(Clone)]
pub struct GetBestProducts {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    latest: Arc<LatestSnapshot>,
}
opaque_debug!(GetBestProducts);

impl GetBestProducts {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, latest: Arc<LatestSnapshot>) -> Self {
        Self { uow, clock, latest }
    }

    /// `None` before the first computation.
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self) -> Result<Option<Arc<BestProducts>>, StoreError> {
        let read_at = self.clock.now();
        if let Some(cached) = self.latest.fresh(read_at) {
            return Ok(cached.snapshot);
        }
        let generation = self.latest.generation();
        let mut work = self.uow.autocommit().await?;
        let outcome = work.rankings().latest(read_at).await;
        let snapshot = finish(work, outcome).await?.map(Arc::new);
        self.latest.keep(generation, read_at, snapshot.clone());
        Ok(snapshot)
    }
}

/// The best-products use cases, sharing the latest snapshot.
#[derive(Debug, Clone)]
pub struct Rankings {
    pub refresh: RefreshBestProducts,
    pub latest: GetBestProducts,
}

impl Rankings {
    pub fn new(ports: &Ports, settings: &Settings) -> Self {
        let latest = Arc::new(LatestSnapshot::default());
        Self {
            refresh: RefreshBestProducts::new(
                ports.uow.clone(),
                ports.clock.clone(),
                settings.time_zone,
                latest.clone(),
            ),
            latest: GetBestProducts::new(ports.uow.clone(), ports.clock.clone(), latest),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Seoul;
    use domain::ProductId;
    use domain::ranking::ProductSales;
    use domain::testing::at;

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn sales(id: i64, sold: i64) -> ProductSales {
        ProductSales { product_id: ProductId::new(id).unwrap(), sold_quantity: sold }
    }

    #[tokio::test]
    async fn a_window_that_has_not_ended_is_not_ranked_and_nothing_is_begun() {
        // The window ending at 00:00 of 2026-11-27 in Seoul ends at 15:00 UTC the day before.
        let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let before_it_ends = SalesWindow::ending_on(date, Seoul).to() - chrono::Duration::seconds(1);
        // A unit of work without expectations: beginning one would panic.
        let refresh = RefreshBestProducts::new(
            Arc::new(crate::ports::MockUnitOfWork::new()),
            fixed_clock(before_it_ends),
            Seoul,
            Arc::default(),
        );
        assert!(matches!(refresh.execute(Some(date)).await, Err(RefreshError::NotEnded { .. })));
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
        let stored =
            RefreshBestProducts::new(uow, fixed_clock(at(5)), Seoul, Arc::default()).execute(Some(date)).await.unwrap();
        assert_eq!(stored.window, window);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    /// A clock the test moves by hand.
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn at(now: DateTime<Utc>) -> Arc<Self> {
            Arc::new(Self(Mutex::new(now)))
        }
        fn set(&self, now: DateTime<Utc>) {
            *self.0.lock().unwrap() = now;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    /// A store whose every read serves a snapshot calculated at `at(n)`, `n` counting
    /// the reads from 1; a read while `down` is set fails.
    #[derive(Default)]
    struct CountingStore {
        reads: std::sync::atomic::AtomicI64,
        down: std::sync::atomic::AtomicBool,
    }

    impl CountingStore {
        fn reads(&self) -> i64 {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl UnitOfWork for CountingStore {
        async fn begin(&self) -> Result<Box<dyn Work>, StoreError> {
            let mut work = FakeWork::default();
            work.rankings.expect_sales_in().returning(|_| Ok(vec![]));
            work.rankings.expect_save_snapshot().returning(|_, _, _| Ok(()));
            work.rankings
                .expect_find()
                .returning(|w| Ok(Some(BestProducts { window: *w, calculated_at: at(0), items: vec![] })));
            Ok(Box::new(work))
        }
        async fn autocommit(&self) -> Result<Box<dyn Work>, StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable(anyhow::anyhow!("down")));
            }
            let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut work = FakeWork::default();
            work.rankings.expect_latest().returning(move |_| {
                let window = SalesWindow::ending_on(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(), Seoul);
                Ok(Some(BestProducts { window, calculated_at: at(n), items: vec![] }))
            });
            Ok(Box::new(work))
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn served_read(snapshot: Option<&Arc<BestProducts>>) -> DateTime<Utc> {
        snapshot.unwrap().calculated_at
    }

    #[tokio::test]
    async fn the_latest_snapshot_is_read_again_only_once_it_is_a_second_old() {
        let store = Arc::new(CountingStore::default());
        let clock = ManualClock::at(at(100));
        let get = GetBestProducts::new(store.clone(), clock.clone(), Arc::default());

        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(1));
        clock.set(at(100) + LATEST_SNAPSHOT_MAX_AGE - TimeDelta::microseconds(1));
        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(1), "still fresh: served from memory");
        assert_eq!(store.reads(), 1);

        clock.set(at(100) + LATEST_SNAPSHOT_MAX_AGE);
        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(2), "a second old: read again");
        clock.set(at(50));
        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(3), "the clock went back: read again");
        assert_eq!(store.reads(), 3);
    }

    #[tokio::test]
    async fn a_refresh_on_this_instance_is_served_at_once() {
        let store = Arc::new(CountingStore::default());
        let clock = ManualClock::at(at(100));
        let latest = Arc::new(LatestSnapshot::default());
        let get = GetBestProducts::new(store.clone(), clock.clone(), latest.clone());
        let refresh = RefreshBestProducts::new(store.clone(), clock, Seoul, latest);

        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(1));
        refresh.execute(None).await.unwrap();
        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(2));
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_remembered() {
        let store = Arc::new(CountingStore::default());
        let get = GetBestProducts::new(store.clone(), ManualClock::at(at(100)), Arc::default());

        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(get.execute().await, Err(StoreError::Unavailable(_))));
        store.down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(served_read(get.execute().await.unwrap().as_ref()), at(1));
    }

    #[tokio::test]
    async fn a_read_that_began_before_a_refresh_is_not_kept() {
        let latest = LatestSnapshot::default();
        let generation = latest.generation();
        latest.forget();
        latest.keep(generation, at(100), None);
        assert!(latest.fresh(at(100)).is_none(), "the stale read was dropped");
    }

    #[tokio::test]
    async fn start_up_does_not_recompute_a_stored_window() {
        let mut work = FakeWork::default();
        work.rankings.expect_has_snapshot().returning(|_| Ok(true));
        let (uow, _) = work.into_uow();
        let computed =
            RefreshBestProducts::new(uow, fixed_clock(at(5)), Seoul, Arc::default()).ensure_latest().await.unwrap();
        assert!(!computed);
    }
}
