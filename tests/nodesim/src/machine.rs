//! One pod's containers as a kubelet drives them: a state machine over time.
//!
//! The kubelet task asks which containers are due to start ([`PodMachine::due_starts`]), derives
//! their [`Outcome`] (which needs API reads) and hands it to [`PodMachine::start`]; everything
//! else (exits, probes, back-off) happens in [`PodMachine::advance`]. The machine records the
//! Events a kubelet would emit and produces the pod status; it never talks to the API itself.
//!
//! Back-off is shortened from kubelet's 10s…5min to `backoff_base`…`backoff_max` (default 1s…8s,
//! doubling), and a first crash restarts after [`FIRST_RESTART`] as kubelet restarts at once.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use crate::derive::{Outcome, ProbeResult, RunSpec};

/// Delay before the first restart after a crash (kubelet restarts a first crash immediately).
pub const FIRST_RESTART: Duration = Duration::from_millis(300);

/// How long ErrImagePull shows before it turns into ImagePullBackOff.
pub const PULL_ERROR_SHOWN: Duration = Duration::from_secs(1);

/// An Event the kubelet would emit about the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// e.g. `BackOff`, `Failed`, `Unhealthy`.
    pub reason: &'static str,
    /// Human text, in kubelet's words.
    pub message: String,
    /// `spec.containers{name}`, or `None` for pod-level events.
    pub field_path: Option<String>,
}

#[derive(Debug, Clone)]
enum State {
    Waiting { reason: String, message: Option<String> },
    Running { since: Timestamp },
    Terminated(Term),
}

#[derive(Debug, Clone)]
struct Term {
    code: i32,
    reason: String,
    started: Timestamp,
    finished: Timestamp,
    id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Start,
    PullBackOff,
    Exit,
    Ready,
    Readiness,
    Liveness,
    Evict,
}

#[derive(Debug)]
struct Ctr {
    name: String,
    image: String,
    init: bool,
    state: State,
    last: Option<Term>,
    restarts: i32,
    ready: bool,
    /// Consecutive failures, the back-off exponent.
    failures: u32,
    liveness_failures: u32,
    spec: Option<RunSpec>,
    timers: Vec<(Instant, Timer)>,
    id: String,
}

impl Ctr {
    fn field_path(&self) -> String {
        format!("spec.{}{{{}}}", if self.init { "initContainers" } else { "containers" }, self.name)
    }
    fn has_run(&self) -> bool {
        self.last.is_some() || matches!(self.state, State::Running { .. } | State::Terminated(_))
    }
    fn completed_ok(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.code == 0)
    }
}

/// Back-off timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First back-off.
    pub base: Duration,
    /// Longest back-off.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `n` consecutive failures (n >= 1).
    pub fn delay(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(16);
        self.base.saturating_mul(1 << exp).min(self.max)
    }
}

/// The simulated kubelet's view of one pod.
#[derive(Debug)]
pub struct PodMachine {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (status patches are preconditioned on it).
    pub uid: String,
    /// The node it runs on.
    pub node: String,
    /// The simulated pod IP.
    pub pod_ip: String,
    host_ip: String,
    restart_policy: String,
    start_time: Timestamp,
    ctrs: Vec<Ctr>,
    backoff: Backoff,
    mount_failures: u32,
    events: Vec<EventSpec>,
    transitions: [(bool, Timestamp); 3],
    /// Log lines written by containers since the last [`PodMachine::take_logs`]: (container, new run?, lines).
    logs: Vec<(String, bool, Vec<String>)>,
    /// Set once the kubelet evicted the pod: its message. The pod is then Failed for good.
    evicted: Option<String>,
}

