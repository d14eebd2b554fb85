use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::pool_error;
use crate::flight::Flight;

/// The shared pool of PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// How the pool sizes itself, how long a request may wait, and the limits every
/// connection carries so that no lock, statement or lost peer holds one for long.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long a request waits for a free connection before the store is reported
    /// unavailable.
    pub wait_timeout: Duration,
    /// How long opening a new connection (or verifying an idle one) may take.
    pub connect_timeout: Duration,
    /// Server side: the longest one statement may run (`statement_timeout`).
    pub statement_timeout: Duration,
    /// Server side: the longest a statement waits for a row lock (`lock_timeout`).
    pub lock_timeout: Duration,
    /// Server side: a transaction left idle this long is ended and its locks released
    /// (`idle_in_transaction_session_timeout`). Must exceed the longest pause a use
    /// case makes inside a transaction (a payment's data-platform send).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            idle_in_transaction_timeout: Duration::from_secs(10),
        }
    }
}

/// TCP keepalive on every connection: a peer that vanished without closing (a lost
/// primary, a cut link) is noticed within about `IDLE + INTERVAL × RETRIES` seconds of
/// silence, and unacknowledged writes give up after `USER_TIMEOUT`.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection handed out again within this time of its last checkout is not
/// verified with a round trip: under load every connection is reused within
/// milliseconds, and verifying each would cost a round trip per request.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Builds the pool. Connections are opened when needed, so after a database outage
/// the pool recovers by itself: requests answer 503 while the database is down and
/// succeed again once it is back.
///
/// A connection is checked before it is handed out in two ways, neither costing a
/// round trip on a busy pool: one whose socket has closed (a restarted server closes
/// every session) is discarded, and one idle for a second or more must
/// answer `SELECT 1` first. What slips through (a server gone in the instant between
/// the two) fails its `BEGIN`, which [`crate::PgUnitOfWork`] retries once on another
/// connection.
pub fn connect(database_url: &str, settings: PoolSettings) -> anyhow::Result<PgPool> {
    // Fail now, not at the first request, on a URL tokio-postgres cannot read.
    tokio_postgres::Config::from_str(database_url).context("reading DATABASE_URL")?;
    let mut config = ManagerConfig::default();
    // Fast: only a connection whose socket closed is refused; the hook below verifies
    // idle ones.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| establish(url, settings));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .pre_recycle(Hook::async_fn(|conn: &mut AsyncPgConnection, metrics| {
            let idle = metrics.last_used() >= VERIFY_AFTER_IDLE;
            async move {
                if idle {
                    conn.batch_execute("SELECT 1").await.map_err(|e| HookError::Backend(PoolError::QueryError(e)))?;
                }
                Ok(())
            }
            .boxed()
        }))
        .build()
        .context("building the database pool")
}

/// Opens one connection with the session limits of `settings` sent in the start-up
/// packet (no extra round trip) and TCP keepalives on its socket, carrying a
/// [`Flight`] that tracks what it has in flight.
fn establish(url: &str, settings: PoolSettings) -> BoxFuture<'static, diesel::ConnectionResult<AsyncPgConnection>> {
    let config = tokio_postgres::Config::from_str(url).map(|mut config| {
        let limits = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis(),
            settings.idle_in_transaction_timeout.as_millis(),
        );
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {limits}"),
            _ => limits,
        };
        config
            .options(&options)
            .connect_timeout(settings.connect_timeout)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        config
    });
    async move {
        let config = config.map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        let (client, connection) =
            config.connect(tokio_postgres::NoTls).await.map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection).await?;
        conn.set_instrumentation(Flight::default());
        Ok(conn)
    }
    .boxed()
}

/// Whether the database answers a trivial query now.
pub async fn ping(pool: &PgPool) -> Result<(), application::StoreError> {
    let mut conn = pool.get().await.map_err(pool_error)?;
    conn.batch_execute("SELECT 1")
        .await
        .map_err(|e| application::StoreError::Unavailable(anyhow::Error::new(e).context("pinging the database")))
}
