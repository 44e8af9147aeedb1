//! Drift reports: live objects against their desired state.
//!
//! Desired state comes from three places: the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, Helm
//! release records (Secrets of type `helm.sh/release.v1`, decoded here
//! without the helm binary), and a directory of manifests (a GitOps
//! checkout). Only the fields the desired state sets are compared
//! ([`compare`]); `metadata.managedFields` says which field manager wrote
//! each drifted value and when.
//!
//! [`report`] builds one report; [`DriftJob`] runs it on the cron schedule
//! on the leader only, stores it as the latest report, publishes it on the
//! bus (`kubemedic.drift.report`) and posts a summary to Slack.

pub mod compare;
pub mod helm;
pub mod job;
pub mod sources;

use std::path::PathBuf;
use std::str::FromStr as _;

use kube::discovery::Discovery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use compare::FieldDrift;
pub use job::{DriftJob, DriftNotifier};

use crate::cluster::Cluster;

/// Kinds scanned for the last-applied annotation by default.
pub const DEFAULT_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Ingress",
    "CronJob",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
];

/// Drift report schedule and sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Cron schedule in UTC (five fields `m h dom mon dow`, or six/seven with seconds first),
    /// default nightly at 02:00.
    pub schedule: String,
    /// Run the report on the schedule (`kubemedic drift` works either way).
    pub enabled: bool,
    /// Compare objects with their `kubectl.kubernetes.io/last-applied-configuration` annotation.
    pub last_applied: bool,
    /// Kinds scanned for that annotation (`Kind` or `group/version/Kind`); empty = the built-in list.
    pub kinds: Vec<String>,
    /// Compare objects with the latest deployed revision of each Helm release.
    pub helm: bool,
    /// Directory of manifests (a GitOps checkout) that holds desired state; absent = none.
    pub manifests_dir: Option<PathBuf>,
    /// Namespace of manifests that do not name one.
    pub manifests_namespace: String,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            schedule: "0 2 * * *".into(),
            enabled: true,
            last_applied: true,
            kinds: Vec::new(),
            helm: true,
            manifests_dir: None,
            manifests_namespace: "default".into(),
        }
    }
}

impl DriftConfig {
    /// Checks serde cannot express (the schedule parses).
    pub fn validate(&self) -> Result<(), DriftError> {
        parse_schedule(&self.schedule).map(|_| ())
    }

    fn kinds(&self) -> Vec<String> {
        if self.kinds.is_empty() { DEFAULT_KINDS.iter().map(|k| (*k).to_owned()).collect() } else { self.kinds.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("invalid drift schedule {expr:?}: {reason}")]
    Schedule { expr: String, reason: String },
    #[error("cannot discover the cluster's API resources")]
    Discovery(#[source] kube::Error),
    #[error("cannot read manifests at {path}")]
    Manifests {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest file {path}, document {index}, is not valid YAML")]
    ManifestParse {
        path: PathBuf,
        index: usize,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("cannot store the drift report")]
    Store(#[source] crate::store::StoreError),
    #[error("cannot encode the drift report")]
    Encode(#[source] serde_json::Error),
}

/// Parse a cron expression; five-field expressions get a `0` seconds field.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, DriftError> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {}", expr.trim()),
        6 | 7 => expr.trim().to_owned(),
        n => {
            return Err(DriftError::Schedule {
                expr: expr.to_owned(),
                reason: format!("{n} fields; expected 5 (m h dom mon dow) or 6-7 (with seconds)"),
            });
        }
    };
    cron::Schedule::from_str(&full).map_err(|e| DriftError::Schedule { expr: expr.to_owned(), reason: e.to_string() })
}

/// Where an object's desired state came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DesiredSource {
    /// The `kubectl.kubernetes.io/last-applied-configuration` annotation.
    LastApplied,
    /// A Helm release record.
    Helm { release: String, revision: u64 },
    /// A file in the manifests directory (path relative to it).
    Manifest { path: String },
}

impl std::fmt::Display for DesiredSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LastApplied => f.write_str("last-applied"),
            Self::Helm { release, revision } => write!(f, "helm release {release} (revision {revision})"),
            Self::Manifest { path } => write!(f, "manifest {path}"),
        }
    }
}

/// One object that differs from its desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectDrift {
    pub api_version: String,
    pub kind: String,
    /// Absent for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    pub source: DesiredSource,
    /// The desired object does not exist in the cluster.
    pub missing: bool,
    /// Drifted fields (empty when `missing`).
    pub fields: Vec<FieldDrift>,
}

