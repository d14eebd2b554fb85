use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use application::usecases::coupons::Issued;
use application::usecases::coupons::{HeldCouponsError, IssueCouponError};
use chrono::{DateTime, Utc};
use domain::coupon::IssueRefusal;
use domain::coupon::{Coupon, DiscountPolicy, IssuedCoupon};
use domain::{CouponId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Caller;
use crate::extract::{id_from, parse_id};
use crate::idempotency::{IdempotencyHeader, IdempotencyKeyParam};
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscountType {
    /// `discountValue` KRW off, at most the order total.
    Fixed,
    /// `discountValue` percent (1..=100) off, rounded down.
    Percent,
}

pub fn discount_parts(policy: DiscountPolicy) -> (DiscountType, i64) {
    match policy {
        DiscountPolicy::Fixed(amount) => (DiscountType::Fixed, amount.krw()),
        DiscountPolicy::Percent(percent) => (DiscountType::Percent, i64::from(percent)),
    }
}

/// What a user holding a coupon sees of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldCouponTerms {
    pub coupon_id: i64,
    pub user_id: i64,
    pub name: String,
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub min_order_amount: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub used: bool,
    pub issued_at: DateTime<Utc>,
}

impl From<&IssuedCoupon> for HeldCouponTerms {
    fn from(held: &IssuedCoupon) -> Self {
        let (discount_type, discount_value) = discount_parts(held.coupon.discount());
        Self {
            coupon_id: held.coupon.id().get(),
            user_id: held.user_id.get(),
            name: held.coupon.name().to_owned(),
            discount_type,
            discount_value,
            min_order_amount: held.coupon.min_order_amount().krw(),
            valid_from: held.coupon.validity().from(),
            valid_until: held.coupon.validity().until(),
            used: held.used_at.is_some(),
            issued_at: held.issued_at,
        }
    }
}

/// A coupon a user holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldCouponResponse {
    #[serde(flatten)]
    pub terms: HeldCouponTerms,
    /// When an order used it; null while usable.
    pub used_at: Option<DateTime<Utc>>,
}

impl From<IssuedCoupon> for HeldCouponResponse {
    fn from(held: IssuedCoupon) -> Self {
        Self { terms: HeldCouponTerms::from(&held), used_at: held.used_at }
    }
}

/// A coupon just issued, with what remains of its campaign.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCouponResponse {
    #[serde(flatten)]
    pub terms: HeldCouponTerms,
    /// Units left after this one, by its place in the campaign's count-down: exact
    /// when issues do not overlap; during a rush every reply carries a different value
    /// and together they count down from `totalQuantity - 1` to 0.
    pub remaining_quantity: i32,
}

impl From<Issued> for IssuedCouponResponse {
    fn from(issued: Issued) -> Self {
        Self { terms: HeldCouponTerms::from(&issued.coupon), remaining_quantity: issued.remaining_quantity }
    }
}

/// A coupon campaign with all of its fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponResponse {
    pub coupon_id: i64,
    pub name: String,
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub min_order_amount: i64,
    pub total_quantity: i32,
    pub remaining_quantity: i32,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

