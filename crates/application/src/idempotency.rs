//! Idempotent use cases: a request with an idempotency key runs at most once.
//!
//! The key is claimed and the reply stored **in the same transaction as the effect**
//! (`begin` and `finish_keyed`): a request that fails rolls back its claim with everything else, so
//! it stores nothing and can be retried with the same key; one that succeeds commits
//! its reply with its effect, so a retry replays that reply and runs nothing, even if
//! the state changed since. The reply is rendered by the inbound adapter (a function it
//! passes in) and is opaque here.

use crate::ports::{Claim, IdempotencyKey, StoreError, StoredReply, UnitOfWork, Work, finish};

/// A keyed request: its key, and how the inbound adapter renders a success as the
/// reply to store.
#[derive(Debug)]
pub struct KeyedRequest<T> {
    pub key: IdempotencyKey,
    pub render: fn(&T) -> StoredReply,
}

/// What a keyed use case did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyed<T> {
    /// It ran now.
    Fresh(T),
    /// An earlier request with the same key and fingerprint succeeded; nothing ran.
    Replayed(StoredReply),
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

/// The outcome of a use case run without a key, which can be neither replayed nor
/// refused by key.
pub(crate) fn unkeyed<T, E: From<StoreError>>(outcome: Result<Keyed<T>, KeyedError<E>>) -> Result<T, E> {
    match outcome {
        Ok(Keyed::Fresh(value)) => Ok(value),
        Err(KeyedError::Failed(error)) => Err(error),
        Ok(Keyed::Replayed(_)) | Err(KeyedError::Refused(_)) => {
            Err(StoreError::Unexpected(anyhow::anyhow!("a request without an idempotency key was answered by key"))
                .into())
        }
    }
}

/// The body of a keyed use case: `$body` runs with `$work` in one transaction guarded
/// by the key (see [`begin`] and [`finish_keyed`]); a replay or a refusal returns early.
macro_rules! keyed_transaction {
    ($uow:expr, $keyed:expr, |$work:ident| $body:expr) => {{
        let mut $work = match $crate::idempotency::begin($uow, $keyed).await {
            Ok(work) => work,
            Err(answer) => return answer,
        };
        let outcome = $body;
        $crate::idempotency::finish_keyed($work, $keyed, outcome).await
    }};
}
pub(crate) use keyed_transaction;

/// Begins a use case's transaction; with a key, claims it first. `Err` holds the
/// use case's whole answer when it must not run: a replay, a refused key, or a failure
/// to begin (the transaction has then ended).
pub(crate) async fn begin<T, E>(
    uow: &dyn UnitOfWork,
    keyed: Option<&KeyedRequest<T>>,
) -> Result<Box<dyn Work>, Result<Keyed<T>, KeyedError<E>>>
where
    E: From<StoreError>,
{
    let mut work = uow.begin().await.map_err(|e| Err(KeyedError::Failed(e.into())))?;
    let Some(keyed) = keyed else { return Ok(work) };
    let ended_early = match work.idempotency().claim(&keyed.key).await {
        Ok(Claim::Claimed) => return Ok(work),
        Ok(Claim::Replay(reply)) => Ok(Keyed::Replayed(reply)),
        Ok(Claim::Reused) => Err(KeyedError::Refused(KeyRefused::Reused)),
        Ok(Claim::InFlight) => Err(KeyedError::Refused(KeyRefused::InFlight)),
        Err(e) => Err(KeyedError::Failed(e.into())),
    };
    // Nothing ran: whatever the claim touched is discarded.
    if let Err(error) = work.rollback().await {
        tracing::warn!(%error, "rollback failed; the transaction is discarded with its connection");
    }
    Err(ended_early)
}

