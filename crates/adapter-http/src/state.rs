use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use application::Shop;

use crate::auth::{AdminToken, UserTokens};
use crate::problem::{ApiError, ProblemCode};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shop: Arc<Shop>,
    /// `None`: the admin API answers 401 to everyone.
    pub admin_token: Option<AdminToken>,
    /// `None`: every user endpoint answers 401 (`serve` refuses to start so).
    pub user_tokens: Option<UserTokens>,
    /// The service's main runtime, on which every use case runs (see `AppState::run`).
    pub runtime: tokio::runtime::Handle,
    pub deadlines: Deadlines,
    /// Bounds the payments running at once.
    pub payments: Bulkhead,
}

/// The bulkhead in front of payments: at most `slots` run at once, so that payments
/// stuck on a slow data platform can never hold every database connection. A payment
/// beyond them waits for a slot at most `wait`, without holding anything, then is
/// refused with 503.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    refused: Arc<AtomicU64>,
}

impl Bulkhead {
    pub fn new(slots: usize, wait: Duration) -> Self {
        let capacity = slots.clamp(1, Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(capacity)), capacity, wait, refused: Arc::default() }
    }

    /// A slot, or `None` when none freed up within the wait.
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await.ok().and_then(Result::ok);
        if slot.is_none() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        slot
    }

    /// Payments refused so far for want of a slot.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }
}

impl Default for Bulkhead {
    fn default() -> Self {
        Self::new(Semaphore::MAX_PERMITS, Duration::ZERO)
    }
}

/// Client-side bounds on a use case, for a database that stops answering without
/// closing its connections (then no server-side limit fires). Past its deadline a use
/// case is abandoned: its connection is discarded, which rolls its transaction back,
/// and the client gets 503 `SERVICE_UNAVAILABLE`.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Any use case: the pool wait, one statement's limit and a margin.
    pub database: Duration,
    /// A payment: that, plus the longest wait on the data platform.
    pub payment: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self { database: Duration::from_secs(30), payment: Duration::from_secs(60) }
    }
}

impl AppState {
    /// Runs a use case on the service's main runtime instead of the actix worker that
    /// received the request.
    ///
    /// Each actix worker has a runtime of its own, and the pooled database connections
    /// and data-platform connections are shared by all workers: a connection opened on
    /// one worker would die with that worker's runtime — during a graceful stop an idle
    /// worker stops first, while other workers still finish their requests with those
    /// connections. On the main runtime every connection lives as long as the process.
    /// A side effect: a client that disconnects does not cancel a use case halfway; it
    /// runs to its commit or rollback.
    ///
    /// The use case is bounded by [`Deadlines::database`].
    pub(crate) async fn run<T, E, F, Fut>(&self, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        self.run_within(self.deadlines.database, use_case).await
    }

    /// [`AppState::run`] with another deadline.
    pub(crate) async fn run_within<T, E, F, Fut>(&self, deadline: Duration, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let mut task = self.runtime.spawn(use_case(self.shop.clone()));
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(Ok(outcome)) => outcome.map_err(Into::into),
            Ok(Err(failed)) => Err(ApiError::internal(&failed)),
            Err(_) => {
                task.abort();
                tracing::warn!(?deadline, "a request's database work passed its deadline; abandoned");
                Err(ApiError::new(ProblemCode::ServiceUnavailable, "the database did not answer in time; retry later"))
            }
        }
    }
}
