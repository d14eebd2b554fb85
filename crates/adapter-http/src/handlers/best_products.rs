use actix_web::{HttpResponse, get, web};
use application::ports::BestProducts;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::ApiError;
use crate::problem_docs::problems;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestProductResponse {
    #[schema(example = 1)]
    pub rank: u8,
    pub product_id: i64,
    pub name: String,
    pub price: i64,
    /// Stock when this instance last read the snapshot, at most a second before.
    pub stock: i32,
    /// Units sold in paid orders inside the window.
    pub sold_quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestProductsResponse {
    /// At most five, best first; empty before the first computation.
    pub items: Vec<BestProductResponse>,
    /// Start of the window (inclusive); null before the first computation.
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive): a midnight in the service time zone.
    pub to: Option<DateTime<Utc>>,
    pub calculated_at: Option<DateTime<Utc>>,
}

impl From<Option<&BestProducts>> for BestProductsResponse {
    fn from(snapshot: Option<&BestProducts>) -> Self {
        let Some(snapshot) = snapshot else {
            return Self { items: vec![], from: None, to: None, calculated_at: None };
        };
        Self {
            items: snapshot
                .items
                .iter()
                .map(|item| BestProductResponse {
                    rank: item.ranked.rank,
                    product_id: item.product.id.get(),
                    name: item.product.name.as_str().to_owned(),
                    price: item.product.price.krw(),
                    stock: item.product.stock.get(),
                    sold_quantity: item.ranked.sold_quantity,
                })
                .collect(),
            from: Some(snapshot.window.from()),
            to: Some(snapshot.window.to()),
            calculated_at: Some(snapshot.calculated_at),
        }
    }
}

problems!(BestProblems: ServiceUnavailable);

/// The top five products sold in the last three days.
///
/// Served from the stored snapshot whose window ends latest among the windows that have
/// ended (recomputed daily at 00:00 in the service time zone); orders are never scanned per request, and each instance
/// serves a copy of it at most a second old, so name, price and stock may lag by up to
/// a second. Ties: more units sold first, then the lower product id.
#[utoipa::path(
    tag = "products",
    responses(
        (status = 200, description = "The latest ranking", body = BestProductsResponse), BestProblems)
)]
#[get("/api/v1/products/best")]
pub async fn best(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let snapshot = state.run(move |shop| async move { shop.best_products.latest.execute().await }).await?;
    Ok(HttpResponse::Ok().json(BestProductsResponse::from(snapshot.as_deref())))
}

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(best);
}
