//! Fixtures for tests of every crate: fixed instants, ids, and builders of valid
//! entities whose defaults a test overrides only where they matter.
//!
//! Compiled for this crate's tests and, through the `testing` feature, for other
//! crates' tests. A fixture given an invalid value panics: it is a bug in the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use chrono::{DateTime, TimeZone, Utc};

use crate::coupon::{Coupon, CouponParts, DiscountPolicy, IssuedCoupon, ValidityWindow};
use crate::ids::{CouponId, OrderId, ProductId, UserId};
use crate::money::Money;
use crate::order::{Order, OrderItems, OrderLine, OrderParts, OrderStatus, PricedOrder, RequestedLine};
use crate::product::{Product, ProductName, Quantity, Stock};

/// The instant the fixtures count from.
pub const EPOCH_SECS: i64 = 1_800_000_000;

/// The instant `secs` seconds after [`EPOCH_SECS`] (before it when negative).
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(EPOCH_SECS + secs, 0).unwrap()
}

pub fn money(krw: i64) -> Money {
    Money::new(krw).unwrap()
}

pub fn uid(raw: i64) -> UserId {
    UserId::new(raw).unwrap()
}

pub fn pid(raw: i64) -> ProductId {
    ProductId::new(raw).unwrap()
}

pub fn cid(raw: i64) -> CouponId {
    CouponId::new(raw).unwrap()
}

pub fn oid(raw: i64) -> OrderId {
    OrderId::new(raw).unwrap()
}

pub fn quantity(raw: i64) -> Quantity {
    Quantity::new(raw).unwrap()
}

/// Product `id`, named "product {id}", at `price` KRW with `stock` units left.
pub fn product(id: i64, price: i64, stock: i64) -> Product {
    Product {
        id: pid(id),
        name: ProductName::new(&format!("product {id}")).unwrap(),
        price: money(price),
        stock: Stock::new(stock).unwrap(),
    }
}

/// A requested line: `quantity` units of product `product`.
pub fn requested(product: i64, quantity: i64) -> RequestedLine {
    RequestedLine { product_id: pid(product), quantity: self::quantity(quantity) }
}

/// Valid order items from `(product, quantity)` pairs, in the given order.
pub fn items(lines: &[(i64, i64)]) -> OrderItems {
    OrderItems::new(lines.iter().map(|&(product, quantity)| requested(product, quantity)).collect()).unwrap()
}

/// A priced line of [`product`]`(product, ..)`: `quantity` units at `unit_price` KRW.
pub fn order_line(product: i64, quantity: i64, unit_price: i64) -> OrderLine {
    OrderLine {
        product_id: pid(product),
        name: format!("product {product}"),
        unit_price: money(unit_price),
        quantity: self::quantity(quantity),
        amount: money(unit_price * quantity),
    }
}

/// Builds a [`Coupon`] through its checked constructor. By default: campaign 7,
/// "welcome", 1,000 KRW off, no minimum, 100 in total and all of them remaining,
/// valid from `at(0)` to `at(100)`.
#[derive(Debug, Clone)]
#[must_use]
pub struct CouponBuilder {
    id: i64,
    name: String,
    discount: DiscountPolicy,
    min_order_amount: i64,
    total_quantity: i32,
    remaining_quantity: Option<i32>,
    validity: (i64, i64),
}

impl Default for CouponBuilder {
    fn default() -> Self {
        Self {
            id: 7,
            name: "welcome".into(),
            discount: DiscountPolicy::fixed(1_000).unwrap(),
            min_order_amount: 0,
            total_quantity: 100,
            remaining_quantity: None,
            validity: (0, 100),
        }
    }
}

