//! Shared by the agent end-to-end tests: building the agent's dependencies
//! against the test cluster, diagnosing, and applying a proposal the way
//! the approvals path would (the dry-run-checked patch, with the
//! resourceVersion precondition).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kubemedic::agent::{AgentConfig, Deps, Diagnosis, Request};
use kubemedic::approvals::{Action, PatchType, Proposal};
use kubemedic::cluster::{Cluster, Scope};
use kubemedic::config::ClusterConfig;
use kubemedic::policy::PolicyConfig;
use kubemedic::signal::WorkloadRef;

pub use e2e::daemon::repo_root;

pub fn cluster(client: &Client) -> Cluster {
    Cluster { name: "e2e".into(), client: client.clone(), scope: Scope::from_config(&ClusterConfig::default()) }
}

/// Deps with the default policy and agent config, and the repository's prompts.
pub fn deps(client: &Client) -> Deps {
    let tools = kubemedic::tools::Tools::new(cluster(client), None, kubemedic::telemetry::audit::AuditLog::in_memory());
    let mut deps = deps_with(client, AgentConfig::default());
    deps.tools = Some(tools);
    deps
}

/// Deps for `config`'s runner, with the default policy and the repository's prompts, no tools.
pub fn deps_with(client: &Client, config: AgentConfig) -> Deps {
    let prompts = kubemedic::prompts::Catalog::load(&repo_root().join("prompts")).expect("prompts/ loads");
    Deps::new(cluster(client), PolicyConfig::default(), config, Arc::new(prompts)).expect("agent deps")
}

/// Deps whose runner is the LLM runner, talking to a stand-in at `base_url`.
pub fn llm_deps(
    client: &Client,
    api: kubemedic::agent::llm::Api,
    base_url: &str,
    key_env: Option<&str>,
    max_steps: u32,
) -> Deps {
    let yaml = format!(
        "api: {}\nmodel: stand-in\nbase_url: {base_url}\nmax_steps: {max_steps}\n",
        match api {
            kubemedic::agent::llm::Api::Openai => "openai",
            kubemedic::agent::llm::Api::Anthropic => "anthropic",
        }
    );
    let mut llm: kubemedic::agent::llm::LlmConfig = serde_yaml_ng::from_str(&yaml).unwrap();
    llm.api_key_env = key_env.map(str::to_owned);
    let config = kubemedic::agent::AgentConfig {
        runner: kubemedic::agent::RunnerKind::Llm,
        llm: Some(llm),
        ..kubemedic::agent::AgentConfig::default()
    };
    let deps = deps_with(client, config);
    let tools =
        kubemedic::tools::Tools::new(deps.cluster.clone(), None, kubemedic::telemetry::audit::AuditLog::in_memory());
    let server = kubemedic::mcp::build_server(tools, (*deps.prompts).clone()).expect("in-process MCP server");
    deps.with_server(&server)
}

/// Deps whose runner is the built-in one, handing over to the LLM stand-in at `base_url`
/// (OpenAI wire format) below confidence `below`.
pub fn hand_over_deps(client: &Client, base_url: &str, below: f32) -> Deps {
    let mut deps = llm_deps(client, kubemedic::agent::llm::Api::Openai, base_url, Some("CARGO_PKG_NAME"), 8);
    let config = kubemedic::agent::AgentConfig {
        runner: kubemedic::agent::RunnerKind::Builtin,
        hand_over_below: Some(below),
        ..deps.config.clone()
    };
    config.validate().expect("hand-over config");
    deps.runner = kubemedic::agent::runner(&config).expect("hand-over runner").into();
    deps.config = config;
    deps
}

pub async fn diagnose(deps: &Deps, kind: &str, ns: &str, name: &str) -> Diagnosis {
    let request = Request::workload(WorkloadRef::new(kind, ns, name), "e2e");
    kubemedic::agent::run(deps, &request).await.unwrap_or_else(|e| panic!("diagnose {ns}/{kind}/{name}: {e:?}"))
}

