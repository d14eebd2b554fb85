//! The shop's business rules as plain data and plain functions.
//!
//! Nothing here performs I/O, awaits, or knows a framework: every rule — how much a
//! charge may add, what a coupon takes off a total, whether an order can still be paid
//! at an instant — is answerable in an ordinary `#[test]`. Values are validated when
//! they are constructed, so holding one means holding a valid one.

pub mod coupon;
pub mod ids;
pub mod money;
pub mod order;
pub mod points;
pub mod product;
pub mod ranking;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod user;

pub use ids::{CouponId, OrderId, PaymentId, ProductId, UserId};
pub use money::Money;
