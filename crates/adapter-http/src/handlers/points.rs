use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use application::usecases::points::BalanceView;
use application::usecases::points::{ChargePointsError, ReadPointsError};
use chrono::{DateTime, Utc};
use domain::UserId;
use domain::points::{ChargeAmount, InvalidChargeAmount, PointEntry, PointEntryKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Caller;
use crate::cursor::{self, CursorKind};
use crate::extract::{empty_as_none, page_limit, parse_id};
use crate::idempotency::{IdempotencyHeader, IdempotencyKeyParam};
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
use crate::state::AppState;

/// The cursor of this module's list.
const CURSOR: CursorKind = CursorKind::new("points");

/// A charge. `amount` is validated by hand so that every malformed amount — missing,
/// null, a string, a fraction, beyond 64 bits — answers `INVALID_AMOUNT`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChargeRequest {
    /// KRW to add: 1..=1,000,000.
    #[serde(default)]
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 1_000_000, example = 10000)]
    pub amount: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceResponse {
    #[schema(example = 1)]
    pub user_id: i64,
    #[schema(example = 15000)]
    pub balance: i64,
}

impl From<BalanceView> for BalanceResponse {
    fn from(view: BalanceView) -> Self {
        Self { user_id: view.user_id.get(), balance: view.balance.krw() }
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PointEntryType {
    Charge,
    Use,
    Refund,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointEntryResponse {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: PointEntryType,
    pub amount: i64,
    pub balance_after: i64,
    /// The order a `USE` paid for or a `REFUND` gave back; null for a `CHARGE`.
    pub order_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<PointEntry> for PointEntryResponse {
    fn from(entry: PointEntry) -> Self {
        Self {
            id: entry.id,
            kind: match entry.kind {
                PointEntryKind::Charge => PointEntryType::Charge,
                PointEntryKind::Use => PointEntryType::Use,
                PointEntryKind::Refund => PointEntryType::Refund,
            },
            amount: entry.amount.krw(),
            balance_after: entry.balance_after.krw(),
            order_id: entry.order_id.map(domain::OrderId::get),
            created_at: entry.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResponse {
    pub items: Vec<PointEntryResponse>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Opaque cursor from a previous page's `nextCursor`; absent or empty for the first page.
    /// Only cursors this server issued are accepted (which a schema cannot state).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 20, also when empty).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>, pattern = "^(100|[1-9][0-9]?)?$", example = "20")]
    pub limit: Option<String>,
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    parse_id(raw, "userId", ProblemCode::InvalidUserId)
}

fn charge_amount(body: &ChargeRequest) -> Result<ChargeAmount, ApiError> {
    let invalid = |detail: &str| ApiError::new(ProblemCode::InvalidAmount, detail);
    let raw = match &body.amount {
        None | Some(serde_json::Value::Null) => return Err(invalid("amount is required")),
        // An integer above i64::MAX but within 64 bits is still a (far too large) charge.
        Some(serde_json::Value::Number(n)) if n.is_u64() && n.as_i64().is_none() => i64::MAX,
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().ok_or_else(|| invalid("amount must be a whole number of KRW within 64 bits"))?
        }
        Some(_) => return Err(invalid("amount must be an integer")),
    };
    ChargeAmount::new(raw).map_err(|e| match e {
        InvalidChargeAmount::NotPositive(_) => invalid("amount must be at least 1"),
        InvalidChargeAmount::AboveLimit(_) => ApiError::new(ProblemCode::ChargeLimitExceeded, e.to_string()),
    })
}

problems!(keyed_post ChargeProblems: Unauthenticated, Forbidden, InvalidUserId, InvalidAmount, ChargeLimitExceeded, InvalidRequest, UserNotFound, BalanceLimitExceeded);

/// Charge a user's balance.
///
/// One charge adds 1..=1,000,000 KRW; the balance never exceeds 5,000,000 KRW. Each
/// charge writes one `CHARGE` ledger entry. Concurrent charges never lose an update.
#[utoipa::path(
    tag = "points",
    security(("user_token" = [])),
    params(("userId" = i64, Path, minimum = 1, description = "User id (positive)"), IdempotencyKeyParam),
    request_body = ChargeRequest,
    responses((status = 200, description = "Charged; the new balance", body = BalanceResponse), ChargeProblems)
)]
#[post("/api/v1/points/{userId}")]
pub async fn charge(
    caller: Caller,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Result<web::Json<ChargeRequest>, actix_web::Error>,
) -> actix_web::Result<HttpResponse> {
    // The user id is judged before the body, so a bad id is reported as such whatever
    // the body holds.
    let user_id = user_id(&path)?;
    let amount = charge_amount(&body?.into_inner())?;
    let user_id = caller.acting_for(user_id)?;
    let key = idempotency.scoped(&caller.scope());
    let charged = state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::OK,
            |v: &BalanceView| BalanceResponse::from(*v),
            move |shop, key| async move { shop.points.charge.execute_keyed(user_id, amount, key).await },
        )
        .await?;
    Ok(charged)
}

problems!(BalanceProblems: Unauthenticated, Forbidden, InvalidUserId, UserNotFound, ServiceUnavailable);

/// Read a user's balance.
#[utoipa::path(
    tag = "points",
    security(("user_token" = [])),
    params(("userId" = i64, Path, minimum = 1, description = "User id (positive)")),
    responses((status = 200, description = "The balance", body = BalanceResponse), BalanceProblems)
)]
#[get("/api/v1/points/{userId}")]
pub async fn balance(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.acting_for(user_id(&path)?)?;
    let view = state.run(move |shop| async move { shop.points.balance.execute(user_id).await }).await?;
    Ok(HttpResponse::Ok().json(BalanceResponse::from(view)))
}

problems!(HistoryProblems: Unauthenticated, Forbidden, InvalidUserId, InvalidRequest, UserNotFound, ServiceUnavailable);

/// Read a user's ledger, newest first.
#[utoipa::path(
    tag = "points",
    security(("user_token" = [])),
    params(("userId" = i64, Path, minimum = 1, description = "User id (positive)"), PageQuery),
    responses((status = 200, description = "One page of the ledger", body = HistoryResponse), HistoryProblems)
)]
#[get("/api/v1/points/{userId}/history")]
pub async fn history(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let user_id = user_id(&path)?;
    let limit = page_limit(query.limit.as_deref())?;
    let before = query.cursor.as_deref().map(|c| cursor::decode(CURSOR, c)).transpose()?;
    let user_id = caller.acting_for(user_id)?;
    let page = state.run(move |shop| async move { shop.points.history.execute(user_id, before, limit).await }).await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        items: page.entries.into_iter().map(PointEntryResponse::from).collect(),
        next_cursor: page.next_before.map(|id| cursor::encode(CURSOR, id)),
    }))
}

impl From<ChargePointsError> for ApiError {
    fn from(error: ChargePointsError) -> Self {
        match error {
            ChargePointsError::UserNotFound(user) => Self::user_not_found(user),
            ChargePointsError::BalanceLimitExceeded(e) => Self::new(ProblemCode::BalanceLimitExceeded, e.to_string()),
            ChargePointsError::Store(e) => e.into(),
        }
    }
}

impl From<ReadPointsError> for ApiError {
    fn from(error: ReadPointsError) -> Self {
        match error {
            ReadPointsError::UserNotFound(user) => Self::user_not_found(user),
            ReadPointsError::Store(e) => e.into(),
        }
    }
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(charge).service(balance).service(history);
}
