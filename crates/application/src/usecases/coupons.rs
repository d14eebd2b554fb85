//! Coupons: creating campaigns, the first-come issue, and the coupons a user holds.

use std::sync::Arc;

use domain::coupon::{Coupon, IssueRefusal, IssuedCoupon, NewCoupon};
use domain::{CouponId, UserId};

use super::opaque_debug;
use crate::idempotency::{Keyed, KeyedError, KeyedRequest, keyed_transaction, unkeyed};
use crate::ports::{Clock, IssueAttempt, IssueRecord, StoreError, UnitOfWork, Work, finish};

/// Creates a coupon campaign with all of its quantity remaining.
#[derive(Clone)]
pub struct CreateCoupon {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(CreateCoupon);

impl CreateCoupon {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip_all)]
    pub async fn execute(&self, coupon: NewCoupon) -> Result<Coupon, StoreError> {
        unkeyed(self.execute_keyed(coupon, None).await)
    }

    /// [`Self::execute`], at most once per idempotency key.
    pub async fn execute_keyed(
        &self,
        coupon: NewCoupon,
        keyed: Option<KeyedRequest<Coupon>>,
    ) -> Result<Keyed<Coupon>, KeyedError<StoreError>> {
        keyed_transaction!(self.uow.as_ref(), keyed.as_ref(), |work| work.coupons().create(&coupon).await)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueCouponError {
    #[error("coupon {0} does not exist")]
    CouponNotFound(CouponId),
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error("user {user} already holds coupon {coupon}")]
    AlreadyIssued { coupon: CouponId, user: UserId },
    #[error(transparent)]
    Refused(#[from] IssueRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A coupon just issued, with what remains of its campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub coupon: IssuedCoupon,
    pub remaining_quantity: i32,
}

/// Issues one coupon of a limited campaign to a user, first come first served.
///
/// The race is decided by the store, in two statements of one short transaction:
/// 1. record that the user holds the coupon — a unique (user, coupon) key makes a
///    second record impossible, so one user can never hold it twice;
/// 2. take one from the remaining quantity with a conditional decrement that applies
///    [`Coupon::check_issuable`] atomically — it cannot take more than remains.
///
/// If step 2 refuses, the transaction rolls back and step 1 leaves no trace. The
/// campaign row is locked only from step 2 to the commit.
#[derive(Clone)]
pub struct IssueCoupon {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}
opaque_debug!(IssueCoupon);

impl IssueCoupon {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { uow, clock }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, coupon_id: CouponId, user_id: UserId) -> Result<Issued, IssueCouponError> {
        unkeyed(self.execute_keyed(coupon_id, user_id, None).await)
    }

    /// [`Self::execute`], at most once per idempotency key.
    pub async fn execute_keyed(
        &self,
        coupon_id: CouponId,
        user_id: UserId,
        keyed: Option<KeyedRequest<Issued>>,
    ) -> Result<Keyed<Issued>, KeyedError<IssueCouponError>> {
        if keyed.is_none() {
            let mut session = self.uow.autocommit().await.map_err(|e| KeyedError::Failed(e.into()))?;
            let attempt = self.attempt(session.as_mut(), coupon_id, user_id).await;
            match finish(session, attempt).await {
                Ok(Some(issued)) => return Ok(Keyed::Fresh(issued)),
                Ok(None) => {}
                Err(error) => return Err(KeyedError::Failed(error)),
            }
        }
        keyed_transaction!(self.uow.as_ref(), keyed.as_ref(), |work| self
            .issue(work.as_mut(), coupon_id, user_id)
            .await)
    }

    /// The one-statement issue, with the domain judging a coupon it did not take
    /// from. `None`: nothing was written and nothing is decided (every bucket with
    /// stock was busy); the exact path decides.
    async fn attempt(
        &self,
        work: &mut dyn Work,
        coupon_id: CouponId,
        user_id: UserId,
    ) -> Result<Option<Issued>, IssueCouponError> {
        let now = self.clock.now();
        match work.coupons().issue(coupon_id, user_id, now).await? {
            IssueAttempt::Issued { coupon, issued_at } => {
                let remaining_quantity = coupon.remaining_quantity();
                Ok(Some(Issued {
                    coupon: IssuedCoupon { coupon, user_id, issued_at, used_at: None },
                    remaining_quantity,
                }))
            }
            IssueAttempt::AlreadyHeld => Err(IssueCouponError::AlreadyIssued { coupon: coupon_id, user: user_id }),
            IssueAttempt::UnknownCoupon => Err(IssueCouponError::CouponNotFound(coupon_id)),
            IssueAttempt::UnknownUser => Err(IssueCouponError::UserNotFound(user_id)),
            IssueAttempt::NotTaken(coupon) => {
                // Not yet valid, expired, or sold out: final (stock never comes back).
                coupon.check_issuable(now)?;
                Ok(None)
            }
        }
    }

    async fn issue(
        &self,
        work: &mut dyn Work,
        coupon_id: CouponId,
        user_id: UserId,
    ) -> Result<Issued, IssueCouponError> {
        if let Some(issued) = self.attempt(work, coupon_id, user_id).await? {
            return Ok(issued);
        }
        // Every bucket with stock was busy: record the holder, then take a unit
        // waiting for the buckets' locks, so the answer is exact.
        let coupons = work.coupons();
        let issued_at = match coupons.record_issue(coupon_id, user_id, self.clock.now()).await? {
            IssueRecord::Recorded { issued_at } => issued_at,
            IssueRecord::AlreadyHeld => {
                return Err(IssueCouponError::AlreadyIssued { coupon: coupon_id, user: user_id });
            }
            IssueRecord::UnknownCoupon => return Err(IssueCouponError::CouponNotFound(coupon_id)),
            IssueRecord::UnknownUser => return Err(IssueCouponError::UserNotFound(user_id)),
        };
        let now = self.clock.now();
        let Some(coupon) = coupons.take_one(coupon_id, now).await? else {
            let coupon = coupons.find(coupon_id).await?.ok_or(IssueCouponError::CouponNotFound(coupon_id))?;
            coupon.check_issuable(now)?;
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "coupon {coupon_id} refused a decrement although it is issuable"
            ))
            .into());
        };
        let remaining_quantity = coupon.remaining_quantity();
        Ok(Issued { coupon: IssuedCoupon { coupon, user_id, issued_at, used_at: None }, remaining_quantity })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeldCouponsError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The coupons a user holds, used or not.
