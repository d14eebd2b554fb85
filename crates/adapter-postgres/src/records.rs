//! Rows as diesel reads them, and their conversion into domain values. A stored row
//! that breaks a domain rule becomes `StoreError::Unexpected`.

use application::StoreError;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use domain::coupon::{Coupon, CouponParts, DiscountPolicy, IssuedCoupon, ValidityWindow};
use domain::order::{Order, OrderLine, OrderParts, OrderStatus};
use domain::points::{Balance, PointEntry, PointEntryKind};
use domain::product::{Product, ProductName, Quantity, Stock};
use domain::user::User;
use domain::{CouponId, Money, OrderId, ProductId, UserId};

use crate::error::corrupt;
use crate::functions::coupon_remaining;
use crate::schema::{coupons, order_lines, orders, point_history, products, user_coupons, users};

pub(crate) fn user_id(raw: i64) -> Result<UserId, StoreError> {
    UserId::new(raw).map_err(|e| corrupt("user id", e))
}
pub(crate) fn product_id(raw: i64) -> Result<ProductId, StoreError> {
    ProductId::new(raw).map_err(|e| corrupt("product id", e))
}
pub(crate) fn coupon_id(raw: i64) -> Result<CouponId, StoreError> {
    CouponId::new(raw).map_err(|e| corrupt("coupon id", e))
}
pub(crate) fn order_id(raw: i64) -> Result<OrderId, StoreError> {
    OrderId::new(raw).map_err(|e| corrupt("order id", e))
}
pub(crate) fn money(raw: i64) -> Result<Money, StoreError> {
    Money::new(raw).map_err(|e| corrupt("amount", e))
}
pub(crate) fn balance(raw: i64) -> Result<Balance, StoreError> {
    Balance::new(raw).map_err(|e| corrupt("balance", e))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    id: i64,
    name: String,
    balance: i64,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> Result<User, StoreError> {
        Ok(User { id: user_id(self.id)?, name: self.name, balance: balance(self.balance)? })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = point_history, check_for_backend(diesel::pg::Pg))]
pub(crate) struct PointEntryRow {
    id: i64,
    user_id: i64,
    kind: String,
    amount: i64,
    balance_after: i64,
    order_id: Option<i64>,
    created_at: DateTime<Utc>,
}

pub(crate) fn point_kind_text(kind: PointEntryKind) -> &'static str {
    match kind {
        PointEntryKind::Charge => "CHARGE",
        PointEntryKind::Use => "USE",
        PointEntryKind::Refund => "REFUND",
    }
}

