//! Orders: placing one (stock reserved, coupon used), reading one or a user's list,
//! cancelling one, and expiring the ones not paid in time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::order::{
    NotCancellable, Order, OrderItems, OrderStatus, PaymentTimeout, PlaceOrderRefusal, TooManyUnpaidOrders,
    may_place_another, price_order,
};
use domain::product::Quantity;
use domain::{CouponId, OrderId, ProductId, UserId};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::paging::{one_page, read_limit};
use crate::ports::{Clock, NewOrder, Ports, StoreError, UnitOfWork, Work, finish};
use crate::settings::Settings;

/// What a user asks to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrderRequest {
    pub user_id: UserId,
    pub coupon_id: Option<CouponId>,
    pub items: OrderItems,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error("user does not hold coupon {0}")]
    CouponNotOwned(CouponId),
    #[error(transparent)]
    Refused(#[from] PlaceOrderRefusal),
    #[error(transparent)]
    TooManyUnpaid(#[from] TooManyUnpaidOrders),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Places an order in one transaction: locks the user (their placements queue on it)
/// and checks how many of their orders wait for payment, locks the products in
/// ascending id, locks the user's coupon, lets the domain price and check everything,
/// then takes the stock, inserts the order and marks the coupon used. Any refusal rolls
/// it all back.
///
/// Without an idempotency key it first tries a shorter path that holds the products'
/// row locks for one statement instead of four round trips (every order of a popular
/// product queues on its row): the products are read without locks, the domain prices
/// the order on that snapshot, and one statement takes the stock — provided each
/// product still has the price and enough stock once its row is locked — and inserts
/// the order. If the snapshot was stale (stock moved, or looked short), that
/// transaction is rolled back and the order is placed on the locked path above, where
/// the domain decides on locked rows.
#[derive(Clone)]
pub struct PlaceOrder {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    timeout: PaymentTimeout,
    max_unpaid: u32,
}
opaque_debug!(PlaceOrder);

impl PlaceOrder {
    /// `max_unpaid`: how many of a user's orders may wait for payment at once.
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>, timeout: PaymentTimeout, max_unpaid: u32) -> Self {
        Self { uow, clock, timeout, max_unpaid }
    }

    #[tracing::instrument(skip(self, request), fields(user_id = %request.user_id, lines = request.items.lines().len()))]
    pub async fn execute(&self, request: PlaceOrderRequest) -> Result<Order, PlaceOrderError> {
        let mut work = self.uow.begin().await?;
        match self.place(work.as_mut(), &request, ProductRead::Snapshot).await {
            Ok(Placed::Order(order)) => return finish(work, Ok(order)).await,
            Err(error) => return finish(work, Err(error)).await,
            Ok(Placed::StaleSnapshot) => {
                if let Err(error) = work.rollback().await {
                    tracing::warn!(%error, "rollback failed; the transaction is discarded with its connection");
                }
            }
        }
        let mut work = self.uow.begin().await?;
        let outcome = self.place_locked(work.as_mut(), &request).await;
        finish(work, outcome).await
    }

    /// [`Self::execute`], at most once per idempotency key: with a key the order is
    /// placed on the locked path, in the key's transaction.
    #[tracing::instrument(skip(self, request, key), fields(user_id = %request.user_id, lines = request.items.lines().len()))]
    pub async fn execute_keyed(
        &self,
        request: PlaceOrderRequest,
        key: Option<Key<Order>>,
    ) -> Result<Answer<Order>, KeyedError<PlaceOrderError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(request).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let outcome = self.place_locked(work.as_mut(), &request).await;
        work.finish(outcome).await
    }

    /// Places the order deciding on locked rows, where a snapshot cannot be stale.
    async fn place_locked(&self, work: &mut dyn Work, request: &PlaceOrderRequest) -> Result<Order, PlaceOrderError> {
        match self.place(work, request, ProductRead::Locked).await? {
            Placed::Order(order) => Ok(order),
            Placed::StaleSnapshot => {
                Err(StoreError::Unexpected(anyhow::anyhow!("an order placed on locked rows met a stale snapshot"))
                    .into())
            }
        }
    }

    async fn place(
        &self,
        work: &mut dyn Work,
        request: &PlaceOrderRequest,
        read: ProductRead,
    ) -> Result<Placed, PlaceOrderError> {
        let user_id = request.user_id;
        // The user's row lock serialises their order placements, so the count of unpaid
        // orders below is exact under any concurrency of one user's requests.
        if !work.users().lock(user_id).await? {
            return Err(PlaceOrderError::UserNotFound(user_id));
        }
        may_place_another(work.orders().count_unpaid(user_id).await?, self.max_unpaid)?;
        let ids = request.items.product_ids_ascending();
        let products = match read {
            ProductRead::Locked => work.products().lock_many(&ids).await?,
            ProductRead::Snapshot => work.products().find_many(&ids).await?,
        };
        if let Some(missing) = ids.iter().find(|id| !products.iter().any(|p| p.id == **id)) {
            return Err(PlaceOrderRefusal::ProductNotFound(*missing).into());
        }
        let coupon = match request.coupon_id {
            Some(coupon_id) => Some(
                work.coupons()
                    .lock_held(user_id, coupon_id)
                    .await?
                    .ok_or(PlaceOrderError::CouponNotOwned(coupon_id))?,
            ),
            None => None,
        };
        let now = self.clock.now();
        let priced = match (price_order(&request.items, &products, coupon.as_ref(), now), read) {
            // Stock read without locks may be short only for now: decide on locked rows.
            (Err(PlaceOrderRefusal::OutOfStock(_)), ProductRead::Snapshot) => return Ok(Placed::StaleSnapshot),
            (priced, _) => priced?,
        };
        let new_order = NewOrder {
            user_id,
            coupon_id: request.coupon_id,
            priced,
            created_at: now,
            expires_at: self.timeout.deadline(now),
        };
        let order = match read {
            ProductRead::Locked => {
                let taken: Vec<(ProductId, Quantity)> =
                    request.items.lines().iter().map(|l| (l.product_id, l.quantity)).collect();
                work.products().take_stock(&taken).await?;
                work.orders().insert(&new_order).await?
            }
            ProductRead::Snapshot => match work.orders().insert_taking_stock(&new_order).await? {
                Some(order) => order,
                None => return Ok(Placed::StaleSnapshot),
            },
        };
        if let Some(coupon) = coupon {
            work.coupons().mark_used(user_id, coupon.coupon.id(), order.id(), now).await?;
        }
        Ok(Placed::Order(order))
    }
}