#[derive(Clone)]
pub struct HeldCoupons {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(HeldCoupons);

impl HeldCoupons {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user_id: UserId) -> Result<Vec<IssuedCoupon>, HeldCouponsError> {
        let mut work = self.uow.autocommit().await?;
        let outcome = async {
            if !work.users().exists(user_id).await? {
                return Err(HeldCouponsError::UserNotFound(user_id));
            }
            Ok(work.coupons().held_by(user_id).await?)
        }
        .await;
        finish(work, outcome).await
    }
}

#[cfg(test)]
mod tests {
    use domain::testing::{CouponBuilder, at, uid};

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn cid() -> CouponId {
        domain::testing::cid(7)
    }

    fn campaign(remaining: i32) -> Coupon {
        CouponBuilder::new().name("rush").remaining_quantity(remaining).build()
    }

    /// A work whose one-statement issue answers `attempt`.
    fn attempting(attempt: IssueAttempt) -> FakeWork {
        let mut work = FakeWork::default();
        work.coupons.expect_issue().times(1).return_once(move |_, _, _| Ok(attempt));
        work
    }

    /// Issues with only the one-statement attempt: a transaction would fail the test.
    async fn issue_in_one_statement(
        attempt: IssueAttempt,
        now: i64,
    ) -> (Result<Issued, IssueCouponError>, Option<Ended>) {
        let (uow, ended) = attempting(attempt).into_reader();
        let result = IssueCoupon::new(uow, fixed_clock(at(now))).execute(cid(), uid(1)).await;
        (result, ended.get())
    }

    /// Issues through the exact path: the one-statement attempt took nothing from a
    /// coupon it judged issuable (every bucket busy), then `transaction` decides.
    async fn issue_exactly(transaction: FakeWork, now: i64) -> (Result<Issued, IssueCouponError>, Option<Ended>) {
        let session = attempting(IssueAttempt::NotTaken(campaign(5)));
        let (uow, _, ended) = FakeWork::session_then_transaction(session, transaction);
        let result = IssueCoupon::new(uow, fixed_clock(at(now))).execute(cid(), uid(1)).await;
        (result, ended.get())
    }

