use std::collections::HashMap;

use application::StoreError;
use application::ports::{NewOrder, OrderRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::order::{Order, OrderStatus};
use domain::{OrderId, UserId};

use crate::error::{StoreContext, corrupt};
use crate::functions::place_order;
use crate::records::{OrderColumns, OrderLineRow, OrderRow, status_text};
use crate::schema::{order_lines, orders};
use crate::work::PgWork;

impl PgWork {
    /// Calls `place_order` for `order`, taking its stock first when `take_stock`.
    async fn place(&mut self, order: &NewOrder, take_stock: bool) -> QueryResult<Option<OrderRow>> {
        let lines = &order.priced.lines;
        diesel::select(place_order(
            order.user_id.get(),
            order.coupon_id.map(domain::CouponId::get),
            order.priced.total_amount.krw(),
            order.priced.discount_amount.krw(),
            order.priced.payment_amount.krw(),
            order.created_at,
            order.expires_at,
            (1..).take(lines.len()).collect::<Vec<i16>>(),
            lines.iter().map(|l| l.product_id.get()).collect::<Vec<_>>(),
            lines.iter().map(|l| l.name.as_str().to_owned()).collect::<Vec<_>>(),
            lines.iter().map(|l| l.unit_price.krw()).collect::<Vec<_>>(),
            lines.iter().map(|l| l.quantity.get()).collect::<Vec<_>>(),
            lines.iter().map(|l| l.amount.krw()).collect::<Vec<_>>(),
            take_stock,
        ))
        .get_result::<OrderColumns>(self.conn())
        .await
        .optional()
        .map(|row| row.map(OrderRow::from))
    }

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
        // The order and its lines in one call: one round trip while the products'
        // row locks are held.
        let row = self.place(order, false).await.store_context("inserting an order and its lines")?;
        let row = row.ok_or_else(|| corrupt("order", "inserted without a row"))?;
        row.with_lines(order.priced.lines.clone())
    }

    async fn insert_taking_stock(&mut self, order: &NewOrder) -> Result<Option<Order>, StoreError> {
        let row = self.place(order, true).await.store_context("taking stock and inserting an order")?;
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