/// Diagnose until `accept` holds (symptoms take a moment to show in status and events).
pub async fn diagnose_until(
    deps: &Deps,
    kind: &str,
    ns: &str,
    name: &str,
    label: &str,
    accept: impl Fn(&Diagnosis) -> bool,
) -> Diagnosis {
    let mut last = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        let d = diagnose(deps, kind, ns, name).await;
        if accept(&d) {
            return d;
        }
        last = Some(d);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    panic!(
        "no diagnosis of {ns}/{kind}/{name} showed {label}; last one:\n{}",
        last.map(|d| d.render_text()).unwrap_or_default()
    );
}

fn api_for(client: &Client, p: &Proposal) -> Api<DynamicObject> {
    let (group, version) = match p.target.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", p.target.api_version.as_str()),
    };
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &p.target.kind));
    if p.target.namespace.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), &p.target.namespace, &ar)
    }
}

/// Apply a proposal's patch for real, pinned to the resourceVersion it was computed against.
pub async fn apply(client: &Client, p: &Proposal) {
    try_apply(client, p).await.unwrap_or_else(|e| panic!("apply {}: {e}", p.id));
}

async fn try_apply(client: &Client, p: &Proposal) -> Result<(), kube::Error> {
    let Action::Patch { patch_type, body } = &p.action else { panic!("not a patch: {:?}", p.action) };
    let mut body = body.clone();
    let rv = p.target.resource_version.clone().expect("proposal pins a resourceVersion");
    let pp = PatchParams { field_manager: Some("kubemedic".into()), ..Default::default() };
    let patch = match patch_type {
        PatchType::Json => {
            // The precondition of a JSON patch is a `test` of the resourceVersion.
            let mut ops = vec![serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
            ops.extend(body.as_array().cloned().unwrap_or_default());
            let ops = serde_json::from_value(serde_json::Value::Array(ops)).expect("JSON patch operations");
            return api_for(client, p).patch(&p.target.name, &pp, &Patch::<()>::Json(ops)).await.map(|_| ());
        }
        _ => {
            body["metadata"]["resourceVersion"] = serde_json::Value::String(rv);
            match patch_type {
                PatchType::Merge => Patch::Merge(body),
                _ => Patch::Strategic(body),
            }
        }
    };
    api_for(client, p).patch(&p.target.name, &pp, &patch).await.map(|_| ())
}

/// Apply the diagnosis' one proposal; when the object changed since (409 on the
/// resourceVersion precondition, e.g. a status update), diagnose again and retry,
/// as the approvals path does.
pub async fn apply_fresh(client: &Client, deps: &Deps, d: &Diagnosis) -> Proposal {
    let mut proposal = one_proposal(d).clone();
    for _ in 0..5 {
        match try_apply(client, &proposal).await {
            Ok(()) => return proposal,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let w = &d.workload;
                let again = diagnose(deps, &w.kind, &w.namespace, &w.name).await;
                assert_eq!(again.root_cause, d.root_cause, "the diagnosis changed between attempts");
                proposal = one_proposal(&again).clone();
            }
            Err(e) => panic!("apply {}: {e}", proposal.id),
        }
    }
    panic!("the target kept changing; could not apply {}", proposal.id);
}

/// Assert the diagnosis has exactly one proposal and return it.
pub fn one_proposal(d: &Diagnosis) -> &Proposal {
    assert_eq!(d.proposals.len(), 1, "expected one proposal:\n{}", d.render_text());
    assert!(d.refused.is_empty(), "nothing refused expected:\n{}", d.render_text());
    &d.proposals[0]
}

/// A diagnosis that names its evidence and draws its chain.
pub fn assert_well_formed(d: &Diagnosis) {
    assert!(!d.evidence.is_empty(), "no evidence:\n{}", d.render_text());
    assert!(d.mermaid.starts_with("flowchart TD") && d.mermaid.contains("-->"), "no causal chain:\n{}", d.mermaid);
    assert!((0.0..=1.0).contains(&d.confidence));
    assert_eq!(d.runner, "builtin");
}
