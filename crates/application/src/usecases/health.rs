//! Readiness: whether the service can serve requests that need the store, and how the
//! data platform fares (reported, never a reason to be unready: it affects payments only).

use std::sync::Arc;

use crate::opaque_debug::opaque_debug;
use crate::ports::{Ports, StoreError, UnitOfWork};
use crate::resilience::{BreakerState, CircuitBreaker};

/// What readiness reports when the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The data platform's circuit breaker.
    pub data_platform: BreakerState,
    /// Payments admitted and not yet finished.
    pub payments_in_flight: usize,
}

/// Reports whether the store answers.
#[derive(Clone)]
pub struct CheckReadiness {
    uow: Arc<dyn UnitOfWork>,
    breaker: Arc<CircuitBreaker>,
}
opaque_debug!(CheckReadiness);

impl CheckReadiness {
    pub fn new(uow: Arc<dyn UnitOfWork>, breaker: Arc<CircuitBreaker>) -> Self {
        Self { uow, breaker }
    }

    /// # Errors
    /// The store's error when it does not answer (the adapter bounds the wait).
    pub async fn execute(&self) -> Result<Readiness, StoreError> {
        self.uow.ping().await?;
        Ok(Readiness { data_platform: self.breaker.state(), payments_in_flight: self.breaker.in_flight() })
    }
}

/// The health use cases.
#[derive(Debug, Clone)]
pub struct Health {
    pub readiness: CheckReadiness,
}

impl Health {
    pub fn new(ports: &Ports, breaker: &Arc<CircuitBreaker>) -> Self {
        Self { readiness: CheckReadiness::new(ports.uow.clone(), breaker.clone()) }
    }
}
