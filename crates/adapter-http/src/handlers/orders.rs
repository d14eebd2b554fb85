use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use application::usecases::orders::PlaceOrderRequest;
use application::usecases::orders::{CancelOrderError, GetOrderError, ListOrdersError, OrdersPage, PlaceOrderError};
use chrono::{DateTime, Utc};
use domain::coupon::CouponRefusal;
use domain::order::PlaceOrderRefusal;
use domain::order::{NotCancellable, Order, OrderItems, OrderStatus, RequestedLine};
use domain::product::Quantity;
use domain::{CouponId, OrderId, ProductId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::coupons::{UserQuery, user_from_query};
use crate::auth::Caller;
use crate::cursor::{self, CursorKind};
use crate::extract::{empty_as_none, id_from, page_limit, parse_id};
use crate::idempotency::{IdempotencyHeader, IdempotencyKeyParam};
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineRequest {
    #[schema(minimum = 1, example = 3)]
    pub product_id: i64,
    #[schema(minimum = 1, maximum = 2_147_483_647, example = 2)]
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrderBody {
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
    /// A coupon the user holds, or null.
    #[serde(default)]
    #[schema(minimum = 1, example = 7)]
    pub coupon_id: Option<i64>,
    /// 1..=100 lines, each product at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderLineRequest>,
}

impl PlaceOrderBody {
    fn try_into_domain(self) -> Result<PlaceOrderRequest, ApiError> {
        let user_id: UserId = id_from(self.user_id, "userId")?;
        let coupon_id: Option<CouponId> = self.coupon_id.map(|c| id_from(c, "couponId")).transpose()?;
        let lines = self
            .items
            .iter()
            .map(|line| {
                Ok(RequestedLine {
                    product_id: id_from::<ProductId>(line.product_id, "productId")?,
                    quantity: Quantity::new(line.quantity).map_err(|e| ApiError::invalid_request(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let items = OrderItems::new(lines).map_err(|e| ApiError::invalid_request(e.to_string()))?;
        Ok(PlaceOrderRequest { user_id, coupon_id, items })
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatusDto {
    NotPaid,
    Paid,
    Failed,
    Cancelled,
    Refunded,
}

impl From<OrderStatus> for OrderStatusDto {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::NotPaid => Self::NotPaid,
            OrderStatus::Paid => Self::Paid,
            OrderStatus::Failed => Self::Failed,
            OrderStatus::Cancelled => Self::Cancelled,
            OrderStatus::Refunded => Self::Refunded,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineResponse {
    pub product_id: i64,
    /// The product's name when ordered.
    pub name: String,
    /// The product's price when ordered.
    pub unit_price: i64,
    pub quantity: i32,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    pub order_id: i64,
    pub user_id: i64,
    #[schema(value_type = String, example = "NOT_PAID")]
    pub status: OrderStatusDto,
    pub coupon_id: Option<i64>,
    pub items: Vec<OrderLineResponse>,
    pub total_amount: i64,
    pub discount_amount: i64,
    pub payment_amount: i64,
    pub created_at: DateTime<Utc>,
    /// Unpaid at this instant, the order fails: its stock and coupon are given back.
    pub expires_at: DateTime<Utc>,
    /// When it was paid (also kept once it is refunded); null until then.
    pub paid_at: Option<DateTime<Utc>>,
    /// When its user cancelled it; null unless `CANCELLED`.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// When the shop refunded it; null unless `REFUNDED`.
    pub refunded_at: Option<DateTime<Utc>>,
}

impl From<Order> for OrderResponse {
    fn from(order: Order) -> Self {
        Self {
            order_id: order.id().get(),
            user_id: order.user_id().get(),
            status: order.status().into(),
            coupon_id: order.coupon_id().map(CouponId::get),
            items: order
                .lines()
                .iter()
                .map(|l| OrderLineResponse {
                    product_id: l.product_id.get(),
                    name: l.name.clone(),
                    unit_price: l.unit_price.krw(),
                    quantity: l.quantity.get(),
                    amount: l.amount.krw(),
                })
                .collect(),
            total_amount: order.total_amount().krw(),
            discount_amount: order.discount_amount().krw(),
            payment_amount: order.payment_amount().krw(),
            created_at: order.created_at(),
            expires_at: order.expires_at(),
            paid_at: order.paid_at(),
            cancelled_at: order.cancelled_at(),
            refunded_at: order.refunded_at(),
        }
    }
}

problems!(keyed_post PlaceProblems: Unauthenticated, Forbidden, InvalidRequest, UserNotFound, ProductNotFound, CouponNotOwned, OutOfStock, OrderAmountTooLarge, TooManyUnpaidOrders, CouponAlreadyUsed, CouponExpired, CouponNotApplicable);

/// Place an order: reserve the stock, apply and use the coupon.
///
/// The order is `NOT_PAID` until paid; unpaid at `expiresAt` it becomes `FAILED` and
/// its stock and coupon are given back. Stock never goes negative under any
/// concurrency.
#[utoipa::path(
    tag = "orders",
    security(("user_token" = [])),
    params(IdempotencyKeyParam),
    request_body = PlaceOrderBody,
    responses(
        (status = 201, description = "Placed", body = OrderResponse), PlaceProblems)
)]
#[post("/api/v1/orders")]
pub async fn place(
    caller: Caller,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    body: web::Json<PlaceOrderBody>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner().try_into_domain()?;
    caller.acting_for(request.user_id)?;
    let key = idempotency.scoped(&caller.scope());
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::CREATED,
            |o: &Order| OrderResponse::from(o.clone()),
            move |shop, key| async move { shop.orders.place.execute_keyed(request, key).await },
        )
        .await
}

problems!(GetOrderProblems: Unauthenticated, Forbidden, InvalidRequest, OrderNotFound, ServiceUnavailable);

/// Read one of a user's orders with its current status.
#[utoipa::path(
    tag = "orders",
    security(("user_token" = [])),
    params(("orderId" = i64, Path, minimum = 1, description = "Order id (positive)"), UserQuery),
    responses(
        (status = 200, description = "The order", body = OrderResponse), GetOrderProblems)
)]
#[get("/api/v1/orders/{orderId}")]
pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let order_id: OrderId = parse_id(&path, "orderId", ProblemCode::InvalidRequest)?;
    let user_id = caller.acting_for(user_from_query(&query)?)?;
    let order = state.run(move |shop| async move { shop.orders.get.execute(order_id, user_id).await }).await?;
    Ok(HttpResponse::Ok().json(OrderResponse::from(order)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelOrderBody {
    /// The order's user.
    #[schema(minimum = 1, example = 1)]
    pub user_id: i64,
}

problems!(keyed_post CancelProblems: Unauthenticated, Forbidden, InvalidRequest, OrderNotFound, OrderAlreadyPaid, OrderExpired, OrderCancelled);

/// Cancel one of the user's unpaid orders.
///
/// The order becomes `CANCELLED` and its stock and coupon are given back at once,
/// exactly as on expiry. Of a cancellation and a payment (or the expiry) of one order
/// racing, exactly one takes effect.
#[utoipa::path(
    tag = "orders",
    security(("user_token" = [])),
    params(("orderId" = i64, Path, minimum = 1, description = "Order id (positive)"), IdempotencyKeyParam),
    request_body = CancelOrderBody,
    responses((status = 200, description = "Cancelled", body = OrderResponse), CancelProblems)
)]
#[post("/api/v1/orders/{orderId}/cancel")]
pub async fn cancel(
    caller: Caller,
    idempotency: IdempotencyHeader,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CancelOrderBody>,
) -> Result<HttpResponse, ApiError> {
    let order_id: OrderId = parse_id(&path, "orderId", ProblemCode::InvalidRequest)?;
    let user_id = caller.acting_for(id_from(body.user_id, "userId")?)?;
    let key = idempotency.scoped(&caller.scope());
    state
        .keyed_post(
            state.deadlines.database,
            key,
            StatusCode::OK,
            |o: &Order| OrderResponse::from(o.clone()),
            move |shop, key| async move { shop.orders.cancel.execute_keyed(user_id, order_id, key).await },
        )
        .await
}

/// The cursor of a user's order list.
const CURSOR: CursorKind = CursorKind::new("orders");

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// The user (positive id).
    #[serde(rename = "userId")]
    #[param(rename = "userId", value_type = i64, required = true, minimum = 1)]
    pub user_id: Option<String>,
    /// Only the orders in this status (absent or empty: every status).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>, pattern = "^(NOT_PAID|PAID|FAILED|CANCELLED|REFUNDED)?$", example = "PAID")]
    pub status: Option<String>,
    /// Opaque cursor from a previous page's `nextCursor`; absent or empty for the first page.
    /// Only cursors this server issued for this list are accepted (which a schema cannot state).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 20, also when empty).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>, pattern = "^(100|[1-9][0-9]?)?$", example = "20")]
    pub limit: Option<String>,
}

fn order_status(raw: &str) -> Result<OrderStatus, ApiError> {
    match raw {
        "NOT_PAID" => Ok(OrderStatus::NotPaid),
        "PAID" => Ok(OrderStatus::Paid),
        "FAILED" => Ok(OrderStatus::Failed),
        "CANCELLED" => Ok(OrderStatus::Cancelled),
        "REFUNDED" => Ok(OrderStatus::Refunded),
        other => Err(ApiError::invalid_request(format!(
            "status must be NOT_PAID, PAID, FAILED, CANCELLED or REFUNDED, got {other:?}"
        ))),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrdersPageResponse {
    pub items: Vec<OrderResponse>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<OrdersPage> for OrdersPageResponse {
    fn from(page: OrdersPage) -> Self {
        Self {
            items: page.orders.into_iter().map(OrderResponse::from).collect(),
            next_cursor: page.next_before.map(|id| cursor::encode(CURSOR, id.get())),
        }
    }
}

problems!(ListOrdersProblems: Unauthenticated, Forbidden, InvalidRequest, UserNotFound, ServiceUnavailable);

/// List a user's orders, newest first.
///
/// Keyset paging on the order id (an order placed meanwhile does not shift the pages),
/// optionally only the orders in one status; each order as in `GET /api/v1/orders/{orderId}`.
#[utoipa::path(
    tag = "orders",
    security(("user_token" = [])),
    params(OrdersQuery),
    responses((status = 200, description = "One page of the user's orders", body = OrdersPageResponse), ListOrdersProblems)
)]
#[get("/api/v1/orders")]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<OrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw_user = query.user_id.as_deref().ok_or_else(|| ApiError::invalid_request("userId is required"))?;
    let user_id: UserId = parse_id(raw_user, "userId", ProblemCode::InvalidRequest)?;
    let status = query.status.as_deref().map(order_status).transpose()?;
    let limit = page_limit(query.limit.as_deref())?;
    let before = query.cursor.as_deref().map(|c| cursor::decode(CURSOR, c)).transpose()?;
    let before = before.map(OrderId::new).transpose().map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let user_id = caller.acting_for(user_id)?;
    let page =
        state.run(move |shop| async move { shop.orders.list.execute(user_id, status, before, limit).await }).await?;
    Ok(HttpResponse::Ok().json(OrdersPageResponse::from(page)))
}

impl From<ListOrdersError> for ApiError {
    fn from(error: ListOrdersError) -> Self {
        match error {
            ListOrdersError::UserNotFound(user) => Self::user_not_found(user),
            ListOrdersError::Store(e) => e.into(),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        match error {
            PlaceOrderError::UserNotFound(user) => Self::user_not_found(user),
            e @ PlaceOrderError::CouponNotOwned(_) => Self::new(ProblemCode::CouponNotOwned, e.to_string()),
            PlaceOrderError::Refused(refusal) => {
                let code = match refusal {
                    PlaceOrderRefusal::ProductNotFound(_) => ProblemCode::ProductNotFound,
                    PlaceOrderRefusal::OutOfStock(_) => ProblemCode::OutOfStock,
                    PlaceOrderRefusal::Coupon(CouponRefusal::AlreadyUsed(_)) => ProblemCode::CouponAlreadyUsed,
                    PlaceOrderRefusal::Coupon(CouponRefusal::OutsideValidity(_)) => ProblemCode::CouponExpired,
                    PlaceOrderRefusal::Coupon(CouponRefusal::BelowMinimum { .. }) => ProblemCode::CouponNotApplicable,
                    PlaceOrderRefusal::TotalOverflow => return Self::invalid_request("the order total is too large"),
                    PlaceOrderRefusal::AmountTooLarge(_) => ProblemCode::OrderAmountTooLarge,
                };
                Self::new(code, refusal.to_string())
            }
            PlaceOrderError::TooManyUnpaid(e) => Self::new(ProblemCode::TooManyUnpaidOrders, e.to_string()),
            PlaceOrderError::Store(e) => e.into(),
        }
    }
}

impl From<CancelOrderError> for ApiError {
    fn from(error: CancelOrderError) -> Self {
        match error {
            CancelOrderError::OrderNotFound(id) => Self::order_not_found(id),
            CancelOrderError::NotCancellable(refusal) => {
                let code = match refusal {
                    NotCancellable::AlreadyPaid(_) => ProblemCode::OrderAlreadyPaid,
                    NotCancellable::Expired(_) => ProblemCode::OrderExpired,
                    NotCancellable::AlreadyCancelled(_) => ProblemCode::OrderCancelled,
                };
                Self::new(code, refusal.to_string())
            }
            CancelOrderError::Store(e) => e.into(),
        }
    }
}

impl From<GetOrderError> for ApiError {
    fn from(error: GetOrderError) -> Self {
        match error {
            GetOrderError::OrderNotFound(id) => Self::order_not_found(id),
            GetOrderError::Store(e) => e.into(),
        }
    }
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(place).service(list).service(get).service(cancel);
}
