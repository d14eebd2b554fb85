use application::StoreError;
use application::ports::{BusyBuckets, CouponRepository, IssueAttempt};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::coupon::{Coupon, IssuedCoupon, NewCoupon};
use domain::{CouponId, OrderId, UserId};

use crate::error::{StoreContext, violated_constraint};
use crate::records::{CouponRow, UserCouponRow, discount_columns};
use crate::schema::{coupons, user_coupons};
use crate::sql::Statement;
use crate::work::PgWork;

/// How many stock buckets a new coupon's quantity is split over (fewer when the
/// quantity is smaller; each coupon records its own count): concurrent issues of one
/// coupon lock up to this many rows in parallel. docs/adr/0009-coupon-stock-buckets.md
/// has the measurements behind the figure; the table allows up to 16.
const BUCKETS: i32 = 16;

/// The one-statement issue ($1 coupon, $2 user, $3 now), with the lock clause that
/// passes by (`SKIP LOCKED`) or waits for buckets other issues hold.
///
/// With n = `coupons.buckets` buckets, bucket b holds the units of ordinal b, b + n,
/// b + 2n, ... (in issue order), q(b) of them. `c` reads the campaign (no lock); `b`
/// locks the least-taken bucket with stock (re-checking its stock on the latest
/// version: a bucket emptied meanwhile is passed over), only if the coupon is valid
/// and not flagged sold out; `issued` writes the holder row unless the user holds the
/// coupon already (the unique key decides, through its index: no statistics can turn
/// the check into a scan of the holders, and a concurrent issue to the same user is
/// waited for), and only then does `taken` take the unit. When a bucket was locked
/// but nothing written, the user held the coupon. Only when no bucket was locked does
/// it read what is left (nothing, without reading the buckets, once flagged) and
/// whether the user holds it.
///
/// The reply's remaining quantity is `total - 1 - ordinal` of the unit taken: exact
/// when issues do not overlap (the least-taken bucket first makes the ordinals run 0,
/// 1, 2, ...), distinct for every issue, and together the replies count from
/// `total - 1` down to 0.
macro_rules! issue_statement {
    ($lock:literal) => {
        concat!("\
    WITH c AS ( \
        SELECT id, name, discount_type, discount_value, min_order_amount, total_quantity, valid_from, valid_until, \
               sold_out, buckets AS n \
        FROM coupons WHERE id = $1), \
    b AS ( \
        SELECT s.coupon_id, s.bucket FROM coupon_stock s, c \
        WHERE s.coupon_id = $1 AND s.remaining > 0 AND NOT c.sold_out AND c.valid_from <= $3 AND c.valid_until >= $3 \
        ORDER BY c.total_quantity / c.n + (s.bucket < c.total_quantity % c.n)::int - s.remaining, s.bucket \
        LIMIT 1 FOR UPDATE OF s ", $lock, "), \
    issued AS ( \
        INSERT INTO user_coupons (coupon_id, user_id, issued_at) SELECT $1, $2, $3 FROM b \
        ON CONFLICT (user_id, coupon_id) DO NOTHING RETURNING issued_at), \
    taken AS ( \
        UPDATE coupon_stock s SET remaining = s.remaining - 1 FROM b \
        WHERE s.coupon_id = b.coupon_id AND s.bucket = b.bucket AND EXISTS (SELECT 1 FROM issued) \
        RETURNING s.bucket, s.remaining) \
    SELECT c.id, c.name, c.discount_type, c.discount_value, c.min_order_amount, c.total_quantity, \
           (CASE WHEN t.bucket IS NOT NULL THEN c.total_quantity - 1 - \
                     ((c.total_quantity / c.n + (t.bucket < c.total_quantity % c.n)::int - t.remaining - 1) * c.n \
                      + t.bucket) \
                 WHEN c.sold_out THEN 0 \
                 ELSE (SELECT coalesce(sum(s.remaining), 0) FROM coupon_stock s WHERE s.coupon_id = $1) END \
           )::int4 AS remaining_quantity, \
           c.valid_from, c.valid_until, c.sold_out, (SELECT issued_at FROM issued) AS issued_at, \
           (t.bucket IS NULL AND (EXISTS (SELECT 1 FROM b) \
                                  OR EXISTS (SELECT 1 FROM user_coupons WHERE user_id = $2 AND coupon_id = $1))) \
               AS already_held \
    FROM c LEFT JOIN taken t ON true")
    };
}

