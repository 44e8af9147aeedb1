//! Generic reads: list and get any visible kind, events with filters.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, GetParams, ListParams};
use kube::{Api, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cached::{Cursor, page};
use super::kinds::{self, Kind};
use super::{Caller, ToolError, Tools};

/// Input of `list_resources`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Kind to list, e.g. `Pod`, `Deployment`, `Service` (plural and short names work too).
    pub kind: String,
    /// Namespace; omit for every visible namespace (ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Most items to return (1-500, default 100). Items come sorted by namespace, then name.
    #[serde(default)]
    pub limit: Option<i64>,
    /// The `continue` token of a truncated listing: returns the next page of the same listing
    /// (pass the same kind, namespace and selector).
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
    /// Field selector, e.g. `spec.nodeName=node-1` (what the apiserver supports for the kind).
    #[serde(default)]
    pub field_selector: Option<String>,
    /// Also return each object itself (as `get_resource` does: managed fields and Secret
    /// values removed, redacted), in `objects`, in the order of `items`.
    #[serde(default)]
    pub objects: bool,
}

/// One object in a listing.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ItemSummary {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    /// RFC 3339 creation time.
    pub created: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Kind-specific one-liner: pod phase and readiness, replicas ready/desired, node readiness.
    pub status: String,
}

/// Output of `list_resources`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ListOutput {
    pub kind: String,
    pub items: Vec<ItemSummary>,
    /// More items existed than `limit`.
    pub truncated: bool,
    /// When truncated: pass it as `continue` for the next page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// The objects themselves, when asked for with `objects: true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Value>,
}

/// Input of `get_resource`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetInput {
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace (required for namespaced kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

/// Output of `get_resource`: the object without managedFields; a Secret
/// without its data (only `dataKeys`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct GetOutput {
    pub kind: String,
    pub object: Value,
}

/// Input of `events`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsInput {
    /// Namespace; omit for every visible namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only events about objects of this kind (with `name`: about one object).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only events about the object of this name.
    #[serde(default)]
    pub name: Option<String>,
    /// With kind+name of a workload: also the events of its ReplicaSets and Pods.
    #[serde(default)]
    pub include_related: bool,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// Only this reason, e.g. `BackOff`, `FailedScheduling`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Only events seen in the last N seconds (1-604800).
    #[serde(default)]
    pub since_seconds: Option<i64>,
    /// Most events to return, newest first (1-500, default 50).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct EventSummary {
    /// RFC 3339 time of the last occurrence.
    pub time: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub reason: String,
    /// `Kind/name` of the object it is about.
    pub object: String,
    pub namespace: String,
    /// Message, redacted.
    pub message: String,
    pub count: i32,
}

/// Output of `events`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct EventsOutput {
    pub events: Vec<EventSummary>,
    pub truncated: bool,
}

/// Up to this many objects, `events` asks for each one's events (field selectors); beyond it
/// (a workload with hundreds of pods), one list of the namespace is cheaper.
const MAX_EVENT_SUBJECTS: usize = 16;

