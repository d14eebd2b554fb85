//! Repositories: the store's operations, grouped by the data they touch.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::coupon::{Coupon, IssuedCoupon, NewCoupon};
use domain::order::{Order, OrderStatus, PricedOrder, RefundReason};
use domain::points::{Balance, ChargeAmount, PointEntry, PointEntryKind};
use domain::product::{NewProduct, Product, Quantity};
use domain::ranking::{RankedProduct, SalesWindow};
use domain::user::{User, UserName};
use domain::{CouponId, Money, OrderId, PaymentId, ProductId, UserId};

use super::error::StoreError;
use crate::trace::TraceParent;

/// A ledger line to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPointEntry {
    pub user_id: UserId,
    pub kind: PointEntryKind,
    pub amount: Money,
    pub balance_after: Balance,
    pub order_id: Option<OrderId>,
    pub at: DateTime<Utc>,
}

/// Users, their balances and their ledgers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send {
    async fn create(&mut self, name: &UserName) -> Result<User, StoreError>;

    async fn find(&mut self, id: UserId) -> Result<Option<User>, StoreError>;

    async fn exists(&mut self, id: UserId) -> Result<bool, StoreError>;

    /// Locks the user's row until the work ends, as [`Self::lock_balance`] does, so that
    /// works acting for one user in turn (placing orders) serialise. `false`: no such user.
    async fn lock(&mut self, id: UserId) -> Result<bool, StoreError>;

    /// The user's balance, read under a row lock that MUST be held until the work ends,
    /// so that read-decide-write on the balance cannot lose an update.
    async fn lock_balance(&mut self, id: UserId) -> Result<Option<Balance>, StoreError>;

    /// Stores a balance previously read with [`Self::lock_balance`] in this work.
    async fn set_balance(&mut self, id: UserId, balance: Balance) -> Result<(), StoreError>;

    async fn append_entry(&mut self, entry: &NewPointEntry) -> Result<PointEntry, StoreError>;

    /// A charge as one atomic statement: adds `amount` to the balance and appends its
    /// ledger entry, if the user exists and the new balance stays at or below
    /// `ceiling`. `None`: nothing was written, and [`Self::lock_balance`] tells why.
    async fn charge_within(
        &mut self,
        id: UserId,
        amount: ChargeAmount,
        ceiling: Balance,
        at: DateTime<Utc>,
    ) -> Result<Option<Balance>, StoreError>;

    /// A payment's debit as one atomic statement: subtracts `amount` from the balance
    /// and appends its ledger entry for `order`, if the user exists and the balance
    /// covers it. `None`: nothing was written, and [`Self::lock_balance`] tells why.
    async fn spend_within(
        &mut self,
        id: UserId,
        amount: Money,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Option<Balance>, StoreError>;

    /// Up to `limit` ledger lines, newest first, older than entry `before` when given.
    async fn entries(&mut self, id: UserId, before: Option<i64>, limit: u16) -> Result<Vec<PointEntry>, StoreError>;
}

/// The catalog and its stock.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProductRepository: Send {
    async fn create(&mut self, product: &NewProduct) -> Result<Product, StoreError>;

    /// Up to `limit` products in ascending id, after `after` when given. One statement:
    /// stock is as committed when it ran.
    async fn page(&mut self, after: Option<ProductId>, limit: u16) -> Result<Vec<Product>, StoreError>;

    /// The existing products among `ids` (ascending), each row locked, locks taken in
    /// ascending id so that two works locking overlapping sets cannot deadlock.
    async fn lock_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError>;

    /// The existing products among `ids` (ascending), as committed when the statement
    /// ran, without locks: a snapshot for [`OrderRepository::insert_taking_stock`].
    async fn find_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError>;

    /// Takes `quantity` from each product's stock. Callers MUST hold the rows' locks
    /// (see [`Self::lock_many`]) and have checked the stock; a shortfall still fails on
    /// the store's constraint rather than going negative.
    async fn take_stock(&mut self, lines: &[(ProductId, Quantity)]) -> Result<(), StoreError>;

    /// Gives `quantity` back to each product's stock.
    async fn return_stock(&mut self, lines: &[(ProductId, Quantity)]) -> Result<(), StoreError>;
}

/// What [`CouponRepository::issue`] does about stock buckets other issues hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyBuckets {
    /// Pass them by: never wait; take nothing if every bucket with stock is busy.
    Skip,
    /// Wait for one: take nothing only when no bucket has stock.
    Wait,
}

