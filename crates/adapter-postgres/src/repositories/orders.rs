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
use crate::records::{OrderLineRow, OrderRow, status_text};
use crate::schema::{order_lines, orders};
use crate::work::PgWork;

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
        let priced = &order.priced;
        let row = diesel::insert_into(orders::table)
            .values((
                orders::user_id.eq(order.user_id.get()),
                orders::coupon_id.eq(order.coupon_id.map(domain::CouponId::get)),
                orders::status.eq(status_text(OrderStatus::NotPaid)),
                orders::total_amount.eq(priced.total_amount.krw()),
                orders::discount_amount.eq(priced.discount_amount.krw()),
                orders::payment_amount.eq(priced.payment_amount.krw()),
                orders::created_at.eq(order.created_at),
                orders::expires_at.eq(order.expires_at),
            ))
            .returning(OrderRow::as_returning())
            .get_result(self.conn())
            .await
            .store_context("inserting an order")?;
        let lines = priced
            .lines
            .iter()
            .zip(1_i16..)
            .map(|(line, line_no)| {
                (
                    order_lines::order_id.eq(row.id),
                    order_lines::line_no.eq(line_no),
                    order_lines::product_id.eq(line.product_id.get()),
                    order_lines::product_name.eq(&line.name),
                    order_lines::unit_price.eq(line.unit_price.krw()),
                    order_lines::quantity.eq(line.quantity.get()),
                    order_lines::amount.eq(line.amount.krw()),
                )
            })
            .collect::<Vec<_>>();
        let lines = diesel::insert_into(order_lines::table)
            .values(lines)
            .returning(OrderLineRow::as_returning())
            .get_results(self.conn())
            .await
            .store_context("inserting order lines")?;
        row.into_domain(lines)
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
        let row = orders::table
            .find(id.get())
            .select(OrderRow::as_select())
            .for_no_key_update()
            .first(self.conn())
            .await
            .optional()
            .store_context("locking an order")?;
        self.one_with_lines(row).await
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
