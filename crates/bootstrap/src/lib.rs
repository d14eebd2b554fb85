//! Wiring: configuration, the adapters plugged into the use cases, the HTTP server and
//! the background jobs. The `ecommerce` binary is a thin CLI over this crate, and the
//! end-to-end tests start the same [`Application`] on port 0.

mod bulkhead;
pub mod config;
mod jobs;
mod observability;
pub mod telemetry;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use adapter_data_platform::{HttpDataPlatform, LoggingDataPlatform};
use adapter_http::{AdminToken, AppState, Credentials, Deadlines, Draining, HttpSettings, Metrics};
use adapter_postgres::{PgUnitOfWork, PoolSettings};
use anyhow::Context;
use application::Shop;
use application::ports::{DataPlatform, SystemClock};
use application::resilience::BreakerSettings;
use application::{Ports, Settings};
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::bulkhead::Bulkhead;

/// A started service: the HTTP server bound and the background jobs running.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    jobs: jobs::Jobs,
    draining: Draining,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

/// Builds the use cases over PostgreSQL and the configured data platform.
pub fn shop(config: &Config) -> anyhow::Result<(Shop, adapter_postgres::PgPool)> {
    build(config, None).map(|built| (built.shop, built.pool))
}

/// What [`build`] wires.
struct Built {
    shop: Shop,
    pool: adapter_postgres::PgPool,
    /// The payments' bulkhead, for its metrics.
    bulkhead: Bulkhead,
}

/// [`shop`], with the data platform's sends timed on `registry` when one is given.
fn build(config: &Config, registry: Option<&prometheus::Registry>) -> anyhow::Result<Built> {
    let settings = PoolSettings {
        max_size: config.database_pool_size,
        wait_timeout: config.database_pool_wait,
        statement_timeout: config.database_statement_timeout,
        lock_timeout: config.database_lock_timeout,
        idle_in_transaction_timeout: config.idle_in_transaction_timeout(),
        ..PoolSettings::default()
    };
    let pool = adapter_postgres::connect(&config.database_url, settings)?;
    // Readiness pings on a connection of their own: they never queue behind requests.
    let probe = adapter_postgres::connect(
        &config.database_url,
        PoolSettings { max_size: 1, wait_timeout: Duration::from_millis(500), ..settings },
    )?;
    let (data_platform, gate): (Arc<dyn DataPlatform>, _) = match &config.data_platform_url {
        Some(url) => {
            let client = HttpDataPlatform::with_url(url.clone(), config.data_platform_timeout)
                .context("configuring the data platform client")?;
            let gate = BreakerSettings {
                failure_threshold: config.data_platform_breaker_failures,
                cooldown: config.data_platform_breaker_cooldown,
            };
            (Arc::new(client), Some(gate))
        }
        None => (Arc::new(LoggingDataPlatform::new()), None),
    };
    let data_platform = match registry {
        Some(registry) => Arc::new(
            observability::MeteredDataPlatform::new(data_platform, registry)
                .context("registering the data platform metrics")?,
        ),
        None => data_platform,
    };
    let bulkhead = Bulkhead::new(config.data_platform_max_in_flight, config.payment_slot_wait());
    let ports = Ports {
        uow: Arc::new(PgUnitOfWork::with_probe(pool.clone(), probe).with_key_ttl(config.idempotency_key_ttl)),
        clock: Arc::new(SystemClock),
        data_platform,
        payment_slots: Arc::new(bulkhead.clone()),
    };
    let settings = Settings {
        payment_timeout: config.payment_timeout,
        time_zone: config.time_zone,
        data_platform_breaker: gate,
        max_unpaid_orders: config.max_unpaid_orders_per_user,
    };
    Ok(Built { shop: Shop::new(&ports, settings), pool, bulkhead })
}

impl Application {
    /// Applies pending migrations, binds `config.http_addr` (port 0 picks a free one),
    /// and starts the server and the background jobs.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let applied = adapter_postgres::run_migrations(&config.database_url).await?;
        tracing::info!(applied, "migrations up to date");
        let metrics = Metrics::new().context("registering metrics")?;
        let Built { shop, pool, bulkhead } = build(config, Some(metrics.registry()))?;

        let listener = TcpListener::bind(config.http_addr).with_context(|| format!("binding {}", config.http_addr))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        let state = AppState {
            shop: Arc::new(shop.clone()),
            credentials: Credentials {
                admin_token: config.admin_token.as_deref().and_then(AdminToken::new),
                user_tokens: config.user_tokens.clone(),
            },
            // Use cases run here, not on the actix workers' runtimes (see AppState::run).
            runtime: tokio::runtime::Handle::current(),
            deadlines: Deadlines {
                database: config.database_deadline(),
                payment: config.database_deadline() + config.data_platform_timeout,
            },
            draining: Draining::default(),
        };
        let draining = state.draining.clone();
        let job_metrics =
            observability::register(metrics.registry(), pool, shop.data_platform_breaker.clone(), bulkhead)
                .context("registering the dependency metrics")?;
        let settings = HttpSettings { workers: config.http_workers, ..HttpSettings::default() };
        let server = adapter_http::serve(listener, state, metrics, settings).context("starting the HTTP server")?;
        let jobs = jobs::Jobs::start(&shop, config, job_metrics, CancellationToken::new());
        Ok(Self { port, server, jobs, draining })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes readiness answer 503 from now on, while everything else is served as
    /// before: the first step of a stop behind a load balancer.
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// A handle that stops the server gracefully (as SIGTERM does after the drain).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGTERM, SIGINT or [`Self::handle`]), then stops
    /// the background jobs and waits for them.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await.context("serving HTTP");
        self.jobs.stop().await;
        served
    }
}