    /// The transaction of the exact path, past its own one-statement attempt.
    fn busy_buckets() -> FakeWork {
        attempting(IssueAttempt::NotTaken(campaign(5)))
    }

    #[tokio::test]
    async fn a_unit_from_a_free_bucket_is_issued_in_one_statement_outside_any_transaction() {
        let attempt = IssueAttempt::Issued { coupon: campaign(41), issued_at: at(10) };
        let (result, ended) = issue_in_one_statement(attempt, 10).await;
        let issued = result.unwrap();
        assert_eq!(issued.remaining_quantity, 41);
        assert_eq!(issued.coupon.issued_at, at(10));
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn refusals_seen_by_the_statement_are_final_and_take_no_transaction() {
        let (sold_out, _) = issue_in_one_statement(IssueAttempt::NotTaken(campaign(0)), 10).await;
        assert!(matches!(sold_out, Err(IssueCouponError::Refused(IssueRefusal::SoldOut(_)))), "{sold_out:?}");
        let (expired, _) = issue_in_one_statement(IssueAttempt::NotTaken(campaign(5)), 101).await;
        assert!(matches!(expired, Err(IssueCouponError::Refused(IssueRefusal::Expired(_)))), "{expired:?}");
        let (held, _) = issue_in_one_statement(IssueAttempt::AlreadyHeld, 10).await;
        assert!(matches!(held, Err(IssueCouponError::AlreadyIssued { .. })), "{held:?}");
        let (coupon, _) = issue_in_one_statement(IssueAttempt::UnknownCoupon, 10).await;
        assert!(matches!(coupon, Err(IssueCouponError::CouponNotFound(_))), "{coupon:?}");
        let (user, _) = issue_in_one_statement(IssueAttempt::UnknownUser, 10).await;
        assert!(matches!(user, Err(IssueCouponError::UserNotFound(_))), "{user:?}");
    }

    #[tokio::test]
    async fn with_every_bucket_busy_the_exact_path_records_the_holder_and_takes_one() {
        let mut work = busy_buckets();
        work.coupons.expect_record_issue().times(1).returning(|_, _, at| Ok(IssueRecord::Recorded { issued_at: at }));
        work.coupons.expect_take_one().times(1).returning(|_, _| Ok(Some(campaign(41))));
        let (result, ended) = issue_exactly(work, 10).await;
        let issued = result.unwrap();
        assert_eq!(issued.remaining_quantity, 41);
        assert_eq!(issued.coupon.issued_at, at(10));
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn sold_out_on_the_exact_path_is_refused_and_rolled_back() {
        let mut work = busy_buckets();
        work.coupons.expect_record_issue().returning(|_, _, at| Ok(IssueRecord::Recorded { issued_at: at }));
        work.coupons.expect_take_one().returning(|_, _| Ok(None));
        work.coupons.expect_find().returning(|_| Ok(Some(campaign(0))));
        let (result, ended) = issue_exactly(work, 10).await;
        assert!(matches!(result, Err(IssueCouponError::Refused(IssueRefusal::SoldOut(_)))));
        assert_eq!(ended, Some(Ended::RolledBack), "the holder record must not survive");
    }

    #[tokio::test]
    async fn already_issued_on_the_exact_path_takes_nothing() {
        let mut work = busy_buckets();
        work.coupons.expect_record_issue().returning(|_, _, _| Ok(IssueRecord::AlreadyHeld));
        // No take_one expectation: taking one would panic.
        let (result, ended) = issue_exactly(work, 10).await;
        assert!(matches!(result, Err(IssueCouponError::AlreadyIssued { .. })));
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn held_coupons_of_an_unknown_user_are_not_found() {
        let mut work = FakeWork::default();
        work.users.expect_exists().returning(|_| Ok(false));
        let (uow, _) = work.into_reader();
        let result = HeldCoupons::new(uow).execute(uid(3)).await;
        assert!(matches!(result, Err(HeldCouponsError::UserNotFound(_))));
    }
}
