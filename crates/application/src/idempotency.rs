//! Keyed use cases: a request that carries an idempotency key takes effect at most once.
//!
//! A keyed use case is its plain form with another beginning and another end. It
//! begins with [`Key::begin`], which opens the transaction and claims the key in it,
//! and ends with [`KeyedWork::finish`], which stores the encoded reply in that same
//! transaction and commits — so a request that fails stores nothing and can be retried
//! with its key, and one that succeeds commits its reply with its effect: a retry gets
//! that reply back and runs nothing, even if the state has changed since.
//!
//! ```ignore
//! pub async fn execute_keyed(&self, name: UserName, key: Option<Key<User>>) -> Result<Answer<User>, KeyedError<StoreError>> {
//!     let Some(key) = key else { return Ok(Answer::Ran(self.execute(name).await?)) };
//!     let mut work = match key.begin(self.uow.as_ref()).await? {
//!         Begun::Claimed(work) => work,
//!         Begun::Replayed(reply) => return Ok(Answer::Replayed(reply)),
//!     };
//!     let created = work.users().create(&name).await;
//!     work.finish(created).await
//! }
//! ```
//!
//! The reply is the inbound adapter's encoding of the success ([`Key::new`] takes the
//! encoder), opaque here; docs/adr/0010-keyed-use-cases-and-their-stored-reply.md says why.

use crate::ports::{Claim, IdempotencyKey, Reply, StoreError, UnitOfWork, Work, finish};

/// How the inbound adapter encodes a success as the reply stored with its key.
pub type Encoder<T> = Box<dyn Fn(&T) -> Reply + Send + Sync>;

/// A request's idempotency key, and how its success is encoded for storing.
pub struct Key<T> {
    key: IdempotencyKey,
    encode: Encoder<T>,
}

impl<T> std::fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("key", &self.key).finish_non_exhaustive()
    }
}

/// What a keyed use case answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// It ran without a key: the value, for the adapter to encode.
    Ran(T),
    /// It ran with a key: the reply now stored with it, to be sent as it is, so that
    /// this answer and every replay are the same bytes.
    Stored(Reply),
    /// An earlier request with the same key and fingerprint succeeded: its reply.
    /// Nothing ran.
    Replayed(Reply),
}

/// Why a keyed request did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    #[error("this idempotency key was used for another request")]
    Reused,
    #[error("a request with this idempotency key is still running")]
    InFlight,
}

/// The error of a keyed use case: the key was refused, or the use case failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyedError<E> {
    #[error(transparent)]
    Refused(KeyRefused),
    #[error(transparent)]
    Failed(E),
}

impl<E> From<E> for KeyedError<E> {
    fn from(error: E) -> Self {
        Self::Failed(error)
    }
}

/// How [`Key::begin`] went.
#[derive(Debug)]
pub enum Begun<T> {
    /// The key is this request's: run it in this work.
    Claimed(KeyedWork<T>),
    /// An earlier request with this key succeeded: answer its reply; nothing ran.
    Replayed(Reply),
}

/// A transaction that holds a claimed key; [`Self::finish`] ends it.
pub struct KeyedWork<T> {
    work: Box<dyn Work>,
    key: Key<T>,
}

impl<T> std::fmt::Debug for KeyedWork<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedWork").field("key", &self.key).finish_non_exhaustive()
    }
}

impl<T> Key<T> {
    /// `key`, whose success is stored as `encode` renders it.
    pub fn new(key: IdempotencyKey, encode: impl Fn(&T) -> Reply + Send + Sync + 'static) -> Self {
        Self { key, encode: Box::new(encode) }
    }

    /// Begins a transaction and claims the key in it.
    ///
    /// # Errors
    /// [`KeyedError::Refused`] when the key belongs to another request or its first
    /// request is still running; [`KeyedError::Failed`] when the store fails. In both
    /// cases, and on a replay, the transaction has ended and nothing was written.
    pub async fn begin<E: From<StoreError>>(self, uow: &dyn UnitOfWork) -> Result<Begun<T>, KeyedError<E>> {
        let mut work = uow.begin().await.map_err(E::from)?;
        let ended_early = match work.idempotency().claim(&self.key).await {
            Ok(Claim::Claimed) => return Ok(Begun::Claimed(KeyedWork { work, key: self })),
            Ok(Claim::Replay(reply)) => Ok(Begun::Replayed(reply)),
            Ok(Claim::Reused) => Err(KeyedError::Refused(KeyRefused::Reused)),
            Ok(Claim::InFlight) => Err(KeyedError::Refused(KeyRefused::InFlight)),
            Err(e) => Err(KeyedError::Failed(e.into())),
        };
        // Nothing ran: whatever the claim touched is discarded.
        if let Err(error) = work.rollback().await {
            tracing::warn!(%error, "rollback failed; the transaction is discarded with its connection");
        }
        ended_early
    }
}