/// How [`PlaceOrder::place`] reads the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProductRead {
    /// Under row locks: the domain's stock check is final.
    Locked,
    /// Without locks: the statement that takes the stock re-checks it.
    Snapshot,
}

/// What [`PlaceOrder::place`] did.
#[derive(Debug)]
enum Placed {
    Order(Order),
    /// Nothing to keep: the stock read without locks had moved.
    StaleSnapshot,
}

#[derive(Debug, thiserror::Error)]
pub enum GetOrderError {
    #[error("order {0} does not exist for this user")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads one of a user's orders; another user's order does not exist for them.
#[derive(Clone)]
pub struct GetOrder {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(GetOrder);

impl GetOrder {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, order_id: OrderId, user_id: UserId) -> Result<Order, GetOrderError> {
        let mut work = self.uow.autocommit().await?;
        let outcome = match work.orders().find(order_id).await {
            Ok(Some(order)) if order.user_id() == user_id => Ok(order),
            Ok(_) => Err(GetOrderError::OrderNotFound(order_id)),
            Err(e) => Err(e.into()),
        };
        finish(work, outcome).await
    }
}

/// One page of a user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersPage {
    pub orders: Vec<Order>,
    /// Pass as `before` to read the next (older) page; `None` on the last page.
    pub next_before: Option<OrderId>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListOrdersError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lists a user's orders, newest first, in pages keyed on the order id (an order
/// placed during the walk does not shift the pages), optionally only those in one
/// status.
#[derive(Clone)]
pub struct ListOrders {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(ListOrders);

impl ListOrders {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    /// Up to `limit` orders of `user_id`, older than `before` when given.
    #[tracing::instrument(skip(self))]
    pub async fn execute(
        &self,
        user_id: UserId,
        status: Option<OrderStatus>,
        before: Option<OrderId>,
        limit: u16,
    ) -> Result<OrdersPage, ListOrdersError> {
        let mut work = self.uow.autocommit().await?;
        let outcome = Self::page(work.as_mut(), user_id, status, before, limit).await;
        finish(work, outcome).await
    }

