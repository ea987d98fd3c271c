//! Sending spans: a bounded queue the span's end pushes to without waiting, and a task on the
//! node's runtime that sends them in batches to the OTLP/HTTP endpoint through the workspace's
//! HTTP client.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::mpsc;

use super::{TRACING, Tracing};
use crate::names;

/// Spans waiting to be sent; a span that finds the queue full is dropped and counted
/// (`overture_trace_spans_dropped_total`), so a slow or absent collector costs no memory beyond this.
const QUEUE: usize = 16_384;

/// Spans sent in one request at most.
const BATCH: usize = 1_024;

/// How long the first span of a batch waits for others.
const BATCH_DELAY: Duration = Duration::from_millis(500);

/// How spans are encoded on the wire: OTLP/HTTP's two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `http/protobuf`, the OTLP default.
    #[default]
    Protobuf,
    /// `http/json`.
    Json,
}

impl Protocol {
    /// `http/protobuf` or `http/json`, as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "http/protobuf" => Some(Protocol::Protobuf),
            "http/json" => Some(Protocol::Json),
            _ => None,
        }
    }
}

/// Where and how this node sends its spans.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// The OTLP/HTTP endpoint's base URL (`http://collector:4318`); spans go to `/v1/traces`
    /// under it, unless it already ends so.
    pub endpoint: String,
    /// The encoding.
    pub protocol: Protocol,
    /// Of the traces no request named, the share recorded (0 to 1).
    pub sampling_ratio: f64,
    /// This node, as the resource's `service.instance.id`.
    pub instance: String,
    /// How long one export request may take.
    pub timeout: Duration,
}

/// Starts recording spans and sending them as `options` say. Call once, on the node's runtime;
/// headers for the collector (an API key) come from `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn install(options: TraceOptions, http: reqwest::Client) -> Result<(), String> {
    let endpoint = options.endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") { endpoint.to_owned() } else { format!("{endpoint}/v1/traces") };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("the OTLP endpoint {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("the OTLP endpoint {url:?} must be an http:// or https:// URL"));
    }
    let protocol = match options.protocol {
        Protocol::Protobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::Json => opentelemetry_otlp::Protocol::HttpJson,
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client { http, timeout: options.timeout })
        .with_endpoint(url)
        .with_protocol(protocol)
        .with_timeout(options.timeout)
        .build()
        .map_err(|e| format!("cannot make the OTLP exporter: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("overture")
        .with_attributes([
            opentelemetry::KeyValue::new("service.instance.id", options.instance),
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    exporter.set_resource(&resource);
    let (tx, rx) = mpsc::channel(QUEUE);
    let provider = SdkTracerProvider::builder().with_span_processor(Queue { tx }).with_resource(resource).build();
    let tracer = provider.tracer("overture");
    let tracing = Tracing { tracer, ratio: options.sampling_ratio.clamp(0.0, 1.0), remembered: Default::default() };
    TRACING.set(tracing).map_err(|_| "traces are set up already".to_owned())?;
    tokio::spawn(send(rx, exporter));
    Ok(())
}

/// Sends what the queue holds, a batch at a time, for as long as the node runs.
async fn send(mut rx: mpsc::Receiver<SpanData>, exporter: opentelemetry_otlp::SpanExporter) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH {
            tokio::time::sleep(BATCH_DELAY).await;
            // What came meanwhile, without waiting for more (`recv_many` would wait for one).
            while batch.len() < BATCH
                && let Ok(span) = rx.try_recv()
            {
                batch.push(span);
            }
        }
        let spans = batch.len() as u64;
        match exporter.export(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).await {
            Ok(()) => metrics::counter!(names::TRACE_SPANS_EXPORTED).increment(spans),
            Err(e) => {
                metrics::counter!(names::TRACE_EXPORT_FAILURES).increment(1);
                metrics::counter!(names::TRACE_SPANS_DROPPED, "reason" => "export_failed").increment(spans);
                tracing::warn!(error = %e, spans, "could not send spans to the OTLP endpoint");
            }
        }
    }
}

/// Hands each ended span to the sending task, never waiting.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            metrics::counter!(names::TRACE_SPANS_DROPPED, "reason" => "queue_full").increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The exporter's HTTP client: the workspace's reqwest (rustls with ring, the node's CA bundle).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    /// The whole exchange, answer read included: a collector that takes a request and never
    /// answers must not stall the sending for good.
    timeout: Duration,
}

/// Largest collector answer read; collectors answer with a small status message.
const MAX_ANSWER: usize = 64 << 10;

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs()).into()),
        }
    }
}

impl Client {
    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut response = self.http.execute(reqwest::Request::try_from(request)?).await?;
        let mut builder = Response::builder().status(response.status());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_ANSWER.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(builder.body(Bytes::from(body))?)
    }
}
