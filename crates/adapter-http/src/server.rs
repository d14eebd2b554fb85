use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::extract::{json_config, path_config, problem_for_every_error, query_config};
use crate::handlers::{admin, best_products, coupons, health, orders, payments, points, products};
use crate::metrics::{Metrics, track};
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// How the HTTP server runs.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { workers: 0, shutdown_timeout: Duration::from_secs(30) }
    }
}

/// Every operation, one resource per path: a path that exists answers an unknown
/// method with 405, an unknown path falls through to 404.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/points/{userId}").get(points::balance).post(points::charge))
        .service(web::resource("/api/v1/points/{userId}/history").get(points::history))
        .service(web::resource("/api/v1/products").get(products::list))
        .service(web::resource("/api/v1/products/best").get(best_products::best))
        .service(web::resource("/api/v1/coupons").get(coupons::list_held))
        .service(web::resource("/api/v1/coupons/{couponId}/issue").post(coupons::issue))
        .service(web::resource("/api/v1/orders").post(orders::place))
        .service(web::resource("/api/v1/orders/{orderId}").get(orders::get))
        .service(web::resource("/api/v1/payments").post(payments::pay))
        .service(web::resource("/api/v1/admin/users").post(admin::create_user))
        .service(web::resource("/api/v1/admin/products").post(admin::create_product))
        .service(web::resource("/api/v1/admin/coupons").post(admin::create_coupon))
        .service(web::resource("/api/v1/admin/best-products/refresh").post(admin::refresh_best_products))
        .service(web::resource("/health/live").get(health::live))
        .service(web::resource("/health/ready").get(health::ready))
        .service(web::resource("/metrics").get(health::metrics));
}

/// Starts serving on `listener`. The server does not watch signals itself: its owner
/// stops it through [`Server::handle`], and a graceful stop refuses new connections,
/// lets in-flight requests finish (up to `shutdown_timeout`), then resolves.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    metrics: Metrics,
    settings: HttpSettings,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let metrics = web::Data::new(metrics);
    let openapi = ApiDoc::openapi();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .configure(routes)
            .service(web::redirect("/swagger-ui", "/swagger-ui/"))
            .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", openapi.clone()))
            .default_service(web::to(HttpResponse::NotFound))
            .wrap(problem_for_every_error())
            .wrap(from_fn(track))
            .wrap(TracingLogger::default())
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}
