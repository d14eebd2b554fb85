use application::StoreError;
use application::ports::{BusyBuckets, CouponRepository, IssueAttempt};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel_async::RunQueryDsl;
use domain::coupon::{Coupon, IssuedCoupon, NewCoupon};
use domain::{CouponId, OrderId, UserId};

use crate::error::{StoreContext, violated_constraint};
use crate::functions::{fill_coupon_stock, issue_coupon};
use crate::records::{CouponRow, UserCouponRow, discount_columns};
use crate::schema::{coupons, user_coupons};
use crate::work::PgWork;

/// How many stock buckets a new coupon's quantity is split over (fewer when the
/// quantity is smaller; each coupon records its own count): concurrent issues of one
/// coupon lock up to this many rows in parallel. docs/adr/0009-coupon-stock-buckets.md
/// has the measurements behind the figure; the table allows up to 16.
const BUCKETS: i32 = 16;

/// What `issue_coupon` returns: the coupon's columns, what remains, whether it is
/// flagged sold out, when it was issued now (if it was), and whether it was held already.
type IssueColumns =
    (i64, String, String, i64, i64, i32, i32, DateTime<Utc>, DateTime<Utc>, bool, Option<DateTime<Utc>>, bool);

#[async_trait]
impl CouponRepository for PgWork {
    async fn create(&mut self, coupon: &NewCoupon) -> Result<Coupon, StoreError> {
        let (discount_type, discount_value) = discount_columns(coupon.discount);
        let mut row = diesel::insert_into(coupons::table)
            .values((
                coupons::name.eq(&coupon.name),
                coupons::discount_type.eq(discount_type),
                coupons::discount_value.eq(discount_value),
                coupons::min_order_amount.eq(coupon.min_order_amount.krw()),
                coupons::total_quantity.eq(coupon.total_quantity),
                coupons::valid_from.eq(coupon.validity.from()),
                coupons::valid_until.eq(coupon.validity.until()),
                coupons::buckets.eq(i16::try_from(coupon.total_quantity.clamp(1, BUCKETS)).unwrap_or(1)),
            ))
            .returning(CouponRow::as_returning())
            .get_result(self.conn())
            .await
            .store_context("inserting a coupon")?;
        diesel::select(fill_coupon_stock(row.id))
            .execute(self.conn())
            .await
            .store_context("filling a coupon's stock")?;
        // Read back before its buckets existed; a new coupon has all of its quantity.
        row.remaining_quantity = row.total_quantity;
        row.into_domain()
    }

    async fn find(&mut self, id: CouponId) -> Result<Option<Coupon>, StoreError> {
        coupons::table
            .find(id.get())
            .select(CouponRow::as_select())
            .first(self.conn())
            .await
            .optional()
            .store_context("reading a coupon")?
            .map(CouponRow::into_domain)
            .transpose()
    }

    async fn issue(
        &mut self,
        coupon: CouponId,
        user: UserId,
        at: DateTime<Utc>,
        busy: BusyBuckets,
    ) -> Result<IssueAttempt, StoreError> {
        let attempt = diesel::select(issue_coupon(coupon.get(), user.get(), at, busy == BusyBuckets::Wait))
            .get_result::<IssueColumns>(self.conn())
            .await
            .optional();
        let row = match attempt {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(IssueAttempt::UnknownCoupon),
            Err(error) => {
                return match violated_constraint(&error) {
                    Some((DatabaseErrorKind::ForeignKeyViolation, name)) if name == "user_coupons_user_id_fkey" => {
                        Ok(IssueAttempt::UnknownUser)
                    }
                    _ => Err(error).store_context("issuing a coupon"),
                };
            }
        };
        let (
            id,
            name,
            discount_type,
            discount_value,
            min_order_amount,
            total_quantity,
            remaining_quantity,
            valid_from,
            valid_until,
            sold_out,
            issued_at,
            already_held,
        ) = row;
        if already_held {
            return Ok(IssueAttempt::AlreadyHeld);
        }
        let mut coupon = CouponRow {
            id,
            name,
            discount_type,
            discount_value,
            min_order_amount,
            total_quantity,
            remaining_quantity,
            valid_from,
            valid_until,
        }
        .into_domain()?;
        if let Some(issued_at) = issued_at {
            return Ok(IssueAttempt::Issued { coupon, issued_at });
        }
        if busy == BusyBuckets::Wait && coupon.remaining_quantity() > 0 {
            // The statement waited for buckets that others emptied meanwhile: what is
            // left must be read after them, not in the statement's own snapshot.
            coupon = CouponRepository::find(self, coupon.id()).await?.unwrap_or(coupon);
        }
        if coupon.remaining_quantity() == 0 && !sold_out {
            // Stock never comes back: from now on, issues need not read the buckets.
            diesel::update(coupons::table.find(coupon.id().get()).filter(coupons::sold_out.eq(false)))
                .set(coupons::sold_out.eq(true))
                .execute(self.conn())
                .await
                .store_context("flagging a coupon sold out")?;
        }
        Ok(IssueAttempt::NotTaken(coupon))
    }

