//! Payments: paying an order from the balance and telling the data platform, and
//! refunding a paid order.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::order::{NotPayable, NotRefundable, Order, RefundReason};
use domain::points::{Balance, BalanceLimitExceeded, InsufficientBalance, PointEntryKind};
use domain::{OrderId, UserId};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::ports::{
    Clock, DataPlatform, DataPlatformError, NewPointEntry, OutboxEvent, PaidOrderEvent, Payment, PaymentSlots,
    PlatformEvent, Ports, SendFailure, Slot, StoreError, UnitOfWork, Work, finish,
};
use crate::resilience::{Admission, BreakerOpen, CircuitBreaker};
use crate::usecases::orders::return_stock;
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
    /// Refused before it began: every bulkhead slot stayed taken for the whole wait.
    /// Nothing was read or written.
    #[error("too many payments are waiting on the data platform")]
    NoSlot,
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
/// payable at that instant (`NOT_PAID`, before its deadline), deduct, append the `USE`
/// ledger line, record the payment, mark the order `PAID`, and only then hand the order
/// to the data platform. It commits only when the platform accepted; otherwise
/// everything rolls back and the order stays payable until it expires. The order's lock
/// makes a second concurrent payment of it wait and then see it `PAID`; the expiry sweep
/// skips it meanwhile.
///
/// Before that transaction (ADR 0013):
/// - a bulkhead slot ([`PaymentSlots`]) and the [`CircuitBreaker`]'s admission are
///   taken, and held until the payment has ended — by the payment, whatever its
///   caller does; a keyed payment refused there still answers a retry of a payment its
///   key already made;
/// - the send is opened in the outbox, committed on its own, so that whatever stops the
///   payment after that — a deadline, a lost client, a crash, a failed commit — leaves
///   the record from which the order is voided if it ends unpaid. The payment's commit
///   removes the record; a send that certainly did not reach the platform closes it.
#[derive(Clone)]
pub struct PayOrder {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    data_platform: Arc<dyn DataPlatform>,
    breaker: Arc<CircuitBreaker>,
    slots: Arc<dyn PaymentSlots>,
}
opaque_debug!(PayOrder);

/// What a payment holds from its admission to its end.
struct Admitted {
    _slot: Slot,
    admission: Admission,
}

impl PayOrder {
    pub fn new(
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        data_platform: Arc<dyn DataPlatform>,
        breaker: Arc<CircuitBreaker>,
        slots: Arc<dyn PaymentSlots>,
    ) -> Self {
        Self { uow, clock, data_platform, breaker, slots }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user_id: UserId, order_id: OrderId) -> Result<Paid, PayOrderError> {
        let mut admitted = self.admit().await?;
        let opened = self.open_send(user_id, order_id).await?;
        let mut work = self.uow.begin().await?;
        let outcome = self.pay(work.as_mut(), user_id, order_id).await;
        let unsent = never_reached_the_platform(&outcome);
        let outcome = finish(work, outcome).await;
        self.after(&mut admitted, order_id, opened && unsent, outcome.as_ref().map(drop)).await;
        outcome
    }