impl PointEntryRow {
    pub(crate) fn into_domain(self) -> Result<PointEntry, StoreError> {
        let kind = match self.kind.as_str() {
            "CHARGE" => PointEntryKind::Charge,
            "USE" => PointEntryKind::Use,
            "REFUND" => PointEntryKind::Refund,
            other => return Err(corrupt("point entry kind", other)),
        };
        Ok(PointEntry {
            id: self.id,
            user_id: user_id(self.user_id)?,
            kind,
            amount: money(self.amount)?,
            balance_after: balance(self.balance_after)?,
            order_id: self.order_id.map(order_id).transpose()?,
            created_at: self.created_at,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ProductRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) price: i64,
    pub(crate) stock: i32,
}

impl ProductRow {
    pub(crate) fn into_domain(self) -> Result<Product, StoreError> {
        Ok(Product {
            id: product_id(self.id)?,
            name: ProductName::new(&self.name).map_err(|e| corrupt("product name", e))?,
            price: money(self.price)?,
            stock: Stock::new(i64::from(self.stock)).map_err(|e| corrupt("stock", e))?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = coupons, check_for_backend(diesel::pg::Pg))]
pub(crate) struct CouponRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) discount_type: String,
    pub(crate) discount_value: i64,
    pub(crate) min_order_amount: i64,
    pub(crate) total_quantity: i32,
    /// Its buckets' sum, or 0 without reading them once it is flagged sold out.
    #[diesel(select_expression = coupon_remaining(coupons::id, coupons::sold_out))]
    #[diesel(select_expression_type = coupon_remaining<coupons::id, coupons::sold_out>)]
    pub(crate) remaining_quantity: i32,
    pub(crate) valid_from: DateTime<Utc>,
    pub(crate) valid_until: DateTime<Utc>,
}

pub(crate) fn discount_columns(policy: DiscountPolicy) -> (&'static str, i64) {
    match policy {
        DiscountPolicy::Fixed(amount) => ("FIXED", amount.krw()),
        DiscountPolicy::Percent(percent) => ("PERCENT", i64::from(percent)),
    }
}

impl CouponRow {
    pub(crate) fn into_domain(self) -> Result<Coupon, StoreError> {
        let discount = match self.discount_type.as_str() {
            "FIXED" => DiscountPolicy::fixed(self.discount_value),
            "PERCENT" => DiscountPolicy::percent(self.discount_value),
            other => return Err(corrupt("discount type", other)),
        }
        .map_err(|e| corrupt("discount", e))?;
        Coupon::new(CouponParts {
            id: coupon_id(self.id)?,
            name: self.name,
            discount,
            min_order_amount: money(self.min_order_amount)?,
            total_quantity: self.total_quantity,
            remaining_quantity: self.remaining_quantity,
            validity: ValidityWindow::new(self.valid_from, self.valid_until).map_err(|e| corrupt("validity", e))?,
        })
        .map_err(|e| corrupt("coupon", e))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = user_coupons, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserCouponRow {
    user_id: i64,
    issued_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl UserCouponRow {
    pub(crate) fn into_domain(self, coupon: CouponRow) -> Result<IssuedCoupon, StoreError> {
        Ok(IssuedCoupon {
            coupon: coupon.into_domain()?,
            user_id: user_id(self.user_id)?,
            issued_at: self.issued_at,
            used_at: self.used_at,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrderRow {
    pub(crate) id: i64,
    user_id: i64,
    coupon_id: Option<i64>,
    status: String,
    total_amount: i64,
    discount_amount: i64,
    payment_amount: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    refunded_at: Option<DateTime<Utc>>,
}

/// An order's columns as the `place_order` function returns them.
pub(crate) type OrderColumns =
    (i64, i64, Option<i64>, String, i64, i64, i64, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);

const STATUSES: [(OrderStatus, &str); 5] = [
    (OrderStatus::NotPaid, "NOT_PAID"),
    (OrderStatus::Paid, "PAID"),
    (OrderStatus::Failed, "FAILED"),
    (OrderStatus::Cancelled, "CANCELLED"),
    (OrderStatus::Refunded, "REFUNDED"),
];

pub(crate) fn status_text(status: OrderStatus) -> &'static str {
    STATUSES.iter().find(|(known, _)| *known == status).map_or("", |(_, text)| text)
}

pub(crate) fn status_from_text(text: &str) -> Result<OrderStatus, StoreError> {
    STATUSES
        .iter()
        .find(|(_, known)| *known == text)
        .map(|(status, _)| *status)
        .ok_or_else(|| corrupt("order status", text))
}

impl OrderRow {
    /// The row of an order `place_order` has just inserted (`NOT_PAID`).
    pub(crate) fn placed(columns: OrderColumns) -> Self {
        let (
            id,
            user_id,
            coupon_id,
            status,
            total_amount,
            discount_amount,
            payment_amount,
            created_at,
            expires_at,
            paid_at,
        ) = columns;
        Self {
            id,
            user_id,
            coupon_id,
            status,
            total_amount,
            discount_amount,
            payment_amount,
            created_at,
            expires_at,
            paid_at,
            cancelled_at: None,
            refunded_at: None,
        }
    }

    pub(crate) fn into_domain(self, lines: Vec<OrderLineRow>) -> Result<Order, StoreError> {
        let lines = lines.into_iter().map(OrderLineRow::into_domain).collect::<Result<_, _>>()?;
        self.with_lines(lines)
    }

    /// The order with lines it is known to have (they were written with it).
    pub(crate) fn with_lines(self, lines: Vec<OrderLine>) -> Result<Order, StoreError> {
        let status = status_from_text(&self.status)?;
        Order::new(OrderParts {
            id: order_id(self.id)?,
            user_id: user_id(self.user_id)?,
            status,
            coupon_id: self.coupon_id.map(coupon_id).transpose()?,
            lines,
            total_amount: money(self.total_amount)?,
            discount_amount: money(self.discount_amount)?,
            payment_amount: money(self.payment_amount)?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at,
            cancelled_at: self.cancelled_at,
            refunded_at: self.refunded_at,
        })
        .map_err(|e| corrupt("order", e))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = order_lines, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrderLineRow {
    pub(crate) order_id: i64,
    product_id: i64,
    product_name: String,
    unit_price: i64,
    quantity: i32,
    amount: i64,
}

impl OrderLineRow {
    fn into_domain(self) -> Result<OrderLine, StoreError> {
        Ok(OrderLine {
            product_id: product_id(self.product_id)?,
            name: self.product_name,
            unit_price: money(self.unit_price)?,
            quantity: Quantity::new(i64::from(self.quantity)).map_err(|e| corrupt("quantity", e))?,
            amount: money(self.amount)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::testing::at;

    use super::*;

    fn coupon_row(total_quantity: i32, remaining_quantity: i32) -> CouponRow {
        CouponRow {
            id: 7,
            name: "welcome".into(),
            discount_type: "FIXED".into(),
            discount_value: 1_000,
            min_order_amount: 0,
            total_quantity,
            remaining_quantity,
            valid_from: at(0),
            valid_until: at(100),
        }
    }

    fn order_row(total_amount: i64, discount_amount: i64, payment_amount: i64) -> OrderRow {
        OrderRow {
            id: 11,
            user_id: 1,
            coupon_id: None,
            status: "NOT_PAID".into(),
            total_amount,
            discount_amount,
            payment_amount,
            created_at: at(0),
            expires_at: at(300),
            paid_at: None,
            cancelled_at: None,
            refunded_at: None,
        }
    }

    fn line_row(amount: i64) -> OrderLineRow {
        OrderLineRow { order_id: 11, product_id: 1, product_name: "p".into(), unit_price: amount, quantity: 1, amount }
    }

    #[test]
    fn a_consistent_coupon_row_is_read() {
        let coupon = coupon_row(10, 3).into_domain().unwrap();
        assert_eq!((coupon.total_quantity(), coupon.remaining_quantity()), (10, 3));
    }

    #[test]
    fn a_coupon_row_with_inconsistent_quantities_is_unexpected() {
        for (total, remaining) in [(0, 0), (10, 11), (10, -1)] {
            assert!(
                matches!(coupon_row(total, remaining).into_domain(), Err(StoreError::Unexpected(_))),
                "total {total}, remaining {remaining}"
            );
        }
    }

    #[test]
    fn a_consistent_order_row_is_read() {
        let order = order_row(1_000, 100, 900).into_domain(vec![line_row(1_000)]).unwrap();
        assert_eq!(order.payment_amount().krw(), 900);
    }

    #[test]
    fn an_order_row_with_inconsistent_amounts_is_unexpected() {
        for (total, discount, payment, line) in
            [(1_000, 100, 900, 999), (1_000, 1_001, 0, 1_000), (1_000, 100, 1_000, 1_000)]
        {
            assert!(
                matches!(
                    order_row(total, discount, payment).into_domain(vec![line_row(line)]),
                    Err(StoreError::Unexpected(_))
                ),
                "total {total}, discount {discount}, payment {payment}, line {line}"
            );
        }
    }
}
