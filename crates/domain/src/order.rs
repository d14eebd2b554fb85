//! Orders: what a basket costs, what a coupon takes off, and until when it can be paid.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::coupon::{CouponRefusal, IssuedCoupon};
use crate::ids::{CouponId, OrderId, ProductId, UserId};
use crate::money::Money;
use crate::product::{OutOfStock, Product, Quantity};

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 100;

/// One requested line: a product and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// The lines of an order as requested: 1..=100 lines, each product at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItems(Vec<RequestedLine>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrderItems {
    #[error("an order needs at least one item")]
    Empty,
    #[error("an order has at most {MAX_ORDER_LINES} lines, got {0}")]
    TooMany(usize),
    #[error("product {0} appears more than once")]
    DuplicateProduct(ProductId),
}

impl OrderItems {
    pub fn new(lines: Vec<RequestedLine>) -> Result<Self, InvalidOrderItems> {
        if lines.is_empty() {
            return Err(InvalidOrderItems::Empty);
        }
        if lines.len() > MAX_ORDER_LINES {
            return Err(InvalidOrderItems::TooMany(lines.len()));
        }
        let mut seen = HashSet::with_capacity(lines.len());
        if let Some(dup) = lines.iter().find(|line| !seen.insert(line.product_id)) {
            return Err(InvalidOrderItems::DuplicateProduct(dup.product_id));
        }
        Ok(Self(lines))
    }

    pub fn lines(&self) -> &[RequestedLine] {
        &self.0
    }

    /// The products of the order in ascending id: the order in which their rows are
    /// locked, so that two orders can never wait on each other in a cycle.
    pub fn product_ids_ascending(&self) -> Vec<ProductId> {
        let mut ids: Vec<ProductId> = self.0.iter().map(|l| l.product_id).collect();
        ids.sort_unstable();
        ids
    }
}

/// A priced order line, with the name and unit price the product had when ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub name: String,
    pub unit_price: Money,
    pub quantity: Quantity,
    pub amount: Money,
}

/// The outcome of pricing a basket: its lines and the three amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedOrder {
    pub lines: Vec<OrderLine>,
    pub total_amount: Money,
    pub discount_amount: Money,
    pub payment_amount: Money,
}

