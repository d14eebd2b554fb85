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
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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

/// The request's trace context without an exporter: the caller's continued with a
/// random span of ours, or a new trace.
fn continue_or_start(caller: Option<TraceParent>) -> Option<TraceParent> {
    let span = random::<8>();
    match caller {
        Some(given) => Some(given.child(span)),
        None => TraceParent::start(random::<16>(), span),
    }
}

/// The middleware: runs the rest of the request in the trace context its root span
/// decided ([`TracedRootSpan`], outside this one).
pub(crate) async fn trace_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let trace = req.extensions().get::<TraceParent>().copied();
    match trace {
        // `call` inside the scope: what the inner services do at once is in it too.
        Some(trace) => CURRENT.scope(trace, async move { next.call(req).await }).await,
        None => next.call(req).await,
    }
}

/// The request's root span, `HTTP request` as tracing-actix-web makes it, plus the
/// request's `trace_id`: every log line of the request is written inside it (the use
/// case's too, see `AppState::run`). It decides the request's trace context and leaves
/// it in the request for [`trace_context`].
///
/// When spans are exported (OTLP), the root span is the caller's span's child in the
/// caller's trace, and the context takes the exported span's ids, so that what the data
/// platform receives points at a span that exists. Otherwise the context is the caller's
/// continued with a random span id, or a new trace.
#[derive(Debug)]
pub(crate) struct TracedRootSpan;

impl RootSpanBuilder for TracedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let caller =
            request.headers().get("traceparent").and_then(|value| value.to_str().ok()).and_then(TraceParent::parse);
        let span = tracing_actix_web::root_span!(request, trace_id = tracing::field::Empty);
        if let Some(caller) = caller {
            // Without an exporter there is no OpenTelemetry span to attach it to.
            let _ = span.set_parent(Context::new().with_remote_span_context(remote(caller)));
        }
        let exported = span.context().span().span_context().clone();
        let trace = if exported.is_valid() {
            TraceParent::of(
                exported.trace_id().to_bytes(),
                exported.span_id().to_bytes(),
                exported.trace_flags().to_u8(),
            )
        } else {
            continue_or_start(caller)
        };
        if let Some(trace) = trace {
            span.record("trace_id", trace.trace_id());
            request.extensions_mut().insert(trace);
        }
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The caller's span, as OpenTelemetry's parent of the request's root span.
fn remote(caller: TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(caller.trace_id_bytes()),
        SpanId::from_bytes(caller.parent_id_bytes()),
        TraceFlags::new(caller.flags()),
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_with_a_span_of_ours() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ours = continue_or_start(TraceParent::parse(given)).unwrap();
        assert_eq!(ours.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ours.parent_id(), "00f067aa0ba902b7");
    }

    #[test]
    fn a_missing_or_invalid_traceparent_starts_a_new_trace_each_time() {
        let first = continue_or_start(None).unwrap();
        let second =
            continue_or_start(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).unwrap();
        assert_ne!(first.trace_id(), second.trace_id());
        assert_ne!(second.trace_id(), "0".repeat(32));
    }
}
