//! The stand-in platform: logs each event instead of sending it.

use application::ports::{DataPlatform, DataPlatformError, PaidOrderEvent, PaymentVoidEvent, RefundEvent};
use async_trait::async_trait;

/// A [`DataPlatform`] that only logs the event (at `info`) and always succeeds.
///
/// Used when no data platform URL is configured, e.g. in development.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingDataPlatform;

impl LoggingDataPlatform {
    pub const fn new() -> Self {
        Self
    }
}

#[async_trait]
impl DataPlatform for LoggingDataPlatform {
    async fn send_paid_order(&self, event: &PaidOrderEvent) -> Result<(), DataPlatformError> {
        tracing::info!(
            order_id = %event.order_id,
            user_id = %event.user_id,
            payment_amount = event.payment_amount.krw(),
            lines = event.lines.len(),
            idempotency_key = %event.idempotency_key(),
            "paid order (no data platform configured, event only logged)"
        );
        Ok(())
    }

    async fn send_payment_void(&self, event: &PaymentVoidEvent) -> Result<(), DataPlatformError> {
        tracing::info!(order_id = %event.order_id, idempotency_key = %event.idempotency_key(), "payment void (only logged)");
        Ok(())
    }

    async fn send_refund(&self, event: &RefundEvent) -> Result<(), DataPlatformError> {
        tracing::info!(
            order_id = %event.order_id,
            refund_amount = event.refund_amount.krw(),
            idempotency_key = %event.idempotency_key(),
            "refund (only logged)"
        );
        Ok(())
    }
}
