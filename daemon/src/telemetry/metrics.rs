//! Prometheus metrics, served as OpenMetrics text on `/metrics`.
//!
//! One [`Metrics`] per process, shared as `Arc<Metrics>`: every handle is a
//! cheap atomic update, so hot paths (tool calls, watch events) call it
//! directly. Label values are bounded by construction (tool names, reasons,
//! proposal states, Slack error kinds): never put object names or user input
//! in a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Metrics::encode_text`]'s output (Prometheus text format 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolOnly {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

fn tool_histogram() -> Histogram {
    // 5 ms .. ~82 s: reads are milliseconds, an apply with verify is tens of seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Bounds 1, 1.5, 2, 3, 5 and 7.5 times each power of ten from 10^`from` to 10^`to`: at most
/// 1.67x apart, so a quantile read from the buckets means something, and written as they read.
fn fine_buckets(from: i32, to: i32) -> Vec<f64> {
    (from..=to)
        .flat_map(|e| {
            // Dividing by an exact power of ten gives the double nearest to the decimal bound.
            [1.0, 1.5, 2.0, 3.0, 5.0, 7.5].map(move |m| if e < 0 { m / 10f64.powi(-e) } else { m * 10f64.powi(e) })
        })
        .collect()
}

fn diagnosis_histogram() -> Histogram {
    // 10 ms .. 75 s: the built-in runner takes tens to hundreds of milliseconds, the default
    // run timeout is 60 s.
    Histogram::new(fine_buckets(-2, 1))
}

/// All kubemedic metrics. Names are prefixed `kubemedic_`.
pub struct Metrics {
    registry: Registry,
    tool_duration: Family<ToolLabels, Histogram, fn() -> Histogram>,
    tool_errors: Family<ToolOnly, Counter>,
    signal_latency: Histogram,
    watch_delivery: Histogram,
    diagnosis_duration: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    incident_wait: Histogram,
    incidents: Family<ReasonLabel, Counter>,
    proposal_transitions: Family<StateLabel, Counter>,
    proposals: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    dropped_signals: Family<ReasonLabel, Counter>,
    slack_errors: Family<KindLabel, Counter>,
    signals: Family<SourceLabel, Counter>,
    drift_runs: Family<StateLabel, Counter>,
    drifted_objects: Gauge,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubemedic");
        // A gauge, not an OpenMetrics info: the Prometheus text format has no info type.
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build.get_or_create(&vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]).set(1);
        registry.register("build_info", "Version of the running kubemedic", build);
        let tool_duration = Family::<ToolLabels, Histogram, fn() -> Histogram>::new_with_constructor(tool_histogram);
        registry.register_with_unit(
            "tool_duration",
            "Duration of MCP tool calls by tool and outcome",
            Unit::Seconds,
            tool_duration.clone(),
        );
        let tool_errors = Family::<ToolOnly, Counter>::default();
        registry.register("tool_errors", "Tool calls that failed, by tool", tool_errors.clone());
        // 0.5 ms .. ~8 s: a signal is folded or opened in well under a millisecond when nothing queues.
        let signal_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register_with_unit(
            "signal_handling",
            "From a cluster signal's arrival (the watch saw the change) to its incident being opened or folded",
            Unit::Seconds,
            signal_latency.clone(),
        );
        // 1 ms .. 7.5 s.
        let watch_delivery = Histogram::new(fine_buckets(-3, 0));
        registry.register_with_unit(
            "watch_delivery",
            "From a Warning Event's own write time (eventTime, microseconds; first occurrence only) to \
             kubemedic's watch receiving it: the reporter's create request, the apiserver and the watch stream",
            Unit::Seconds,
            watch_delivery.clone(),
        );
        let diagnosis_duration =
            Family::<OutcomeLabel, Histogram, fn() -> Histogram>::new_with_constructor(diagnosis_histogram);
        registry.register_with_unit(
            "diagnosis_duration",
            "One diagnosis attempt of an incident (the run, its dry-runs, storing it, offering its proposals), \
             by outcome: proposal, advice, no_finding, failed, retry",
            Unit::Seconds,
            diagnosis_duration.clone(),
        );
        // 10 ms .. 12.5 min: under a burst an incident waits for a free worker.
        let incident_wait = Histogram::new(fine_buckets(-2, 2));
        registry.register_with_unit(
            "incident_wait",
            "From an incident's first signal to a worker starting its diagnosis (time in the queue)",
            Unit::Seconds,
            incident_wait.clone(),
        );
        let incidents = Family::<ReasonLabel, Counter>::default();
        registry.register("incidents", "Incidents opened, by reason", incidents.clone());
        let proposal_transitions = Family::<StateLabel, Counter>::default();
        registry.register(
            "proposal_transitions",
            "Proposal state transitions, by the state entered",
            proposal_transitions.clone(),
        );
        let proposals = Family::<StateLabel, Gauge>::default();
        registry.register("proposals", "Proposals currently in each state", proposals.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Incidents waiting for diagnosis", queue_depth.clone());
        let dropped_signals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "dropped_signals",
            "Signals dropped because a queue was full or a limit hit, by reason",
            dropped_signals.clone(),
        );
        let slack_errors = Family::<KindLabel, Counter>::default();
        registry.register("slack_errors", "Failed Slack API calls, by kind", slack_errors.clone());
        let signals = Family::<SourceLabel, Counter>::default();
        registry.register("signals", "Signals received, by source", signals.clone());
        let drift_runs = Family::<StateLabel, Counter>::default();
        registry.register("drift_runs", "Drift report runs, by outcome", drift_runs.clone());
        let drifted_objects = Gauge::default();
        registry.register(
            "drifted_objects",
            "Objects that drifted in the latest drift report",
            drifted_objects.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Self {
            registry,
            tool_duration,
            tool_errors,
            signal_latency,
            watch_delivery,
            diagnosis_duration,
            incident_wait,
            incidents,
            proposal_transitions,
            proposals,
            queue_depth,
            dropped_signals,
            slack_errors,
            signals,
            drift_runs,
            drifted_objects,
            leader,
        }
    }

    /// One tool call finished. `outcome` is a small fixed set (`ok`, `error`, `denied`, ...);
    /// anything but `ok` also counts as an error of that tool.
    pub fn observe_tool(&self, tool: &str, outcome: &str, seconds: f64) {
        let labels = ToolLabels { tool: tool.to_owned(), outcome: outcome.to_owned() };
        self.tool_duration.get_or_create(&labels).observe(seconds);
        if outcome != "ok" {
            self.tool_errors.get_or_create(&ToolOnly { tool: tool.to_owned() }).inc();
        }
    }

    /// A cluster signal was handled (folded into an incident or opened one) `seconds` after it arrived.
    pub fn signal_handled(&self, seconds: f64) {
        self.signal_latency.observe(seconds);
    }

    /// The watch received a Warning Event `seconds` after its reporter stamped it (`eventTime`).
    pub fn watch_delivered(&self, seconds: f64) {
        self.watch_delivery.observe(seconds);
    }

    /// One diagnosis attempt ended with `outcome` (`proposal`, `advice`, `no_finding`,
    /// `failed`, `retry`) after `seconds`.
    pub fn diagnosis_finished(&self, outcome: &str, seconds: f64) {
        self.diagnosis_duration.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).observe(seconds);
    }

    /// A worker took an incident `seconds` after its first signal.
    pub fn incident_waited(&self, seconds: f64) {
        self.incident_wait.observe(seconds);
    }

    /// An incident was opened.
    pub fn incident(&self, reason: &str) {
        self.incidents.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// A proposal entered `state` (snake_case state name).
    pub fn proposal_state(&self, state: &str) {
        self.proposal_transitions.get_or_create(&StateLabel { state: state.to_owned() }).inc();
    }

    /// How many proposals are in `state` now (from a store scan).
    pub fn proposals_in_state(&self, state: &str, n: i64) {
        self.proposals.get_or_create(&StateLabel { state: state.to_owned() }).set(n);
    }

    /// Incidents waiting in the diagnosis queue.
    pub fn queue_depth(&self, n: i64) {
        self.queue_depth.set(n);
    }

    /// A signal was dropped (queue full, rate limit, ...).
    pub fn dropped_signal(&self, reason: &str) {
        self.dropped_signals.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// A Slack API call failed (`kind` = Slack's error code or `http`, `timeout`).
    pub fn slack_error(&self, kind: &str) {
        self.slack_errors.get_or_create(&KindLabel { kind: kind.to_owned() }).inc();
    }

    /// A signal arrived from `source` (`cluster`, `alertmanager`, `cron`, `manual`).
    pub fn signal(&self, source: &str) {
        self.signals.get_or_create(&SourceLabel { source: source.to_owned() }).inc();
    }

    /// A drift run finished (`ok` or `error`) with `drifted` objects.
    pub fn drift_run(&self, outcome: &str, drifted: Option<usize>) {
        self.drift_runs.get_or_create(&StateLabel { state: outcome.to_owned() }).inc();
        if let Some(n) = drifted {
            self.drifted_objects.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Whether this replica is the leader.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// OpenMetrics text, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Prometheus text format 0.0.4, for clients that do not ask for OpenMetrics
    /// (curl, `promtool check metrics`).
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }
}

/// Convert OpenMetrics text to the Prometheus text format: counter families are
/// named with their `_total` suffix, `# UNIT` and `# EOF` lines go.
fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{kind}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_labels() {
        let m = Metrics::new();
        m.observe_tool("get_resource", "ok", 0.02);
        m.observe_tool("apply_proposal", "error", 1.5);
        m.incident("CrashLoopBackOff");
        m.proposal_state("pending");
        m.proposals_in_state("pending", 2);
        m.queue_depth(3);
        m.dropped_signal("queue_full");
        m.slack_error("rate_limited");
        m.drift_run("ok", Some(4));
        m.set_leader(true);
        m.signal_handled(0.0007);
        m.watch_delivered(0.0017);
        m.diagnosis_finished("proposal", 0.15);
        m.diagnosis_finished("proposal", 0.02);
        m.diagnosis_finished("failed", 0.5);
        m.incident_waited(3.0);
        let text = m.encode();
        for needle in [
            "kubemedic_tool_duration_seconds_bucket{le=\"0.04\",tool=\"get_resource\",outcome=\"ok\"} 1",
            "kubemedic_tool_errors_total{tool=\"apply_proposal\"} 1",
            "kubemedic_incidents_total{reason=\"CrashLoopBackOff\"} 1",
            "kubemedic_proposal_transitions_total{state=\"pending\"} 1",
            "kubemedic_proposals{state=\"pending\"} 2",
            "kubemedic_queue_depth 3",
            "kubemedic_dropped_signals_total{reason=\"queue_full\"} 1",
            "kubemedic_slack_errors_total{kind=\"rate_limited\"} 1",
            "kubemedic_drifted_objects 4",
            "kubemedic_leader 1",
            "kubemedic_signal_handling_seconds_bucket{le=\"0.0005\"} 0",
            "kubemedic_signal_handling_seconds_bucket{le=\"0.001\"} 1",
            "kubemedic_watch_delivery_seconds_bucket{le=\"0.001\"} 0",
            "kubemedic_watch_delivery_seconds_bucket{le=\"0.0015\"} 0",
            "kubemedic_watch_delivery_seconds_bucket{le=\"0.002\"} 1",
            "kubemedic_watch_delivery_seconds_bucket{le=\"7.5\"} 1",
            "kubemedic_diagnosis_duration_seconds_count{outcome=\"proposal\"} 2",
            "kubemedic_diagnosis_duration_seconds_bucket{le=\"0.015\",outcome=\"proposal\"} 0",
            "kubemedic_diagnosis_duration_seconds_bucket{le=\"0.02\",outcome=\"proposal\"} 1",
            "kubemedic_diagnosis_duration_seconds_bucket{le=\"0.15\",outcome=\"proposal\"} 2",
            "kubemedic_diagnosis_duration_seconds_bucket{le=\"75.0\",outcome=\"proposal\"} 2",
            "kubemedic_diagnosis_duration_seconds_count{outcome=\"failed\"} 1",
            "kubemedic_incident_wait_seconds_bucket{le=\"2.0\"} 0",
            "kubemedic_incident_wait_seconds_bucket{le=\"3.0\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("tool_errors_total{tool=\"get_resource\"}"), "ok calls are not errors");

        let plain = m.encode_text();
        assert!(plain.contains("# TYPE kubemedic_incidents_total counter\n"), "{plain}");
        assert!(plain.contains("# HELP kubemedic_incidents_total Incidents opened, by reason.\n"), "{plain}");
        assert!(plain.contains("# TYPE kubemedic_queue_depth gauge\n"), "{plain}");
        assert!(!plain.contains("# EOF") && !plain.contains("# UNIT"), "{plain}");
        assert!(plain.contains("kubemedic_build_info{version="), "{plain}");
    }
}
