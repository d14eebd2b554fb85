use application::StoreError;
use application::ports::{DueEvent, OutboxEvent, OutboxRepository};
use application::trace::TraceParent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::{OrderId, UserId};

use crate::error::{StoreContext, corrupt};
use crate::functions::{close_payment_send, lock_due_event, open_payment_send};
use crate::records::{money, status_from_text};
use crate::schema::outbox;
use crate::work::PgWork;

const EVENTS: [(OutboxEvent, &str); 2] =
    [(OutboxEvent::PaymentVoided, "ORDER_PAYMENT_VOIDED"), (OutboxEvent::OrderRefunded, "ORDER_REFUNDED")];

fn event_text(event: OutboxEvent) -> &'static str {
    EVENTS.iter().find(|(known, _)| *known == event).map_or("", |(_, text)| text)
}

fn event_from_text(text: &str) -> Result<OutboxEvent, StoreError> {
    EVENTS.iter().find(|(_, known)| *known == text).map(|(event, _)| *event).ok_or_else(|| corrupt("outbox kind", text))
}

/// The row `lock_due_event` returns.
type DueColumns = (String, i64, i64, String, i64, Option<DateTime<Utc>>, i32, Option<String>);

/// The trace context of the current request, as stored with the events it causes.
fn current_trace() -> Option<String> {
    application::scope::traceparent().map(|trace| trace.to_string())
}

fn due_event(
    (kind, order_id, user_id, status, payment_amount, refunded_at, attempts, trace): DueColumns,
) -> Result<DueEvent, StoreError> {
    Ok(DueEvent {
        event: event_from_text(&kind)?,
        order_id: OrderId::new(order_id).map_err(|e| corrupt("order id", e))?,
        user_id: UserId::new(user_id).map_err(|e| corrupt("user id", e))?,
        order_status: status_from_text(&status)?,
        payment_amount: money(payment_amount)?,
        refunded_at,
        attempts: u32::try_from(attempts).map_err(|e| corrupt("outbox attempts", e))?,
        // A trace that does not read is only lost, not worth refusing the event for.
        trace: trace.as_deref().and_then(TraceParent::parse),
    })
}

#[async_trait]
impl OutboxRepository for PgWork {
    async fn record(&mut self, event: OutboxEvent, order: OrderId, at: DateTime<Utc>) -> Result<(), StoreError> {
        diesel::insert_into(outbox::table)
            .values((
                outbox::kind.eq(event_text(event)),
                outbox::order_id.eq(order.get()),
                outbox::recorded_at.eq(at),
                outbox::next_attempt_at.eq(at),
                // A void recorded as such stands for one send in doubt.
                outbox::sends_in_doubt.eq(i32::from(event == OutboxEvent::PaymentVoided)),
                outbox::traceparent.eq(current_trace()),
            ))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await
            .store_context("recording an outbox event")?;
        Ok(())
    }

    async fn lock_due(&mut self, now: DateTime<Utc>) -> Result<Option<DueEvent>, StoreError> {
        let row: Option<DueColumns> = diesel::select(lock_due_event(now))
            .get_result(self.conn())
            .await
            .optional()
            .store_context("locking a due outbox event")?;
        row.map(due_event).transpose()
    }

    async fn open_send(&mut self, order: OrderId, user: UserId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        diesel::select(open_payment_send(order.get(), user.get(), at, current_trace()))
            .get_result(self.conn())
            .await
            .store_context("opening a payment's send")
    }

    async fn close_send(&mut self, order: OrderId) -> Result<(), StoreError> {
        diesel::select(close_payment_send(order.get()))
            .get_result::<i32>(self.conn())
            .await
            .store_context("closing a payment's send")
            .map(drop)
    }

    async fn remove(&mut self, event: OutboxEvent, order: OrderId) -> Result<(), StoreError> {
        diesel::delete(outbox::table.find((event_text(event), order.get())))
            .execute(self.conn())
            .await
            .store_context("removing an outbox event")?;
        Ok(())
    }

    async fn retry_at(&mut self, event: OutboxEvent, order: OrderId, next: DateTime<Utc>) -> Result<(), StoreError> {
        diesel::update(outbox::table.find((event_text(event), order.get())))
            .set((outbox::next_attempt_at.eq(next), outbox::attempts.eq(outbox::attempts + 1)))
            .execute(self.conn())
            .await
            .store_context("postponing an outbox event")?;
        Ok(())
    }

