use std::sync::Arc;

use application::Shop;

use crate::auth::AdminToken;
use crate::problem::ApiError;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shop: Arc<Shop>,
    /// `None`: the admin API answers 401 to everyone.
    pub admin_token: Option<AdminToken>,
    /// The service's main runtime, on which every use case runs (see `AppState::run`).
    pub runtime: tokio::runtime::Handle,
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
    pub(crate) async fn run<T, E, F, Fut>(&self, use_case: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<Shop>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        match self.runtime.spawn(use_case(self.shop.clone())).await {
            Ok(outcome) => outcome.map_err(Into::into),
            Err(failed) => Err(ApiError::internal(&failed)),
        }
    }
}
