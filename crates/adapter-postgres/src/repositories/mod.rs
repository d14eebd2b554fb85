//! Every repository port, implemented on [`crate::work::PgWork`] so that all of a
//! work's statements run on its one connection and in its one transaction.

mod coupons;
mod idempotency;
mod orders;
mod outbox;
mod payments;
mod products;
mod rankings;
mod users;