    /// [`Self::execute`], at most once per idempotency key: a replay answers the
    /// payment it made, not `ORDER_ALREADY_PAID`, and sends nothing again — also while
    /// payments are refused (breaker open, bulkhead full).
    #[tracing::instrument(skip(self, key))]
    pub async fn execute_keyed(
        &self,
        user_id: UserId,
        order_id: OrderId,
        key: Option<Key<Paid>>,
    ) -> Result<Answer<Paid>, KeyedError<PayOrderError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(user_id, order_id).await?)) };
        let mut admitted = match self.admit().await {
            Ok(admitted) => admitted,
            // Refused for want of capacity, not for what it asks.
            Err(refused) => {
                return match key.stored_reply(self.uow.as_ref()).await.map_err(PayOrderError::from)? {
                    Some(reply) => Ok(Answer::Replayed(reply)),
                    None => Err(refused.into()),
                };
            }
        };
        // Opened before the key is claimed: a payment holds one connection at a time.
        let opened = self.open_send(user_id, order_id).await.map_err(PayOrderError::from)?;
        // A replay, or a key refused: nothing is sent.
        let mut work = match key.begin(self.uow.as_ref()).await {
            Ok(Begun::Claimed(work)) => work,
            Ok(Begun::Replayed(reply)) => {
                self.close_send_if(opened, order_id).await;
                return Ok(Answer::Replayed(reply));
            }
            Err(refused) => {
                self.close_send_if(opened, order_id).await;
                return Err(refused);
            }
        };
        let outcome = self.pay(&mut *work, user_id, order_id).await;
        let unsent = never_reached_the_platform(&outcome);
        let answer = work.finish(outcome).await;
        let outcome = match &answer {
            Ok(_) => Ok(()),
            Err(KeyedError::Failed(error)) => Err(error),
            // A claimed key is not refused afterwards; were it, nothing ran.
            Err(KeyedError::Refused(_)) => return answer,
        };
        self.after(&mut admitted, order_id, opened && unsent, outcome).await;
        answer
    }

    /// A bulkhead slot, then the breaker's admission.
    async fn admit(&self) -> Result<Admitted, PayOrderError> {
        let slot = self.slots.enter().await.ok_or(PayOrderError::NoSlot)?;
        let admission = self.breaker.admit()?;
        Ok(Admitted { _slot: slot, admission })
    }

    /// Opens the send in the outbox, committed before the payment begins.
    async fn open_send(&self, user_id: UserId, order_id: OrderId) -> Result<bool, StoreError> {
        let mut work = self.uow.autocommit().await?;
        let opened = work.outbox().open_send(order_id, user_id, self.clock.now()).await;
        finish(work, opened).await
    }

    /// Reports the send to the breaker, and closes a send that never reached the
    /// platform.
    async fn after(
        &self,
        admitted: &mut Admitted,
        order_id: OrderId,
        close: bool,
        outcome: Result<(), &PayOrderError>,
    ) {
        match outcome {
            Ok(()) => admitted.admission.report(true),
            Err(PayOrderError::DataPlatform(_)) => admitted.admission.report(false),
            // It ended before the send: the platform's health is not in question.
            Err(_) => {}
        }
        self.close_send_if(close, order_id).await;
    }

    /// Closes, when `close`, a send that never reached the platform.
    async fn close_send_if(&self, close: bool, order_id: OrderId) {
        if !close {
            return;
        }
        let closed = async {
            let mut work = self.uow.autocommit().await?;
            let closed = work.outbox().close_send(order_id).await;
            finish(work, closed).await
        }
        .await;
        if let Err(error) = closed {
            // Harmless: the order gets a void it did not need if it ends unpaid.
            tracing::warn!(%order_id, %error, "a send that never reached the platform could not be closed");
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
        // Committed with the payment: the order is paid, no void can be needed.
        work.outbox().remove(OutboxEvent::PaymentVoided, order_id).await?;
        self.data_platform.send(&PlatformEvent::OrderPaid(paid_event(order, now))).await?;
        Ok(Paid { payment, balance: after })
    }
}

