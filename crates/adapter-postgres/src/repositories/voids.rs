use application::StoreError;
use application::ports::{UncertainSend, VoidRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::order::OrderStatus;
use domain::{OrderId, UserId};

use crate::error::{StoreContext, corrupt};
use crate::functions::lock_due_void;
use crate::schema::pending_voids;
use crate::work::PgWork;

#[async_trait]
impl VoidRepository for PgWork {
    async fn record_uncertain(&mut self, order: OrderId, user: UserId, at: DateTime<Utc>) -> Result<(), StoreError> {
        diesel::insert_into(pending_voids::table)
            .values((
                pending_voids::order_id.eq(order.get()),
                pending_voids::user_id.eq(user.get()),
                pending_voids::recorded_at.eq(at),
                pending_voids::next_attempt_at.eq(at),
            ))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await
            .store_context("recording an uncertain send")?;
        Ok(())
    }

    async fn lock_due(&mut self, now: DateTime<Utc>) -> Result<Option<UncertainSend>, StoreError> {
        let row: Option<(i64, i64, String, i32)> = diesel::select(lock_due_void(now))
            .get_result(self.conn())
            .await
            .optional()
            .store_context("locking a due void")?;
        row.map(|(order_id, user_id, status, attempts)| {
            Ok(UncertainSend {
                order_id: OrderId::new(order_id).map_err(|e| corrupt("order id", e))?,
                user_id: UserId::new(user_id).map_err(|e| corrupt("user id", e))?,
                order_status: match status.as_str() {
                    "PAID" => OrderStatus::Paid,
                    "FAILED" => OrderStatus::Failed,
                    other => return Err(corrupt("order status of a due void", other)),
                },
                attempts: u32::try_from(attempts).map_err(|e| corrupt("void attempts", e))?,
            })
        })
        .transpose()
    }

    async fn remove(&mut self, order: OrderId) -> Result<(), StoreError> {
        diesel::delete(pending_voids::table.find(order.get()))
            .execute(self.conn())
            .await
            .store_context("removing a pending void")?;
        Ok(())
    }

    async fn retry_at(&mut self, order: OrderId, next: DateTime<Utc>) -> Result<(), StoreError> {
        diesel::update(pending_voids::table.find(order.get()))
            .set((pending_voids::next_attempt_at.eq(next), pending_voids::attempts.eq(pending_voids::attempts + 1)))
            .execute(self.conn())
            .await
            .store_context("postponing a pending void")?;
        Ok(())
    }

    async fn backlog(&mut self) -> Result<i64, StoreError> {
        pending_voids::table.count().get_result(self.conn()).await.store_context("counting pending voids")
    }
}
