//! Ports: what the use cases need from the outside world, as object-safe traits.
//!
//! Every repository method runs inside the [`Work`] that produced it. Under concurrency
//! the guarantees are those stated on each method; where a method says it locks, the
//! lock is held until the `Work` commits or rolls back.

mod clock;
mod data_platform;
mod error;
mod idempotency;
mod repositories;
mod set;
mod slots;
mod unit_of_work;

#[cfg(any(test, feature = "mocks"))]
pub use clock::MockClock;
pub use clock::{Clock, SystemClock};
#[cfg(any(test, feature = "mocks"))]
pub use data_platform::MockDataPlatform;
pub use data_platform::{
    DataPlatform, DataPlatformError, PaidOrderEvent, PaymentVoidEvent, PlatformEvent, RefundEvent, SendFailure,
};
pub use error::StoreError;
#[cfg(any(test, feature = "mocks"))]
pub use idempotency::MockIdempotencyRepository;
pub use idempotency::{Claim, IdempotencyKey, IdempotencyRepository, Reply};
pub use repositories::*;
pub use set::Ports;
#[cfg(any(test, feature = "mocks"))]
pub use slots::MockPaymentSlots;
pub use slots::{PaymentSlots, Slot};
#[cfg(any(test, feature = "mocks"))]
pub use unit_of_work::MockUnitOfWork;
pub(crate) use unit_of_work::finish;
pub use unit_of_work::{UnitOfWork, Work};