/// Whether a payment's outcome (before its commit) says its `ORDER_PAID` certainly did
/// not reach the platform: it failed before the send, or the platform refused it (4xx).
fn never_reached_the_platform(outcome: &Result<Paid, PayOrderError>) -> bool {
    match outcome {
        Ok(_) => false,
        Err(PayOrderError::DataPlatform(failed)) => failed.failure == SendFailure::Refused,
        Err(_) => true,
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

#[derive(Debug, thiserror::Error)]
pub enum RefundOrderError {
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    NotRefundable(#[from] NotRefundable),
    #[error(transparent)]
    BalanceLimitExceeded(#[from] BalanceLimitExceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refunds a paid order (the shop's decision), all or nothing, in one transaction: lock
/// the order, let the domain decide ([`Order::refund`]), lock the user's balance and
/// give the payment amount back with a `REFUND` ledger entry for the order (refused if
/// it would pass the cap), give the order's quantities back to the products, mark the
/// order `REFUNDED`, and record the `ORDER_REFUNDED` event in the outbox, which
/// delivers it after the commit ([`crate::usecases::outbox`]). The coupon stays used.
///
/// Locks are taken order, user, products — the order a payment takes the first two
/// in — so a refund never waits on a payment, a charge or an order placement in a
/// cycle. A second refund of the order waits for the first and then sees it
/// `REFUNDED`; a charge waits on the balance and then sees the refund.
#[derive(Clone)]
pub struct RefundOrder {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}
opaque_debug!(RefundOrder);

impl RefundOrder {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { uow, clock }
    }

    #[tracing::instrument(skip(self, reason))]
    pub async fn execute(&self, order_id: OrderId, reason: Option<RefundReason>) -> Result<Order, RefundOrderError> {
        let mut work = self.uow.begin().await?;
        let outcome = self.refund(work.as_mut(), order_id, reason).await;
        finish(work, outcome).await
    }

    /// [`Self::execute`], at most once per idempotency key: a replay answers the
    /// refunded order, not `ORDER_ALREADY_REFUNDED`.
    #[tracing::instrument(skip(self, reason, key))]
    pub async fn execute_keyed(
        &self,
        order_id: OrderId,
        reason: Option<RefundReason>,
        key: Option<Key<Order>>,
    ) -> Result<Answer<Order>, KeyedError<RefundOrderError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(order_id, reason).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let outcome = self.refund(work.as_mut(), order_id, reason).await;
        work.finish(outcome).await
    }

    async fn refund(
        &self,
        work: &mut dyn Work,
        order_id: OrderId,
        reason: Option<RefundReason>,
    ) -> Result<Order, RefundOrderError> {
        let order = work.orders().lock(order_id).await?.ok_or(RefundOrderError::OrderNotFound(order_id))?;
        let now = self.clock.now();
        let refunded = order.refund(now)?;
        let (user_id, amount) = (refunded.user_id(), refunded.payment_amount());
        let users = work.users();
        let balance = users.lock_balance(user_id).await?.ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!("order {order_id} belongs to user {user_id}, who does not exist"))
        })?;
        let entry = NewPointEntry {
            user_id,
            kind: PointEntryKind::Refund,
            amount,
            balance_after: balance.refund(amount)?,
            order_id: Some(order_id),
            at: now,
        };
        write_locked_balance(users, &entry).await?;
        return_stock(work, &refunded).await?;
        work.orders().mark_refunded(order_id, now, reason).await?;
        work.outbox().record(OutboxEvent::OrderRefunded, order_id, now).await?;
        Ok(refunded)
    }
}

/// The payment use cases.
#[derive(Debug, Clone)]
pub struct Payments {
    pub pay: PayOrder,
    pub refund: RefundOrder,
}

