use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use application::usecases::best_products::RefreshError;
use application::usecases::payments::RefundOrderError;
use application::usecases::users::FindUserError;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use domain::coupon::{Coupon, DiscountPolicy, NewCoupon, ValidityWindow};
use domain::order::{NotRefundable, Order, RefundReason};
use domain::product::{NewProduct, Product, ProductName, Stock, validate_price};
use domain::user::{User, UserName};
use domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::best_products::BestProductsResponse;
use super::coupons::{CouponResponse, DiscountType};
use super::orders::OrderResponse;
use super::products::ProductResponse;
use crate::auth::{Admin, UserTokens};
use crate::extract::{empty_as_none, parse_id};
use crate::idempotency::{IdempotencyHeader, IdempotencyKeyParam};
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
use crate::state::AppState;

fn invalid(error: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(error.to_string())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// 1..=100 characters, not blank, no control characters.
    #[schema(example = "kim", min_length = 1, max_length = 100)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    pub user_id: i64,
    pub name: String,
    pub balance: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateProductRequest {
    /// 1..=200 characters, not blank, no control characters.
    #[schema(example = "Keyboard", min_length = 1, max_length = 200)]
    pub name: String,
    /// KRW, 0..=100,000,000.
    #[schema(minimum = 0, maximum = 100_000_000, example = 89000)]
    pub price: i64,
    #[schema(minimum = 0, maximum = 2_147_483_647, example = 12)]
    pub stock: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCouponRequest {
    /// 1..=200 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub discount_type: DiscountType,
    /// KRW off for `FIXED` (≥ 1); percent for `PERCENT` (1..=100).
    #[schema(minimum = 1, example = 3000)]
    pub discount_value: i64,
    #[serde(default)]
    #[schema(minimum = 0, example = 10000)]
    pub min_order_amount: Option<i64>,
    #[schema(minimum = 1, maximum = 2_147_483_647, example = 100)]
    pub total_quantity: i64,
    /// Within the years 1970..=9999.
    pub valid_from: DateTime<Utc>,
    /// Must be after `validFrom`; within the years 1970..=9999.
    pub valid_until: DateTime<Utc>,
}

impl CreateCouponRequest {
    fn try_into_domain(self) -> Result<NewCoupon, ApiError> {
        let discount = match self.discount_type {
            DiscountType::Fixed => DiscountPolicy::fixed(self.discount_value),
            DiscountType::Percent => DiscountPolicy::percent(self.discount_value),
        }
        .map_err(invalid)?;
        let validity =
            ValidityWindow::new(in_range(self.valid_from, "validFrom")?, in_range(self.valid_until, "validUntil")?)
                .map_err(invalid)?;
        NewCoupon::new(&self.name, discount, self.min_order_amount.unwrap_or(0), self.total_quantity, validity)
            .map_err(invalid)
    }
}

/// Years an admin may name: wide enough for any campaign, narrow enough for every store.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

fn in_range(at: DateTime<Utc>, field: &str) -> Result<DateTime<Utc>, ApiError> {
    if YEARS.contains(&at.year()) {
        Ok(at)
    } else {
        Err(ApiError::invalid_request(format!("{field} must be within the years 1970..=9999")))
    }
}

problems!(keyed_post CreateUserProblems: InvalidRequest, Unauthorized);

/// Create a user with an empty balance.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(IdempotencyKeyParam),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse), CreateUserProblems)
)]
#[post("/api/v1/admin/users")]
pub async fn create_user(
    _: Admin,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = UserName::new(&body.name).map_err(invalid)?;
    let key = idempotency.scoped(Admin::SCOPE);
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::CREATED,
            |u: &User| UserResponse::from(u),
            move |shop, key| async move { shop.users.create.execute_keyed(name, key).await },
        )
        .await
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self { user_id: user.id.get(), name: user.name.clone(), balance: user.balance.krw() }
    }
}

problems!(keyed_post CreateProductProblems: InvalidRequest, Unauthorized);

