//! End-to-end tests: the real application on port 0, its own PostgreSQL database per
//! test, real HTTP requests. Concurrency tests fire many requests at once and check
//! the invariants in the database afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::many_single_char_names, clippy::too_many_lines)]

mod auth;
mod best_products;
mod catalog_and_coupons;
mod contract;
mod foundation;
mod helpers;
mod idempotency;
mod lifecycle;
mod orders;
mod payments;
mod points;
mod trace;
mod voids;
