//! Outbound adapter: tells the external data platform about every paid order
//! (`ORDER_PAID`), and voids a payment it may have recorded that was rolled back
//! (`ORDER_PAYMENT_VOIDED`).
//!
//! It implements the [`application::ports::DataPlatform`] port twice:
//!
//! - [`HttpDataPlatform`] — the real client. It POSTs each [`PaidOrderEvent`] as JSON to
//!   a configured URL, with an `Idempotency-Key: order-{orderId}` header so that the
//!   platform can drop a second delivery, and gives up after a configured timeout that
//!   bounds the whole request (connect included). Any 2xx answer is an acknowledgement;
//!   any other status, a connection failure or a timeout is a [`DataPlatformError`],
//!   which says whether the platform may still have recorded the event (a timeout, a
//!   connection lost after the request was written) or certainly did not.
//! - [`LoggingDataPlatform`] — the stand-in used when no URL is configured. It only logs
//!   the event and always succeeds, so the shop runs without a platform to talk to.
//!
//! Another transport (a message queue, an outbox table, …) is a third type implementing
//! the same port, in this crate or a new one: `application` depends on the trait only
//! and does not change. Choosing the implementation is the composition root's job.
//!
//! [`PaidOrderEvent`]: application::ports::PaidOrderEvent
//! [`DataPlatformError`]: application::ports::DataPlatformError

mod http;
mod logging;

pub use http::{HttpDataPlatform, parse_url};
pub use logging::LoggingDataPlatform;
/// The URL type [`parse_url`] returns and [`HttpDataPlatform::with_url`] takes.
pub use reqwest::Url;
