use std::time::Duration;

use anyhow::Context;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use crate::error::pool_error;

/// The shared pool of PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// How the pool sizes itself and how long a request may wait for a connection.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long a request waits for a free connection before the store is reported
    /// unavailable.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_size: 16, wait_timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(3) }
    }
}

/// Builds the pool. Connections are opened when needed and an idle one is verified
/// before use, so after a database outage the pool recovers by itself: requests answer
/// 503 while the database is down and succeed again once it is back.
pub fn connect(database_url: &str, settings: PoolSettings) -> anyhow::Result<PgPool> {
    let mut config = ManagerConfig::default();
    // A connection that sat idle is checked before use, so a restarted server costs
    // no failed request.
    config.recycling_method = RecyclingMethod::Verified;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Whether the database answers a trivial query now.
pub async fn ping(pool: &PgPool) -> Result<(), application::StoreError> {
    let mut conn = pool.get().await.map_err(pool_error)?;
    conn.batch_execute("SELECT 1")
        .await
        .map_err(|e| application::StoreError::Unavailable(anyhow::Error::new(e).context("pinging the database")))
}
