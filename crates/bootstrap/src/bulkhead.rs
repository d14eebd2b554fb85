//! The bulkhead in front of payments: the [`PaymentSlots`] the payment use case takes a
//! slot of, and holds until it has ended (ADR 0006, ADR 0013).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use application::ports::{PaymentSlots, Slot};
use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bulkhead in front of payments: at most `slots` run at once, so that payments
/// stuck on a slow data platform can never hold every database connection. A payment
/// beyond them waits for a slot at most `wait`, without holding anything, then is
/// refused with 503.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    refused: Arc<AtomicU64>,
}

impl Bulkhead {
    pub fn new(slots: usize, wait: Duration) -> Self {
        let capacity = slots.clamp(1, Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(capacity)), capacity, wait, refused: Arc::default() }
    }

    /// A slot, or `None` when none freed up within the wait.
    async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await.ok().and_then(Result::ok);
        if slot.is_none() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        slot
    }

    /// Payments refused so far for want of a slot.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }
}

#[async_trait]
impl PaymentSlots for Bulkhead {
    async fn enter(&self) -> Option<Slot> {
        self.permit().await.map(Slot::new)
    }
}

impl Default for Bulkhead {
    fn default() -> Self {
        Self::new(Semaphore::MAX_PERMITS, Duration::ZERO)
    }
}
