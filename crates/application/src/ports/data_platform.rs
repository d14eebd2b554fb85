// The mock mockall generates has one field per method, all named `send_*`.
#![cfg_attr(any(test, feature = "mocks"), allow(clippy::struct_field_names))]

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

/// What the service tells the platform when a payment it may have recorded was rolled
/// back and its order failed unpaid: forget that payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentVoidEvent {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub voided_at: DateTime<Utc>,
}

impl PaymentVoidEvent {
    /// The key under which the platform can drop a second delivery of this void.
    pub fn idempotency_key(&self) -> String {
        format!("order-{}-void", self.order_id)
    }
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

impl RefundEvent {
    /// The key under which the platform can drop a second delivery of this refund.
    pub fn idempotency_key(&self) -> String {
        format!("order-{}-refund", self.order_id)
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

    /// Hands a void over, under [`PaymentVoidEvent::idempotency_key`].
    ///
    /// # Errors
    /// The same contract as [`DataPlatform::send_paid_order`].
    async fn send_payment_void(&self, event: &PaymentVoidEvent) -> Result<(), DataPlatformError>;

    /// Hands a refund over, under [`RefundEvent::idempotency_key`].
    ///
    /// # Errors
    /// The same contract as [`DataPlatform::send_paid_order`].
    async fn send_refund(&self, event: &RefundEvent) -> Result<(), DataPlatformError>;
}
