//! The outbox relay: the events the data platform must receive after a commit.
//!
//! Two kinds of event wait in one outbox (ADR 0012), each recorded durably and
//! delivered here, at least once, under its own idempotency key:
//! - `ORDER_PAYMENT_VOIDED`: a payment's send ended without a clear answer (a timeout,
//!   a connection lost after the request was written), so the platform may have
//!   recorded a payment that was rolled back. Once its order has ended, a `PAID` or
//!   `REFUNDED` order needs no void (the event is dropped); a `FAILED` or `CANCELLED`
//!   one gets it.
//! - `ORDER_REFUNDED`: recorded by the refund's own transaction, due at once.
//!
//! A delivery the platform does not take is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::order::OrderStatus;

use crate::opaque_debug::opaque_debug;
use crate::ports::{
    Clock, DataPlatform, DataPlatformError, DueEvent, OutboxEvent, OutboxRepository, PaymentVoidEvent, PlatformEvent,
    Ports, RefundEvent, StoreError, UnitOfWork, finish,
};

/// The first retry of an event waits this long; each further one twice as long, up to
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
    /// Events the platform acknowledged.
    pub delivered: u32,
    /// Voids dropped because the order was paid in the end.
    pub dropped: u32,
    /// Deliveries that failed (each retried later).
    pub failed: u32,
    /// Events left after the pass.
    pub backlog: i64,
}

/// What the relay does with a due event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Send(PlatformEvent),
    /// The order was paid after all: the platform keeps the payment it recorded.
    Drop,
}

impl Action {
    fn for_due(due: &DueEvent, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let (order_id, user_id) = (due.order_id, due.user_id);
        Ok(match (due.event, due.order_status) {
            (OutboxEvent::PaymentVoided, OrderStatus::Paid | OrderStatus::Refunded) => Self::Drop,
            (OutboxEvent::PaymentVoided, OrderStatus::Failed | OrderStatus::Cancelled) => {
                Self::Send(PlatformEvent::PaymentVoided(PaymentVoidEvent { order_id, user_id, voided_at: now }))
            }
            (OutboxEvent::PaymentVoided, OrderStatus::NotPaid) => {
                return Err(StoreError::Unexpected(anyhow::anyhow!(
                    "a void of order {order_id} is due before it ended"
                )));
            }
            (OutboxEvent::OrderRefunded, _) => {
                let refunded_at = due.refunded_at.ok_or_else(|| {
                    StoreError::Unexpected(anyhow::anyhow!("order {order_id} has a refund event but no refund instant"))
                })?;
                let refund = RefundEvent { order_id, user_id, refund_amount: due.payment_amount, refunded_at };
                Self::Send(PlatformEvent::OrderRefunded(refund))
            }
        })
    }
}

/// Delivers the events that are due, one per transaction.
///
/// Safe with several instances: an event is locked (`SKIP LOCKED`) while it is sent and
/// removed in the same transaction, so one instance at a time delivers it; only a crash
/// between the platform's acknowledgement and the commit sends it twice, which its
/// idempotency key covers.
#[derive(Clone)]
pub struct DeliverEvents {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    data_platform: Arc<dyn DataPlatform>,
}
opaque_debug!(DeliverEvents);

