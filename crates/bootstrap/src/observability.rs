//! Metrics of the service's dependencies, registered beside the HTTP metrics: the
//! database pool, the data platform's sends, the payment guards (bulkhead and circuit
//! breaker) and the expiry sweep. Wiring only: each value is read from the component
//! that owns it when Prometheus scrapes.

use std::sync::Arc;
use std::time::Instant;

use adapter_postgres::PgPool;
use application::ports::{DataPlatform, DataPlatformError, PlatformEvent};
use application::resilience::{BreakerState, CircuitBreaker};
use async_trait::async_trait;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::bulkhead::Bulkhead;

/// Gauges read at scrape time from the pool, the payment bulkhead and the breaker.
struct DependencyGauges {
    pool: PgPool,
    circuit_breaker: Arc<CircuitBreaker>,
    bulkhead: Bulkhead,
    pool_size: IntGauge,
    pool_max: IntGauge,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    breaker: IntGaugeVec,
    payments_in_flight: IntGauge,
    refused: IntCounterVec,
}

impl DependencyGauges {
    fn new(pool: PgPool, breaker: Arc<CircuitBreaker>, bulkhead: Bulkhead) -> prometheus::Result<Self> {
        Ok(Self {
            pool,
            circuit_breaker: breaker,
            bulkhead,
            pool_size: IntGauge::new("db_pool_connections", "Open database connections in the pool")?,
            pool_max: IntGauge::new("db_pool_max_connections", "The pool's maximum size")?,
            pool_in_use: IntGauge::new("db_pool_connections_in_use", "Pooled connections lent to requests and jobs")?,
            pool_waiting: IntGauge::new("db_pool_waiters", "Requests waiting for a pooled connection")?,
            breaker: IntGaugeVec::new(
                Opts::new(
                    "data_platform_breaker_state",
                    "The data platform's circuit breaker: 1 for its current state, 0 for the others",
                ),
                &["state"],
            )?,
            payments_in_flight: IntGauge::new(
                "payments_in_flight",
                "Payments holding a bulkhead slot (DATA_PLATFORM_MAX_IN_FLIGHT bounds them)",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "payments_refused_total",
                    "Payments refused before they began: busy (bulkhead full) or breaker_open",
                ),
                &["reason"],
            )?,
        })
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.pool_size,
            &self.pool_max,
            &self.pool_in_use,
            &self.pool_waiting,
            &self.breaker,
            &self.payments_in_flight,
            &self.refused,
        ]
    }
}

fn gauge_value(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for DependencyGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = self.pool.status();
        self.pool_size.set(gauge_value(status.size));
        self.pool_max.set(gauge_value(status.max_size));
        self.pool_in_use.set(gauge_value(status.size.saturating_sub(status.available)));
        self.pool_waiting.set(gauge_value(status.waiting));
        let state = self.circuit_breaker.state();
        for each in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
            self.breaker.with_label_values(&[each.as_str()]).set(i64::from(each == state));
        }
        self.payments_in_flight.set(gauge_value(self.bulkhead.in_use()));
        for (reason, total) in [("busy", self.bulkhead.refused()), ("breaker_open", self.circuit_breaker.refused())] {
            let counter = self.refused.with_label_values(&[reason]);
            counter.reset();
            counter.inc_by(total);
        }
        self.parts().into_iter().flat_map(Collector::collect).collect()
    }
}

/// The dependency metrics a running service updates itself.
#[derive(Debug, Clone)]
pub(crate) struct JobMetrics {
    /// Orders the expiry sweep failed to expire (each is retried on a later pass).
    pub(crate) sweep_failures: IntCounter,
    /// Events in the outbox: voids waiting for their order to end or for delivery,
    /// refunds waiting for delivery.
    pub(crate) outbox_backlog: IntGauge,
    /// What the outbox relay did: `delivered`, `dropped` (a void whose order was paid),
    /// `failed`.
    pub(crate) outbox_outcomes: IntCounterVec,
}

/// Registers the dependency metrics on `registry`; returns the ones jobs update.
pub(crate) fn register(
    registry: &Registry,
    pool: PgPool,
    breaker: Arc<CircuitBreaker>,
    bulkhead: Bulkhead,
) -> prometheus::Result<JobMetrics> {
    registry.register(Box::new(DependencyGauges::new(pool, breaker, bulkhead)?))?;
    let sweep_failures = IntCounter::new(
        "order_expiry_failures_total",
        "Orders the expiry sweep could not expire; each is skipped and retried on a later pass",
    )?;
    registry.register(Box::new(sweep_failures.clone()))?;
    let outbox_backlog = IntGauge::new(
        "data_platform_outbox_backlog",
        "Events for the data platform not yet delivered: voids (some waiting for their order to end) and refunds",
    )?;
    registry.register(Box::new(outbox_backlog.clone()))?;
    let outbox_outcomes = IntCounterVec::new(
        Opts::new(
            "data_platform_outbox_deliveries_total",
            "Outbox relay outcomes: delivered, dropped (a void whose order was paid after all), failed (retried with backoff)",
        ),
        &["outcome"],
    )?;
    registry.register(Box::new(outbox_outcomes.clone()))?;
    Ok(JobMetrics { sweep_failures, outbox_backlog, outbox_outcomes })
}

/// A [`DataPlatform`] that times each send and counts its outcome.
pub(crate) struct MeteredDataPlatform {
    inner: Arc<dyn DataPlatform>,
    latency: HistogramVec,
}

impl std::fmt::Debug for MeteredDataPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredDataPlatform").finish_non_exhaustive()
    }
}

impl MeteredDataPlatform {
    pub(crate) fn new(inner: Arc<dyn DataPlatform>, registry: &Registry) -> prometheus::Result<Self> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "data_platform_request_duration_seconds",
                "Sends to the data platform, by event type and outcome (accepted or failed)",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["event", "outcome"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { inner, latency })
    }
}

#[async_trait]
impl DataPlatform for MeteredDataPlatform {
    async fn send(&self, event: &PlatformEvent) -> Result<(), DataPlatformError> {
        let started = Instant::now();
        let sent = self.inner.send(event).await;
        let outcome = if sent.is_ok() { "accepted" } else { "failed" };
        self.latency.with_label_values(&[event.type_name(), outcome]).observe(started.elapsed().as_secs_f64());
        sent
    }
}
