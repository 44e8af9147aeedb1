//! OpenTelemetry traces over OTLP, configured only by the standard `OTEL_*`
//! environment variables, and the span conventions every module uses.
//!
//! Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and not disabled by
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`). The protocol
//! comes from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`:
//! `grpc` uses tonic, `http/protobuf` (the spec default) the blocking
//! reqwest client. Both work with the batch processor, which exports from
//! its own thread (the async reqwest client would panic there).
//!
//! Spans: `tool_span`, `agent_span`, `slack_span`, `apply_span` carry the
//! same fields (tool, caller, cluster, namespace, outcome) so a trace of one
//! incident reads the same everywhere. Arguments go through [`redact`]
//! before they are recorded.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing::Span;

/// Which OTLP transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("unsupported OTLP protocol {0:?} (use grpc or http/protobuf)")]
    Protocol(String),
    #[error("cannot build the OTLP span exporter")]
    Build(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// Read an env var through `get` (so tests need not mutate the process environment).
fn var(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether OTLP export is configured, and with which protocol.
pub fn configured_protocol(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<OtlpProtocol>, OtelError> {
    if var(get, "OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if var(get, "OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")) {
        return Ok(None);
    }
    if var(get, "OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && var(get, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        return Ok(None);
    }
    let protocol = var(get, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var(get, "OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        None | Some("http/protobuf") => Ok(Some(OtlpProtocol::HttpProtobuf)),
        Some("grpc") => Ok(Some(OtlpProtocol::Grpc)),
        Some(other) => Err(OtelError::Protocol(other.to_owned())),
    }
}

/// Build the tracer provider when `OTEL_*` asks for one. Must run inside a
/// Tokio runtime (tonic needs it). `Ok(None)` = export is not configured.
pub fn provider_from_env() -> Result<Option<SdkTracerProvider>, OtelError> {
    provider_from(&|name: &str| std::env::var(name).ok())
}

/// [`provider_from_env`] reading the variables through `get` (endpoint, protocol, service
/// name; headers and timeouts still come from the process environment).
pub fn provider_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<SdkTracerProvider>, OtelError> {
    let Some(protocol) = configured_protocol(get)? else {
        return Ok(None);
    };
    // The signal-specific endpoint is used as is; the generic one is a base URL (spec).
    let endpoint = match (var(get, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var(get, "OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(traces), _) => traces,
        (None, Some(base)) if protocol == OtlpProtocol::HttpProtobuf => {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        }
        (None, Some(base)) => base,
        (None, None) => return Ok(None),
    };
    let exporter = match protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(endpoint)
            .build()
            .map_err(OtelError::Build)?,
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .map_err(OtelError::Build)?,
    };
    let resource =
        Resource::builder().with_service_name(var(get, "OTEL_SERVICE_NAME").unwrap_or_else(|| "kubemedic".into()));
    let provider =
        SdkTracerProvider::builder().with_resource(resource.build()).with_batch_exporter(Gated(exporter)).build();
    Ok(Some(provider))
}

/// An exporter that passes every span through the redaction gate before
/// it leaves: name, attributes, events and status text. The sink for spans,
/// so a field recorded anywhere (an error chain, a message) cannot leak.
#[derive(Debug)]
pub struct Gated<E>(pub E);

fn gate_otel_value(v: &mut opentelemetry::Value) {
    use opentelemetry::{Array, StringValue, Value as V};
    let gate = |s: &mut StringValue| {
        if let std::borrow::Cow::Owned(r) = crate::redact::gate().text(s.as_str()) {
            *s = StringValue::from(r);
        }
    };
    match v {
        V::String(s) => gate(s),
        V::Array(Array::String(items)) => items.iter_mut().for_each(gate),
        _ => {}
    }
}

fn gate_cow(s: &mut std::borrow::Cow<'static, str>) {
    if let std::borrow::Cow::Owned(r) = crate::redact::gate().text(s) {
        *s = std::borrow::Cow::Owned(r);
    }
}

/// Redact one span in place.
pub fn gate_span(span: &mut opentelemetry_sdk::trace::SpanData) {
    gate_cow(&mut span.name);
    span.attributes.iter_mut().for_each(|kv| gate_otel_value(&mut kv.value));
    for event in &mut span.events.events {
        gate_cow(&mut event.name);
        event.attributes.iter_mut().for_each(|kv| gate_otel_value(&mut kv.value));
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status {
        gate_cow(description);
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter for Gated<E> {
    fn export(
        &self,
        mut batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        batch.iter_mut().for_each(gate_span);
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

/// The tracing layer that turns `tracing` spans into OpenTelemetry spans.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("kubemedic"))
}

/// Copy of `value` fit for a span attribute: [`crate::redact::redact_value`]
/// plus the whole `data`/`stringData` of anything that is a Secret.
pub fn redact(value: &Value) -> Value {
    fn hide_secret_data(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_secret = map.get("kind").and_then(Value::as_str) == Some("Secret");
                for (k, item) in map.iter_mut() {
                    if is_secret && (k == "data" || k == "stringData") {
                        *item = Value::String(crate::redact::REDACTED.into());
                    } else {
                        hide_secret_data(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(hide_secret_data),
            _ => {}
        }
    }
    let mut v = value.clone();
    hide_secret_data(&mut v);
    crate::redact::redact_value(&mut v);
    v
}

/// Span around one MCP tool call. Record the result with [`record_outcome`].
pub fn tool_span(tool: &str, caller: &str, cluster: &str, namespace: &str) -> Span {
    tracing::info_span!("tool_call", otel.name = %format!("tool {tool}"), tool, caller, cluster, namespace,
        outcome = tracing::field::Empty, otel.status_code = tracing::field::Empty)
}

/// Span around one agent run (a prompt workflow for one incident).
pub fn agent_span(prompt: &str, incident: &str, cluster: &str, namespace: &str) -> Span {
    tracing::info_span!("agent_run", otel.name = %format!("agent {prompt}"), prompt, incident, cluster, namespace,
        tool = tracing::field::Empty, caller = "agent", outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty)
}

/// Span around one Slack Web API call.
pub fn slack_span(method: &str, caller: &str) -> Span {
    tracing::info_span!("slack_call", otel.name = %format!("slack {method}"), method, caller,
        outcome = tracing::field::Empty, otel.status_code = tracing::field::Empty)
}

/// Span around applying one proposal.
pub fn apply_span(proposal: &str, caller: &str, cluster: &str, namespace: &str) -> Span {
    tracing::info_span!(
        "apply",
        otel.name = "apply proposal",
        proposal,
        caller,
        cluster,
        namespace,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty
    )
}

/// Record `outcome` (`ok`, `error`, `denied`, ...) on a span made here; non-`ok` marks the span as an error.
pub fn record_outcome(span: &Span, outcome: &str) {
    span.record("outcome", outcome);
    span.record("otel.status_code", if outcome == "ok" { "OK" } else { "ERROR" });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn protocol_from_env() {
        assert_eq!(configured_protocol(&env(&[])).unwrap(), None);
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
        assert_eq!(configured_protocol(&e).unwrap(), Some(OtlpProtocol::HttpProtobuf));
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(configured_protocol(&e).unwrap(), Some(OtlpProtocol::Grpc));
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(configured_protocol(&e).unwrap(), Some(OtlpProtocol::HttpProtobuf));
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert!(matches!(configured_protocol(&e), Err(OtelError::Protocol(p)) if p == "http/json"));
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(configured_protocol(&e).unwrap(), None);
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(configured_protocol(&e).unwrap(), None);
    }

    #[test]
    fn redacts_secret_keys_and_secret_data() {
        let v = json!({
            "name": "web", "apiToken": "t0k", "nested": [{"password": "p", "port": 80}],
            "manifest": {"kind": "Secret", "data": {"k": "djE="}, "metadata": {"name": "s"}}
        });
        let r = redact(&v);
        assert_eq!(r["name"], "web");
        assert_eq!(r["apiToken"], crate::redact::REDACTED);
        assert_eq!(r["nested"][0]["password"], crate::redact::REDACTED);
        assert_eq!(r["nested"][0]["port"], 80);
        assert_eq!(r["manifest"]["data"], crate::redact::REDACTED);
        assert_eq!(r["manifest"]["metadata"]["name"], "s");
    }

    #[test]
    fn spans_pass_the_gate_before_export() {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        let canary = "Sp4n-canary-value-91";
        crate::redact::gate().set_known(crate::redact::Scrubber::new([canary]));
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            format!("log line {canary}"),
            std::time::SystemTime::now(),
            vec![KeyValue::new("message", format!("probe said {canary}"))],
            0,
        ));
        let mut span = opentelemetry_sdk::trace::SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("tool {canary}").into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![
                KeyValue::new("outcome", format!("error: {canary}")),
                KeyValue::new("auth", "Bearer abcdefghijklmnop"),
                KeyValue::new("count", 3),
            ],
            dropped_attributes_count: 0,
            events,
            links: Default::default(),
            status: Status::error(format!("failed with {canary}")),
            instrumentation_scope: Default::default(),
        };
        gate_span(&mut span);
        let text = format!("{span:?}");
        assert!(!text.contains(canary), "{text}");
        assert!(!text.contains("abcdefghijklmnop"), "{text}");
        assert_eq!(span.attributes[2].value, opentelemetry::Value::I64(3));
    }
}
