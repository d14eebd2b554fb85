//! Running a request's use case: on the service's main runtime, within its deadline;
//! and the one shape of a POST that takes an idempotency key.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use application::Shop;
use application::idempotency::{Answer, Key};
use application::ports::IdempotencyKey;
use serde::Serialize;

use crate::idempotency::{encode, respond};
use crate::problem::{ApiError, ProblemCode};
use crate::state::AppState;

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

    /// A POST that may carry an idempotency key: runs `use_case` with the key (scoped to
    /// the caller) on the main runtime within `deadline` (see [`AppState::run_within`]),
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
        let answer = self.run_within(deadline, move |shop| use_case(shop, key)).await?;
        Ok(respond(status, answer, dto))
    }
}
