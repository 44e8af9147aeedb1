//! The foundation end to end: every scenario in tests/scenarios shows, through the real API,
//! the pod phase, container states, restart counts and Events a kubelet would produce, and the
//! fixable ones heal after a correcting patch (the new ReplicaSet's pods become Ready).
//! Needs the control plane and nodesim (run through tests/run.sh).

use std::time::Duration;

use e2e::{events, nodes, pods, scenario, wait};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, Pod};
use kube::api::{LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const T: Duration = Duration::from_secs(120);

/// Waits until some pod of the newest ReplicaSet of `deploy` satisfies `check`; returns it.
async fn newest_pod_where(client: &Client, ns: &str, deploy: &str, label: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    wait::until(T, &format!("{label} (Deployment {ns}/{deploy})"), || async {
        pods::of_newest_replicaset(client, ns, deploy).await.into_iter().find(|p| check(p))
    })
    .await
}

async fn patch_deployment(client: &Client, ns: &str, name: &str, patch: serde_json::Value) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch Deployment {ns}/{name}: {e}"));
}

/// After a fix: the rollout completes and every pod of the newest ReplicaSet is Ready with no restarts.
async fn assert_healed(client: &Client, ns: &str, name: &str) {
    wait::deployment_ready(client, ns, name, T).await;
    let fresh = pods::of_newest_replicaset(client, ns, name).await;
    assert!(!fresh.is_empty(), "no pods in the newest ReplicaSet of {name}");
    for p in &fresh {
        assert!(pods::is_ready(p), "pod {} not Ready after the fix: {:?}", pods::name(p), p.status);
        assert_eq!(pods::phase(p), "Running");
    }
}

/// Events of a pod, waited for until one with `reason` whose message contains `needle` exists.
async fn pod_event(
    client: &Client,
    ns: &str,
    pod: &str,
    reason: &str,
    needle: &str,
) -> k8s_openapi::api::core::v1::Event {
    wait::until(T, &format!("event {reason} ~ {needle:?} on pod {ns}/{pod}"), || async {
        let evs = events::for_pod(client, ns, pod).await;
        evs.into_iter()
            .find(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().unwrap_or("").contains(needle))
    })
    .await
}

fn assert_from_kubelet(e: &k8s_openapi::api::core::v1::Event, pod: &Pod) {
    let src = e.source.as_ref().expect("event source");
    assert_eq!(src.component.as_deref(), Some("kubelet"));
    assert_eq!(src.host, pod.spec.as_ref().and_then(|s| s.node_name.clone()));
    assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(e.involved_object.uid, pod.metadata.uid);
}

#[tokio::test]
async fn config_secret_key_typo_gives_create_container_config_error_and_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "cfg-key").await;
    scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let pod = newest_pod_where(&client, &ns.name, "api", "CreateContainerConfigError", |p| {
        pods::waiting_reasons(p).contains(&"CreateContainerConfigError".to_string())
    })
    .await;
    let want = format!("couldn't find key DB_PASWORD in Secret {}/api-db", ns.name);
    assert_eq!(pods::waiting_messages(&pod), vec![want.clone()]);
    assert_eq!(pods::phase(&pod), "Pending");
    assert_eq!(pods::restart_count(&pod), 0);
    assert!(!pods::is_ready(&pod));
    let ev = pod_event(&client, &ns.name, pods::name(&pod), "Failed", &format!("Error: {want}")).await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.involved_object.field_path.as_deref(), Some("spec.containers{api}"));
    assert_from_kubelet(&ev, &pod);

    patch_deployment(
        &client,
        &ns.name,
        "api",
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "api",
            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "DB_PASSWORD"}}}]
        }]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "api").await;
    assert_eq!(pods::replicasets_of(&client, &ns.name, "api").await.len(), 2, "the fix is a new revision");
}

