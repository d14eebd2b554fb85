//! Running a request's use case: on the service's main runtime, within its deadline;
//! and the one shape of a POST that takes an idempotency key.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use application::Shop;
use application::idempotency::{Answer, Key};
use application::ports::IdempotencyKey;
use application::scope;
use serde::Serialize;
use tracing::Instrument;

use crate::idempotency::{encode, respond};
use crate::problem::{ApiError, ProblemCode};
use crate::state::AppState;

/// Whether a use case changes anything: only then can its deadline leave an outcome in
/// doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Reads,
    Writes,
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
    /// The use case is bounded by [`Deadlines::database`](crate::state::Deadlines::database).
    /// It only reads: past its deadline the answer is 503 `SERVICE_UNAVAILABLE`.
    pub(crate) async fn run<T, E, F, Fut>(&self, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        self.run_within(self.deadlines.database, Effect::Reads, use_case).await
    }

    /// [`AppState::run`] for a use case that writes: past its deadline with a write in
    /// doubt, the answer is 503 `OUTCOME_UNKNOWN`.
    pub(crate) async fn write<T, E, F, Fut>(&self, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        self.run_within(self.deadlines.database, Effect::Writes, use_case).await
    }

    /// Runs `use_case` on the main runtime, bounded by `deadline`. Past it the use case
    /// is dropped where it waits (its database adapter closes a connection with anything
    /// in flight, which rolls back what was not committed) and the answer is 503:
    /// `OUTCOME_UNKNOWN` when a write of it may have been applied (its autocommitted
    /// statement or its `COMMIT` had been sent and not answered, see
    /// [`application::scope`]), `SERVICE_UNAVAILABLE` — nothing was changed — otherwise.
    async fn run_within<T, E, F, Fut>(&self, deadline: Duration, effect: Effect, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let bounded = tokio::time::timeout(deadline, use_case(self.shop.clone()));
        // The use case runs in the request's trace context and log span.
        let scoped = scope::run(crate::trace::current(), bounded).instrument(tracing::Span::current());
        match self.runtime.spawn(scoped).await {
            Ok((Ok(outcome), _)) => outcome.map_err(Into::into),
            Ok((Err(_), in_doubt)) if in_doubt && effect == Effect::Writes => {
                tracing::warn!(?deadline, "a request's write passed its deadline before its outcome was known");
                Err(ApiError::new(
                    ProblemCode::OutcomeUnknown,
                    "the database did not answer in time and the change may or may not have been applied; \
                     read the state, or retry with the same Idempotency-Key",
                ))
            }
            Ok((Err(_), _)) => {
                tracing::warn!(?deadline, "a request's database work passed its deadline; abandoned");
                Err(ApiError::new(ProblemCode::ServiceUnavailable, "the database did not answer in time; retry later"))
            }
            Err(failed) => Err(ApiError::internal(&failed)),
        }
    }

    /// A POST that may carry an idempotency key: runs `use_case` with the key (scoped to
    /// the caller) on the main runtime within `deadline` (see [`AppState::run_within`]; it writes),
    /// and answers `status` with `dto` of the value as JSON. With a key the body is
    /// encoded once, stored with the key and sent as stored; a replay sends the stored
    /// body again.
    pub(crate) async fn keyed_post<T, D, E, F, Fut>(
        &self,
        deadline: Duration,
        key: Option<IdempotencyKey>,
        status: StatusCode,
        dto: fn(&T) -> D,
        use_case: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: FnOnce(Arc<Shop>, Option<Key<T>>) -> Fut,
        Fut: Future<Output = Result<Answer<T>, E>> + Send + 'static,
        T: Send + 'static,
        D: Serialize + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let key = key.map(|key| Key::new(key, move |value: &T| encode(&dto(value))));
        let answer = self.run_within(deadline, Effect::Writes, move |shop| use_case(shop, key)).await?;
        Ok(respond(status, answer, dto))
    }
}
