//! Background jobs: the expiry sweep and the daily best-products computation. Both are
//! safe with any number of instances running at once — the sweep skips orders another
//! instance holds, and a window's snapshot is one row however many compute it.

use std::time::Duration;

use application::Shop;
use chrono::{DateTime, Utc};
use domain::ranking::{SalesWindow, next_run_after};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::observability::JobMetrics;

/// Margin past the longest a payment can take to commit (its data-platform send).
const SETTLE_MARGIN: Duration = Duration::from_secs(2);

/// How many orders one sweep expires at most before it yields.
const SWEEP_BATCH: u16 = 100;

/// How long a failed best-products computation waits before it is tried again.
const RANKING_RETRY: Duration = Duration::from_secs(60);

/// How often the outbox relay looks for due events, and how many it handles per pass.
const OUTBOX_RELAY_INTERVAL: Duration = Duration::from_secs(1);
const OUTBOX_BATCH: u32 = 50;

/// How often expired idempotency keys are deleted, and how many per transaction.
const KEY_PURGE_INTERVAL: Duration = Duration::from_secs(60);
const KEY_PURGE_BATCH: u32 = 1_000;

pub(crate) struct Jobs {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Jobs {
    pub(crate) fn start(shop: &Shop, config: &Config, metrics: JobMetrics, cancel: CancellationToken) -> Self {
        let mut tasks = JoinSet::new();
        tasks.spawn(expiry_sweep(shop.clone(), config.expiry_sweep_interval, metrics.clone(), cancel.clone()));
        tasks.spawn(relay_outbox(shop.clone(), metrics, cancel.clone()));
        tasks.spawn(purge_idempotency_keys(shop.clone(), cancel.clone()));
        tasks.spawn(daily_best_products(
            shop.clone(),
            config.time_zone,
            config.data_platform_timeout + SETTLE_MARGIN,
            cancel.clone(),
        ));
        Self { cancel, tasks }
    }