impl DeliverEvents {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, data_platform: Arc<dyn DataPlatform>) -> Self {
        Self { uow, clock, data_platform }
    }

    /// Handles up to `max` due events.
    ///
    /// # Errors
    /// When the store fails; the events stay for a later pass.
    pub async fn execute(&self, max: u32) -> Result<RelayPass, StoreError> {
        let mut pass = RelayPass::default();
        for _ in 0..max {
            let mut work = self.uow.begin().await?;
            let now = self.clock.now();
            let due = match work.outbox().lock_due(now).await {
                Ok(Some(due)) => due,
                Ok(None) => {
                    finish::<(), StoreError>(work, Ok(())).await?;
                    break;
                }
                Err(error) => return finish(work, Err(error)).await,
            };
            let outcome = match Action::for_due(&due, now) {
                Ok(action) => self.act(work.outbox(), &due, action, now, &mut pass).await,
                Err(error) => Err(error),
            };
            finish(work, outcome).await?;
        }
        let mut work = self.uow.autocommit().await?;
        let backlog = work.outbox().backlog().await;
        pass.backlog = finish(work, backlog).await?;
        Ok(pass)
    }

    async fn act(
        &self,
        outbox: &mut dyn OutboxRepository,
        due: &DueEvent,
        action: Action,
        now: DateTime<Utc>,
        pass: &mut RelayPass,
    ) -> Result<(), StoreError> {
        let sent = match action {
            Action::Drop => {
                pass.dropped += 1;
                return outbox.remove(due.event, due.order_id).await;
            }
            // In the trace of the request that caused the event, for the platform to see.
            Action::Send(event) => {
                crate::scope::run(due.trace, async { self.data_platform.send(&event).await }).await.0
            }
        };
        self.settle(outbox, due, sent, now, pass).await
    }

    async fn settle(
        &self,
        outbox: &mut dyn OutboxRepository,
        due: &DueEvent,
        sent: Result<(), DataPlatformError>,
        now: DateTime<Utc>,
        pass: &mut RelayPass,
    ) -> Result<(), StoreError> {
        let (event, order_id) = (due.event, due.order_id);
        match sent {
            Ok(()) => {
                tracing::info!(%order_id, ?event, "event delivered to the data platform");
                pass.delivered += 1;
                outbox.remove(event, order_id).await
            }
            Err(error) => {
                let wait = backoff(due.attempts);
                tracing::warn!(%order_id, ?event, %error, retry_in = ?wait, "event not delivered; retrying");
                pass.failed += 1;
                let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                outbox.retry_at(event, order_id, next).await
            }
        }
    }
}

/// The delivery of the outbox's events.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub deliver: DeliverEvents,
}

