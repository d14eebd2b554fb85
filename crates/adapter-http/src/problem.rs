//! RFC 9457 problem details: the one envelope of every error response and the one list
//! of the stable `code`s a client can branch on.
//!
//! Every code is a [`ProblemCode`]; its status and title are stated next to it and
//! nowhere else, and an [`ApiError`] can only be built from one. Each handler module
//! turns its use cases' errors into `ApiError`s; the errors every use case shares (the
//! store's, a refused idempotency key) are turned here. Each operation lists the codes it
//! can answer with `problems!` (in `problem_docs`), which documents them on the operation
//! in the OpenAPI document (`problem_docs`).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{ContentType, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use application::StoreError;
use application::idempotency::{KeyRefused, KeyedError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares every problem code once, with its status and title.
macro_rules! problem_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($status:ident, $code:literal, $title:literal), )+) => {
        /// Every `code` the service answers with. Clients branch on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProblemCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ProblemCode {
            /// Every code, in declaration order.
            pub const ALL: &[Self] = &[$( Self::$variant, )+];

            /// The stable machine-readable code.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $code, )+ }
            }

            /// The HTTP status every response with this code carries.
            pub const fn status(self) -> StatusCode {
                match self { $( Self::$variant => StatusCode::$status, )+ }
            }

            /// A short human summary, the same for every response with this code.
            pub const fn title(self) -> &'static str {
                match self { $( Self::$variant => $title, )+ }
            }
        }
    };
}