impl PodMachine {
    /// A machine for a pod just bound to `node`: the first containers are due to start now.
    pub fn new(pod: &Pod, node: &str, host_ip: &str, pod_ip: &str, backoff: Backoff, now: Instant) -> PodMachine {
        let spec = pod.spec.clone().unwrap_or_default();
        let ts = Timestamp::now();
        let prior: std::collections::HashMap<String, i32> = pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .map(|c| (c.name.clone(), c.restart_count))
            .collect();
        let mk = |c: &k8s_openapi::api::core::v1::Container, init: bool| Ctr {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
            state: State::Waiting {
                reason: if init { "PodInitializing" } else { "ContainerCreating" }.into(),
                message: None,
            },
            last: None,
            restarts: if init { 0 } else { prior.get(&c.name).copied().unwrap_or(0) },
            ready: false,
            failures: 0,
            liveness_failures: 0,
            spec: None,
            timers: Vec::new(),
            id: String::new(),
        };
        let mut ctrs: Vec<Ctr> = spec.init_containers.iter().flatten().map(|c| mk(c, true)).collect();
        ctrs.extend(spec.containers.iter().map(|c| mk(c, false)));
        if ctrs.iter().any(|c| c.init) {
            for c in ctrs.iter_mut().filter(|c| !c.init) {
                c.state = State::Waiting { reason: "PodInitializing".into(), message: None };
            }
        }
        let mut m = PodMachine {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node.to_string(),
            pod_ip: pod_ip.to_string(),
            host_ip: host_ip.to_string(),
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            start_time: ts,
            ctrs,
            backoff,
            mount_failures: 0,
            events: Vec::new(),
            transitions: [(false, ts); 3],
            logs: Vec::new(),
            evicted: None,
        };
        m.schedule_next_starts(now);
        m
    }

    /// Schedules the start of the next init container, or of all regular containers once every
    /// init container completed.
    fn schedule_next_starts(&mut self, now: Instant) {
        if let Some(i) = self.ctrs.iter().position(|c| c.init && !c.completed_ok()) {
            if self.ctrs[i].timers.is_empty() && !matches!(self.ctrs[i].state, State::Running { .. }) {
                self.ctrs[i].timers.push((now, Timer::Start));
            }
            return;
        }
        for c in self.ctrs.iter_mut().filter(|c| !c.init && !c.has_run() && c.timers.is_empty()) {
            c.timers.push((now, Timer::Start));
        }
    }

    /// Indexes of containers whose start is due; their Start timers are consumed.
    pub fn due_starts(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        for (i, c) in self.ctrs.iter_mut().enumerate() {
            if let Some(pos) = c.timers.iter().position(|(t, k)| *k == Timer::Start && *t <= now) {
                c.timers.remove(pos);
                due.push(i);
            }
        }
        due
    }

    /// Re-arms the start of container `i` at `at` (a transient API error while preparing it).
    pub fn defer_start(&mut self, i: usize, at: Instant) {
        self.ctrs[i].timers.push((at, Timer::Start));
    }

    /// True once any container has been started (volumes are mounted by then).
    pub fn any_run(&self) -> bool {
        self.ctrs.iter().any(Ctr::has_run)
    }

    /// The container spec name of index `i` and whether it is an init container.
    pub fn container(&self, i: usize) -> (&str, bool) {
        (&self.ctrs[i].name, self.ctrs[i].init)
    }

    /// The pod's volumes cannot be mounted: every container not yet started waits in
    /// ContainerCreating and the start is retried after back-off.
    pub fn mount_failed(&mut self, message: String, now: Instant) {
        self.mount_failures += 1;
        let delay = self.backoff.delay(self.mount_failures);
        self.event("Warning", "FailedMount", message, None);
        for c in self.ctrs.iter_mut().filter(|c| !c.has_run()) {
            c.timers.retain(|(_, k)| *k != Timer::Start);
            c.timers.push((now + delay, Timer::Start));
        }
        // Only the containers the retry concerns are re-armed; init order is kept by schedule_next_starts.
        if self.ctrs.iter().any(|c| c.init && !c.completed_ok()) {
            for c in self.ctrs.iter_mut().filter(|c| !c.init) {
                c.timers.retain(|(_, k)| *k != Timer::Start);
            }
        }
    }

