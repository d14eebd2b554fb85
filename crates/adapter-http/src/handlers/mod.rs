//! Request handlers, one module per capability; each module owns its DTOs.

pub mod admin;
pub mod best_products;
pub mod coupons;
pub mod health;
pub mod orders;
pub mod payments;
pub mod points;
pub mod products;
