//! The incident tracker: signals folded by fingerprint (cluster, namespace, owning
//! workload, reason) so that an alert storm or a crash loop is one incident.
//!
//! The incident itself (type, status, fingerprint, pure updates) lives in
//! [`crate::model::incident`]; it is re-exported here for the paths that name it.

pub mod tracker;

pub use crate::model::incident::{Incident, IncidentStatus, fingerprint};
pub use tracker::{IntakeSnapshot, IntakeStats, NamespaceLabels, Outcome, Tracker};
