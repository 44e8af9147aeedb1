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

/// The resources, per cluster: the default cluster's at the plain URIs, every other one's
/// with `?cluster=NAME`.
pub fn list(clusters: &[Tools], caller: &Caller) -> Vec<Resource> {
    let mut out = vec![res(CLUSTERS, "clusters", "The clusters kubemedic serves and their visibility scopes.")];
    for (i, tools) in clusters.iter().enumerate() {
        let cluster = &tools.cluster().name;
        let at = |base: &str, name: &str, description: &str| {
            if i == 0 {
                res(base, name, description)
            } else {
                res(
                    &format!("{base}?cluster={cluster}"),
                    &format!("{name} ({cluster})"),
                    &format!("{description} Cluster {cluster}."),
                )
            }
        };
        out.push(at(NAMESPACES, "namespaces", "Namespaces visible to kubemedic."));
        out.push(at(INCIDENTS, "incidents", "Incidents, newest first."));
        out.push(at(PROPOSALS, "proposals", "Proposals and their states, newest first."));
        out.push(at(DRIFT, "drift-report", "The latest drift report."));
        if caller.role >= AUDIT_ROLE && i == 0 {
            out.push(res(AUDIT, "audit", "The most recent audit records (tool calls, prompt fetches, decisions)."));
        }
    }
    out
}

/// A URI without its `?cluster=NAME`, and that name.
pub fn split_cluster(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((base, query)) => (base, query.split('&').find_map(|kv| kv.strip_prefix("cluster="))),
        None => (uri, None),
    }
}

/// The tools of the cluster named `name` (`None`: the first, the default).
pub fn pick<'a>(clusters: &'a [Tools], name: Option<&str>) -> Result<&'a Tools, McpError> {
    match name {
        None => clusters.first().ok_or_else(|| McpError::internal_error("no cluster configured", None)),
        Some(name) => clusters.iter().find(|t| t.cluster().name == name).ok_or_else(|| {
            let known: Vec<&str> = clusters.iter().map(|t| t.cluster().name.as_str()).collect();
            McpError::invalid_params(format!("unknown cluster {name:?}; this server has {}", known.join(", ")), None)
        }),
    }
}

/// The resource templates; with several clusters they take `?cluster=NAME` (RFC 6570 `{?cluster}`).
pub fn templates(several_clusters: bool) -> Vec<ResourceTemplate> {
    let q = if several_clusters { "{?cluster}" } else { "" };
    let t = |uri: &str, name: &str, description: &str| {
        let uri = format!("{uri}{q}");
        let uri = uri.as_str();
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
    let uri = split_cluster(uri).0;
    [CLUSTERS, NAMESPACES, INCIDENTS, PROPOSALS, DRIFT, AUDIT].contains(&uri)
        || ["kubemedic://incidents/", "kubemedic://proposals/"]
            .iter()
            .any(|p| uri.strip_prefix(p).is_some_and(|id| !id.is_empty() && !id.contains('/')))
}

pub async fn read(clusters: &[Tools], caller: &Caller, uri: &str) -> Result<ReadResourceResult, McpError> {
    let (path, name) = split_cluster(uri);
    // With `auth.impersonate`, what the cluster is asked (the namespaces) is asked as the caller.
    let tools = pick(clusters, name)?.as_caller(caller).map_err(|e| tool_err(&e))?;
    let tools = tools.as_ref();
    let cluster = tools.cluster();
    let value = match path {
        CLUSTERS => json!(
            clusters
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let c = t.cluster();
                    json!({
                        "name": c.name,
                        "default": i == 0,
                        "namespaces": if c.scope.namespaces.is_empty() { json!("all but excluded") } else { json!(c.scope.namespaces) },
                        "excluded_namespaces": c.scope.exclude,
                        "kinds": c.scope.kinds,
                    })
                })
                .collect::<Vec<_>>()
        ),
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
