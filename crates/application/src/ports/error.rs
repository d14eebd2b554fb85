/// The store failed for a reason that has nothing to do with the request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached now (no connection, pool exhausted, shutting down);
    /// the same request may succeed later.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug or a broken invariant. Logged in full, reported opaquely.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
