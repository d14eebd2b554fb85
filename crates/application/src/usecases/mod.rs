//! The use cases, one module per capability: each holds its requests, responses,
//! error enums and use case structs with their `execute`. [`crate::Shop`] builds them.

pub mod best_products;
pub mod catalog;
pub mod coupons;
pub mod health;
pub mod idempotency_keys;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod points;
pub mod users;

#[cfg(test)]
pub(crate) mod test_support;
