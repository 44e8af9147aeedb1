//! The built-in diagnostician: deterministic, no LLM. It runs the prompt
//! workflow's declared steps (gathering what kubemedic's read tools return),
//! hands the facts to the analyzers of the failure catalog, and passes each
//! proposed fix through [`crate::policy::prepare`].

pub mod admission;
pub mod analyze;
pub mod batch;
pub mod config;
pub mod eviction;
pub mod gather;
pub mod helm;
pub mod hpa;
pub mod logline;
pub mod network;
pub mod node;
pub mod objects;
pub mod probe;
pub mod read;
pub mod resources;
pub mod rollout;
pub mod steps;
pub mod storage;
pub mod throttling;

use std::time::Duration;

use async_trait::async_trait;

use super::{AgentError, Deps, Diagnosis, Request, Runner};
use crate::model::proposal::Drafter;
use crate::policy;

/// The default runner.
pub struct Builtin;

#[async_trait]
impl Runner for Builtin {
    fn name(&self) -> String {
        "builtin".into()
    }

    async fn diagnose(&self, deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError> {
        diagnose(deps, request).await
    }
}

/// Diagnose `request.workload` within the configured time budget.
pub async fn diagnose(deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError> {
    let budget = deps.config.timeout_seconds;
    tokio::time::timeout(Duration::from_secs(budget), run(deps, request))
        .await
        .map_err(|_| AgentError::Timeout(request.workload.to_string(), budget))?
}

async fn run(deps: &Deps, request: &Request) -> Result<Diagnosis, AgentError> {
    let mut notes = Vec::new();
    let prompt_name = if request.prompt.is_empty() { deps.config.default_prompt.as_str() } else { &request.prompt };
    let steps = match deps.prompts.get(prompt_name) {
        // Workload workflows need a namespace; a node is diagnosed with the built-in node steps.
        Some(_) if request.workload.namespace.is_empty() => Vec::new(),
        // The workload workflow's tools read pods and rollouts; other objects are read by their own gathering.
        Some(_) if objects::diagnosable(&request.workload.kind).is_some_and(objects::is_object_kind) => {
            notes.push(format!(
                "{} is not a workload: ran the object steps instead of {prompt_name}",
                request.workload.kind
            ));
            Vec::new()
        }
        Some(p) => match p.render(&prompt_arguments(p, request)) {
            Ok((_, steps)) => {
                let tools: Vec<&str> = steps.iter().map(|s| s.tool.as_str()).collect();
                notes.push(format!("workflow {prompt_name}: steps {}", tools.join(", ")));
                steps
            }
            Err(e) => {
                notes.push(format!("workflow {prompt_name} cannot be rendered ({e}); ran the built-in steps"));
                Vec::new()
            }
        },
        None if !deps.prompts.is_empty() => {
            notes.push(format!("prompt {prompt_name} is not loaded; ran the built-in diagnose-workload steps"));
            Vec::new()
        }
        None => Vec::new(),
    };
    // One read path: the declared steps, then what the analyzers need, all through
    // kubemedic's tools (scope-checked, redacted, audited like any caller's), each call once.
    let own_tools;
    let tools = match &deps.tools {
        Some(t) => t,
        None => {
            own_tools =
                crate::tools::Tools::new(deps.cluster.clone(), None, crate::telemetry::audit::AuditLog::in_memory());
            &own_tools
        }
    };
    let reader = read::Reader::new(tools);
    let stepped = steps::run(&reader, &steps).await;
    let mut facts = gather::gather(&reader, &request.workload, deps.config.log_lines).await?;
    facts.alert = request.signal.clone().filter(|s| {
        s.source == crate::model::signal::SignalSource::Alertmanager
            && s.status == crate::model::signal::SignalStatus::Firing
    });
    notes.extend(stepped.notes);
    facts.evidence.extend(stepped.evidence);
    notes.extend(facts.gaps.iter().map(|g| format!("not gathered: {g}")));
    let mut finding = analyze::analyze(&facts, &deps.policy);
    helm::explain(&facts, &mut finding);

    let mut diagnosis = Diagnosis {
        incident_id: request.incident_id.clone(),
        workload: facts.target.clone(),
        summary: finding.summary.clone(),
        root_cause: finding.root_cause.clone(),
        evidence: facts.evidence.iter().chain(finding.evidence.iter()).cloned().collect(),
        confidence: finding.confidence,
        mermaid: analyze::mermaid(&finding.chain),
        proposals: Vec::new(),
        refused: Vec::new(),
        advice: finding.advice.clone(),
        runner: "builtin".into(),
        notes,
        gaps: facts.gaps.clone(),
    };
    offer(deps, request, Drafter::Builtin, finding.drafts, &mut diagnosis).await;
    Ok(diagnosis)
}

/// The request as the prompt's arguments (only those it declares).
fn prompt_arguments(p: &crate::prompts::Prompt, request: &Request) -> crate::prompts::Arguments {
    let w = &request.workload;
    let mut args = request.arguments.clone();
    args.entry("namespace".into()).or_insert_with(|| w.namespace.clone());
    args.entry("kind".into()).or_insert_with(|| w.kind.clone());
    args.entry("name".into()).or_insert_with(|| w.name.clone());
    if let Some(r) = &request.reason {
        args.entry("reason".into()).or_insert_with(|| r.clone());
    }
    args.retain(|k, _| p.arguments.iter().any(|a| a.name == *k));
    args
}

/// Pass drafts through policy (the tier of `drafter`) and dry-run into the
/// diagnosis (or, when the rule forbids mutations, describe them as advice).
pub async fn offer(
    deps: &Deps,
    request: &Request,
    drafter: Drafter,
    drafts: Vec<policy::ProposalDraft>,
    diagnosis: &mut Diagnosis,
) {
    for mut draft in drafts {
        if !request.allow_mutations {
            diagnosis.advice.push(format!(
                "The rule does not allow proposals; the fix would be a patch to {}: {}",
                draft.target_display(),
                draft.rationale
            ));
            continue;
        }
        draft.incident_id = request.incident_id.clone();
        draft.requested_by = request.requested_by.clone();
        draft.approvers = request.approvers.clone();
        match policy::prepare(&deps.cluster, &deps.policy, drafter, draft).await {
            Ok(p) => diagnosis.proposals.push(p),
            Err(refusal) => {
                tracing::info!(target = %refusal.target, reason = %refusal.reason, "proposal refused");
                diagnosis.advice.push(format!(
                    "A fix was found but refused ({}); apply it by hand only after review.",
                    refusal.reason
                ));
                diagnosis.refused.push(refusal.into());
            }
        }
    }
}