/// Why a basket cannot be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaceOrderRefusal {
    #[error("product {0} does not exist")]
    ProductNotFound(ProductId),
    #[error(transparent)]
    OutOfStock(#[from] OutOfStock),
    #[error(transparent)]
    Coupon(#[from] CouponRefusal),
    #[error("the order total is too large")]
    TotalOverflow,
    /// More than a balance can ever hold: it could never be paid.
    #[error("the payment amount {0} exceeds the largest balance, {max} KRW", max = crate::points::MAX_BALANCE_KRW)]
    AmountTooLarge(Money),
}

/// A user already holds as many unpaid orders as allowed: stock cannot be held hostage
/// by one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{max} orders are already waiting for payment; pay or let one expire first")]
pub struct TooManyUnpaidOrders {
    pub max: u32,
}

/// Whether a user holding `unpaid` orders still `NOT_PAID` may place one more, when at
/// most `max` may wait for payment at once.
pub fn may_place_another(unpaid: u64, max: u32) -> Result<(), TooManyUnpaidOrders> {
    if unpaid < u64::from(max) { Ok(()) } else { Err(TooManyUnpaidOrders { max }) }
}

/// Prices `items` against the current `products` (any order; missing ones are refused),
/// checks every line against its stock, and applies `coupon` when given.
pub fn price_order(
    items: &OrderItems,
    products: &[Product],
    coupon: Option<&IssuedCoupon>,
    at: DateTime<Utc>,
) -> Result<PricedOrder, PlaceOrderRefusal> {
    let mut lines = Vec::with_capacity(items.lines().len());
    for requested in items.lines() {
        let product = products
            .iter()
            .find(|p| p.id == requested.product_id)
            .ok_or(PlaceOrderRefusal::ProductNotFound(requested.product_id))?;
        if !product.stock.covers(requested.quantity) {
            return Err(OutOfStock {
                product: product.id,
                available: product.stock.get(),
                requested: requested.quantity.get(),
            }
            .into());
        }
        let amount =
            product.price.checked_mul(i64::from(requested.quantity.get())).ok_or(PlaceOrderRefusal::TotalOverflow)?;
        lines.push(OrderLine {
            product_id: product.id,
            name: product.name.as_str().to_owned(),
            unit_price: product.price,
            quantity: requested.quantity,
            amount,
        });
    }
    let total_amount = lines
        .iter()
        .try_fold(Money::ZERO, |sum, line| sum.checked_add(line.amount))
        .ok_or(PlaceOrderRefusal::TotalOverflow)?;
    let discount_amount = match coupon {
        Some(coupon) => coupon.discount_for(total_amount, at)?,
        None => Money::ZERO,
    };
    let payment_amount = total_amount.checked_sub(discount_amount).ok_or(PlaceOrderRefusal::TotalOverflow)?;
    if payment_amount.krw() > crate::points::MAX_BALANCE_KRW {
        return Err(PlaceOrderRefusal::AmountTooLarge(payment_amount));
    }
    Ok(PricedOrder { lines, total_amount, discount_amount, payment_amount })
}

/// Where an order is in its life.
///
/// ```text
/// NOT_PAID ──pay──▶ PAID ──refund──▶ REFUNDED
///    │ ╲
///    │  ╲─deadline─▶ FAILED
///    ╰──cancel─▶ CANCELLED
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed: stock reserved, coupon used, waiting for payment until `expires_at`.
    NotPaid,
    Paid,
    /// Not paid in time: its stock and coupon were given back.
    Failed,
    /// Cancelled by its user before it was paid: its stock and coupon were given back.
    Cancelled,
    /// Paid, then refunded by the shop: the payment went back to the balance and the
    /// stock to the products; the coupon stays used.
    Refunded,
}

impl OrderStatus {
    /// Whether the order was paid at some point (it has a payment instant).
    pub const fn was_paid(self) -> bool {
        matches!(self, Self::Paid | Self::Refunded)
    }
}

