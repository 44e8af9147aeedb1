//! The patch policy every proposal passes before a human sees it, and the
//! one function that turns a runner's draft into an offerable
//! [`Proposal`]: [`prepare`].
//!
//! `prepare` fetches the live target (pinning its resourceVersion), checks
//! the policy (kinds, namespaces, allowed field paths, caps, no
//! privilege-escalation fields), runs the patch as a server-side dry-run
//! under kubemedic's own field manager, checks what the dry-run says would
//! change, and renders a unified diff. A draft that fails any step is a
//! [`Refusal`] with a reason, never a proposal.

pub mod check;
pub mod diff;
pub mod quantity;
pub mod target;
pub mod tier;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::model::diagnosis::RefusedProposal;
use crate::model::proposal::{Action, Drafter, PatchType, Proposal, ProposalEvent, Risk, TargetRef};

/// What proposals may change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Field paths a patch may change, as globs: `.` between fields, `name[]`
    /// for any element of a list, `*` for one field, `**` (last) for anything below.
    pub allowed_paths: Vec<String>,
    /// Namespaces no proposal may touch.
    pub forbidden_namespaces: Vec<String>,
    /// Kinds no proposal may touch (case-insensitive).
    pub forbidden_kinds: Vec<String>,
    /// Kinds a proposal may delete (case-insensitive).
    pub deletable_kinds: Vec<String>,
    /// Largest factor by which a proposal may raise a container's memory limit or request.
    pub max_memory_raise_factor: f64,
    /// Largest memory limit or request a proposal may set (a Kubernetes quantity).
    pub max_memory_limit: String,
    /// Largest cpu limit or request a proposal may set (a Kubernetes quantity).
    pub max_cpu_limit: String,
    /// Largest factor by which a proposal may raise a container's cpu limit or request.
    pub max_cpu_raise_factor: f64,
    /// Largest factor by which a proposal may raise a container's ephemeral-storage limit or request.
    pub max_ephemeral_storage_raise_factor: f64,
    /// Largest ephemeral-storage limit or request a proposal may set (a Kubernetes quantity).
    pub max_ephemeral_storage_limit: String,
    /// Largest replica count a proposal may set.
    pub max_replicas: i64,
    /// kubemedic's own namespace, which model and MCP drafts may not touch
    /// (default: `POD_NAMESPACE`, which the chart sets).
    pub own_namespace: Option<String>,
    /// What each drafter may propose within the rules above: `builtin`,
    /// `llm` and `mcp` (see [`tier`]).
    pub tiers: tier::TiersConfig,
}

/// Paths a remediation typically needs, container fields written for both
/// `containers` and `initContainers`.
const DEFAULT_ALLOWED_PATHS: &[&str] = &[
    "spec.replicas",
    "spec.unschedulable",
    "metadata.annotations.**",
    "spec.template.metadata.annotations.**",
    "spec.template.metadata.labels.**",
    "spec.template.spec.nodeSelector.**",
    "spec.template.spec.volumes[].configMap.**",
    "spec.template.spec.volumes[].secret.**",
    // A Service's selector and target ports, an Ingress's backends: what a broken
    // Service → pods or Ingress → Service link is fixed with.
    "spec.selector.*",
    "spec.ports[].targetPort",
    "spec.rules[].http.paths[].backend.service.**",
    "spec.defaultBackend.service.**",
];
const DEFAULT_CONTAINER_PATHS: &[&str] = &[
    "image",
    "imagePullPolicy",
    "command.**",
    "args.**",
    "env.**",
    "envFrom.**",
    "ports.**",
    "resources.**",
    "readinessProbe.**",
    "livenessProbe.**",
    "startupProbe.**",
];

impl Default for PolicyConfig {
    fn default() -> Self {
        let mut allowed_paths: Vec<String> = DEFAULT_ALLOWED_PATHS.iter().map(|p| (*p).to_owned()).collect();
        for list in ["containers", "initContainers"] {
            for field in DEFAULT_CONTAINER_PATHS {
                allowed_paths.push(format!("spec.template.spec.{list}[].{field}"));
            }
        }
        Self {
            allowed_paths,
            forbidden_namespaces: vec!["kube-system".into(), "kube-public".into(), "kube-node-lease".into()],
            forbidden_kinds: [
                "Secret",
                "ServiceAccount",
                "Role",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
                "Namespace",
                "CustomResourceDefinition",
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration",
                "PersistentVolume",
            ]
            .iter()
            .map(|k| (*k).to_owned())
            .collect(),
            deletable_kinds: vec!["Pod".into()],
            max_memory_raise_factor: 2.0,
            max_memory_limit: "8Gi".into(),
            max_cpu_limit: "8".into(),
            max_cpu_raise_factor: 2.0,
            max_ephemeral_storage_raise_factor: 4.0,
            max_ephemeral_storage_limit: "20Gi".into(),
            max_replicas: 50,
            own_namespace: std::env::var("POD_NAMESPACE").ok().filter(|n| !n.trim().is_empty()),
            tiers: tier::TiersConfig::default(),
        }
    }
}

