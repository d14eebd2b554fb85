//! Housekeeping of idempotency keys: deleting those past their lifetime.

use std::sync::Arc;

use crate::opaque_debug::opaque_debug;
use crate::ports::{Ports, StoreError, UnitOfWork, finish};

/// Deletes expired idempotency keys in batches, each batch its own transaction.
#[derive(Clone)]
pub struct PurgeExpiredKeys {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(PurgeExpiredKeys);

impl PurgeExpiredKeys {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    /// Deletes up to `batch` expired keys; returns how many. Several instances may run
    /// it at once: each skips the rows another holds.
    pub async fn execute(&self, batch: u32) -> Result<u64, StoreError> {
        let mut work = self.uow.begin().await?;
        let outcome = work.idempotency().delete_expired(batch).await;
        finish(work, outcome).await
    }
}

/// The idempotency keys' upkeep.
#[derive(Debug, Clone)]
pub struct IdempotencyKeys {
    pub purge: PurgeExpiredKeys,
}

impl IdempotencyKeys {
    pub fn new(ports: &Ports) -> Self {
        Self { purge: PurgeExpiredKeys::new(ports.uow.clone()) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork};

    #[tokio::test]
    async fn a_batch_is_deleted_in_one_committed_work() {
        let mut work = FakeWork::default();
        work.idempotency.expect_delete_expired().withf(|limit| *limit == 500).times(1).returning(|_| Ok(42));
        let ended = work.ended.clone();
        let (uow, _) = work.into_uow();
        assert_eq!(PurgeExpiredKeys::new(uow).execute(500).await.unwrap(), 42);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }
}