/// Add a product to the catalog.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(IdempotencyKeyParam),
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Created", body = ProductResponse), CreateProductProblems)
)]
#[post("/api/v1/admin/products")]
pub async fn create_product(
    _: Admin,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let product = NewProduct {
        name: ProductName::new(&body.name).map_err(invalid)?,
        price: validate_price(body.price).map_err(invalid)?,
        stock: Stock::new(body.stock).map_err(invalid)?,
    };
    let key = idempotency.scoped(Admin::SCOPE);
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::CREATED,
            |p: &Product| ProductResponse::from(p.clone()),
            move |shop, key| async move { shop.catalog.create.execute_keyed(product, key).await },
        )
        .await
}

problems!(keyed_post CreateCouponProblems: InvalidRequest, Unauthorized);

/// Create a coupon campaign.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(IdempotencyKeyParam),
    request_body = CreateCouponRequest,
    responses(
        (status = 201, description = "Created, all of its quantity remaining", body = CouponResponse), CreateCouponProblems)
)]
#[post("/api/v1/admin/coupons")]
pub async fn create_coupon(
    _: Admin,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    body: web::Json<CreateCouponRequest>,
) -> Result<HttpResponse, ApiError> {
    let coupon = body.into_inner().try_into_domain()?;
    let key = idempotency.scoped(Admin::SCOPE);
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::CREATED,
            |c: &Coupon| CouponResponse::from(c.clone()),
            move |shop, key| async move { shop.coupons.create.execute_keyed(coupon, key).await },
        )
        .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefundRequest {
    /// Why the shop refunds, for the back office (kept with the order, never sent).
    #[schema(max_length = 500, example = "parcel damaged in transit")]
    #[serde(default)]
    pub reason: Option<String>,
}

problems!(keyed_post RefundProblems: InvalidRequest, Unauthorized, OrderNotFound, OrderNotPaid, OrderAlreadyRefunded, BalanceLimitExceeded);

/// Refund a paid order.
///
/// In one transaction the order's `paymentAmount` goes back to the user's balance with
/// a `REFUND` ledger entry, its quantities go back to the products, and it becomes
/// `REFUNDED`; the coupon stays used. The data platform then receives `ORDER_REFUNDED`
/// (at least once, retried until it accepts; a platform that is down never blocks or
/// undoes a refund). Of two refunds of one order racing, exactly one succeeds.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(("orderId" = i64, Path, minimum = 1, description = "Order id (positive)"), IdempotencyKeyParam),
    request_body(content = Option<RefundRequest>, description = "Optional; `{}` or no body at all is fine"),
    responses((status = 200, description = "Refunded", body = OrderResponse), RefundProblems)
)]
#[post("/api/v1/admin/orders/{orderId}/refund")]
pub async fn refund_order(
    _: Admin,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let order_id: OrderId = parse_id(&path, "orderId", ProblemCode::InvalidRequest)?;
    // The body is optional: none at all means no reason.
    let request: RefundRequest = if body.is_empty() {
        RefundRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_request(format!("the body is not valid JSON: {e}")))?
    };
    let reason = request.reason.map(|r| RefundReason::new(&r)).transpose().map_err(invalid)?;
    let key = idempotency.scoped(Admin::SCOPE);
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::OK,
            |o: &Order| OrderResponse::from(o.clone()),
            move |shop, key| async move { shop.payments.refund.execute_keyed(order_id, reason, key).await },
        )
        .await
}

impl From<RefundOrderError> for ApiError {
    fn from(error: RefundOrderError) -> Self {
        match error {
            RefundOrderError::OrderNotFound(id) => {
                Self::new(ProblemCode::OrderNotFound, format!("order {id} does not exist"))
            }
            RefundOrderError::NotRefundable(refusal) => {
                let code = match refusal {
                    NotRefundable::NotPaid(_) => ProblemCode::OrderNotPaid,
                    NotRefundable::AlreadyRefunded(_) => ProblemCode::OrderAlreadyRefunded,
                };
                Self::new(code, refusal.to_string())
            }
            RefundOrderError::BalanceLimitExceeded(e) => Self::new(ProblemCode::BalanceLimitExceeded, e.to_string()),
            RefundOrderError::Store(e) => e.into(),
        }
    }
}

