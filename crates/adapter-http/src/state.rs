//! What every handler can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use application::Shop;

use crate::auth::Credentials;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shop: Arc<Shop>,
    /// The admin token and the user tokens' keys that requests are checked against.
    pub credentials: Credentials,
    /// The service's main runtime, on which every use case runs (see `AppState::run`).
    pub runtime: tokio::runtime::Handle,
    pub deadlines: Deadlines,
    /// Set when the instance is about to stop: readiness answers 503 from then on.
    pub draining: Draining,
}

/// Whether the instance is draining: told to stop, it keeps serving while readiness
/// answers 503, so that a load balancer takes it out of rotation before it stops
/// accepting connections.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Starts draining (for good: an instance that drains is stopping).
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Client-side bounds on a use case, for a database that stops answering without
/// closing its connections (then no server-side limit fires). Past its deadline a use
/// case is abandoned: a connection with anything in flight is closed, which rolls back
/// what was not committed, and the client gets 503 — `OUTCOME_UNKNOWN` when a write's
/// statement or `COMMIT` was in flight, `SERVICE_UNAVAILABLE` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Any use case, the wait for a pooled connection included: one statement's limit
    /// and a margin.
    pub database: Duration,
    /// A payment: that, plus the longest wait on the data platform.
    pub payment: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self { database: Duration::from_secs(30), payment: Duration::from_secs(60) }
    }
}
