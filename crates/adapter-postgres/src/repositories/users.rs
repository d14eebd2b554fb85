use application::StoreError;
use application::ports::{NewPointEntry, UserRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDslSupport;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::points::{Balance, ChargeAmount, PointEntry, PointEntryKind};
use domain::user::{User, UserName};
use domain::{Money, OrderId, UserId};

use crate::error::StoreContext;
use crate::records::{PointEntryRow, UserRow, balance, point_kind_text};
use crate::schema::{point_history, users};
use crate::work::PgWork;

/// A balance change and the ledger entry that explains it, as one statement: the update
/// locks the user's row and re-checks, on the latest committed balance, that the new
/// balance stays within `0..=ceiling`, and the entry is appended only if it wrote.
/// Returns the new balance, or no row when nothing was written.
///
/// The one statement the adapter writes as a query node of its own rather than as a
/// database function: it runs once per charge and per payment, and the function call
/// cost about 6 % more of PostgreSQL's time for it (ADR 0011). Each bind is pushed where
/// the statement uses it, so diesel numbers them; the node has a static query id, so
/// it is prepared once per connection like any query of the builder.
#[derive(Debug, Clone, Copy)]
struct BalanceChange {
    user: i64,
    /// Added to the balance: the amount of a charge, minus the amount of a debit.
    delta: i64,
    ceiling: i64,
    kind: &'static str,
    amount: i64,
    order: Option<i64>,
    at: DateTime<Utc>,
}

impl QueryFragment<Pg> for BalanceChange {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH changed AS (UPDATE users SET balance = balance + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.user)?;
        out.push_sql(" AND balance + ");
        out.push_bind_param::<BigInt, _>(&self.delta)?;
        out.push_sql(" BETWEEN 0 AND ");
        out.push_bind_param::<BigInt, _>(&self.ceiling)?;
        out.push_sql(
            " RETURNING id, balance) \
             INSERT INTO point_history (user_id, kind, amount, balance_after, order_id, created_at) SELECT id, ",
        );
        out.push_bind_param::<Text, _>(&self.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.amount)?;
        out.push_sql(", balance, ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.order)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&self.at)?;
        out.push_sql(" FROM changed RETURNING balance_after");
        Ok(())
    }
}

impl QueryId for BalanceChange {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for BalanceChange {
    type SqlType = BigInt;
}

impl RunQueryDslSupport for BalanceChange {}

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
        let amount = amount.money().krw();
        let charge = BalanceChange {
            user: id.get(),
            delta: amount,
            ceiling: ceiling.krw(),
            kind: point_kind_text(PointEntryKind::Charge),
            amount,
            order: None,
            at,
        };
        charge
            .get_result::<i64>(self.conn())
            .await
            .optional()
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
        let debit = BalanceChange {
            user: id.get(),
            delta: -amount.krw(),
            ceiling: Balance::MAX.krw(),
            kind: point_kind_text(PointEntryKind::Use),
            amount: amount.krw(),
            order: Some(order.get()),
            at,
        };
        debit
            .get_result::<i64>(self.conn())
            .await
            .optional()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;
    use application::ports::NewPointEntry;
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    use domain::points::{Balance, ChargeAmount, PointEntryKind};
    use domain::testing::at;
    use domain::{Money, UserId};

    use crate::fixtures::{count, fixture, user};

    #[tokio::test]
    async fn the_balance_constraint_is_the_last_line_of_defence() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        let mut conn = f.pool.get().await.unwrap();
        let over =
            diesel::sql_query(format!("UPDATE users SET balance = 5000001 WHERE id = {id}")).execute(&mut conn).await;
        assert!(over.is_err());
        let negative =
            diesel::sql_query(format!("UPDATE users SET balance = -1 WHERE id = {id}")).execute(&mut conn).await;
        assert!(negative.is_err());
    }

    /// The constraint a failed statement broke.
    fn broken(result: diesel::QueryResult<()>) -> Option<String> {
        match result {
            Err(diesel::result::Error::DatabaseError(_, info)) => info.constraint_name().map(str::to_owned),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_refund_entry_needs_its_order_and_an_order_is_refunded_once() {
        let f = fixture().await;
        let id = user(&f.uow).await.get();
        let mut conn = f.pool.get().await.unwrap();
        let orphan = conn
            .batch_execute(&format!(
                "INSERT INTO point_history (user_id, kind, amount, balance_after, created_at) \
                 VALUES ({id}, 'REFUND', 500, 500, now())"
            ))
            .await;
        assert_eq!(broken(orphan).as_deref(), Some("point_history_order_iff_use_or_refund"));
        let p = crate::fixtures::product(&f.uow, 100, 10).await.get();
        conn.batch_execute(&format!(
            "INSERT INTO orders (user_id, status, total_amount, discount_amount, payment_amount, created_at, \
             expires_at, paid_at, refunded_at) VALUES ({id}, 'REFUNDED', 100, 0, 100, now(), now(), now(), now()); \
             INSERT INTO order_lines (order_id, line_no, product_id, product_name, unit_price, quantity, amount) \
             SELECT id, 1, {p}, 'p', 100, 1, 100 FROM orders; \
             INSERT INTO point_history (user_id, kind, amount, balance_after, order_id, created_at) \
             SELECT {id}, 'REFUND', 100, 100, id, now() FROM orders"
        ))
        .await
        .unwrap();
        let twice = conn
            .batch_execute(&format!(
                "INSERT INTO point_history (user_id, kind, amount, balance_after, order_id, created_at) \
                 SELECT {id}, 'REFUND', 100, 200, id, now() FROM orders"
            ))
            .await;
        assert_eq!(broken(twice).as_deref(), Some("point_history_one_refund_per_order"));
    }

    #[tokio::test]
    async fn concurrent_one_statement_charges_stop_exactly_at_the_ceiling_each_with_its_entry() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        let million = ChargeAmount::new(1_000_000).unwrap();
        let charges = futures::future::join_all((0..12).map(|_| async {
            let mut session = f.uow.autocommit().await.unwrap();
            session.users().charge_within(id, million, Balance::MAX, at(5)).await.unwrap()
        }))
        .await;
        let mut written: Vec<i64> = charges.iter().flatten().map(|b| b.krw()).collect();
        written.sort_unstable();
        assert_eq!(written, [1, 2, 3, 4, 5].map(|m| m * 1_000_000));
        assert_eq!(count(&f.pool, &format!("SELECT balance FROM users WHERE id = {id}")).await, 5_000_000);
        let entries =
            format!("SELECT count(*) FROM point_history WHERE user_id = {id} AND kind = 'CHARGE' AND amount = 1000000");
        assert_eq!(count(&f.pool, &entries).await, 5);
        // An unknown user: nothing written.
        let mut session = f.uow.autocommit().await.unwrap();
        let unknown = UserId::new(id.get() + 1_000).unwrap();
        assert_eq!(session.users().charge_within(unknown, million, Balance::MAX, at(5)).await.unwrap(), None);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM point_history").await, 5);
    }

    #[tokio::test]
    async fn ledger_entries_page_newest_first() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        let mut work = f.uow.begin().await.unwrap();
        let mut balance = 0;
        for krw in 1..=5 {
            balance += krw;
            work.users()
                .append_entry(&NewPointEntry {
                    user_id: id,
                    kind: PointEntryKind::Charge,
                    amount: Money::new(krw).unwrap(),
                    balance_after: Balance::new(balance).unwrap(),
                    order_id: None,
                    at: at(krw),
                })
                .await
                .unwrap();
        }
        work.users().set_balance(id, Balance::new(balance).unwrap()).await.unwrap();
        work.commit().await.unwrap();
        let mut read = f.uow.autocommit().await.unwrap();
        let first = read.users().entries(id, None, 2).await.unwrap();
        assert_eq!(first.iter().map(|e| e.amount.krw()).collect::<Vec<_>>(), vec![5, 4]);
        let next = read.users().entries(id, Some(first[1].id), 10).await.unwrap();
        assert_eq!(next.iter().map(|e| e.amount.krw()).collect::<Vec<_>>(), vec![3, 2, 1]);
    }
}
