//! Points: charging a balance, reading it, and reading its ledger.

use std::sync::Arc;

use domain::UserId;
use domain::points::{Balance, BalanceLimitExceeded, ChargeAmount, PointEntry, PointEntryKind};

use crate::idempotency::{Answer, Begun, Key, KeyedError};
use crate::opaque_debug::opaque_debug;
use crate::paging::{one_page, read_limit};
use crate::ports::{Clock, NewPointEntry, Ports, StoreError, UnitOfWork, UserRepository, Work, finish};

/// A user's balance after an operation, or as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceView {
    pub user_id: UserId,
    pub balance: Balance,
}

#[derive(Debug, thiserror::Error)]
pub enum ChargePointsError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error(transparent)]
    BalanceLimitExceeded(#[from] BalanceLimitExceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds a charge to a user's balance and records it in the ledger, atomically.
///
/// A charge within the cap is one statement that commits on its own (no transaction
/// around it): it locks the balance row, re-checks the cap on the latest committed
/// balance, and appends the ledger entry, so concurrent charges to one user serialise
/// and none is lost or lifts the balance above the cap. Only when it writes nothing
/// (no such user, or the cap) does the use case read the balance under a lock and let
/// the domain decide, in a transaction. With an idempotency key the whole charge runs
/// in the key's transaction.
#[derive(Clone)]
pub struct ChargePoints {
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}
opaque_debug!(ChargePoints);

impl ChargePoints {
    pub fn new(uow: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { uow, clock }
    }

    #[tracing::instrument(skip(self), fields(user_id = %user_id, amount = amount.money().krw()))]
    pub async fn execute(&self, user_id: UserId, amount: ChargeAmount) -> Result<BalanceView, ChargePointsError> {
        let mut session = self.uow.autocommit().await?;
        let charged = session.users().charge_within(user_id, amount, Balance::MAX, self.clock.now()).await;
        if let Some(balance) = finish(session, charged).await? {
            return Ok(BalanceView { user_id, balance });
        }
        let mut work = self.uow.begin().await?;
        let outcome = self.charge(work.as_mut(), user_id, amount).await;
        finish(work, outcome).await
    }

    /// [`Self::execute`], at most once per idempotency key: with a key the whole charge
    /// runs in the key's transaction.
    #[tracing::instrument(skip(self, key), fields(user_id = %user_id, amount = amount.money().krw()))]
    pub async fn execute_keyed(
        &self,
        user_id: UserId,
        amount: ChargeAmount,
        key: Option<Key<BalanceView>>,
    ) -> Result<Answer<BalanceView>, KeyedError<ChargePointsError>> {
        let Some(key) = key else { return Ok(Answer::Ran(self.execute(user_id, amount).await?)) };
        let mut work = match key.begin(self.uow.as_ref()).await? {
            Begun::Claimed(work) => work,
            Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
        };
        let outcome = self.charge(work.as_mut(), user_id, amount).await;
        work.finish(outcome).await
    }

    async fn charge(
        &self,
        work: &mut dyn Work,
        user_id: UserId,
        amount: ChargeAmount,
    ) -> Result<BalanceView, ChargePointsError> {
        let users = work.users();
        let at = self.clock.now();
        if let Some(balance) = users.charge_within(user_id, amount, Balance::MAX, at).await? {
            return Ok(BalanceView { user_id, balance });
        }
        // Nothing was written. Read the balance under a lock and let the domain decide:
        // usually it names the refusal; if a payment lowered the balance meanwhile, the
        // charge fits now and is written here.
        let balance = users.lock_balance(user_id).await?.ok_or(ChargePointsError::UserNotFound(user_id))?;
        let after = balance.charge(amount)?;
        let entry = NewPointEntry {
            user_id,
            kind: PointEntryKind::Charge,
            amount: amount.money(),
            balance_after: after,
            order_id: None,
            at,
        };
        write_locked_balance(users, &entry).await?;
        Ok(BalanceView { user_id, balance: after })
    }
}

/// Stores a balance decided on a locked read ([`UserRepository::lock_balance`]) and the
/// ledger entry that explains it: the locked paths of a charge and of a payment.
pub(crate) async fn write_locked_balance(
    users: &mut dyn UserRepository,
    entry: &NewPointEntry,
) -> Result<(), StoreError> {
    users.set_balance(entry.user_id, entry.balance_after).await?;
    users.append_entry(entry).await.map(drop)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadPointsError {
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads a user's balance as last committed.
#[derive(Clone)]
pub struct GetBalance {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(GetBalance);

impl GetBalance {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(&self, user_id: UserId) -> Result<BalanceView, ReadPointsError> {
        let mut work = self.uow.autocommit().await?;
        let user = work.users().find(user_id).await?;
        let outcome =
            user.map(|u| BalanceView { user_id, balance: u.balance }).ok_or(ReadPointsError::UserNotFound(user_id));
        finish(work, outcome).await
    }
}

/// One page of a ledger, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<PointEntry>,
    /// Pass as `before` to read the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Reads a user's ledger, newest first, in pages.
#[derive(Clone)]
pub struct PointHistory {
    uow: Arc<dyn UnitOfWork>,
}
opaque_debug!(PointHistory);

impl PointHistory {
    pub fn new(uow: Arc<dyn UnitOfWork>) -> Self {
        Self { uow }
    }

    #[tracing::instrument(skip(self))]
    pub async fn execute(
        &self,
        user_id: UserId,
        before: Option<i64>,
        limit: u16,
    ) -> Result<HistoryPage, ReadPointsError> {
        let mut work = self.uow.autocommit().await?;
        let outcome = Self::page(work.as_mut(), user_id, before, limit).await;
        finish(work, outcome).await
    }

    async fn page(
        work: &mut dyn Work,
        user_id: UserId,
        before: Option<i64>,
        limit: u16,
    ) -> Result<HistoryPage, ReadPointsError> {
        let users = work.users();
        if !users.exists(user_id).await? {
            return Err(ReadPointsError::UserNotFound(user_id));
        }
        let entries = users.entries(user_id, before, read_limit(limit)).await?;
        let (entries, next_before) = one_page(entries, limit, |e| e.id);
        Ok(HistoryPage { entries, next_before })
    }
}

/// The points use cases.
#[derive(Debug, Clone)]
pub struct Points {
    pub charge: ChargePoints,
    pub balance: GetBalance,
    pub history: PointHistory,
}

impl Points {
    pub fn new(ports: &Ports) -> Self {
        Self {
            charge: ChargePoints::new(ports.uow.clone(), ports.clock.clone()),
            balance: GetBalance::new(ports.uow.clone()),
            history: PointHistory::new(ports.uow.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::testing::{at, uid};

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork, fixed_clock};

    fn charge(krw: i64) -> ChargeAmount {
        ChargeAmount::new(krw).unwrap()
    }

    /// A session whose one-statement charge writes nothing (no such user, or the cap).
    fn refusing_session() -> FakeWork {
        let mut session = FakeWork::default();
        session.users.expect_charge_within().times(1).returning(|_, _, _, _| Ok(None));
        session
    }

    #[tokio::test]
    async fn a_charge_within_the_cap_is_one_statement_outside_any_transaction() {
        let mut session = FakeWork::default();
        session
            .users
            .expect_charge_within()
            .withf(|id, amount, ceiling, at_| {
                *id == uid(1) && amount.money().krw() == 10_000 && *ceiling == Balance::MAX && *at_ == at(0)
            })
            .times(1)
            .returning(|_, _, _, _| Ok(Some(Balance::new(11_000).unwrap())));
        // `into_reader` expects no `begin`: a transaction would fail the test.
        let (uow, ended) = session.into_reader();
        let view = ChargePoints::new(uow, fixed_clock(at(0))).execute(uid(1), charge(10_000)).await.unwrap();
        assert_eq!(view.balance.krw(), 11_000);
        assert_eq!(ended.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_charge_that_fits_once_the_balance_is_locked_is_written_in_the_transaction() {
        // The statement wrote nothing, then a payment lowered the balance: the domain,
        // deciding on the locked balance, lets the charge through.
        let mut work = FakeWork::default();
        work.users.expect_charge_within().times(1).returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(1_000).unwrap())));
        work.users
            .expect_set_balance()
            .withf(|id, balance| *id == uid(1) && balance.krw() == 11_000)
            .times(1)
            .returning(|_, _| Ok(()));
        work.users
            .expect_append_entry()
            .withf(|e| {
                e.kind == PointEntryKind::Charge
                    && e.amount.krw() == 10_000
                    && e.balance_after.krw() == 11_000
                    && e.order_id.is_none()
                    && e.at == at(0)
            })
            .times(1)
            .returning(|e| {
                Ok(PointEntry {
                    id: 1,
                    user_id: e.user_id,
                    kind: e.kind,
                    amount: e.amount,
                    balance_after: e.balance_after,
                    order_id: None,
                    created_at: e.at,
                })
            });
        let (uow, session, transaction) = FakeWork::session_then_transaction(refusing_session(), work);
        let view = ChargePoints::new(uow, fixed_clock(at(0))).execute(uid(1), charge(10_000)).await.unwrap();
        assert_eq!(view.balance.krw(), 11_000);
        assert_eq!(session.get(), Some(Ended::Committed));
        assert_eq!(transaction.get(), Some(Ended::Committed));
    }

    #[tokio::test]
    async fn unknown_user_writes_nothing() {
        let mut work = FakeWork::default();
        work.users.expect_charge_within().returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(None));
        // No expectation for set_balance or append_entry: a call would fail the test.
        let (uow, _, ended) = FakeWork::session_then_transaction(refusing_session(), work);
        let error = ChargePoints::new(uow, fixed_clock(at(0))).execute(uid(9), charge(1)).await.unwrap_err();
        assert!(matches!(error, ChargePointsError::UserNotFound(id) if id == uid(9)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_charge_above_the_cap_writes_nothing() {
        let mut work = FakeWork::default();
        work.users.expect_charge_within().returning(|_, _, _, _| Ok(None));
        work.users.expect_lock_balance().returning(|_| Ok(Some(Balance::new(4_500_000).unwrap())));
        let (uow, _, ended) = FakeWork::session_then_transaction(refusing_session(), work);
        let error = ChargePoints::new(uow, fixed_clock(at(0))).execute(uid(1), charge(500_001)).await.unwrap_err();
        assert!(matches!(error, ChargePointsError::BalanceLimitExceeded(_)));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn history_pages_report_the_next_cursor_only_when_more_remain() {
        let entry = |id| PointEntry {
            id,
            user_id: uid(1),
            kind: PointEntryKind::Charge,
            amount: domain::Money::new(1).unwrap(),
            balance_after: Balance::new(id).unwrap(),
            order_id: None,
            created_at: at(0),
        };
        let mut work = FakeWork::default();
        work.users.expect_exists().returning(|_| Ok(true));
        work.users
            .expect_entries()
            .withf(|_, before, limit| *before == Some(10) && *limit == 3)
            .returning(move |_, _, _| Ok(vec![entry(9), entry(8), entry(7)]));
        let (uow, _) = work.into_reader();
        let page = PointHistory::new(uow).execute(uid(1), Some(10), 2).await.unwrap();
        assert_eq!(page.entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![9, 8]);
        assert_eq!(page.next_before, Some(8));
    }
}
