//! Where the service's logs and spans go: log lines to standard output (text or JSON,
//! no colour codes unless it is a terminal), and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, spans exported over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces`: each
//! request, each use case and each SQL statement. Unset, no exporter exists and the
//! statement spans are never even created.

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// What the exporter sees: everything the log filter lets through at `info`, plus the
/// statements (target `sql`, level TRACE), which logs never show.
const EXPORTED: &str = "info,sql=trace";

/// Installs the global subscriber. Returns the span exporter's provider, to be shut
/// down (flushing what is buffered) when the process stops.
///
/// # Errors
/// When the exporter cannot be built from the endpoint.
pub fn init(config: &Config, log_filter: EnvFilter) -> anyhow::Result<Option<SdkTracerProvider>> {
    let ansi = std::io::stdout().is_terminal();
    let (text, json) = match config.log_format {
        LogFormat::Text => (Some(tracing_subscriber::fmt::layer().with_ansi(ansi)), None),
        LogFormat::Json => (None, Some(tracing_subscriber::fmt::layer().json())),
    };
    let logs = text.map(Layer::boxed).or(json.map(Layer::boxed)).map(|layer| layer.with_filter(log_filter));
    let Some(endpoint) = &config.otlp_endpoint else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
        .build();
    let spans =
        tracing_opentelemetry::layer().with_tracer(provider.tracer("ecommerce")).with_filter(EnvFilter::new(EXPORTED));
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(Some(provider))
}
