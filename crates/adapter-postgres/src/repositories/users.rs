use application::StoreError;
use application::ports::{NewPointEntry, UserRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::points::{Balance, ChargeAmount, PointEntry};
use domain::user::{User, UserName};
use domain::{Money, OrderId, UserId};

use crate::error::StoreContext;
use crate::records::{PointEntryRow, UserRow, balance, point_kind_text};
use crate::schema::{point_history, users};
use crate::sql::Statement;
use crate::work::PgWork;

#[derive(QueryableByName)]
struct BalanceAfter {
    #[diesel(sql_type = BigInt)]
    balance_after: i64,
}

#[async_trait]
impl UserRepository for PgWork {
    async fn create(&mut self, name: &UserName) -> Result<User, StoreError> {
        diesel::insert_into(users::table)
            .values(users::name.eq(name.as_str()))
            .returning(UserRow::as_returning())
            .get_result(self.conn())
            .await
            .store_context("inserting a user")?
            .into_domain()
    }

    async fn find(&mut self, id: UserId) -> Result<Option<User>, StoreError> {
        users::table
            .find(id.get())
            .select(UserRow::as_select())
            .first(self.conn())
            .await
            .optional()
            .store_context("reading a user")?
            .map(UserRow::into_domain)
            .transpose()
    }

    async fn exists(&mut self, id: UserId) -> Result<bool, StoreError> {
        diesel::select(diesel::dsl::exists(users::table.find(id.get())))
            .get_result(self.conn())
            .await
            .store_context("checking a user exists")
    }

    async fn lock_balance(&mut self, id: UserId) -> Result<Option<Balance>, StoreError> {
        // FOR NO KEY UPDATE: exclusive against other balance writers, yet it does not
        // block inserts elsewhere that merely reference this user (their FOR KEY SHARE).
        users::table
            .find(id.get())
            .select(users::balance)
            .for_no_key_update()
            .first::<i64>(self.conn())
            .await
            .optional()
            .store_context("locking a balance")?
            .map(balance)
            .transpose()
    }

    async fn set_balance(&mut self, id: UserId, balance: Balance) -> Result<(), StoreError> {
        diesel::update(users::table.find(id.get()))
            .set(users::balance.eq(balance.krw()))
            .execute(self.conn())
            .await
            .store_context("updating a balance")
            .map(drop)
    }

    async fn append_entry(&mut self, entry: &NewPointEntry) -> Result<PointEntry, StoreError> {
        diesel::insert_into(point_history::table)
            .values((
                point_history::user_id.eq(entry.user_id.get()),
                point_history::kind.eq(point_kind_text(entry.kind)),
                point_history::amount.eq(entry.amount.krw()),
                point_history::balance_after.eq(entry.balance_after.krw()),
                point_history::order_id.eq(entry.order_id.map(domain::OrderId::get)),
                point_history::created_at.eq(entry.at),
            ))
            .returning(PointEntryRow::as_returning())
            .get_result(self.conn())
            .await
            .store_context("appending a ledger entry")?
            .into_domain()
    }

    async fn charge_within(
        &mut self,
        id: UserId,
        amount: ChargeAmount,
        ceiling: Balance,
        at: DateTime<Utc>,
    ) -> Result<Option<Balance>, StoreError> {
        // The update locks the row and re-checks the ceiling on the latest committed
        // balance, so concurrent charges to one user serialise and none passes it.
        Statement(
            "WITH charged AS ( \
                 UPDATE users SET balance = balance + $2 WHERE id = $1 AND balance <= $3 - $2 \
                 RETURNING id, balance) \
             INSERT INTO point_history (user_id, kind, amount, balance_after, created_at) \
             SELECT id, 'CHARGE', $2, balance, $4 FROM charged \
             RETURNING balance_after",
        )
        .bind::<BigInt, _>(id.get())
        .bind::<BigInt, _>(amount.money().krw())
        .bind::<BigInt, _>(ceiling.krw())
        .bind::<Timestamptz, _>(at)
        .get_result::<BalanceAfter>(self.conn())
        .await
        .optional()
        .store_context("charging a balance")?
        .map(|row| balance(row.balance_after))
        .transpose()
    }

    async fn spend_within(
        &mut self,
        id: UserId,
        amount: Money,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Option<Balance>, StoreError> {
        // As `charge_within`: the update re-checks the balance under its row lock.
        Statement(
            "WITH spent AS ( \
                 UPDATE users SET balance = balance - $2 WHERE id = $1 AND balance >= $2 \
                 RETURNING id, balance) \
             INSERT INTO point_history (user_id, kind, amount, balance_after, order_id, created_at) \
             SELECT id, 'USE', $2, balance, $3, $4 FROM spent \
             RETURNING balance_after",
        )
        .bind::<BigInt, _>(id.get())
        .bind::<BigInt, _>(amount.krw())
        .bind::<BigInt, _>(order.get())
        .bind::<Timestamptz, _>(at)
        .get_result::<BalanceAfter>(self.conn())
        .await
        .optional()
        .store_context("spending from a balance")?
        .map(|row| balance(row.balance_after))
        .transpose()
    }

    async fn entries(&mut self, id: UserId, before: Option<i64>, limit: u16) -> Result<Vec<PointEntry>, StoreError> {
        let mut query = point_history::table
            .filter(point_history::user_id.eq(id.get()))
            .select(PointEntryRow::as_select())
            .order(point_history::id.desc())
            .limit(i64::from(limit))
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(point_history::id.lt(before));
        }
        query
            .load(self.conn())
            .await
            .store_context("reading a ledger")?
            .into_iter()
            .map(PointEntryRow::into_domain)
            .collect()
    }
}