impl ObjectDrift {
    /// `namespace/Kind/name` or `Kind/name`.
    pub fn object_ref(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The entry as one plain sentence: every drifted field with its live and desired value and
    /// the field manager that wrote the live one (what a diagnosis-like answer quotes).
    pub fn describe(&self) -> String {
        if self.missing {
            return format!("{} ({}) is missing from the cluster", self.object_ref(), self.source);
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                let who = match (&f.changed_by, &f.operation, &f.note) {
                    (Some(m), Some(op), _) => format!("changed by {m} ({op})"),
                    (Some(m), None, _) => format!("changed by {m}"),
                    (None, _, Some(note)) => format!("writer unknown: {note}"),
                    _ => "writer unknown".into(),
                };
                format!("{} is {}, desired {}, {who}", f.path, plain_value(&f.live), plain_value(&f.desired))
            })
            .collect();
        format!("{} drifted from {}: {}", self.object_ref(), self.source, fields.join("; "))
    }
}

fn plain_value(v: &Value) -> String {
    let text = match v {
        Value::Null => return "absent".into(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() > 80 { format!("{}…", text.chars().take(80).collect::<String>()) } else { text }
}

/// A whole drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriftReport {
    pub cluster: String,
    /// RFC 3339.
    pub generated_at: String,
    /// Objects compared.
    pub checked: usize,
    /// Objects that drifted (or are missing).
    pub objects: Vec<ObjectDrift>,
    /// Sources or objects that could not be read: the report is partial when non-empty.
    pub errors: Vec<String>,
}

/// Field managers that write the desired state itself.
fn source_managers(source: &DesiredSource) -> &'static [&'static str] {
    match source {
        DesiredSource::LastApplied => &["kubectl-client-side-apply", "kubectl"],
        DesiredSource::Helm { .. } => &["helm"],
        DesiredSource::Manifest { .. } => &[],
    }
}

/// When the only owner of a drifted field is the tool that applied the desired value, the
/// write that changed it was not recorded in managedFields: say so instead of blaming the applier.
fn explain_untracked(source: &DesiredSource, field: &mut FieldDrift) {
    let Some(manager) = &field.changed_by else {
        if !field.live.is_null() {
            field.note = Some("no field manager owns the live value".into());
        }
        return;
    };
    if !source_managers(source).contains(&manager.as_str()) {
        return;
    }
    let scale = field.path == "spec.replicas";
    field.note = Some(if scale {
        format!(
            "changed without a managedFields entry (still owned by {manager}, which applied the desired value): \
             a write through the /scale subresource such as `kubectl scale`, which apiservers before 1.22 do not record"
        )
    } else {
        format!("changed without a managedFields entry (still owned by {manager}, which applied the desired value)")
    });
    field.changed_by = None;
    field.operation = None;
    field.changed_at = None;
}

/// Values of secret fields never leave the process, drift or not.
fn redact_field(kind: &str, field: &mut FieldDrift) {
    let secret_data = kind == "Secret" && (field.path.starts_with("data") || field.path.starts_with("stringData"));
    let secret_path = field
        .path
        .split(['.', '[', ']', '=', ',', '"'])
        .any(|part| !part.is_empty() && crate::redact::is_secret_key(part));
    for v in [&mut field.desired, &mut field.live] {
        if v.is_null() {
            continue;
        }
        if secret_data || (secret_path && !v.is_object() && !v.is_array()) {
            *v = Value::String(crate::redact::REDACTED.into());
        } else {
            crate::redact::redact_value(v);
        }
    }
}

/// Compare every desired object the configured sources name with the cluster.
#[tracing::instrument(name = "drift_report", skip_all, fields(cluster = %cluster.name))]
pub async fn report(cluster: &Cluster, config: &DriftConfig) -> Result<DriftReport, DriftError> {
    let discovery = Discovery::new(cluster.client.clone()).run().await.map_err(DriftError::Discovery)?;
    let mut errors = Vec::new();
    let mut pairs = Vec::new();
    if config.last_applied {
        pairs.extend(
            sources::last_applied(cluster, &discovery, &config.kinds(), !config.kinds.is_empty(), &mut errors).await,
        );
    }
    let mut desired = Vec::new();
    if config.helm {
        desired.extend(sources::helm_releases(cluster, &mut errors).await);
    }
    if let Some(dir) = &config.manifests_dir {
        desired.extend(sources::manifests(dir, &config.manifests_namespace)?);
    }
    pairs.extend(sources::pair_with_live(cluster, &discovery, desired, &mut errors).await);

    let checked = pairs.len();
    let mut objects = Vec::new();
    for pair in pairs {
        let (missing, mut fields) = match &pair.live {
            None => (true, Vec::new()),
            Some(live) => (false, compare::drifted_fields(&pair.desired.object, live)),
        };
        if !missing && fields.is_empty() {
            continue;
        }
        for f in &mut fields {
            explain_untracked(&pair.desired.source, f);
            redact_field(&pair.kind, f);
        }
        objects.push(ObjectDrift {
            api_version: pair.api_version,
            kind: pair.kind,
            namespace: pair.namespace,
            name: pair.name,
            source: pair.desired.source,
            missing,
            fields,
        });
    }
    objects.sort_by_key(|o| (o.object_ref(), o.source.to_string()));
    Ok(DriftReport {
        cluster: cluster.name.clone(),
        generated_at: jiff::Timestamp::now().to_string(),
        checked,
        objects,
        errors,
    })
}