    /// Tries to start container `i` with the derived outcome.
    pub fn start(&mut self, i: usize, outcome: Outcome, now: Instant) {
        self.mount_failures = 0;
        let ts = Timestamp::now();
        let fp = Some(self.ctrs[i].field_path());
        let image = self.ctrs[i].image.clone();
        match outcome {
            Outcome::Pull(msg) => {
                self.event("Normal", "Pulling", format!("Pulling image \"{image}\""), fp.clone());
                self.event("Warning", "Failed", format!("Failed to pull image \"{image}\": {msg}"), fp.clone());
                self.event("Warning", "Failed", "Error: ErrImagePull".into(), fp);
                let c = &mut self.ctrs[i];
                c.failures += 1;
                c.state = State::Waiting { reason: "ErrImagePull".into(), message: Some(msg) };
                c.timers.push((now + PULL_ERROR_SHOWN, Timer::PullBackOff));
            }
            Outcome::Config(msg) => {
                self.event(
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                    fp.clone(),
                );
                self.event("Warning", "Failed", format!("Error: {msg}"), fp);
                let c = &mut self.ctrs[i];
                c.failures += 1;
                let delay = self.backoff.delay(c.failures);
                c.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(msg) };
                c.timers.push((now + delay, Timer::Start));
            }
            Outcome::Start(msg) => {
                self.created(&image, i, &fp);
                self.event("Warning", "Failed", format!("Error: {msg}"), fp);
                let c = &mut self.ctrs[i];
                c.failures += 1;
                let delay = self.backoff.delay(c.failures);
                c.state = State::Waiting { reason: "RunContainerError".into(), message: Some(msg) };
                c.timers.push((now + delay, Timer::Start));
            }
            Outcome::Run(spec) => {
                let name = self.created(&image, i, &fp);
                self.event("Normal", "Started", format!("Started container {name}"), fp);
                let c = &mut self.ctrs[i];
                let restarted = c.has_run();
                if restarted {
                    c.restarts += 1;
                }
                if let State::Terminated(t) = &c.state {
                    c.last = Some(t.clone());
                }
                c.id = container_id(&self.uid, &c.name, c.restarts);
                c.state = State::Running { since: ts };
                c.liveness_failures = 0;
                c.ready = false;
                if let Some(exit) = &spec.exit {
                    c.timers.push((now + exit.after, Timer::Exit));
                }
                if let Some(evict) = &spec.evict {
                    c.timers.push((now + evict.after, Timer::Evict));
                }
                if !c.init {
                    match &spec.readiness {
                        ProbeResult::Absent => c.ready = true,
                        ProbeResult::Pass { delay } => c.timers.push((now + *delay, Timer::Ready)),
                        ProbeResult::Fail { delay, .. } => c.timers.push((now + *delay, Timer::Readiness)),
                    }
                    if let ProbeResult::Fail { delay, period, .. } = &spec.liveness {
                        c.timers.push((now + *delay + *period, Timer::Liveness));
                    }
                }
                if c.init && spec.exit.is_none() {
                    // An init container without a declared exit does its work and completes.
                    c.timers.push((now + Duration::from_millis(200), Timer::Exit));
                }
                self.logs.push((name, true, spec.logs.clone()));
                self.ctrs[i].spec = Some(spec);
            }
        }
    }

    /// Runs every non-start timer that is due.
    pub fn advance(&mut self, now: Instant) {
        loop {
            let mut fired = None;
            for (i, c) in self.ctrs.iter_mut().enumerate() {
                if let Some(pos) = c.timers.iter().position(|(t, k)| *k != Timer::Start && *t <= now) {
                    fired = Some((i, c.timers.remove(pos)));
                    break;
                }
            }
            let Some((i, (at, timer))) = fired else { break };
            self.fire(i, timer, at.max(now - Duration::from_secs(3600)), now);
        }
    }

    fn fire(&mut self, i: usize, timer: Timer, _at: Instant, now: Instant) {
        let fp = Some(self.ctrs[i].field_path());
        match timer {
            Timer::Start => {}
            Timer::PullBackOff => {
                let image = self.ctrs[i].image.clone();
                self.event("Normal", "BackOff", format!("Back-off pulling image \"{image}\""), fp.clone());
                self.event("Warning", "Failed", "Error: ImagePullBackOff".into(), fp);
                let c = &mut self.ctrs[i];
                c.state = State::Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: Some(format!("Back-off pulling image \"{image}\"")),
                };
                let delay = self.backoff.delay(c.failures);
                c.timers.push((now + delay, Timer::Start));
            }
            Timer::Ready => self.ctrs[i].ready = true,
            Timer::Readiness => {
                if let Some(ProbeResult::Fail { period, detail, errored, .. }) =
                    self.ctrs[i].spec.as_ref().map(|s| s.readiness.clone())
                {
                    let verb = if errored { "errored" } else { "failed" };
                    self.event("Warning", "Unhealthy", format!("Readiness probe {verb}: {detail}"), fp);
                    self.ctrs[i].timers.push((now + period, Timer::Readiness));
                }
            }
            Timer::Liveness => {
                let Some(ProbeResult::Fail { period, detail, errored, threshold, .. }) =
                    self.ctrs[i].spec.as_ref().map(|s| s.liveness.clone())
                else {
                    return;
                };
                let verb = if errored { "errored" } else { "failed" };
                self.event("Warning", "Unhealthy", format!("Liveness probe {verb}: {detail}"), fp.clone());
                self.ctrs[i].liveness_failures += 1;
                if self.ctrs[i].liveness_failures >= threshold {
                    let name = self.ctrs[i].name.clone();
                    self.event(
                        "Normal",
                        "Killing",
                        format!("Container {name} failed liveness probe, will be restarted"),
                        fp,
                    );
                    self.terminate(i, 137, "Error", now);
                } else {
                    self.ctrs[i].timers.push((now + period, Timer::Liveness));
                }
            }
            Timer::Evict => {
                let Some(message) =
                    self.ctrs[i].spec.as_ref().and_then(|s| s.evict.as_ref()).map(|e| e.message.clone())
                else {
                    return;
                };
                self.evict(message);
            }
            Timer::Exit => {
                let exit = self.ctrs[i].spec.as_ref().and_then(|s| s.exit.clone());
                let (code, reason) = exit.map_or((0, "Completed"), |e| (e.code, e.reason));
                self.terminate(i, code, reason, now);
            }
        }
    }

    fn terminate(&mut self, i: usize, code: i32, reason: &str, now: Instant) {
        let ts = Timestamp::now();
        let policy = self.restart_policy.clone();
        let pod_ref = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let c = &mut self.ctrs[i];
        let started = match c.state {
            State::Running { since } => since,
            _ => ts,
        };
        c.timers.clear();
        c.ready = false;
        c.state = State::Terminated(Term { code, reason: reason.into(), started, finished: ts, id: c.id.clone() });
        let restart = if c.init {
            code != 0 && policy != "Never"
        } else {
            match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            }
        };
        if c.init && code == 0 {
            c.failures = 0;
            self.schedule_next_starts(now);
            return;
        }
        if !restart {
            return;
        }
        c.failures += 1;
        if c.restarts == 0 && c.last.is_none() {
            c.timers.push((now + FIRST_RESTART, Timer::Start));
            return;
        }
        let delay = self.backoff.delay(c.failures.saturating_sub(1).max(1));
        let name = c.name.clone();
        let term = match &c.state {
            State::Terminated(t) => t.clone(),
            _ => unreachable!("just terminated"),
        };
        c.last = Some(term);
        c.state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!(
                "back-off {}s restarting failed container={name} pod={pod_ref}",
                delay.as_secs().max(1)
            )),
        };
        c.timers.push((now + delay, Timer::Start));
        let fp = Some(self.ctrs[i].field_path());
        self.event("Warning", "BackOff", "Back-off restarting failed container".into(), fp);
    }

    /// The kubelet evicts the pod (as its eviction manager does for a container over its local
    /// ephemeral storage limit): every container is killed and not restarted, the pod is Failed
    /// with reason `Evicted`, and an `Evicted` event says why.
    pub fn evict(&mut self, message: String) {
        self.event("Warning", "Evicted", message.clone(), None);
        let ts = Timestamp::now();
        for i in 0..self.ctrs.len() {
            let c = &mut self.ctrs[i];
            c.timers.clear();
            c.ready = false;
            if let State::Running { since } = c.state {
                c.state = State::Terminated(Term {
                    code: 137,
                    reason: "Error".into(),
                    started: since,
                    finished: ts,
                    id: c.id.clone(),
                });
                let name = c.name.clone();
                let fp = Some(self.ctrs[i].field_path());
                self.event("Normal", "Killing", format!("Stopping container {name}"), fp);
            }
        }
        self.evicted = Some(message);
    }

    /// Whether the kubelet evicted the pod (it is Failed for good).
    pub fn is_evicted(&self) -> bool {
        self.evicted.is_some()
    }

    /// The pod is being deleted: the kubelet stops its containers.
    pub fn stop_all(&mut self) {
        for i in 0..self.ctrs.len() {
            if matches!(self.ctrs[i].state, State::Running { .. }) {
                let name = self.ctrs[i].name.clone();
                let fp = Some(self.ctrs[i].field_path());
                self.event("Normal", "Killing", format!("Stopping container {name}"), fp);
            }
            self.ctrs[i].timers.clear();
        }
    }

    /// When the next timer fires, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ctrs.iter().flat_map(|c| c.timers.iter().map(|(t, _)| *t)).min()
    }

    /// The events of a container created from an image already on the machine; returns its name.
    fn created(&mut self, image: &str, i: usize, fp: &Option<String>) -> String {
        let name = self.ctrs[i].name.clone();
        self.event("Normal", "Pulled", format!("Container image \"{image}\" already present on machine"), fp.clone());
        self.event("Normal", "Created", format!("Created container {name}"), fp.clone());
        name
    }

    /// Records an event (also used by the kubelet for pod-level events).
    pub fn event(&mut self, type_: &'static str, reason: &'static str, message: String, field_path: Option<String>) {
        self.events.push(EventSpec { type_, reason, message, field_path });
    }

    /// Events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<EventSpec> {
        std::mem::take(&mut self.events)
    }

    /// Log output since the last call: (container, started a new run, lines).
    pub fn take_logs(&mut self) -> Vec<(String, bool, Vec<String>)> {
        std::mem::take(&mut self.logs)
    }

    /// The waiting reason of each container that is not running (for the log endpoint's errors).
    pub fn waiting_reason(&self, container: &str) -> Option<String> {
        self.ctrs.iter().find(|c| c.name == container).and_then(|c| match &c.state {
            State::Waiting { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    /// The pod status a kubelet would report now.
    pub fn status(&mut self) -> PodStatus {
        let init_done = self.ctrs.iter().filter(|c| c.init).all(Ctr::completed_ok);
        let regular: Vec<&Ctr> = self.ctrs.iter().filter(|c| !c.init).collect();
        let unready: Vec<&str> = regular.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
        let incomplete: Vec<&str> =
            self.ctrs.iter().filter(|c| c.init && !c.completed_ok()).map(|c| c.name.as_str()).collect();
        let now = Timestamp::now();
        let flags = [init_done, unready.is_empty(), unready.is_empty()];
        for (slot, flag) in self.transitions.iter_mut().zip(flags) {
            if slot.0 != flag {
                *slot = (flag, now);
            }
        }
        let cond = |type_: &str, idx: usize, reason: &str, message: String| PodCondition {
            type_: type_.into(),
            status: if self.transitions[idx].0 { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(self.transitions[idx].1)),
            reason: (!self.transitions[idx].0).then(|| reason.to_string()),
            message: (!self.transitions[idx].0).then_some(message),
            ..PodCondition::default()
        };
        let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
        let conditions = vec![
            cond(
                "Initialized",
                0,
                "ContainersNotInitialized",
                format!("containers with incomplete status: [{}]", incomplete.join(" ")),
            ),
            cond("Ready", 1, "ContainersNotReady", unready_msg.clone()),
            cond("ContainersReady", 2, "ContainersNotReady", unready_msg),
            PodCondition { type_: "PodScheduled".into(), status: "True".into(), ..PodCondition::default() },
        ];
        let statuses = |init: bool| -> Vec<ContainerStatus> {
            self.ctrs.iter().filter(|c| c.init == init).map(container_status).collect()
        };
        let init_statuses = statuses(true);
        PodStatus {
            phase: Some(if self.evicted.is_some() { "Failed" } else { self.phase(init_done) }.into()),
            reason: self.evicted.as_ref().map(|_| "Evicted".to_owned()),
            message: self.evicted.clone(),
            conditions: Some(conditions),
            host_ip: Some(self.host_ip.clone()),
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: Some(vec![PodIP { ip: self.pod_ip.clone() }]),
            start_time: Some(Time(self.start_time)),
            container_statuses: Some(statuses(false)),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            ..PodStatus::default()
        }
    }

    /// kubelet's getPhase.
    fn phase(&self, init_done: bool) -> &'static str {
        if !init_done {
            let failed = self.ctrs.iter().any(|c| c.init && matches!(&c.state, State::Terminated(t) if t.code != 0));
            return if failed && self.restart_policy == "Never" { "Failed" } else { "Pending" };
        }
        let (mut pending, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
        for c in self.ctrs.iter().filter(|c| !c.init) {
            match &c.state {
                State::Running { .. } => running += 1,
                State::Terminated(t) => {
                    stopped += 1;
                    if t.code == 0 {
                        succeeded += 1;
                    }
                }
                State::Waiting { .. } if c.last.is_some() => stopped += 1,
                State::Waiting { .. } => pending += 1,
            }
        }
        if pending > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            if self.restart_policy == "Always" {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if self.restart_policy == "Never" {
                "Failed"
            } else {
                "Running"
            }
        } else {
            "Pending"
        }
    }
}

fn term_state(t: &Term) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.code,
            reason: Some(t.reason.clone()),
            started_at: Some(Time(t.started)),
            finished_at: Some(Time(t.finished)),
            container_id: Some(t.id.clone()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn container_status(c: &Ctr) -> ContainerStatus {
    let state = match &c.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..ContainerState::default()
        },
        State::Running { since } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*since)) }),
            ..ContainerState::default()
        },
        State::Terminated(t) => term_state(t),
    };
    let running = matches!(c.state, State::Running { .. });
    let pulled = c.has_run()
        || matches!(&c.state, State::Waiting { reason, .. } if reason == "CreateContainerConfigError" || reason == "RunContainerError");
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: if pulled { image_id(&c.image) } else { String::new() },
        container_id: (!c.id.is_empty()).then(|| c.id.clone()),
        ready: c.ready,
        started: Some(running),
        restart_count: c.restarts,
        state: Some(state),
        last_state: Some(c.last.as_ref().map(term_state).unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

/// A stable 64-hex-digit digest of `s` (not cryptographic; only looks like one).
pub fn fake_digest(s: &str) -> String {
    let mut out = String::with_capacity(64);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u64..4 {
        for b in s.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn image_id(image: &str) -> String {
    let r = crate::registry::parse_image(image);
    format!("{}@sha256:{}", r.repository, fake_digest(image))
}

fn container_id(uid: &str, name: &str, restarts: i32) -> String {
    format!("containerd://{}", fake_digest(&format!("{uid}/{name}/{restarts}")))
}

#[cfg(test)]
mod tests;