impl Payments {
    pub fn new(ports: &Ports, breaker: &Arc<CircuitBreaker>) -> Self {
        Self {
            pay: PayOrder::new(
                ports.uow.clone(),
                ports.clock.clone(),
                ports.data_platform.clone(),
                breaker.clone(),
                ports.payment_slots.clone(),
            ),
            refund: RefundOrder::new(ports.uow.clone(), ports.clock.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use domain::PaymentId;
    use domain::order::OrderStatus;
    use domain::testing::{OrderBuilder, at, uid};

    use super::*;
    use crate::ports::{MockDataPlatform, MockUnitOfWork};
    use crate::resilience::BreakerSettings;
    use crate::usecases::test_support::{Ended, EndedCell, FakeWork, fixed_clock};

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

    /// A bulkhead of `slots` that never waits, counting the slots held.
    #[derive(Default)]
    struct CountedSlots {
        slots: usize,
        held: Arc<AtomicUsize>,
    }

    struct Held(Arc<AtomicUsize>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl PaymentSlots for CountedSlots {
        async fn enter(&self) -> Option<Slot> {
            if self.held.fetch_add(1, Ordering::SeqCst) < self.slots {
                Some(Slot::new(Held(self.held.clone())))
            } else {
                self.held.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    fn slots(slots: usize) -> Arc<CountedSlots> {
        Arc::new(CountedSlots { slots, held: Arc::default() })
    }

    fn pay_order(uow: Arc<MockUnitOfWork>, now: i64, platform: MockDataPlatform) -> PayOrder {
        PayOrder::new(uow, fixed_clock(at(now)), Arc::new(platform), unbounded_breaker(), slots(1))
    }

    /// A session that opens the payment's send (`opened`: the order was payable).
    fn opening(opened: bool) -> FakeWork {
        let mut session = FakeWork::default();
        session
            .outbox
            .expect_open_send()
            .withf(|order, user, _| *order == oid() && *user == uid(1))
            .times(1)
            .returning(move |_, _, _| Ok(opened));
        session
    }

    /// A session that closes the payment's send: it never reached the platform.
    fn closing() -> FakeWork {
        let mut session = FakeWork::default();
        session.outbox.expect_close_send().withf(|order| *order == oid()).times(1).returning(|_| Ok(()));
        session
    }

    /// The unit of work of one payment: a session opening its send, the payment's
    /// `work`, then, with `close`, a session closing the send.
    fn paying(work: FakeWork, opened: bool, close: bool) -> (Arc<MockUnitOfWork>, EndedCell) {
        let ended = work.ended.clone();
        let mut sessions = vec![opening(opened)];
        if close {
            sessions.push(closing());
        }
        sessions.reverse();
        let mut uow = MockUnitOfWork::new();
        let count = sessions.len();
        uow.expect_autocommit().times(count).returning(move || Ok(Box::new(sessions.pop().unwrap())));
        uow.expect_begin().times(1).return_once(move || Ok(Box::new(work)));
        (Arc::new(uow), ended)
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
        // The payment's commit settles its send: the order is paid.
        work.outbox
            .expect_remove()
            .withf(|event, order| *event == OutboxEvent::PaymentVoided && *order == oid())
            .times(1)
            .returning(|_, _| Ok(()));
        work
    }

    fn answering(failure: SendFailure) -> MockDataPlatform {
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send()
            .times(1)
            .returning(move |e| Err(DataPlatformError { order_id: e.order_id(), reason: "no".into(), failure }));
        platform
    }

    #[tokio::test]
    async fn payment_opens_its_send_deducts_sends_and_commits() {
        let (uow, ended) = paying(payable_work(15_000), true, false);
        let mut platform = MockDataPlatform::new();
        platform
            .expect_send()
            .withf(|e| {
                matches!(e, PlatformEvent::OrderPaid(paid)
                    if paid.order_id == oid() && paid.payment_amount.krw() == 1_800 && paid.paid_at == at(10))
                    && e.idempotency_key() == "order-11"
            })
            .times(1)
            .returning(|_| Ok(()));
        let paid = pay_order(uow, 10, platform).execute(uid(1), oid()).await.unwrap();
        assert_eq!(paid.balance.krw(), 13_200);
        assert_eq!(paid.payment.amount.krw(), 1_800);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn insufficient_balance_sends_nothing_writes_nothing_and_closes_its_send() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_spend_within().times(1).returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_799).unwrap())));
        let (uow, ended) = paying(work, true, true);
        // No expectation on the platform: a send would panic.
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::InsufficientBalance(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_failed_send_opens_the_breaker_and_the_next_payment_takes_no_connection_and_sends_nothing() {
        let breaker = strict_breaker();
        let (uow, ended) = paying(payable_work_unpaid(), true, true);
        let pay = PayOrder::new(
            uow,
            fixed_clock(at(10)),
            Arc::new(answering(SendFailure::Refused)),
            breaker.clone(),
            slots(1),
        );
        assert!(matches!(pay.execute(uid(1), oid()).await, Err(PayOrderError::DataPlatform(_))));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
        assert_eq!(breaker.in_flight(), 0, "no longer in flight once the transaction ended");
        // A unit of work and a platform without expectations: using either would panic.
        let next = PayOrder::new(
            Arc::new(MockUnitOfWork::new()),
            fixed_clock(at(11)),
            Arc::new(MockDataPlatform::new()),
            breaker,
            slots(1),
        );
        let refused = next.execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(refused, PayOrderError::BreakerOpen(_)), "{refused:?}");
    }

    /// [`payable_work`] for a payment whose send fails: nothing is committed, so the
    /// send's record is not removed in it.
    fn payable_work_unpaid() -> FakeWork {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users
            .expect_spend_within()
            .returning(move |_, amount, _, _| Ok(Some(Balance::new(15_000 - amount.krw()).unwrap())));
        work.payments.expect_insert().returning(|order_id, user_id, amount, paid_at| {
            Ok(Payment { id: PaymentId::new(5).unwrap(), order_id, user_id, amount, paid_at })
        });
        work.orders.expect_mark_paid().returning(|_, _| Ok(()));
        work.outbox.expect_remove().returning(|_, _| Ok(()));
        work
    }

    #[tokio::test]
    async fn a_refusal_by_the_rules_tells_the_breaker_nothing() {
        let breaker = strict_breaker();
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_spend_within().times(1).returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_799).unwrap())));
        let (uow, _) = paying(work, true, true);
        let pay = PayOrder::new(uow, fixed_clock(at(10)), Arc::new(MockDataPlatform::new()), breaker.clone(), slots(1));
        assert!(matches!(pay.execute(uid(1), oid()).await, Err(PayOrderError::InsufficientBalance(_))));
        assert_eq!(breaker.state(), crate::resilience::BreakerState::Closed);
    }

