//! Applying an approved proposal exactly once, and verifying the result.
//!
//! - The change carries its own precondition: `metadata.resourceVersion` in
//!   a merge/strategic patch, a leading `test` op in a JSON patch, a
//!   `preconditions.resourceVersion` on delete. An object changed since the
//!   proposal is never patched ([`ApplyError::TargetChanged`]): a newer
//!   resourceVersion is accepted (and pinned) only when the object's
//!   [`super::precondition`] fingerprint is the proposal's (a status write).
//! - The change also stamps `kubemedic.io/proposal: <id>` on the object, so
//!   a restarted daemon that finds a proposal stuck in `applying` can tell
//!   whether its patch landed ([`landing`]) and never applies it twice.
//! - [`await_rollout`] watches a rollout until it is complete, fails, or times out; verifying
//!   a change also needs its pods to stay healthy afterwards ([`super::verify`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::Api;
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use super::proposal::{Action, PatchType, Proposal, TargetRef};
use crate::cluster::Cluster;

/// Annotation the patch itself adds: which proposal last changed the object.
pub const PROPOSAL_ANNOTATION: &str = "kubemedic.io/proposal";
/// Field manager of every change kubemedic makes.
pub const FIELD_MANAGER: &str = "kubemedic";
/// How the reason recorded when the precondition fails begins.
pub const TARGET_CHANGED: &str = "target changed; diagnose again";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The stored target's namespace or name is not one the apiserver accepts.
    #[error("proposal target: {0}")]
    InvalidTarget(#[from] crate::names::NameError),
    /// The object changed (or vanished) since the proposal was made.
    #[error("target changed; diagnose again ({what}; resourceVersion {expected}, now {found})")]
    TargetChanged { expected: String, found: String, what: String },
    #[error("proposal has no resourceVersion to pin the change to; diagnose again")]
    NoPrecondition,
    #[error("cannot resolve {api_version} {kind}")]
    Discovery {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read {target}")]
    Read {
        target: String,
        #[source]
        source: kube::Error,
    },
    #[error("the apiserver refused the change to {target}: {message}")]
    Refused { target: String, message: String },
    #[error("invalid patch body: {0}")]
    Body(String),
}

impl ApplyError {
    /// Whether the incident should be diagnosed again.
    pub fn needs_rediagnosis(&self) -> bool {
        matches!(self, Self::TargetChanged { .. } | Self::NoPrecondition)
    }
}

/// A change that landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `metadata.generation` after the change (what the rollout must observe).
    pub generation: Option<i64>,
    pub resource_version: String,
    /// The patch was already on the object (found after a restart or a race).
    pub already: bool,
}

/// Whether a proposal's change is on the object.
#[derive(Debug, Clone, PartialEq)]
pub enum Landing {
    /// The object carries this proposal's annotation (or, for delete, is gone).
    Landed(Applied),
    /// Unchanged since the proposal: safe to apply now.
    NotLanded,
    /// Changed by someone else (`what`: which part).
    Changed { found: String, what: String },
}

/// Where the target lives.
struct Location {
    path: String,
    display: String,
}

async fn locate(cluster: &Cluster, t: &TargetRef) -> Result<Location, ApplyError> {
    // A stored proposal is not trusted to hold names fit for a path.
    crate::names::object_name(&t.name)?;
    let (group, version) = match t.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", t.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &t.kind);
    let (ar, caps) = kube::discovery::pinned_kind(&cluster.client, &gvk)
        .await
        .map_err(|source| ApplyError::Discovery { api_version: t.api_version.clone(), kind: t.kind.clone(), source })?;
    let base = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let path = match caps.scope {
        Scope::Namespaced => {
            crate::names::namespace(&t.namespace)?;
            format!("{base}/namespaces/{}/{}/{}", t.namespace, ar.plural, t.name)
        }
        Scope::Cluster => format!("{base}/{}/{}", ar.plural, t.name),
    };
    Ok(Location { path, display: display(t) })
}

fn display(t: &TargetRef) -> String {
    if t.namespace.is_empty() {
        format!("{} {}", t.kind, t.name)
    } else {
        format!("{} {}/{}", t.kind, t.namespace, t.name)
    }
}

fn api_status(err: &kube::Error) -> Option<(u16, String)> {
    match err {
        kube::Error::Api(s) => Some((s.code, s.message.clone())),
        _ => None,
    }
}

