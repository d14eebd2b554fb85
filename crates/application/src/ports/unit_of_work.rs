use async_trait::async_trait;

use super::error::StoreError;
use super::idempotency::IdempotencyRepository;
use super::repositories::{
    CouponRepository, OrderRepository, OutboxRepository, PaymentRepository, ProductRepository, RankingRepository,
    UserRepository,
};

/// Opens units of work. The use case owns the transaction boundary: it begins a
/// [`Work`], uses its repositories, and commits or rolls back.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Begins a transaction (READ COMMITTED). Everything done through the returned
    /// [`Work`] becomes visible to others at [`Work::commit`], or never.
    async fn begin(&self) -> Result<Box<dyn Work>, StoreError>;

    /// A session outside any transaction: each statement commits on its own, so it
    /// sees the latest committed state, and one statement is atomic. For reads, and
    /// for a write that one statement completes (a charge within the cap). `commit`
    /// and `rollback` end it without further effect.
    async fn autocommit(&self) -> Result<Box<dyn Work>, StoreError>;

    /// Whether the store answers now (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// One open unit of work and the repositories bound to it.
///
/// Dropping a `Work` without committing MUST discard its changes.
#[async_trait]
pub trait Work: Send {
    fn users(&mut self) -> &mut dyn UserRepository;
    fn products(&mut self) -> &mut dyn ProductRepository;
    fn coupons(&mut self) -> &mut dyn CouponRepository;
    fn orders(&mut self) -> &mut dyn OrderRepository;
    fn payments(&mut self) -> &mut dyn PaymentRepository;
    fn rankings(&mut self) -> &mut dyn RankingRepository;
    fn idempotency(&mut self) -> &mut dyn IdempotencyRepository;
    fn outbox(&mut self) -> &mut dyn OutboxRepository;

    /// Makes the work's changes durable and visible, and releases its locks.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Discards the work's changes and releases its locks.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// Ends `work` according to `outcome`: commits on `Ok`, rolls back on `Err`. A failed
/// commit turns the outcome into that failure; a failed rollback is only logged, since
/// the store discards an unfinished transaction anyway.
pub(crate) async fn finish<T, E>(work: Box<dyn Work>, outcome: Result<T, E>) -> Result<T, E>
where
    E: From<StoreError>,
{
    match outcome {
        Ok(value) => {
            work.commit().await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = work.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed; the transaction is discarded with its connection");
            }
            Err(error)
        }
    }
}