fn md_value(v: &Value) -> String {
    let text = match v {
        Value::Null => return "_(absent)_".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text =
        if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text };
    format!("`{}`", text.replace('`', "'").replace('|', "\\|").replace('\n', " "))
}

impl DriftReport {
    /// Objects that drifted.
    pub fn drifted(&self) -> usize {
        self.objects.len()
    }

    /// The report as Markdown: one table per drifted object.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# Drift report: cluster `{}`\n\n", self.cluster);
        out.push_str(&format!(
            "Generated {}. Checked {} objects; {} drifted.\n",
            self.generated_at,
            self.checked,
            self.drifted()
        ));
        for o in &self.objects {
            out.push_str(&format!("\n## {} ({})\n\n", o.object_ref(), o.source));
            if o.missing {
                out.push_str("Missing from the cluster.\n");
                continue;
            }
            out.push_str("| field | desired | live | changed by | when |\n|---|---|---|---|---|\n");
            for f in &o.fields {
                let by = match (&f.changed_by, &f.operation, &f.note) {
                    (Some(m), Some(op), _) => format!("{m} ({op})"),
                    (Some(m), None, _) => m.clone(),
                    (None, _, Some(note)) => format!("_unknown: {}_", note.replace('|', "\\|")),
                    _ => "_(unknown)_".into(),
                };
                out.push_str(&format!(
                    "| `{}` | {} | {} | {} | {} |\n",
                    f.path.replace('|', "\\|"),
                    md_value(&f.desired),
                    md_value(&f.live),
                    by,
                    f.changed_at.as_deref().unwrap_or("")
                ));
            }
        }
        if !self.errors.is_empty() {
            out.push_str("\n## Not checked\n\n");
            for e in &self.errors {
                out.push_str(&format!("- {e}\n"));
            }
        }
        out
    }

    /// A few lines for chat: counts and the first drifted objects with who changed them.
    pub fn summary(&self, max_objects: usize) -> String {
        let mut out = format!(
            "Drift report for cluster {}: {} of {} objects drifted.",
            self.cluster,
            self.drifted(),
            self.checked
        );
        for o in self.objects.iter().take(max_objects) {
            if o.missing {
                out.push_str(&format!("\n• {} ({}): missing", o.object_ref(), o.source));
                continue;
            }
            let fields: Vec<String> = o
                .fields
                .iter()
                .take(5)
                .map(|f| format!("{} by {}", f.path, f.changed_by.as_deref().unwrap_or("unknown")))
                .collect();
            out.push_str(&format!("\n• {} ({}): {}", o.object_ref(), o.source, fields.join(", ")));
            if o.fields.len() > 5 {
                out.push_str(&format!(" and {} more", o.fields.len() - 5));
            }
        }
        if self.objects.len() > max_objects {
            out.push_str(&format!("\n… and {} more objects.", self.objects.len() - max_objects));
        }
        if !self.errors.is_empty() {
            out.push_str(&format!("\n{} sources or objects could not be checked.", self.errors.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> DriftReport {
        DriftReport {
            cluster: "local".into(),
            generated_at: "2026-11-25T02:00:00Z".into(),
            checked: 3,
            objects: vec![
                ObjectDrift {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    namespace: Some("shop".into()),
                    name: "web".into(),
                    source: DesiredSource::LastApplied,
                    missing: false,
                    fields: vec![FieldDrift {
                        path: "spec.replicas".into(),
                        desired: json!(2),
                        live: json!(5),
                        changed_by: Some("kubectl-scale".into()),
                        operation: Some("Update".into()),
                        changed_at: Some("2026-11-25T01:00:00Z".into()),
                        owners: vec!["kubectl-scale".into()],
                        note: None,
                    }],
                },
                ObjectDrift {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: Some("shop".into()),
                    name: "cfg".into(),
                    source: DesiredSource::Helm { release: "app".into(), revision: 2 },
                    missing: true,
                    fields: vec![],
                },
            ],
            errors: vec!["helm: release shop/x: release record is not base64".into()],
        }
    }

    #[test]
    fn five_field_schedules_are_accepted() {
        let s = parse_schedule("0 2 * * *").unwrap();
        let next = s.after(&"2026-11-25T01:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()).next().unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-25T02:00:00+00:00");
        assert!(parse_schedule("30 0 2 * * *").is_ok());
        assert!(matches!(parse_schedule("* * *"), Err(DriftError::Schedule { .. })));
        assert!(matches!(parse_schedule("99 2 * * *"), Err(DriftError::Schedule { .. })));
        assert!(DriftConfig::default().validate().is_ok());
    }

    #[test]
    fn config_refuses_unknown_fields() {
        let err = serde_yaml_ng::from_str::<DriftConfig>("schedul: x\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let c: DriftConfig = serde_yaml_ng::from_str("manifests_dir: /git/apps\nhelm: false\n").unwrap();
        assert_eq!(c.manifests_dir, Some(PathBuf::from("/git/apps")));
        assert!(!c.helm && c.last_applied);
    }

    #[test]
    fn an_entry_reads_as_one_sentence() {
        let r = sample();
        assert_eq!(
            r.objects[0].describe(),
            "shop/Deployment/web drifted from last-applied: spec.replicas is 5, desired 2, changed by kubectl-scale (Update)"
        );
        assert_eq!(
            r.objects[1].describe(),
            "shop/ConfigMap/cfg (helm release app (revision 2)) is missing from the cluster"
        );
        let mut untracked = r.objects[0].clone();
        untracked.fields[0].changed_by = None;
        untracked.fields[0].live = json!("x".repeat(100));
        untracked.fields[0].note = Some("no field manager owns the live value".into());
        let text = untracked.describe();
        assert!(text.ends_with("…, desired 2, writer unknown: no field manager owns the live value"), "{text}");
    }

    #[test]
    fn markdown_and_summary_name_fields_and_managers() {
        let r = sample();
        let md = r.to_markdown();
        assert!(md.contains("## shop/Deployment/web (last-applied)"), "{md}");
        assert!(md.contains("| `spec.replicas` | `2` | `5` | kubectl-scale (Update) | 2026-11-25T01:00:00Z |"), "{md}");
        assert!(
            md.contains("## shop/ConfigMap/cfg (helm release app (revision 2))\n\nMissing from the cluster."),
            "{md}"
        );
        assert!(md.contains("## Not checked"), "{md}");
        let s = r.summary(10);
        assert!(s.starts_with("Drift report for cluster local: 2 of 3 objects drifted."), "{s}");
        assert!(s.contains("shop/Deployment/web (last-applied): spec.replicas by kubectl-scale"), "{s}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["objects"][1]["source"], json!({"type": "helm", "release": "app", "revision": 2}));
        assert_eq!(serde_json::from_value::<DriftReport>(json).unwrap(), r);
    }

    #[test]
    fn untracked_writes_are_not_blamed_on_the_applier() {
        let mut f = FieldDrift {
            path: "spec.replicas".into(),
            desired: json!(1),
            live: json!(3),
            changed_by: Some("helm".into()),
            operation: Some("Apply".into()),
            changed_at: Some("2026-11-25T01:00:00Z".into()),
            owners: vec!["helm".into()],
            note: None,
        };
        explain_untracked(&DesiredSource::Helm { release: "demo".into(), revision: 1 }, &mut f);
        assert_eq!(f.changed_by, None);
        assert!(f.note.as_deref().unwrap().contains("/scale subresource"), "{f:?}");
        let mut g = FieldDrift { changed_by: Some("kubectl-edit".into()), note: None, ..f.clone() };
        explain_untracked(&DesiredSource::LastApplied, &mut g);
        assert_eq!(g.changed_by.as_deref(), Some("kubectl-edit"));
        assert_eq!(g.note, None);
    }

    #[test]
    fn secret_values_are_redacted() {
        let mut f = FieldDrift {
            path: "data.password".into(),
            desired: json!("c2VjcmV0"),
            live: json!("b3RoZXI="),
            changed_by: None,
            operation: None,
            changed_at: None,
            owners: vec![],
            note: None,
        };
        redact_field("Secret", &mut f);
        assert_eq!(
            (f.desired.as_str(), f.live.as_str()),
            (Some(crate::redact::REDACTED), Some(crate::redact::REDACTED))
        );
        let mut env = FieldDrift {
            path: "spec.template.spec.containers[name=web].env[name=DB_PASSWORD].value".into(),
            desired: json!("hunter2"),
            live: json!("hunter3"),
            ..f.clone()
        };
        redact_field("Deployment", &mut env);
        assert_eq!(env.live, json!(crate::redact::REDACTED));
        let mut image = FieldDrift {
            path: "spec.template.spec.containers[name=web].image".into(),
            desired: json!("a:1"),
            live: json!("a:2"),
            ..f
        };
        redact_field("Deployment", &mut image);
        assert_eq!(image.live, json!("a:2"));
    }
}