impl PolicyConfig {
    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_memory_raise_factor.is_nan() || self.max_memory_raise_factor < 1.0 {
            return Err(format!("policy.max_memory_raise_factor must be >= 1, got {}", self.max_memory_raise_factor));
        }
        if self.max_cpu_raise_factor.is_nan() || self.max_cpu_raise_factor < 1.0 {
            return Err(format!("policy.max_cpu_raise_factor must be >= 1, got {}", self.max_cpu_raise_factor));
        }
        if self.max_ephemeral_storage_raise_factor.is_nan() || self.max_ephemeral_storage_raise_factor < 1.0 {
            return Err(format!(
                "policy.max_ephemeral_storage_raise_factor must be >= 1, got {}",
                self.max_ephemeral_storage_raise_factor
            ));
        }
        for (field, q) in [
            ("max_memory_limit", &self.max_memory_limit),
            ("max_cpu_limit", &self.max_cpu_limit),
            ("max_ephemeral_storage_limit", &self.max_ephemeral_storage_limit),
        ] {
            if quantity::parse(q).is_none() {
                return Err(format!("policy.{field}: {q:?} is not a Kubernetes quantity"));
            }
        }
        crate::names::namespace_list("policy.forbidden_namespaces", &self.forbidden_namespaces)
            .map_err(|e| e.to_string())?;
        for p in &self.allowed_paths {
            if let Some(i) = p.find("**")
                && i + 2 != p.len()
            {
                return Err(format!("policy.allowed_paths: `**` may only end a pattern: {p}"));
            }
        }
        for n in self.forbidden_namespaces.iter().chain(&self.own_namespace) {
            if !check::is_namespace_name(n) {
                return Err(format!("policy: {n:?} is not a namespace name (lowercase DNS-1123 label)"));
            }
        }
        self.tiers.validate()
    }
}

/// What a runner wants changed, before policy and dry-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProposalDraft {
    pub incident_id: Option<String>,
    /// The target; `api_version` may be empty (filled in from the kind), and a
    /// `resource_version` set here must still be the live one.
    pub target: TargetRef,
    pub action: Action,
    /// Why this change fixes the root cause.
    pub rationale: String,
    /// Lowest risk class to report; the computed class is used when higher.
    pub risk: Option<Risk>,
    /// Who (or which rule/runner) asked for it.
    pub requested_by: String,
    /// Who may approve; empty = anyone with the approver role.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Seconds until the proposal expires.
    pub ttl_seconds: u64,
}

impl ProposalDraft {
    /// A patch against `kind namespace/name`, expiring after an hour.
    pub fn patch(kind: &str, namespace: &str, name: &str, patch_type: PatchType, body: Value, rationale: &str) -> Self {
        Self {
            incident_id: None,
            target: TargetRef {
                api_version: target::kind_info(kind).map(|k| k.api_version.to_owned()).unwrap_or_default(),
                kind: kind.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                resource_version: None,
                generation: None,
                content_digest: None,
            },
            action: Action::Patch { patch_type, body },
            rationale: rationale.to_owned(),
            risk: None,
            requested_by: "kubemedic".into(),
            approvers: Vec::new(),
            ttl_seconds: 3600,
        }
    }

    /// `Kind namespace/name` (or `Kind name` when cluster-scoped).
    pub fn target_display(&self) -> String {
        display_target(&self.target)
    }
}

fn display_target(t: &TargetRef) -> String {
    if t.namespace.is_empty() {
        format!("{} {}", t.kind, t.name)
    } else {
        format!("{} {}/{}", t.kind, t.namespace, t.name)
    }
}

/// Which check refused a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalStage {
    /// The patch policy (kinds, namespaces, fields, caps, privileges).
    Policy,
    /// Outside kubemedic's configured scope.
    Scope,
    /// The live target could not be read (missing, changed, forbidden).
    Target,
    /// The apiserver's dry-run rejected the change.
    DryRun,
}

/// A draft that must not be offered, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize, JsonSchema)]
#[error("proposal for {target} refused ({stage:?}): {reason}")]
pub struct Refusal {
    pub target: String,
    pub stage: RefusalStage,
    pub reason: String,
}

