use actix_web::{HttpResponse, get, web};
use domain::ProductId;
use domain::product::Product;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::points::PageQuery;
use crate::cursor::{self, CursorKind};
use crate::extract::page_limit;
use crate::problem::ApiError;
use crate::problem_docs::problems;
use crate::state::AppState;

/// The cursor of this module's list.
const CURSOR: CursorKind = CursorKind::new("products");

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductResponse {
    #[schema(example = 1)]
    pub product_id: i64,
    #[schema(example = "Keyboard")]
    pub name: String,
    #[schema(example = 89000)]
    pub price: i64,
    /// Units available now; units reserved by unpaid orders are not counted.
    #[schema(example = 12)]
    pub stock: i32,
}

impl From<Product> for ProductResponse {
    fn from(p: Product) -> Self {
        Self { product_id: p.id.get(), name: p.name.into_string(), price: p.price.krw(), stock: p.stock.get() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPageResponse {
    pub items: Vec<ProductResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

problems!(ListProblems: InvalidRequest, ServiceUnavailable);

/// List products by ascending id, one page at a time.
///
/// Keyset paging: following `nextCursor` from the first page visits every product that
/// existed when the walk began exactly once, in id order, even while products are added.
/// `stock` is exact at the moment of the request.
#[utoipa::path(
    tag = "products",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of products", body = ProductPageResponse), ListProblems)
)]
#[get("/api/v1/products")]
pub async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let after = match query.cursor.as_deref() {
        Some(c) => {
            Some(ProductId::new(cursor::decode(CURSOR, c)?).map_err(|e| ApiError::invalid_request(e.to_string()))?)
        }
        None => None,
    };
    let page = state.run(move |shop| async move { shop.catalog.list.execute(after, limit).await }).await?;
    Ok(HttpResponse::Ok().json(ProductPageResponse {
        items: page.products.into_iter().map(ProductResponse::from).collect(),
        next_cursor: page.next_after.map(|id| cursor::encode(CURSOR, id.get())),
    }))
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(list);
}
