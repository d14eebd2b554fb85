//! The PostgreSQL adapter: the schema, a pool of diesel-async connections, the unit of
//! work with every repository, the embedded migrations and the demo catalog.
//!
//! Errors: database and pool failures become [`application::StoreError`] here —
//! `Unavailable` when the database cannot be reached (the HTTP adapter answers 503),
//! `Unexpected` with context otherwise. Constraint violations that a rule of the
//! domain should have prevented are `Unexpected` too: they are the last line of
//! defence, not a way of deciding.

mod error;
#[cfg(test)]
mod fixtures;
mod flight;
mod functions;
mod migrations;
mod pool;
mod records;
mod repositories;
#[rustfmt::skip]
pub mod schema;
mod seed;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod work;

pub use migrations::{revert_all_migrations, run_migrations};
pub use pool::{PgPool, PoolSettings, connect, ping};
pub use seed::seed_demo_catalog;
pub use work::PgUnitOfWork;
