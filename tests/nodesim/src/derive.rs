//! What a container does, derived from the pod spec, its annotations, the referenced Secrets and
//! ConfigMaps, and the simulated registry. Pure: the kubelet fetches what is referenced, then
//! asks here.
//!
//! Per-container behaviour is declared with pod (template) annotations; a key suffixed with
//! `.CONTAINER` applies to that container only and wins over the plain key:
//!
//! | annotation | meaning |
//! |---|---|
//! | `nodesim.kubemedic.io/memory-need: 200Mi` | memory the process needs; above `limits.memory` → OOMKilled (137) |
//! | `nodesim.kubemedic.io/exit-code: "1"` | the process exits with this code after `run-seconds` |
//! | `nodesim.kubemedic.io/run-seconds: "1"` | how long it runs before exiting / being OOM-killed (default 1) |
//! | `nodesim.kubemedic.io/logs: "…"` | lines it writes to stdout (one per line) instead of the default start-up lines |
//! | `nodesim.kubemedic.io/listen-ports: "8080,9090"` | ports it listens on (default: its TCP `containerPorts`) |
//! | `nodesim.kubemedic.io/image-contents: "/usr/local/bin/app,/bin/sh"` | the executables the image holds; a `command` naming another → RunContainerError |
//! | `nodesim.kubemedic.io/ephemeral-storage-use: 2Gi` | local storage it writes; above `limits.ephemeral-storage` → the pod is Evicted after `run-seconds` |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe as ProbeSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::quantity;
use crate::registry::Registry;

/// Prefix of every annotation nodesim reads.
pub const PREFIX: &str = "nodesim.kubemedic.io/";

/// Probe timings are capped so tests see failures in seconds: initial delay and period at most this.
pub const PROBE_CAP: Duration = Duration::from_secs(2);

/// What happens when the kubelet tries to start a container.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The image cannot be pulled; the runtime's error text.
    Pull(String),
    /// The container config cannot be generated (missing Secret/ConfigMap or key); kubelet's message.
    Config(String),
    /// The runtime created the container but cannot start its process (the command names an
    /// executable the image lacks); the runtime's message.
    Start(String),
    /// The container starts and behaves as described.
    Run(RunSpec),
}

/// A started container's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// When and how the process ends; `None` runs until deleted.
    pub exit: Option<Exit>,
    /// Lines written to stdout after start.
    pub logs: Vec<String>,
    /// The readiness probe's result.
    pub readiness: ProbeResult,
    /// The liveness probe's result.
    pub liveness: ProbeResult,
    /// The kubelet evicts the pod: the container writes more local storage than its
    /// `limits.ephemeral-storage` allows.
    pub evict: Option<Box<Evict>>,
}

/// An eviction for exceeding a local ephemeral storage limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Evict {
    /// Time from start until the use crosses the limit.
    pub after: Duration,
    /// The kubelet's message (pod status and the `Evicted` event).
    pub message: String,
}

/// How a process ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    /// Exit code (137 for OOMKilled).
    pub code: i32,
    /// `OOMKilled`, `Error` or `Completed`, as the runtime reports it.
    pub reason: &'static str,
    /// Time from start to exit.
    pub after: Duration,
}

/// A probe as the prober would see it.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeResult {
    /// No probe declared.
    Absent,
    /// The probe succeeds once `delay` has passed.
    Pass {
        /// Initial delay (capped).
        delay: Duration,
    },
    /// The probe fails every `period` after `delay`.
    Fail {
        /// Initial delay (capped).
        delay: Duration,
        /// Period (capped).
        period: Duration,
        /// failureThreshold.
        threshold: u32,
        /// Why, as the prober says it after `Readiness probe failed: ` (or `errored: `).
        detail: String,
        /// True when the probe could not even run (e.g. a named port that does not exist).
        errored: bool,
    },
}

