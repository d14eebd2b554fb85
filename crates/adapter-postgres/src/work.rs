use std::time::Duration;

use application::ports::{
    CouponRepository, IdempotencyRepository, OrderRepository, OutboxRepository, PaymentRepository, ProductRepository,
    RankingRepository, UserRepository,
};
use application::{StoreError, UnitOfWork, Work};
use async_trait::async_trait;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

use crate::error::{StoreContext, is_connection_lost, pool_error};
use crate::flight::{FlightWatch, InFlight};
use crate::pool::PgPool;

/// Units of work over pooled PostgreSQL connections.
#[derive(Clone)]
pub struct PgUnitOfWork {
    pool: PgPool,
    /// Where readiness pings go: a pool of its own, so a probe never queues behind
    /// requests for a connection.
    probe: PgPool,
    /// How long an idempotency key is kept.
    key_ttl: Duration,
}

/// How long idempotency keys are kept unless configured otherwise (a day).
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(86_400);

/// The longest a readiness ping may take before the database counts as not answering.
const PING_WITHIN: Duration = Duration::from_millis(800);

impl std::fmt::Debug for PgUnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUnitOfWork")
            .field("pool", &self.pool.status())
            .field("probe", &self.probe.status())
            .field("key_ttl", &self.key_ttl)
            .finish()
    }
}

impl PgUnitOfWork {
    /// Units of work over `pool`; readiness pings share it.
    pub fn new(pool: PgPool) -> Self {
        Self { probe: pool.clone(), pool, key_ttl: DEFAULT_KEY_TTL }
    }

    /// Units of work over `pool`, with readiness pings on `probe` (a pool of one
    /// connection is enough).
    pub fn with_probe(pool: PgPool, probe: PgPool) -> Self {
        Self { pool, probe, key_ttl: DEFAULT_KEY_TTL }
    }

    /// Keeps idempotency keys for `ttl` (then they count as unused and are deleted).
    #[must_use]
    pub fn with_key_ttl(mut self, ttl: Duration) -> Self {
        self.key_ttl = ttl;
        self
    }

    async fn connection(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    fn work(&self, conn: Object<AsyncPgConnection>, in_transaction: bool) -> PgWork {
        PgWork::new(conn, in_transaction, self.key_ttl)
    }
}

#[async_trait]
impl UnitOfWork for PgUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Work>, StoreError> {
        // The pool hands out connections without a round trip to check them (see
        // `pool::connect`): one whose session the server ended unnoticed fails its
        // BEGIN, before anything ran, and the work begins again on another. After a
        // server restart every pooled connection may be such a one, so the bound is
        // the pool's size, plus one for a connection opened fresh.
        let attempts = self.pool.status().max_size + 1;
        let mut attempt = 1;
        loop {
            let mut work = self.work(self.connection().await?, true);
            match AnsiTransactionManager::begin_transaction(work.conn()).await {
                Ok(()) => return Ok(Box::new(work)),
                Err(error) if attempt < attempts && is_connection_lost(&error) => {
                    tracing::debug!(%error, "a pooled connection was lost; beginning on another");
                    work.discard();
                    attempt += 1;
                }
                Err(error) => {
                    work.discard();
                    return Err(error).store_context("beginning a transaction");
                }
            }
        }
    }

    async fn autocommit(&self) -> Result<Box<dyn Work>, StoreError> {
        let conn = self.connection().await?;
        Ok(Box::new(self.work(conn, false)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(PING_WITHIN, crate::pool::ping(&self.probe)).await {
            Ok(answered) => answered,
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "the database did not answer a ping within {} ms",
                PING_WITHIN.as_millis()
            ))),
        }
    }
}

/// One pooled connection, inside a transaction or in autocommit mode. Every repository
/// is implemented on it, so all of a work's statements share its transaction.
///
/// A work can be dropped anywhere — its request passed its deadline — even while a
/// statement or its `COMMIT` is in flight. Then its connection is closed, never given
/// back to the pool (it would answer the abandoned statement to the next user, or hold
/// its locks), and a write that may have been applied is reported with
/// [`application::scope::write_in_doubt`].
pub(crate) struct PgWork {
    /// Always `Some` until the work is discarded or dropped.
    conn: Option<Object<AsyncPgConnection>>,
    /// What the connection has in flight.
    flight: FlightWatch,
    /// A transaction is open on the connection (from `BEGIN` until its `COMMIT` or
    /// `ROLLBACK` has been answered).
    in_transaction: bool,
    pub(crate) key_ttl: Duration,
}