async fn get(cluster: &Cluster, loc: &Location) -> Result<Option<Value>, ApplyError> {
    let req = http::Request::get(&loc.path).body(Vec::new()).map_err(|e| ApplyError::Body(e.to_string()))?;
    match cluster.client.request::<Value>(req).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if api_status(&e).is_some_and(|(code, _)| code == 404) => Ok(None),
        Err(source) => Err(ApplyError::Read { target: loc.display.clone(), source }),
    }
}

fn rv_of(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn stamped_by(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(PROPOSAL_ANNOTATION)).and_then(Value::as_str)
}

fn applied_from(obj: &Value, already: bool) -> Applied {
    Applied {
        generation: obj.pointer("/metadata/generation").and_then(Value::as_i64),
        resource_version: rv_of(obj),
        already,
    }
}

/// The patch body with the precondition and the proposal annotation added.
pub fn guarded_body(
    p: &Proposal,
    patch_type: PatchType,
    body: &Value,
    live: &Value,
    rv: &str,
) -> Result<Value, ApplyError> {
    match patch_type {
        PatchType::Merge | PatchType::Strategic => {
            let mut body = body.clone();
            let obj =
                body.as_object_mut().ok_or_else(|| ApplyError::Body("a merge patch must be a JSON object".into()))?;
            let meta = obj.entry("metadata").or_insert_with(|| json!({}));
            let meta = meta.as_object_mut().ok_or_else(|| ApplyError::Body("metadata must be an object".into()))?;
            meta.insert("resourceVersion".into(), json!(rv));
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            let ann =
                ann.as_object_mut().ok_or_else(|| ApplyError::Body("metadata.annotations must be an object".into()))?;
            ann.insert(PROPOSAL_ANNOTATION.into(), json!(p.id));
            Ok(body)
        }
        PatchType::Json => {
            let ops = body.as_array().ok_or_else(|| ApplyError::Body("a JSON patch must be an array".into()))?;
            let mut out = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
            out.extend(ops.iter().cloned());
            if live.pointer("/metadata/annotations").is_some_and(Value::is_object) {
                out.push(json!({"op": "add", "path": "/metadata/annotations/kubemedic.io~1proposal", "value": p.id}));
            } else {
                out.push(json!({"op": "add", "path": "/metadata/annotations", "value": {PROPOSAL_ANNOTATION: p.id}}));
            }
            Ok(Value::Array(out))
        }
    }
}

fn content_type(t: PatchType) -> &'static str {
    match t {
        PatchType::Strategic => "application/strategic-merge-patch+json",
        PatchType::Merge => "application/merge-patch+json",
        PatchType::Json => "application/json-patch+json",
    }
}

/// Is the proposal's change on the object? (For resuming `applying` after a crash.)
pub async fn landing(cluster: &Cluster, p: &Proposal) -> Result<Landing, ApplyError> {
    let expected = p.target.resource_version.clone().ok_or(ApplyError::NoPrecondition)?;
    let loc = locate(cluster, &p.target).await?;
    let live = get(cluster, &loc).await?;
    Ok(match (live, &p.action) {
        (None, Action::Delete) => {
            Landing::Landed(Applied { generation: None, resource_version: String::new(), already: true })
        }
        (None, _) => Landing::Changed { found: "deleted".into(), what: "the object was deleted".into() },
        (Some(obj), _) if stamped_by(&obj) == Some(p.id.as_str()) => Landing::Landed(applied_from(&obj, true)),
        (Some(obj), _) => match changed_since(p, &expected, &obj) {
            None => Landing::NotLanded,
            Some(what) => Landing::Changed { found: rv_of(&obj), what },
        },
    })
}

/// What changed in `live` since the proposal, if anything it was computed from did.
fn changed_since(p: &Proposal, expected: &str, live: &Value) -> Option<String> {
    if rv_of(live) == expected {
        return None;
    }
    match &p.target.content_digest {
        Some(pinned) => {
            let parts = super::precondition::changed(pinned, live);
            (!parts.is_empty()).then(|| format!("{} changed since the proposal", parts.join(", ")))
        }
        // Cannot tell a status write from an edit: refuse.
        None => Some("the object changed and the proposal has no fingerprint to compare".into()),
    }
}

/// A refusal that a write landing between our read and our PATCH causes (409 for a failed
/// resourceVersion precondition; a failed JSON-patch `test` is 422, or 500 on older apiservers).
fn is_precondition_failure(err: &kube::Error) -> bool {
    api_status(err).is_some_and(|(code, _)| matches!(code, 409 | 422 | 500))
}