/// What the kubelet found for the Secrets and ConfigMaps a pod references: for each name, the
/// keys it holds, or `None` when it does not exist.
#[derive(Debug, Clone, Default)]
pub struct ConfigView {
    /// Secrets by name.
    pub secrets: HashMap<String, Option<BTreeSet<String>>>,
    /// ConfigMaps by name.
    pub config_maps: HashMap<String, Option<BTreeSet<String>>>,
}

/// Names of the Secrets and ConfigMaps a pod references (env, envFrom, volumes), and whether the
/// reference is optional does not matter here: the kubelet fetches them all.
pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut secrets = BTreeSet::new();
    let mut cms = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else { return (secrets, cms) };
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(s) = &vf.secret_key_ref {
                    secrets.insert(s.name.clone());
                }
                if let Some(m) = &vf.config_map_key_ref {
                    cms.insert(m.name.clone());
                }
            }
        }
        for ef in c.env_from.iter().flatten() {
            if let Some(s) = &ef.secret_ref {
                secrets.insert(s.name.clone());
            }
            if let Some(m) = &ef.config_map_ref {
                cms.insert(m.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(s);
        }
        if let Some(m) = &v.config_map {
            cms.insert(m.name.clone());
        }
    }
    (secrets, cms)
}

/// The first volume that cannot be mounted (a non-optional Secret/ConfigMap volume whose object
/// is missing), as kubelet's FailedMount message.
pub fn mount_error(pod: &Pod, view: &ConfigView) -> Option<String> {
    for v in pod.spec.as_ref()?.volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            if !s.optional.unwrap_or(false) && matches!(view.secrets.get(&name), Some(None)) {
                return Some(format!(
                    "MountVolume.SetUp failed for volume \"{}\" : secret \"{name}\" not found",
                    v.name
                ));
            }
        }
        if let Some(m) = &v.config_map
            && !m.optional.unwrap_or(false)
            && matches!(view.config_maps.get(&m.name), Some(None))
        {
            return Some(format!(
                "MountVolume.SetUp failed for volume \"{}\" : configmap \"{}\" not found",
                v.name, m.name
            ));
        }
    }
    None
}

/// The value of annotation `key` for container `container` (`key.container` first, then `key`).
pub fn annotation<'a>(pod: &'a Pod, key: &str, container: &str) -> Option<&'a str> {
    let ann = pod.metadata.annotations.as_ref()?;
    ann.get(&format!("{PREFIX}{key}.{container}")).or_else(|| ann.get(&format!("{PREFIX}{key}"))).map(String::as_str)
}

