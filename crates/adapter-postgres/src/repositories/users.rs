use application::StoreError;
use application::ports::{NewPointEntry, UserRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::points::{Balance, ChargeAmount, PointEntry};
use domain::user::{User, UserName};
use domain::{Money, OrderId, UserId};

use crate::error::StoreContext;
use crate::functions::{charge_balance, spend_balance};
use crate::records::{PointEntryRow, UserRow, balance, point_kind_text};
use crate::schema::{point_history, users};
use crate::work::PgWork;

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

    async fn lock(&mut self, id: UserId) -> Result<bool, StoreError> {
        // The same lock as `lock_balance`.
        users::table
            .find(id.get())
            .select(users::id)
            .for_no_key_update()
            .first::<i64>(self.conn())
            .await
            .optional()
            .store_context("locking a user")
            .map(|locked| locked.is_some())
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
        diesel::select(charge_balance(id.get(), amount.money().krw(), ceiling.krw(), at))
            .get_result::<Option<i64>>(self.conn())
            .await
            .store_context("charging a balance")?
            .map(balance)
            .transpose()
    }

    async fn spend_within(
        &mut self,
        id: UserId,
        amount: Money,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<Option<Balance>, StoreError> {
        diesel::select(spend_balance(id.get(), amount.krw(), order.get(), at))
            .get_result::<Option<i64>>(self.conn())
            .await
            .store_context("spending from a balance")?
            .map(balance)
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
