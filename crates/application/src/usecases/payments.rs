//! Payments: paying an order from the balance and telling the data platform.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::order::{NotPayable, Order};
use domain::points::{Balance, InsufficientBalance, PointEntryKind};
use domain::{OrderId, UserId};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::ports::{
    Clock, DataPlatform, DataPlatformError, NewPointEntry, PaidOrderEvent, Payment, Ports, SendFailure, StoreError,
    UnitOfWork, Work, finish,
};
use crate::resilience::{Admission, BreakerOpen, CircuitBreaker};
use crate::usecases::points::write_locked_balance;

#[derive(Debug, thiserror::Error)]
pub enum PayOrderError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error("order {0} does not exist for this user")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    NotPayable(#[from] NotPayable),
    #[error(transparent)]
    InsufficientBalance(#[from] InsufficientBalance),
    #[error(transparent)]
    DataPlatform(#[from] DataPlatformError),
    /// Refused before it began: the platform has been failing (see
    /// [`crate::resilience`]). Nothing was read or written.
    #[error(transparent)]
    BreakerOpen(#[from] BreakerOpen),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A completed payment and the balance it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    pub payment: Payment,
    pub balance: Balance,
}

/// Pays an order from its user's balance, all or nothing.
///
/// One transaction: lock the order (this user's), lock the balance, check the order is
/// payable at that instant (`NOT_PAID`, before its deadline), deduct, append the `USE` ledger line, record the
/// payment, mark the order `PAID`, and only then hand the order to the data platform.
/// It commits only when the platform accepted; otherwise everything rolls back and the
/// order stays payable until it expires. The order's lock makes a second concurrent
/// payment of it wait and then see it `PAID`; the expiry sweep skips it meanwhile.
///
/// Before anything else the [`CircuitBreaker`] admits the payment, or refuses it at
/// once while the platform has been failing; the send's outcome is reported back to it.
#[derive(Clone)]
pub struct PayOrder {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    data_platform: Arc<dyn DataPlatform>,
    breaker: Arc<CircuitBreaker>,
}
opaque_debug!(PayOrder);

impl PayOrder {
    pub fn new(
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        data_platform: Arc<dyn DataPlatform>,
        breaker: Arc<CircuitBreaker>,
    ) -> Self {
        Self { uow, clock, data_platform, breaker }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user_id: UserId, order_id: OrderId) -> Result<Paid, PayOrderError> {
        // Held until the transaction has ended: in flight counts connections held.
        let mut admission = self.breaker.admit()?;
        let mut work = self.uow.begin().await?;
        let outcome = self.pay(work.as_mut(), user_id, order_id).await;
        let outcome = finish(work, outcome).await;
        self.after_send(&mut admission, user_id, order_id, outcome.as_ref().map(drop)).await;
        outcome
    }

    /// [`Self::execute`], at most once per idempotency key: a replay answers the
    /// payment it made, not `ORDER_ALREADY_PAID`, and sends nothing again.
    #[tracing::instrument(skip(self, key))]
    pub async fn execute_keyed(
        &self,
        user_id: UserId,
        order_id: OrderId,
        key: Option<Key<Paid>>,
    ) -> Result<Answer<Paid>, KeyedError<PayOrderError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(user_id, order_id).await?)) };
        let mut admission = self.breaker.admit().map_err(PayOrderError::from)?;
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let outcome = self.pay(work.as_mut(), user_id, order_id).await;
        let answer = work.finish(outcome).await;
        let outcome = match &answer {
            Ok(_) => Ok(()),
            Err(KeyedError::Failed(error)) => Err(error),
            // Refused before it ran: not a payment's outcome.
            Err(KeyedError::Refused(_)) => return answer,
        };
        self.after_send(&mut admission, user_id, order_id, outcome).await;
        answer
    }

    /// Reports a payment's send to the breaker, and records an uncertain one.
    async fn after_send(
        &self,
        admission: &mut Admission,
        user_id: UserId,
        order_id: OrderId,
        outcome: Result<(), &PayOrderError>,
    ) {
        match outcome {
            Ok(()) => admission.report(true),
            Err(PayOrderError::DataPlatform(failed)) => {
                admission.report(false);
                if failed.failure == SendFailure::Uncertain {
                    self.record_uncertain(user_id, order_id).await;
                }
            }
            // It ended before the send: the platform's health is not in question.
            Err(_) => {}
        }
    }

    /// The platform may have recorded the payment that was just rolled back: remember
    /// it, outside that transaction, so that a void is sent if the order fails unpaid.
    async fn record_uncertain(&self, user_id: UserId, order_id: OrderId) {
        let recorded = async {
            let mut work = self.uow.begin().await?;
            let outcome = work.voids().record_uncertain(order_id, user_id, self.clock.now()).await;
            finish(work, outcome).await
        }
        .await;
        if let Err(error) = recorded {
            // Nothing else can keep it: the log is the operator's record of it.
            tracing::error!(%order_id, %error, "an uncertain send could not be recorded; no void will follow");
        }
    }

    async fn pay(&self, work: &mut dyn Work, user_id: UserId, order_id: OrderId) -> Result<Paid, PayOrderError> {
        let order = match work.orders().lock(order_id).await? {
            Some(order) if order.user_id() == user_id => order,
            _ if !work.users().exists(user_id).await? => {
                return Err(PayOrderError::UserNotFound(user_id));
            }
            _ => return Err(PayOrderError::OrderNotFound(order_id)),
        };
        let now = self.clock.now();
        order.check_payable(now)?;
        let amount = order.payment_amount();
        let users = work.users();
        let after = if let Some(after) = users.spend_within(user_id, amount, order_id, now).await? {
            after
        } else {
            // Nothing was written. Let the domain decide on the locked balance: usually
            // it refuses; if a charge raised the balance meanwhile, the payment fits now
            // and is written here.
            let balance = users.lock_balance(user_id).await?.ok_or(PayOrderError::UserNotFound(user_id))?;
            let after = balance.spend(amount)?;
            let entry = NewPointEntry {
                user_id,
                kind: PointEntryKind::Use,
                amount,
                balance_after: after,
                order_id: Some(order_id),
                at: now,
            };
            write_locked_balance(users, &entry).await?;
            after
        };
        let payment = work.payments().insert(order_id, user_id, amount, now).await?;
        work.orders().mark_paid(order_id, now).await?;
        self.data_platform.send_paid_order(&paid_event(order, now)).await?;
        Ok(Paid { payment, balance: after })
    }
}

