//! RFC 9457 problem details: the one envelope of every error response, and the one
//! place where use-case errors become HTTP statuses and stable `code`s.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use application::StoreError;
use application::usecases::coupons::{HeldCouponsError, IssueCouponError};
use application::usecases::orders::{GetOrderError, PlaceOrderError};
use application::usecases::payments::PayOrderError;
use application::usecases::points::{ChargePointsError, ReadPointsError};
use domain::coupon::{CouponRefusal, IssueRefusal};
use domain::order::{NotPayable, PlaceOrderRefusal};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

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
}

/// An error on its way to becoming a problem response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, title, detail: detail.into() }
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "Invalid request", detail)
    }

    pub fn not_found(code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, title, detail)
    }

    pub fn conflict(code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, title, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized", "a valid admin bearer token is required")
    }

    /// A bug. The full error is logged here; the client learns nothing of it.
    pub fn internal(error: &dyn std::fmt::Debug) -> Self {
        tracing::error!(?error, "request failed unexpectedly");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error", "the request failed unexpectedly")
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: self.detail.clone(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).insert_header(ContentType(problem_mime())).json(self.problem())
    }
}

pub fn problem_mime() -> actix_web::mime::Mime {
    PROBLEM_JSON.parse().unwrap_or(actix_web::mime::APPLICATION_JSON)
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_UNAVAILABLE",
                    "Service unavailable",
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Unexpected(cause) => Self::internal(&cause),
        }
    }
}

fn user_not_found(user: impl std::fmt::Display) -> ApiError {
    ApiError::not_found("USER_NOT_FOUND", "User not found", format!("user {user} does not exist"))
}

impl From<ChargePointsError> for ApiError {
    fn from(error: ChargePointsError) -> Self {
        match error {
            ChargePointsError::UserNotFound(user) => user_not_found(user),
            ChargePointsError::BalanceLimitExceeded(e) => {
                Self::conflict("BALANCE_LIMIT_EXCEEDED", "Balance limit exceeded", e.to_string())
            }
            ChargePointsError::Store(e) => e.into(),
        }
    }
}

impl From<ReadPointsError> for ApiError {
    fn from(error: ReadPointsError) -> Self {
        match error {
            ReadPointsError::UserNotFound(user) => user_not_found(user),
            ReadPointsError::Store(e) => e.into(),
        }
    }
}

impl From<IssueCouponError> for ApiError {
    fn from(error: IssueCouponError) -> Self {
        match error {
            IssueCouponError::CouponNotFound(id) => {
                Self::not_found("COUPON_NOT_FOUND", "Coupon not found", format!("coupon {id} does not exist"))
            }
            IssueCouponError::UserNotFound(user) => user_not_found(user),
            e @ IssueCouponError::AlreadyIssued { .. } => {
                Self::conflict("COUPON_ALREADY_ISSUED", "Coupon already issued", e.to_string())
            }
            IssueCouponError::Refused(e @ IssueRefusal::SoldOut(_)) => {
                Self::conflict("COUPON_SOLD_OUT", "Coupon sold out", e.to_string())
            }
            IssueCouponError::Refused(e @ IssueRefusal::Expired(_)) => {
                Self::conflict("COUPON_EXPIRED", "Coupon expired", e.to_string())
            }
            IssueCouponError::Store(e) => e.into(),
        }
    }
}

impl From<HeldCouponsError> for ApiError {
    fn from(error: HeldCouponsError) -> Self {
        match error {
            HeldCouponsError::UserNotFound(user) => user_not_found(user),
            HeldCouponsError::Store(e) => e.into(),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::UserNotFound(user) => user_not_found(user),
            e @ PlaceOrderError::CouponNotOwned(_) => {
                Self::not_found("COUPON_NOT_OWNED", "Coupon not owned", e.to_string())
            }
            PlaceOrderError::Refused(refusal) => match refusal {
                PlaceOrderRefusal::ProductNotFound(_) => {
                    Self::not_found("PRODUCT_NOT_FOUND", "Product not found", refusal.to_string())
                }
                PlaceOrderRefusal::OutOfStock(e) => Self::conflict("OUT_OF_STOCK", "Out of stock", e.to_string()),
                PlaceOrderRefusal::Coupon(e @ CouponRefusal::AlreadyUsed(_)) => {
                    Self::conflict("COUPON_ALREADY_USED", "Coupon already used", e.to_string())
                }
                PlaceOrderRefusal::Coupon(e @ CouponRefusal::OutsideValidity(_)) => {
                    Self::conflict("COUPON_EXPIRED", "Coupon not valid now", e.to_string())
                }
                PlaceOrderRefusal::Coupon(e @ CouponRefusal::BelowMinimum { .. }) => {
                    Self::conflict("COUPON_NOT_APPLICABLE", "Coupon not applicable", e.to_string())
                }
                PlaceOrderRefusal::TotalOverflow => Self::invalid_request("the order total is too large"),
            },
            PlaceOrderError::Store(e) => e.into(),
        }
    }
}

fn order_not_found(order: impl std::fmt::Display) -> ApiError {
    ApiError::not_found("ORDER_NOT_FOUND", "Order not found", format!("order {order} does not exist for this user"))
}

impl From<GetOrderError> for ApiError {
    fn from(error: GetOrderError) -> Self {
        match error {
            GetOrderError::OrderNotFound(id) => order_not_found(id),
            GetOrderError::Store(e) => e.into(),
        }
    }
}

impl From<PayOrderError> for ApiError {
    fn from(error: PayOrderError) -> Self {
        match error {
            PayOrderError::UserNotFound(user) => user_not_found(user),
            PayOrderError::OrderNotFound(id) => order_not_found(id),
            PayOrderError::NotPayable(e @ NotPayable::AlreadyPaid(_)) => {
                Self::conflict("ORDER_ALREADY_PAID", "Order already paid", e.to_string())
            }
            PayOrderError::NotPayable(e @ NotPayable::Expired(_)) => {
                Self::conflict("ORDER_EXPIRED", "Order expired", e.to_string())
            }
            PayOrderError::InsufficientBalance(e) => {
                Self::conflict("INSUFFICIENT_BALANCE", "Insufficient balance", e.to_string())
            }
            PayOrderError::DataPlatform(e) => {
                tracing::warn!(error = %e, "payment rolled back: the data platform did not accept the order");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "DATA_PLATFORM_UNAVAILABLE",
                    "Data platform unavailable",
                    "the data platform did not accept the order; nothing was charged, retry later",
                )
            }
            PayOrderError::Store(e) => e.into(),
        }
    }
}
