//! The pages escape what comes from the cluster.

use super::*;
use crate::auth::Role;
use crate::model::diagnosis::{Diagnosis, Evidence};
use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};

fn hostile_incident() -> Incident {
    let w = WorkloadRef::new("Deployment", "shop", "web");
    let now = jiff::Timestamp::UNIX_EPOCH;
    let xss = r#"<img src=x onerror="alert(1)">"#;
    let signal = Signal {
        source: SignalSource::Cluster,
        status: SignalStatus::Firing,
        reason: "CrashLoopBackOff".into(),
        cluster: "c".into(),
        object: w.clone(),
        workload: Some(w.clone()),
        labels: Default::default(),
        severity: None,
        message: format!("log line {xss}"),
        observed_at: now,
    };
    Incident {
        id: "i-1".into(),
        fingerprint: String::new(),
        cluster: "c".into(),
        workload: w.clone(),
        reason: "CrashLoopBackOff".into(),
        rule: "r".into(),
        prompt: "p".into(),
        arguments: Default::default(),
        allow_mutations: true,
        approvers: vec![],
        status: IncidentStatus::Diagnosed,
        first_seen: now,
        last_seen: now,
        count: 3,
        first_signal: signal,
        summary: Some(format!("summary {xss}")),
        proposals: vec![],
        diagnosis: Some(Box::new(Diagnosis {
            incident_id: Some("i-1".into()),
            workload: w,
            summary: "s".into(),
            root_cause: format!("cause {xss}"),
            evidence: vec![Evidence {
                tool: "pod_logs".into(),
                args: serde_json::json!({"name": xss}),
                finding: format!("finding {xss}"),
            }],
            confidence: 0.9,
            mermaid: format!("flowchart TD\n  n0[\"{xss}\"] --> n1[\"b\"]\n</pre><script>alert(2)</script>"),
            proposals: vec![],
            refused: vec![],
            advice: vec![format!("advice {xss}")],
            runner: "builtin".into(),
            notes: vec![],
            gaps: vec![],
        })),
    }
}

#[test]
fn the_incident_page_escapes_cluster_text_everywhere() {
    let viewer = Viewer { user: "ana".into(), role: Role::Viewer, groups: vec![], csrf: None };
    let page = incident(&viewer, &hostile_incident(), &[]);
    assert!(!page.contains("<img") && !page.contains("<script>alert"), "{page}");
    assert_eq!(page.matches("<pre").count(), 1, "the Mermaid source cannot close its pre: {page}");
    for escaped in ["cause &lt;img", "finding &lt;img", "advice &lt;img", "log line &lt;img", "summary &lt;img"] {
        assert!(page.contains(escaped), "{escaped}: {page}");
    }
    assert!(page.contains(r#"<pre class="mermaid" id="chain">flowchart TD"#), "{page}");
    assert!(page.contains("3 folded into this incident"), "the timeline counts the signals");
    let script_tags = page.matches("<script").count();
    assert_eq!(script_tags, 1, "only the UI's own script: {page}");
}