    #[tokio::test]
    async fn an_uncertain_send_leaves_its_send_open_for_a_void() {
        // No closing session: the send stays open, so the order is voided if it ends unpaid.
        let (uow, ended) = paying(payable_work_unpaid(), true, false);
        let error = pay_order(uow, 10, answering(SendFailure::Uncertain)).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::DataPlatform(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack), "the payment left nothing");
    }

    #[tokio::test]
    async fn a_failed_commit_after_an_accepted_send_leaves_its_send_open() {
        let mut work = payable_work(15_000);
        work.commit_fails = true;
        let (uow, ended) = paying(work, true, false);
        let mut platform = MockDataPlatform::new();
        platform.expect_send().times(1).returning(|_| Ok(()));
        let error = pay_order(uow, 10, platform).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::Store(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_refused_send_is_never_committed_and_closes_its_send() {
        let (uow, ended) = paying(payable_work_unpaid(), true, true);
        let error = pay_order(uow, 10, answering(SendFailure::Refused)).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::DataPlatform(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_payment_holds_its_slot_until_it_ends_and_none_free_is_a_refusal_taking_nothing() {
        let bulkhead = slots(1);
        let held = bulkhead.held.clone();
        let mut platform = MockDataPlatform::new();
        let during = held.clone();
        platform.expect_send().times(1).returning(move |_| {
            assert_eq!(during.load(Ordering::SeqCst), 1, "the slot is held while the payment sends");
            Ok(())
        });
        let (uow, _) = paying(payable_work(15_000), true, false);
        let pay = PayOrder::new(uow, fixed_clock(at(10)), Arc::new(platform), unbounded_breaker(), bulkhead.clone());
        assert!(pay.execute(uid(1), oid()).await.is_ok());
        assert_eq!(held.load(Ordering::SeqCst), 0, "freed once the payment ended");

        let full = slots(0);
        let refused = PayOrder::new(
            Arc::new(MockUnitOfWork::new()),
            fixed_clock(at(10)),
            Arc::new(MockDataPlatform::new()),
            unbounded_breaker(),
            full,
        );
        assert!(matches!(refused.execute(uid(1), oid()).await, Err(PayOrderError::NoSlot)));
    }

    #[tokio::test]
    async fn a_keyed_payment_refused_for_capacity_still_replays_what_its_key_did() {
        use crate::ports::{IdempotencyKey, Reply};
        let key = || {
            let key = IdempotencyKey { scope: "user:1".into(), key: "pay-1".into(), fingerprint: vec![1] };
            Some(Key::new(key, |_: &Paid| Reply(b"paid".to_vec())))
        };
        for stored in [Some(Reply(b"paid".to_vec())), None] {
            let mut session = FakeWork::default();
            let found = stored.clone();
            session.idempotency.expect_stored().times(1).return_once(move |_| Ok(found));
            let (uow, _) = session.into_reader();
            // No slot free, and no payment work: only the stored reply may be read.
            let pay = PayOrder::new(
                uow,
                fixed_clock(at(10)),
                Arc::new(MockDataPlatform::new()),
                unbounded_breaker(),
                slots(0),
            );
            let answer = pay.execute_keyed(uid(1), oid(), key()).await;
            match stored {
                Some(reply) => assert!(matches!(answer, Ok(Answer::Replayed(r)) if r == reply)),
                None => assert!(matches!(answer, Err(KeyedError::Failed(PayOrderError::NoSlot)))),
            }
        }
    }

    #[tokio::test]
    async fn an_order_at_its_deadline_is_expired() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1_800))));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_000_000).unwrap())));
        let (uow, ended) = paying(work, true, true);
        let error = pay_order(uow, 300, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::NotPayable(NotPayable::Expired(_))));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn the_deadline_is_judged_once_the_order_is_locked_and_before_any_debit() {
        let mut sequence = mockall::Sequence::new();
        let mut clock = crate::ports::MockClock::new();
        // The send is opened first (its record's instant), then the order is locked,
        // and only then is the deadline's instant read.
        clock.expect_now().times(1).in_sequence(&mut sequence).return_const(at(0));
        let mut work = FakeWork::default();
        work.orders
            .expect_lock()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1))));
        // No debit expectation: an expired order must not reach the balance.
        clock.expect_now().times(1).in_sequence(&mut sequence).return_const(at(300));
        let (uow, _) = paying(work, true, true);
        let error =
            PayOrder::new(uow, Arc::new(clock), Arc::new(MockDataPlatform::new()), unbounded_breaker(), slots(1))
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
        // Not payable: no send was opened, none is closed.
        let (uow, _) = paying(work, false, false);
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::NotPayable(NotPayable::AlreadyPaid(_))));
    }

    #[tokio::test]
    async fn unknown_user_comes_before_unknown_order() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(None));
        work.users.expect_exists().returning(|_| Ok(false));
        let (uow, _) = paying(work, false, false);
        let error = pay_order(uow, 10, MockDataPlatform::new()).execute(uid(1), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::UserNotFound(_)));
    }

    #[tokio::test]
    async fn another_users_order_is_not_found() {
        let mut session = FakeWork::default();
        // Not this user's order: no send is opened.
        session.outbox.expect_open_send().withf(|_, user, _| *user == uid(2)).times(1).returning(|_, _, _| Ok(false));
        let mut work = FakeWork::default();
        work.orders.expect_lock().returning(|_| Ok(Some(order(OrderStatus::NotPaid, 1))));
        work.users.expect_exists().returning(|_| Ok(true));
        let mut uow = MockUnitOfWork::new();
        uow.expect_autocommit().times(1).return_once(move || Ok(Box::new(session)));
        uow.expect_begin().times(1).return_once(move || Ok(Box::new(work)));
        let error = pay_order(Arc::new(uow), 10, MockDataPlatform::new()).execute(uid(2), oid()).await.unwrap_err();
        assert!(matches!(error, PayOrderError::OrderNotFound(_)));
    }

    fn refund_order(work: FakeWork, now: i64) -> (RefundOrder, crate::usecases::test_support::EndedCell) {
        let (uow, ended) = work.into_uow();
        (RefundOrder::new(uow, fixed_clock(at(now))), ended)
    }

    fn paid(amount: i64) -> Order {
        OrderBuilder::new().status(OrderStatus::Paid).paid_at(at(10)).coupon(7).line(4, 2, amount / 2).build()
    }

    #[tokio::test]
    async fn a_refund_gives_the_payment_back_with_its_entry_returns_stock_and_records_the_event() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().return_once(|_| Ok(Some(paid(1_800))));
        work.users.expect_lock_balance().withf(|u| *u == uid(1)).returning(|_| Ok(Some(Balance::new(200).unwrap())));
        work.users
            .expect_set_balance()
            .withf(|u, b| *u == uid(1) && b.krw() == 2_000)
            .times(1)
            .returning(|_, _| Ok(()));
        work.users
            .expect_append_entry()
            .withf(|e| {
                e.kind == PointEntryKind::Refund
                    && e.amount.krw() == 1_800
                    && e.balance_after.krw() == 2_000
                    && e.order_id == Some(oid())
                    && e.at == at(500)
            })
            .times(1)
            .returning(|e| {
                Ok(domain::points::PointEntry {
                    id: 1,
                    user_id: e.user_id,
                    kind: e.kind,
                    amount: e.amount,
                    balance_after: e.balance_after,
                    order_id: e.order_id,
                    created_at: e.at,
                })
            });
        work.products.expect_lock_many().withf(|ids| ids == [domain::testing::pid(4)]).returning(|_| Ok(vec![]));
        work.products.expect_return_stock().times(1).returning(|_| Ok(()));
        work.orders
            .expect_mark_refunded()
            .withf(|id, when, reason| {
                *id == oid() && *when == at(500) && reason.as_ref().map(RefundReason::as_str) == Some("damaged")
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        work.outbox
            .expect_record()
            .withf(|e, id, when| *e == OutboxEvent::OrderRefunded && *id == oid() && *when == at(500))
            .times(1)
            .returning(|_, _, _| Ok(()));
        // No expectation on the coupons: the coupon stays used.
        let (refund, ended) = refund_order(work, 500);
        let refunded = refund.execute(oid(), Some(RefundReason::new("damaged").unwrap())).await.unwrap();
        assert_eq!((refunded.status(), refunded.refunded_at()), (OrderStatus::Refunded, Some(at(500))));
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_refund_that_would_pass_the_cap_changes_nothing() {
        let mut work = FakeWork::default();
        work.orders.expect_lock().return_once(|_| Ok(Some(paid(1_800))));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(4_999_000).unwrap())));
        // No other expectation: any write would panic.
        let (refund, ended) = refund_order(work, 500);
        let error = refund.execute(oid(), None).await.unwrap_err();
        assert!(matches!(error, RefundOrderError::BalanceLimitExceeded(e) if e.added.krw() == 1_800));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn only_a_paid_order_is_refunded() {
        let cases = [
            (Some(OrderBuilder::new().status(OrderStatus::Refunded).build()), "refunded"),
            (Some(OrderBuilder::new().status(OrderStatus::NotPaid).build()), "not paid"),
            (Some(OrderBuilder::new().status(OrderStatus::Cancelled).build()), "not paid"),
            (Some(OrderBuilder::new().status(OrderStatus::Failed).build()), "not paid"),
            (None, "missing"),
        ];
        for (order, expected) in cases {
            let mut work = FakeWork::default();
            work.orders.expect_lock().return_once(move |_| Ok(order));
            let (refund, ended) = refund_order(work, 500);
            let error = refund.execute(oid(), None).await.unwrap_err();
            let got = match error {
                RefundOrderError::NotRefundable(NotRefundable::AlreadyRefunded(_)) => "refunded",
                RefundOrderError::NotRefundable(NotRefundable::NotPaid(_)) => "not paid",
                RefundOrderError::OrderNotFound(_) => "missing",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(got, expected);
            assert_eq!(ended.get(), Some(Ended::RolledBack));
        }
    }
}
