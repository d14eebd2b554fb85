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

/// What the service tells the platform when a payment it may have recorded was rolled
/// back and its order failed unpaid: forget that payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentVoidEvent {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub voided_at: DateTime<Utc>,
}

/// What the platform receives when the shop refunds a paid order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundEvent {
    pub order_id: OrderId,
    pub user_id: UserId,
    /// The order's payment amount, given back to the balance.
    pub refund_amount: Money,
    pub refunded_at: DateTime<Utc>,
}

/// An event the data platform receives. Adding one is a variant here and its body in
/// the HTTP adapter; every other implementation handles any event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformEvent {
    /// `ORDER_PAID`, sent inside the payment's transaction.
    OrderPaid(PaidOrderEvent),
    /// `ORDER_PAYMENT_VOIDED`, from the outbox.
    PaymentVoided(PaymentVoidEvent),
    /// `ORDER_REFUNDED`, from the outbox.
    OrderRefunded(RefundEvent),
}

impl PlatformEvent {
    /// The event's `type`, as the platform receives it.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::OrderPaid(_) => "ORDER_PAID",
            Self::PaymentVoided(_) => "ORDER_PAYMENT_VOIDED",
            Self::OrderRefunded(_) => "ORDER_REFUNDED",
        }
    }

    pub const fn order_id(&self) -> OrderId {
        match self {
            Self::OrderPaid(e) => e.order_id,
            Self::PaymentVoided(e) => e.order_id,
            Self::OrderRefunded(e) => e.order_id,
        }
    }

    /// The key under which the platform can drop a second delivery: one per event of
    /// an order, so a resend is harmless.
    pub fn idempotency_key(&self) -> String {
        let order = self.order_id();
        match self {
            Self::OrderPaid(_) => format!("order-{order}"),
            Self::PaymentVoided(_) => format!("order-{order}-void"),
            Self::OrderRefunded(_) => format!("order-{order}-refund"),
        }
    }
}

/// Whether a failed send may still have been recorded by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// Certainly not recorded: the platform answered with an error status, or the
    /// connection was refused before anything was sent.
    Refused,
    /// Perhaps recorded: no answer in time, or the connection was lost after the
    /// request was written.
    Uncertain,
}

/// The platform did not accept the event (refused, failed, or did not answer in time).
#[derive(Debug, thiserror::Error)]
#[error("the data platform did not accept order {order_id}: {reason}")]
pub struct DataPlatformError {
    pub order_id: OrderId,
    pub reason: String,
    pub failure: SendFailure,
}

/// The external data platform that is told about every paid order, void and refund.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DataPlatform: Send + Sync {
    /// Hands the event over, under [`PlatformEvent::idempotency_key`].
    ///
    /// # Errors
    /// MUST return an error unless the platform acknowledged the event, and MUST return
    /// within a bounded time (the implementation's timeout), so that a payment holding
    /// row locks is never stuck behind it.
    async fn send(&self, event: &PlatformEvent) -> Result<(), DataPlatformError>;
}