    async fn page(
        work: &mut dyn Work,
        user_id: UserId,
        status: Option<OrderStatus>,
        before: Option<OrderId>,
        limit: u16,
    ) -> Result<OrdersPage, ListOrdersError> {
        if !work.users().exists(user_id).await? {
            return Err(ListOrdersError::UserNotFound(user_id));
        }
        let orders = work.orders().page_of(user_id, status, before, read_limit(limit)).await?;
        let (orders, next_before) = one_page(orders, limit, Order::id);
        Ok(OrdersPage { orders, next_before })
    }
}

/// Fails the `NOT_PAID` orders whose deadline has passed: each in its own transaction,
/// status `FAILED`, stock given back (rows locked in ascending id, as when placing),
/// coupon usable again. Orders locked by someone else — a payment in flight, another
/// instance's sweep — are skipped, so several sweepers never expire one order twice.
#[derive(Clone)]
pub struct ExpireOrders {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}
opaque_debug!(ExpireOrders);

impl ExpireOrders {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { uow, clock }
    }

    /// Expires up to `max` orders, each in its own transaction.
    ///
    /// An order that cannot be expired (an error once it is locked: a corrupt row, a
    /// lock it waited on too long) is rolled back, logged and left out of the rest of
    /// the pass, so the others still expire; a later pass tries it again.
    ///
    /// # Errors
    /// Only when no order can be taken at all (the store is down).
    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, max: u16) -> Result<SweepPass, StoreError> {
        let mut pass = SweepPass::default();
        while usize::from(pass.expired) + pass.failed.len() < usize::from(max) {
            let mut work = self.uow.begin().await?;
            let now = self.clock.now();
            let taken = work.orders().lock_expired(now, 1, &pass.failed).await;
            let order = match taken {
                Ok(orders) => orders.into_iter().next(),
                Err(error) => return finish(work, Err(error)).await,
            };
            let Some(order) = order else {
                finish::<(), StoreError>(work, Ok(())).await?;
                break;
            };
            let outcome = Self::expire(work.as_mut(), &order, now).await;
            match finish(work, outcome).await {
                Ok(()) => {
                    tracing::info!(order_id = %order.id(), "order expired unpaid; stock and coupon given back");
                    pass.expired += 1;
                }
                Err(error) => {
                    tracing::error!(order_id = %order.id(), %error, "order could not be expired; skipped until the next pass");
                    pass.failed.push(order.id());
                }
            }
        }
        Ok(pass)
    }

    async fn expire(work: &mut dyn Work, order: &Order, now: DateTime<Utc>) -> Result<(), StoreError> {
        work.orders().mark_failed(order.id(), now).await?;
        give_back_unpaid(work, order).await
    }
}

/// What an order that ends unpaid — expired or cancelled — gives back: its stock and
/// its coupon. The one path both take. Callers hold the order's row lock.
async fn give_back_unpaid(work: &mut dyn Work, order: &Order) -> Result<(), StoreError> {
    return_stock(work, order).await?;
    if order.coupon_id().is_some() {
        work.coupons().release_used_by(order.id()).await?;
    }
    Ok(())
}

/// Gives an order's quantities back to its products, their rows locked in ascending id
/// first, as placing an order locks them, so that the two never wait on each other in
/// a cycle.
pub(crate) async fn return_stock(work: &mut dyn Work, order: &Order) -> Result<(), StoreError> {
    let mut ids: Vec<ProductId> = order.lines().iter().map(|l| l.product_id).collect();
    ids.sort_unstable();
    work.products().lock_many(&ids).await?;
    work.products().return_stock(&order.quantities()).await
}

#[derive(Debug, thiserror::Error)]
pub enum CancelOrderError {
    #[error("order {0} does not exist for this user")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    NotCancellable(#[from] NotCancellable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels one of a user's unpaid orders: in one transaction the order's row is locked,
/// the domain decides ([`Order::cancel`]), the order becomes `CANCELLED`, and its stock
/// and coupon are given back at once, by the path expiry takes.
///
/// The order's lock decides every race: a payment or the expiry sweep of the same
/// order waits for it (or is waited for) and then sees the order as the winner left it,
/// so exactly one of them takes effect and stock and coupon come back once.
#[derive(Clone)]
pub struct CancelOrder {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}
opaque_debug!(CancelOrder);

impl CancelOrder {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { uow, clock }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user_id: UserId, order_id: OrderId) -> Result<Order, CancelOrderError> {
        let mut work = self.uow.begin().await?;
        let outcome = self.cancel(work.as_mut(), user_id, order_id).await;
        finish(work, outcome).await
    }