/// Outcome of [`CouponRepository::issue`], the one-statement issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueAttempt {
    /// Issued: the holder row is written and one unit taken. `coupon` shows the
    /// quantity left as the statement saw it, this unit taken.
    Issued {
        coupon: Coupon,
        issued_at: DateTime<Utc>,
    },
    /// The user already holds the coupon; nothing was written.
    AlreadyHeld,
    UnknownCoupon,
    UnknownUser,
    /// Nothing was written: the coupon (as the statement saw it) refuses the issue
    /// ([`Coupon::check_issuable`]), or, with [`BusyBuckets::Skip`], every bucket
    /// with stock was busy.
    NotTaken(Coupon),
}

/// Coupon campaigns and the coupons users hold.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CouponRepository: Send {
    async fn create(&mut self, coupon: &NewCoupon) -> Result<Coupon, StoreError>;

    async fn find(&mut self, id: CouponId) -> Result<Option<Coupon>, StoreError>;

    /// Issues `coupon` to `user` in one statement: takes a unit from one of the
    /// coupon's stock buckets (the least-taken; one another issue holds is passed by
    /// or waited for, as `busy` says) and writes the holder row, provided the coupon
    /// is valid at `at`, not sold out, and not yet held by the user. Never takes more
    /// than the stock; never issues one coupon twice to a user; writes nothing when it
    /// does not issue.
    async fn issue(
        &mut self,
        coupon: CouponId,
        user: UserId,
        at: DateTime<Utc>,
        busy: BusyBuckets,
    ) -> Result<IssueAttempt, StoreError>;

    /// The coupons `user` holds, oldest issue first.
    async fn held_by(&mut self, user: UserId) -> Result<Vec<IssuedCoupon>, StoreError>;

    /// The coupon `user` holds, its row locked until the work ends.
    async fn lock_held(&mut self, user: UserId, coupon: CouponId) -> Result<Option<IssuedCoupon>, StoreError>;

    /// Marks a held coupon used by `order` at `at`.
    async fn mark_used(
        &mut self,
        user: UserId,
        coupon: CouponId,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Makes the coupon that `order` used usable again; returns how many were released.
    async fn release_used_by(&mut self, order: OrderId) -> Result<u64, StoreError>;
}

