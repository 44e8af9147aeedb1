//! Drift report on the real control plane: objects applied with the real
//! `kubectl apply`, a chart installed with the real `helm install` (helm 4,
//! server-side apply), and a GitOps directory, then changed with
//! `kubectl edit`, `kubectl scale` and `kubectl set image`. The report must
//! name exactly the changed fields, with the manager that changed each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use e2e::{Namespace, kubectl};
use kubemedic::cluster::{Cluster, Scope};
use kubemedic::drift::{DesiredSource, DriftConfig, DriftReport};

fn data(path: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("tests/drift_data").join(path)
}

fn helm_binary() -> String {
    std::env::var("HELM").unwrap_or_else(|_| "helm".into())
}

async fn helm(args: &[&str]) -> String {
    let out = tokio::process::Command::new(helm_binary())
        .arg("--kubeconfig")
        .arg(e2e::kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("run helm (set HELM)");
    assert!(out.status.success(), "helm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl edit` without a terminal: the "editor" is a sed script.
async fn kubectl_edit(ns: &str, object: &str, sed: &str) {
    let editor = std::env::temp_dir().join(format!("{}.sh", e2e::unique_name("kubemedic-editor")));
    std::fs::write(&editor, format!("#!/bin/sh\nset -e\nsed -i '{sed}' \"$1\"\n")).unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = tokio::process::Command::new(kubectl::binary())
        .env("KUBE_EDITOR", &editor)
        .args(["--kubeconfig", &e2e::kubeconfig_path(), "-n", ns, "edit", object])
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&editor);
    assert!(
        out.status.success(),
        "kubectl edit {object} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (object, source) -> {(path, changed_by or note marker)}
fn summarize(report: &DriftReport) -> BTreeMap<(String, String), BTreeSet<(String, String)>> {
    let mut out = BTreeMap::new();
    for o in &report.objects {
        let fields = if o.missing {
            BTreeSet::from([("<missing>".to_owned(), String::new())])
        } else {
            o.fields
                .iter()
                .map(|f| {
                    let who = match (&f.changed_by, &f.note) {
                        (Some(m), _) => m.clone(),
                        (None, Some(note)) if note.contains("/scale subresource") => "<untracked scale>".into(),
                        (None, note) => format!("<unknown: {note:?}>"),
                    };
                    (f.path.clone(), who)
                })
                .collect()
        };
        let source = match &o.source {
            DesiredSource::LastApplied => "last-applied".to_owned(),
            DesiredSource::Helm { release, .. } => format!("helm:{release}"),
            DesiredSource::Manifest { path } => format!("manifest:{path}"),
        };
        out.insert((format!("{}/{}", o.kind, o.name), source), fields);
    }
    out
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test]
async fn drift_names_changed_fields_and_their_managers() {
    let client = e2e::client().await;
    let ns = Namespace::create(&client, "drift").await;
    let n = ns.name.as_str();

    // Desired state from three sources.
    kubectl::ok(&["-n", n, "apply", "-f", data("app.yaml").to_str().unwrap()]).await;
    helm(&["install", "demo", data("chart").to_str().unwrap(), "-n", n]).await;
    kubectl::ok(&["-n", n, "create", "-f", data("gitops/settings.yaml").to_str().unwrap()]).await;
    let scope = Scope { namespaces: vec![ns.name.clone()], ..Scope::default() };
    let cluster = Cluster { name: "e2e".into(), client: client.clone(), scope };
    let config = DriftConfig {
        manifests_dir: Some(data("gitops")),
        manifests_namespace: ns.name.clone(),
        ..DriftConfig::default()
    };

    // Before any change: nothing drifted but the manifest that was never created.
    let before = kubemedic::drift::report(&cluster, &config).await.expect("drift report");
    assert!(before.errors.is_empty(), "{:?}", before.errors);
    let expected_missing = BTreeMap::from([(
        ("ConfigMap/gitops-missing".to_owned(), "manifest:never-created.yaml".to_owned()),
        set(&[("<missing>", "")]),
    )]);
    assert_eq!(summarize(&before), expected_missing, "{}", before.to_markdown());
    // 3 last-applied objects, 2 from the chart, 2 from the GitOps directory.
    assert_eq!(before.checked, 7, "{}", before.to_markdown());

    // Changes made by hand.
    kubectl::ok(&["-n", n, "scale", "deployment/web", "--replicas=5"]).await;
    kubectl::ok(&["-n", n, "set", "image", "deployment/web", "web=registry.local/web:1.1"]).await;
    kubectl_edit(n, "configmap/web-config", "s/LOG_LEVEL: info/LOG_LEVEL: debug/").await;
    kubectl::ok(&["-n", n, "set", "image", "deployment/demo-api", "api=registry.local/api:3.1"]).await;
    kubectl_edit(n, "configmap/demo-settings", "s/retries: \"3\"/retries: \"5\"/").await;
    kubectl::ok(&["-n", n, "scale", "deployment/demo-api", "--replicas=2"]).await;
    kubectl_edit(n, "configmap/gitops-settings", "s/mode: safe/mode: unsafe/").await;

    let after = kubemedic::drift::report(&cluster, &config).await.expect("drift report");
    let md = after.to_markdown();
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    let mut expected = expected_missing.clone();
    expected.insert(
        ("Deployment/web".into(), "last-applied".into()),
        set(&[
            ("spec.replicas", "<untracked scale>"),
            ("spec.template.spec.containers[name=web].image", "kubectl-set"),
        ]),
    );
    expected.insert(("ConfigMap/web-config".into(), "last-applied".into()), set(&[("data.LOG_LEVEL", "kubectl-edit")]));
    expected.insert(
        ("Deployment/demo-api".into(), "helm:demo".into()),
        set(&[
            ("spec.replicas", "<untracked scale>"),
            ("spec.template.spec.containers[name=api].image", "kubectl-set"),
        ]),
    );
    expected.insert(("ConfigMap/demo-settings".into(), "helm:demo".into()), set(&[("data.retries", "kubectl-edit")]));
    expected.insert(
        ("ConfigMap/gitops-settings".into(), "manifest:settings.yaml".into()),
        set(&[("data.mode", "kubectl-edit")]),
    );
    assert_eq!(summarize(&after), expected, "{md}");

    // Desired and live values, and when, are in the report.
    let web = after.objects.iter().find(|o| o.name == "web").unwrap();
    let image = web.fields.iter().find(|f| f.path.ends_with(".image")).unwrap();
    assert_eq!(
        (image.desired.as_str(), image.live.as_str()),
        (Some("registry.local/web:1.0"), Some("registry.local/web:1.1"))
    );
    assert!(image.changed_at.is_some() && image.operation.as_deref() == Some("Update"), "{image:?}");
    let replicas = web.fields.iter().find(|f| f.path == "spec.replicas").unwrap();
    assert_eq!((replicas.desired.as_i64(), replicas.live.as_i64()), (Some(2), Some(5)));

    // Markdown names them too; JSON round-trips.
    assert!(md.contains(&format!("## {n}/Deployment/web (last-applied)")), "{md}");
    assert!(md.contains("| `spec.template.spec.containers[name=web].image` | `registry.local/web:1.0` | `registry.local/web:1.1` | kubectl-set (Update) |"), "{md}");
    assert!(md.contains(&format!("## {n}/ConfigMap/demo-settings (helm release demo (revision 1))")), "{md}");
    let json = serde_json::to_string(&after).unwrap();
    assert_eq!(serde_json::from_str::<DriftReport>(&json).unwrap(), after);

    // Put the edited value back, and upgrade the release to the other live values: the chart's
    // objects are clean again (the latest deployed revision is the desired state).
    kubectl_edit(n, "configmap/demo-settings", "s/retries: \"5\"/retries: \"3\"/").await;
    helm(&[
        "upgrade",
        "demo",
        data("chart").to_str().unwrap(),
        "-n",
        n,
        "--set",
        "image=registry.local/api:3.1",
        "--set",
        "replicas=2",
    ])
    .await;
    let upgraded = kubemedic::drift::report(&cluster, &config).await.expect("drift report");
    let helm_drift: Vec<_> =
        upgraded.objects.iter().filter(|o| matches!(o.source, DesiredSource::Helm { .. })).collect();
    assert!(helm_drift.is_empty(), "{}", upgraded.to_markdown());

    ns.delete(&client).await;
}