/// [`issue_statement`] passing by buckets another issue holds.
const ISSUE: &str = issue_statement!("SKIP LOCKED");
/// [`issue_statement`] waiting for one of them.
const ISSUE_WAITING: &str = issue_statement!("");

/// Flags a coupon sold out ($1), once the issue statement found none left: later
/// issues then answer without reading its buckets.
const FLAG_SOLD_OUT: &str = "UPDATE coupons SET sold_out = true WHERE id = $1 AND NOT sold_out";

#[derive(QueryableByName)]
struct IssueRow {
    #[diesel(embed)]
    coupon: CouponRow,
    #[diesel(sql_type = Bool)]
    sold_out: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    issued_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    already_held: bool,
}

#[async_trait]
impl CouponRepository for PgWork {
    async fn create(&mut self, coupon: &NewCoupon) -> Result<Coupon, StoreError> {
        let (discount_type, discount_value) = discount_columns(coupon.discount);
        // The campaign and its stock buckets in one statement.
        Statement(
            "WITH c AS ( \
                 INSERT INTO coupons (name, discount_type, discount_value, min_order_amount, total_quantity, \
                                      valid_from, valid_until, buckets) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, least($5, $8)) RETURNING *), \
             s AS ( \
                 INSERT INTO coupon_stock (coupon_id, bucket, remaining) \
                 SELECT c.id, b.n, c.total_quantity / c.buckets + (b.n < c.total_quantity % c.buckets)::int4 \
                 FROM c, generate_series(0, c.buckets - 1) AS b(n)) \
             SELECT id, name, discount_type, discount_value, min_order_amount, total_quantity, \
                    total_quantity AS remaining_quantity, valid_from, valid_until FROM c",
        )
        .bind::<Text, _>(&coupon.name)
        .bind::<Text, _>(discount_type)
        .bind::<BigInt, _>(discount_value)
        .bind::<BigInt, _>(coupon.min_order_amount.krw())
        .bind::<Integer, _>(coupon.total_quantity)
        .bind::<Timestamptz, _>(coupon.validity.from())
        .bind::<Timestamptz, _>(coupon.validity.until())
        .bind::<Integer, _>(BUCKETS)
        .get_result::<CouponRow>(self.conn())
        .await
        .store_context("inserting a coupon")?
        .into_domain()
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
        let statement = match busy {
            BusyBuckets::Skip => ISSUE,
            BusyBuckets::Wait => ISSUE_WAITING,
        };
        let attempt = Statement(statement)
            .bind::<BigInt, _>(coupon.get())
            .bind::<BigInt, _>(user.get())
            .bind::<Timestamptz, _>(at)
            .get_result::<IssueRow>(self.conn())
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
        if row.already_held {
            return Ok(IssueAttempt::AlreadyHeld);
        }
        let mut coupon = row.coupon.into_domain()?;
        if let Some(issued_at) = row.issued_at {
            return Ok(IssueAttempt::Issued { coupon, issued_at });
        }
        if busy == BusyBuckets::Wait && coupon.remaining_quantity() > 0 {
            // The statement waited for buckets that others emptied meanwhile: what is
            // left must be read after them, not in the statement's own snapshot.
            coupon = CouponRepository::find(self, coupon.id()).await?.unwrap_or(coupon);
        }
        if coupon.remaining_quantity() == 0 && !row.sold_out {
            // Stock never comes back: from now on, issues need not read the buckets.
            Statement(FLAG_SOLD_OUT)
                .bind::<BigInt, _>(coupon.id().get())
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