impl CouponBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    pub fn discount(mut self, discount: DiscountPolicy) -> Self {
        self.discount = discount;
        self
    }

    pub fn min_order_amount(mut self, krw: i64) -> Self {
        self.min_order_amount = krw;
        self
    }

    pub fn total_quantity(mut self, total: i32) -> Self {
        self.total_quantity = total;
        self
    }

    /// Defaults to the total quantity.
    pub fn remaining_quantity(mut self, remaining: i32) -> Self {
        self.remaining_quantity = Some(remaining);
        self
    }

    /// Valid from `at(from)` to `at(until)`, both included.
    pub fn valid(mut self, from: i64, until: i64) -> Self {
        self.validity = (from, until);
        self
    }

    pub fn build(self) -> Coupon {
        Coupon::new(CouponParts {
            id: cid(self.id),
            name: self.name,
            discount: self.discount,
            min_order_amount: money(self.min_order_amount),
            total_quantity: self.total_quantity,
            remaining_quantity: self.remaining_quantity.unwrap_or(self.total_quantity),
            validity: ValidityWindow::new(at(self.validity.0), at(self.validity.1)).unwrap(),
        })
        .unwrap()
    }

    /// The coupon as held by user 1 since `at(0)`, not used yet.
    pub fn held(self) -> IssuedCoupon {
        IssuedCoupon { coupon: self.build(), user_id: uid(1), issued_at: at(0), used_at: None }
    }
}

/// Builds an [`Order`] through its checked constructor, its total the sum of its lines
/// and its payment the total less the discount. By default: order 11 of user 1,
/// `NotPaid`, no coupon, no lines, no discount, created at `at(0)`, expiring at
/// `at(300)`. A `Paid` order without an explicit payment instant was paid when created.
#[derive(Debug, Clone)]
#[must_use]
pub struct OrderBuilder {
    id: i64,
    user_id: i64,
    status: OrderStatus,
    coupon_id: Option<i64>,
    lines: Vec<OrderLine>,
    discount_amount: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
}

impl Default for OrderBuilder {
    fn default() -> Self {
        Self {
            id: 11,
            user_id: 1,
            status: OrderStatus::NotPaid,
            coupon_id: None,
            lines: Vec::new(),
            discount_amount: 0,
            created_at: at(0),
            expires_at: at(300),
            paid_at: None,
        }
    }
}

impl OrderBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }

    pub fn user(mut self, user_id: i64) -> Self {
        self.user_id = user_id;
        self
    }

    pub fn status(mut self, status: OrderStatus) -> Self {
        self.status = status;
        self
    }

    pub fn coupon(mut self, coupon_id: i64) -> Self {
        self.coupon_id = Some(coupon_id);
        self
    }

    /// Adds [`order_line`]`(product, quantity, unit_price)`.
    pub fn line(mut self, product: i64, quantity: i64, unit_price: i64) -> Self {
        self.lines.push(order_line(product, quantity, unit_price));
        self
    }

    pub fn discount(mut self, krw: i64) -> Self {
        self.discount_amount = krw;
        self
    }

    /// The lines and the discount of a priced basket.
    pub fn priced(mut self, priced: &PricedOrder) -> Self {
        self.lines.clone_from(&priced.lines);
        self.discount_amount = priced.discount_amount.krw();
        self
    }

    pub fn created_at(mut self, created_at: DateTime<Utc>) -> Self {
        self.created_at = created_at;
        self
    }

    pub fn expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.expires_at = expires_at;
        self
    }

    pub fn paid_at(mut self, paid_at: DateTime<Utc>) -> Self {
        self.paid_at = Some(paid_at);
        self
    }

    pub fn build(self) -> Order {
        let total_amount = self.lines.iter().try_fold(Money::ZERO, |sum, line| sum.checked_add(line.amount)).unwrap();
        let discount_amount = money(self.discount_amount);
        let paid_at = if self.status.was_paid() { self.paid_at.or(Some(self.created_at)) } else { self.paid_at };
        let ended_at = |status| (self.status == status).then_some(self.created_at);
        Order::new(OrderParts {
            id: oid(self.id),
            user_id: uid(self.user_id),
            status: self.status,
            coupon_id: self.coupon_id.map(cid),
            lines: self.lines,
            total_amount,
            discount_amount,
            payment_amount: total_amount.checked_sub(discount_amount).unwrap(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at,
            cancelled_at: ended_at(OrderStatus::Cancelled),
            refunded_at: ended_at(OrderStatus::Refunded),
        })
        .unwrap()
    }
}
