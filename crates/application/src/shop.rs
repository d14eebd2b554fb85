//! The shop's composition root: [`Shop`] wires every capability's use cases to one set
//! of ports, for an inbound adapter (and the background jobs) to call.

use std::sync::Arc;

use crate::ports::Ports;
use crate::resilience::CircuitBreaker;
use crate::settings::Settings;
use crate::usecases::{
    best_products, catalog, coupons, health, idempotency_keys, orders, outbox, payments, points, users,
};

/// Every use case of the shop, one field per capability (each capability's module
/// wires its own use cases).
#[derive(Debug, Clone)]
pub struct Shop {
    pub users: users::Users,
    pub points: points::Points,
    pub catalog: catalog::Catalog,
    pub coupons: coupons::Coupons,
    pub orders: orders::Orders,
    pub payments: payments::Payments,
    pub best_products: best_products::Rankings,
    pub health: health::Health,
    pub idempotency_keys: idempotency_keys::IdempotencyKeys,
    pub outbox: outbox::Outbox,
    /// The circuit breaker in front of payments, for metrics and readiness.
    pub data_platform_breaker: Arc<CircuitBreaker>,
}

impl Shop {
    pub fn new(ports: &Ports, settings: Settings) -> Self {
        let breaker = Arc::new(match settings.data_platform_breaker {
            Some(bounds) => CircuitBreaker::new(bounds, ports.clock.clone()),
            None => CircuitBreaker::never_open(ports.clock.clone()),
        });
        Self {
            users: users::Users::new(ports),
            points: points::Points::new(ports),
            catalog: catalog::Catalog::new(ports),
            coupons: coupons::Coupons::new(ports),
            orders: orders::Orders::new(ports, &settings),
            payments: payments::Payments::new(ports, &breaker),
            best_products: best_products::Rankings::new(ports, &settings),
            health: health::Health::new(ports, &breaker),
            idempotency_keys: idempotency_keys::IdempotencyKeys::new(ports),
            outbox: outbox::Outbox::new(ports),
            data_platform_breaker: breaker,
        }
    }
}