/// Ends a use case's transaction: with a key and a success, stores the rendered reply
/// first, so that it commits with the effect or not at all.
pub(crate) async fn finish_keyed<T, E>(
    mut work: Box<dyn Work>,
    keyed: Option<&KeyedRequest<T>>,
    mut outcome: Result<T, E>,
) -> Result<Keyed<T>, KeyedError<E>>
where
    E: From<StoreError>,
{
    if let (Ok(value), Some(keyed)) = (&outcome, keyed)
        && let Err(e) = work.idempotency().complete(&keyed.key, &(keyed.render)(value)).await
    {
        outcome = Err(e.into());
    }
    finish(work, outcome).await.map(Keyed::Fresh).map_err(KeyedError::Failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::usecases::test_support::{Ended, FakeWork};

    fn key() -> IdempotencyKey {
        IdempotencyKey { scope: "user:1".into(), key: "k-1".into(), fingerprint: vec![1, 2, 3] }
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // the shape every renderer has
    fn render(value: &u32) -> StoredReply {
        StoredReply { status: 201, body: value.to_string().into_bytes() }
    }

    async fn run(work: FakeWork, ran: &AtomicUsize) -> (Result<Keyed<u32>, KeyedError<StoreError>>, Option<Ended>) {
        let ended = work.ended.clone();
        let (uow, _) = work.into_uow();
        let keyed = KeyedRequest { key: key(), render };
        let outcome = match begin::<u32, StoreError>(uow.as_ref(), Some(&keyed)).await {
            Ok(work) => {
                ran.fetch_add(1, Ordering::SeqCst);
                finish_keyed(work, Some(&keyed), Ok(7)).await
            }
            Err(early) => early,
        };
        (outcome, ended.get())
    }

    #[tokio::test]
    async fn a_replay_runs_nothing_and_returns_the_stored_reply() {
        let mut work = FakeWork::default();
        let stored = StoredReply { status: 201, body: b"7".to_vec() };
        let replay = stored.clone();
        work.idempotency.expect_claim().times(1).return_once(move |_| Ok(Claim::Replay(replay)));
        // No expectation on `complete`: storing anything would panic.
        let ran = AtomicUsize::new(0);
        let (outcome, ended) = run(work, &ran).await;
        assert_eq!(outcome.unwrap(), Keyed::Replayed(stored));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the use case did not run");
        assert_eq!(ended, Some(Ended::RolledBack));
    }

    #[tokio::test]
    async fn a_reused_or_in_flight_key_runs_nothing_and_stores_nothing() {
        for (claim, refusal) in [(Claim::Reused, KeyRefused::Reused), (Claim::InFlight, KeyRefused::InFlight)] {
            let mut work = FakeWork::default();
            work.idempotency.expect_claim().times(1).return_once(move |_| Ok(claim));
            let ran = AtomicUsize::new(0);
            let (outcome, ended) = run(work, &ran).await;
            assert!(matches!(outcome, Err(KeyedError::Refused(r)) if r == refusal));
            assert_eq!(ran.load(Ordering::SeqCst), 0);
            assert_eq!(ended, Some(Ended::RolledBack));
        }
    }

    #[tokio::test]
    async fn a_first_run_stores_its_rendered_reply_in_the_same_transaction() {
        let mut work = FakeWork::default();
        work.idempotency.expect_claim().times(1).return_once(|_| Ok(Claim::Claimed));
        work.idempotency
            .expect_complete()
            .withf(|k, reply| *k == key() && *reply == StoredReply { status: 201, body: b"7".to_vec() })
            .times(1)
            .returning(|_, _| Ok(()));
        let ran = AtomicUsize::new(0);
        let (outcome, ended) = run(work, &ran).await;
        assert_eq!(outcome.unwrap(), Keyed::Fresh(7));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(ended, Some(Ended::Committed));
    }

    #[tokio::test]
    async fn a_refusal_of_the_use_case_stores_nothing_and_rolls_the_claim_back() {
        let mut work = FakeWork::default();
        work.idempotency.expect_claim().times(1).return_once(|_| Ok(Claim::Claimed));
        // No expectation on `complete`.
        let ended = work.ended.clone();
        let (uow, _) = work.into_uow();
        let keyed = KeyedRequest { key: key(), render };
        let work = begin::<u32, StoreError>(uow.as_ref(), Some(&keyed)).await.unwrap();
        let refused = Err(StoreError::Unexpected(anyhow::anyhow!("refused")));
        let outcome = finish_keyed(work, Some(&keyed), refused).await;
        assert!(matches!(outcome, Err(KeyedError::Failed(_))));
        assert_eq!(ended.get(), Some(Ended::RolledBack));
    }
}