#[tokio::test]
async fn config_missing_configmap_waits_until_the_configmap_exists() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "cfg-cm").await;
    scenario::apply(&client, &ns.name, "config-missing-configmap").await;
    let pod = newest_pod_where(&client, &ns.name, "report", "CreateContainerConfigError", |p| {
        pods::waiting_reasons(p).contains(&"CreateContainerConfigError".to_string())
    })
    .await;
    assert_eq!(pods::waiting_messages(&pod), vec!["configmap \"report-settings\" not found".to_string()]);
    assert_eq!(pods::phase(&pod), "Pending");
    let ev = pod_event(&client, &ns.name, pods::name(&pod), "Failed", "Error: configmap \"report-settings\" not found")
        .await;
    assert_from_kubelet(&ev, &pod);
    // The kubelet keeps retrying: the repeated event is folded (count grows).
    wait::until(T, "the Failed event to repeat", || async {
        let evs = events::for_pod(&client, &ns.name, pods::name(&pod)).await;
        evs.iter().find(|e| e.reason.as_deref() == Some("Failed") && e.count.unwrap_or(1) >= 2).map(|_| ())
    })
    .await;

    // No patch can fix this; creating the ConfigMap does, without a new revision.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "report-settings"}, "data": {"schedule": "0 6 * * *"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    assert_healed(&client, &ns.name, "report").await;
    assert_eq!(pods::replicasets_of(&client, &ns.name, "report").await.len(), 1);
}

#[tokio::test]
async fn image_pull_bad_tag_backs_off_and_rollback_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "pull").await;
    scenario::apply(&client, &ns.name, "image-pull-bad-tag").await;
    let pod = newest_pod_where(&client, &ns.name, "web", "ImagePullBackOff", |p| {
        pods::waiting_reasons(p).contains(&"ImagePullBackOff".to_string())
    })
    .await;
    assert_eq!(pods::phase(&pod), "Pending");
    assert_eq!(pods::waiting_messages(&pod), vec!["Back-off pulling image \"nginx:1.25.33\"".to_string()]);
    let name = pods::name(&pod).to_string();
    let failed = pod_event(&client, &ns.name, &name, "Failed", "Failed to pull image \"nginx:1.25.33\"").await;
    assert!(failed.message.unwrap().contains("docker.io/library/nginx:1.25.33: not found"));
    pod_event(&client, &ns.name, &name, "Failed", "Error: ErrImagePull").await;
    pod_event(&client, &ns.name, &name, "Failed", "Error: ImagePullBackOff").await;
    let backoff = pod_event(&client, &ns.name, &name, "BackOff", "Back-off pulling image \"nginx:1.25.33\"").await;
    assert_from_kubelet(&backoff, &pod);
    // Revision 1 keeps serving: its two pods are still Ready.
    let sets = pods::replicasets_of(&client, &ns.name, "web").await;
    assert_eq!(sets.len(), 2);
    let old = pods::of_replicaset(&client, &sets[0]).await;
    assert_eq!(old.iter().filter(|p| pods::is_ready(p)).count(), 2);

    patch_deployment(
        &client,
        &ns.name,
        "web",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.25.3"}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "web").await;
}