problem_codes! {
    /// Malformed or out-of-range input without a more specific code.
    InvalidRequest => (BAD_REQUEST, "INVALID_REQUEST", "Invalid request"),
    InvalidUserId => (BAD_REQUEST, "INVALID_USER_ID", "Invalid user id"),
    InvalidAmount => (BAD_REQUEST, "INVALID_AMOUNT", "Invalid amount"),
    ChargeLimitExceeded => (BAD_REQUEST, "CHARGE_LIMIT_EXCEEDED", "Charge limit exceeded"),
    /// An `Idempotency-Key` that is not 1 to 255 printable ASCII characters.
    InvalidIdempotencyKey => (BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY", "Invalid idempotency key"),
    /// An admin endpoint without a valid admin token.
    Unauthorized => (UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized"),
    /// A user endpoint without a valid bearer token (missing, malformed, badly signed,
    /// expired or meant for another issuer or audience).
    Unauthenticated => (UNAUTHORIZED, "UNAUTHENTICATED", "Unauthenticated"),
    /// A valid token that does not act for the user the request names.
    Forbidden => (FORBIDDEN, "FORBIDDEN", "Forbidden"),
    /// No route at this path.
    NotFound => (NOT_FOUND, "NOT_FOUND", "Not found"),
    UserNotFound => (NOT_FOUND, "USER_NOT_FOUND", "User not found"),
    ProductNotFound => (NOT_FOUND, "PRODUCT_NOT_FOUND", "Product not found"),
    CouponNotFound => (NOT_FOUND, "COUPON_NOT_FOUND", "Coupon not found"),
    CouponNotOwned => (NOT_FOUND, "COUPON_NOT_OWNED", "Coupon not owned"),
    OrderNotFound => (NOT_FOUND, "ORDER_NOT_FOUND", "Order not found"),
    /// The path exists, the method does not.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Method not allowed"),
    BalanceLimitExceeded => (CONFLICT, "BALANCE_LIMIT_EXCEEDED", "Balance limit exceeded"),
    CouponAlreadyIssued => (CONFLICT, "COUPON_ALREADY_ISSUED", "Coupon already issued"),
    CouponSoldOut => (CONFLICT, "COUPON_SOLD_OUT", "Coupon sold out"),
    /// The coupon cannot be issued or used now: its validity window is over (or, for an
    /// order, not open).
    CouponExpired => (CONFLICT, "COUPON_EXPIRED", "Coupon not valid now"),
    /// The campaign has not started (`validFrom` is still ahead).
    CouponNotYetValid => (CONFLICT, "COUPON_NOT_YET_VALID", "Coupon not valid yet"),
    CouponAlreadyUsed => (CONFLICT, "COUPON_ALREADY_USED", "Coupon already used"),
    CouponNotApplicable => (CONFLICT, "COUPON_NOT_APPLICABLE", "Coupon not applicable"),
    OutOfStock => (CONFLICT, "OUT_OF_STOCK", "Out of stock"),
    /// The user already has `MAX_UNPAID_ORDERS_PER_USER` orders waiting for payment.
    TooManyUnpaidOrders => (CONFLICT, "TOO_MANY_UNPAID_ORDERS", "Too many unpaid orders"),
    /// The order's payment amount exceeds the largest balance: it could never be paid.
    OrderAmountTooLarge => (CONFLICT, "ORDER_AMOUNT_TOO_LARGE", "Order amount too large"),
    OrderAlreadyPaid => (CONFLICT, "ORDER_ALREADY_PAID", "Order already paid"),
    OrderExpired => (CONFLICT, "ORDER_EXPIRED", "Order expired"),
    /// The order was cancelled by its user: it can be neither paid nor cancelled again.
    OrderCancelled => (CONFLICT, "ORDER_CANCELLED", "Order cancelled"),
    /// Only a paid order can be refunded.
    OrderNotPaid => (CONFLICT, "ORDER_NOT_PAID", "Order not paid"),
    OrderAlreadyRefunded => (CONFLICT, "ORDER_ALREADY_REFUNDED", "Order already refunded"),
    InsufficientBalance => (CONFLICT, "INSUFFICIENT_BALANCE", "Insufficient balance"),
    /// The first request with this idempotency key is still running.
    IdempotencyKeyInFlight => (CONFLICT, "IDEMPOTENCY_KEY_IN_FLIGHT", "Idempotency key in flight"),
    /// This idempotency key was used for another request (method, path or body).
    IdempotencyKeyReused => (UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED", "Idempotency key reused"),
    /// This service only verifies tokens (a public key is configured): it cannot issue one.
    TokenSigningDisabled => (CONFLICT, "TOKEN_SIGNING_DISABLED", "Token signing disabled"),
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "Payload too large"),
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    /// A bug; the details are in the server's log only.
    Internal => (INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error"),
    /// The database does not answer; nothing was changed.
    ServiceUnavailable => (SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "Service unavailable"),
    /// The deadline passed while a write or its commit was in flight: it may or may not
    /// have been applied. Read the state, or retry with the same `Idempotency-Key`.
    OutcomeUnknown => (SERVICE_UNAVAILABLE, "OUTCOME_UNKNOWN", "Outcome unknown"),
    /// The data platform did not accept a paid order; the payment was rolled back.
    DataPlatformUnavailable => (SERVICE_UNAVAILABLE, "DATA_PLATFORM_UNAVAILABLE", "Data platform unavailable"),
}

impl ProblemCode {
    /// The header every response with this code carries besides the body, and what it
    /// says: `Retry-After` on every 503 and on an idempotency key in flight,
    /// `WWW-Authenticate` (RFC 6750) on a missing or invalid user token.
    pub const fn header(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::ServiceUnavailable
            | Self::OutcomeUnknown
            | Self::DataPlatformUnavailable
            | Self::IdempotencyKeyInFlight => Some(("Retry-After", "Seconds to wait before retrying.")),
            Self::Unauthenticated => Some((
                "WWW-Authenticate",
                "`Bearer realm=\"ecommerce\"`, with `error=\"invalid_token\"` and an `error_description` when a token was sent.",
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response body (RFC 9457). Clients branch on `code`; `detail` is for people.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Coupon sold out", "status": 409,
    "code": "COUPON_SOLD_OUT", "detail": "coupon 7 has no remaining quantity"}))]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    pub detail: String,
    /// The W3C trace id of the request (the caller's `traceparent` continued, or a new
    /// trace): quote it when reporting a problem.
    #[serde(rename = "traceId", skip_serializing_if = "Option::is_none")]
    #[schema(example = "4bf92f3577b34da6a3ce929d0e0e4736", pattern = "^[0-9a-f]{32}$")]
    pub trace_id: Option<String>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    code: ProblemCode,
    detail: String,
    /// For a 503: when to try again (`Retry-After`); one second when unset.
    retry_after: Option<Duration>,
    /// For a 401: the `WWW-Authenticate` challenge.
    challenge: Option<String>,
}

/// `Retry-After` of a 503 that names no better instant.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), retry_after: None, challenge: None }
    }

    /// Tells the client when a retry may succeed (sent as `Retry-After` on a 503).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::InvalidRequest, detail)
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750).
    #[must_use]
    pub fn challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// A bug. The full error is logged here; the client learns nothing of it.
    pub fn internal(error: &dyn std::fmt::Debug) -> Self {
        tracing::error!(?error, "request failed unexpectedly");
        Self::new(ProblemCode::Internal, "the request failed unexpectedly")
    }

    pub fn code(&self) -> ProblemCode {
        self.code
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: "about:blank",
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code.as_str(),
            detail: self.detail.clone(),
            trace_id: crate::trace::current().map(|trace| trace.trace_id()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.code.status());
        response.insert_header(ContentType(problem_mime()));
        if self.code.header().is_some_and(|(name, _)| name == "Retry-After") || self.retry_after.is_some() {
            // Whole seconds, rounded up: never tell a client to come back before it may.
            let after = self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.insert_header((RETRY_AFTER, seconds.max(1)));
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header((WWW_AUTHENTICATE, challenge.as_str()));
        }
        response.json(self.problem())
    }
}

