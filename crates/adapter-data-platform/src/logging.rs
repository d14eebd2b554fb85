//! The stand-in platform: logs each event instead of sending it.

use application::ports::{DataPlatform, DataPlatformError, PlatformEvent};
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
    async fn send(&self, event: &PlatformEvent) -> Result<(), DataPlatformError> {
        tracing::info!(
            event = event.type_name(),
            order_id = %event.order_id(),
            idempotency_key = %event.idempotency_key(),
            "data platform event (no data platform configured, only logged)"
        );
        Ok(())
    }
}