    pub(crate) async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Every `interval`, fails the unpaid orders past their deadline; a full batch of
/// expired orders means more may be waiting, so it goes again at once. Orders that
/// could not be expired are counted; the next pass tries them again.
async fn expiry_sweep(shop: Shop, interval: Duration, metrics: JobMetrics, cancel: CancellationToken) {
    loop {
        match shop.orders.expire.execute(SWEEP_BATCH).await {
            Ok(pass) => {
                metrics.sweep_failures.inc_by(u64::try_from(pass.failed.len()).unwrap_or(u64::MAX));
                // Only expired orders make room: a batch of failures waits for the interval.
                if pass.expired > 0 && pass.was_full(SWEEP_BATCH) && !cancel.is_cancelled() {
                    continue;
                }
            }
            Err(error) => tracing::warn!(%error, "order expiry sweep failed; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Every second, delivers the outbox's events that are due (see
/// `application::usecases::outbox`).
async fn relay_outbox(shop: Shop, metrics: JobMetrics, cancel: CancellationToken) {
    loop {
        match shop.outbox.deliver.execute(OUTBOX_BATCH).await {
            Ok(pass) => {
                metrics.outbox_backlog.set(pass.backlog);
                for (outcome, count) in
                    [("delivered", pass.delivered), ("dropped", pass.dropped), ("failed", pass.failed)]
                {
                    metrics.outbox_outcomes.with_label_values(&[outcome]).inc_by(u64::from(count));
                }
            }
            Err(error) => tracing::warn!(%error, "the outbox relay failed; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(OUTBOX_RELAY_INTERVAL) => {}
        }
    }
}

/// Every minute, deletes the idempotency keys past their lifetime, a batch per
/// transaction until none is left. Safe with several instances (each skips the rows
/// another is deleting).
async fn purge_idempotency_keys(shop: Shop, cancel: CancellationToken) {
    loop {
        loop {
            match shop.idempotency_keys.purge.execute(KEY_PURGE_BATCH).await {
                Ok(deleted) if deleted == u64::from(KEY_PURGE_BATCH) && !cancel.is_cancelled() => continue,
                Ok(deleted) => {
                    if deleted > 0 {
                        tracing::info!(deleted, "expired idempotency keys deleted");
                    }
                }
                Err(error) => tracing::warn!(%error, "deleting expired idempotency keys failed; retrying"),
            }
            break;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(KEY_PURGE_INTERVAL) => {}
        }
    }
}

/// At start-up computes the latest window if missing, then recomputes at every 00:00
/// of the service time zone — `settle` after it, so that a payment stamped before
/// midnight but still committing (it waits at most for its data-platform send) is
/// counted; the window is still the one ending at that midnight. A failed computation
/// is retried a minute later rather than a day later, the start-up one included.
async fn daily_best_products(shop: Shop, time_zone: chrono_tz::Tz, settle: Duration, cancel: CancellationToken) {
    // Started just after a midnight, the catch-up waits the same settle delay as the
    // midnight run, so that payments stamped before midnight have committed.
    let wait = catch_up_wait(Utc::now(), time_zone, settle);
    if !wait.is_zero() {
        tracing::info!(?wait, "waiting for the payments of the day that just ended before ranking it");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
    match compute_until_done(|| shop.best_products.refresh.ensure_latest(), RANKING_RETRY, &cancel).await {
        Some(true) => tracing::info!("best products computed for the latest window"),
        Some(false) => {}
        None => return,
    }
    loop {
        let next = next_run_after(Utc::now(), time_zone);
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO) + settle;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if compute_until_done(|| shop.best_products.refresh.execute(None), RANKING_RETRY, &cancel).await.is_none() {
            return;
        }
        tracing::info!(window_end = %next, "best products recomputed");
    }
}

/// How long the start-up catch-up waits: until `settle` past the latest midnight, so
/// nothing when that is already behind.
fn catch_up_wait(now: DateTime<Utc>, time_zone: chrono_tz::Tz, settle: Duration) -> Duration {
    let midnight = SalesWindow::latest_at(now, time_zone).to();
    let settled = midnight + chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    (settled - now).to_std().unwrap_or(Duration::ZERO)
}

/// Runs a best-products computation until it succeeds, `retry` apart, logging each
/// failure; `None` when the jobs are cancelled first.
async fn compute_until_done<T, E, F>(
    mut attempt: impl FnMut() -> F,
    retry: Duration,
    cancel: &CancellationToken,
) -> Option<T>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    loop {
        match attempt().await {
            Ok(done) => return Some(done),
            Err(error) => tracing::warn!(%error, retry_in = ?retry, "best products computation failed; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_up_waits_the_settle_delay_only_right_after_midnight() {
        let seoul = chrono_tz::Asia::Seoul;
        // 00:00:01 in Seoul is 15:00:01 UTC the day before.
        let just_after = "2026-11-26T15:00:01Z".parse::<DateTime<Utc>>().unwrap_or_default();
        assert_eq!(catch_up_wait(just_after, seoul, Duration::from_secs(5)), Duration::from_secs(4));
        let later = "2026-11-26T15:00:06Z".parse::<DateTime<Utc>>().unwrap_or_default();
        assert_eq!(catch_up_wait(later, seoul, Duration::from_secs(5)), Duration::ZERO);
        let midday = "2026-11-27T03:00:00Z".parse::<DateTime<Utc>>().unwrap_or_default();
        assert_eq!(catch_up_wait(midday, seoul, Duration::from_secs(5)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_failed_computation_is_tried_again_until_it_succeeds() {
        let mut attempts = 0;
        let done = compute_until_done(
            || {
                attempts += 1;
                let attempt = attempts;
                async move { if attempt < 3 { Err("database unavailable") } else { Ok(attempt) } }
            },
            Duration::from_millis(1),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(done, Some(3));
    }

    #[tokio::test]
    async fn retrying_stops_when_the_jobs_are_cancelled() {
        let cancel = CancellationToken::new();
        let mut attempts = 0;
        let done = compute_until_done(
            || {
                attempts += 1;
                cancel.cancel();
                async { Err::<(), _>("database unavailable") }
            },
            Duration::from_secs(3600),
            &cancel,
        )
        .await;
        assert_eq!((done, attempts), (None, 1));
    }
}
