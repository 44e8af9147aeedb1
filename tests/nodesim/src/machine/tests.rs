use super::*;
use crate::derive::Exit;

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

const ONE: &str = "metadata: {name: p, namespace: n, uid: u1}\nspec:\n  containers: [{name: app, image: nginx}]\n";

fn backoff() -> Backoff {
    Backoff { base: Duration::from_secs(1), max: Duration::from_secs(8) }
}

fn run(exit: Option<Exit>) -> Outcome {
    Outcome::Run(RunSpec {
        exit,
        logs: vec!["hello".into()],
        readiness: ProbeResult::Absent,
        liveness: ProbeResult::Absent,
        evict: None,
    })
}

fn waiting(m: &mut PodMachine) -> Option<String> {
    let st = m.status();
    st.container_statuses.unwrap()[0].state.as_ref().unwrap().waiting.as_ref().and_then(|w| w.reason.clone())
}

fn restarts(m: &mut PodMachine) -> i32 {
    m.status().container_statuses.unwrap()[0].restart_count
}

/// Drives the machine until `until`, starting due containers with `outcome`.
fn drive(m: &mut PodMachine, from: Instant, until: Instant, outcome: &Outcome) {
    let mut now = from;
    while now <= until {
        for i in m.due_starts(now) {
            m.start(i, outcome.clone(), now);
        }
        m.advance(now);
        now += Duration::from_millis(100);
    }
}

#[test]
fn healthy_container_is_running_and_ready() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "sim-node-0", "127.0.0.1", "10.64.0.2", backoff(), t0);
    assert_eq!(m.due_starts(t0), vec![0]);
    m.start(0, run(None), t0);
    let st = m.status();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let reasons: Vec<&str> = m.take_events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Pulled", "Created", "Started"]);
    assert_eq!(m.take_logs(), vec![("app".to_string(), true, vec!["hello".to_string()])]);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn crashing_container_restarts_with_back_off_and_counts() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let crash = run(Some(Exit { code: 1, reason: "Error", after: Duration::from_secs(1) }));
    drive(&mut m, t0, t0 + Duration::from_millis(1100), &crash);
    // First crash: terminated, restarted at once (no back-off yet).
    let st = m.status();
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert_eq!(cs.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
    assert_eq!(st.phase.as_deref(), Some("Running"));
    drive(&mut m, t0 + Duration::from_millis(1200), t0 + Duration::from_millis(2500), &crash);
    assert_eq!(waiting(&mut m).as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(restarts(&mut m), 1);
    let msg = m.status().container_statuses.unwrap()[0].state.clone().unwrap().waiting.and_then(|w| w.message);
    assert_eq!(msg.as_deref(), Some("back-off 1s restarting failed container=app pod=p_n(u1)"));
    let st = m.status();
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert!(
        m.take_events().iter().any(|e| e.reason == "BackOff" && e.message == "Back-off restarting failed container")
    );
    drive(&mut m, t0 + Duration::from_millis(2600), t0 + Duration::from_secs(12), &crash);
    assert!(restarts(&mut m) >= 3, "restarts {}", restarts(&mut m));
}

#[test]
fn oom_killed_shows_reason_and_137() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let oom = run(Some(Exit { code: 137, reason: "OOMKilled", after: Duration::from_secs(1) }));
    drive(&mut m, t0, t0 + Duration::from_secs(4), &oom);
    let st = m.status();
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (137, Some("OOMKilled")));
}

#[test]
fn image_pull_error_turns_into_back_off_and_retries() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let pull = Outcome::Pull("not found".into());
    drive(&mut m, t0, t0, &pull);
    assert_eq!(waiting(&mut m).as_deref(), Some("ErrImagePull"));
    assert_eq!(m.status().phase.as_deref(), Some("Pending"));
    drive(&mut m, t0 + Duration::from_millis(100), t0 + Duration::from_millis(1100), &pull);
    assert_eq!(waiting(&mut m).as_deref(), Some("ImagePullBackOff"));
    let ev: Vec<String> = m.take_events().iter().map(|e| format!("{} {}", e.reason, e.message)).collect();
    assert!(ev.contains(&"Failed Error: ErrImagePull".to_string()), "{ev:?}");
    assert!(ev.contains(&"Failed Error: ImagePullBackOff".to_string()), "{ev:?}");
    assert!(ev.contains(&"BackOff Back-off pulling image \"nginx\"".to_string()), "{ev:?}");
    // Retried: a second Pulling.
    drive(&mut m, t0 + Duration::from_millis(1200), t0 + Duration::from_secs(3), &pull);
    assert!(m.take_events().iter().any(|e| e.reason == "Pulling"));
}

#[test]
fn config_error_waits_and_heals_when_fixed() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    drive(&mut m, t0, t0, &Outcome::Config("couldn't find key K in Secret n/s".into()));
    assert_eq!(waiting(&mut m).as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(m.status().phase.as_deref(), Some("Pending"));
    assert!(m.take_events().iter().any(|e| e.message == "Error: couldn't find key K in Secret n/s"));
    drive(&mut m, t0 + Duration::from_millis(100), t0 + Duration::from_secs(2), &run(None));
    assert_eq!(waiting(&mut m), None);
    assert_eq!(restarts(&mut m), 0);
    assert_eq!(m.status().phase.as_deref(), Some("Running"));
}

