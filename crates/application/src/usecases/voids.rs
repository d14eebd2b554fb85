//! Voids: telling the data platform to forget a payment it may have recorded.
//!
//! When a payment's send ends without a clear answer (a timeout, a connection lost
//! after the request was written), the platform may have recorded a payment that was
//! then rolled back. `PayOrder` records such a send outside the rolled-back
//! transaction. Once its order has ended, the relay here acts on the record: a `PAID`
//! order needs no void (the record is dropped); a `FAILED` one gets
//! `ORDER_PAYMENT_VOIDED`, retried with backoff until the platform acknowledges it.

use std::sync::Arc;
use std::time::Duration;

use domain::order::OrderStatus;

use crate::opaque_debug::opaque_debug;
use crate::ports::{Clock, DataPlatform, PaymentVoidEvent, Ports, StoreError, UncertainSend, UnitOfWork, finish};

/// The first retry of a void waits this long; each further one twice as long, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long to wait before the next delivery after `attempts` failed ones.
pub fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(attempts.min(16))).min(MAX_BACKOFF)
}

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Voids the platform acknowledged.
    pub delivered: u32,
    /// Records dropped because the order was paid in the end.
    pub dropped: u32,
    /// Deliveries that failed (each retried later).
    pub failed: u32,
    /// Records left after the pass.
    pub backlog: i64,
}

/// Delivers the voids that are due, one record per transaction.
///
/// Safe with several instances: a record is locked (`SKIP LOCKED`) while its void is
/// sent and removed in the same transaction, so one instance at a time delivers it;
/// only a crash between the platform's acknowledgement and the commit sends it twice,
/// which its idempotency key covers.
#[derive(Clone)]
pub struct DeliverVoids {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    data_platform: Arc<dyn DataPlatform>,
}
opaque_debug!(DeliverVoids);

impl DeliverVoids {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, data_platform: Arc<dyn DataPlatform>) -> Self {
        Self { uow, clock, data_platform }
    }

    /// Handles up to `max` due records.
    ///
    /// # Errors
    /// When the store fails; the records stay for a later pass.
    pub async fn execute(&self, max: u32) -> Result<RelayPass, StoreError> {
        let mut pass = RelayPass::default();
        for _ in 0..max {
            let mut work = self.uow.begin().await?;
            let now = self.clock.now();
            let due = match work.voids().lock_due(now).await {
                Ok(Some(due)) => due,
                Ok(None) => {
                    finish::<(), StoreError>(work, Ok(())).await?;
                    break;
                }
                Err(error) => return finish(work, Err(error)).await,
            };
            let outcome = match due.order_status {
                OrderStatus::Paid => {
                    pass.dropped += 1;
                    work.voids().remove(due.order_id).await
                }
                _ => self.deliver(work.voids(), due, now, &mut pass).await,
            };
            finish(work, outcome).await?;
        }
        let mut work = self.uow.autocommit().await?;
        let backlog = work.voids().backlog().await;
        pass.backlog = finish(work, backlog).await?;
        Ok(pass)
    }

    async fn deliver(
        &self,
        voids: &mut dyn crate::ports::VoidRepository,
        due: UncertainSend,
        now: chrono::DateTime<chrono::Utc>,
        pass: &mut RelayPass,
    ) -> Result<(), StoreError> {
        let event = PaymentVoidEvent { order_id: due.order_id, user_id: due.user_id, voided_at: now };
        match self.data_platform.send_payment_void(&event).await {
            Ok(()) => {
                tracing::info!(order_id = %due.order_id, "payment void delivered to the data platform");
                pass.delivered += 1;
                voids.remove(due.order_id).await
            }
            Err(error) => {
                let wait = backoff(due.attempts);
                tracing::warn!(order_id = %due.order_id, %error, retry_in = ?wait, "payment void not delivered; retrying");
                pass.failed += 1;
                let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                voids.retry_at(due.order_id, next).await
            }
        }
    }
}

/// The delivery of voids.
#[derive(Debug, Clone)]
pub struct Voids {
    pub deliver: DeliverVoids,
}

