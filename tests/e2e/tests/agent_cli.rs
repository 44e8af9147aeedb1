//! `kubemedic diagnose NAMESPACE/KIND/NAME [--output json]`: the same path
//! as the daemon's agent, once, from the command line (the real binary).

#[path = "agent/support.rs"]
mod support;

use e2e::{Namespace, client, scenario};
use kubemedic::agent::Diagnosis;

async fn kubemedic(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(e2e::daemon::bin())
        .args(args)
        .current_dir(support::repo_root())
        .env("KUBECONFIG", e2e::kubeconfig_path())
        .env_remove("KUBEMEDIC_CONFIG")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn diagnose_command_prints_the_diagnosis() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-cli").await;
    scenario::apply(&client, &ns.name, "probe-wrong-port").await;
    let deps = support::deps(&client);
    support::diagnose_until(&deps, "Deployment", &ns.name, "shop", "the probe", |d| !d.proposals.is_empty()).await;

    let target = format!("{}/Deployment/shop", ns.name);
    let out = kubemedic(&["diagnose", &target, "--output", "json"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let d: Diagnosis = serde_json::from_slice(&out.stdout).expect("stdout is one Diagnosis in JSON");
    assert!(d.root_cause.contains("8081") && d.root_cause.contains("8080"), "{}", d.root_cause);
    assert_eq!(d.proposals.len(), 1);
    assert!(d.proposals[0].diff.contains("8081"));
    assert_eq!(d.runner, "builtin");

    let out = kubemedic(&["diagnose", &target]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("Root cause:") && text.contains("flowchart TD"), "{text}");

    let out = kubemedic(&["diagnose", "not-a-target"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAMESPACE/KIND/NAME"));
    let out = kubemedic(&["diagnose", &format!("{}/Deployment/nope", ns.name)]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