/// A user token issued by the back office.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// A JWT whose `sub` is the user id; send it as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
}

problems!(IssueTokenProblems: InvalidUserId, InvalidIdempotencyKey, Unauthorized, UserNotFound, TokenSigningDisabled, ServiceUnavailable);

/// Issue a bearer token for a user.
///
/// Valid for `AUTH_TOKEN_TTL_SECS` (default an hour). Only a service configured with
/// `AUTH_JWT_SECRET` can sign; one that only verifies an identity provider's tokens
/// answers 409 `TOKEN_SIGNING_DISABLED`.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(("userId" = i64, Path, minimum = 1, description = "User id (positive)"), IdempotencyKeyParam),
    responses((status = 201, description = "Issued", body = TokenResponse), IssueTokenProblems)
)]
#[post("/api/v1/admin/users/{userId}/tokens")]
pub async fn issue_token(
    _: Admin,
    // Validated like every POST's; a token is a credential and is never stored, so a
    // retry with the same key simply issues another one (issuing changes nothing).
    _idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user: UserId = parse_id(&path, "userId", ProblemCode::InvalidUserId)?;
    let Some(tokens) = state.credentials.user_tokens.clone().filter(UserTokens::can_issue) else {
        return Err(ApiError::new(
            ProblemCode::TokenSigningDisabled,
            "this service verifies tokens of an identity provider and cannot issue any",
        ));
    };
    let user = state.run(move |shop| async move { shop.users.find.execute(user).await }).await?;
    let issued = tokens.issue(user, Utc::now()).ok_or_else(|| ApiError::internal(&"signing a token failed"))?;
    Ok(HttpResponse::Created().json(TokenResponse {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefreshQuery {
    /// The window ends at 00:00 of this date in the service time zone (default, also
    /// when empty: today). A date after today is refused: its window has not ended.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>, pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$", example = "2026-11-27")]
    pub date: Option<String>,
}

problems!(RefreshProblems: InvalidRequest, InvalidIdempotencyKey, Unauthorized, ServiceUnavailable, OutcomeUnknown);

/// Recompute the best products now and store the snapshot.
#[utoipa::path(
    tag = "admin",
    security(("admin_token" = [])),
    params(RefreshQuery, IdempotencyKeyParam),
    responses(
        (status = 200, description = "The recomputed ranking of that window", body = BestProductsResponse), RefreshProblems)
)]
#[post("/api/v1/admin/best-products/refresh")]
pub async fn refresh_best_products(
    _: Admin,
    // Validated like every POST's; a recomputation stores the same snapshot however
    // often it runs, so a retry simply runs again.
    _idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    query: web::Query<RefreshQuery>,
) -> Result<HttpResponse, ApiError> {
    let date = query
        .date
        .as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d").ok().filter(|date| YEARS.contains(&date.year())).ok_or_else(|| {
                ApiError::invalid_request(format!("date must be YYYY-MM-DD within 1970..=9999, got {d:?}"))
            })
        })
        .transpose()?;
    let best = state.write(move |shop| async move { shop.best_products.refresh.execute(date).await }).await?;
    Ok(HttpResponse::Ok().json(BestProductsResponse::from(Some(&best))))
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            e @ RefreshError::NotEnded { .. } => Self::invalid_request(e.to_string()),
            RefreshError::Store(e) => e.into(),
        }
    }
}

impl From<FindUserError> for ApiError {
    fn from(error: FindUserError) -> Self {
        match error {
            FindUserError::UserNotFound(user) => Self::user_not_found(user),
            FindUserError::Store(e) => e.into(),
        }
    }
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(create_user)
        .service(issue_token)
        .service(create_product)
        .service(create_coupon)
        .service(refund_order)
        .service(refresh_best_products);
}