impl PgWork {
    fn new(mut conn: Object<AsyncPgConnection>, in_transaction: bool, key_ttl: Duration) -> Self {
        let flight = FlightWatch::of(&mut conn);
        Self { conn: Some(conn), flight, in_transaction, key_ttl }
    }

    /// The connection. Only `discard` and `drop` take it out, and nothing uses a work
    /// after either, so it is always there for a repository call.
    pub(crate) fn conn(&mut self) -> &mut AsyncPgConnection {
        match self.conn.as_mut() {
            Some(conn) => conn,
            None => unreachable!("a work is used after it ended"),
        }
    }

    /// Closes the connection instead of giving it back to the pool.
    fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }

    async fn end(mut self: Box<Self>, commit: bool) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Ok(());
        }
        // The connection stays in the work while its COMMIT is in flight: if the work
        // is dropped now, `drop` sees it.
        let ended = if commit {
            AnsiTransactionManager::commit_transaction(self.conn()).await.store_context("committing")
        } else {
            AnsiTransactionManager::rollback_transaction(self.conn()).await.store_context("rolling back")
        };
        self.in_transaction = false;
        if ended.is_err() {
            // Whatever state the connection is in, it must not serve anyone else.
            self.discard();
        }
        ended
    }
}

impl Drop for PgWork {
    fn drop(&mut self) {
        let in_flight = self.flight.now();
        if in_flight == InFlight::MayApply {
            application::scope::write_in_doubt();
        }
        // A transaction left open would hand its locks to the pool, a statement in
        // flight its answer: close the connection; PostgreSQL rolls back what was not
        // committed.
        if self.in_transaction || in_flight != InFlight::Nothing {
            tracing::debug!(?in_flight, in_transaction = self.in_transaction, "discarding an abandoned connection");
            self.discard();
        }
    }
}

#[async_trait]
impl Work for PgWork {
    fn users(&mut self) -> &mut dyn UserRepository {
        self
    }
    fn products(&mut self) -> &mut dyn ProductRepository {
        self
    }
    fn coupons(&mut self) -> &mut dyn CouponRepository {
        self
    }
    fn orders(&mut self) -> &mut dyn OrderRepository {
        self
    }
    fn payments(&mut self) -> &mut dyn PaymentRepository {
        self
    }
    fn rankings(&mut self) -> &mut dyn RankingRepository {
        self
    }
    fn idempotency(&mut self) -> &mut dyn IdempotencyRepository {
        self
    }
    fn outbox(&mut self) -> &mut dyn OutboxRepository {
        self
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.end(true).await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.end(false).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;
    use diesel_async::SimpleAsyncConnection;
    use domain::points::Balance;

    use crate::PgPool;
    use crate::fixtures::{count, fixture, user};

    /// Ends every other session of the test's database, as a server restart does, and
    /// waits until their backends are gone.
    async fn end_other_sessions(pool: &PgPool) -> i64 {
        count(
            pool,
            "SELECT count(*) FROM pg_stat_activity a, pg_terminate_backend(a.pid, 5000) AS ended \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND ended",
        )
        .await
    }

    /// Opens `n` pooled connections at once and returns them to the pool.
    async fn fill(pool: &PgPool, n: usize) {
        let held = futures::future::join_all((0..n).map(|_| pool.get())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn transactions_begun_right_after_the_server_ended_every_session_all_succeed() {
        let f = fixture().await;
        let user = user(&f.uow).await;
        fill(&f.pool, 8).await;
        assert!(end_other_sessions(&f.pool).await >= 7);
        // No pause: some connections are still taken for alive when handed out; their
        // BEGIN fails and the work begins again on another.
        let works = futures::future::join_all((0..8).map(|_| async {
            let mut work = f.uow.begin().await?;
            let exists = work.users().exists(user).await?;
            work.commit().await.map(|()| exists)
        }))
        .await;
        assert!(works.iter().all(|w| matches!(w, Ok(true))), "{works:?}");
    }

    #[tokio::test]
    async fn reads_after_a_server_restart_ended_every_session_all_succeed() {
        let f = fixture().await;
        let user = user(&f.uow).await;
        fill(&f.pool, 8).await;
        assert!(end_other_sessions(&f.pool).await >= 7);
        // A restart takes longer than this: by the first request after it, each pooled
        // connection has read its socket's end and is refused when handed out.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let reads = futures::future::join_all((0..8).map(|_| async {
            let mut work = f.uow.autocommit().await?;
            work.users().find(user).await
        }))
        .await;
        assert!(reads.iter().all(|r| matches!(r, Ok(Some(_)))), "{reads:?}");
    }