pub fn problem_mime() -> actix_web::mime::Mime {
    PROBLEM_JSON.parse().unwrap_or(actix_web::mime::APPLICATION_JSON)
}

impl<E: Into<ApiError>> From<KeyedError<E>> for ApiError {
    fn from(error: KeyedError<E>) -> Self {
        match error {
            KeyedError::Failed(error) => error.into(),
            KeyedError::Refused(refused @ KeyRefused::Reused) => {
                Self::new(ProblemCode::IdempotencyKeyReused, refused.to_string())
            }
            KeyedError::Refused(refused @ KeyRefused::InFlight) => {
                Self::new(ProblemCode::IdempotencyKeyInFlight, refused.to_string()).retry_after(Duration::from_secs(1))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "database unavailable");
                Self::new(ProblemCode::ServiceUnavailable, "the database is unavailable; retry later")
            }
            StoreError::Unexpected(cause) => Self::internal(&cause),
        }
    }
}

impl ApiError {
    /// 404 `USER_NOT_FOUND`.
    pub fn user_not_found(user: impl std::fmt::Display) -> Self {
        Self::new(ProblemCode::UserNotFound, format!("user {user} does not exist"))
    }

    /// 404 `ORDER_NOT_FOUND`: the order does not exist, or not for this user.
    pub fn order_not_found(order: impl std::fmt::Display) -> Self {
        Self::new(ProblemCode::OrderNotFound, format!("order {order} does not exist for this user"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_screaming_snake_case_and_errors_only() {
        let mut seen = HashSet::new();
        for code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} is declared twice");
            assert!(code.as_str().chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{code}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }

    #[test]
    fn a_problem_carries_its_codes_status_and_title() {
        let error = ApiError::new(ProblemCode::CouponSoldOut, "coupon 7 has no remaining quantity");
        let problem = error.problem();
        assert_eq!((problem.status, problem.code, problem.title), (409, "COUPON_SOLD_OUT", "Coupon sold out"));
        assert_eq!(error.error_response().status(), StatusCode::CONFLICT);
    }

    #[test]
    fn every_503_says_when_to_retry() {
        let retry_after = |error: ApiError| error.error_response().headers().get(RETRY_AFTER).cloned();
        assert_eq!(retry_after(ApiError::new(ProblemCode::ServiceUnavailable, "down")).unwrap(), "1");
        let later =
            ApiError::new(ProblemCode::DataPlatformUnavailable, "open").retry_after(Duration::from_millis(4100));
        assert_eq!(retry_after(later).unwrap(), "5");
        assert_eq!(retry_after(ApiError::new(ProblemCode::OutOfStock, "none")), None);
    }
}
