use application::StoreError;
use application::ports::{CouponRepository, IssueRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel_async::RunQueryDsl;
use domain::coupon::{Coupon, IssuedCoupon, NewCoupon};
use domain::{CouponId, OrderId, UserId};

use crate::error::{StoreContext, violated_constraint};
use crate::records::{CouponRow, UserCouponRow, discount_columns};
use crate::schema::{coupons, user_coupons};
use crate::work::PgWork;

#[async_trait]
impl CouponRepository for PgWork {
    async fn create(&mut self, coupon: &NewCoupon) -> Result<Coupon, StoreError> {
        let (discount_type, discount_value) = discount_columns(coupon.discount);
        diesel::insert_into(coupons::table)
            .values((
                coupons::name.eq(&coupon.name),
                coupons::discount_type.eq(discount_type),
                coupons::discount_value.eq(discount_value),
                coupons::min_order_amount.eq(coupon.min_order_amount.krw()),
                coupons::total_quantity.eq(coupon.total_quantity),
                coupons::remaining_quantity.eq(coupon.total_quantity),
                coupons::valid_from.eq(coupon.validity.from()),
                coupons::valid_until.eq(coupon.validity.until()),
            ))
            .returning(CouponRow::as_returning())
            .get_result(self.conn())
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

    async fn record_issue(
        &mut self,
        coupon: CouponId,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<IssueRecord, StoreError> {
        // The unique (user_id, coupon_id) key decides "already held": a concurrent
        // insert of the same pair waits for the first and then does nothing.
        let inserted = diesel::insert_into(user_coupons::table)
            .values((
                user_coupons::coupon_id.eq(coupon.get()),
                user_coupons::user_id.eq(user.get()),
                user_coupons::issued_at.eq(at),
            ))
            .on_conflict((user_coupons::user_id, user_coupons::coupon_id))
            .do_nothing()
            .returning(user_coupons::issued_at)
            .get_result::<DateTime<Utc>>(self.conn())
            .await
            .optional();
        match inserted {
            Ok(Some(issued_at)) => Ok(IssueRecord::Recorded { issued_at }),
            Ok(None) => Ok(IssueRecord::AlreadyHeld),
            Err(error) => match violated_constraint(&error) {
                Some((DatabaseErrorKind::ForeignKeyViolation, name)) if name == "user_coupons_coupon_id_fkey" => {
                    Ok(IssueRecord::UnknownCoupon)
                }
                Some((DatabaseErrorKind::ForeignKeyViolation, name)) if name == "user_coupons_user_id_fkey" => {
                    Ok(IssueRecord::UnknownUser)
                }
                _ => Err(error).store_context("recording a coupon holder"),
            },
        }
    }

    async fn take_one(&mut self, coupon: CouponId, at: DateTime<Utc>) -> Result<Option<Coupon>, StoreError> {
        // `Coupon::check_issuable` as one conditional update: the row lock it takes
        // serialises concurrent issuers, and each re-checks the predicate on the row
        // as the previous one committed it, so the quantity cannot be overdrawn.
        diesel::update(
            coupons::table
                .find(coupon.get())
                .filter(coupons::remaining_quantity.gt(0))
                .filter(coupons::valid_from.le(at))
                .filter(coupons::valid_until.ge(at)),
        )
        .set(coupons::remaining_quantity.eq(coupons::remaining_quantity - 1))
        .returning(CouponRow::as_returning())
        .get_result(self.conn())
        .await
        .optional()
        .store_context("taking one coupon")?
        .map(CouponRow::into_domain)
        .transpose()
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
