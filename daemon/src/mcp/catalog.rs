//! MCP tool definitions: name, description, JSON Schemas of the typed input
//! and output structs (field docs become descriptions) and honest
//! annotations derived from [`crate::tools::TOOLS`].

use std::sync::Arc;

use rmcp::handler::server::common::{schema_for_output, schema_for_type};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};

use crate::tools::{self, mutate, overview, read, secrets, state, workload};

fn schemas(name: &str) -> (Arc<JsonObject>, Arc<JsonObject>) {
    macro_rules! s {
        ($i:ty, $o:ty) => {
            (schema_for_type::<$i>(), schema_for_output::<$o>())
        };
    }
    match name {
        "list_resources" => s!(read::ListInput, read::ListOutput),
        "get_resource" => s!(read::GetInput, read::GetOutput),
        "describe_workload" => s!(workload::WorkloadInput, workload::DescribeOutput),
        "events" => s!(read::EventsInput, read::EventsOutput),
        "pod_logs" => s!(tools::logs::PodLogsInput, tools::logs::PodLogsOutput),
        "rollout_status" => s!(workload::RolloutStatusInput, workload::RolloutStatus),
        "rollout_history" => s!(workload::WorkloadInput, workload::HistoryOutput),
        "decode_secret" => s!(secrets::DecodeSecretInput, secrets::DecodeSecretOutput),
        "cluster_health" => s!(overview::HealthInput, overview::HealthOutput),
        "workload_graph" => s!(overview::GraphInput, overview::GraphOutput),
        "drift_check" => s!(state::DriftInput, crate::drift::DriftReport),
        "list_incidents" => s!(state::ListIncidentsInput, state::IncidentsOutput),
        "list_proposals" => s!(state::ListProposalsInput, state::ProposalsOutput),
        "get_proposal" => s!(state::ProposalIdInput, state::ProposalOutput),
        "wait_proposal" => s!(state::WaitProposalInput, state::WaitProposalOutput),
        "propose_patch" => s!(mutate::ProposePatchInput, mutate::MutationOutput),
        "rollout_restart" => s!(mutate::RestartInput, mutate::MutationOutput),
        "rollout_undo" => s!(mutate::UndoInput, mutate::MutationOutput),
        "scale" => s!(mutate::ScaleInput, mutate::MutationOutput),
        "delete_pod" => s!(mutate::DeletePodInput, mutate::MutationOutput),
        "apply_proposal" => s!(state::ProposalIdInput, mutate::MutationOutput),
        other => unreachable!("tool {other} has no schema"),
    }
}

fn description(name: &str) -> &'static str {
    match name {
        "list_resources" => {
            "List objects of one kind (Pod, Deployment, Service, ...) in a namespace or every visible one, with a one-line status each."
        }
        "get_resource" => {
            "Get one object as JSON, without managedFields; a Secret comes without its data (only the key names)."
        }
        "describe_workload" => {
            "Describe a workload: owner chain Deployment -> ReplicaSet -> Pods, conditions, container states (waiting/terminated reasons, exit codes, restarts) and recent events."
        }
        "events" => {
            "Kubernetes events, newest first, filtered by namespace, object (optionally with its ReplicaSets and Pods), type, reason and age."
        }
        "pod_logs" => {
            "Logs of a pod or of a workload's pods (failing first): tail, previous instance, since, grep. Secret-looking strings and Secret values are redacted."
        }
        "rollout_status" => {
            "Whether a rollout is complete, progressing or failed; with wait_seconds, waits and sends progress notifications."
        }
        "rollout_history" => {
            "Revisions of a Deployment, StatefulSet or DaemonSet: images, age, readiness, which one is current."
        }
        "decode_secret" => {
            "Keys, sizes and sha256 fingerprints of a Secret, or of every Secret a workload references (with which references resolve). Values only for the admin role with reveal: true."
        }
        "cluster_health" => {
            "Health summary: nodes, pods by phase, workloads short of ready replicas or with a failed rollout, problem pods, warnings by reason."
        }
        "workload_graph" => {
            "A Mermaid flowchart of workloads, ReplicaSets, Pods, the Services selecting them and the Secrets/ConfigMaps they use (missing ones dashed)."
        }
        "drift_check" => {
            "Compare live objects with their desired state (last-applied configuration, Helm releases, manifests): which fields drifted, desired and live values (secret values redacted)."
        }
        "list_incidents" => "Incidents kubemedic has opened (signals folded by workload and reason), newest first.",
        "list_proposals" => "Proposals (patches waiting for or past a human decision), newest first.",
        "get_proposal" => "One proposal with its diff, rationale, risk and history.",
        "wait_proposal" => {
            "Follow a proposal until it is verified, failed, rejected, expired or refused (or wait_seconds runs out), with a progress notification at each state; the way to follow an approval or an apply without the Tasks extension."
        }
        "propose_patch" => {
            "Propose a patch to an object. It passes the patch policy and a server-side dry-run and becomes a pending proposal; nothing changes until an approver confirms."
        }
        "rollout_restart" => {
            "Propose a rolling restart of a Deployment, StatefulSet or DaemonSet; applied only after an approver confirms."
        }
        "rollout_undo" => {
            "Propose rolling back to a previous revision (default: the one before the current); applied only after an approver confirms."
        }
        "scale" => "Propose a new replica count; applied only after an approver confirms.",
        "delete_pod" => {
            "Propose deleting a pod so its controller recreates it; applied only after an approver confirms."
        }
        "apply_proposal" => {
            "Approve a pending proposal after confirming it (approver role). Returns once the approval is recorded; the change is then applied exactly once and verified in the background: follow it with the task (Tasks extension), wait_proposal, or the resource kubemedic://proposals/{id} (subscribe for updates)."
        }
        _ => "",
    }
}