#[test]
fn start_error_waits_in_run_container_error_and_retries() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let msg = "failed to start container \"c\": exec: \"nope\": executable file not found in $PATH: unknown";
    drive(&mut m, t0, t0, &Outcome::Start(msg.into()));
    assert_eq!(waiting(&mut m).as_deref(), Some("RunContainerError"));
    assert_eq!(m.status().phase.as_deref(), Some("Pending"));
    let events = m.take_events();
    assert!(events.iter().any(|e| e.reason == "Created"), "{events:?}");
    assert!(events.iter().any(|e| e.type_ == "Warning" && e.message == format!("Error: {msg}")), "{events:?}");
    // Retried after back-off: still failing, the same state; the restart count does not move.
    drive(&mut m, t0 + Duration::from_millis(100), t0 + Duration::from_secs(3), &Outcome::Start(msg.into()));
    assert_eq!(waiting(&mut m).as_deref(), Some("RunContainerError"));
    assert_eq!(restarts(&mut m), 0);
}

#[test]
fn a_container_over_its_ephemeral_storage_limit_gets_the_pod_evicted() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let msg = "Container app exceeded its local ephemeral storage limit \"64Mi\". ";
    let out = Outcome::Run(RunSpec {
        exit: None,
        logs: vec![],
        readiness: ProbeResult::Absent,
        liveness: ProbeResult::Absent,
        evict: Some(Box::new(crate::derive::Evict { after: Duration::from_secs(1), message: msg.into() })),
    });
    drive(&mut m, t0, t0 + Duration::from_millis(500), &out);
    assert_eq!(m.status().phase.as_deref(), Some("Running"));
    drive(&mut m, t0 + Duration::from_millis(600), t0 + Duration::from_secs(5), &out);
    let st = m.status();
    assert_eq!(
        (st.phase.as_deref(), st.reason.as_deref(), st.message.as_deref()),
        (Some("Failed"), Some("Evicted"), Some(msg))
    );
    let cs = &st.container_statuses.unwrap()[0];
    assert_eq!(cs.state.as_ref().unwrap().terminated.as_ref().map(|t| t.exit_code), Some(137));
    assert_eq!(cs.restart_count, 0, "an evicted pod's containers are not restarted");
    assert!(m.is_evicted());
    assert!(m.take_events().iter().any(|e| e.type_ == "Warning" && e.reason == "Evicted" && e.message == msg));
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn failing_readiness_probe_keeps_pod_unready_with_unhealthy_events() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let out = Outcome::Run(RunSpec {
        exit: None,
        logs: vec![],
        readiness: ProbeResult::Fail {
            delay: Duration::ZERO,
            period: Duration::from_secs(1),
            threshold: 3,
            detail: "dial tcp 10.64.0.2:8081: connect: connection refused".into(),
            errored: false,
        },
        liveness: ProbeResult::Absent,
        evict: None,
    });
    drive(&mut m, t0, t0 + Duration::from_secs(3), &out);
    let st = m.status();
    assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "Ready" && c.status == "False"));
    let unhealthy = m.take_events().iter().filter(|e| e.reason == "Unhealthy").count();
    assert!(unhealthy >= 3, "{unhealthy}");
    assert_eq!(restarts(&mut m), 0);
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let t0 = Instant::now();
    let mut m = PodMachine::new(&pod(ONE), "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    let out = Outcome::Run(RunSpec {
        exit: None,
        logs: vec![],
        readiness: ProbeResult::Absent,
        liveness: ProbeResult::Fail {
            delay: Duration::ZERO,
            period: Duration::from_secs(1),
            threshold: 2,
            detail: "dial tcp: refused".into(),
            errored: false,
        },
        evict: None,
    });
    drive(&mut m, t0, t0 + Duration::from_secs(4), &out);
    assert!(restarts(&mut m) >= 1);
    assert!(m.take_events().iter().any(|e| e.reason == "Killing" && e.message.contains("failed liveness probe")));
}

#[test]
fn init_containers_complete_before_regular_ones_start() {
    let p = pod(
        "metadata: {name: p, namespace: n, uid: u}\nspec:\n  initContainers: [{name: init, image: busybox}]\n  containers: [{name: app, image: nginx}]\n",
    );
    let t0 = Instant::now();
    let mut m = PodMachine::new(&p, "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    assert_eq!(m.due_starts(t0), vec![0]);
    m.start(0, run(None), t0);
    assert_eq!(m.status().phase.as_deref(), Some("Pending"));
    m.advance(t0 + Duration::from_millis(300));
    assert_eq!(m.due_starts(t0 + Duration::from_millis(300)), vec![1]);
    m.start(1, run(None), t0 + Duration::from_millis(300));
    let st = m.status();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let init = &st.init_container_statuses.unwrap()[0];
    assert_eq!(init.state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Completed"));
}

#[test]
fn never_restart_policy_ends_failed() {
    let p = pod(
        "metadata: {name: p, namespace: n, uid: u}\nspec:\n  restartPolicy: Never\n  containers: [{name: app, image: nginx}]\n",
    );
    let t0 = Instant::now();
    let mut m = PodMachine::new(&p, "n", "127.0.0.1", "10.64.0.2", backoff(), t0);
    drive(
        &mut m,
        t0,
        t0 + Duration::from_secs(3),
        &run(Some(Exit { code: 2, reason: "Error", after: Duration::from_secs(1) })),
    );
    assert_eq!(m.status().phase.as_deref(), Some("Failed"));
    assert_eq!(restarts(&mut m), 0);
}