impl Outbox {
    pub fn new(ports: &Ports) -> Self {
        Self { deliver: DeliverEvents::new(ports.uow.clone(), ports.clock.clone(), ports.data_platform.clone()) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use domain::testing::{at, money, oid, uid};

    use super::*;
    use crate::ports::{DataPlatformError, MockDataPlatform, SendFailure};
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn due(status: OrderStatus, attempts: u32) -> DueEvent {
        DueEvent {
            event: OutboxEvent::PaymentVoided,
            order_id: oid(11),
            user_id: uid(3),
            order_status: status,
            payment_amount: money(1_800),
            refunded_at: None,
            attempts,
            trace: None,
        }
    }

    fn due_refund() -> DueEvent {
        DueEvent {
            event: OutboxEvent::OrderRefunded,
            order_status: OrderStatus::Refunded,
            refunded_at: Some(at(40)),
            ..due(OrderStatus::Refunded, 0)
        }
    }

    /// A unit of work handing out `works` in order, then a reader for the backlog.
    fn uow(works: Vec<FakeWork>, backlog: i64) -> Arc<crate::ports::MockUnitOfWork> {
        let mut works: Vec<FakeWork> = works.into_iter().rev().collect();
        let mut uow = crate::ports::MockUnitOfWork::new();
        uow.expect_begin().times(works.len()).returning(move || Ok(Box::new(works.pop().unwrap())));
        uow.expect_autocommit().times(1).returning(move || {
            let mut reader = FakeWork::default();
            reader.outbox.expect_backlog().returning(move || Ok(backlog));
            Ok(Box::new(reader))
        });
        Arc::new(uow)
    }

    /// The relay at 50 over `first`, then a work with nothing more due, then a reader of
    /// `backlog`.
    fn relay(first: FakeWork, backlog: i64, platform: MockDataPlatform) -> DeliverEvents {
        let mut second = FakeWork::default();
        second.outbox.expect_lock_due().return_once(|_| Ok(None));
        DeliverEvents::new(uow(vec![first, second], backlog), fixed_clock(at(50)), Arc::new(platform))
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
        first.outbox.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Failed, 0))));
        first
            .outbox
            .expect_remove()
            .withf(|e, o| *e == OutboxEvent::PaymentVoided && *o == oid(11))
            .times(1)
            .returning(|_, _| Ok(()));
        let first_ended = first.ended.clone();
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send()
            .withf(|e| {
                matches!(e, PlatformEvent::PaymentVoided(void)
                    if void.order_id == oid(11) && void.user_id == uid(3) && void.voided_at == at(50))
                    && e.idempotency_key() == "order-11-void"
            })
            .times(1)
            .returning(|_| Ok(()));
        let relay = relay(first, 0, platform);
        let pass = relay.execute(10).await.unwrap();
        assert_eq!(pass, RelayPass { delivered: 1, dropped: 0, failed: 0, backlog: 0 });
        assert_eq!(first_ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_paid_or_refunded_order_gets_no_void_and_its_record_is_dropped() {
        for status in [OrderStatus::Paid, OrderStatus::Refunded] {
            let mut first = FakeWork::default();
            first.outbox.expect_lock_due().return_once(move |_| Ok(Some(due(status, 0))));
            first.outbox.expect_remove().times(1).returning(|_, _| Ok(()));
            // No expectation on the platform: a send would panic.
            let relay = relay(first, 0, MockDataPlatform::new());
            assert_eq!(relay.execute(10).await.unwrap().dropped, 1, "{status:?}");
        }
    }

    #[tokio::test]
    async fn an_event_goes_out_in_the_trace_of_the_request_that_caused_it() {
        let trace = crate::trace::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let mut first = FakeWork::default();
        first.outbox.expect_lock_due().return_once(move |_| Ok(Some(DueEvent { trace, ..due_refund() })));
        first.outbox.expect_remove().times(1).returning(|_, _| Ok(()));
        let mut platform = MockDataPlatform::new();
        platform.expect_send().withf(move |_| crate::scope::traceparent() == trace).times(1).returning(|_| Ok(()));
        assert_eq!(relay(first, 0, platform).execute(10).await.unwrap().delivered, 1);
    }

    #[tokio::test]
    async fn a_cancelled_order_gets_its_void() {
        let mut first = FakeWork::default();
        first.outbox.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Cancelled, 0))));
        first.outbox.expect_remove().times(1).returning(|_, _| Ok(()));
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send()
            .withf(|e| matches!(e, PlatformEvent::PaymentVoided(void) if void.order_id == oid(11)))
            .times(1)
            .returning(|_| Ok(()));
        let relay = relay(first, 0, platform);
        assert_eq!(relay.execute(10).await.unwrap().delivered, 1);
    }

    #[tokio::test]
    async fn a_refund_is_delivered_with_what_its_order_says_under_its_key() {
        let mut first = FakeWork::default();
        first.outbox.expect_lock_due().return_once(|_| Ok(Some(due_refund())));
        first
            .outbox
            .expect_remove()
            .withf(|e, o| *e == OutboxEvent::OrderRefunded && *o == oid(11))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send()
            .withf(|e| {
                *e == PlatformEvent::OrderRefunded(RefundEvent {
                    order_id: oid(11),
                    user_id: uid(3),
                    refund_amount: money(1_800),
                    refunded_at: at(40),
                }) && e.idempotency_key() == "order-11-refund"
            })
            .times(1)
            .returning(|_| Ok(()));
        let relay = relay(first, 0, platform);
        assert_eq!(relay.execute(10).await.unwrap(), RelayPass { delivered: 1, dropped: 0, failed: 0, backlog: 0 });
    }

    #[tokio::test]
    async fn a_refund_the_platform_does_not_take_is_retried_and_never_dropped() {
        let mut first = FakeWork::default();
        first.outbox.expect_lock_due().return_once(|_| Ok(Some(DueEvent { attempts: 0, ..due_refund() })));
        first
            .outbox
            .expect_retry_at()
            .withf(|e, o, next| *e == OutboxEvent::OrderRefunded && *o == oid(11) && *next == at(51))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut platform = MockDataPlatform::new();
        platform.expect_send().times(1).returning(|e| {
            Err(DataPlatformError { order_id: e.order_id(), reason: "down".into(), failure: SendFailure::Refused })
        });
        let relay = relay(first, 1, platform);
        assert_eq!(relay.execute(10).await.unwrap().failed, 1);
    }

    #[tokio::test]
    async fn a_void_the_platform_does_not_take_is_retried_later_with_backoff() {
        let mut first = FakeWork::default();
        first.outbox.expect_lock_due().return_once(|_| Ok(Some(due(OrderStatus::Failed, 2))));
        first
            .outbox
            .expect_retry_at()
            .withf(|_, o, next| *o == oid(11) && *next == at(54))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let first_ended = first.ended.clone();
        let mut platform = MockDataPlatform::new();
        platform.expect_send().times(1).returning(|e| {
            Err(DataPlatformError {
                order_id: e.order_id(),
                reason: "answered 500".into(),
                failure: SendFailure::Refused,
            })
        });
        let relay = relay(first, 1, platform);
        let pass = relay.execute(10).await.unwrap();
        assert_eq!(pass, RelayPass { delivered: 0, dropped: 0, failed: 1, backlog: 1 });
        assert_eq!(first_ended.get(), Some(Ended::Committed), "the postponement is kept");
    }
}