    /// Runs `write` (which waits on a row lock) inside an outcome watch, gives it up
    /// after 300 ms, and returns whether a write was reported in doubt and how many
    /// connections the pool has afterwards, against what it would have if the work's
    /// connection had been given back.
    async fn give_up_on(
        pool: &PgPool,
        write: impl Future<Output = Result<(), application::StoreError>>,
    ) -> (bool, usize, usize) {
        let before = pool.status();
        let kept = before.size + usize::from(before.available == 0);
        let (outcome, in_doubt) =
            application::scope::run(None, tokio::time::timeout(std::time::Duration::from_millis(300), write)).await;
        assert!(outcome.is_err(), "the write waited on the lock: {outcome:?}");
        (in_doubt, pool.status().size, kept)
    }

    #[tokio::test]
    async fn a_work_given_up_mid_statement_closes_its_connection_and_says_whether_the_write_may_apply() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        // Another session holds the user's row, so that every write of it waits.
        let mut holder = f.pool.get().await.unwrap();
        holder.batch_execute(&format!("BEGIN; SELECT * FROM users WHERE id = {id} FOR UPDATE")).await.unwrap();

        // In autocommit mode the statement may still apply once the lock is released.
        let (in_doubt, size, kept) = give_up_on(&f.pool, async {
            let mut work = f.uow.autocommit().await?;
            work.users().set_balance(id, Balance::new(500).unwrap()).await
        })
        .await;
        assert!(in_doubt, "an autocommitted write in flight is in doubt");
        assert_eq!(size, kept - 1, "its connection was closed, not given back");

        // Inside a transaction, closing the connection rolls the statement back.
        let (in_doubt, size, kept) = give_up_on(&f.pool, async {
            let mut work = f.uow.begin().await?;
            work.users().set_balance(id, Balance::new(700).unwrap()).await
        })
        .await;
        assert!(!in_doubt, "a statement inside a transaction is rolled back with its connection");
        assert_eq!(size, kept - 1, "its connection was closed, not given back");

        holder.batch_execute("ROLLBACK").await.unwrap();
        drop(holder);
        // The abandoned autocommitted write applied after all (it is why the outcome
        // was unknown); the abandoned transaction's did not.
        let applied = async || f.uow.autocommit().await.unwrap().users().find(id).await.unwrap().unwrap().balance;
        let mut balance = applied().await;
        for _ in 0..50 {
            if balance != Balance::ZERO {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            balance = applied().await;
        }
        assert_eq!(balance, Balance::new(500).unwrap());

        // A work that ends normally gives its connection back and leaves nothing in doubt.
        let before = f.pool.status();
        let ((), in_doubt) = application::scope::run(None, async {
            let mut work = f.uow.begin().await.unwrap();
            work.users().set_balance(id, Balance::new(900).unwrap()).await.unwrap();
            work.commit().await.unwrap();
        })
        .await;
        assert!(!in_doubt);
        assert_eq!(f.pool.status().size, before.size + usize::from(before.available == 0));
    }

    #[tokio::test]
    async fn a_rolled_back_work_leaves_no_trace_and_a_dropped_one_neither() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        let mut work = f.uow.begin().await.unwrap();
        work.users().set_balance(id, Balance::new(500).unwrap()).await.unwrap();
        work.rollback().await.unwrap();
        let mut work = f.uow.begin().await.unwrap();
        work.users().set_balance(id, Balance::new(700).unwrap()).await.unwrap();
        drop(work);
        let mut read = f.uow.autocommit().await.unwrap();
        assert_eq!(read.users().find(id).await.unwrap().unwrap().balance, Balance::ZERO);
        // The dropped work's lock was released with its connection: the row can be locked now.
        let mut work = f.uow.begin().await.unwrap();
        assert!(work.users().lock_balance(id).await.unwrap().is_some());
        work.commit().await.unwrap();
    }
}