impl From<Refusal> for RefusedProposal {
    fn from(r: Refusal) -> Self {
        let stage = match r.stage {
            RefusalStage::Policy => "policy",
            RefusalStage::Scope => "scope",
            RefusalStage::Target => "target",
            RefusalStage::DryRun => "dry-run",
        };
        RefusedProposal { target: r.target, reason: format!("{stage}: {}", r.reason) }
    }
}

impl Refusal {
    /// The refused draft as a record an operator can find: a proposal in the terminal
    /// state `refused`, its reason in the history and in `outcome`, requested by whoever
    /// drafted it. Every text in it (reason, rationale, patch body) has passed the
    /// redaction gate; nothing in it can be approved or applied.
    pub fn record(&self, cluster: &str, drafter: Drafter, draft: ProposalDraft) -> Proposal {
        let now = Timestamp::now();
        let ttl = jiff::SignedDuration::from_secs(i64::try_from(draft.ttl_seconds.max(60)).unwrap_or(3600));
        let mut target = draft.target;
        if target.api_version.is_empty()
            && let Some(info) = target::kind_info(&target.kind)
        {
            target.api_version = info.api_version.to_owned();
        }
        let mut p = Proposal {
            incident_id: draft.incident_id,
            rationale: draft.rationale,
            // Never computed (the draft stopped before the diff): the drafter's claim, else the floor.
            risk: draft.risk.unwrap_or(Risk::Low),
            drafter,
            approvers: draft.approvers,
            requested_by: draft.requested_by,
            ..Proposal::new(cluster, target, draft.action, now, ttl)
        };
        let reason = crate::redact::gate().text(&RefusedProposal::from(self.clone()).reason).into_owned();
        // Proposed → Refused is a transition the state machine allows; it cannot fail here.
        if let Err(e) = p.transition(&ProposalEvent::Refuse { reason: reason.clone() }, "policy", now) {
            tracing::error!(error = %e, "cannot mark a refused draft refused");
        }
        p.outcome = Some(reason);
        crate::redact::gate().typed(p)
    }
}

