//! Benchmark: incident → diagnosis latency of the built-in runner over the
//! failure catalog (every workload scenario, with its symptoms showing),
//! including the policy check and server-side dry-run of its proposals.
//!
//! ```text
//! KUBECONFIG=... cargo test -p e2e --release --test agent_bench -- --ignored --nocapture
//! AGENT_BENCH_ROUNDS=50 ...   # diagnoses per scenario (default 20)
//! ```
//!
//! Prints p50/p90/p99/max per scenario and over the whole catalog.

#[path = "agent/support.rs"]
mod support;

use std::time::{Duration, Instant};

use e2e::{Namespace, client, scenario};
use kubemedic::agent::Request;
use kubemedic::incident::{Incident, fingerprint};
use kubemedic::signal::WorkloadRef;

/// (scenario, workload, symptom reason, what the diagnosis must name)
const CATALOG: &[(&str, &str, &str, &str)] = &[
    ("config-secret-key-typo", "api", "CreateContainerConfigError", "DB_PASWORD"),
    ("config-missing-configmap", "report", "CreateContainerConfigError", "report-settings"),
    ("image-pull-bad-tag", "web", "ImagePullBackOff", "nginx:1.25.33"),
    ("crashloop-after-rollout", "worker", "CrashLoopBackOff", "exit code 1"),
    ("oom-killed", "cache", "OOMKilled", "needs more memory"),
    ("probe-wrong-port", "shop", "Unhealthy", "8081"),
    ("unschedulable-requests", "batch", "FailedScheduling", "larger than any node"),
    ("rollout-stuck", "legacy", "ProgressDeadlineExceeded", "ProgressDeadlineExceeded"),
];

fn incident(ns: &str, name: &str, reason: &str) -> Incident {
    let workload = WorkloadRef::new("Deployment", ns, name);
    let now = "2026-01-01T00:00:00Z";
    serde_json::from_value(serde_json::json!({
        "id": e2e::unique_name("incident"),
        "fingerprint": fingerprint("e2e", &workload, reason),
        "cluster": "e2e",
        "workload": workload,
        "reason": reason,
        "rule": "bench",
        "prompt": "diagnose-workload",
        "allow_mutations": true,
        "status": "open",
        "first_seen": now,
        "last_seen": now,
        "count": 1,
        "first_signal": {"source": "cluster", "status": "firing", "reason": reason, "cluster": "e2e",
            "object": workload, "workload": workload, "severity": null, "observed_at": now},
        "summary": null
    }))
    .expect("a valid incident")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn line(label: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| format!("{:7.1}", d.as_secs_f64() * 1000.0);
    format!(
        "{label:<26} n={:<4} p50 {} ms  p90 {} ms  p99 {} ms  max {} ms",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.9)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap())
    )
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn incident_to_diagnosis_latency() {
    let client = client().await;
    let rounds: usize = std::env::var("AGENT_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let deps = support::deps(&client);
    let mut prepared = Vec::new();
    for (scenario_name, workload, reason, expect) in CATALOG {
        let ns = Namespace::create(&client, "agent-bench").await;
        scenario::apply(&client, &ns.name, scenario_name).await;
        // Wait until the symptom shows, so every measured run does the full analysis.
        support::diagnose_until(&deps, "Deployment", &ns.name, workload, expect, |d| d.root_cause.contains(expect))
            .await;
        prepared.push((*scenario_name, ns, *workload, *reason, *expect));
    }
    let mut all = Vec::new();
    let mut lines = Vec::new();
    for (scenario_name, ns, workload, reason, expect) in &prepared {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let request = Request::from(&incident(&ns.name, workload, reason));
            let started = Instant::now();
            let d = kubemedic::agent::run(&deps, &request).await.expect("diagnosis");
            times.push(started.elapsed());
            assert!(d.root_cause.contains(expect), "{scenario_name}: {}", d.root_cause);
        }
        all.extend(times.iter().copied());
        lines.push(line(scenario_name, times));
    }
    println!("\nincident -> diagnosis, built-in runner ({rounds} runs per scenario, proposals dry-run included)");
    for l in &lines {
        println!("{l}");
    }
    println!("{}", line("whole catalog", all));
    for (_, ns, ..) in &prepared {
        ns.delete(&client).await;
    }
}
