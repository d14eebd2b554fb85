use async_trait::async_trait;

use super::error::StoreError;

/// A request's idempotency key, scoped to its caller, with the fingerprint of what the
/// request asked (method, path and body, hashed by the inbound adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is (`user:42`, `admin`): two callers' keys never collide.
    pub scope: String,
    /// The client's key, 1..=255 printable ASCII characters.
    pub key: String,
    pub fingerprint: Vec<u8>,
}

/// The reply stored under a key: the inbound adapter's encoding of a success, opaque
/// here. The adapter encodes it on the first run and sends it back as it is on a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply(pub Vec<u8>);

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this work's: run the request, then [`IdempotencyRepository::complete`].
    Claimed,
    /// A request with the same key and fingerprint already succeeded: its reply.
    Replay(Reply),
    /// The key was used for another request (another fingerprint).
    Reused,
    /// Another request with this key is still running and did not end in time.
    InFlight,
}

/// Idempotency keys, stored in the same transaction as the effect they guard.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyRepository: Send {
    /// Claims `key` for this work, or tells what an earlier request left under it.
    ///
    /// A key older than the configured lifetime counts as unused.
    ///
    /// # Errors
    /// MUST hold the claim until the work ends: a concurrent claim of the same key
    /// waits for it, then sees [`Claim::Replay`] if this work committed a reply, or
    /// claims the key itself if this work rolled back (so a failed request stores
    /// nothing and can be retried). A claim that waits too long is [`Claim::InFlight`].
    async fn claim(&mut self, key: &IdempotencyKey) -> Result<Claim, StoreError>;

    /// The reply a request with `key` and its fingerprint stored, read without claiming
    /// the key or waiting for it; `None` when there is none (no such key, another
    /// request's, one still running, or past the key's lifetime).
    async fn stored(&mut self, key: &IdempotencyKey) -> Result<Option<Reply>, StoreError>;

    /// Stores the reply of the request that claimed `key` in this work.
    async fn complete(&mut self, key: &IdempotencyKey, reply: &Reply) -> Result<(), StoreError>;

    /// Deletes up to `limit` keys past their lifetime; returns how many. Safe to run
    /// from several instances at once (rows another deleter holds are skipped).
    async fn delete_expired(&mut self, limit: u32) -> Result<u64, StoreError>;
}
