//! The verification decision, without a cluster.

use super::*;
use serde_json::json;

const WINDOW: Duration = Duration::from_secs(30);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn container(restarts: i32) -> ContainerHealth {
    ContainerHealth { name: "app".into(), restarts, ..Default::default() }
}

fn pod(name: &str, new: bool, ready: bool, c: ContainerHealth) -> PodHealth {
    PodHealth { name: name.into(), uid: format!("uid-{name}"), new, ready, containers: vec![c] }
}

fn complete(pods: Vec<PodHealth>) -> Observation {
    Observation { rollout: Rollout::Complete("1/1 replicas updated and available".into()), want: 1, pods }
}

#[test]
fn available_is_not_verified_until_the_window_passes() {
    let mut judge = Judge::new(WINDOW);
    let healthy = complete(vec![pod("web-new", true, true, container(0))]);
    assert_eq!(judge.observe(&healthy, s(0)), Decision::Wait("stable for 0s of 30s".into()));
    assert_eq!(judge.observe(&healthy, s(29)), Decision::Wait("stable for 29s of 30s".into()));
    match judge.observe(&healthy, s(30)) {
        Decision::Verified(msg) => {
            assert!(msg.contains("1/1 replicas updated and available"), "{msg}");
            assert!(msg.contains("no restarts for 30s"), "{msg}");
        }
        other => panic!("expected verified, got {other:?}"),
    }
}

#[test]
fn a_restart_inside_the_window_fails_with_the_reason() {
    // The OOM case: Ready at once, OOM-killed a second later, restarted and Ready again.
    let mut judge = Judge::new(WINDOW);
    assert!(matches!(
        judge.observe(&complete(vec![pod("cache-1", true, true, container(0))]), s(0)),
        Decision::Wait(_)
    ));
    let oom = ContainerHealth { last_terminated: Some(("OOMKilled".into(), 137)), ..container(1) };
    let got = judge.observe(&complete(vec![pod("cache-1", true, true, oom)]), s(2));
    assert_eq!(
        got,
        Decision::Failed(
            "pod cache-1 container app restarted 1 time(s) after the change (last exit: OOMKilled, exit code 137)"
                .into()
        )
    );
}

#[test]
fn a_new_pod_restarted_before_the_rollout_completed_counts() {
    // Restarts of the change's own pods count from zero, even if first seen restarted.
    let mut judge = Judge::new(WINDOW);
    let obs = Observation {
        rollout: Rollout::Progressing("0 updated".into()),
        want: 1,
        pods: vec![pod("cache-new", true, true, container(2))],
    };
    assert!(matches!(judge.observe(&obs, s(0)), Decision::Failed(m) if m.contains("restarted 2 time(s)")));
}

#[test]
fn old_pods_are_ignored_during_the_rollout_and_judged_by_their_own_baseline_after() {
    let mut judge = Judge::new(WINDOW);
    let crashing = ContainerHealth { waiting: Some("CrashLoopBackOff: back-off 8s".into()), ..container(5) };
    let progressing = Observation {
        rollout: Rollout::Progressing("1 updated, 0 available, 1 unavailable of 1".into()),
        want: 1,
        pods: vec![pod("api-old", false, false, crashing), pod("api-new", true, false, container(0))],
    };
    assert_eq!(
        judge.observe(&progressing, s(0)),
        Decision::Wait("rollout in progress: 1 updated, 0 available, 1 unavailable of 1".into())
    );
    // A scale-up style change: the old pod stays, with its 5 earlier restarts.
    let old = pod("api-old", false, true, container(5));
    let obs = Observation { want: 2, ..complete(vec![old.clone(), pod("api-new", true, true, container(0))]) };
    assert!(matches!(judge.observe(&obs, s(1)), Decision::Wait(_)));
    assert!(matches!(judge.observe(&obs, s(31)), Decision::Verified(_)));
    let mut judge = Judge::new(WINDOW);
    assert!(matches!(judge.observe(&complete(vec![old.clone()]), s(0)), Decision::Wait(_)));
    let again = pod("api-old", false, true, container(6));
    assert!(matches!(judge.observe(&complete(vec![again]), s(3)), Decision::Failed(m) if m.contains("1 time(s)")));
}

