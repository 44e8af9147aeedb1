//! Telemetry: OpenTelemetry spans, Prometheus metrics and the audit trail.

pub mod audit;
