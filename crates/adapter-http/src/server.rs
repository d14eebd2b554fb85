use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::extract::{json_config, path_config, problem_for_every_error, query_config};
use crate::idempotency;
use crate::metrics::{Metrics, track};
use crate::trace;

use crate::operations::{self, operations};
use crate::routing::{RouteTable, head_as_get, unmatched};
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

/// Starts serving on `listener`. The server does not watch signals itself: its owner
/// stops it through [`Server::handle`], and a graceful stop refuses new connections,
/// lets in-flight requests finish (up to `shutdown_timeout`), then resolves.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    metrics: Metrics,
    settings: HttpSettings,
) -> std::io::Result<Server> {
    let credentials = web::Data::new(state.credentials.clone());
    let state = web::Data::new(state);
    let metrics = web::Data::new(metrics);
    let document = operations::document();
    let route_table = web::Data::new(RouteTable::from_document(&document));
    let mut server = HttpServer::new(move || {
        App::new()
            .into_utoipa_app()
            .configure(operations)
            .into_app()
            .app_data(state.clone())
            .app_data(credentials.clone())
            .app_data(metrics.clone())
            .app_data(json_config())
            .app_data(query_config())
            .app_data(path_config())
            .app_data(route_table.clone())
            .service(web::redirect("/swagger-ui", "/swagger-ui/"))
            .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", document.clone()))
            .default_service(web::to(unmatched))
            .wrap(from_fn(head_as_get))
            .wrap(from_fn(idempotency::fingerprint))
            .wrap(problem_for_every_error())
            .wrap(from_fn(track))
            .wrap(from_fn(trace::trace_context))
            .wrap(TracingLogger::<trace::TracedRootSpan>::new())
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}