impl Tools {
    /// List the visible namespaces (all namespaces in scope that exist).
    pub(crate) async fn visible_namespaces(&self) -> Result<Vec<String>, ToolError> {
        let scope = &self.cluster.scope;
        if !scope.namespaces.is_empty() {
            return Ok(scope.namespaces.iter().filter(|n| scope.namespace_visible(n)).cloned().collect());
        }
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.cluster.client.clone());
        let list = api.list(&ListParams::default()).await.map_err(|e| ToolError::kube("list namespaces", e))?;
        Ok(list.items.iter().map(|n| n.name_any()).filter(|n| scope.namespace_visible(n)).collect())
    }

    /// List dynamic objects of a kind in one namespace or across the visible ones.
    pub(crate) async fn list_dynamic(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        lp: &ListParams,
    ) -> Result<Vec<DynamicObject>, ToolError> {
        match self.list_version(kind, namespace, lp).await {
            // The version is not served (an older apiserver): its older one is.
            Err(ToolError::NotFound(_)) if kind.older().is_some() => {
                self.list_version(&kind.older().unwrap_or(*kind), namespace, lp).await
            }
            other => other,
        }
    }

    async fn list_version(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        lp: &ListParams,
    ) -> Result<Vec<DynamicObject>, ToolError> {
        let client = &self.cluster.client;
        let op = |ns: &str| format!("list {} in {}", kind.plural, if ns.is_empty() { "all namespaces" } else { ns });
        if !kind.namespaced {
            let list = kind.api(client, None).list(lp).await.map_err(|e| ToolError::kube(op(""), e))?;
            return Ok(list.items);
        }
        if let Some(ns) = namespace {
            return Ok(kind.api(client, Some(ns)).list(lp).await.map_err(|e| ToolError::kube(op(ns), e))?.items);
        }
        if self.cluster.scope.namespaces.is_empty() {
            let list = kind.api(client, None).list(lp).await.map_err(|e| ToolError::kube(op(""), e))?;
            let scope = &self.cluster.scope;
            return Ok(list
                .items
                .into_iter()
                .filter(|o| scope.namespace_visible(&o.namespace().unwrap_or_default()))
                .collect());
        }
        let mut out = Vec::new();
        for ns in self.visible_namespaces().await? {
            out.extend(kind.api(client, Some(&ns)).list(lp).await.map_err(|e| ToolError::kube(op(&ns), e))?.items);
        }
        Ok(out)
    }

    pub async fn list_resources(&self, _caller: &Caller, input: ListInput) -> Result<ListOutput, ToolError> {
        const TOOL: &str = "list_resources";
        let scope = &self.cluster.scope;
        let kind = kinds::resolve(TOOL, scope, &input.kind)?;
        let ns = kinds::optional_namespace(TOOL, scope, input.namespace.as_deref())?;
        let limit = kinds::cap(TOOL, "limit", input.limit.unwrap_or(100), 1, 500)? as usize;
        let after =
            input.continue_token.as_deref().filter(|t| !t.is_empty()).map(|t| Cursor::parse(TOOL, t)).transpose()?;
        let selector = input.label_selector.as_deref().filter(|s| !s.trim().is_empty());
        if let Some(sel) = selector
            && sel.len() > 1024
        {
            return Err(ToolError::invalid(TOOL, "label_selector is longer than 1024 characters"));
        }
        let fields = input.field_selector.as_deref().filter(|s| !s.trim().is_empty());
        if let Some(f) = fields
            && f.len() > 1024
        {
            return Err(ToolError::invalid(TOOL, "field_selector is longer than 1024 characters"));
        }
        // Without a selector, the watch stores answer for the kinds they hold (selectors are the
        // apiserver's job); they keep summaries, so a caller asking for the objects gets the apiserver's.
        let cached = match (selector, fields, input.objects) {
            (None, None, false) => {
                self.list_cached(kind.kind, ns.filter(|_| kind.namespaced), after.as_ref(), limit)?
            }
            _ => None,
        };
        let mut objects_out = Vec::new();
        let (mut items, next) = match cached {
            Some(page) => page,
            None => {
                // From the apiserver's watch cache (resourceVersion=0), which applies the selectors
                // itself, as `get_resource` reads: a quorum list walks the kind's every object in
                // etcd on each call (and on each page, since pages are cut here). A listing may be
                // milliseconds behind; nothing acts on it without its own precondition.
                let mut lp = ListParams::default().match_any();
                if let Some(sel) = selector {
                    lp = lp.labels(sel);
                }
                if let Some(f) = fields {
                    lp = lp.fields(f);
                }
                let mut objects = self.list_dynamic(&kind, ns, &lp).await?;
                if kind.kind == "Namespace" {
                    objects.retain(|o| scope.namespace_visible(&o.name_any()));
                }
                let (objects, next) = page(
                    objects,
                    |o| {
                        (
                            o.metadata.namespace.as_deref().unwrap_or_default(),
                            o.metadata.name.as_deref().unwrap_or_default(),
                        )
                    },
                    after.as_ref(),
                    limit,
                );
                if input.objects {
                    objects_out = objects.iter().map(|o| exported(kind.kind, o)).collect::<Result<_, _>>()?;
                }
                (objects.iter().map(|o| summarize_value(kind.kind, &o.metadata, &o.data)).collect(), next)
            }
        };
        for item in &mut items {
            item.status = crate::redact::redact_text(&item.status).into_owned();
        }
        Ok(ListOutput {
            kind: kind.kind.to_owned(),
            items,
            truncated: next.is_some(),
            continue_token: next,
            objects: objects_out,
        })
    }

    pub async fn get_resource(&self, _caller: &Caller, input: GetInput) -> Result<GetOutput, ToolError> {
        const TOOL: &str = "get_resource";
        let scope = &self.cluster.scope;
        let kind = kinds::resolve(TOOL, scope, &input.kind)?;
        kinds::name(TOOL, "name", &input.name)?;
        let ns = if kind.namespaced {
            let ns = input
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ToolError::invalid(TOOL, format!("namespace is required for {}", kind.kind)))?;
            kinds::namespace(TOOL, scope, ns)?;
            Some(ns)
        } else {
            None
        };
        if kind.kind == "Namespace" && !scope.namespace_visible(&input.name) {
            return Err(ToolError::NotFound(format!("namespace {}", input.name)));
        }
        let what = format!("{} {}{}", kind.kind, ns.map(|n| format!("{n}/")).unwrap_or_default(), input.name);
        // From the apiserver's watch cache (resourceVersion=0), not a quorum read of etcd: a read
        // tool may be milliseconds behind, and anything acting on what it read carries its
        // resourceVersion as a precondition (a stale one is refused, never applied). The cache may
        // not hold an object created a moment ago, so "not found" is asked again of etcd.
        let (client, name) = (&self.cluster.client, input.name.as_str());
        let get = |k: Kind, params: GetParams| {
            let what = what.clone();
            async move { k.api(client, ns).get_with(name, &params).await.map_err(|e| ToolError::kube(what, e)) }
        };
        let obj = match get(kind, GetParams::any()).await {
            Err(ToolError::NotFound(_)) => match (get(kind, GetParams::default()).await, kind.older()) {
                // Not found under the current version: an older apiserver may serve the kind under its older one.
                (Err(ToolError::NotFound(_)), Some(older)) => get(older, GetParams::default()).await?,
                (other, _) => other?,
            },
            other => other?,
        };
        Ok(GetOutput { kind: kind.kind.to_owned(), object: exported(kind.kind, &obj)? })
    }

    pub async fn events(&self, _caller: &Caller, input: EventsInput) -> Result<EventsOutput, ToolError> {
        const TOOL: &str = "events";
        let scope = &self.cluster.scope;
        let ns = kinds::optional_namespace(TOOL, scope, input.namespace.as_deref())?;
        let limit = kinds::cap(TOOL, "limit", input.limit.unwrap_or(50), 1, 500)? as usize;
        let since = input.since_seconds.map(|s| kinds::cap(TOOL, "since_seconds", s, 1, 604_800)).transpose()?;
        if let Some(t) = input.event_type.as_deref()
            && !matches!(t, "Normal" | "Warning")
        {
            return Err(ToolError::invalid(TOOL, format!("type must be Normal or Warning, got `{t}`")));
        }
        let kind =
            input.kind.as_deref().filter(|k| !k.is_empty()).map(|k| kinds::resolve(TOOL, scope, k)).transpose()?;
        let name = input.name.as_deref().filter(|n| !n.is_empty());
        if let Some(n) = name {
            kinds::name(TOOL, "name", n)?;
        }
        // Objects the events may be about: (kind, name) pairs; None = any.
        let mut subjects: Option<Vec<(String, String)>> = None;
        if let (Some(k), Some(n)) = (kind, name) {
            let mut list = vec![(k.kind.to_owned(), n.to_owned())];
            if input.include_related {
                let ns = ns.ok_or_else(|| ToolError::invalid(TOOL, "include_related needs a namespace"))?;
                let tree = self.workload_tree(TOOL, ns, k.kind, n).await?;
                list.extend(tree.replica_sets.iter().map(|rs| ("ReplicaSet".to_owned(), rs.name_any())));
                list.extend(tree.pods.iter().map(|p| ("Pod".to_owned(), p.name_any())));
            }
            subjects = Some(list);
        }
        let raw = match &subjects {
            Some(list) => self.events_about(ns, list).await?,
            None => self.list_events(ns).await?,
        };
        let now = jiff::Timestamp::now();
        let mut events: Vec<(Option<jiff::Timestamp>, EventSummary)> = raw
            .into_iter()
            .filter(|e| {
                let obj_kind = e.involved_object.kind.as_deref().unwrap_or_default();
                let obj_name = e.involved_object.name.as_deref().unwrap_or_default();
                match (&subjects, kind) {
                    (Some(list), _) => list.iter().any(|(k, n)| k == obj_kind && n == obj_name),
                    (None, Some(k)) => k.kind == obj_kind,
                    (None, None) => name.is_none_or(|n| n == obj_name),
                }
            })
            .filter(|e| input.event_type.as_deref().is_none_or(|t| e.type_.as_deref() == Some(t)))
            .filter(|e| input.reason.as_deref().is_none_or(|r| e.reason.as_deref() == Some(r)))
            .map(|e| (event_time(&e), event_summary(&e)))
            .filter(|(t, _)| match (since, t) {
                (Some(s), Some(t)) => now.as_second() - t.as_second() <= s,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.0));
        let truncated = events.len() > limit;
        let events: Vec<EventSummary> = events.into_iter().take(limit).map(|(_, e)| e).collect();
        Ok(EventsOutput { events, truncated })
    }

    /// Core v1 events that may be about these objects (kind, name); the caller keeps the ones
    /// that are. Up to [`MAX_EVENT_SUBJECTS`] objects with plain names, one field-selected read
    /// each, at once: the apiserver filters, so a namespace with thousands of events costs what the
    /// events asked for cost, not what the namespace holds. Otherwise the namespace's list.
    pub(crate) async fn events_about(
        &self,
        ns: Option<&str>,
        subjects: &[(String, String)],
    ) -> Result<Vec<Event>, ToolError> {
        // Nothing to escape in a field selector: kinds of letters, names of DNS characters.
        let plain = |(kind, name): &(String, String)| {
            kind.chars().all(|c| c.is_ascii_alphabetic())
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        let subjects: std::collections::BTreeSet<&(String, String)> = subjects.iter().collect();
        if subjects.is_empty() || subjects.len() > MAX_EVENT_SUBJECTS || !subjects.iter().all(|s| plain(s)) {
            return self.list_events(ns).await;
        }
        let client = &self.cluster.client;
        let scope = &self.cluster.scope;
        let reads = subjects.into_iter().map(|(kind, name)| async move {
            let lp = ListParams::default()
                .match_any()
                .fields(&format!("involvedObject.kind={kind},involvedObject.name={name}"));
            let api = match ns {
                Some(ns) => Api::<Event>::namespaced(client.clone(), ns),
                None => Api::<Event>::all(client.clone()),
            };
            api.list(&lp).await.map_err(|e| ToolError::kube(format!("list events about {kind}/{name}"), e))
        });
        let lists = futures::future::try_join_all(reads).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(lists
            .into_iter()
            .flat_map(|l| l.items)
            .filter(|e| scope.namespace_visible(e.metadata.namespace.as_deref().unwrap_or_default()))
            .filter(|e| seen.insert(e.metadata.uid.clone().or_else(|| e.metadata.name.clone())))
            .collect())
    }

    /// Core v1 events of one namespace or of every visible one.
    pub(crate) async fn list_events(&self, ns: Option<&str>) -> Result<Vec<Event>, ToolError> {
        let client = self.cluster.client.clone();
        // From the apiserver's watch cache, like `get_resource`: events are history, not preconditions.
        let lp = ListParams::default().match_any();
        match ns {
            Some(ns) => Ok(Api::<Event>::namespaced(client, ns)
                .list(&lp)
                .await
                .map_err(|e| ToolError::kube(format!("list events in {ns}"), e))?
                .items),
            None => {
                let scope = &self.cluster.scope;
                let list = Api::<Event>::all(client).list(&lp).await.map_err(|e| ToolError::kube("list events", e))?;
                Ok(list
                    .items
                    .into_iter()
                    .filter(|e| scope.namespace_visible(&e.metadata.namespace.clone().unwrap_or_default()))
                    .collect())
            }
        }
    }
}

