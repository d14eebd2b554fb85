use std::collections::HashMap;

use application::StoreError;
use application::ports::{NewOrder, OrderRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::order::{Order, OrderStatus};
use domain::{OrderId, UserId};

use crate::error::{StoreContext, corrupt};
use crate::records::{OrderLineRow, OrderRow, status_text};
use crate::schema::{order_lines, orders};
use crate::sql::Statement;
use crate::work::PgWork;

/// Inserts the order ($1..$8) and its lines ($9..$14, one array per column).
const INSERT_ORDER: &str = "\
    WITH o AS ( \
        INSERT INTO orders (user_id, coupon_id, status, total_amount, discount_amount, payment_amount, created_at, \
                            expires_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *), \
    l AS ( \
        INSERT INTO order_lines (order_id, line_no, product_id, product_name, unit_price, quantity, amount) \
        SELECT o.id, w.* FROM o, unnest($9::int2[], $10::int8[], $11::text[], $12::int8[], $13::int4[], $14::int8[]) \
            AS w) \
    SELECT id, user_id, coupon_id, status, total_amount, discount_amount, payment_amount, created_at, expires_at, \
           paid_at FROM o";

/// [`INSERT_ORDER`], only once every line's stock ($15 lines) was taken at its price.
/// `locked` takes the rows' locks in ascending id (its sort runs below the lock), so
/// two orders over overlapping products cannot deadlock; the update then re-checks
/// stock and price on each row as last committed.
const INSERT_ORDER_TAKING_STOCK: &str = "\
    WITH w AS ( \
        SELECT * FROM unnest($9::int2[], $10::int8[], $11::text[], $12::int8[], $13::int4[], $14::int8[]) \
            AS w(line_no, product_id, product_name, unit_price, quantity, amount)), \
    taken AS ( \
        UPDATE products AS p SET stock = p.stock - w.quantity \
        FROM (SELECT id FROM products WHERE id = ANY($10::int8[]) ORDER BY id FOR NO KEY UPDATE) AS locked, w \
        WHERE p.id = locked.id AND p.id = w.product_id AND p.stock >= w.quantity AND p.price = w.unit_price \
        RETURNING p.id), \
    o AS ( \
        INSERT INTO orders (user_id, coupon_id, status, total_amount, discount_amount, payment_amount, created_at, \
                            expires_at) \
        SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE (SELECT count(*) FROM taken) = $15 RETURNING *), \
    l AS ( \
        INSERT INTO order_lines (order_id, line_no, product_id, product_name, unit_price, quantity, amount) \
        SELECT o.id, w.* FROM o, w) \
    SELECT id, user_id, coupon_id, status, total_amount, discount_amount, payment_amount, created_at, expires_at, \
           paid_at FROM o";

/// [`INSERT_ORDER`] or [`INSERT_ORDER_TAKING_STOCK`] with `order` bound to $1..$14.
macro_rules! bind_order {
    ($sql:expr, $order:expr) => {{
        let order: &NewOrder = $order;
        let lines = &order.priced.lines;
        Statement($sql)
            .bind::<BigInt, _>(order.user_id.get())
            .bind::<Nullable<BigInt>, _>(order.coupon_id.map(domain::CouponId::get))
            .bind::<Text, _>(status_text(OrderStatus::NotPaid))
            .bind::<BigInt, _>(order.priced.total_amount.krw())
            .bind::<BigInt, _>(order.priced.discount_amount.krw())
            .bind::<BigInt, _>(order.priced.payment_amount.krw())
            .bind::<Timestamptz, _>(order.created_at)
            .bind::<Timestamptz, _>(order.expires_at)
            .bind::<Array<SmallInt>, _>((1..).take(lines.len()).collect::<Vec<i16>>())
            .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.product_id.get()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.unit_price.krw()).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(lines.iter().map(|l| l.quantity.get()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.amount.krw()).collect::<Vec<_>>())
    }};
}

impl PgWork {
    /// The lines of `rows`, attached to their orders.
    async fn with_lines(&mut self, rows: Vec<OrderRow>) -> Result<Vec<Order>, StoreError> {
        let ids: Vec<i64> = rows.iter().map(|o| o.id).collect();
        let lines = order_lines::table
            .filter(order_lines::order_id.eq_any(&ids))
            .order((order_lines::order_id.asc(), order_lines::line_no.asc()))
            .select(OrderLineRow::as_select())
            .load::<OrderLineRow>(self.conn())
            .await
            .store_context("reading order lines")?;
        let mut by_order: HashMap<i64, Vec<OrderLineRow>> = HashMap::with_capacity(rows.len());
        for line in lines {
            by_order.entry(line.order_id).or_default().push(line);
        }
        rows.into_iter()
            .map(|row| {
                let own = by_order.remove(&row.id).unwrap_or_default();
                row.into_domain(own)
            })
            .collect()
    }