/// Derives what happens when container `c` of `pod` is started. Annotation values that cannot be
/// parsed are reported in the returned warnings and ignored.
pub fn container(
    pod: &Pod,
    c: &Container,
    view: &ConfigView,
    registry: &Registry,
    pod_ip: &str,
) -> (Outcome, Vec<String>) {
    let mut warnings = Vec::new();
    let image = c.image.as_deref().unwrap_or_default();
    if let Err(e) = registry.pull(image) {
        return (Outcome::Pull(e), warnings);
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(msg) = config_error(c, ns, view) {
        return (Outcome::Config(msg), warnings);
    }

    let parse_ann = |key: &str| -> Option<String> { annotation(pod, key, &c.name).map(str::to_string) };
    if let Some(msg) = parse_ann("image-contents").and_then(|contents| missing_executable(c, &contents)) {
        return (Outcome::Start(msg), warnings);
    }
    let run_for = match parse_ann("run-seconds") {
        None => Duration::from_secs(1),
        Some(v) => v.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map_or_else(
            || {
                warnings.push(format!("{PREFIX}run-seconds {v:?} is not a number of seconds"));
                Duration::from_secs(1)
            },
            Duration::from_secs_f64,
        ),
    };
    let need = parse_ann("memory-need").and_then(|v| {
        let b = quantity::bytes(&v);
        if b.is_none() {
            warnings.push(format!("{PREFIX}memory-need {v:?} is not a quantity"));
        }
        b.map(|b| (v, b))
    });
    let limit = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| quantity::bytes(&q.0));
    let exit_code = parse_ann("exit-code").and_then(|v| {
        let code = v.trim().parse::<i32>().ok();
        if code.is_none() {
            warnings.push(format!("{PREFIX}exit-code {v:?} is not an integer"));
        }
        code
    });
    let listen: Vec<i32> = match parse_ann("listen-ports") {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let n = p.parse().ok();
                if n.is_none() {
                    warnings.push(format!("{PREFIX}listen-ports entry {p:?} is not a port"));
                }
                n
            })
            .collect(),
        None => c
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .map(|p| p.container_port)
            .collect(),
    };
    let custom_logs = parse_ann("logs");
    let storage_use = parse_ann("ephemeral-storage-use").and_then(|v| {
        let b = quantity::bytes(&v);
        if b.is_none() {
            warnings.push(format!("{PREFIX}ephemeral-storage-use {v:?} is not a quantity"));
        }
        b
    });
    let storage_limit = c.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("ephemeral-storage"));
    let evict = match (storage_use, storage_limit) {
        (Some(used), Some(limit)) if quantity::bytes(&limit.0).is_some_and(|l| used > l) => Some(Box::new(Evict {
            after: run_for,
            // kubelet's containerEphemeralStorageMessageFmt.
            message: format!("Container {} exceeded its local ephemeral storage limit {:?}. ", c.name, limit.0),
        })),
        _ => None,
    };

    let oom = matches!((&need, limit), (Some((_, n)), Some(l)) if *n > l);
    let exit = if oom {
        Some(Exit { code: 137, reason: "OOMKilled", after: run_for })
    } else {
        exit_code.map(|code| Exit { code, reason: if code == 0 { "Completed" } else { "Error" }, after: run_for })
    };
    let logs = match custom_logs {
        Some(text) => text.lines().map(str::to_string).filter(|l| !l.trim().is_empty()).collect(),
        None => {
            let mut l = vec![format!("starting {} (container {})", image, c.name)];
            if let Some((q, _)) = &need {
                l.push(format!("allocating working set of {q}"));
            }
            l.extend(listen.iter().map(|p| format!("listening on 0.0.0.0:{p}")));
            if exit.is_none() {
                l.push("ready".to_string());
            }
            l
        }
    };
    let readiness = probe(c, c.readiness_probe.as_ref(), &listen, pod_ip);
    let liveness = probe(c, c.liveness_probe.as_ref(), &listen, pod_ip);
    (Outcome::Run(RunSpec { exit, logs, readiness, liveness, evict }), warnings)
}

/// The runtime's message when the first word of `c`'s command is not among `contents` (the
/// image's executables, comma-separated; a bare command is looked up by file name, as `$PATH` would).
pub fn missing_executable(c: &Container, contents: &str) -> Option<String> {
    let cmd = c.command.as_ref()?.first()?;
    let mut held = contents.split(',').map(str::trim).filter(|e| !e.is_empty());
    let found = if cmd.contains('/') {
        held.any(|e| e == cmd)
    } else {
        held.any(|e| e.rsplit('/').next() == Some(cmd.as_str()))
    };
    if found {
        return None;
    }
    let why = if cmd.contains('/') {
        format!("stat {cmd}: no such file or directory")
    } else {
        format!("exec: \"{cmd}\": executable file not found in $PATH")
    };
    Some(format!(
        "failed to start container \"{}\": Error response from daemon: OCI runtime create failed: \
         container_linux.go:370: starting container process caused: {why}: unknown",
        c.name
    ))
}

