//! Coupons: creating campaigns, the first-come issue, and the coupons a user holds.

use std::sync::Arc;

use domain::coupon::{Coupon, IssueRefusal, IssuedCoupon, NewCoupon};
use domain::{CouponId, UserId};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::ports::{BusyBuckets, Clock, IssueAttempt, Ports, StoreError, UnitOfWork, Work, finish};

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
        let mut work = self.uow.begin().await?;
        let created = work.coupons().create(&coupon).await;
        finish(work, created).await
    }

    /// [`Self::execute`], at most once per idempotency key.
    #[tracing::instrument(skip_all)]
    pub async fn execute_keyed(
        &self,
        coupon: NewCoupon,
        key: Option<Key<Coupon>>,
    ) -> Result<Answer<Coupon>, KeyedError<StoreError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(coupon).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let created = work.coupons().create(&coupon).await;
        work.finish(created).await
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
/// The race is decided by the store, in one statement ([`CouponRepository::issue`]):
/// it takes a unit from one of the campaign's stock buckets and writes the holder row
/// together, or writes nothing. The unique (user, coupon) key makes a second holder row
/// impossible, and a bucket's stock cannot go below zero, so the campaign is never
/// over-issued and no user holds it twice. The statement first passes by buckets other
/// issues hold; only when every bucket with stock was busy does it run again, waiting
/// for one — so a refusal is never a false "sold out". Without a key the statement
/// commits on its own; with one it runs in the key's transaction.
///
/// [`CouponRepository::issue`]: crate::ports::CouponRepository::issue
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
        let mut session = self.uow.autocommit().await?;
        let issued = self.issue(session.as_mut(), coupon_id, user_id).await;
        finish(session, issued).await
    }

    /// [`Self::execute`], at most once per idempotency key: the issue then runs in the
    /// key's transaction.
    #[tracing::instrument(skip(self, key))]
    pub async fn execute_keyed(
        &self,
        coupon_id: CouponId,
        user_id: UserId,
        key: Option<Key<Issued>>,
    ) -> Result<Answer<Issued>, KeyedError<IssueCouponError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(coupon_id, user_id).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let issued = self.issue(work.as_mut(), coupon_id, user_id).await;
        work.finish(issued).await
    }

    /// Passing by stock buckets other issues hold, then, if every bucket with stock
    /// was busy, waiting for one: a refusal is never a false "sold out".
    async fn issue(
        &self,
        work: &mut dyn Work,
        coupon_id: CouponId,
        user_id: UserId,
    ) -> Result<Issued, IssueCouponError> {
        if let Some(issued) = self.attempt(work, coupon_id, user_id, BusyBuckets::Skip).await? {
            return Ok(issued);
        }
        self.attempt(work, coupon_id, user_id, BusyBuckets::Wait).await?.ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!("coupon {coupon_id} is issuable, yet no bucket gave a unit")).into()
        })
    }

    /// One issue statement, with the domain judging a coupon it did not take from.
    /// `None`: nothing was written and the coupon is issuable (every bucket with stock
    /// was busy).
    async fn attempt(
        &self,
        work: &mut dyn Work,
        coupon_id: CouponId,
        user_id: UserId,
        busy: BusyBuckets,
    ) -> Result<Option<Issued>, IssueCouponError> {
        let now = self.clock.now();
        match work.coupons().issue(coupon_id, user_id, now, busy).await? {
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

/// The coupon use cases.
#[derive(Debug, Clone)]
pub struct Coupons {
    pub create: CreateCoupon,
    pub issue: IssueCoupon,
    pub held: HeldCoupons,
}

impl Coupons {
    pub fn new(ports: &Ports) -> Self {
        Self {
            create: CreateCoupon::new(ports.uow.clone()),
            issue: IssueCoupon::new(ports.uow.clone(), ports.clock.clone()),
            held: HeldCoupons::new(ports.uow.clone()),
        }
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

    /// A work whose issue statements answer `skipping` when passing by busy buckets
    /// and `waiting` (if given) when waiting for one.
    fn attempting(skipping: IssueAttempt, waiting: Option<IssueAttempt>) -> FakeWork {
        let mut work = FakeWork::default();
        work.coupons
            .expect_issue()
            .withf(|_, _, _, busy| *busy == BusyBuckets::Skip)
            .times(1)
            .return_once(move |_, _, _, _| Ok(skipping));
        if let Some(waiting) = waiting {
            work.coupons
                .expect_issue()
                .withf(|_, _, _, busy| *busy == BusyBuckets::Wait)
                .times(1)
                .return_once(move |_, _, _, _| Ok(waiting));
        }
        work
    }

    async fn issue(work: FakeWork, now: i64) -> (Result<Issued, IssueCouponError>, Option<Ended>) {
        // `into_reader` expects no `begin`: a transaction would fail the test.
        let (uow, ended) = work.into_reader();
        let result = IssueCoupon::new(uow, fixed_clock(at(now))).execute(cid(), uid(1)).await;
        (result, ended.get())
    }

    #[tokio::test]
    async fn a_unit_from_a_free_bucket_is_issued_in_one_statement_outside_any_transaction() {
        let attempt = IssueAttempt::Issued { coupon: campaign(41), issued_at: at(10) };
        let (result, ended) = issue(attempting(attempt, None), 10).await;
        let issued = result.unwrap();
        assert_eq!(issued.remaining_quantity, 41);
        assert_eq!(issued.coupon.issued_at, at(10));
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn refusals_seen_by_the_statement_are_final() {
        let refused = |attempt| async move { issue(attempting(attempt, None), 10).await.0 };
        let sold_out = refused(IssueAttempt::NotTaken(campaign(0))).await;
        assert!(matches!(sold_out, Err(IssueCouponError::Refused(IssueRefusal::SoldOut(_)))), "{sold_out:?}");
        let (expired, _) = issue(attempting(IssueAttempt::NotTaken(campaign(5)), None), 101).await;
        assert!(matches!(expired, Err(IssueCouponError::Refused(IssueRefusal::Expired(_)))), "{expired:?}");
        let held = refused(IssueAttempt::AlreadyHeld).await;
        assert!(matches!(held, Err(IssueCouponError::AlreadyIssued { .. })), "{held:?}");
        let coupon = refused(IssueAttempt::UnknownCoupon).await;
        assert!(matches!(coupon, Err(IssueCouponError::CouponNotFound(_))), "{coupon:?}");
        let user = refused(IssueAttempt::UnknownUser).await;
        assert!(matches!(user, Err(IssueCouponError::UserNotFound(_))), "{user:?}");
    }

    #[tokio::test]
    async fn with_every_bucket_busy_the_issue_waits_for_one() {
        let waited = IssueAttempt::Issued { coupon: campaign(41), issued_at: at(10) };
        let (result, ended) = issue(attempting(IssueAttempt::NotTaken(campaign(5)), Some(waited)), 10).await;
        assert_eq!(result.unwrap().remaining_quantity, 41);
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn sold_out_once_the_busy_buckets_are_waited_for_is_refused() {
        let work = attempting(IssueAttempt::NotTaken(campaign(5)), Some(IssueAttempt::NotTaken(campaign(0))));
        let (result, ended) = issue(work, 10).await;
        assert!(matches!(result, Err(IssueCouponError::Refused(IssueRefusal::SoldOut(_)))), "{result:?}");
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
