//! The shop's use cases and the ports they need.
//!
//! A use case is one module: its request, its response, its error enum and `execute`.
//! It reads through ports, asks `domain` to decide, and writes through ports — every
//! use case that writes does so inside one transaction that it begins and ends itself
//! through the [`ports::UnitOfWork`] port, so a failed request leaves no trace.
//!
//! Errors: each use case returns its own `thiserror` enum of business outcomes plus a
//! `Store` variant carrying [`ports::StoreError`] (the database failed or is down) —
//! never a framework or driver type. Adapters turn those enums into their protocol.

pub mod idempotency;
mod opaque_debug;
mod paging;
pub mod ports;
pub mod resilience;
pub mod scope;
pub mod settings;
pub mod shop;
pub mod trace;
pub mod usecases;

pub use ports::Ports;
pub use ports::{Clock, StoreError, UnitOfWork, Work};
pub use settings::Settings;
pub use shop::Shop;