/// JSON Schema allows `true` as "any value"; some MCP clients (and the conformance suite)
/// require every property schema to be an object. `{}` means the same.
fn objects_only(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let holds_schemas =
                    matches!(key.as_str(), "properties" | "$defs" | "definitions" | "patternProperties");
                if holds_schemas && let Value::Object(schemas) = item {
                    for schema in schemas.values_mut() {
                        if schema.is_boolean() {
                            *schema = Value::Object(Default::default());
                        }
                    }
                }
                if matches!(key.as_str(), "items" | "additionalItems") && item.as_bool() == Some(true) {
                    *item = Value::Object(Default::default());
                }
                objects_only(item);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(objects_only),
        _ => {}
    }
}

fn fixed(schema: Arc<JsonObject>) -> Arc<JsonObject> {
    let mut v = serde_json::Value::Object((*schema).clone());
    objects_only(&mut v);
    match v {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => schema,
    }
}

/// Every MCP tool definition.
pub fn tools() -> Vec<Tool> {
    tools::TOOLS
        .iter()
        .map(|spec| {
            let (input, output) = schemas(spec.name);
            let (input, output) = (fixed(input), fixed(output));
            let mut tool = Tool::new(spec.name, description(spec.name), input);
            tool.output_schema = Some(output);
            tool.annotations = Some(
                ToolAnnotations::new()
                    .read_only(spec.read_only)
                    .destructive(spec.destructive)
                    // Reads are idempotent; every mutating call creates a new proposal.
                    .idempotent(spec.read_only)
                    // Only the configured cluster, not the open world.
                    .open_world(false),
            );
            tool
        })
        .collect()
}

/// `tool` with a `cluster` argument naming one of `clusters` (the first is the default), for a
/// server serving several.
pub fn with_cluster_argument(mut tool: Tool, clusters: &[&str]) -> Tool {
    let mut schema = (*tool.input_schema).clone();
    let properties = schema.entry("properties").or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert(
            "cluster".into(),
            serde_json::json!({
                "type": "string",
                "enum": clusters,
                "description": format!("Which cluster (default {}).", clusters.first().copied().unwrap_or_default()),
            }),
        );
    }
    tool.input_schema = Arc::new(schema);
    tool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_schemas_and_honest_hints() {
        let all = tools();
        assert_eq!(all.len(), tools::TOOLS.len());
        for t in &all {
            assert!(!t.description.as_deref().unwrap_or_default().is_empty(), "{}", t.name);
            assert_eq!(t.input_schema.get("type").and_then(|v| v.as_str()), Some("object"), "{}", t.name);
            let a = t.annotations.as_ref().unwrap();
            if a.read_only_hint == Some(true) {
                assert_eq!(a.destructive_hint, Some(false), "{}", t.name);
            }
        }
        let get = all.iter().find(|t| t.name == "get_resource").unwrap();
        let object = &get.output_schema.as_ref().unwrap()["properties"]["object"];
        assert!(object.is_object(), "property schemas are objects, not `true`: {object}");
        let scale = all.iter().find(|t| t.name == "scale").unwrap();
        assert_eq!(scale.annotations.as_ref().unwrap().destructive_hint, Some(true));
        let props = scale.input_schema.get("properties").unwrap().as_object().unwrap();
        assert!(props["replicas"].get("description").is_some(), "field docs become descriptions");
    }
}
