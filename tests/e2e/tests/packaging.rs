//! The Helm chart and the Dockerfile, checked with the real tools: `helm lint --strict`,
//! `helm template` + `kubernetes-validate --strict`, `hadolint`, and a real `helm install`
//! into the local control plane whose RBAC is then probed with `kubectl auth can-i`.

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::ListParams;

use e2e::daemon::repo_root;

fn chart() -> String {
    repo_root().join("charts/kubemedic").to_string_lossy().into_owned()
}

fn tool(env: &str, name: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| name.to_owned())
}

async fn run(bin: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {bin} (tests/run.sh installs it): {e}"))
}

async fn ok(bin: &str, args: &[&str]) -> String {
    let out = run(bin, args).await;
    assert!(
        out.status.success(),
        "{bin} {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ALL_FEATURES: &[&str] = &[
    "--set",
    "remediation.enabled=true",
    "--set",
    "remediation.namespaces={shop,payments}",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "podDisruptionBudget.enabled=true",
    "--set",
    "secrets.slack=kubemedic-slack",
    "--set",
    "secrets.llm=kubemedic-llm",
    "--set",
    "secrets.approvalKey=kubemedic-approval-key",
    "--set",
    "secrets.nats=kubemedic-nats",
];

#[tokio::test]
async fn chart_lints_strict_and_renders_valid_manifests() {
    let helm = tool("HELM", "helm");
    let chart = chart();
    ok(&helm, &["lint", "--strict", &chart]).await;
    let mut args = vec!["lint", "--strict", chart.as_str()];
    args.extend_from_slice(ALL_FEATURES);
    ok(&helm, &args).await;

    // Unknown values are refused by values.schema.json.
    let bad = run(&helm, &["template", "x", &chart, "--set", "replicas=2"]).await;
    assert!(!bad.status.success(), "an unknown value must be refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("replicas"), "{}", String::from_utf8_lossy(&bad.stderr));

    let mut args = vec!["template", "km", chart.as_str(), "--namespace", "kubemedic"];
    args.extend_from_slice(ALL_FEATURES);
    let rendered = ok(&helm, &args).await;
    // No secret value is rendered: credentials are references to existing Secrets.
    assert!(rendered.contains("secretKeyRef"));
    assert!(
        rendered.contains("KUBEMEDIC_APPROVAL_KEY") && rendered.contains("kubemedic-approval-key"),
        "approval key wired"
    );
    assert!(
        rendered.contains("NATS_PASSWORD") && rendered.contains("secretName: kubemedic-nats"),
        "NATS credentials wired"
    );
    assert!(!rendered.contains("kind: Secret\n"), "the chart must not create Secrets");
    for needle in [
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "type: RuntimeDefault",
        "- ALL",
        "path: /healthz",
        "path: /readyz",
    ] {
        assert!(rendered.contains(needle), "rendered chart lacks {needle}");
    }
    // The ServiceMonitor is a CRD kubernetes-validate has no schema for: validate the rest.
    let docs: Vec<&str> =
        rendered.split("\n---\n").filter(|d| d.contains("kind:") && !d.contains("kind: ServiceMonitor")).collect();
    let dir = std::env::temp_dir().join(format!("km-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    let out = ok(&tool("KUBERNETES_VALIDATE", "kubernetes-validate"), &["--strict", &file.to_string_lossy()]).await;
    assert!(out.contains("passed for resource deployment/km-kubemedic"), "{out}");
    assert!(!out.contains("ERROR") && !out.contains("FAIL"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The rendered documents as YAML values.
fn documents(rendered: &str) -> Vec<serde_yaml_ng::Value> {
    rendered
        .split("\n---\n")
        .filter_map(|d| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(d).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn rules_grant_secrets(doc: &serde_yaml_ng::Value) -> bool {
    doc["rules"].as_sequence().into_iter().flatten().any(|rule| {
        rule["resources"].as_sequence().into_iter().flatten().any(|r| matches!(r.as_str(), Some("secrets" | "*")))
    })
}

#[tokio::test]
async fn chart_keeps_secrets_to_the_scope_and_state_on_a_claim() {
    let helm = tool("HELM", "helm");
    let chart = chart();
    let template = |extra: &[&str]| {
        let mut args = vec!["template", "km", chart.as_str(), "--namespace", "kubemedic"];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let helm = helm.clone();
        async move { ok(&helm, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let scoped = [
        "--set",
        "config.cluster.namespaces={shop,payments,kube-system}",
        "--set",
        "config.cluster.exclude_namespaces={kube-system}",
        "--set",
        "persistence.enabled=true",
        "--set",
        "persistence.size=5Gi",
        "--set",
        "persistence.storageClass=fast",
    ];
    let rendered = template(&scoped).await;
    let docs = documents(&rendered);
    let of_kind = |k: &'static str| docs.iter().filter(move |d| d["kind"].as_str() == Some(k));

    // No ClusterRole grants Secrets (nor a wildcard); one Role per namespace in scope does.
    for cr in of_kind("ClusterRole") {
        assert!(!rules_grant_secrets(cr), "a ClusterRole grants secrets: {cr:?}");
    }
    let mut secret_roles: Vec<(&str, Vec<&str>)> = of_kind("Role")
        .filter(|r| rules_grant_secrets(r))
        .map(|r| {
            let verbs = r["rules"][0]["verbs"].as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
            (r["metadata"]["namespace"].as_str().unwrap(), verbs)
        })
        .collect();
    secret_roles.sort();
    assert_eq!(
        secret_roles,
        vec![("payments", vec!["get", "list", "watch"]), ("shop", vec!["get", "list", "watch"])],
        "a Role in each namespace in scope, none in an excluded one"
    );
    let mut bound: Vec<&str> = of_kind("RoleBinding")
        .filter(|b| b["roleRef"]["name"].as_str() == Some("km-kubemedic-secrets"))
        .map(|b| b["metadata"]["namespace"].as_str().unwrap())
        .collect();
    bound.sort();
    assert_eq!(bound, ["payments", "shop"]);

    // state_dir on the claim the chart creates; Recreate so the claim moves with the pod.
    let pvc = of_kind("PersistentVolumeClaim").next().expect("a PVC when persistence.enabled");
    assert_eq!(pvc["metadata"]["name"].as_str(), Some("km-kubemedic-state"));
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"].as_str(), Some("5Gi"));
    assert_eq!(pvc["spec"]["storageClassName"].as_str(), Some("fast"));
    let deploy = of_kind("Deployment").next().unwrap();
    assert_eq!(deploy["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
    let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap();
    let state = volumes.iter().find(|v| v["name"].as_str() == Some("state")).unwrap();
    assert_eq!(state["persistentVolumeClaim"]["claimName"].as_str(), Some("km-kubemedic-state"));
    let config = of_kind("ConfigMap").next().unwrap()["data"]["config.yaml"].as_str().unwrap().to_owned();
    assert!(config.contains("state_dir: /var/lib/kubemedic"), "{config}");

    // The same manifests pass the Kubernetes schemas.
    let dir = std::env::temp_dir().join(format!("km-chart-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    let out = ok(&tool("KUBERNETES_VALIDATE", "kubernetes-validate"), &["--strict", &file.to_string_lossy()]).await;
    assert!(out.contains("persistentvolumeclaim/km-kubemedic-state"), "{out}");
    assert!(!out.contains("ERROR") && !out.contains("FAIL"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    // An existing claim is used, not created.
    let docs =
        documents(&template(&["--set", "persistence.enabled=true", "--set", "persistence.existingClaim=mine"]).await);
    assert!(!docs.iter().any(|d| d["kind"].as_str() == Some("PersistentVolumeClaim")));
    let deploy = docs.iter().find(|d| d["kind"].as_str() == Some("Deployment")).unwrap();
    let volumes = deploy["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap();
    assert!(volumes.iter().any(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some("mine")));

    // Defaults: no claim (emptyDir), and with no namespaces in scope no Secret access anywhere.
    let docs = documents(&template(&[]).await);
    assert!(!docs.iter().any(|d| d["kind"].as_str() == Some("PersistentVolumeClaim")));
    assert!(!docs.iter().any(rules_grant_secrets), "no Secret access without a namespace scope");
    let bad = run(&helm, &["template", "x", &chart, "--set", "persistence.size=lots"]).await;
    assert!(!bad.status.success(), "a size that is no quantity is refused");
}

#[tokio::test]
async fn dockerfile_passes_hadolint() {
    let dockerfile = repo_root().join("Dockerfile");
    let out = ok(&tool("HADOLINT", "hadolint"), &[&dockerfile.to_string_lossy()]).await;
    assert!(out.trim().is_empty(), "hadolint findings:\n{out}");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains("FROM scratch"), "final stage must be scratch");
    assert!(text.contains("USER 65532:65532"), "image must run as non-root");
}

/// `kubectl auth can-i VERB RESOURCE -n NS --as SA` → true/false.
async fn can(sa: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let out = e2e::kubectl::run(&["auth", "can-i", verb, resource, "-n", ns, "--as", sa]).await;
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[tokio::test]
async fn helm_install_brings_up_objects_with_least_privilege_rbac() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "chart").await;
    let shop = e2e::Namespace::create(&client, "chart-shop").await;
    let other = e2e::Namespace::create(&client, "chart-other").await;
    let release = e2e::unique_name("km");
    let helm = tool("HELM", "helm");
    let kubeconfig = e2e::kubeconfig_path();
    let chart = chart();
    let remediate = format!("remediation.namespaces={{{}}}", shop.name);
    let scope = format!("config.cluster.namespaces={{{}}}", shop.name);
    ok(
        &helm,
        &[
            "install",
            &release,
            &chart,
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &ns.name,
            "--set",
            "remediation.enabled=true",
            "--set",
            &remediate,
            "--set",
            &scope,
            "--wait=false",
        ],
    )
    .await;

    let full = format!("{release}-kubemedic");
    let full = if release.contains("kubemedic") { release.clone() } else { full };
    let deploy = Api::<Deployment>::namespaced(client.clone(), &ns.name).get(&full).await.expect("deployment");
    let spec = deploy.spec.unwrap().template.spec.unwrap();
    let c = &spec.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(spec.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    assert!(c.resources.as_ref().unwrap().limits.is_some());
    Api::<ServiceAccount>::namespaced(client.clone(), &ns.name).get(&full).await.expect("service account");
    Api::<Service>::namespaced(client.clone(), &ns.name).get(&full).await.expect("service");
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name).get(&full).await.expect("config map");
    Api::<ClusterRole>::all(client.clone()).get(&format!("{full}-read")).await.expect("cluster role");
    Api::<ClusterRoleBinding>::all(client.clone()).get(&format!("{full}-read")).await.expect("binding");

    // The real RBAC authorizer, asked as the chart's ServiceAccount.
    let sa = format!("system:serviceaccount:{}:{full}", ns.name);
    assert!(can(&sa, "list", "pods", &other.name).await, "reads everywhere");
    assert!(can(&sa, "get", "pods/log", &other.name).await);
    assert!(can(&sa, "watch", "deployments.apps", &other.name).await);
    assert!(can(&sa, "patch", "deployments.apps", &shop.name).await, "patch where remediation is enabled");
    assert!(!can(&sa, "patch", "deployments.apps", &other.name).await, "no patch elsewhere");
    assert!(!can(&sa, "delete", "pods", &other.name).await);
    assert!(!can(&sa, "create", "secrets", &shop.name).await, "never writes secrets");
    assert!(can(&sa, "watch", "secrets", &shop.name).await, "secrets in the namespaces in scope");
    assert!(!can(&sa, "get", "secrets", &other.name).await, "no secrets outside the scope");
    assert!(!can(&sa, "list", "secrets", &ns.name).await, "not even its own namespace's");
    let cluster_wide = e2e::kubectl::run(&["auth", "can-i", "watch", "secrets", "--all-namespaces", "--as", &sa]).await;
    assert_eq!(String::from_utf8_lossy(&cluster_wide.stdout).trim(), "no", "no cluster-wide watch on secrets");
    assert!(!can(&sa, "create", "clusterrolebindings", &ns.name).await, "no escalation");
    assert!(can(&sa, "update", "leases.coordination.k8s.io", &ns.name).await, "leader election lease");

    // The scheduler places the daemon's pod on a simulated node.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    e2e::wait::until(Duration::from_secs(60), "kubemedic pod scheduled", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        }
    })
    .await;

    ok(&helm, &["uninstall", &release, "--kubeconfig", &kubeconfig, "-n", &ns.name]).await;
    let gone = Api::<ClusterRole>::all(client.clone()).get_opt(&format!("{full}-read")).await.unwrap();
    assert!(gone.is_none(), "uninstall removes cluster-scoped RBAC");
}

/// The final stage of the Dockerfile and of packaging/Containerfile.prebuilt (what
/// scripts/image.sh builds offline) must describe the same image.
#[test]
fn prebuilt_containerfile_matches_the_dockerfile_final_stage() {
    let runtime = |path: &str| -> Vec<String> {
        let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
        let stage = text.rsplit("FROM scratch").next().unwrap().to_owned();
        stage
            .lines()
            .filter(|l| ["USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD"].iter().any(|k| l.starts_with(k)))
            .map(str::to_owned)
            .collect()
    };
    let dockerfile = runtime("Dockerfile");
    assert_eq!(dockerfile.len(), 5, "{dockerfile:?}");
    assert_eq!(dockerfile, runtime("packaging/Containerfile.prebuilt"));
}

/// buildah on an image store of the test's own; panics unless it succeeds when `must`.
async fn buildah(store: &std::path::Path, args: &[&str], must: bool) -> Output {
    let out = tokio::process::Command::new("buildah")
        .args(["--storage-driver", "vfs", "--root"])
        .arg(store.join("storage"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args(args)
        .output()
        .await
        .expect("run buildah (tests/run.sh installs it)");
    assert!(
        !must || out.status.success(),
        "buildah {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `scripts/image.sh` builds the image with buildah, offline (FROM scratch, nothing pulled),
/// from the static binary tests/run.sh built; the image then runs: the binary validates
/// the rules and prompts shipped in it, and a bad config exits 64.
#[tokio::test]
async fn image_builds_offline_with_buildah_and_runs_from_scratch() {
    let bin = std::env::var("KUBEMEDIC_STATIC_BIN")
        .expect("KUBEMEDIC_STATIC_BIN: the static kubemedic binary (tests/run.sh builds it)");
    let containerfile = repo_root().join("packaging/Containerfile.prebuilt").to_string_lossy().into_owned();
    let findings = ok(&tool("HADOLINT", "hadolint"), &[&containerfile]).await;
    assert!(findings.trim().is_empty(), "hadolint findings on Containerfile.prebuilt:\n{findings}");

    let dir = std::env::temp_dir().join(e2e::unique_name("km-image"));
    let archive = dir.join("kubemedic.oci.tar");
    std::fs::create_dir_all(&dir).unwrap();
    let tag = "localhost/kubemedic:e2e";
    let built = tokio::process::Command::new("bash")
        .arg(repo_root().join("scripts/image.sh"))
        .arg(tag)
        .env("KUBEMEDIC_BIN", &bin)
        .env("BUILDAH_ROOT", &dir)
        .env("IMAGE_ARCHIVE", &archive)
        .output()
        .await
        .expect("run scripts/image.sh");
    assert!(
        built.status.success(),
        "scripts/image.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let size = std::fs::metadata(&archive).expect("OCI archive written").len();
    assert!(size > 1_000_000 && size < 150_000_000, "image archive of {size} bytes");

    let inspect = buildah(&dir, &["inspect", "--type", "image", tag], true).await;
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/kubemedic"]));
    let layers = inspect["OCIv1"]["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    assert_eq!(layers, 1, "a scratch image of one layer: {}", inspect["OCIv1"]["rootfs"]);

    let ctr = buildah(&dir, &["from", "--pull-never", tag], true).await;
    let ctr = String::from_utf8_lossy(&ctr.stdout).trim().to_owned();
    let run_in = ["run", "--isolation", "chroot", ctr.as_str(), "--", "/usr/local/bin/kubemedic"];
    let validate =
        [&run_in[..], &["validate", "--rules", "/etc/kubemedic/rules", "--prompts", "/etc/kubemedic/prompts"]];
    let validated = buildah(&dir, &validate.concat(), true).await;
    let validated = String::from_utf8_lossy(&validated.stdout);
    assert!(validated.starts_with("ok: ") && validated.contains("6 prompts"), "{validated}");
    let bad = buildah(&dir, &[&run_in[..], &["run", "--config", "/etc/kubemedic/missing.yaml"]].concat(), false).await;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("status 64") && stderr.contains("cannot read config file"), "{stderr}");

    buildah(&dir, &["rm", &ctr], false).await;
    buildah(&dir, &["rmi", "--all", "--force"], false).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn chart_grants_impersonate_only_with_auth_impersonate() {
    let helm = tool("HELM", "helm");
    let chart = chart();
    let impersonating = |docs: &[serde_yaml_ng::Value]| {
        docs.iter().filter(|d| d["kind"].as_str() == Some("ClusterRole")).any(|cr| {
            cr["rules"].as_sequence().into_iter().flatten().any(|rule| {
                rule["verbs"].as_sequence().into_iter().flatten().any(|v| v.as_str() == Some("impersonate"))
            })
        })
    };
    let off = ok(&helm, &["template", "km", chart.as_str(), "--namespace", "kubemedic"]).await;
    assert!(!impersonating(&documents(&off)), "no impersonate grant by default");
    let on = ok(
        &helm,
        &["template", "km", chart.as_str(), "--namespace", "kubemedic", "--set", "config.auth.impersonate=true"],
    )
    .await;
    let docs = documents(&on);
    assert!(impersonating(&docs), "auth.impersonate grants impersonate");
    let binding = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ClusterRoleBinding")
                && d["roleRef"]["name"].as_str() == Some("km-kubemedic-impersonate")
        })
        .expect("the impersonate ClusterRole is bound");
    assert_eq!(binding["subjects"][0]["kind"].as_str(), Some("ServiceAccount"));
}