/// Attempts when status writes keep landing between our read and our PATCH.
const ATTEMPTS: u32 = 3;

/// Apply the proposal's action once, guarded by the resourceVersion precondition (re-pinned
/// to a newer version only when nothing the proposal was computed from changed).
/// `sent` counts the mutating requests actually sent (exactly-once evidence and a metric).
pub async fn apply(cluster: &Cluster, p: &Proposal, sent: &AtomicU64) -> Result<Applied, ApplyError> {
    let expected = p.target.resource_version.clone().ok_or(ApplyError::NoPrecondition)?;
    let loc = locate(cluster, &p.target).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(live) = get(cluster, &loc).await? else {
            if matches!(p.action, Action::Delete) {
                return Ok(Applied { generation: None, resource_version: String::new(), already: true });
            }
            let what = "the object was deleted".into();
            return Err(ApplyError::TargetChanged { expected, found: "deleted".into(), what });
        };
        if stamped_by(&live) == Some(p.id.as_str()) {
            return Ok(applied_from(&live, true));
        }
        let found = rv_of(&live);
        if let Some(what) = changed_since(p, &expected, &live) {
            return Err(ApplyError::TargetChanged { expected, found, what });
        }
        // Only status moved: pin the precondition to the version just read, so any write
        // between this read and the PATCH is still refused.
        let req = request(p, &loc, &live, &found)?;
        sent.fetch_add(1, Ordering::SeqCst);
        match cluster.client.request::<Value>(req).await {
            Ok(obj) if matches!(p.action, Action::Delete) => {
                return Ok(Applied { generation: None, resource_version: rv_of(&obj), already: false });
            }
            Ok(obj) => return Ok(applied_from(&obj, false)),
            Err(err) => {
                // Someone may have applied this very proposal meanwhile (a resumed replica): look.
                match landing(cluster, p).await? {
                    Landing::Landed(applied) => return Ok(applied),
                    Landing::Changed { found, what } => {
                        return Err(ApplyError::TargetChanged { expected, found, what });
                    }
                    Landing::NotLanded if attempt < ATTEMPTS && is_precondition_failure(&err) => {
                        tracing::debug!(proposal = %p.id, attempt, "the object moved under the PATCH (status only); again");
                    }
                    Landing::NotLanded => {
                        let message = match api_status(&err) {
                            Some((code, msg)) => format!("{msg} ({code})"),
                            None => crate::model::error::error_chain(&err),
                        };
                        return Err(ApplyError::Refused { target: loc.display, message });
                    }
                }
            }
        }
    }
}

/// The guarded PATCH or DELETE request, pinned to `rv`.
fn request(p: &Proposal, loc: &Location, live: &Value, rv: &str) -> Result<http::Request<Vec<u8>>, ApplyError> {
    match &p.action {
        Action::Patch { patch_type, body } => {
            let body = guarded_body(p, *patch_type, body, live, rv)?;
            let bytes = serde_json::to_vec(&body).map_err(|e| ApplyError::Body(e.to_string()))?;
            http::Request::patch(format!("{}?fieldManager={FIELD_MANAGER}", loc.path))
                .header(http::header::CONTENT_TYPE, content_type(*patch_type))
                .body(bytes)
        }
        Action::Delete => {
            let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv}});
            http::Request::delete(&loc.path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).map_err(|e| ApplyError::Body(e.to_string()))?)
        }
    }
    .map_err(|e| ApplyError::Body(e.to_string()))
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy(String),
    Unhealthy(String),
}

/// A condition set no later than `since` (whole seconds, as the apiserver stores them) is
/// about an earlier rollout: after a rollback the old ProgressDeadlineExceeded lingers for a
/// moment. A deadline our change missed is set progressDeadlineSeconds after it, so later.
fn current(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, since: jiff::Timestamp) -> bool {
    t.is_none_or(|t| t.0.as_second() > since.as_second())
}