/// Check a draft against the policy (the global rules and the tier of
/// `drafter`, which the caller knows and the draft cannot say) and a
/// server-side dry-run, and build the proposal a human may approve; anything
/// else is a [`Refusal`].
pub async fn prepare(
    cluster: &Cluster,
    policy: &PolicyConfig,
    drafter: Drafter,
    draft: ProposalDraft,
) -> Result<Proposal, Refusal> {
    let who = draft.target_display();
    let tier = policy.tiers.resolve(drafter);
    let refuse = |stage, reason: String| Refusal { target: who.clone(), stage, reason };
    let t = &draft.target;
    let info = target::kind_info(&t.kind).ok_or_else(|| {
        let known: Vec<&str> = target::KINDS.iter().map(|k| k.kind).collect();
        refuse(
            RefusalStage::Policy,
            format!("kind {} is not one proposals can target (known: {})", t.kind, known.join(", ")),
        )
    })?;
    if !t.api_version.is_empty() && t.api_version != info.api_version {
        return Err(refuse(
            RefusalStage::Policy,
            format!("apiVersion {} does not match {} {}", t.api_version, info.api_version, info.kind),
        ));
    }
    if t.name.is_empty() || (info.namespaced && t.namespace.is_empty()) {
        return Err(refuse(RefusalStage::Policy, "target needs a name and, for namespaced kinds, a namespace".into()));
    }
    let namespace = if info.namespaced { t.namespace.as_str() } else { "" };
    crate::names::object_name(&t.name).map_err(|e| refuse(RefusalStage::Policy, format!("target {e}")))?;
    if info.namespaced {
        crate::names::namespace(namespace).map_err(|e| refuse(RefusalStage::Policy, format!("target {e}")))?;
    }
    let delete = matches!(draft.action, Action::Delete);
    check::target(policy, info.kind, namespace, delete).map_err(|r| refuse(RefusalStage::Policy, r))?;
    tier::target(&tier, namespace, policy.own_namespace.as_deref()).map_err(|r| refuse(RefusalStage::Policy, r))?;
    if (info.namespaced && !cluster.scope.namespace_visible(namespace)) || !cluster.scope.kind_visible(info.kind) {
        return Err(refuse(RefusalStage::Scope, "the target is outside kubemedic's configured scope".into()));
    }
    if let Action::Patch { body, patch_type } = &draft.action {
        check::body(body).map_err(|r| refuse(RefusalStage::Policy, r))?;
        let shape_ok = match patch_type {
            PatchType::Json => body.is_array(),
            PatchType::Strategic | PatchType::Merge => body.is_object(),
        };
        if !shape_ok {
            return Err(refuse(
                RefusalStage::Policy,
                format!(
                    "a {patch_type:?} patch body must be a JSON {}",
                    if body.is_array() { "object" } else { "array" }
                ),
            ));
        }
    }

    let path = target::object_path(&info, namespace, &t.name);
    // The dry-run is pinned to the version just read; when the object moves
    // under it (a status update), read again and retry a few times.
    let mut attempt = 0;
    let (live, live_rv, after, delete_note) = loop {
        attempt += 1;
        let live = target::get(&cluster.client, &path).await.map_err(|e| {
            let why = if target::is_not_found(&e) { "does not exist".to_owned() } else { target::describe(&e) };
            refuse(RefusalStage::Target, format!("cannot read the live object: {why}"))
        })?;
        let live_rv = live.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some(rv) = &t.resource_version
            && *rv != live_rv
        {
            return Err(refuse(
                RefusalStage::Target,
                format!(
                    "the object changed since it was diagnosed (resourceVersion {rv}, now {live_rv}); diagnose again"
                ),
            ));
        }
        let result = match &draft.action {
            Action::Patch { patch_type, body } => {
                let mut body = body.clone();
                if matches!(patch_type, PatchType::Strategic | PatchType::Merge)
                    && let Some(obj) = body.as_object_mut()
                {
                    let meta = obj.entry("metadata").or_insert_with(|| serde_json::json!({}));
                    if let Some(meta) = meta.as_object_mut() {
                        meta.insert("resourceVersion".into(), Value::String(live_rv.clone()));
                    }
                }
                target::dry_run_patch(&cluster.client, &path, *patch_type, &body).await.map(|after| (after, None))
            }
            Action::Delete => target::dry_run_delete(&cluster.client, &path, &live_rv)
                .await
                .map(|_| (Value::Null, Some(format!("delete {who}")))),
        };
        match result {
            Ok((after, note)) => break (live, live_rv, after, note),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 4 && t.resource_version.is_none() => continue,
            Err(e) => return Err(refuse(RefusalStage::DryRun, target::describe(&e))),
        }
    };

    let before = diff::strip(&live);
    let label = display_target(t);
    let (changes, text) = if delete {
        (Vec::new(), format!("--- {label} (live)\n+++ {label} (deleted)\n{}", delete_note.unwrap_or_default()))
    } else {
        let proposed = diff::strip(&after);
        let changes = diff::changes(&before, &proposed);
        let facts = facts(cluster, &tier, &info, namespace, &live, &changes).await;
        review(policy, &tier, &before, &proposed, &changes, &facts).map_err(|r| refuse(RefusalStage::Policy, r))?;
        // Humans see the diff of the redacted objects: context lines around a change
        // (an env literal next to an image) must not carry a secret.
        let text = diff::unified(&redacted(&before), &redacted(&proposed), &label);
        (changes, text)
    };
    let computed = check::risk(info.kind, delete, &changes);
    let risk = draft.risk.map_or(computed, |r| r.max(computed));

    let now = Timestamp::now();
    let ttl = jiff::SignedDuration::from_secs(i64::try_from(draft.ttl_seconds.max(60)).unwrap_or(3600));
    let target = TargetRef {
        api_version: info.api_version.to_owned(),
        kind: info.kind.to_owned(),
        namespace: namespace.to_owned(),
        name: t.name.clone(),
        resource_version: Some(live_rv),
        generation: live.pointer("/metadata/generation").and_then(Value::as_i64),
        content_digest: Some(crate::model::precondition::fingerprint(&live)),
    };
    Ok(Proposal {
        incident_id: draft.incident_id,
        diff: text,
        rationale: draft.rationale,
        risk,
        drafter,
        approvers: draft.approvers,
        requested_by: draft.requested_by,
        ..Proposal::new(cluster.name.clone(), target, draft.action, now, ttl)
    })
}

/// A copy of `object` through the redaction gate.
fn redacted(object: &Value) -> Value {
    let mut v = object.clone();
    crate::redact::gate().value(&mut v);
    v
}

/// The policy's verdict on what a patch would change (live object against
/// the dry-run result, both stripped): the global rules, then the tier.
pub fn review(
    policy: &PolicyConfig,
    tier: &tier::TierPolicy,
    before: &Value,
    proposed: &Value,
    changes: &[diff::Change],
    facts: &tier::Facts,
) -> Result<(), String> {
    check::changes(policy, changes)?;
    check::caps(policy, before, proposed)?;
    tier::changes(tier, before, proposed, changes, facts)
}