#[tokio::test]
async fn crashloop_after_rollout_shows_restarts_logs_and_rollback_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "crash").await;
    scenario::apply(&client, &ns.name, "crashloop-after-rollout").await;
    let pod = newest_pod_where(&client, &ns.name, "worker", "CrashLoopBackOff with 2+ restarts", |p| {
        pods::waiting_reasons(p).contains(&"CrashLoopBackOff".to_string()) && pods::restart_count(p) >= 2
    })
    .await;
    assert_eq!(pods::phase(&pod), "Running");
    assert_eq!(pods::last_terminated_reasons(&pod), vec!["Error".to_string()]);
    assert_eq!(pods::last_exit_codes(&pod), vec![1]);
    assert!(!pods::is_ready(&pod));
    let name = pods::name(&pod).to_string();
    let ev = pod_event(&client, &ns.name, &name, "BackOff", "Back-off restarting failed container").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_from_kubelet(&ev, &pod);
    pod_event(&client, &ns.name, &name, "Started", "Started container worker").await;

    // pods/log through the apiserver reaches nodesim's kubelet endpoint.
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let prev = api.logs(&name, &LogParams { previous: true, ..LogParams::default() }).await.expect("previous logs");
    assert!(prev.contains("panic: invalid configuration: field \"concurrency\""), "{prev}");
    let tail =
        api.logs(&name, &LogParams { previous: true, tail_lines: Some(1), ..LogParams::default() }).await.unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // Revision 1 still runs; roll back to it.
    // (Each new pod is Ready for the second before it crashes, so the controller may have
    // scaled revision 1 down by one; at least one of its pods keeps serving.)
    let good = pods::of_replicaset(&client, &pods::replicasets_of(&client, &ns.name, "worker").await[0]).await;
    let good: Vec<Pod> = good.into_iter().filter(pods::is_ready).collect();
    assert!(!good.is_empty(), "no Ready pod left in revision 1");
    let first_log = api.logs(pods::name(&good[0]), &LogParams::default()).await.unwrap();
    assert!(first_log.contains("starting ghcr.io/kubemedic-demo/worker:1.4.0"), "{first_log}");
    patch_deployment(
        &client,
        &ns.name,
        "worker",
        json!({"spec": {"template": {
        "metadata": {"annotations": {"nodesim.kubemedic.io/exit-code": null, "nodesim.kubemedic.io/logs": null}},
        "spec": {"containers": [{"name": "worker", "image": "ghcr.io/kubemedic-demo/worker:1.4.0"}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "worker").await;
}

#[tokio::test]
async fn oom_killed_restarts_and_raising_the_limit_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "oom").await;
    scenario::apply(&client, &ns.name, "oom-killed").await;
    let pod = newest_pod_where(&client, &ns.name, "cache", "OOMKilled and CrashLoopBackOff", |p| {
        pods::last_terminated_reasons(p).contains(&"OOMKilled".to_string())
            && pods::waiting_reasons(p).contains(&"CrashLoopBackOff".to_string())
    })
    .await;
    assert_eq!(pods::last_exit_codes(&pod), vec![137]);
    assert!(pods::restart_count(&pod) >= 1);
    assert_eq!(pods::phase(&pod), "Running");
    let ev = pod_event(&client, &ns.name, pods::name(&pod), "BackOff", "Back-off restarting failed container").await;
    assert_from_kubelet(&ev, &pod);

    patch_deployment(
        &client,
        &ns.name,
        "cache",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "cache", "resources": {"limits": {"memory": "256Mi"}}}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "cache").await;
}

#[tokio::test]
async fn probe_on_wrong_port_is_unready_with_unhealthy_events_and_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "probe").await;
    scenario::apply(&client, &ns.name, "probe-wrong-port").await;
    let pod = newest_pod_where(&client, &ns.name, "shop", "Running but not Ready", |p| {
        pods::all_running(p) && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
    })
    .await;
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
    let name = pods::name(&pod).to_string();
    let want = format!(
        "Readiness probe failed: Get \"http://{ip}:8081/healthz\": dial tcp {ip}:8081: connect: connection refused"
    );
    let ev = wait::until(T, "Unhealthy event repeated", || async {
        let evs = events::for_pod(&client, &ns.name, &name).await;
        evs.into_iter().find(|e| e.reason.as_deref() == Some("Unhealthy") && e.count.unwrap_or(1) >= 2)
    })
    .await;
    assert_eq!(ev.message.as_deref(), Some(want.as_str()));
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_from_kubelet(&ev, &pod);
    let now: Pod = Api::namespaced(client.clone(), &ns.name).get(&name).await.unwrap();
    assert!(!pods::is_ready(&now));
    assert_eq!(pods::phase(&now), "Running");
    assert_eq!(pods::restart_count(&now), 0, "a failing readiness probe does not restart");

    patch_deployment(
        &client,
        &ns.name,
        "shop",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "shop", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "shop").await;
}