    async fn held_by(&mut self, user: UserId) -> Result<Vec<IssuedCoupon>, StoreError> {
        user_coupons::table
            .inner_join(coupons::table)
            .filter(user_coupons::user_id.eq(user.get()))
            .order((user_coupons::issued_at.asc(), user_coupons::id.asc()))
            .select((UserCouponRow::as_select(), CouponRow::as_select()))
            .load::<(UserCouponRow, CouponRow)>(self.conn())
            .await
            .store_context("reading held coupons")?
            .into_iter()
            .map(|(held, coupon)| held.into_domain(coupon))
            .collect()
    }

    async fn lock_held(&mut self, user: UserId, coupon: CouponId) -> Result<Option<IssuedCoupon>, StoreError> {
        // Lock only the holder's row: the campaign row stays free for the issue rush.
        let Some(held) = user_coupons::table
            .filter(user_coupons::user_id.eq(user.get()))
            .filter(user_coupons::coupon_id.eq(coupon.get()))
            .select(UserCouponRow::as_select())
            .for_no_key_update()
            .first(self.conn())
            .await
            .optional()
            .store_context("locking a held coupon")?
        else {
            return Ok(None);
        };
        let campaign = coupons::table
            .find(coupon.get())
            .select(CouponRow::as_select())
            .first(self.conn())
            .await
            .store_context("reading a held coupon's campaign")?;
        held.into_domain(campaign).map(Some)
    }

    async fn mark_used(
        &mut self,
        user: UserId,
        coupon: CouponId,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        diesel::update(
            user_coupons::table
                .filter(user_coupons::user_id.eq(user.get()))
                .filter(user_coupons::coupon_id.eq(coupon.get())),
        )
        .set((user_coupons::used_at.eq(Some(at)), user_coupons::order_id.eq(Some(order.get()))))
        .execute(self.conn())
        .await
        .store_context("marking a coupon used")
        .map(drop)
    }

