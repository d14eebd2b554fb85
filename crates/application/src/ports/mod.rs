//! Ports: what the use cases need from the outside world, as object-safe traits.
//!
//! Every repository method runs inside the [`Work`] that produced it. Under concurrency
//! the guarantees are those stated on each method; where a method says it locks, the
//! lock is held until the `Work` commits or rolls back.

mod clock;
mod data_platform;
mod idempotency;
mod repositories;
mod unit_of_work;

#[cfg(any(test, feature = "mocks"))]
pub use clock::MockClock;
pub use clock::{Clock, SystemClock};
#[cfg(any(test, feature = "mocks"))]
pub use data_platform::MockDataPlatform;
pub use data_platform::{DataPlatform, DataPlatformError, PaidOrderEvent, PaymentVoidEvent, SendFailure};
#[cfg(any(test, feature = "mocks"))]
pub use idempotency::MockIdempotencyRepository;
pub use idempotency::{Claim, IdempotencyKey, IdempotencyRepository, StoredReply};
pub use repositories::*;
#[cfg(any(test, feature = "mocks"))]
pub use unit_of_work::MockUnitOfWork;
pub(crate) use unit_of_work::finish;
pub use unit_of_work::{StoreError, UnitOfWork, Work};