#[tokio::test]
async fn unschedulable_requests_stay_pending_and_lower_requests_heal() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "sched").await;
    scenario::apply(&client, &ns.name, "unschedulable-requests").await;
    let pod = newest_pod_where(&client, &ns.name, "batch", "PodScheduled=False", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"))
    })
    .await;
    assert_eq!(pods::phase(&pod), "Pending");
    assert!(pod.spec.as_ref().unwrap().node_name.is_none());
    let ev = pod_event(&client, &ns.name, pods::name(&pod), "FailedScheduling", "Insufficient cpu").await;
    // The 1.20 scheduler writes events.k8s.io/v1 Events: reportingComponent, not source.
    let from = ev.source.and_then(|s| s.component).or(ev.reporting_component);
    assert_eq!(from.as_deref(), Some("default-scheduler"));

    patch_deployment(
        &client,
        &ns.name,
        "batch",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "batch", "resources": {"requests": {"cpu": "500m"}}}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "batch").await;
}

#[tokio::test]
async fn rollout_stuck_exceeds_its_progress_deadline_and_rollback_heals() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "stuck").await;
    scenario::apply(&client, &ns.name, "rollout-stuck").await;
    let d = wait::deployment_progressing_reason(&client, &ns.name, "legacy", "ProgressDeadlineExceeded", T).await;
    let cond = d.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(cond.status, "False");
    assert!(cond.message.unwrap_or_default().contains("has timed out progressing"));
    let stuck = pods::of_newest_replicaset(&client, &ns.name, "legacy").await;
    assert!(!stuck.is_empty());
    for p in &stuck {
        let r = pods::waiting_reasons(p);
        assert!(r.iter().any(|r| r == "ImagePullBackOff" || r == "ErrImagePull"), "{r:?}");
    }

    patch_deployment(
        &client,
        &ns.name,
        "legacy",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "legacy", "image": "ghcr.io/kubemedic-demo/legacy:3.1.0"}]}}}}),
    )
    .await;
    assert_healed(&client, &ns.name, "legacy").await;
    wait::deployment_progressing_reason(&client, &ns.name, "legacy", "NewReplicaSetAvailable", T).await;
}

#[tokio::test]
async fn node_not_ready_when_heartbeats_stop_and_ready_when_they_resume() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "node").await;
    // Run the assertions in a task so the node is restored even when one fails.
    let (c, n) = (client.clone(), ns.name.clone());
    let res = tokio::spawn(async move {
        scenario::apply(&c, &n, "node-not-ready").await;
        let api: Api<Node> = Api::all(c.clone());
        let node = wait::until(T, "sim-node-2 Ready=Unknown", || async {
            let node = api.get(nodes::FLAKY_NODE).await.ok()?;
            let ready = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?.clone();
            (ready.status == "Unknown").then_some((node, ready))
        })
        .await;
        assert_eq!(node.1.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(node.1.message.as_deref(), Some("Kubelet stopped posting node status."));
        // The node controller taints it.
        wait::until(T, "unreachable taint on sim-node-2", || async {
            let node = api.get(nodes::FLAKY_NODE).await.ok()?;
            node.spec?.taints?.iter().any(|t| t.key == "node.kubernetes.io/unreachable").then_some(())
        })
        .await;
        // The other nodes keep heartbeating.
        assert_eq!(nodes::ready_status(&c, "sim-node-0").await.as_deref(), Some("True"));
    })
    .await;
    nodes::set_heartbeat(&client, nodes::FLAKY_NODE, true).await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
    wait::until(T, "sim-node-2 Ready again", || async {
        (nodes::ready_status(&client, nodes::FLAKY_NODE).await.as_deref() == Some("True")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn healthy_web_is_ready_with_endpoints_logs_and_no_warnings() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "web").await;
    scenario::apply(&client, &ns.name, "healthy-web").await;
    wait::deployment_ready(&client, &ns.name, "frontend", T).await;
    let ps = pods::of_deployment(&client, &ns.name, "frontend").await;
    assert_eq!(ps.len(), 2);
    for p in &ps {
        assert!(pods::is_ready(p));
        assert_eq!(pods::phase(p), "Running");
        assert_eq!(pods::restart_count(p), 0);
        assert!(pods::waiting_reasons(p).is_empty());
    }
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), &ns.name);
    wait::until(T, "2 ready endpoints for Service frontend", || async {
        let e = eps.get_opt("frontend").await.ok()??;
        let n: usize = e.subsets.iter().flatten().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
        (n == 2).then_some(())
    })
    .await;
    let first = pods::name(&ps[0]).to_string();
    pod_event(&client, &ns.name, &first, "Started", "Started container frontend").await;
    let evs = events::in_namespace(&client, &ns.name).await;
    // The real endpoints and endpoint-slice controllers may lose an optimistic-concurrency race
    // under load (FailedToUpdateEndpoint, FailedToUpdateEndpointSlices, retried at once); that is
    // the control plane's, not the workload's.
    let control_plane_race =
        |r: Option<&str>| matches!(r, Some("FailedToUpdateEndpoint" | "FailedToUpdateEndpointSlices"));
    let warnings: Vec<_> = evs
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") && !control_plane_race(e.reason.as_deref()))
        .collect();
    assert!(warnings.is_empty(), "warnings: {}", events::summary(&evs));
    let logs = Api::<Pod>::namespaced(client.clone(), &ns.name).logs(&first, &LogParams::default()).await.unwrap();
    assert!(logs.contains("listening on 0.0.0.0:80"), "{logs}");
}