fn paid_event(order: Order, paid_at: DateTime<Utc>) -> PaidOrderEvent {
    PaidOrderEvent {
        order_id: order.id(),
        user_id: order.user_id(),
        total_amount: order.total_amount(),
        discount_amount: order.discount_amount(),
        payment_amount: order.payment_amount(),
        lines: order.into_lines(),
        paid_at,
    }
}

/// The payment use cases.
#[derive(Debug, Clone)]
pub struct Payments {
    pub pay: PayOrder,
}

impl Payments {
    pub fn new(ports: &Ports, breaker: &Arc<CircuitBreaker>) -> Self {
        Self {
            pay: PayOrder::new(ports.uow.clone(), ports.clock.clone(), ports.data_platform.clone(), breaker.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::PaymentId;
    use domain::order::OrderStatus;
    use domain::testing::{OrderBuilder, at, uid};

    use super::*;
    use crate::ports::MockDataPlatform;
    use crate::resilience::BreakerSettings;
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn oid() -> OrderId {
        OrderId::new(11).unwrap()
    }

    /// Order 11 of user 1, one line of `amount` KRW, no discount.
    fn order(status: OrderStatus, amount: i64) -> Order {
        OrderBuilder::new().status(status).line(1, 1, amount).build()
    }

    fn unbounded_breaker() -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::never_open(fixed_clock(at(0))))
    }

    /// A breaker that admits one payment at a time and opens after one failed send.
    fn strict_breaker() -> Arc<CircuitBreaker> {
        let settings = BreakerSettings { failure_threshold: 1, cooldown: std::time::Duration::from_secs(5) };
        Arc::new(CircuitBreaker::new(settings, fixed_clock(at(0))))
    }

    fn pay_order(uow: Arc<crate::ports::MockUnitOfWork>, now: i64, platform: MockDataPlatform) -> PayOrder {
        PayOrder::new(uow, fixed_clock(at(now)), Arc::new(platform), unbounded_breaker())
    }

    /// A work in which the order is payable and every write succeeds.
    fn payable_work(balance: i64) -> FakeWork {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        // The debit is one statement: no lock, read and write of the balance.
        work.users
            .expect_spend_within()
            .withf(|user, amount, order_id, paid_at| {
                *user == uid(1) && amount.krw() == 1_800 && *order_id == oid() && *paid_at == at(10)
            })
            .times(1)
            .returning(move |_, amount, _, _| Ok(Some(Balance::new(balance - amount.krw()).unwrap())));
        work.payments.expect_insert().returning(|order_id, user_id, amount, paid_at| {
            Ok(Payment { id: PaymentId::new(5).unwrap(), order_id, user_id, amount, paid_at })
        });
        work.orders.expect_mark_paid().returning(|_, _| Ok(()));
        work
    }

    #[tokio::test]
    async fn payment_deducts_sends_and_commits() {
        let (uow, ended) = payable_work(15_000).into_uow();
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send_paid_order()
            .withf(|e| e.order_id == oid() && e.payment_amount.krw() == 1_800 && e.paid_at == at(10))
            .times(1)
            .returning(|_| Ok(()));
        let paid = pay_order(uow, 10, platform).execute(uid(1), oid()).await.unwrap();
        assert_eq!(paid.balance.krw(), 13_200);
        assert_eq!(paid.payment.amount.krw(), 1_800);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn insufficient_balance_sends_nothing_and_writes_nothing() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_spend_within().times(1).returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_799).unwrap())));
        let (uow, ended) = work.into_uow();
        // No expectation on the platform: a send would panic.
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::InsufficientBalance(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_failed_send_opens_the_breaker_and_the_next_payment_takes_no_connection_and_sends_nothing() {
        let breaker = strict_breaker();
        let (uow, ended) = payable_work(15_000).into_uow();
        let mut platform = MockDataPlatform::new();
        platform.expect_send_paid_order().times(1).returning(|e| {
            Err(DataPlatformError {
                order_id: e.order_id,
                reason: "answered 503".into(),
                failure: SendFailure::Refused,
            })
        });
        let pay = PayOrder::new(uow, fixed_clock(at(10)), Arc::new(platform), breaker.clone());
        assert!(matches!(pay.execute(uid(1), oid()).await, Err(PayOrderError::DataPlatform(_))));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
        assert_eq!(breaker.in_flight(), 0, "no longer in flight once the transaction ended");
        // A unit of work and a platform without expectations: using either would panic.
        let next = PayOrder::new(
            Arc::new(crate::ports::MockUnitOfWork::new()),
            fixed_clock(at(11)),
            Arc::new(MockDataPlatform::new()),
            breaker,
        );
        let refused = next.execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(refused, PayOrderError::BreakerOpen(_)), "{refused:?}");
    }

    #[tokio::test]
    async fn a_refusal_by_the_rules_tells_the_breaker_nothing() {
        let breaker = strict_breaker();
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_spend_within().times(1).returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_799).unwrap())));
        let (uow, _) = work.into_uow();
        let pay = PayOrder::new(uow, fixed_clock(at(10)), Arc::new(MockDataPlatform::new()), breaker.clone());
        assert!(matches!(pay.execute(uid(1), oid()).await, Err(PayOrderError::InsufficientBalance(_))));
        assert_eq!(breaker.state(), crate::resilience::BreakerState::Closed);
    }

    #[tokio::test]
    async fn an_uncertain_send_is_recorded_outside_the_rolled_back_payment() {
        let payment = payable_work(15_000);
        let payment_ended = payment.ended.clone();
        let mut record = FakeWork::default();
        record
            .voids
            .expect_record_uncertain()
            .withf(|order, user, at_| *order == oid() && *user == uid(1) && *at_ == at(10))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let record_ended = record.ended.clone();
        let mut works = vec![record, payment];
        let mut uow = crate::ports::MockUnitOfWork::new();
        uow.expect_begin().times(2).returning(move || Ok(Box::new(works.pop().unwrap())));
        let mut platform = MockDataPlatform::new();
        platform.expect_send_paid_order().times(1).returning(|e| {
            Err(DataPlatformError {
                order_id: e.order_id,
                reason: "no answer within 3000 ms".into(),
                failure: SendFailure::Uncertain,
            })
        });
        let error = pay_order(Arc::new(uow), 10, platform).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::DataPlatform(_)));
        assert_eq!(payment_ended.get(), Some(Ended::RolledBack), "the payment left nothing");
        assert_eq!(record_ended.get(), Some(Ended::Committed), "the record of the uncertain send stays");
    }

    #[tokio::test]
    async fn a_failed_send_is_never_committed() {
        let (uow, ended) = payable_work(15_000).into_uow();
        let mut platform = MockDataPlatform::new();
        platform.expect_send_paid_order().times(1).returning(|e| {
            Err(DataPlatformError {
                order_id: e.order_id,
                reason: "answered 500".into(),
                failure: SendFailure::Refused,
            })
        });
        let error = pay_order(uow, 10, platform).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::DataPlatform(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn an_order_at_its_deadline_is_expired() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_000_000).unwrap())));
        let (uow, ended) = work.into_uow();
        let error = pay_order(uow, 300, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::NotPayable(NotPayable::Expired(_))));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn the_deadline_is_judged_once_the_order_is_locked_and_before_any_debit() {
        let mut sequence = mockall::Sequence::new();
        let mut work = FakeWork::default();
        work.orders
            .expect_lock()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1))));
        let mut clock = crate::ports::MockClock::new();
        // Reading the clock before the order lock would break the sequence; no debit
        // expectation: an expired order must not reach the balance.
        clock.expect_now().times(1).in_sequence(&mut sequence).return_const(at(300));
        let (uow, _) = work.into_uow();
        let error = PayOrder::new(uow, Arc::new(clock), Arc::new(MockDataPlatform::new()), unbounded_breaker())
            .execute(uid(1), oid())
            .await
            .unwrap_err();
        assert!(matches!(error, PayOrderError::NotPayable(NotPayable::Expired(_))));
    }

    #[tokio::test]
    async fn a_paid_order_is_not_paid_twice() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::Paid, 1_800))));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_000_000).unwrap())));
        let (uow, _) = work.into_uow();
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::NotPayable(NotPayable::AlreadyPaid(_))));
    }

    #[tokio::test]
    async fn unknown_user_comes_before_unknown_order() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(None));
        work.users.expect_exists().returning(|_| Ok(false));
        let (uow, _) = work.into_uow();
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::UserNotFound(_)));
    }

    #[tokio::test]
    async fn another_users_order_is_not_found() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1))));
        work.users.expect_exists().returning(|_| Ok(true));
        let (uow, _) = work.into_uow();
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(2), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::OrderNotFound(_)));
    }
}
