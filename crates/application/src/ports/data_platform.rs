use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::order::OrderLine;
use domain::{Money, OrderId, UserId};

/// What the data platform receives about a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidOrderEvent {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub lines: Vec<OrderLine>,
    pub total_amount: Money,
    pub discount_amount: Money,
    pub payment_amount: Money,
    pub paid_at: DateTime<Utc>,
}

impl PaidOrderEvent {
    /// The key under which the platform can drop a second delivery of this event.
    pub fn idempotency_key(&self) -> String {
        format!("order-{}", self.order_id)
    }
}

/// The platform did not accept the event (refused, failed, or did not answer in time).
#[derive(Debug, thiserror::Error)]
#[error("the data platform did not accept order {order_id}: {reason}")]
pub struct DataPlatformError {
    pub order_id: OrderId,
    pub reason: String,
}

/// The external data platform that is told about every paid order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DataPlatform: Send + Sync {
    /// Hands the event over.
    ///
    /// # Errors
    /// MUST return an error unless the platform acknowledged the event, and MUST return
    /// within a bounded time (the implementation's timeout), so that a payment holding
    /// row locks is never stuck behind it. The event MUST carry
    /// [`PaidOrderEvent::idempotency_key`] so that a resend is harmless.
    async fn send_paid_order(&self, event: &PaidOrderEvent) -> Result<(), DataPlatformError>;
}