/// What the shop may say when it refunds an order: at most [`RefundReason::MAX_CHARS`]
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReason(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a refund reason is at most {max} characters", max = RefundReason::MAX_CHARS)]
pub struct InvalidRefundReason;

impl RefundReason {
    pub const MAX_CHARS: usize = 500;

    pub fn new(raw: &str) -> Result<Self, InvalidRefundReason> {
        if raw.chars().count() > Self::MAX_CHARS { Err(InvalidRefundReason) } else { Ok(Self(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long an order waits for its payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentTimeout(Duration);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the payment timeout must be between 1 second and 1 day")]
pub struct InvalidPaymentTimeout;

impl PaymentTimeout {
    pub fn from_secs(secs: u64) -> Result<Self, InvalidPaymentTimeout> {
        i64::try_from(secs)
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .map(|s| Self(Duration::seconds(s)))
            .ok_or(InvalidPaymentTimeout)
    }

    /// The deadline of an order created at `created_at`.
    pub fn deadline(self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at + self.0
    }
}

/// A placed order. Its amounts always agree: the total is the sum of its lines, the
/// discount is at most the total, and the payment is the total less the discount; it
/// has a payment instant exactly when it is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order(OrderParts);

/// The fields of an order before [`Order::new`] has checked that they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderParts {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub coupon_id: Option<CouponId>,
    pub lines: Vec<OrderLine>,
    pub total_amount: Money,
    pub discount_amount: Money,
    pub payment_amount: Money,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// Order fields that do not agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InconsistentOrder {
    #[error("the total {total} is not the sum of the order's line amounts")]
    TotalNotSumOfLines { total: Money },
    #[error("the discount {discount} exceeds the total {total}")]
    DiscountAboveTotal { discount: Money, total: Money },
    #[error("the payment amount {payment} is not the total {total} less the discount {discount}")]
    PaymentNotTotalLessDiscount { payment: Money, total: Money, discount: Money },
    #[error("an order has a payment instant exactly when it is or was paid (status {status:?})")]
    PaidAtMismatch { status: OrderStatus },
    #[error("an order has a cancellation instant exactly when it is cancelled (status {status:?})")]
    CancelledAtMismatch { status: OrderStatus },
    #[error("an order has a refund instant exactly when it is refunded (status {status:?})")]
    RefundedAtMismatch { status: OrderStatus },
}

/// Why an order cannot be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPayable {
    #[error("order {0} is already paid")]
    AlreadyPaid(OrderId),
    #[error("order {0} expired before it was paid")]
    Expired(OrderId),
    #[error("order {0} was cancelled")]
    Cancelled(OrderId),
}

/// Why an order cannot be cancelled: only an unpaid order before its deadline can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCancellable {
    #[error("order {0} is paid; it can only be refunded")]
    AlreadyPaid(OrderId),
    #[error("order {0} expired before it was paid")]
    Expired(OrderId),
    #[error("order {0} is already cancelled")]
    AlreadyCancelled(OrderId),
}

/// Why an order cannot be refunded: only a paid one can, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotRefundable {
    #[error("order {0} was never paid")]
    NotPaid(OrderId),
    #[error("order {0} is already refunded")]
    AlreadyRefunded(OrderId),
}

impl Order {
    /// An order from `parts`, refused when its amounts or its payment instant disagree.
    pub fn new(parts: OrderParts) -> Result<Self, InconsistentOrder> {
        let OrderParts {
            status,
            ref lines,
            total_amount,
            discount_amount,
            payment_amount,
            paid_at,
            cancelled_at,
            refunded_at,
            ..
        } = parts;
        let lines_sum = lines.iter().try_fold(Money::ZERO, |sum, line| sum.checked_add(line.amount));
        if lines_sum != Some(total_amount) {
            return Err(InconsistentOrder::TotalNotSumOfLines { total: total_amount });
        }
        let Some(expected_payment) = total_amount.checked_sub(discount_amount) else {
            return Err(InconsistentOrder::DiscountAboveTotal { discount: discount_amount, total: total_amount });
        };
        if payment_amount != expected_payment {
            return Err(InconsistentOrder::PaymentNotTotalLessDiscount {
                payment: payment_amount,
                total: total_amount,
                discount: discount_amount,
            });
        }
        if paid_at.is_some() != status.was_paid() {
            return Err(InconsistentOrder::PaidAtMismatch { status });
        }
        if cancelled_at.is_some() != (status == OrderStatus::Cancelled) {
            return Err(InconsistentOrder::CancelledAtMismatch { status });
        }
        if refunded_at.is_some() != (status == OrderStatus::Refunded) {
            return Err(InconsistentOrder::RefundedAtMismatch { status });
        }
        Ok(Self(parts))
    }

    pub const fn id(&self) -> OrderId {
        self.0.id
    }

    pub const fn user_id(&self) -> UserId {
        self.0.user_id
    }

    pub const fn status(&self) -> OrderStatus {
        self.0.status
    }

    pub const fn coupon_id(&self) -> Option<CouponId> {
        self.0.coupon_id
    }

    /// The priced lines, in the order they were requested.
    pub fn lines(&self) -> &[OrderLine] {
        &self.0.lines
    }

    /// The priced lines, for a caller that no longer needs the order.
    pub fn into_lines(self) -> Vec<OrderLine> {
        self.0.lines
    }

    pub const fn total_amount(&self) -> Money {
        self.0.total_amount
    }

    pub const fn discount_amount(&self) -> Money {
        self.0.discount_amount
    }

    pub const fn payment_amount(&self) -> Money {
        self.0.payment_amount
    }

    pub const fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The payment deadline: at this instant the order has expired.
    pub const fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    /// When it was paid; `Some` exactly when the status is `Paid` or `Refunded`.
    pub const fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }

    /// When its user cancelled it; `Some` exactly when the status is `Cancelled`.
    pub const fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }

    /// When the shop refunded it; `Some` exactly when the status is `Refunded`.
    pub const fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }

    /// An order can be paid while it is `NOT_PAID` and strictly before `expires_at`;
    /// at `expires_at` itself it has expired, whether or not the sweep has run.
    pub fn check_payable(&self, at: DateTime<Utc>) -> Result<(), NotPayable> {
        match self.0.status {
            OrderStatus::Paid | OrderStatus::Refunded => Err(NotPayable::AlreadyPaid(self.0.id)),
            OrderStatus::Failed => Err(NotPayable::Expired(self.0.id)),
            OrderStatus::Cancelled => Err(NotPayable::Cancelled(self.0.id)),
            OrderStatus::NotPaid if has_expired(self.0.expires_at, at) => Err(NotPayable::Expired(self.0.id)),
            OrderStatus::NotPaid => Ok(()),
        }
    }

    /// The order cancelled at `at`. Like a payment, a cancellation needs a `NOT_PAID`
    /// order before its deadline: at the deadline the order has expired, and the
    /// expiry sweep, not the cancellation, gives its stock and coupon back.
    pub fn cancel(self, at: DateTime<Utc>) -> Result<Self, NotCancellable> {
        let id = self.0.id;
        match self.0.status {
            OrderStatus::Paid | OrderStatus::Refunded => Err(NotCancellable::AlreadyPaid(id)),
            OrderStatus::Failed => Err(NotCancellable::Expired(id)),
            OrderStatus::Cancelled => Err(NotCancellable::AlreadyCancelled(id)),
            OrderStatus::NotPaid if has_expired(self.0.expires_at, at) => Err(NotCancellable::Expired(id)),
            OrderStatus::NotPaid => {
                Ok(Self(OrderParts { status: OrderStatus::Cancelled, cancelled_at: Some(at), ..self.0 }))
            }
        }
    }

    /// The order refunded at `at`: only a `PAID` order can be, once.
    pub fn refund(self, at: DateTime<Utc>) -> Result<Self, NotRefundable> {
        match self.0.status {
            OrderStatus::Paid => {
                Ok(Self(OrderParts { status: OrderStatus::Refunded, refunded_at: Some(at), ..self.0 }))
            }
            OrderStatus::Refunded => Err(NotRefundable::AlreadyRefunded(self.0.id)),
            OrderStatus::NotPaid | OrderStatus::Failed | OrderStatus::Cancelled => {
                Err(NotRefundable::NotPaid(self.0.id))
            }
        }
    }

    /// What its lines took from the products' stock: given back when the order is
    /// cancelled, expires or is refunded.
    pub fn quantities(&self) -> Vec<(ProductId, Quantity)> {
        self.0.lines.iter().map(|l| (l.product_id, l.quantity)).collect()
    }
}