#[test]
fn not_ready_restarts_the_window_and_failure_states_end_it() {
    let mut judge = Judge::new(WINDOW);
    let ready = complete(vec![pod("w", true, true, container(0))]);
    assert!(matches!(judge.observe(&ready, s(0)), Decision::Wait(_)));
    let unready = complete(vec![pod("w", true, false, container(0))]);
    assert_eq!(judge.observe(&unready, s(20)), Decision::Wait("pod w is not Ready".into()));
    assert_eq!(judge.observe(&ready, s(25)), Decision::Wait("stable for 0s of 30s".into()));
    assert!(matches!(judge.observe(&ready, s(50)), Decision::Wait(_)), "the window restarted at 25s");
    assert!(matches!(judge.observe(&ready, s(55)), Decision::Verified(_)));

    let too_few = Observation { want: 2, ..ready.clone() };
    assert_eq!(Judge::new(WINDOW).observe(&too_few, s(0)), Decision::Wait("1/2 pods Ready".into()));

    for (c, want) in [
        (
            ContainerHealth { waiting: Some("ErrImagePull: not found".into()), ..container(0) },
            "is waiting: ErrImagePull",
        ),
        (ContainerHealth { terminated: Some(("Error".into(), 1)), ..container(0) }, "terminated: Error, exit code 1"),
    ] {
        let got = Judge::new(WINDOW).observe(&complete(vec![pod("w", true, false, c)]), s(0));
        assert!(matches!(&got, Decision::Failed(m) if m.contains(want)), "{got:?}");
    }
    let creating = ContainerHealth { waiting: Some("ContainerCreating".into()), ..container(0) };
    let got = Judge::new(WINDOW).observe(&complete(vec![pod("w", true, false, creating)]), s(0));
    assert_eq!(got, Decision::Wait("pod w is not Ready".into()));
    let failed = Observation { rollout: Rollout::Failed("progress deadline exceeded".into()), want: 1, pods: vec![] };
    assert_eq!(Judge::new(WINDOW).observe(&failed, s(0)), Decision::Failed("progress deadline exceeded".into()));
}

#[test]
fn zero_window_verifies_on_completion() {
    let mut judge = Judge::new(Duration::ZERO);
    assert!(matches!(judge.observe(&complete(vec![pod("w", true, true, container(0))]), s(0)), Decision::Verified(_)));
}

#[test]
fn pod_health_reads_kubelet_status() {
    let since: jiff::Timestamp = "2026-11-25T18:00:00.700Z".parse().unwrap();
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "cache-7d9", "uid": "u1", "creationTimestamp": "2026-11-25T18:00:00Z"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "cache", "image": "redis:7.2", "imageID": "", "ready": true, "restartCount": 1,
                "state": {"running": {"startedAt": "2026-11-25T18:00:02Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
            }]
        }
    }))
    .unwrap();
    let h = pod_health(&p, since, &Current::Any).unwrap();
    assert!(h.new, "created in the second the apply started");
    assert!(h.ready);
    assert_eq!(h.containers[0].restarts, 1);
    assert_eq!(h.containers[0].last_terminated, Some(("OOMKilled".into(), 137)));
    assert_eq!(h.containers[0].waiting, None);
    let older: jiff::Timestamp = "2026-11-25T18:00:01Z".parse().unwrap();
    assert!(!pod_health(&p, older, &Current::Any).unwrap().new);
    let owned = |name: &str| Current::Owners(vec![name.to_owned()]);
    let mut of_rs = p.clone();
    of_rs.metadata.owner_references = Some(vec![
        serde_json::from_value(json!(
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cache-7d9", "uid": "rs1", "controller": true}
        ))
        .unwrap(),
    ]);
    assert!(pod_health(&of_rs, since, &owned("cache-7d9")).unwrap().new);
    assert!(!pod_health(&of_rs, since, &owned("cache-5f1")).unwrap().new, "a pod of the previous revision");
    let hash = |h: &str| Current::RevisionHash(h.to_owned());
    let mut of_sts = p.clone();
    of_sts.metadata.labels = Some([("controller-revision-hash".to_owned(), "db-6c8".to_owned())].into());
    assert!(pod_health(&of_sts, since, &hash("db-6c8")).unwrap().new);
    assert!(!pod_health(&of_sts, since, &hash("db-7a1")).unwrap().new);
    let mut deleting = p.clone();
    deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
    assert_eq!(pod_health(&deleting, since, &Current::Any), None, "terminating pods are not judged");
    // A pod of the previous revision the kubelet evicted stays listed, Failed: history, not judged.
    let mut evicted = of_rs.clone();
    let st = evicted.status.as_mut().unwrap();
    (st.phase, st.reason) = (Some("Failed".into()), Some("Evicted".into()));
    assert_eq!(pod_health(&evicted, since, &owned("cache-5f1")), None);
    // The change's own pod evicted is judged (and fails on its killed container).
    assert!(pod_health(&evicted, since, &owned("cache-7d9")).unwrap().new);
}

#[test]
fn config_checks_the_window_fits_the_timeout() {
    let ok = crate::approvals::ApprovalsConfig::default();
    assert_eq!((ok.verify_stable_seconds, ok.verify_timeout_seconds), (30, 300));
    ok.validate().unwrap();
    let bad = crate::approvals::ApprovalsConfig { verify_stable_seconds: 300, ..ok.clone() };
    assert!(bad.validate().unwrap_err().contains("verify_stable_seconds (300)"));
    let zero = crate::approvals::ApprovalsConfig { verify_timeout_seconds: 0, verify_stable_seconds: 0, ..ok };
    assert!(zero.validate().is_err());
    let yaml = "verify_stable_seconds: 5\nverify_timeout_seconds: 60\n";
    let parsed: crate::approvals::ApprovalsConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(parsed.verify_window().stable, s(5));
    assert!(serde_yaml_ng::from_str::<crate::approvals::ApprovalsConfig>("verify_stable: 5\n").is_err());
}