    async fn one_with_lines(&mut self, row: Option<OrderRow>) -> Result<Option<Order>, StoreError> {
        match row {
            Some(row) => Ok(self.with_lines(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl OrderRepository for PgWork {
    async fn insert(&mut self, order: &NewOrder) -> Result<Order, StoreError> {
        // The order and its lines in one statement: one round trip while the products'
        // row locks are held.
        let row = bind_order!(INSERT_ORDER, order)
            .get_result::<OrderRow>(self.conn())
            .await
            .store_context("inserting an order and its lines")?;
        row.with_lines(order.priced.lines.clone())
    }

    async fn insert_taking_stock(&mut self, order: &NewOrder) -> Result<Option<Order>, StoreError> {
        let lines = i64::try_from(order.priced.lines.len()).unwrap_or(i64::MAX);
        let row = bind_order!(INSERT_ORDER_TAKING_STOCK, order)
            .bind::<BigInt, _>(lines)
            .get_result::<OrderRow>(self.conn())
            .await
            .optional()
            .store_context("taking stock and inserting an order")?;
        row.map(|row| row.with_lines(order.priced.lines.clone())).transpose()
    }

    async fn find(&mut self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let row = orders::table
            .find(id.get())
            .select(OrderRow::as_select())
            .first(self.conn())
            .await
            .optional()
            .store_context("reading an order")?;
        self.one_with_lines(row).await
    }

    async fn lock(&mut self, id: OrderId) -> Result<Option<Order>, StoreError> {
        // The order under its row lock and its lines, in one round trip.
        let rows = orders::table
            .inner_join(order_lines::table)
            .filter(orders::id.eq(id.get()))
            .order(order_lines::line_no.asc())
            .select((OrderRow::as_select(), OrderLineRow::as_select()))
            .for_no_key_update()
            .load::<(OrderRow, OrderLineRow)>(self.conn())
            .await
            .store_context("locking an order")?;
        let mut rows = rows.into_iter();
        let Some((order, first)) = rows.next() else { return Ok(None) };
        let lines = std::iter::once(first).chain(rows.map(|(_, line)| line)).collect();
        order.into_domain(lines).map(Some)
    }

    async fn mark_paid(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let updated =
            diesel::update(orders::table.find(id.get()).filter(orders::status.eq(status_text(OrderStatus::NotPaid))))
                .set((orders::status.eq(status_text(OrderStatus::Paid)), orders::paid_at.eq(Some(at))))
                .execute(self.conn())
                .await
                .store_context("marking an order paid")?;
        if updated == 1 {
            Ok(())
        } else {
            Err(corrupt("order status", format!("order {id} was not NOT_PAID when paid")))
        }
    }

    async fn lock_expired(
        &mut self,
        at: DateTime<Utc>,
        limit: u16,
        skip: &[OrderId],
    ) -> Result<Vec<Order>, StoreError> {
        let skip: Vec<i64> = skip.iter().map(|id| id.get()).collect();
        let rows = orders::table
            .filter(orders::status.eq(status_text(OrderStatus::NotPaid)))
            .filter(orders::expires_at.le(at))
            .filter(orders::id.ne_all(skip))
            .order(orders::expires_at.asc())
            .limit(i64::from(limit))
            .select(OrderRow::as_select())
            .for_no_key_update()
            .skip_locked()
            .load(self.conn())
            .await
            .store_context("locking expired orders")?;
        self.with_lines(rows).await
    }

    async fn count_unpaid(&mut self, user: UserId) -> Result<u64, StoreError> {
        let unpaid: i64 = orders::table
            .filter(orders::user_id.eq(user.get()))
            .filter(orders::status.eq(status_text(OrderStatus::NotPaid)))
            .count()
            .get_result(self.conn())
            .await
            .store_context("counting unpaid orders")?;
        Ok(u64::try_from(unpaid).unwrap_or(0))
    }

    async fn mark_failed(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let updated =
            diesel::update(orders::table.find(id.get()).filter(orders::status.eq(status_text(OrderStatus::NotPaid))))
                .set((orders::status.eq(status_text(OrderStatus::Failed)), orders::failed_at.eq(Some(at))))
                .execute(self.conn())
                .await
                .store_context("marking an order failed")?;
        if updated == 1 {
            Ok(())
        } else {
            Err(corrupt("order status", format!("order {id} was not NOT_PAID when failed")))
        }
    }
}