/// The most recent time an event happened.
pub(crate) fn event_time(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub(crate) fn event_summary(e: &Event) -> EventSummary {
    EventSummary {
        time: event_time(e).map(|t| t.to_string()),
        event_type: e.type_.clone().unwrap_or_else(|| "Normal".into()),
        reason: e.reason.clone().unwrap_or_default(),
        object: format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default()
        ),
        namespace: e.metadata.namespace.clone().unwrap_or_default(),
        message: crate::redact::redact_text(e.message.as_deref().unwrap_or_default()).into_owned(),
        count: e.count.unwrap_or(1),
    }
}

/// An object as the tools return it: sanitized, then redacted.
fn exported(kind: &str, obj: &DynamicObject) -> Result<Value, ToolError> {
    let mut object = serde_json::to_value(obj)
        .map_err(|e| ToolError::Unavailable { what: "object encoding", why: e.to_string() })?;
    // Items of a list carry no kind of their own.
    if object.get("kind").is_none_or(Value::is_null) {
        object["kind"] = Value::from(kind);
    }
    sanitize_object(&mut object);
    crate::redact::redact_value(&mut object);
    Ok(object)
}

/// Strip what tools never return: managedFields, the last-applied
/// annotation (it repeats the object, Secret data included) and Secret data.
pub fn sanitize_object(object: &mut Value) {
    let is_secret = object.get("kind").and_then(Value::as_str) == Some("Secret");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if is_secret && let Some(obj) = object.as_object_mut() {
        let mut keys: Vec<String> = Vec::new();
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = obj.remove(field) {
                keys.extend(map.keys().cloned());
            }
        }
        keys.sort();
        keys.dedup();
        obj.insert("dataKeys".into(), Value::from(keys));
    }
}

