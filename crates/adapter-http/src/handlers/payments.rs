use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use application::usecases::payments::Paid;
use application::usecases::payments::PayOrderError;
use chrono::{DateTime, Utc};
use domain::order::NotPayable;
use domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Caller;
use crate::extract::id_from;
use crate::idempotency::{IdempotencyHeader, IdempotencyKeyParam};
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayRequest {
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
    #[schema(minimum = 1, example = 11)]
    pub order_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResponse {
    pub payment_id: i64,
    pub order_id: i64,
    pub user_id: i64,
    /// What was deducted: the order's `paymentAmount`.
    pub amount: i64,
    /// The balance after the payment.
    pub balance: i64,
    #[schema(example = "PAID")]
    pub status: &'static str,
    pub paid_at: DateTime<Utc>,
}

problems!(keyed_post PayProblems: Unauthenticated, Forbidden, InvalidRequest, UserNotFound, OrderNotFound, OrderAlreadyPaid, OrderExpired, OrderCancelled, InsufficientBalance, DataPlatformUnavailable);

/// Pay an order from the user's balance.
///
/// All or nothing: the balance is deducted, a `USE` ledger entry written, the order
/// marked `PAID` and sent to the data platform; if the platform does not accept it,
/// everything is rolled back (503) and the order can be paid again until it expires.
/// Of concurrent payments of one order exactly one succeeds.
#[utoipa::path(
    tag = "orders",
    security(("user_token" = [])),
    params(IdempotencyKeyParam),
    request_body = PayRequest,
    responses(
        (status = 201, description = "Paid", body = PaymentResponse), PayProblems)
)]
#[post("/api/v1/payments")]
pub async fn pay(
    caller: Caller,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    body: web::Json<PayRequest>,
) -> Result<HttpResponse, ApiError> {
    let user_id: UserId = id_from(body.user_id, "userId")?;
    let order_id: OrderId = id_from(body.order_id, "orderId")?;
    let user_id = caller.acting_for(user_id)?;
    let key = idempotency.scoped(&caller.scope());
    state
        .keyed_post(
            state.deadlines.payment,
            key,
            StatusCode::CREATED,
            |p: &Paid| PaymentResponse::from(p),
            move |shop, key| async move { shop.payments.pay.execute_keyed(user_id, order_id, key).await },
        )
        .await
}

impl From<&Paid> for PaymentResponse {
    fn from(paid: &Paid) -> Self {
        Self {
            payment_id: paid.payment.id.get(),
            order_id: paid.payment.order_id.get(),
            user_id: paid.payment.user_id.get(),
            amount: paid.payment.amount.krw(),
            balance: paid.balance.krw(),
            status: "PAID",
            paid_at: paid.payment.paid_at,
        }
    }
}

impl From<PayOrderError> for ApiError {
    fn from(error: PayOrderError) -> Self {
        match error {
            PayOrderError::UserNotFound(user) => Self::user_not_found(user),
            PayOrderError::OrderNotFound(id) => Self::order_not_found(id),
            PayOrderError::NotPayable(e @ NotPayable::AlreadyPaid(_)) => {
                Self::new(ProblemCode::OrderAlreadyPaid, e.to_string())
            }
            PayOrderError::NotPayable(e @ NotPayable::Expired(_)) => {
                Self::new(ProblemCode::OrderExpired, e.to_string())
            }
            PayOrderError::NotPayable(e @ NotPayable::Cancelled(_)) => {
                Self::new(ProblemCode::OrderCancelled, e.to_string())
            }
            PayOrderError::InsufficientBalance(e) => Self::new(ProblemCode::InsufficientBalance, e.to_string()),
            PayOrderError::DataPlatform(e) => {
                tracing::warn!(error = %e, "payment rolled back: the data platform did not accept the order");
                Self::new(
                    ProblemCode::DataPlatformUnavailable,
                    "the data platform did not accept the order; nothing was charged, retry later",
                )
            }
            e @ PayOrderError::NoSlot => {
                Self::new(ProblemCode::DataPlatformUnavailable, format!("{e}; nothing was charged, retry later"))
            }
            PayOrderError::BreakerOpen(open) => {
                Self::new(ProblemCode::DataPlatformUnavailable, format!("{open}; nothing was charged, retry later"))
                    .retry_after(open.retry_after)
            }
            PayOrderError::Store(e) => e.into(),
        }
    }
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(pay);
}
