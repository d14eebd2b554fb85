//! The inbound REST adapter: actix-web handlers and their DTOs, the OpenAPI document,
//! the admin token check, metrics, and the mapping of every error to RFC 9457
//! `application/problem+json` (see [`problem`]).
//!
//! Handlers turn raw input into domain values first (`try_into_domain`), call one use
//! case, and turn its result or error into a response. Nothing here decides a rule.

mod auth;
pub mod cursor;
mod extract;
mod handlers;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
mod operations;
pub mod problem;
pub mod problem_docs;
mod routing;
mod run;
mod server;
mod state;
mod trace;

pub use auth::{AdminToken, AuthConfigError, Credentials, IssuedToken, KeySource, MIN_ADMIN_TOKEN_CHARS, UserTokens};
pub use metrics::Metrics;
pub use operations::{document, openapi_json};
pub use server::{HttpSettings, serve};
pub use state::{AppState, Deadlines, Draining};