/// Read what the tier's checks need, only when the change needs it. A read
/// that fails leaves the fact empty, which the checks treat as "refuse".
async fn facts(
    cluster: &Cluster,
    tier: &tier::TierPolicy,
    info: &target::KindInfo,
    namespace: &str,
    live: &Value,
    changes: &[diff::Change],
) -> tier::Facts {
    let mut facts = tier::Facts::default();
    if !info.namespaced {
        facts.selector_keys = Some(Default::default());
        return facts;
    }
    let base = |plural: &str, api: &str| target::collection_path(api, plural, namespace);
    let touches_image = changes.iter().any(|c| c.path.last().is_some_and(|s| s == "image"));
    if tier.images == tier::ImageRule::Known && touches_image {
        let uid = live.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
        let list = match info.kind {
            "Deployment" => Some(base("replicasets", "apps/v1")),
            "StatefulSet" | "DaemonSet" => Some(base("controllerrevisions", "apps/v1")),
            _ => None,
        };
        if let Some(path) = list {
            match target::get(&cluster.client, &path).await {
                Ok(list) => facts.earlier_images = tier::revision_images(&list, uid),
                Err(e) => {
                    tracing::warn!(error = %target::describe(&e), "cannot read earlier revisions for the image check")
                }
            }
        }
    }
    let touches_labels = changes
        .iter()
        .any(|c| c.path.starts_with(&["spec".into(), "template".into(), "metadata".into(), "labels".into()]));
    if !tier.selector_labels && touches_labels {
        match target::get(&cluster.client, &base("services", "v1")).await {
            Ok(list) => {
                let mut keys = tier::service_selector_keys(&list);
                keys.extend(tier::workload_selector_keys(live));
                facts.selector_keys = Some(keys);
            }
            Err(e) => {
                tracing::warn!(error = %target::describe(&e), "cannot read Service selectors for the label check")
            }
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        PolicyConfig::default().validate().unwrap();
        let bad = PolicyConfig { max_memory_limit: "lots".into(), ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("max_memory_limit"));
    }

    #[test]
    fn config_denies_unknown_fields() {
        let err = serde_yaml_ng::from_str::<PolicyConfig>("max_memroy_limit: 1Gi\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let ok: PolicyConfig = serde_yaml_ng::from_str("max_memory_limit: 2Gi\n").unwrap();
        assert_eq!(ok.max_memory_limit, "2Gi");
        assert!(!ok.allowed_paths.is_empty());
    }

    /// Hostile namespaces and names in a draft (from a model, an MCP caller
    /// or a tampered store) are refused before any request is built.
    #[tokio::test]
    async fn hostile_target_names_are_refused_before_any_api_path() {
        let api = testkit::fakeapi::shop_fixture();
        let cluster = Cluster {
            name: "test".into(),
            client: api.client(),
            scope: crate::cluster::Scope::from_config(&crate::cluster::ClusterConfig::default()),
        };
        let policy = PolicyConfig::default();
        let body = serde_json::json!({"spec": {"replicas": 2}});
        for (ns, name, field) in [
            ("../kube-system", "web", "namespace"),
            ("shop/../kube-system", "web", "namespace"),
            ("a%2Fb", "web", "namespace"),
            ("Kube-System", "web", "namespace"),
            ("kube-system ", "web", "namespace"),
            ("kube-syst\u{0435}m", "web", "namespace"),
            (&*"s".repeat(64), "web", "namespace"),
            ("shop", "../../api/v1/secrets", "name"),
            ("shop", "web%2F..%2Fdb", "name"),
            ("shop", "web?dryRun=None", "name"),
            ("shop", "Web", "name"),
            ("shop", "w\u{0435}b", "name"),
            ("shop", &*"w".repeat(254), "name"),
        ] {
            let draft = ProposalDraft::patch("Deployment", ns, name, PatchType::Merge, body.clone(), "test");
            let refusal = prepare(&cluster, &policy, Drafter::Mcp, draft).await.unwrap_err();
            assert_eq!(refusal.stage, RefusalStage::Policy, "{ns:?}/{name:?}");
            assert!(refusal.reason.starts_with(&format!("target {field} ")), "{ns:?}/{name:?}: {}", refusal.reason);
            assert!(refusal.reason.contains("not a valid DNS-1123"), "{}", refusal.reason);
        }
        assert!(api.writes().is_empty());
    }
}
