//! The parameters of the rules that come from configuration.

use domain::order::PaymentTimeout;

use crate::resilience::BreakerSettings;

/// Settings that shape the rules' parameters.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub payment_timeout: PaymentTimeout,
    pub time_zone: chrono_tz::Tz,
    /// When the data platform's circuit breaker opens; `None` for a platform that
    /// cannot fail (the logging stand-in): its breaker never opens.
    pub data_platform_breaker: Option<BreakerSettings>,
    /// How many of a user's orders may wait for payment at once.
    pub max_unpaid_orders: u32,
}
