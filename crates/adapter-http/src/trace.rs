//! W3C Trace Context on the way in: a request's `traceparent` is continued (a new span
//! of the same trace), or a trace is started when it has none or an invalid one. The
//! request's trace context is then
//!
//! - in the `HTTP request` span every log line of the request is written in
//!   (`trace_id`, see [`TracedRootSpan`]);
//! - in every problem response (`traceId`);
//! - the scope of the request's use case (`application::scope`), so that what it sends
//!   to the data platform carries it on.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use application::trace::TraceParent;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The trace context of the request being handled, if any.
pub(crate) fn current() -> Option<TraceParent> {
    CURRENT.try_with(|trace| *trace).ok()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // On the (theoretical) failure of the system's generator the ids stay zero and the
    // request goes without a trace context rather than failing.
    let _ = getrandom::getrandom(&mut bytes);
    bytes
}

/// The request's trace context: the caller's continued with a span of ours, or a new
/// trace.
fn continue_or_start(header: Option<&str>) -> Option<TraceParent> {
    let span = random::<8>();
    match header.and_then(TraceParent::parse) {
        Some(given) => Some(given.child(span)),
        None => TraceParent::start(random::<16>(), span),
    }
}

/// The middleware: runs the rest of the request in its trace context. It wraps the
/// request's root span ([`TracedRootSpan`]), which reads the context from here.
pub(crate) async fn trace_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let header = req.headers().get("traceparent").and_then(|value| value.to_str().ok());
    let Some(trace) = continue_or_start(header) else { return next.call(req).await };
    // For the root span, made when the next service is called.
    req.extensions_mut().insert(trace);
    // `call` inside the scope: what the inner services do at once is in it too.
    CURRENT.scope(trace, async move { next.call(req).await }).await
}

/// The request's root span, `HTTP request` as tracing-actix-web makes it, plus the
/// request's `trace_id`: every log line of the request is written inside it (the use
/// case's too, see `AppState::run`).
#[derive(Debug)]
pub(crate) struct TracedRootSpan;

impl RootSpanBuilder for TracedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let trace_id = request.extensions().get::<TraceParent>().map(TraceParent::trace_id).unwrap_or_default();
        tracing_actix_web::root_span!(request, trace_id = %trace_id)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_with_a_span_of_ours() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ours = continue_or_start(Some(given)).unwrap();
        assert_eq!(ours.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ours.parent_id(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_missing_or_invalid_traceparent_starts_a_new_trace_each_time() {
        let first = continue_or_start(None).unwrap();
        let second = continue_or_start(Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).unwrap();
        assert_ne!(first.trace_id(), second.trace_id());
        assert_ne!(second.trace_id(), "0".repeat(32));
    }
}