pub(super) fn deployment_state(d: &Deployment, generation: i64, since: jiff::Timestamp) -> Option<Verdict> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.as_ref()?;
    if st.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    if let Some(c) = st.conditions.iter().flatten().find(|c| c.type_ == "Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        && current(c.last_update_time.as_ref(), since)
    {
        return Some(Verdict::Unhealthy(format!(
            "rollout exceeded its progress deadline: {}",
            c.message.clone().unwrap_or_default()
        )));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    (updated == want && available == want && total == want && st.unavailable_replicas.unwrap_or(0) == 0)
        .then(|| Verdict::Healthy(format!("{updated}/{want} replicas updated and available")))
}

pub(super) fn statefulset_state(s: &StatefulSet, generation: i64, _since: jiff::Timestamp) -> Option<Verdict> {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = s.status.as_ref()?;
    if st.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    (ready == want && updated == want && st.current_revision == st.update_revision)
        .then(|| Verdict::Healthy(format!("{ready}/{want} replicas updated and ready")))
}

pub(super) fn daemonset_state(d: &DaemonSet, generation: i64, _since: jiff::Timestamp) -> Option<Verdict> {
    let st = d.status.as_ref()?;
    if st.observed_generation.unwrap_or(0) < generation {
        return None;
    }
    let want = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    (updated == want && available == want)
        .then(|| Verdict::Healthy(format!("{available}/{want} pods updated and available")))
}

/// Watch the rollout of `p.target` until it is complete, definitely failed, or `timeout`
/// passes. Complete is not verified: a change is verified by [`super::verify::verify`].
pub async fn await_rollout(cluster: &Cluster, p: &Proposal, applied: &Applied, timeout: Duration) -> Verdict {
    let t = &p.target;
    let generation = applied.generation.unwrap_or(0);
    let since = jiff::Timestamp::now();
    if matches!(p.action, Action::Delete) {
        return Verdict::Healthy(format!("{} deleted", display(t)));
    }
    let client = cluster.client.clone();
    macro_rules! watch {
        ($ty:ty, $state:ident, $describe:expr) => {{
            let api: Api<$ty> = Api::namespaced(client, &t.namespace);
            let cond = move |o: Option<&$ty>| o.is_none() || o.and_then(|o| $state(o, generation, since)).is_some();
            match tokio::time::timeout(timeout, await_condition(api.clone(), &t.name, cond)).await {
                Ok(Ok(Some(obj))) => {
                    $state(&obj, generation, since).unwrap_or_else(|| Verdict::Unhealthy("unknown".into()))
                }
                Ok(Ok(None)) => Verdict::Unhealthy(format!("{} was deleted during the rollout", display(t))),
                Ok(Err(e)) => Verdict::Unhealthy(format!("cannot watch the rollout: {e}")),
                Err(_) => {
                    let now = api.get_opt(&t.name).await.ok().flatten();
                    Verdict::Unhealthy(format!(
                        "rollout not healthy after {}s: {}",
                        timeout.as_secs(),
                        now.as_ref().map($describe).unwrap_or_else(|| "object not found".into())
                    ))
                }
            }
        }};
    }
    match (t.api_version.as_str(), t.kind.as_str()) {
        ("apps/v1", "Deployment") => watch!(Deployment, deployment_state, |d: &Deployment| {
            let st = d.status.clone().unwrap_or_default();
            format!(
                "{} updated, {} available, {} unavailable of {}",
                st.updated_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                st.unavailable_replicas.unwrap_or(0),
                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
            )
        }),
        ("apps/v1", "StatefulSet") => watch!(StatefulSet, statefulset_state, |s: &StatefulSet| {
            let st = s.status.clone().unwrap_or_default();
            format!(
                "{} ready, {} updated of {}",
                st.ready_replicas.unwrap_or(0),
                st.updated_replicas.unwrap_or(0),
                st.replicas
            )
        }),
        ("apps/v1", "DaemonSet") => watch!(DaemonSet, daemonset_state, |d: &DaemonSet| {
            let st = d.status.clone().unwrap_or_default();
            format!("{} available of {}", st.number_available.unwrap_or(0), st.desired_number_scheduled)
        }),
        _ => Verdict::Healthy(format!("{} changed; it has no rollout to watch", display(t))),
    }
}

/// A rollback for a Deployment whose change failed verification: the
/// template of the newest earlier ReplicaSet revision, as `kubectl rollout
/// undo` would pick, as a JSON patch pinned to the live resourceVersion.
/// `None` when there is nothing to roll back to (or not a Deployment).
pub async fn rollback_patch(cluster: &Cluster, t: &TargetRef) -> Result<Option<(Value, String)>, ApplyError> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    if t.kind != "Deployment" {
        return Ok(None);
    }
    let read = |source| ApplyError::Read { target: display(t), source };
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &t.namespace);
    let Some(d) = deployments.get_opt(&t.name).await.map_err(read)? else { return Ok(None) };
    let revision = |m: &kube::api::ObjectMeta| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse::<i64>().ok())
    };
    let current = revision(&d.metadata).unwrap_or(0);
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let rss: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &t.namespace);
    let list = rss.list(&Default::default()).await.map_err(read)?;
    let mut owned: Vec<(i64, ReplicaSet)> = list
        .items
        .into_iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
        .filter_map(|rs| revision(&rs.metadata).map(|r| (r, rs)))
        .filter(|(r, _)| *r < current)
        .collect();
    owned.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    let Some((rev, rs)) = owned.into_iter().next() else { return Ok(None) };
    let Some(mut template) = rs.spec.and_then(|s| s.template) else { return Ok(None) };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let mut template = serde_json::to_value(template).map_err(|e| ApplyError::Body(e.to_string()))?;
    // Empty objects are server defaults (`securityContext: {}`); the apiserver adds them
    // back, and leaving them out keeps the patch to what actually differs.
    prune_empty(&mut template);
    Ok(Some((json!([{"op": "replace", "path": "/spec/template", "value": template}]), format!("revision {rev}"))))
}

fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(prune_empty);
            map.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proposal `p1` on Deployment `shop/web`, pinned to resourceVersion 42.
    fn proposal() -> Proposal {
        let target = TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: Some("42".into()),
            generation: None,
            content_digest: None,
        };
        let action = Action::Patch { patch_type: PatchType::Merge, body: json!({"spec": {"replicas": 2}}) };
        let now = jiff::Timestamp::now();
        Proposal { id: "p1".into(), ..Proposal::new("local", target, action, now, jiff::SignedDuration::from_hours(1)) }
    }

    #[test]
    fn empty_defaults_are_pruned() {
        let mut v =
            json!({"spec": {"securityContext": {}, "containers": [{"name": "a", "resources": {"limits": {}}}]}});
        prune_empty(&mut v);
        assert_eq!(v, json!({"spec": {"containers": [{"name": "a"}]}}));
    }

    #[test]
    fn merge_patch_carries_precondition_and_annotation() {
        let p = proposal();
        let body = json!({"spec": {"replicas": 2}, "metadata": {"labels": {"a": "b"}}});
        let got = guarded_body(&p, PatchType::Merge, &body, &json!({}), "42").unwrap();
        assert_eq!(
            got,
            json!({"spec": {"replicas": 2}, "metadata": {"labels": {"a": "b"}, "resourceVersion": "42",
                   "annotations": {"kubemedic.io/proposal": "p1"}}})
        );
        assert!(guarded_body(&p, PatchType::Merge, &json!([]), &json!({}), "42").is_err());
    }

    #[test]
    fn json_patch_starts_with_a_test_op() {
        let p = proposal();
        let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]);
        let bare = guarded_body(&p, PatchType::Json, &ops, &json!({"metadata": {}}), "7").unwrap();
        assert_eq!(bare[0], json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"}));
        assert_eq!(bare[1], ops[0]);
        assert_eq!(
            bare[2],
            json!({"op": "add", "path": "/metadata/annotations", "value": {"kubemedic.io/proposal": "p1"}})
        );
        let annotated =
            guarded_body(&p, PatchType::Json, &ops, &json!({"metadata": {"annotations": {"x": "y"}}}), "7").unwrap();
        assert_eq!(annotated[2]["path"], "/metadata/annotations/kubemedic.io~1proposal");
    }

    #[test]
    fn deployment_health() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let since: jiff::Timestamp = "2026-11-25T18:00:00Z".parse().unwrap();
        assert_eq!(deployment_state(&d, 3, since), None, "old generation not observed yet");
        assert!(matches!(deployment_state(&d, 2, since), Some(Verdict::Healthy(_))));
        let stuck: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
                       "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow",
                                       "lastUpdateTime": "2026-11-25T18:00:05Z"}]}
        }))
        .unwrap();
        assert_eq!(
            deployment_state(&stuck, 3, since),
            Some(Verdict::Unhealthy("rollout exceeded its progress deadline: too slow".into()))
        );
        let later: jiff::Timestamp = "2026-11-25T18:01:00Z".parse().unwrap();
        assert_eq!(deployment_state(&stuck, 3, later), None, "a deadline from an earlier rollout is ignored");
    }
}
