//! Traces of runs, exported over OTLP (HTTP/protobuf) when the server has
//! an `otlp_endpoint`; without one no exporter is built and the spans below
//! are never created. One trace per run without storing anything: its
//! trace id is derived from the run id, so the node that queues a run and
//! the node that executes it put their spans in the same trace, under a
//! virtual parent that stands for the run (docs/telemetry.md).
//!
//! Spans name what happened to a run (ids, handler, trigger kind, status,
//! the host service called), never a payload, credential or token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor};
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The target of roost's trace spans: the trace layer sees only these, and
/// the log filter always lets them through (logging.rs), so `ROOST_LOG=warn`
/// does not empty the traces.
pub const TARGET: &str = "roost::telemetry";

/// The OTLP path of traces, added to an endpoint given as a base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Whether [`layer`] is in the process's subscriber.
static LAYERED: AtomicBool = AtomicBool::new(false);
/// Whether spans are exported now: when not, none are even created.
static ON: AtomicBool = AtomicBool::new(false);
/// The exporting processor of the server that exports, with its id (so an
/// older server stopping leaves a newer one's alone: tests run several).
static EXPORTING: RwLock<Option<(u64, Arc<BatchSpanProcessor>)>> = RwLock::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint is not an http(s) URL.
    #[error("otlp_endpoint must be an http:// or https:// URL, not `{0}`")]
    BadEndpoint(String),
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter failed: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The process's subscriber was not made by [`crate::logging::init`].
    #[error("traces need the log subscriber of `roost::logging::init`")]
    NoSubscriber,
}

/// The trace layer `logging::init` puts in the subscriber. It sees only
/// spans of [`TARGET`], which exist only while a server exports, so logs
/// are as before without an endpoint. Its provider's one processor is a
/// switch that a server with an endpoint plugs its exporter into.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    LAYERED.store(true, Ordering::Relaxed);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Switch)
        .build();
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("roost"))
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO))
}

/// Whether runs' spans are being exported.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The span `make` builds when traces are on; a disabled one otherwise, so
/// with tracing off nothing changes for the log subscriber.
pub fn span(make: impl FnOnce() -> Span) -> Span {
    if enabled() { make() } else { Span::none() }
}

/// The trace id of run `run_id`: the first 16 bytes of its SHA-256.
pub fn run_trace_id(run_id: &str) -> TraceId {
    let digest = Sha256::digest(run_id.as_bytes());
    TraceId::from_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// The remote parent of every span of run `run_id`: its derived trace id
/// and a span id (the next 8 bytes of the hash) that stands for the run.
pub fn run_context(run_id: &str) -> Context {
    let digest = Sha256::digest(run_id.as_bytes());
    let span_id = SpanId::from_bytes(digest[16..24].try_into().expect("8 bytes"));
    let parent = SpanContext::new(
        run_trace_id(run_id),
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(parent)
}

/// Puts a span not yet entered into the trace of run `run_id`, with the
/// run id as `roost.run_id`. A disabled span is left alone.
pub fn bind(span: &Span, run_id: &str) {
    if span.is_disabled() {
        return;
    }
    if let Err(err) = span.set_parent(run_context(run_id)) {
        tracing::debug!(error = %err, "a run's span could not join its trace");
    }
    tag(span, run_id);
}

/// Names run `run_id` on a span already in its trace (a child of a bound one).
pub fn tag(span: &Span, run_id: &str) {
    if !span.is_disabled() {
        span.set_attribute("roost.run_id", run_id.to_string());
    }
}

/// The span of a trigger queuing a run (`kind`: the trigger kind), made
/// before the run has an id: [`bind`] it once the run is queued.
pub fn trigger(kind: &str, script_id: &str) -> Span {
    span(
        || tracing::info_span!(target: TARGET, "roost.trigger", roost.trigger = kind, roost.script_id = script_id),
    )
}

/// A trigger's span for a run it has queued.
pub fn queued(run_id: &str, kind: &str, script_id: &str) {
    bind(&trigger(kind, script_id), run_id);
}

/// The exporter of this server's traces; stop it with [`Telemetry::shutdown`].
pub struct Telemetry {
    processor: Arc<BatchSpanProcessor>,
    id: u64,
}

impl Telemetry {
    /// Starts exporting to `endpoint` (a base URL such as
    /// `http://collector:4318`, or the full `…/v1/traces`). `node` names
    /// this node in the traces' resource.
    pub fn start(endpoint: &str, node: &str) -> Result<Self, TelemetryError> {
        if !LAYERED.load(Ordering::Relaxed) {
            return Err(TelemetryError::NoSubscriber);
        }
        let url = traces_url(endpoint)?;
        // reqwest 0.13 is built here on rustls without a provider (rmcp's
        // choice): the exporter's client needs one, ring as elsewhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()?;
        let resource = Resource::builder()
            .with_service_name("roost")
            .with_attribute(KeyValue::new("service.instance.id", node.to_string()))
            .build();
        // It exports from a thread of its own, off the runtime, in batches.
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(&resource);
        let processor = Arc::new(processor);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        *EXPORTING.write().unwrap_or_else(|p| p.into_inner()) = Some((id, processor.clone()));
        ON.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %crate::logging::redact_url(endpoint), "exporting runs' traces over OTLP");
        Ok(Self { processor, id })
    }

    /// Stops exporting and sends the spans still buffered. Blocks (the
    /// exporter's client is a blocking one): call it off the runtime.
    pub fn shutdown(self) {
        {
            let mut exporting = EXPORTING.write().unwrap_or_else(|p| p.into_inner());
            if exporting.as_ref().is_some_and(|(id, _)| *id == self.id) {
                ON.store(false, Ordering::Relaxed);
                *exporting = None;
            }
        }
        if let Err(err) = self.processor.shutdown() {
            tracing::warn!(error = %err, "flushing the last traces failed");
        }
    }
}

/// The processor of the layer's provider: hands spans to the exporting
/// server's batch processor, or drops them while none exports.
#[derive(Debug)]
struct Switch;

impl Switch {
    fn current() -> Option<Arc<BatchSpanProcessor>> {
        let exporting = EXPORTING.read().unwrap_or_else(|p| p.into_inner());
        exporting.as_ref().map(|(_, processor)| processor.clone())
    }
}

impl SpanProcessor for Switch {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        if let Some(processor) = Self::current() {
            processor.on_start(span, cx);
        }
    }

    fn on_end(&self, span: SpanData) {
        if let Some(processor) = Self::current() {
            processor.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Self::current().map_or(Ok(()), |processor| processor.force_flush())
    }

    /// The exporting processor is shut down by its [`Telemetry`].
    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// `endpoint` with the traces path, unless it has it already.
fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let endpoint = endpoint.trim();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(TelemetryError::BadEndpoint(endpoint.to_string()));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_has_one_trace_id_wherever_it_is_derived() {
        let a = run_context("run_abc");
        let b = run_context("run_abc");
        assert_eq!(a.span().span_context(), b.span().span_context());
        assert!(a.span().span_context().is_valid());
        assert!(a.span().span_context().is_remote());
        assert_ne!(run_trace_id("run_abc"), run_trace_id("run_abd"));
        let digest = Sha256::digest(b"run_abc");
        assert_eq!(run_trace_id("run_abc").to_bytes(), digest[..16]);
    }

    #[test]
    fn endpoints_get_the_traces_path_once() {
        assert_eq!(
            traces_url("http://c:4318").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert!(traces_url("c:4318").is_err());
    }
}