impl<T> Key<T> {
    /// The reply an earlier request with this key stored, read without claiming the
    /// key: how a use case that refuses work for want of capacity (the payments'
    /// bulkhead and breaker) still answers a retry of what it already did.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn stored_reply(&self, uow: &dyn UnitOfWork) -> Result<Option<Reply>, StoreError> {
        let mut work = uow.autocommit().await?;
        let stored = work.idempotency().stored(&self.key).await;
        finish(work, stored).await
    }
}

/// The transaction, to run the use case in, as an unkeyed one runs in a `Box<dyn Work>`.
impl<T> std::ops::Deref for KeyedWork<T> {
    type Target = dyn Work;

    fn deref(&self) -> &Self::Target {
        self.work.as_ref()
    }
}

impl<T> std::ops::DerefMut for KeyedWork<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.work.as_mut()
    }
}

impl<T> AsMut<dyn Work> for KeyedWork<T> {
    fn as_mut(&mut self) -> &mut (dyn Work + 'static) {
        self.work.as_mut()
    }
}

impl<T> KeyedWork<T> {
    /// Ends the transaction: on success stores the encoded reply with the key and
    /// commits, so that the reply commits with the effect or not at all; on failure
    /// rolls everything back, the claim included.
    ///
    /// # Errors
    /// The use case's error, or the store's when storing or committing fails.
    pub async fn finish<E: From<StoreError>>(self, outcome: Result<T, E>) -> Result<Answer<T>, KeyedError<E>> {
        let Self { mut work, key } = self;
        let stored = match outcome {
            Ok(value) => {
                let reply = (key.encode)(&value);
                work.idempotency().complete(&key.key, &reply).await.map(|()| reply).map_err(E::from)
            }
            Err(error) => Err(error),
        };
        finish(work, stored).await.map(Answer::Stored).map_err(KeyedError::Failed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork};

    fn id() -> IdempotencyKey {
        IdempotencyKey { scope: "user:1".into(), key: "k-1".into(), fingerprint: vec![1, 2, 3] }
    }

    fn key() -> Key<u32> {
        Key::new(id(), |value: &u32| Reply(value.to_string().into_bytes()))
    }

    /// Begins with the key and, when claimed, finishes with `outcome`; whether the
    /// body ran, and how the work ended.
    async fn run(
        work: FakeWork,
        outcome: Result<u32, StoreError>,
    ) -> (Result<Answer<u32>, KeyedError<StoreError>>, bool, Option<Ended>) {
        let ended = work.ended.clone();
        let (uow, _) = work.into_uow();
        let (answer, ran) = match key().begin::<StoreError>(uow.as_ref()).await {
            Ok(Begun::Claimed(work)) => (work.finish(outcome).await, true),
            Ok(Begun::Replayed(reply)) => (Ok(Answer::Replayed(reply)), false),
            Err(refused) => (Err(refused), false),
        };
        (answer, ran, ended.get())
    }

    #[tokio::test]
    async fn a_replay_runs_nothing_and_returns_the_stored_reply() {
        let mut work = FakeWork::default();
        work.idempotency.expect_claim().times(1).return_once(|_| Ok(Claim::Replay(Reply(b"7".to_vec()))));
        // No expectation on `complete`: storing anything would panic.
        let (answer, ran, ended) = run(work, Ok(7)).await;
        assert_eq!(answer.unwrap(), Answer::Replayed(Reply(b"7".to_vec())));
        assert!(!ran, "the use case did not run");
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_reused_or_in_flight_key_runs_nothing_and_stores_nothing() {
        for (claim, refusal) in [(Claim::Reused, KeyRefused::Reused), (Claim::InFlight, KeyRefused::InFlight)] {
            let mut work = FakeWork::default();
            work.idempotency.expect_claim().times(1).return_once(move |_| Ok(claim));
            let (answer, ran, ended) = run(work, Ok(7)).await;
            assert!(matches!(answer, Err(KeyedError::Refused(r)) if r == refusal));
            assert!(!ran);
            assert_eq!(ended, Some(Ended::RolledBack));
        }
    }

    #[tokio::test]
    async fn a_first_run_stores_its_encoded_reply_in_the_same_transaction_and_answers_it() {
        let mut work = FakeWork::default();
        work.idempotency.expect_claim().times(1).return_once(|_| Ok(Claim::Claimed));
        work.idempotency
            .expect_complete()
            .withf(|k, reply| *k == id() && *reply == Reply(b"7".to_vec()))
            .times(1)
            .returning(|_, _| Ok(()));
        let (answer, ran, ended) = run(work, Ok(7)).await;
        assert_eq!(answer.unwrap(), Answer::Stored(Reply(b"7".to_vec())));
        assert!(ran);
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_refusal_of_the_use_case_stores_nothing_and_rolls_the_claim_back() {
        let mut work = FakeWork::default();
        work.idempotency.expect_claim().times(1).return_once(|_| Ok(Claim::Claimed));
        // No expectation on `complete`.
        let refused = Err(StoreError::Unexpected(anyhow::anyhow!("refused")));
        let (answer, ran, ended) = run(work, refused).await;
        assert!(matches!(answer, Err(KeyedError::Failed(_))));
        assert!(ran);
        assert_eq!(ended, Some(Ended::RolledBack));
    }
}
