//! MCP resources: the cluster context, visible namespaces, incidents,
//! proposals, the latest drift report and recent audit records (approver
//! role and up; a viewer does not see them listed and gets an error reading them).

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::{Value, json};

use super::server::FORBIDDEN;
use crate::model::identity::Role;
use crate::tools::{Caller, ToolError, Tools};

const CLUSTERS: &str = "kubemedic://clusters";
const NAMESPACES: &str = "kubemedic://namespaces";
const INCIDENTS: &str = "kubemedic://incidents";
const PROPOSALS: &str = "kubemedic://proposals";
const DRIFT: &str = "kubemedic://drift/latest";
const AUDIT: &str = "kubemedic://audit/recent";

/// Lowest role that may read the audit trail.
const AUDIT_ROLE: Role = Role::Approver;

fn res(uri: &str, name: &str, description: &str) -> Resource {
    Resource::new(uri, name).with_description(description).with_mime_type("application/json")
}

pub fn list(caller: &Caller) -> Vec<Resource> {
    let mut out = vec![
        res(CLUSTERS, "clusters", "The cluster context kubemedic serves and its visibility scope."),
        res(NAMESPACES, "namespaces", "Namespaces visible to kubemedic."),
        res(INCIDENTS, "incidents", "Incidents, newest first."),
        res(PROPOSALS, "proposals", "Proposals and their states, newest first."),
        res(DRIFT, "drift-report", "The latest drift report."),
    ];
    if caller.role >= AUDIT_ROLE {
        out.push(res(AUDIT, "audit", "The most recent audit records (tool calls, prompt fetches, decisions)."));
    }
    out
}

pub fn templates() -> Vec<ResourceTemplate> {
    let t = |uri: &str, name: &str, description: &str| {
        let mut t = ResourceTemplate::new(uri, name);
        t.description = Some(description.into());
        t.mime_type = Some("application/json".into());
        t
    };
    vec![
        t("kubemedic://incidents/{id}", "incident", "One incident."),
        t("kubemedic://proposals/{id}", "proposal", "One proposal with diff and history."),
    ]
}

fn tool_err(e: &ToolError) -> McpError {
    match e {
        ToolError::NotFound(what) => McpError::resource_not_found(format!("{what} not found"), None),
        ToolError::Forbidden { .. } | ToolError::RbacDenied(_) => {
            McpError::new(FORBIDDEN, format!("forbidden: {e}"), None)
        }
        ToolError::InvalidInput { .. } => McpError::invalid_params(e.to_string(), None),
        other => McpError::internal_error(crate::model::error::error_chain(other), None),
    }
}

fn json_contents(uri: &str, v: &Value) -> ReadResourceResult {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type("application/json")])
}

/// A URI this server serves (a fixed resource or one of the templates' shapes).
pub fn is_known(uri: &str) -> bool {
    [CLUSTERS, NAMESPACES, INCIDENTS, PROPOSALS, DRIFT, AUDIT].contains(&uri)
        || ["kubemedic://incidents/", "kubemedic://proposals/"]
            .iter()
            .any(|p| uri.strip_prefix(p).is_some_and(|id| !id.is_empty() && !id.contains('/')))
}

pub async fn read(tools: &Tools, caller: &Caller, uri: &str) -> Result<ReadResourceResult, McpError> {
    let cluster = tools.cluster();
    let value = match uri {
        CLUSTERS => json!([{
            "name": cluster.name,
            "namespaces": if cluster.scope.namespaces.is_empty() { json!("all but excluded") } else { json!(cluster.scope.namespaces) },
            "excluded_namespaces": cluster.scope.exclude,
            "kinds": cluster.scope.kinds,
        }]),
        NAMESPACES => json!(tools.visible_namespaces().await.map_err(|e| tool_err(&e))?),
        INCIDENTS => {
            let out = tools.list_incidents(caller, Default::default()).await.map_err(|e| tool_err(&e))?;
            json!(out.incidents)
        }
        PROPOSALS => {
            let out = tools.list_proposals(caller, Default::default()).await.map_err(|e| tool_err(&e))?;
            json!(out.proposals)
        }
        DRIFT => {
            let store = tools.store_or_err().map_err(|e| tool_err(&e))?;
            match store.latest_drift_report().await.map_err(|e| tool_err(&ToolError::Store(e)))? {
                Some(mut report) => {
                    crate::redact::redact_value(&mut report);
                    report
                }
                None => return Err(McpError::resource_not_found("no drift report has been written yet", None)),
            }
        }
        AUDIT => {
            crate::tools::require(caller, "reading the audit trail", AUDIT_ROLE).map_err(|e| tool_err(&e))?;
            json!(tools.audit().recent(200))
        }
        other => {
            if let Some(id) = other.strip_prefix("kubemedic://incidents/") {
                let store = tools.store_or_err().map_err(|e| tool_err(&e))?;
                crate::tools::state::check_id("read_resource", id).map_err(|e| tool_err(&e))?;
                let incident = store
                    .get_incident(id)
                    .await
                    .map_err(|e| tool_err(&ToolError::Store(e)))?
                    .filter(|i| i.cluster == cluster.name)
                    .filter(|i| {
                        i.workload.namespace.is_empty() || cluster.scope.namespace_visible(&i.workload.namespace)
                    })
                    .ok_or_else(|| McpError::resource_not_found(format!("incident {id} not found"), None))?;
                json!(incident)
            } else if let Some(id) = other.strip_prefix("kubemedic://proposals/") {
                let out = tools
                    .get_proposal(caller, crate::tools::state::ProposalIdInput { id: id.to_owned() })
                    .await
                    .map_err(|e| tool_err(&e))?;
                json!(out.proposal)
            } else {
                return Err(McpError::resource_not_found(format!("unknown resource {other}"), None));
            }
        }
    };
    Ok(json_contents(uri, &value))
}