    async fn release_used_by(&mut self, order: OrderId) -> Result<u64, StoreError> {
        diesel::update(user_coupons::table.filter(user_coupons::order_id.eq(order.get())))
            .set((user_coupons::used_at.eq(None::<DateTime<Utc>>), user_coupons::order_id.eq(None::<i64>)))
            .execute(self.conn())
            .await
            .store_context("releasing a used coupon")
            .map(|released| u64::try_from(released).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use application::UnitOfWork;
    use application::ports::{BusyBuckets, IssueAttempt};
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    use domain::testing::at;
    use domain::{CouponId, UserId};

    use crate::fixtures::{count, coupon, fixture, user};

    #[tokio::test]
    async fn coupon_holders_are_unique_and_unknown_ids_are_named() {
        let f = fixture().await;
        let u = user(&f.uow).await;
        let c = coupon(&f.uow, 2).await;
        let mut session = f.uow.autocommit().await.unwrap();
        let coupons = session.coupons();
        assert!(matches!(coupons.issue(c, u, at(1), BusyBuckets::Skip).await.unwrap(), IssueAttempt::Issued { .. }));
        assert_eq!(coupons.issue(c, u, at(2), BusyBuckets::Skip).await.unwrap(), IssueAttempt::AlreadyHeld);
        let unknown_coupon = CouponId::new(999).unwrap();
        assert_eq!(
            coupons.issue(unknown_coupon, u, at(1), BusyBuckets::Skip).await.unwrap(),
            IssueAttempt::UnknownCoupon
        );
        let unknown_user = UserId::new(999).unwrap();
        assert_eq!(coupons.issue(c, unknown_user, at(1), BusyBuckets::Wait).await.unwrap(), IssueAttempt::UnknownUser);
        assert_eq!(count(&f.pool, "SELECT count(*) FROM user_coupons").await, 1);
        assert_eq!(
            count(&f.pool, &format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {c}")).await,
            1
        );
    }

    #[tokio::test]
    async fn waiting_issues_never_overdraw_and_the_last_empty_read_flags_the_coupon_sold_out() {
        let f = fixture().await;
        let c = coupon(&f.uow, 5).await;
        let mut users = Vec::new();
        for _ in 0..20 {
            users.push(user(&f.uow).await);
        }
        let tasks = users.into_iter().enumerate().map(|(i, u)| {
            let uow = f.uow.clone();
            let busy = if i % 2 == 0 { BusyBuckets::Wait } else { BusyBuckets::Skip };
            tokio::spawn(async move {
                let mut session = uow.autocommit().await.unwrap();
                matches!(session.coupons().issue(c, u, at(10), busy).await.unwrap(), IssueAttempt::Issued { .. })
            })
        });
        let issued = futures::future::join_all(tasks).await.into_iter().filter(|t| *t.as_ref().unwrap()).count();
        assert_eq!(issued, 5);
        assert_eq!(
            count(&f.pool, &format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {c}")).await,
            0
        );
        assert_eq!(count(&f.pool, &format!("SELECT sold_out::int::int8 FROM coupons WHERE id = {c}")).await, 1);
        let mut session = f.uow.autocommit().await.unwrap();
        let late = user(&f.uow).await;
        let IssueAttempt::NotTaken(seen) = session.coupons().issue(c, late, at(11), BusyBuckets::Wait).await.unwrap()
        else {
            panic!("a sold-out coupon issued a unit");
        };
        assert_eq!(seen.remaining_quantity(), 0);
        let coupon_after_end = coupon(&f.uow, 5).await;
        assert!(
            matches!(
                session.coupons().issue(coupon_after_end, late, at(1_001), BusyBuckets::Wait).await.unwrap(),
                IssueAttempt::NotTaken(_)
            ),
            "an ended campaign issues nothing"
        );
    }

    /// A table analyzed while empty, its statistics then kept by generic plans (as a
    /// connection caches them after a few executions), would make the holders' check a
    /// scan of the holders that grows with the rush. An issue never reads the holders to
    /// decide: the unique key does, through its index.
    #[tokio::test]
    async fn issues_never_scan_the_holders_even_with_plans_made_on_an_empty_table() {
        let f = fixture().await;
        // Before the pool opens its first connection: every pooled session plans generically.
        let mut admin = AsyncPgConnection::establish(f.db.url()).await.unwrap();
        admin
            .batch_execute(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', \
                 current_database()); END $$",
            )
            .await
            .unwrap();
        admin.batch_execute("VACUUM ANALYZE user_coupons").await.unwrap();
        let scans = "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'user_coupons'";
        let c = coupon(&f.uow, 100).await;
        let mut users = Vec::new();
        for _ in 0..20 {
            users.push(user(&f.uow).await);
        }
        let before: i64 = diesel::sql_query(scans).get_result::<SeqScans>(&mut admin).await.unwrap().seq_scan;
        let mut session = f.uow.autocommit().await.unwrap();
        for u in users {
            let attempt = session.coupons().issue(c, u, at(1), BusyBuckets::Skip).await.unwrap();
            assert!(matches!(attempt, IssueAttempt::Issued { .. }), "{attempt:?}");
        }
        drop(session);
        // Ending the pooled sessions makes them report their table statistics.
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let after = diesel::sql_query(scans).get_result::<SeqScans>(&mut admin).await.unwrap().seq_scan;
        assert_eq!(after, before, "issues scanned the holders' table");
        assert_eq!(count(&f.pool, "SELECT count(*) FROM user_coupons").await, 20);
    }

    #[derive(diesel::QueryableByName)]
    struct SeqScans {
        #[diesel(sql_type = BigInt)]
        seq_scan: i64,
    }
}
