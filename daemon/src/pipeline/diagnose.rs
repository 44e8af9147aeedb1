//! One diagnosis attempt: run the incident's workflow, store the outcome on the incident,
//! hand the proposals to approvals.
//!
//! The incident is written while the tracker may be writing it too (folding signals,
//! resolving it), so every write is a [`Progress`] applied to the latest stored value with
//! compare-and-set: the tracker's counts and resolution and the agent's summary all survive.

use tracing::Instrument as _;

use super::Pipeline;
use crate::agent::{self, AgentError, Diagnosis, Request};
use crate::model::error::error_chain;
pub use crate::model::incident::Progress;
use crate::model::incident::{Incident, IncidentStatus};
use crate::store::{Store, StoreError, modify_incident};
use crate::telemetry::audit::{AuditKind, AuditRecord};

/// How one diagnosis attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The cluster could not be read; worth another attempt (the reason).
    Retry(String),
}

/// Whether a run that ended like this should be tried again before the incident is closed:
/// reads of the cluster failed (apiserver restarting, network) and nothing could be
/// concluded. Decided from the error's kind and the diagnosis' typed gaps, never its text.
pub fn retry_reason(result: &Result<Diagnosis, AgentError>) -> Option<String> {
    match result {
        Err(err) if err.is_transient() => Some(error_chain(err)),
        Err(_) => None,
        Ok(d) if d.proposals.is_empty() && d.advice.is_empty() => {
            d.gaps.iter().find(|g| g.may_clear()).map(|gap| format!("not gathered: {gap}"))
        }
        Ok(_) => None,
    }
}

/// Write `progress` onto the stored incident (compare-and-set, re-read on conflict). An
/// incident the tracker could not store is created from `snapshot`.
pub async fn record(store: &dyn Store, snapshot: &Incident, progress: &Progress) -> Result<Incident, StoreError> {
    loop {
        if let Some(stored) = modify_incident(store, &snapshot.id, |i| progress.apply(i)).await? {
            return Ok(stored);
        }
        let mut fresh = snapshot.clone();
        progress.apply(&mut fresh);
        match store.create_incident(&fresh).await {
            Ok(_) => return Ok(fresh),
            // Someone stored it meanwhile: merge into theirs.
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Publish an incident's new status on the bus (`kubemedic.incident.<status>`): its id,
/// status, object and summary, not the whole diagnosis.
async fn announce(bus: Option<&crate::bus::Bus>, i: &Incident) {
    let Some(bus) = bus else { return };
    let status = serde_json::to_value(i.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let event = serde_json::json!({"id": i.id, "incident_id": i.id, "state": status, "workload": i.workload,
        "reason": i.reason, "summary": i.summary, "proposals": i.proposals});
    if let Err(err) = bus.publish(&format!("incident.{status}"), &event).await {
        tracing::warn!(incident = %i.id, error = %error_chain(&err), "cannot publish the incident's status");
    }
}

/// How one attempt ended, for `kubemedic_diagnosis_duration_seconds{outcome}` (a fixed set).
pub fn outcome_label(result: &Result<Diagnosis, AgentError>, retrying: bool) -> &'static str {
    match result {
        _ if retrying => "retry",
        Err(_) => "failed",
        Ok(d) if !d.proposals.is_empty() => "proposal",
        Ok(d) if !d.advice.is_empty() => "advice",
        Ok(_) => "no_finding",
    }
}

/// Run the incident's workflow, store the outcome, hand proposals to approvals.
/// Unless `last_try`, a run that could not read the cluster leaves the incident open and
/// asks for another attempt.
pub async fn diagnose_incident(pipeline: &Pipeline, incident: &Incident, last_try: bool) -> Outcome {
    let span = crate::telemetry::otel::agent_span(
        &incident.prompt,
        &incident.id,
        &incident.cluster,
        &incident.workload.namespace,
    );
    let started = std::time::Instant::now();
    let (outcome, label) = run(pipeline, incident, last_try).instrument(span).await;
    pipeline.metrics.diagnosis_finished(label, started.elapsed().as_secs_f64());
    outcome
}

async fn run(pipeline: &Pipeline, incident: &Incident, last_try: bool) -> (Outcome, &'static str) {
    let store = pipeline.store.as_ref();
    let bus = pipeline.bus.as_ref();
    let write = |progress: Progress, what: &'static str| async move {
        match record(store, incident, &progress).await {
            Ok(stored) => announce(bus, &stored).await,
            Err(err) => tracing::warn!(incident = %incident.id, error = %error_chain(&err), "cannot store {what}"),
        }
    };
    write(Progress::status(IncidentStatus::Diagnosing), "incident").await;
    let request = Request::from(incident);
    let result = agent::run(&pipeline.deps, &request).await;
    let retry = if last_try { None } else { retry_reason(&result) };
    let label = outcome_label(&result, retry.is_some());
    if let Some(why) = retry {
        let summary = format!("diagnosis incomplete, will retry: {why}");
        write(Progress::status(IncidentStatus::Open).with_summary(summary), "incident").await;
        return (Outcome::Retry(why), label);
    }
    let diagnosis = match result {
        Ok(d) => d,
        Err(err) => {
            tracing::error!(incident = %incident.id, error = %error_chain(&err), "diagnosis failed");
            let summary = format!("diagnosis failed: {}", error_chain(&err));
            write(Progress::status(IncidentStatus::Open).with_summary(summary), "incident").await;
            return (Outcome::Done, label);
        }
    };
    // The agent acts for the rule that opened the incident.
    pipeline.audit.record(
        AuditRecord::new(AuditKind::Event, &request.requested_by, "daemon", "diagnose")
            .target(incident.workload.to_string())
            .outcome("ok", &crate::redact::redact_text(&diagnosis.summary)),
    );
    let mut progress = Progress::status(IncidentStatus::Diagnosed).with_summary(diagnosis.summary.clone());
    for proposal in &diagnosis.proposals {
        match pipeline.approvals.submit_with(proposal.clone(), Some(diagnosis.clone())).await {
            Ok(p) => {
                pipeline.metrics.proposal_state(p.state.as_str());
                progress.proposals.push(p.id);
            }
            Err(err) => tracing::warn!(incident = %incident.id, error = %error_chain(&err), "proposal not offered"),
        }
    }
    let proposals = progress.proposals.len();
    // Kept with the incident for its web page (the causal chain, the evidence); the
    // proposals live in the store on their own.
    progress.diagnosis =
        Some(Box::new(crate::model::diagnosis::Diagnosis { proposals: Vec::new(), ..diagnosis.clone() }));
    write(progress, "diagnosis").await;
    tracing::info!(
        incident = %incident.id,
        workload = %incident.workload,
        proposals,
        "diagnosed: {}",
        crate::redact::redact_text(&diagnosis.root_cause)
    );
    (Outcome::Done, label)
}

#[cfg(test)]
mod tests;