impl Voids {
    pub fn new(ports: &Ports) -> Self {
        Self { deliver: DeliverVoids::new(ports.uow.clone(), ports.clock.clone(), ports.data_platform.clone()) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use domain::testing::{at, oid, uid};

    use super::*;
    use crate::ports::{DataPlatformError, MockDataPlatform, SendFailure};
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn due(status: OrderStatus, attempts: u32) -> UncertainSend {
        UncertainSend { order_id: oid(11), user_id: uid(3), order_status: status, attempts }
    }

    /// A unit of work handing out `works` in order, then a reader for the backlog.
    fn uow(works: Vec<FakeWork>, backlog: i64) -> Arc<crate::ports::MockUnitOfWork> {
        let mut works: Vec<FakeWork> = works.into_iter().rev().collect();
        let mut uow = crate::ports::MockUnitOfWork::new();
        uow.expect_begin().times(works.len()).returning(move || Ok(Box::new(works.pop().unwrap())));
        uow.expect_autocommit().times(1).returning(move || {
            let mut reader = FakeWork::default();
            reader.voids.expect_backlog().returning(move || Ok(backlog));
            Ok(Box::new(reader))
        });
        Arc::new(uow)
    }

    #[test]
    fn the_backoff_doubles_from_a_second_up_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }

    #[tokio::test]
    async fn a_failed_order_gets_its_void_under_its_key_and_the_record_goes() {
        let mut first = FakeWork::default();
        first.voids.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Failed, 0))));
        first.voids.expect_remove().withf(|o| *o == oid(11)).times(1).returning(|_| Ok(()));
        let first_ended = first.ended.clone();
        let mut second = FakeWork::default();
        second.voids.expect_lock_due().return_once(|_| Ok(None));
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send_payment_void()
            .withf(|e| {
                e.order_id == oid(11)
                    && e.user_id == uid(3)
                    && e.voided_at == at(50)
                    && e.idempotency_key() == "order-11-void"
            })
            .times(1)
            .returning(|_| Ok(()));
        let relay = DeliverVoids::new(uow(vec![first, second], 0), fixed_clock(at(50)), Arc::new(platform));
        let pass = relay.execute(10).await.unwrap();
        assert_eq!(pass, RelayPass { delivered: 1, dropped: 0, failed: 0, backlog: 0 });
        assert_eq!(first_ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_paid_order_gets_no_void_and_its_record_is_dropped() {
        let mut first = FakeWork::default();
        first.voids.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Paid, 0))));
        first.voids.expect_remove().times(1).returning(|_| Ok(()));
        let mut second = FakeWork::default();
        second.voids.expect_lock_due().return_once(|_| Ok(None));
        // No expectation on the platform: a send would panic.
        let relay =
            DeliverVoids::new(uow(vec![first, second], 0), fixed_clock(at(50)), Arc::new(MockDataPlatform::new()));
        assert_eq!(relay.execute(10).await.unwrap().dropped, 1);
    }

    #[tokio::test]
    async fn a_void_the_platform_does_not_take_is_retried_later_with_backoff() {
        let mut first = FakeWork::default();
        first.voids.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Failed, 2))));
        first
            .voids
            .expect_retry_at()
            .withf(|o, next| *o == oid(11) && *next == at(54))
            .times(1)
            .returning(|_, _| Ok(()));
        let first_ended = first.ended.clone();
        let mut second = FakeWork::default();
        second.voids.expect_lock_due().return_once(|_| Ok(None));
        let mut platform = MockDataPlatform::new();
        platform.expect_send_payment_void().times(1).returning(|e| {
            Err(DataPlatformError {
                order_id: e.order_id,
                reason: "answered 500".into(),
                failure: SendFailure::Refused,
            })
        });
        let relay = DeliverVoids::new(uow(vec![first, second], 1), fixed_clock(at(50)), Arc::new(platform));
        let pass = relay.execute(10).await.unwrap();
        assert_eq!(pass, RelayPass { delivered: 0, dropped: 0, failed: 1, backlog: 1 });
        assert_eq!(first_ended.get(), Some(Ended::Committed), "the postponement is kept");
    }
}
