use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::metrics::Metrics;
use crate::problem::{ApiError, ProblemCode};
use crate::problem_docs::problems;
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

/// What readiness reports of the data platform: its state never makes the service
/// unready, since a platform outage affects payments only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPlatformHealth {
    /// The circuit breaker: `closed` (sends go through), `open` (payments refused until
    /// the cooldown ends) or `half_open` (one trial payment decides).
    #[schema(example = "closed")]
    pub breaker: &'static str,
    /// Payments admitted and not yet finished (bounded by the bulkhead).
    pub payments_in_flight: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessResponse {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub data_platform: DataPlatformHealth,
}

/// Readiness: 200 when the database answers, 503 (`SERVICE_UNAVAILABLE`) otherwise —
/// and from the moment the instance is told to stop (SIGTERM), while it drains.
///
/// Answers within a second whatever the load: the ping has a connection of its own,
/// so it never queues behind requests, and is bounded in time.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Ready", body = ReadinessResponse), ReadyProblems))]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_on() {
        return Err(ApiError::new(
            ProblemCode::ServiceUnavailable,
            "this instance is stopping: it finishes what it has and takes no more work",
        ));
    }
    let readiness = state.run(move |shop| async move { shop.health.readiness.execute().await }).await?;
    Ok(HttpResponse::Ok().json(ReadinessResponse {
        status: "ready",
        data_platform: DataPlatformHealth {
            breaker: readiness.data_platform.as_str(),
            payments_in_flight: readiness.payments_in_flight,
        },
    }))
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

/// Registers this module's operations; the server and the OpenAPI document take them from here.
pub(crate) fn operations(cfg: &mut ServiceConfig) {
    cfg.service(live).service(ready).service(metrics);
}
