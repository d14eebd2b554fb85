use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::problems;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = HealthResponse)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

problems!(ReadyProblems: ServiceUnavailable);

/// Readiness: 200 when the database answers, 503 (`SERVICE_UNAVAILABLE`) otherwise.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Ready", body = HealthResponse), ReadyProblems))]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.run(move |shop| async move { shop.readiness.execute().await }).await?;
    Ok(HttpResponse::Ok().json(HealthResponse { status: "ok" }))
}

problems!(MetricsProblems: Internal);

/// Prometheus metrics: request counts and latency by route, method and status.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
        MetricsProblems,
    )
)]
#[get("/metrics")]
pub async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let text = metrics.render().map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