/// One listing line from an object's metadata and its JSON (status and spec are read from `d`).
pub(crate) fn summarize_value(kind: &str, meta: &ObjectMeta, d: &Value) -> ItemSummary {
    let i = |path: &[&str]| {
        let mut v = d;
        for p in path {
            v = v.get(*p).unwrap_or(&Value::Null);
        }
        v.as_i64().unwrap_or(0)
    };
    let status = match kind {
        "Pod" => {
            let phase = d.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Unknown");
            let statuses =
                d.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let ready = statuses.iter().filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true)).count();
            let restarts: i64 = statuses.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum();
            let waiting: Vec<&str> =
                statuses.iter().filter_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str)).collect();
            let mut s = format!("{phase}, {ready}/{} ready, {restarts} restarts", statuses.len());
            if !waiting.is_empty() {
                s.push_str(&format!(", waiting: {}", waiting.join(",")));
            }
            s
        }
        "Deployment" | "StatefulSet" | "ReplicaSet" => format!(
            "{}/{} ready, {} updated, {} available",
            i(&["status", "readyReplicas"]),
            i(&["spec", "replicas"]),
            i(&["status", "updatedReplicas"]),
            i(&["status", "availableReplicas"])
        ),
        "DaemonSet" => format!("{}/{} ready", i(&["status", "numberReady"]), i(&["status", "desiredNumberScheduled"])),
        "Job" => format!(
            "{} succeeded, {} failed, {} active",
            i(&["status", "succeeded"]),
            i(&["status", "failed"]),
            i(&["status", "active"])
        ),
        "Node" => {
            let ready = d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
                .and_then(|c| c.get("status").and_then(Value::as_str))
                .unwrap_or("Unknown");
            let unsched = d.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
            format!("Ready={ready}{}", if unsched { ", cordoned" } else { "" })
        }
        "Secret" => {
            let n = d.get("data").and_then(Value::as_object).map_or(0, serde_json::Map::len);
            format!("{} keys, type {}", n, d.get("type").and_then(Value::as_str).unwrap_or("Opaque"))
        }
        "Event" => format!(
            "{} {}: {}",
            d.get("type").and_then(Value::as_str).unwrap_or_default(),
            d.get("reason").and_then(Value::as_str).unwrap_or_default(),
            d.get("message").and_then(Value::as_str).unwrap_or_default()
        ),
        "Namespace" => d.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    ItemSummary {
        kind: kind.to_owned(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        created: meta.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        labels: meta.labels.clone().unwrap_or_default(),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lose_their_data() {
        let mut obj = serde_json::json!({
            "kind": "Secret",
            "metadata": {"name": "db", "managedFields": [{}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}", "keep": "me"}},
            "data": {"password": "aHVudGVyMg==", "user": "YQ=="},
            "stringData": {"extra": "plain"},
        });
        sanitize_object(&mut obj);
        let text = obj.to_string();
        assert!(!text.contains("aHVudGVyMg") && !text.contains("plain") && !text.contains("managedFields"), "{text}");
        assert_eq!(obj["dataKeys"], serde_json::json!(["extra", "password", "user"]));
        assert_eq!(obj["metadata"]["annotations"]["keep"], "me");
    }
}