#[tokio::test]
async fn healthy_stateful_set_pods_are_ready_in_order() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "sts").await;
    scenario::apply(&client, &ns.name, "healthy-stateful").await;
    wait::statefulset_ready(&client, &ns.name, "db", T).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for name in ["db-0", "db-1"] {
        let p = api.get(name).await.unwrap();
        assert!(pods::is_ready(&p), "{name}");
        assert_eq!(pods::restart_count(&p), 0);
        pod_event(&client, &ns.name, name, "Started", "Started container postgres").await;
    }
    // Deleting a pod: the simulated kubelet finishes the deletion and the controller recreates it.
    let uid = api.get("db-1").await.unwrap().metadata.uid;
    api.delete("db-1", &Default::default()).await.unwrap();
    wait::until(T, "db-1 recreated and Ready", || async {
        let p = api.get_opt("db-1").await.ok()??;
        (p.metadata.uid != uid && pods::is_ready(&p)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn liveness_probe_on_wrong_port_restarts_the_container() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "liveness").await;
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "probe-live"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "probe-live"}}, "template": {
            "metadata": {"labels": {"app": "probe-live"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {"tcpSocket": {"port": 81}, "periodSeconds": 1, "failureThreshold": 2}}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns.name).create(&PostParams::default(), &d).await.unwrap();
    let pod =
        newest_pod_where(&client, &ns.name, "probe-live", "a liveness restart", |p| pods::restart_count(p) >= 1).await;
    let name = pods::name(&pod).to_string();
    let ev = pod_event(&client, &ns.name, &name, "Unhealthy", "Liveness probe failed: dial tcp").await;
    assert!(ev.message.unwrap().ends_with(":81: connect: connection refused"));
    pod_event(&client, &ns.name, &name, "Killing", "Container app failed liveness probe, will be restarted").await;
}

#[tokio::test]
async fn job_pods_run_init_containers_and_complete() {
    let client = e2e::client().await;
    let ns = e2e::Namespace::create(&client, "job").await;
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"nodesim.kubemedic.io/exit-code": "0", "nodesim.kubemedic.io/logs": "migrated 3 tables"}},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "wait-db", "image": "busybox:1.36"}],
                "containers": [{"name": "migrate", "image": "ghcr.io/kubemedic-demo/api:1.2.0"}]}}}
    }))
    .unwrap();
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns.name);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    wait::until(T, "Job migrate complete", || async {
        let j = jobs.get("migrate").await.ok()?;
        (j.status?.succeeded? == 1).then_some(())
    })
    .await;
    let p = pods::list(&client, &ns.name, "job-name=migrate").await.pop().expect("job pod");
    assert_eq!(pods::phase(&p), "Succeeded");
    let init = &p.status.as_ref().unwrap().init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(init.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Completed"));
    let logs =
        Api::<Pod>::namespaced(client.clone(), &ns.name).logs(pods::name(&p), &LogParams::default()).await.unwrap();
    assert_eq!(logs, "migrated 3 tables\n");
}