    /// [`Self::execute`], at most once per idempotency key: a replay answers the
    /// cancelled order, not `ORDER_CANCELLED`.
    #[tracing::instrument(skip(self, key))]
    pub async fn execute_keyed(
        &self,
        user_id: UserId,
        order_id: OrderId,
        key: Option<Key<Order>>,
    ) -> Result<Answer<Order>, KeyedError<CancelOrderError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(user_id, order_id).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let outcome = self.cancel(work.as_mut(), user_id, order_id).await;
        work.finish(outcome).await
    }

    async fn cancel(&self, work: &mut dyn Work, user_id: UserId, order_id: OrderId) -> Result<Order, CancelOrderError> {
        let order = match work.orders().lock(order_id).await? {
            Some(order) if order.user_id() == user_id => order,
            _ => return Err(CancelOrderError::OrderNotFound(order_id)),
        };
        let now = self.clock.now();
        let cancelled = order.cancel(now)?;
        work.orders().mark_cancelled(order_id, now).await?;
        give_back_unpaid(work, &cancelled).await?;
        Ok(cancelled)
    }
}

/// What one pass of the expiry sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPass {
    /// Orders failed, their stock and coupon given back.
    pub expired: u16,
    /// Orders that could not be expired in this pass (each is retried by a later one).
    pub failed: Vec<OrderId>,
}

impl SweepPass {
    /// Whether the pass stopped at its bound, so more orders may be waiting.
    pub fn was_full(&self, max: u16) -> bool {
        usize::from(self.expired) + self.failed.len() >= usize::from(max)
    }
}

/// The order use cases.
#[derive(Debug, Clone)]
pub struct Orders {
    pub place: PlaceOrder,
    pub get: GetOrder,
    pub list: ListOrders,
    pub cancel: CancelOrder,
    pub expire: ExpireOrders,
}

