use std::sync::Arc;

use super::clock::Clock;
use super::data_platform::DataPlatform;
use super::slots::PaymentSlots;
use super::unit_of_work::UnitOfWork;

/// The outbound ports every use case draws from.
#[derive(Clone)]
pub struct Ports {
    pub uow: Arc<dyn UnitOfWork>,
    pub clock: Arc<dyn Clock>,
    pub data_platform: Arc<dyn DataPlatform>,
    /// The bulkhead every payment takes a slot of before it begins.
    pub payment_slots: Arc<dyn PaymentSlots>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
