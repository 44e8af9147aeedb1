//! Helm releases: a workload installed by Helm names its release in the
//! `meta.helm.sh/release-name` annotation, and Helm keeps each revision of a
//! release as a Secret of type `helm.sh/release.v1` labelled `owner=helm`,
//! `name`, `status` and `version`. Only those labels are read (through
//! `list_resources`, which never returns a Secret's data): a failed revision
//! is part of the cause, and the last deployed one is what `helm rollback`
//! returns to.

use serde_json::{Value, json};

use super::analyze::Finding;
use super::gather::{Facts, unread};
use super::read::Reader;
use crate::model::diagnosis::Evidence;

const RELEASE_NAME: &str = "meta.helm.sh/release-name";
const RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// A release as its Secrets' labels describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    /// (version, status), newest first.
    pub revisions: Vec<(i64, String)>,
}

impl Release {
    fn newest(&self) -> Option<&(i64, String)> {
        self.revisions.first()
    }

    /// The newest revision Helm recorded as deployed (or superseded by a later one).
    fn last_deployed(&self) -> Option<i64> {
        self.revisions
            .iter()
            .find(|(_, s)| s == "deployed")
            .or_else(|| self.revisions.iter().find(|(_, s)| s == "superseded"))
            .map(|(v, _)| *v)
    }
}

/// The release of `facts.object`, if Helm manages it.
pub async fn gather(reader: &Reader<'_>, facts: &mut Facts) {
    let ann = |k: &str| {
        facts.object.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1"))).and_then(Value::as_str)
    };
    let Some(name) = ann(RELEASE_NAME).map(str::to_owned) else { return };
    let namespace = ann(RELEASE_NAMESPACE).unwrap_or(&facts.target.namespace).to_owned();
    if crate::names::label("release", &name).is_err() || !reader.scope().namespace_visible(&namespace) {
        return;
    }
    let selector = format!("owner=helm,name={name}");
    let args = json!({"kind": "Secret", "namespace": namespace, "label_selector": selector, "limit": 500});
    let items = match reader.call("list_resources", args.clone()).await {
        Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            facts.gaps.push(unread(format!("helm release {name}"), &e));
            return;
        }
    };
    let mut revisions: Vec<(i64, String)> = items
        .iter()
        .filter_map(|i| {
            let labels = &i["labels"];
            Some((labels["version"].as_str()?.parse().ok()?, labels["status"].as_str()?.to_owned()))
        })
        .collect();
    revisions.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    let release = Release { name, namespace, revisions };
    let finding =
        release.revisions.iter().take(5).map(|(v, s)| format!("revision {v}: {s}")).collect::<Vec<_>>().join(", ");
    facts.evidence.push(Evidence {
        tool: "list_resources".into(),
        args,
        finding: format!("Helm release {}: {finding} (labels only; release data not read)", release.name),
    });
    facts.helm = Some(release);
}

/// Add the release's failed revision to a failure the analyzers found (a healthy workload
/// stays healthy: a failed revision that no longer shows is history).
pub fn explain(facts: &Facts, f: &mut Finding) {
    let Some(release) = &facts.helm else { return };
    let Some((version, status)) = release.newest() else { return };
    if status != "failed" || f.root_cause.starts_with("no failure found") {
        return;
    }
    let deployed = release.last_deployed();
    let part = format!(
        "Helm release {} revision {version} failed{}",
        release.name,
        deployed.map(|d| format!(" (revision {d} is the last deployed)")).unwrap_or_default()
    );
    if f.root_cause.starts_with("not determined") {
        f.root_cause = format!("{part}; its resources do not become ready");
        f.confidence = f.confidence.max(0.5);
    } else {
        f.root_cause = format!("{}; {part}", f.root_cause);
    }
    f.chain.push(part);
    f.advice.push(match deployed {
        Some(d) => format!(
            "Helm still records revision {version} of release {} as failed: after the fix, `helm rollback {} {d} -n {}` \
             (with approval) brings Helm's record back to the last deployed revision; kubemedic does not run Helm.",
            release.name, release.name, release.namespace
        ),
        None => format!(
            "No revision of Helm release {} was ever deployed: fix the chart's values and upgrade again.",
            release.name
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::WorkloadRef;

    #[test]
    fn a_failed_revision_joins_the_cause_and_names_the_rollback() {
        let mut facts = Facts::new(WorkloadRef::new("Deployment", "shop", "web"));
        facts.helm = Some(Release {
            name: "storefront".into(),
            namespace: "shop".into(),
            revisions: vec![(3, "failed".into()), (2, "deployed".into()), (1, "superseded".into())],
        });
        let mut f = Finding { root_cause: "image web:9 cannot be pulled".into(), ..Default::default() };
        explain(&facts, &mut f);
        assert_eq!(
            f.root_cause,
            "image web:9 cannot be pulled; Helm release storefront revision 3 failed (revision 2 is the last deployed)"
        );
        assert!(f.advice[0].contains("`helm rollback storefront 2 -n shop`"), "{:?}", f.advice);
        // Healthy stays healthy; a deployed newest revision adds nothing.
        let mut healthy =
            Finding { root_cause: "no failure found: every pod is running and ready".into(), ..Default::default() };
        explain(&facts, &mut healthy);
        assert!(healthy.advice.is_empty());
        facts.helm.as_mut().unwrap().revisions[0].1 = "deployed".into();
        let mut f = Finding { root_cause: "x".into(), ..Default::default() };
        explain(&facts, &mut f);
        assert_eq!(f.root_cause, "x");
    }
}