/// An order to insert, already priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub user_id: UserId,
    pub coupon_id: Option<CouponId>,
    pub priced: PricedOrder,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Orders and their lines.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send {
    /// Inserts a `NOT_PAID` order and its lines.
    async fn insert(&mut self, order: &NewOrder) -> Result<Order, StoreError>;

    /// Takes each line's quantity from its product's stock and inserts the order with
    /// its lines, in one statement, provided every product still has the line's unit
    /// price and at least its quantity in stock when its row is locked (rows are
    /// locked in ascending id). `None`: some product had not; stock of other lines may
    /// have been taken, so the work MUST be rolled back.
    async fn insert_taking_stock(&mut self, order: &NewOrder) -> Result<Option<Order>, StoreError>;

    async fn find(&mut self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// Up to `limit` of `user`'s orders with their lines, newest first (descending id),
    /// older than `before` when given, and only those in `status` when given. Each
    /// order is as committed when the statement ran.
    async fn page_of(
        &mut self,
        user: UserId,
        status: Option<OrderStatus>,
        before: Option<OrderId>,
        limit: u16,
    ) -> Result<Vec<Order>, StoreError>;

    /// The order, its row locked until the work ends. A work that waited for the lock
    /// sees the order as the previous holder committed it.
    async fn lock(&mut self, id: OrderId) -> Result<Option<Order>, StoreError>;

    async fn mark_paid(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// How many of `user`'s orders are still `NOT_PAID`.
    async fn count_unpaid(&mut self, user: UserId) -> Result<u64, StoreError>;

    /// Up to `limit` `NOT_PAID` orders whose deadline is at or before `at`, oldest
    /// deadline first, each locked, none of them in `skip`; rows locked by another work
    /// are skipped, so concurrent sweepers never take the same order.
    async fn lock_expired(&mut self, at: DateTime<Utc>, limit: u16, skip: &[OrderId])
    -> Result<Vec<Order>, StoreError>;

    /// Marks a `NOT_PAID` order `FAILED` (its deadline passed) at `at`.
    async fn mark_failed(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Marks a `NOT_PAID` order `CANCELLED` at `at`.
    async fn mark_cancelled(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Marks a `PAID` order `REFUNDED` at `at`, keeping the shop's `reason`.
    async fn mark_refunded(
        &mut self,
        id: OrderId,
        at: DateTime<Utc>,
        reason: Option<RefundReason>,
    ) -> Result<(), StoreError>;
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Money,
    pub paid_at: DateTime<Utc>,
}

/// Payments.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send {
    /// Records the payment of an order; an order has at most one payment.
    async fn insert(
        &mut self,
        order: OrderId,
        user: UserId,
        amount: Money,
        at: DateTime<Utc>,
    ) -> Result<Payment, StoreError>;
}

/// One ranked product with its catalog details as of the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestProduct {
    pub ranked: RankedProduct,
    pub product: Product,
}

/// A stored ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestProducts {
    pub window: SalesWindow,
    pub calculated_at: DateTime<Utc>,
    pub items: Vec<BestProduct>,
}

/// Sales aggregates and best-product snapshots.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RankingRepository: Send {
    /// Whether a snapshot for `window` is stored.
    async fn has_snapshot(&mut self, window: &SalesWindow) -> Result<bool, StoreError>;

    /// Units sold per product in `PAID` orders paid inside `window`, best first (the
    /// store may cut the list at [`domain::ranking::TOP_N`]).
    async fn sales_in(&mut self, window: &SalesWindow) -> Result<Vec<domain::ranking::ProductSales>, StoreError>;

    /// Stores `ranked` as the one snapshot of `window`, replacing any earlier one.
    /// Concurrent saves of one window serialise and leave exactly one snapshot.
    async fn save_snapshot(
        &mut self,
        window: &SalesWindow,
        ranked: &[RankedProduct],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Among the snapshots whose window had ended by `ended_by`, the one that ends
    /// latest, with current product details (a stored window that has not ended yet is
    /// never served).
    async fn latest(&mut self, ended_by: DateTime<Utc>) -> Result<Option<BestProducts>, StoreError>;

    /// The snapshot of `window`, with current product details.
    async fn find(&mut self, window: &SalesWindow) -> Result<Option<BestProducts>, StoreError>;
}

/// The events the data platform must receive after a commit (the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxEvent {
    /// `ORDER_PAYMENT_VOIDED`: a payment whose send may have reached the platform was
    /// not kept. Due once its order has ended; needed only if it ended unpaid.
    PaymentVoided,
    /// `ORDER_REFUNDED`: due as soon as the refund has committed.
    OrderRefunded,
}

/// An outbox event that is due, locked, with what its order says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueEvent {
    pub event: OutboxEvent,
    pub order_id: OrderId,
    pub user_id: UserId,
    /// The order's status now (for a void: never `NOT_PAID`).
    pub order_status: OrderStatus,
    pub payment_amount: Money,
    pub refunded_at: Option<DateTime<Utc>>,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// The trace of the request that caused the event, sent on with it.
    pub trace: Option<TraceParent>,
}

/// The outbox: events recorded in a transaction and delivered after it committed, at
/// least once. One row per event of an order: recording one twice keeps one. An event
/// keeps the trace context of the scope it was recorded in ([`crate::scope`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OutboxRepository: Send {
    /// Records `event` for `order`, due from `at`.
    async fn record(&mut self, event: OutboxEvent, order: OrderId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// The oldest event due at `now` that can be acted on (a void once its order has
    /// ended), locked; events another work holds are skipped, so several relays never
    /// take the same one.
    async fn lock_due(&mut self, now: DateTime<Utc>) -> Result<Option<DueEvent>, StoreError>;

    /// Opens a send of `user`'s payment of `order`, before the payment begins: the
    /// order's void record counts one more send that may reach the platform, durably.
    /// `false` when the order is not that user's or not `NOT_PAID`: nothing recorded.
    async fn open_send(&mut self, order: OrderId, user: UserId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Closes one send of a payment of `order` that certainly did not reach the
    /// platform; the void record goes with its last open send.
    async fn close_send(&mut self, order: OrderId) -> Result<(), StoreError>;

    /// Removes `event` of `order` (delivered, or not needed).
    async fn remove(&mut self, event: OutboxEvent, order: OrderId) -> Result<(), StoreError>;

    /// Postpones the next delivery of `event` of `order` to `next` and counts the attempt.
    async fn retry_at(&mut self, event: OutboxEvent, order: OrderId, next: DateTime<Utc>) -> Result<(), StoreError>;

    /// Events not yet removed.
    async fn backlog(&mut self) -> Result<i64, StoreError>;
}