    async fn backlog(&mut self) -> Result<i64, StoreError> {
        outbox::table.count().get_result(self.conn()).await.store_context("counting outbox events")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use application::UnitOfWork;
    use application::ports::{NewOrder, OutboxEvent};
    use domain::OrderId;
    use domain::order::{OrderStatus, price_order};
    use domain::testing::{at, items};

    use crate::PgUnitOfWork;
    use crate::fixtures::{count, fixture, product, user};

    /// An unpaid order of one unit, placed at 0.
    async fn order(uow: &PgUnitOfWork) -> OrderId {
        let buyer = user(uow).await;
        let p = product(uow, 1_000, 10).await;
        let mut work = uow.begin().await.unwrap();
        let products = work.products().lock_many(&[p]).await.unwrap();
        let priced = price_order(&items(&[(p.get(), 1)]), &products, None, at(0)).unwrap();
        let new = NewOrder { user_id: buyer, coupon_id: None, priced, created_at: at(0), expires_at: at(300) };
        let id = work.orders().insert(&new).await.unwrap().id();
        work.commit().await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_void_waits_for_its_order_to_end_and_a_refund_is_due_at_once_with_its_order() {
        let f = fixture().await;
        let (voided, refunded) = (order(&f.uow).await, order(&f.uow).await);
        let mut work = f.uow.begin().await.unwrap();
        work.outbox().record(OutboxEvent::PaymentVoided, voided, at(5)).await.unwrap();
        work.outbox().record(OutboxEvent::PaymentVoided, voided, at(6)).await.unwrap();
        work.orders().mark_paid(refunded, at(10)).await.unwrap();
        work.orders().mark_refunded(refunded, at(20), None).await.unwrap();
        work.outbox().record(OutboxEvent::OrderRefunded, refunded, at(20)).await.unwrap();
        work.commit().await.unwrap();
        assert_eq!(count(&f.pool, "SELECT count(*) FROM outbox").await, 2, "recorded twice, kept once");

        let mut work = f.uow.begin().await.unwrap();
        let due = work.outbox().lock_due(at(100)).await.unwrap().unwrap();
        assert_eq!((due.event, due.order_id), (OutboxEvent::OrderRefunded, refunded), "the void's order is unpaid");
        assert_eq!(
            (due.order_status, due.refunded_at, due.payment_amount.krw()),
            (OrderStatus::Refunded, Some(at(20)), 1_000)
        );
        work.outbox().retry_at(due.event, due.order_id, at(200)).await.unwrap();
        assert!(work.outbox().lock_due(at(100)).await.unwrap().is_none(), "nothing else is due before 200");
        work.orders().mark_failed(voided, at(300)).await.unwrap();
        let due = work.outbox().lock_due(at(100)).await.unwrap().unwrap();
        assert_eq!(
            (due.event, due.order_id, due.order_status),
            (OutboxEvent::PaymentVoided, voided, OrderStatus::Failed)
        );
        work.outbox().remove(due.event, due.order_id).await.unwrap();
        assert_eq!(work.outbox().backlog().await.unwrap(), 1);
        work.commit().await.unwrap();
        assert_eq!(count(&f.pool, "SELECT attempts::int8 FROM outbox").await, 1, "the postponement counted");
    }

    #[tokio::test]
    async fn two_relays_never_take_the_same_event() {
        let f = fixture().await;
        let (a, b) = (order(&f.uow).await, order(&f.uow).await);
        let mut work = f.uow.begin().await.unwrap();
        for id in [a, b] {
            work.orders().mark_paid(id, at(10)).await.unwrap();
            work.orders().mark_refunded(id, at(20), None).await.unwrap();
            work.outbox().record(OutboxEvent::OrderRefunded, id, at(20)).await.unwrap();
        }
        work.commit().await.unwrap();
        let mut first = f.uow.begin().await.unwrap();
        let mut second = f.uow.begin().await.unwrap();
        let one = first.outbox().lock_due(at(100)).await.unwrap().unwrap();
        let other = second.outbox().lock_due(at(100)).await.unwrap().unwrap();
        assert_ne!(one.order_id, other.order_id);
        let mut third = f.uow.begin().await.unwrap();
        assert!(third.outbox().lock_due(at(100)).await.unwrap().is_none(), "both are held");
    }

    #[tokio::test]
    async fn a_payments_send_is_opened_for_its_payable_order_counted_and_closed_one_by_one() {
        let f = fixture().await;
        let placed = order(&f.uow).await;
        let buyer =
            domain::UserId::new(count(&f.pool, &format!("SELECT user_id FROM orders WHERE id = {placed}")).await)
                .unwrap();
        let stranger = crate::fixtures::user(&f.uow).await;
        let mut session = f.uow.autocommit().await.unwrap();
        let outbox = session.outbox();
        assert!(!outbox.open_send(placed, stranger, at(1)).await.unwrap(), "not the stranger's order");
        assert!(outbox.open_send(placed, buyer, at(1)).await.unwrap());
        assert!(outbox.open_send(placed, buyer, at(2)).await.unwrap(), "a second payment of it");
        let open = format!("SELECT sends_in_doubt::int8 FROM outbox WHERE order_id = {placed}");
        assert_eq!(count(&f.pool, &open).await, 2);
        session.outbox().close_send(placed).await.unwrap();
        assert_eq!(count(&f.pool, &open).await, 1, "the other send is still in doubt");
        session.outbox().close_send(placed).await.unwrap();
        assert_eq!(count(&f.pool, "SELECT count(*) FROM outbox").await, 0, "the record goes with its last send");
        session.outbox().close_send(placed).await.unwrap();

        let mut work = f.uow.begin().await.unwrap();
        work.orders().mark_paid(placed, at(3)).await.unwrap();
        work.commit().await.unwrap();
        assert!(!session.outbox().open_send(placed, buyer, at(4)).await.unwrap(), "a paid order is not payable");
    }
}
