//! Telemetry: OpenTelemetry spans, Prometheus metrics and the audit trail.

pub mod audit;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod otel;

pub use health::{Readiness, router};
pub use metrics::Metrics;
