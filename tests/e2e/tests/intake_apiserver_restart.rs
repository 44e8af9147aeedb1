//! Killing and restarting the apiserver mid-watch loses no failure.
//!
//! The test runs its own etcd and two kube-apiservers on it (A and B, same
//! flags as tests/cluster/up.sh), so killing A does not disturb the other
//! tests. kubemedic watches through A. While A is down, pods fail (status
//! written through B, as a kubelet would through another apiserver replica).
//! When A is back, the watchers resume from their resourceVersion or, on
//! 410 Gone, relist, and every failure becomes exactly one incident.

mod intake_common;

use std::time::Duration;

use e2e::controlplane::ControlPlane;
use e2e::daemon::free_port;
use intake_common::{Intake, repo_root, state_dir};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kubemedic::signal::WorkloadRef;

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "restart"}},
        // No scheduler runs here, and none is named this: the pods stay put for their status writes.
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "registry.local/app:1"}]}
    }))
    .unwrap()
}

fn status(waiting: &str, last_terminated: Option<&str>) -> serde_json::Value {
    let mut cs = serde_json::json!({
        "name": "c", "image": "registry.local/app:1", "imageID": "", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": waiting, "message": "written by the restart test"}}
    });
    if let Some(reason) = last_terminated {
        cs["lastState"] = serde_json::json!({"terminated": {"exitCode": 137, "reason": reason}});
    }
    serde_json::json!({"status": {"phase": "Pending", "containerStatuses": [cs]}})
}

async fn fail(api: &Api<Pod>, name: &str, waiting: &str, last: Option<&str>) {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status(waiting, last)))
        .await
        .unwrap_or_else(|e| panic!("status of {name}: {e}"));
}

#[tokio::test]
async fn apiserver_restart_loses_no_failure() {
    let dir = state_dir("apiserver-restart");
    let cp = ControlPlane::start(&dir);
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Some(cp.apiserver("apiserver-a", port_a));
    let _b = cp.apiserver("apiserver-b", port_b);
    let (client_a, client_b) = (cp.client(port_a).await, cp.client(port_b).await);
    cp.wait_ready(&client_a, "apiserver-a").await;
    cp.wait_ready(&client_b, "apiserver-b").await;

    let ns = "restart";
    let ns_obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client_b.clone()).create(&PostParams::default(), &ns_obj).await.unwrap();
    let pods_b: Api<Pod> = Api::namespaced(client_b.clone(), ns);
    for name in ["p0", "p1", "p2", "p3"] {
        pods_b.create(&PostParams::default(), &pod(name)).await.unwrap();
    }
    let intake = Intake::start(client_a.clone(), vec![ns.into()], &repo_root().join("rules")).await;
    let pod_ref = |n: &str| WorkloadRef::new("Pod", ns, n);

    // Sanity: a failure while A is up.
    fail(&pods_b, "p0", "CrashLoopBackOff", Some("Error")).await;
    intake.wait_incident(Duration::from_secs(30), "for p0", |i| i.workload == pod_ref("p0")).await;

    // A goes away mid-watch; failures happen through B meanwhile.
    drop(a.take());
    fail(&pods_b, "p1", "ErrImagePull", None).await;
    fail(&pods_b, "p2", "CrashLoopBackOff", Some("OOMKilled")).await;
    fail(&pods_b, "p3", "CreateContainerConfigError", None).await;
    pods_b.create(&PostParams::default(), &pod("p4")).await.unwrap();
    fail(&pods_b, "p4", "CrashLoopBackOff", Some("Error")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(intake.incidents().await.len(), 1, "nothing can arrive while A is down");

    // A comes back with the same flags.
    let _a = cp.apiserver("apiserver-a", port_a);
    cp.wait_ready(&client_a, "apiserver-a").await;
    let expect = [
        ("p1", "ImagePullBackOff"),
        ("p2", "OOMKilled"),
        ("p3", "CreateContainerConfigError"),
        ("p4", "CrashLoopBackOff"),
    ];
    for (name, reason) in expect {
        let inc = intake
            .wait_incident(Duration::from_secs(120), &format!("for {name} after the restart"), |i| {
                i.workload == pod_ref(name)
            })
            .await;
        assert_eq!(inc.reason, reason, "{name}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all = intake.incidents().await;
    assert_eq!(all.len(), 5, "exactly one incident per failed pod: {all:#?}\n{}", intake.signal_summary());
    let errors = intake.watch.as_ref().map_or(0, |w| w.stats().errors_total.load(std::sync::atomic::Ordering::Relaxed));
    assert!(errors > 0, "the watchers should have seen the apiserver go away");
    intake.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