/// Whether an order with deadline `expires_at` has expired at `at` (the deadline included).
pub fn has_expired(expires_at: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    at >= expires_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon::DiscountPolicy;
    use crate::testing::{
        CouponBuilder, OrderBuilder, at, money, order_line, pid, product, quantity, requested as line,
    };

    fn held(discount: DiscountPolicy, min: i64) -> IssuedCoupon {
        CouponBuilder::new().discount(discount).min_order_amount(min).remaining_quantity(10).held()
    }

    #[test]
    fn items_must_be_non_empty_bounded_and_distinct() {
        assert_eq!(OrderItems::new(vec![]), Err(InvalidOrderItems::Empty));
        assert_eq!(OrderItems::new(vec![line(1, 1), line(1, 2)]), Err(InvalidOrderItems::DuplicateProduct(pid(1))));
        let hundred: Vec<_> = (1..=100).map(|i| line(i, 1)).collect();
        assert!(OrderItems::new(hundred).is_ok());
        let too_many: Vec<_> = (1..=101).map(|i| line(i, 1)).collect();
        assert_eq!(OrderItems::new(too_many), Err(InvalidOrderItems::TooMany(101)));
    }

    #[test]
    fn products_are_locked_in_ascending_id() {
        let items = OrderItems::new(vec![line(9, 1), line(2, 1), line(5, 1)]).unwrap();
        assert_eq!(items.product_ids_ascending(), vec![pid(2), pid(5), pid(9)]);
    }

    #[test]
    fn pricing_sums_lines_in_request_order() {
        let items = OrderItems::new(vec![line(2, 3), line(1, 1)]).unwrap();
        let priced = price_order(&items, &[product(1, 1_000, 5), product(2, 250, 3)], None, at(0)).unwrap();
        assert_eq!(priced.lines.iter().map(|l| l.product_id).collect::<Vec<_>>(), vec![pid(2), pid(1)]);
        assert_eq!(priced.lines[0].amount, money(750));
        assert_eq!(priced.total_amount, money(1_750));
        assert_eq!(priced.discount_amount, Money::ZERO);
        assert_eq!(priced.payment_amount, money(1_750));
    }

    #[test]
    fn pricing_refuses_missing_products_and_short_stock() {
        let items = OrderItems::new(vec![line(1, 4)]).unwrap();
        assert_eq!(price_order(&items, &[], None, at(0)), Err(PlaceOrderRefusal::ProductNotFound(pid(1))));
        assert_eq!(
            price_order(&items, &[product(1, 10, 3)], None, at(0)),
            Err(PlaceOrderRefusal::OutOfStock(OutOfStock { product: pid(1), available: 3, requested: 4 }))
        );
        assert!(price_order(&items, &[product(1, 10, 4)], None, at(0)).is_ok(), "the last units can be ordered");
    }

    #[test]
    fn a_total_beyond_64_bits_is_refused_not_wrapped() {
        let lines: Vec<_> = (1..=50).map(|id| line(id, i64::from(i32::MAX))).collect();
        let products: Vec<_> = (1..=50).map(|id| product(id, 100_000_000, i64::from(i32::MAX))).collect();
        let items = OrderItems::new(lines).unwrap();
        assert_eq!(price_order(&items, &products, None, at(0)), Err(PlaceOrderRefusal::TotalOverflow));
    }

    #[test]
    fn an_order_no_balance_could_pay_is_refused_and_the_largest_payable_one_is_accepted() {
        let items = OrderItems::new(vec![line(1, 10)]).unwrap();
        let refused = price_order(&items, &[product(1, 2_600_000, 10)], None, at(0));
        assert_eq!(refused, Err(PlaceOrderRefusal::AmountTooLarge(Money::new(26_000_000).unwrap())));
        let items = OrderItems::new(vec![line(1, 2)]).unwrap();
        assert!(price_order(&items, &[product(1, 2_500_000, 10)], None, at(0)).is_ok(), "exactly 5,000,000 is payable");
    }

    #[test]
    fn a_user_may_hold_up_to_the_limit_of_unpaid_orders() {
        assert_eq!(may_place_another(4, 5), Ok(()));
        assert_eq!(may_place_another(5, 5), Err(TooManyUnpaidOrders { max: 5 }));
        assert_eq!(may_place_another(0, 0), Err(TooManyUnpaidOrders { max: 0 }));
    }

    #[test]
    fn pricing_applies_the_coupon() {
        let items = OrderItems::new(vec![line(1, 2)]).unwrap();
        let products = [product(1, 1_000, 10)];
        let coupon = held(DiscountPolicy::percent(10).unwrap(), 2_000);
        let priced = price_order(&items, &products, Some(&coupon), at(10)).unwrap();
        assert_eq!(
            (priced.total_amount, priced.discount_amount, priced.payment_amount),
            (money(2_000), money(200), money(1_800))
        );

        let big_fixed = held(DiscountPolicy::fixed(5_000).unwrap(), 0);
        let priced = price_order(&items, &products, Some(&big_fixed), at(10)).unwrap();
        assert_eq!((priced.discount_amount, priced.payment_amount), (money(2_000), Money::ZERO));

        let one_line = OrderItems::new(vec![line(1, 1)]).unwrap();
        assert!(matches!(
            price_order(&one_line, &products, Some(&coupon), at(10)),
            Err(PlaceOrderRefusal::Coupon(CouponRefusal::BelowMinimum { .. }))
        ));
    }

    fn order(status: OrderStatus) -> Order {
        OrderBuilder::new().status(status).build()
    }

    /// Order 11 of user 1 with two lines totalling 2,500, a 250 discount and a 2,250 payment.
    fn parts() -> OrderParts {
        OrderParts {
            id: OrderId::new(11).unwrap(),
            user_id: UserId::new(1).unwrap(),
            status: OrderStatus::NotPaid,
            coupon_id: CouponId::new(7).ok(),
            lines: vec![order_line(2, 2, 1_000), order_line(5, 1, 500)],
            total_amount: money(2_500),
            discount_amount: money(250),
            payment_amount: money(2_250),
            created_at: at(0),
            expires_at: at(300),
            paid_at: None,
            cancelled_at: None,
            refunded_at: None,
        }
    }

    #[test]
    fn an_order_whose_amounts_agree_is_accepted() {
        let order = Order::new(parts()).unwrap();
        assert_eq!(order.id(), OrderId::new(11).unwrap());
        assert_eq!(order.user_id(), UserId::new(1).unwrap());
        assert_eq!(order.status(), OrderStatus::NotPaid);
        assert_eq!(order.coupon_id(), CouponId::new(7).ok());
        assert_eq!(order.lines(), [order_line(2, 2, 1_000), order_line(5, 1, 500)]);
        assert_eq!(
            (order.total_amount(), order.discount_amount(), order.payment_amount()),
            (money(2_500), money(250), money(2_250))
        );
        assert_eq!((order.created_at(), order.expires_at(), order.paid_at()), (at(0), at(300), None));
        assert_eq!(order.into_lines(), vec![order_line(2, 2, 1_000), order_line(5, 1, 500)]);
        let paid = Order::new(OrderParts { status: OrderStatus::Paid, paid_at: Some(at(10)), ..parts() }).unwrap();
        assert_eq!(paid.paid_at(), Some(at(10)));
        let whole_discount = OrderParts { discount_amount: money(2_500), payment_amount: Money::ZERO, ..parts() };
        assert!(Order::new(whole_discount).is_ok(), "a discount may take the whole total");
        let empty = OrderParts {
            lines: vec![],
            total_amount: Money::ZERO,
            discount_amount: Money::ZERO,
            payment_amount: Money::ZERO,
            ..parts()
        };
        assert!(Order::new(empty).is_ok());
    }

    #[test]
    fn an_order_total_is_the_sum_of_its_lines() {
        let off_by_one = OrderParts { total_amount: money(2_501), payment_amount: money(2_251), ..parts() };
        assert_eq!(Order::new(off_by_one), Err(InconsistentOrder::TotalNotSumOfLines { total: money(2_501) }));
        let line_missing = OrderParts { lines: vec![order_line(2, 2, 1_000)], ..parts() };
        assert_eq!(Order::new(line_missing), Err(InconsistentOrder::TotalNotSumOfLines { total: money(2_500) }));
        let overflowing = OrderParts {
            lines: vec![order_line(1, 1, i64::MAX), order_line(2, 1, 1)],
            total_amount: Money::new(i64::MAX).unwrap(),
            discount_amount: Money::ZERO,
            payment_amount: Money::new(i64::MAX).unwrap(),
            ..parts()
        };
        assert_eq!(
            Order::new(overflowing),
            Err(InconsistentOrder::TotalNotSumOfLines { total: Money::new(i64::MAX).unwrap() })
        );
    }

    #[test]
    fn an_order_discount_is_at_most_its_total() {
        let too_much = OrderParts { discount_amount: money(2_501), payment_amount: Money::ZERO, ..parts() };
        assert_eq!(
            Order::new(too_much),
            Err(InconsistentOrder::DiscountAboveTotal { discount: money(2_501), total: money(2_500) })
        );
    }

    #[test]
    fn an_order_payment_is_its_total_less_its_discount() {
        for payment in [2_249, 2_251, 2_500] {
            let wrong = OrderParts { payment_amount: money(payment), ..parts() };
            assert_eq!(
                Order::new(wrong),
                Err(InconsistentOrder::PaymentNotTotalLessDiscount {
                    payment: money(payment),
                    total: money(2_500),
                    discount: money(250),
                })
            );
        }
    }

    #[test]
    fn an_order_has_a_payment_instant_exactly_when_paid() {
        let paid_without = OrderParts { status: OrderStatus::Paid, paid_at: None, ..parts() };
        assert_eq!(Order::new(paid_without), Err(InconsistentOrder::PaidAtMismatch { status: OrderStatus::Paid }));
        for status in [OrderStatus::NotPaid, OrderStatus::Failed] {
            let unpaid_with = OrderParts { status, paid_at: Some(at(10)), ..parts() };
            assert_eq!(Order::new(unpaid_with), Err(InconsistentOrder::PaidAtMismatch { status }));
        }
        let cancelled_with =
            OrderParts { status: OrderStatus::Cancelled, paid_at: Some(at(10)), cancelled_at: Some(at(10)), ..parts() };
        assert_eq!(
            Order::new(cancelled_with),
            Err(InconsistentOrder::PaidAtMismatch { status: OrderStatus::Cancelled })
        );
        let refunded = OrderParts { status: OrderStatus::Refunded, refunded_at: Some(at(20)), ..parts() };
        assert_eq!(
            Order::new(OrderParts { paid_at: None, ..refunded.clone() }),
            Err(InconsistentOrder::PaidAtMismatch { status: OrderStatus::Refunded })
        );
        assert!(Order::new(OrderParts { paid_at: Some(at(10)), ..refunded }).is_ok(), "a refunded order was paid");
    }

    #[test]
    fn an_order_has_a_cancellation_and_a_refund_instant_exactly_in_those_statuses() {
        let cancelled = OrderParts { status: OrderStatus::Cancelled, cancelled_at: Some(at(5)), ..parts() };
        assert_eq!(Order::new(cancelled.clone()).map(|o| o.cancelled_at()), Ok(Some(at(5))));
        assert_eq!(
            Order::new(OrderParts { cancelled_at: None, ..cancelled }),
            Err(InconsistentOrder::CancelledAtMismatch { status: OrderStatus::Cancelled })
        );
        assert_eq!(
            Order::new(OrderParts { cancelled_at: Some(at(5)), ..parts() }),
            Err(InconsistentOrder::CancelledAtMismatch { status: OrderStatus::NotPaid })
        );
        let paid = OrderParts { status: OrderStatus::Paid, paid_at: Some(at(10)), ..parts() };
        assert_eq!(
            Order::new(OrderParts { refunded_at: Some(at(20)), ..paid }),
            Err(InconsistentOrder::RefundedAtMismatch { status: OrderStatus::Paid })
        );
    }

    #[test]
    fn an_unpaid_order_can_be_cancelled_before_its_deadline_and_only_then() {
        let id = OrderId::new(11).unwrap();
        let cancelled = order(OrderStatus::NotPaid).cancel(at(299)).unwrap();
        assert_eq!((cancelled.status(), cancelled.cancelled_at()), (OrderStatus::Cancelled, Some(at(299))));
        assert_eq!(cancelled.paid_at(), None);
        assert_eq!(order(OrderStatus::NotPaid).cancel(at(300)), Err(NotCancellable::Expired(id)));
        assert_eq!(order(OrderStatus::Failed).cancel(at(1)), Err(NotCancellable::Expired(id)));
        assert_eq!(order(OrderStatus::Paid).cancel(at(1)), Err(NotCancellable::AlreadyPaid(id)));
        assert_eq!(order(OrderStatus::Refunded).cancel(at(1)), Err(NotCancellable::AlreadyPaid(id)));
        assert_eq!(order(OrderStatus::Cancelled).cancel(at(1)), Err(NotCancellable::AlreadyCancelled(id)));
        assert_eq!(cancelled.check_payable(at(1)), Err(NotPayable::Cancelled(id)), "a cancelled order cannot be paid");
    }

    #[test]
    fn only_a_paid_order_can_be_refunded_and_only_once() {
        let id = OrderId::new(11).unwrap();
        let paid = OrderBuilder::new().status(OrderStatus::Paid).paid_at(at(10)).line(1, 2, 500).build();
        let refunded = paid.refund(at(400)).unwrap();
        assert_eq!(
            (refunded.status(), refunded.paid_at(), refunded.refunded_at()),
            (OrderStatus::Refunded, Some(at(10)), Some(at(400))),
            "a refund may come after the payment deadline, and keeps the payment instant"
        );
        assert_eq!(refunded.payment_amount(), money(1_000));
        assert_eq!(refunded.clone().refund(at(401)), Err(NotRefundable::AlreadyRefunded(id)));
        for status in [OrderStatus::NotPaid, OrderStatus::Failed, OrderStatus::Cancelled] {
            assert_eq!(order(status).refund(at(1)), Err(NotRefundable::NotPaid(id)), "{status:?}");
        }
        assert_eq!(refunded.check_payable(at(1)), Err(NotPayable::AlreadyPaid(id)));
    }

    #[test]
    fn an_order_gives_back_the_quantities_of_its_lines() {
        let order = OrderBuilder::new().line(4, 2, 100).line(2, 5, 10).build();
        assert_eq!(order.quantities(), vec![(pid(4), quantity(2)), (pid(2), quantity(5))]);
    }

    #[test]
    fn a_refund_reason_is_at_most_500_characters() {
        assert_eq!(RefundReason::new(&"가".repeat(500)).map(|r| r.as_str().chars().count()), Ok(500));
        assert_eq!(RefundReason::new(&"a".repeat(501)), Err(InvalidRefundReason));
        assert_eq!(RefundReason::new("").map(|r| r.as_str().len()), Ok(0));
    }

    #[test]
    fn an_order_is_payable_strictly_before_its_deadline() {
        let id = OrderId::new(11).unwrap();
        assert_eq!(order(OrderStatus::NotPaid).check_payable(at(299)), Ok(()));
        assert_eq!(order(OrderStatus::NotPaid).check_payable(at(300)), Err(NotPayable::Expired(id)));
        assert_eq!(order(OrderStatus::NotPaid).check_payable(at(301)), Err(NotPayable::Expired(id)));
        assert_eq!(order(OrderStatus::Paid).check_payable(at(1)), Err(NotPayable::AlreadyPaid(id)));
        assert_eq!(order(OrderStatus::Failed).check_payable(at(1)), Err(NotPayable::Expired(id)));
    }

    #[test]
    fn payment_timeout_sets_the_deadline() {
        let timeout = PaymentTimeout::from_secs(300).unwrap();
        assert_eq!(timeout.deadline(at(0)), at(300));
        assert_eq!(PaymentTimeout::from_secs(0), Err(InvalidPaymentTimeout));
        assert_eq!(PaymentTimeout::from_secs(86_401), Err(InvalidPaymentTimeout));
        assert!(has_expired(at(300), at(300)));
        assert!(!has_expired(at(300), at(299)));
    }
}
