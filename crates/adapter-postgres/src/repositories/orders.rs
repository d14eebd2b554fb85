use std::collections::HashMap;

use application::StoreError;
use application::ports::{NewOrder, OrderRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::order::{Order, OrderStatus, RefundReason};
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
        .map(|placed| placed.map(OrderRow::placed))
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

/// Whether a status change guarded by `from` moved the order: the caller holds its lock
/// and has checked its status, so a miss means the row is not what the work read.
fn moved_one(updated: usize, id: OrderId, from: OrderStatus, what: &str) -> Result<(), StoreError> {
    if updated == 1 {
        Ok(())
    } else {
        Err(corrupt("order status", format!("order {id} was not {} when {what}", status_text(from))))
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

    async fn page_of(
        &mut self,
        user: UserId,
        status: Option<OrderStatus>,
        before: Option<OrderId>,
        limit: u16,
    ) -> Result<Vec<Order>, StoreError> {
        let mut query = orders::table
            .filter(orders::user_id.eq(user.get()))
            .order(orders::id.desc())
            .limit(i64::from(limit))
            .select(OrderRow::as_select())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(orders::status.eq(status_text(status)));
        }
        if let Some(before) = before {
            query = query.filter(orders::id.lt(before.get()));
        }
        let rows = query.load(self.conn()).await.store_context("reading a page of a user's orders")?;
        self.with_lines(rows).await
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
        moved_one(updated, id, OrderStatus::NotPaid, "paid")
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
        moved_one(updated, id, OrderStatus::NotPaid, "failed")
    }

    async fn mark_cancelled(&mut self, id: OrderId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let updated =
            diesel::update(orders::table.find(id.get()).filter(orders::status.eq(status_text(OrderStatus::NotPaid))))
                .set((orders::status.eq(status_text(OrderStatus::Cancelled)), orders::cancelled_at.eq(Some(at))))
                .execute(self.conn())
                .await
                .store_context("marking an order cancelled")?;
        moved_one(updated, id, OrderStatus::NotPaid, "cancelled")
    }

    async fn mark_refunded(
        &mut self,
        id: OrderId,
        at: DateTime<Utc>,
        reason: Option<RefundReason>,
    ) -> Result<(), StoreError> {
        let updated =
            diesel::update(orders::table.find(id.get()).filter(orders::status.eq(status_text(OrderStatus::Paid))))
                .set((
                    orders::status.eq(status_text(OrderStatus::Refunded)),
                    orders::refunded_at.eq(Some(at)),
                    orders::refund_reason.eq(reason.as_ref().map(RefundReason::as_str)),
                ))
                .execute(self.conn())
                .await
                .store_context("marking an order refunded")?;
        moved_one(updated, id, OrderStatus::Paid, "refunded")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;
    use application::ports::NewOrder;
    use domain::UserId;
    use domain::order::{Order, OrderStatus, price_order};
    use domain::testing::{at, items};

    use crate::PgUnitOfWork;
    use crate::fixtures::{count, fixture, product, user};

    /// Orders `lines` ((product, quantity)) priced on an unlocked snapshot, taking the
    /// stock in the insert's statement; commits when placed, rolls back otherwise.
    async fn place_on_snapshot(uow: &PgUnitOfWork, user: UserId, lines: &[(i64, i64)]) -> bool {
        let items = items(lines);
        let mut work = uow.begin().await.unwrap();
        let products = work.products().find_many(&items.product_ids_ascending()).await.unwrap();
        let Ok(priced) = price_order(&items, &products, None, at(0)) else {
            work.rollback().await.unwrap();
            return false;
        };
        let order = NewOrder { user_id: user, coupon_id: None, priced, created_at: at(0), expires_at: at(300) };
        let placed = work.orders().insert_taking_stock(&order).await.unwrap();
        if let Some(placed) = &placed {
            assert_eq!(placed.lines().len(), lines.len());
            work.commit().await.unwrap();
        } else {
            work.rollback().await.unwrap();
        }
        placed.is_some()
    }

    #[tokio::test]
    async fn orders_taking_stock_in_their_insert_never_oversell_nor_deadlock_and_a_short_one_writes_nothing() {
        let f = fixture().await;
        let u = user(&f.uow).await;
        let a = product(&f.uow, 100, 7).await.get();
        let b = product(&f.uow, 200, 1_000).await.get();
        // 24 concurrent orders over both products, half naming them in the other order:
        // the rows are locked in ascending id whatever the order of the lines.
        let placed = futures::future::join_all((0..24).map(|i| {
            let lines = if i % 2 == 0 { [(a, 1), (b, 1)] } else { [(b, 1), (a, 1)] };
            let uow = f.uow.clone();
            async move { place_on_snapshot(&uow, u, &lines).await }
        }))
        .await;
        assert_eq!(placed.iter().filter(|p| **p).count(), 7, "exactly the stock of the scarcer product");
        assert_eq!(count(&f.pool, &format!("SELECT stock::int8 FROM products WHERE id = {a}")).await, 0);
        assert_eq!(count(&f.pool, &format!("SELECT stock::int8 FROM products WHERE id = {b}")).await, 993);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM orders").await, 7);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM order_lines").await, 14);
    }

    #[tokio::test]
    async fn a_users_orders_page_newest_first_filtered_by_status_and_never_anothers() {
        let f = fixture().await;
        let (kim, lee) = (user(&f.uow).await, user(&f.uow).await);
        let p = product(&f.uow, 1_000, 100).await;
        let items = items(&[(p.get(), 1)]);
        let mut work = f.uow.begin().await.unwrap();
        let products = work.products().lock_many(&[p]).await.unwrap();
        let mut placed = Vec::new();
        for buyer in [kim, lee, kim, kim, kim] {
            let priced = price_order(&items, &products, None, at(0)).unwrap();
            let order = NewOrder { user_id: buyer, coupon_id: None, priced, created_at: at(0), expires_at: at(300) };
            placed.push(work.orders().insert(&order).await.unwrap().id());
        }
        work.orders().mark_paid(placed[2], at(10)).await.unwrap();
        work.commit().await.unwrap();
        let kims: Vec<_> = [4, 3, 2, 0].map(|i| placed[i]).into();

        let mut read = f.uow.autocommit().await.unwrap();
        let first = read.orders().page_of(kim, None, None, 3).await.unwrap();
        assert_eq!(first.iter().map(Order::id).collect::<Vec<_>>(), kims[..3], "newest first, only kim's");
        assert!(first.iter().all(|o| o.lines().len() == 1), "with their lines");
        let rest = read.orders().page_of(kim, None, Some(kims[2]), 3).await.unwrap();
        assert_eq!(rest.iter().map(Order::id).collect::<Vec<_>>(), kims[3..]);
        let paid = read.orders().page_of(kim, Some(OrderStatus::Paid), None, 10).await.unwrap();
        assert_eq!(paid.iter().map(Order::id).collect::<Vec<_>>(), [placed[2]]);
        assert!(read.orders().page_of(lee, Some(OrderStatus::Failed), None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_orders_are_locked_once_across_sweepers() {
        let f = fixture().await;
        let u = user(&f.uow).await;
        let p = product(&f.uow, 1_000, 10).await;
        let items = items(&[(p.get(), 1)]);
        let mut work = f.uow.begin().await.unwrap();
        let products = work.products().lock_many(&[p]).await.unwrap();
        for _ in 0..3 {
            let priced = price_order(&items, &products, None, at(0)).unwrap();
            work.orders()
                .insert(&NewOrder { user_id: u, coupon_id: None, priced, created_at: at(0), expires_at: at(300) })
                .await
                .unwrap();
        }
        work.commit().await.unwrap();

        let mut first = f.uow.begin().await.unwrap();
        let mut second = f.uow.begin().await.unwrap();
        let a = first.orders().lock_expired(at(300), 2, &[]).await.unwrap();
        let b = second.orders().lock_expired(at(300), 2, &[]).await.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 1, "the rows the first sweeper holds are skipped");
        assert!(a.iter().all(|o| b.iter().all(|other| other.id() != o.id())));
        assert!(second.orders().lock_expired(at(299), 10, &[]).await.unwrap().is_empty(), "not yet at the deadline");
        first.orders().mark_failed(a[0].id(), at(300)).await.unwrap();
        first.commit().await.unwrap();
        second.rollback().await.unwrap();
        let mut read = f.uow.autocommit().await.unwrap();
        assert_eq!(read.orders().find(a[0].id()).await.unwrap().unwrap().status(), OrderStatus::Failed);
    }

    #[tokio::test]
    async fn cancelled_and_refunded_orders_read_back_with_their_instants_and_only_from_their_status() {
        let f = fixture().await;
        let kim = user(&f.uow).await;
        let p = product(&f.uow, 1_000, 100).await;
        let items = items(&[(p.get(), 1)]);
        let mut work = f.uow.begin().await.unwrap();
        let products = work.products().lock_many(&[p]).await.unwrap();
        let mut placed = Vec::new();
        for _ in 0..2 {
            let priced = price_order(&items, &products, None, at(0)).unwrap();
            let order = NewOrder { user_id: kim, coupon_id: None, priced, created_at: at(0), expires_at: at(300) };
            placed.push(work.orders().insert(&order).await.unwrap().id());
        }
        let (cancelled, refunded) = (placed[0], placed[1]);
        work.orders().mark_cancelled(cancelled, at(20)).await.unwrap();
        work.orders().mark_paid(refunded, at(10)).await.unwrap();
        let reason = domain::order::RefundReason::new("damaged").unwrap();
        work.orders().mark_refunded(refunded, at(30), Some(reason)).await.unwrap();
        work.commit().await.unwrap();

        let mut read = f.uow.autocommit().await.unwrap();
        let order = read.orders().find(cancelled).await.unwrap().unwrap();
        assert_eq!(
            (order.status(), order.cancelled_at(), order.paid_at()),
            (OrderStatus::Cancelled, Some(at(20)), None)
        );
        let order = read.orders().find(refunded).await.unwrap().unwrap();
        assert_eq!(
            (order.status(), order.paid_at(), order.refunded_at()),
            (OrderStatus::Refunded, Some(at(10)), Some(at(30)))
        );
        let listed = read.orders().page_of(kim, Some(OrderStatus::Refunded), None, 10).await.unwrap();
        assert_eq!(listed.iter().map(Order::id).collect::<Vec<_>>(), [refunded]);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM orders WHERE refund_reason = 'damaged'").await, 1);

        // A move from the wrong status writes nothing and says so.
        let mut work = f.uow.begin().await.unwrap();
        assert!(work.orders().mark_cancelled(refunded, at(40)).await.is_err());
        assert!(work.orders().mark_refunded(cancelled, at(40), None).await.is_err());
        assert!(work.orders().mark_paid(cancelled, at(40)).await.is_err());
        work.rollback().await.unwrap();
    }
}