impl From<Coupon> for CouponResponse {
    fn from(c: Coupon) -> Self {
        let (discount_type, discount_value) = discount_parts(c.discount());
        Self {
            coupon_id: c.id().get(),
            name: c.name().to_owned(),
            discount_type,
            discount_value,
            min_order_amount: c.min_order_amount().krw(),
            total_quantity: c.total_quantity(),
            remaining_quantity: c.remaining_quantity(),
            valid_from: c.validity().from(),
            valid_until: c.validity().until(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequest {
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldCouponsResponse {
    pub items: Vec<HeldCouponResponse>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// The user (positive id).
    #[serde(rename = "userId")]
    #[param(rename = "userId", value_type = i64, required = true, minimum = 1)]
    pub user_id: Option<String>,
}

pub fn user_from_query(query: &UserQuery) -> Result<UserId, ApiError> {
    let raw = query.user_id.as_deref().ok_or_else(|| ApiError::invalid_request("userId is required"))?;
    parse_id(raw, "userId", ProblemCode::InvalidRequest)
}

problems!(keyed_post IssueProblems: Unauthenticated, Forbidden, InvalidRequest, CouponNotFound, UserNotFound, CouponAlreadyIssued, CouponSoldOut, CouponExpired, CouponNotYetValid);

/// Issue a limited coupon to a user, first come first served.
///
/// Under any concurrency: never more than the campaign's quantity, and at most one per
/// user. `remainingQuantity` is what was left once this coupon was taken: exact when
/// issues do not overlap; while they do, each gets a different figure and together
/// they count down to 0 as the campaign sells out.
#[utoipa::path(
    tag = "coupons",
    security(("user_token" = [])),
    params(("couponId" = i64, Path, minimum = 1, description = "Coupon campaign id (positive)"), IdempotencyKeyParam),
    request_body = IssueRequest,
    responses(
        (status = 201, description = "Issued", body = IssuedCouponResponse), IssueProblems)
)]
#[post("/api/v1/coupons/{couponId}/issue")]
pub async fn issue(
    caller: Caller,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<IssueRequest>,
) -> Result<HttpResponse, ApiError> {
    let coupon_id: CouponId = parse_id(&path, "couponId", ProblemCode::InvalidRequest)?;
    let user_id: UserId = caller.acting_for(id_from(body.user_id, "userId")?)?;
    let key = idempotency.scoped(&caller.scope());
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::CREATED,
            |i: &Issued| IssuedCouponResponse::from(i.clone()),
            move |shop, key| async move { shop.coupons.issue.execute_keyed(coupon_id, user_id, key).await },
        )
        .await
}

problems!(HeldProblems: Unauthenticated, Forbidden, InvalidRequest, UserNotFound, ServiceUnavailable);

/// The coupons a user holds, used or not.
#[utoipa::path(
    tag = "coupons",
    security(("user_token" = [])),
    params(UserQuery),
    responses(
        (status = 200, description = "The user's coupons, oldest issue first", body = HeldCouponsResponse), HeldProblems)
)]
#[get("/api/v1/coupons")]
pub async fn list_held(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let user_id = caller.acting_for(user_from_query(&query)?)?;
    let coupons = state.run(move |shop| async move { shop.coupons.held.execute(user_id).await }).await?;
    Ok(HttpResponse::Ok()
        .json(HeldCouponsResponse { items: coupons.into_iter().map(HeldCouponResponse::from).collect() }))
}

impl From<IssueCouponError> for ApiError {
    fn from(error: IssueCouponError) -> Self {
        match error {
            IssueCouponError::CouponNotFound(id) => {
                Self::new(ProblemCode::CouponNotFound, format!("coupon {id} does not exist"))
            }
            IssueCouponError::UserNotFound(user) => Self::user_not_found(user),
            e @ IssueCouponError::AlreadyIssued { .. } => Self::new(ProblemCode::CouponAlreadyIssued, e.to_string()),
            IssueCouponError::Refused(e @ IssueRefusal::SoldOut(_)) => {
                Self::new(ProblemCode::CouponSoldOut, e.to_string())
            }
            IssueCouponError::Refused(e @ IssueRefusal::Expired(_)) => {
                Self::new(ProblemCode::CouponExpired, e.to_string())
            }
            IssueCouponError::Refused(e @ IssueRefusal::NotYetValid(_)) => {
                Self::new(ProblemCode::CouponNotYetValid, e.to_string())
            }
            IssueCouponError::Store(e) => e.into(),
        }
    }
}

impl From<HeldCouponsError> for ApiError {
    fn from(error: HeldCouponsError) -> Self {
        match error {
            HeldCouponsError::UserNotFound(user) => Self::user_not_found(user),
            HeldCouponsError::Store(e) => e.into(),
        }
    }
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(list_held).service(issue);
}
