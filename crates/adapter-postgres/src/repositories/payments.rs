use application::StoreError;
use application::ports::{Payment, PaymentRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::{Money, OrderId, PaymentId, UserId};

use crate::error::{StoreContext, corrupt};
use crate::schema::payments;
use crate::work::PgWork;

#[async_trait]
impl PaymentRepository for PgWork {
    async fn insert(
        &mut self,
        order: OrderId,
        user: UserId,
        amount: Money,
        at: DateTime<Utc>,
    ) -> Result<Payment, StoreError> {
        let id: i64 = diesel::insert_into(payments::table)
            .values((
                payments::order_id.eq(order.get()),
                payments::user_id.eq(user.get()),
                payments::amount.eq(amount.krw()),
                payments::paid_at.eq(at),
            ))
            .returning(payments::id)
            .get_result(self.conn())
            .await
            .store_context("recording a payment")?;
        Ok(Payment {
            id: PaymentId::new(id).map_err(|e| corrupt("payment id", e))?,
            order_id: order,
            user_id: user,
            amount,
            paid_at: at,
        })
    }
}