impl Orders {
    pub fn new(ports: &Ports, settings: &Settings) -> Self {
        Self {
            place: PlaceOrder::new(
                ports.uow.clone(),
                ports.clock.clone(),
                settings.payment_timeout,
                settings.max_unpaid_orders,
            ),
            get: GetOrder::new(ports.uow.clone()),
            list: ListOrders::new(ports.uow.clone()),
            cancel: CancelOrder::new(ports.uow.clone(), ports.clock.clone()),
            expire: ExpireOrders::new(ports.uow.clone(), ports.clock.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::coupon::{CouponRefusal, DiscountPolicy, IssuedCoupon};
    use domain::testing::{CouponBuilder, OrderBuilder, at, cid, items, pid, product, quantity, uid};

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn request(coupon: Option<i64>, lines: &[(i64, i64)]) -> PlaceOrderRequest {
        PlaceOrderRequest { user_id: uid(1), coupon_id: coupon.map(cid), items: items(lines) }
    }

    fn held(min: i64, used: bool) -> IssuedCoupon {
        let held = CouponBuilder::new()
            .name("ten")
            .discount(DiscountPolicy::percent(10).unwrap())
            .min_order_amount(min)
            .total_quantity(10)
            .remaining_quantity(0)
            .valid(0, 1_000)
            .held();
        IssuedCoupon { used_at: used.then(|| at(1)), ..held }
    }

    fn stored(order: &NewOrder) -> Order {
        let mut stored = OrderBuilder::new()
            .user(order.user_id.get())
            .priced(&order.priced)
            .created_at(order.created_at)
            .expires_at(order.expires_at);
        if let Some(coupon) = order.coupon_id {
            stored = stored.coupon(coupon.get());
        }
        stored.build()
    }

    fn place_order(uow: Arc<crate::ports::MockUnitOfWork>) -> PlaceOrder {
        PlaceOrder::new(uow, fixed_clock(at(100)), PaymentTimeout::from_secs(300).unwrap(), 5)
    }

    #[tokio::test]
    async fn a_user_at_the_limit_of_unpaid_orders_is_refused_before_any_stock_is_locked() {
        let mut work = FakeWork::default();
        work.users.expect_lock().times(1).returning(|_| Ok(true));
        work.orders.expect_count_unpaid().withf(|user| *user == uid(1)).times(1).returning(|_| Ok(5));
        // No expectation on products: locking stock would panic.
        let (uow, ended) = work.into_uow();
        let request = PlaceOrderRequest { user_id: uid(1), coupon_id: None, items: items(&[(2, 1)]) };
        let error = place_order(uow).execute(request).await.unwrap_err();
        assert!(matches!(error, PlaceOrderError::TooManyUnpaid(TooManyUnpaidOrders { max: 5 })), "{error:?}");
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    /// A work past the user checks: the user exists and has no unpaid order.
    fn admitted() -> FakeWork {
        let mut work = FakeWork::default();
        work.users.expect_lock().returning(|_| Ok(true));
        work.orders.expect_count_unpaid().returning(|_| Ok(0));
        work
    }

    fn priced_with_coupon(o: &NewOrder) -> bool {
        o.priced.total_amount.krw() == 2_500 && o.priced.discount_amount.krw() == 250 && o.expires_at == at(400)
    }

    #[tokio::test]
    async fn placing_takes_stock_and_inserts_in_one_statement_on_an_unlocked_snapshot_and_uses_the_coupon() {
        let mut work = admitted();
        work.products
            .expect_find_many()
            .withf(|ids| ids == [pid(2), pid(5)])
            .returning(|_| Ok(vec![product(2, 1_000, 5), product(5, 500, 1)]));
        work.coupons.expect_lock_held().returning(|_, _| Ok(Some(held(0, false))));
        // No lock_many, take_stock or insert expectation: the locked path would panic.
        work.orders.expect_insert_taking_stock().withf(priced_with_coupon).times(1).returning(|o| Ok(Some(stored(o))));
        work.coupons.expect_mark_used().times(1).returning(|_, _, _, _| Ok(()));
        let (uow, ended) = work.into_uow();
        let order = place_order(uow).execute(request(Some(7), &[(5, 1), (2, 2)])).await.unwrap();
        assert_eq!(order.payment_amount().krw(), 2_250);
        assert_eq!(order.status(), OrderStatus::NotPaid);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    /// The locked path's work for the request of the tests above and below.
    fn locked_placement() -> FakeWork {
        let mut work = admitted();
        work.products
            .expect_lock_many()
            .withf(|ids| ids == [pid(2), pid(5)])
            .returning(|_| Ok(vec![product(2, 1_000, 5), product(5, 500, 1)]));
        work.coupons.expect_lock_held().returning(|_, _| Ok(Some(held(0, false))));
        work.products
            .expect_take_stock()
            .withf(|lines| lines.len() == 2 && lines.contains(&(pid(5), quantity(1))))
            .times(1)
            .returning(|_| Ok(()));
        work.orders.expect_insert().withf(priced_with_coupon).times(1).returning(|o| Ok(stored(o)));
        work.coupons.expect_mark_used().times(1).returning(|_, _, _, _| Ok(()));
        work
    }

    #[tokio::test]
    async fn a_stale_snapshot_is_rolled_back_and_the_order_placed_on_locked_rows() {
        let mut snapshot = admitted();
        snapshot.products.expect_find_many().returning(|_| Ok(vec![product(2, 1_000, 5), product(5, 500, 1)]));
        snapshot.coupons.expect_lock_held().returning(|_, _| Ok(Some(held(0, false))));
        // The statement found a product's stock moved: nothing to keep.
        snapshot.orders.expect_insert_taking_stock().times(1).returning(|_| Ok(None));
        let (uow, first, second) = FakeWork::in_turn(snapshot, locked_placement());
        let order = place_order(uow).execute(request(Some(7), &[(5, 1), (2, 2)])).await.unwrap();
        assert_eq!(order.payment_amount().krw(), 2_250);
        assert_eq!(first.get(), Some(Ended::RolledBack));
        assert_eq!(second.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn stock_that_looks_short_without_locks_is_judged_on_locked_rows() {
        let mut snapshot = admitted();
        // Product 5 looks sold out, but an expiry gave a unit back meanwhile.
        snapshot.products.expect_find_many().returning(|_| Ok(vec![product(2, 1_000, 5), product(5, 500, 0)]));
        snapshot.coupons.expect_lock_held().returning(|_, _| Ok(Some(held(0, false))));
        let (uow, first, second) = FakeWork::in_turn(snapshot, locked_placement());
        let order = place_order(uow).execute(request(Some(7), &[(5, 1), (2, 2)])).await.unwrap();
        assert_eq!(order.total_amount().krw(), 2_500);
        assert_eq!(first.get(), Some(Ended::RolledBack));
        assert_eq!(second.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn out_of_stock_on_locked_rows_changes_nothing() {
        let mut snapshot = admitted();
        snapshot.products.expect_find_many().returning(|_| Ok(vec![product(1, 10, 1)]));
        let mut locked = admitted();
        locked.products.expect_lock_many().returning(|_| Ok(vec![product(1, 10, 1)]));
        let (uow, first, second) = FakeWork::in_turn(snapshot, locked);
        let error = place_order(uow).execute(request(None, &[(1, 2)])).await.unwrap_err();
        assert!(matches!(error, PlaceOrderError::Refused(PlaceOrderRefusal::OutOfStock(_))));
        assert_eq!(first.get(), Some(Ended::RolledBack));
        assert_eq!(second.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_missing_product_is_reported_before_the_coupon() {
        let mut work = admitted();
        work.products.expect_find_many().returning(|_| Ok(vec![product(1, 10, 1)]));
        let (uow, ended) = work.into_uow();
        let error = place_order(uow).execute(request(Some(7), &[(1, 1), (3, 1)])).await.unwrap_err();
        assert!(matches!(error, PlaceOrderError::Refused(PlaceOrderRefusal::ProductNotFound(p)) if p == pid(3)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    /// Places one unit of a product the user can afford with coupon 7, which the
    /// user's coupon lock answers with `coupon`.
    async fn place_with(coupon: Option<IssuedCoupon>) -> (PlaceOrderError, Option<Ended>) {
        let mut work = FakeWork::default();
        work.users.expect_lock().returning(|_| Ok(true));
        work.orders.expect_count_unpaid().returning(|_| Ok(0));
        work.products.expect_find_many().returning(|_| Ok(vec![product(1, 1_000, 9)]));
        work.coupons.expect_lock_held().return_once(move |_, _| Ok(coupon));
        let (uow, ended) = work.into_uow();
        let error = place_order(uow).execute(request(Some(7), &[(1, 1)])).await.unwrap_err();
        (error, ended.get())
    }

    #[tokio::test]
    async fn a_coupon_not_held_changes_nothing() {
        let (error, ended) = place_with(None).await;
        assert!(matches!(error, PlaceOrderError::CouponNotOwned(_)), "got {error:?}");
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_used_coupon_changes_nothing() {
        let (error, ended) = place_with(Some(held(0, true))).await;
        assert!(
            matches!(error, PlaceOrderError::Refused(PlaceOrderRefusal::Coupon(CouponRefusal::AlreadyUsed(_)))),
            "got {error:?}"
        );
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_coupon_whose_minimum_exceeds_the_total_changes_nothing() {
        let (error, ended) = place_with(Some(held(5_000, false))).await;
        assert!(
            matches!(error, PlaceOrderError::Refused(PlaceOrderRefusal::Coupon(CouponRefusal::BelowMinimum { .. }))),
            "got {error:?}"
        );
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn unknown_user_locks_nothing() {
        let mut work = FakeWork::default();
        work.users.expect_lock().returning(|_| Ok(false));
        let (uow, ended) = work.into_uow();
        let error = place_order(uow).execute(request(None, &[(1, 1)])).await.unwrap_err();
        assert!(matches!(error, PlaceOrderError::UserNotFound(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn another_users_order_is_not_found() {
        let mut work = FakeWork::default();
        work.orders.expect_find().returning(|_| Ok(Some(OrderBuilder::new().user(2).build())));
        let (uow, _) = work.into_reader();
        let result = GetOrder::new(uow).execute(OrderId::new(11).unwrap(), uid(1)).await;
        assert!(matches!(result, Err(GetOrderError::OrderNotFound(_))));
    }

    #[tokio::test]
    async fn expiry_fails_the_order_and_gives_back_stock_and_coupon() {
        let order = OrderBuilder::new().coupon(7).line(9, 2, 0).line(3, 1, 0).build();
        let mut first = FakeWork::default();
        first
            .orders
            .expect_lock_expired()
            .withf(|now, _, _| *now == at(300))
            .return_once(move |_, _, _| Ok(vec![order]));
        first.orders.expect_mark_failed().times(1).returning(|_, _| Ok(()));
        first.products.expect_lock_many().withf(|ids| ids == [pid(3), pid(9)]).times(1).returning(|_| Ok(vec![]));
        first.products.expect_return_stock().times(1).returning(|_| Ok(()));
        first.coupons.expect_release_used_by().times(1).returning(|_| Ok(1));
        let first_ended = first.ended.clone();
        let mut second = FakeWork::default();
        second.orders.expect_lock_expired().returning(|_, _, _| Ok(vec![]));
        let second_ended = second.ended.clone();

        let mut works = vec![second, first];
        let mut uow = crate::ports::MockUnitOfWork::new();
        uow.expect_begin().times(2).returning(move || Ok(Box::new(works.pop().unwrap())));
        let pass = ExpireOrders::new(Arc::new(uow), fixed_clock(at(300))).execute(10).await.unwrap();
        assert_eq!(pass, SweepPass { expired: 1, failed: vec![] });
        assert_eq!(first_ended.get(), Some(Ended::Committed));
        assert_eq!(second_ended.get(), Some(Ended::Committed), "an empty sweep ends its work too");
    }

    #[tokio::test]
    async fn an_order_that_cannot_be_expired_is_skipped_and_the_next_one_still_expires() {
        let broken = OrderBuilder::new().id(11).line(9, 1, 0).build();
        let fine = OrderBuilder::new().id(12).line(3, 1, 0).build();
        // First work: order 11 is taken, and marking it failed breaks.
        let mut first = FakeWork::default();
        first
            .orders
            .expect_lock_expired()
            .withf(|_, _, skip| skip.is_empty())
            .return_once(move |_, _, _| Ok(vec![broken]));
        first
            .orders
            .expect_mark_failed()
            .returning(|_, _| Err(StoreError::Unexpected(anyhow::anyhow!("a trigger refused the update"))));
        let first_ended = first.ended.clone();
        // Second work: order 11 is left out, order 12 is taken and expires.
        let mut second = FakeWork::default();
        second
            .orders
            .expect_lock_expired()
            .withf(|_, _, skip| skip == [OrderId::new(11).unwrap()])
            .return_once(move |_, _, _| Ok(vec![fine]));
        second.orders.expect_mark_failed().times(1).returning(|_, _| Ok(()));
        second.products.expect_lock_many().returning(|_| Ok(vec![]));
        second.products.expect_return_stock().times(1).returning(|_| Ok(()));
        let second_ended = second.ended.clone();
        // Third work: nothing else is due.
        let mut third = FakeWork::default();
        third.orders.expect_lock_expired().returning(|_, _, _| Ok(vec![]));

        let mut works = vec![third, second, first];
        let mut uow = crate::ports::MockUnitOfWork::new();
        uow.expect_begin().times(3).returning(move || Ok(Box::new(works.pop().unwrap())));
        let pass = ExpireOrders::new(Arc::new(uow), fixed_clock(at(300))).execute(10).await.unwrap();
        assert_eq!(pass, SweepPass { expired: 1, failed: vec![OrderId::new(11).unwrap()] });
        assert_eq!(first_ended.get(), Some(Ended::RolledBack));
        assert_eq!(second_ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_page_of_orders_names_the_next_cursor_only_when_more_remain() {
        let mut work = FakeWork::default();
        work.users.expect_exists().returning(|_| Ok(true));
        work.orders
            .expect_page_of()
            .withf(|user, status, before, limit| {
                *user == uid(1)
                    && *status == Some(OrderStatus::Paid)
                    && before.map(OrderId::get) == Some(10)
                    && *limit == 3
            })
            .times(1)
            .returning(|_, _, _, _| Ok([9, 8, 7].map(|id| OrderBuilder::new().id(id).build()).into()));
        let (uow, _) = work.into_reader();
        let before = OrderId::new(10).ok();
        let page = ListOrders::new(uow).execute(uid(1), Some(OrderStatus::Paid), before, 2).await.unwrap();
        assert_eq!(page.orders.iter().map(|o| o.id().get()).collect::<Vec<_>>(), [9, 8]);
        assert_eq!(page.next_before.map(OrderId::get), Some(8));
    }

    #[tokio::test]
    async fn the_orders_of_an_unknown_user_are_not_found_and_none_is_read() {
        let mut work = FakeWork::default();
        work.users.expect_exists().returning(|_| Ok(false));
        // No expectation on `page_of`: reading orders would panic.
        let (uow, _) = work.into_reader();
        let error = ListOrders::new(uow).execute(uid(9), None, None, 20).await.unwrap_err();
        assert!(matches!(error, ListOrdersError::UserNotFound(id) if id == uid(9)));
    }

    fn cancel_order(work: FakeWork, now: i64) -> (CancelOrder, crate::usecases::test_support::EndedCell) {
        let (uow, ended) = work.into_uow();
        (CancelOrder::new(uow, fixed_clock(at(now))), ended)
    }

    #[tokio::test]
    async fn cancelling_marks_the_order_and_gives_back_stock_and_coupon_like_expiry() {
        let order = OrderBuilder::new().coupon(7).line(9, 2, 100).line(3, 1, 50).build();
        let mut work = FakeWork::default();
        work.orders.expect_lock().withf(|id| id.get() == 11).return_once(move |_| Ok(Some(order)));
        work.orders
            .expect_mark_cancelled()
            .withf(|id, when| id.get() == 11 && *when == at(60))
            .times(1)
            .returning(|_, _| Ok(()));
        work.products.expect_lock_many().withf(|ids| ids == [pid(3), pid(9)]).times(1).returning(|_| Ok(vec![]));
        work.products
            .expect_return_stock()
            .withf(|lines| lines == [(pid(9), quantity(2)), (pid(3), quantity(1))])
            .times(1)
            .returning(|_| Ok(()));
        work.coupons.expect_release_used_by().withf(|id| id.get() == 11).times(1).returning(|_| Ok(1));
        let (cancel, ended) = cancel_order(work, 60);
        let cancelled = cancel.execute(uid(1), OrderId::new(11).unwrap()).await.unwrap();
        assert_eq!((cancelled.status(), cancelled.cancelled_at()), (OrderStatus::Cancelled, Some(at(60))));
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn an_order_without_a_coupon_releases_none_when_cancelled() {
        let order = OrderBuilder::new().line(9, 1, 100).build();
        let mut work = FakeWork::default();
        work.orders.expect_lock().return_once(move |_| Ok(Some(order)));
        work.orders.expect_mark_cancelled().times(1).returning(|_, _| Ok(()));
        work.products.expect_lock_many().returning(|_| Ok(vec![]));
        work.products.expect_return_stock().times(1).returning(|_| Ok(()));
        // No expectation on the coupons: releasing one would panic.
        let (cancel, ended) = cancel_order(work, 60);
        assert!(cancel.execute(uid(1), OrderId::new(11).unwrap()).await.is_ok());
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn an_order_that_cannot_be_cancelled_changes_nothing() {
        let id = OrderId::new(11).unwrap();
        let cases = [
            (OrderBuilder::new().status(OrderStatus::Paid).build(), 60, NotCancellable::AlreadyPaid(id)),
            (OrderBuilder::new().status(OrderStatus::Refunded).build(), 60, NotCancellable::AlreadyPaid(id)),
            (OrderBuilder::new().status(OrderStatus::Failed).build(), 60, NotCancellable::Expired(id)),
            (OrderBuilder::new().build(), 300, NotCancellable::Expired(id)),
            (OrderBuilder::new().status(OrderStatus::Cancelled).build(), 60, NotCancellable::AlreadyCancelled(id)),
        ];
        for (order, now, refusal) in cases {
            let mut work = FakeWork::default();
            work.orders.expect_lock().return_once(move |_| Ok(Some(order)));
            // No other expectation: any write would panic.
            let (cancel, ended) = cancel_order(work, now);
            let error = cancel.execute(uid(1), id).await.unwrap_err();
            assert!(matches!(error, CancelOrderError::NotCancellable(r) if r == refusal), "{refusal:?}: {error:?}");
            assert_eq!(ended.get(), Some(Ended::RolledBack));
        }
    }

    #[tokio::test]
    async fn another_users_or_a_missing_order_cannot_be_cancelled() {
        for found in [Some(OrderBuilder::new().user(2).build()), None] {
            let mut work = FakeWork::default();
            work.orders.expect_lock().return_once(move |_| Ok(found));
            let (cancel, ended) = cancel_order(work, 60);
            let error = cancel.execute(uid(1), OrderId::new(11).unwrap()).await.unwrap_err();
            assert!(matches!(error, CancelOrderError::OrderNotFound(id) if id.get() == 11));
            assert_eq!(ended.get(), Some(Ended::RolledBack));
        }
    }
}
