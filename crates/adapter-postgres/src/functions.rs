//! The database functions the repositories call, declared for the query builder.
//!
//! Each is created by the migration `statements_as_functions` (where its comment says
//! what it does, what it locks and what it returns) and is called like any function of
//! the query builder: `diesel::select(issue_coupon(..))`. Such a query has a static
//! shape, so diesel-async prepares it once per connection; a function returning a row
//! returns it as one `Record` value. docs/adr/0011-hand-written-sql-as-database-functions.md
//! says why statements live there.

#![allow(clippy::too_many_arguments)]

use diesel::expression::functions::declare_sql_function;
use diesel::pg::sql_types::Record;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, SmallInt, Text, Timestamptz};

/// The row `lock_due_event` returns.
pub(crate) type DueEventRecord =
    Record<(Text, BigInt, BigInt, Text, BigInt, Nullable<Timestamptz>, Integer, Nullable<Text>)>;

/// The row `issue_coupon` returns.
pub(crate) type IssueRecord = Record<(
    BigInt,
    Text,
    Text,
    BigInt,
    BigInt,
    Integer,
    Integer,
    Timestamptz,
    Timestamptz,
    Bool,
    Nullable<Timestamptz>,
    Bool,
)>;

/// The columns of an order `place_order` returns (all of `OrderRow`'s).
pub(crate) type OrderColumnTypes =
    (BigInt, BigInt, Nullable<BigInt>, Text, BigInt, BigInt, BigInt, Timestamptz, Timestamptz, Nullable<Timestamptz>);

/// The row `place_order` returns.
pub(crate) type OrderRecord = Record<OrderColumnTypes>;

#[declare_sql_function]
extern "SQL" {
    /// The quantity left of a coupon (its buckets' sum; 0 once flagged sold out).
    fn coupon_remaining(coupon: BigInt, sold_out: Bool) -> Integer;

    /// Creates a new coupon's full stock buckets; the buckets created.
    fn fill_coupon_stock(coupon: BigInt) -> Integer;

    /// Issues a coupon in one call (no row for an unknown coupon).
    fn issue_coupon(coupon: BigInt, holder: BigInt, moment: Timestamptz, wait: Bool) -> IssueRecord;

    /// Moves stock by `sign` × each quantity; the rows changed.
    fn move_stock(products: Array<BigInt>, quantities: Array<Integer>, sign: Integer) -> Integer;

    /// Inserts an order with its lines, taking their stock first when asked (no row
    /// when some stock or price had moved).
    fn place_order(
        buyer: BigInt,
        coupon: Nullable<BigInt>,
        total: BigInt,
        discount: BigInt,
        payment: BigInt,
        created: Timestamptz,
        expires: Timestamptz,
        line_nos: Array<SmallInt>,
        product_ids: Array<BigInt>,
        product_names: Array<Text>,
        unit_prices: Array<BigInt>,
        quantities: Array<Integer>,
        amounts: Array<BigInt>,
        take_stock: Bool,
    ) -> OrderRecord;

    /// Units sold per product in paid orders of a window, best first.
    fn paid_sales(window_from: Timestamptz, window_to: Timestamptz, top: BigInt) -> Record<(BigInt, BigInt)>;

    /// An idempotency key's row, locked: fingerprint, reply, expired.
    fn lock_idempotency_key(
        key_scope: Text,
        key_text: Text,
        ttl_secs: BigInt,
    ) -> Record<(diesel::sql_types::Bytea, Nullable<diesel::sql_types::Bytea>, Bool)>;

    /// Deletes a batch of expired idempotency keys; how many.
    fn delete_expired_idempotency_keys(ttl_secs: BigInt, batch: BigInt) -> BigInt;

    /// The oldest due outbox event that can be acted on, locked (migration
    /// `outbox_traceparent`): kind, order, user, status, payment amount, refund
    /// instant, attempts, the trace of the request that caused it.
    fn lock_due_event(due_by: Timestamptz) -> DueEventRecord;

    /// Opens a send of a payment of the order by its user, if it is `NOT_PAID`
    /// (migrations `void_recorded_before_the_send`, `outbox_traceparent`: with the
    /// payment's trace): whether it did.
    fn open_payment_send(placed: BigInt, buyer: BigInt, moment: Timestamptz, trace: Nullable<Text>) -> Bool;

    /// Closes one send of a payment of the order that certainly did not reach the
    /// platform.
    fn close_payment_send(placed: BigInt) -> Integer;
}