/// kubelet's message when the env of `c` cannot be generated, if so.
pub fn config_error(c: &Container, ns: &str, view: &ConfigView) -> Option<String> {
    for ef in c.env_from.iter().flatten() {
        if let Some(s) = &ef.secret_ref
            && !s.optional.unwrap_or(false)
            && !matches!(view.secrets.get(&s.name), Some(Some(_)))
        {
            return Some(format!("secret \"{}\" not found", s.name));
        }
        if let Some(m) = &ef.config_map_ref
            && !m.optional.unwrap_or(false)
            && !matches!(view.config_maps.get(&m.name), Some(Some(_)))
        {
            return Some(format!("configmap \"{}\" not found", m.name));
        }
    }
    for e in c.env.iter().flatten() {
        let Some(vf) = &e.value_from else { continue };
        if let Some(s) = &vf.secret_key_ref
            && let Some(msg) = key_error(view.secrets.get(&s.name), "secret", "Secret", ns, &s.name, &s.key, s.optional)
        {
            return Some(msg);
        }
        if let Some(m) = &vf.config_map_key_ref
            && let Some(msg) =
                key_error(view.config_maps.get(&m.name), "configmap", "ConfigMap", ns, &m.name, &m.key, m.optional)
        {
            return Some(msg);
        }
    }
    None
}

fn key_error(
    found: Option<&Option<BTreeSet<String>>>,
    lower: &str,
    kind: &str,
    ns: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Option<String> {
    if optional.unwrap_or(false) {
        return None;
    }
    match found {
        Some(Some(keys)) if keys.contains(key) => None,
        Some(Some(_)) => Some(format!("couldn't find key {key} in {kind} {ns}/{name}")),
        _ => Some(format!("{lower} \"{name}\" not found")),
    }
}

/// How a declared probe fares against the ports the container listens on.
fn probe(c: &Container, p: Option<&ProbeSpec>, listen: &[i32], pod_ip: &str) -> ProbeResult {
    let Some(p) = p else { return ProbeResult::Absent };
    let delay = Duration::from_secs(u64::try_from(p.initial_delay_seconds.unwrap_or(0)).unwrap_or(0)).min(PROBE_CAP);
    let period = Duration::from_secs(u64::try_from(p.period_seconds.unwrap_or(10)).unwrap_or(10).max(1)).min(PROBE_CAP);
    let threshold = u32::try_from(p.failure_threshold.unwrap_or(3)).unwrap_or(3).max(1);
    let fail = |detail: String, errored: bool| ProbeResult::Fail { delay, period, threshold, detail, errored };
    let resolve = |port: &IntOrString| -> Result<i32, String> {
        match port {
            IntOrString::Int(n) => Ok(*n),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port)
                .ok_or_else(|| format!("couldn't find port: {name} in container {}", c.name)),
        }
    };
    if let Some(h) = &p.http_get {
        let port = match resolve(&h.port) {
            Ok(n) => n,
            Err(e) => return fail(e, true),
        };
        if listen.contains(&port) {
            return ProbeResult::Pass { delay };
        }
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        return fail(
            format!("Get \"{scheme}://{pod_ip}:{port}{path}\": dial tcp {pod_ip}:{port}: connect: connection refused"),
            false,
        );
    }
    if let Some(t) = &p.tcp_socket {
        let port = match resolve(&t.port) {
            Ok(n) => n,
            Err(e) => return fail(e, true),
        };
        if listen.contains(&port) {
            return ProbeResult::Pass { delay };
        }
        return fail(format!("dial tcp {pod_ip}:{port}: connect: connection refused"), false);
    }
    if let Some(g) = &p.grpc {
        if listen.contains(&g.port) {
            return ProbeResult::Pass { delay };
        }
        return fail(
            format!("timeout: failed to connect service \"{pod_ip}:{}\" within 1s: connection refused", g.port),
            false,
        );
    }
    // exec probes: the simulated command succeeds.
    ProbeResult::Pass { delay }
}

/// Keys of a Secret or ConfigMap (`data` and `binaryData`/`stringData`).
pub fn keys<V>(maps: &[Option<&BTreeMap<String, V>>]) -> BTreeSet<String> {
    maps.iter().flatten().flat_map(|m| m.keys().cloned()).collect()
}

#[cfg(test)]
mod tests;
