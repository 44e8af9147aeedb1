use super::*;
use crate::model::signal::{SignalStatus, WorkloadRef};

fn signal(source: SignalSource, reason: &str, ns: &str) -> Signal {
    Signal {
        source,
        status: SignalStatus::Firing,
        reason: reason.into(),
        cluster: "local".into(),
        object: WorkloadRef::new("Pod", ns, "web-1"),
        workload: Some(WorkloadRef::new("Deployment", ns, "web")),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        severity: None,
        message: String::new(),
        observed_at: jiff::Timestamp::UNIX_EPOCH,
    }
}

fn load(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::from_sources(&[(PathBuf::from("rules/test.yaml"), text.to_owned())], Some(&prompts()))
}

fn prompts() -> BTreeMap<String, PromptSignature> {
    let sig = PromptSignature {
        arguments: ["namespace", "kind", "name", "reason"].map(String::from).into(),
        required: ["namespace", "kind", "name"].map(String::from).into(),
    };
    [("diagnose-workload".to_owned(), sig)].into()
}

fn problems(err: RulesError) -> Vec<String> {
    match err {
        RulesError::Invalid(p) => p.iter().map(ToString::to_string).collect(),
        other => panic!("unexpected {other}"),
    }
}

const GOOD: &str = r#"
rules:
  - name: payments-crashloop
    match:
      source: [cluster]
      reasons: [CrashLoopBackOff]
      namespaces: ["pay-*"]
      namespace_selector: "team=payments"
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: "{{ namespace }}", kind: "{{kind}}", name: "{{name}}", reason: "{{reason}}"}
    approvers: [U1]
    allow_mutations: true
    cooldown: 30m
    rate_limit: {max: 3, per: 1h}
  - name: crashloop
    match:
      reasons: [CrashLoopBackOff, KubePodCrashLooping]
      object_selector: "app in (web, api)"
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: "{{ namespace }}", kind: "{{kind}}", name: "{{name}}"}
  - name: critical-alerts
    match:
      source: [alertmanager]
      severity: [critical]
      alert_labels: {team: core}
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: "{{ namespace }}", kind: "{{kind}}", name: "{{labels.alertname}}"}
"#;

#[test]
fn first_matching_rule_wins_and_templates_render() {
    let rules = load(GOOD).unwrap();
    assert_eq!(rules.len(), 3);
    let s = signal(SignalSource::Cluster, "CrashLoopBackOff", "pay-eu");
    let ns: BTreeMap<String, String> = [("team".to_owned(), "payments".to_owned())].into();
    let rule = rules.match_signal_with(&s, Some(&ns)).unwrap();
    assert_eq!(rule.name, "payments-crashloop");
    assert_eq!(rule.cooldown, Duration::from_secs(1800));
    assert_eq!(rule.rate_limit, Some(RateLimit { max: 3, per: Duration::from_secs(3600) }));
    let args = rule.workflow.arguments_for(&s);
    assert_eq!(args["namespace"], "pay-eu");
    assert_eq!(args["kind"], "Deployment");
    assert_eq!(args["reason"], "CrashLoopBackOff");
    // Without namespace labels the selector cannot hold: the next rule takes it.
    assert_eq!(rules.match_signal(&s).unwrap().name, "crashloop");
    // Object selector.
    let mut other = signal(SignalSource::Cluster, "CrashLoopBackOff", "shop");
    other.labels.insert("app".into(), "db".into());
    assert!(rules.match_signal(&other).is_none());
    // Reason and source.
    assert!(rules.match_signal(&signal(SignalSource::Cluster, "OOMKilled", "shop")).is_none());
    let mut alert = signal(SignalSource::Alertmanager, "Anything", "shop");
    alert.labels = [("team".to_owned(), "core".to_owned())].into();
    assert!(rules.match_signal(&alert).is_none(), "no severity");
    alert.severity = Some("critical".into());
    assert_eq!(rules.match_signal(&alert).unwrap().name, "critical-alerts");
    alert.labels.insert("team".into(), "other".into());
    assert!(rules.match_signal(&alert).is_none());
    assert_eq!(rules.get("crashloop").unwrap().cooldown, DEFAULT_COOLDOWN);
}

#[test]
fn unknown_fields_are_refused_with_line() {
    let text = "rules:\n  - name: a\n    match: {reasons: [X]}\n    workflow: {prompt: diagnose-workload}\n    alow_mutations: true\n";
    let p = problems(load(text).unwrap_err());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("rules/test.yaml:2: ") || p[0].starts_with("rules/test.yaml:5: "), "{p:?}");
    assert!(p[0].contains("unknown field `alow_mutations`"), "{p:?}");
    let p = problems(load("rules:\n  - name: a\n    match: {reasonz: [X]}\n").unwrap_err());
    assert!(p[0].contains("unknown field `reasonz`"), "{p:?}");
    let p = problems(load("rules: [").unwrap_err());
    assert!(p[0].starts_with("rules/test.yaml:1: ") && p[0].contains("did not find expected node"), "{p:?}");
}

/// Found by fuzz/fuzz_targets/rule_files.rs (artifact crash-38c51329): an unterminated flow
/// sequence in a file without a final newline was reported on line 6 of a 5-line file.
#[test]
fn syntax_errors_at_the_end_point_at_the_last_line() {
    let text = "rules:\n  - name: one\n    match:\n      reasons: [Xrules:work\n  -flo ";
    let p = problems(load(text).unwrap_err());
    assert!(p[0].starts_with("rules/test.yaml:5: ") && p[0].contains("did not find expected"), "{p:?}");
    for (text, lines) in [("", 0), ("a", 1), ("a\n", 1), ("a\r\nb", 2), ("a\rb\r", 2), ("a\u{2028}b", 2)] {
        assert_eq!(line_count(text), lines, "{text:?}");
    }
}

#[test]
fn semantic_errors_name_the_line() {
    let text = r#"rules:
  - name: one
    match:
      reasons: [X]
      object_selector: "app in web"
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: "{{ namespace }}", kind: "{{kind}}", name: "{{nme}}"}
    cooldown: 5 minutes
  - name: two
    match: {reasons: [Y]}
    workflow:
      prompt: no-such-prompt
    rate_limit: {max: 0, per: 1h}
  - name: three
    match: {reasons: [Z]}
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: x, kind: y, name: z, extra: q}
  - name: three
    match: {reasons: [Z]}
    workflow:
      prompt: diagnose-workload
      arguments: {namespace: x}
"#;
    let p = problems(load(text).unwrap_err());
    let expect = [
        ("rules/test.yaml:5: ", "bad object_selector"),
        ("rules/test.yaml:8: ", "unknown template variable \"nme\""),
        ("rules/test.yaml:9: ", "bad cooldown"),
        ("rules/test.yaml:14: ", "rate_limit.max must be at least 1"),
        ("rules/test.yaml:13: ", "unknown prompt \"no-such-prompt\""),
        ("rules/test.yaml:19: ", "has no argument \"extra\""),
        ("rules/test.yaml:24: ", "requires argument \"kind\""),
    ];
    for (prefix, needle) in expect {
        assert!(p.iter().any(|l| l.starts_with(prefix) && l.contains(needle)), "missing {prefix}{needle} in {p:#?}");
    }
}

#[test]
fn duplicate_names_are_refused() {
    let text = "rules:\n  - name: a\n    match: {}\n    workflow: {prompt: diagnose-workload, arguments: {namespace: x, kind: y, name: z}}\n";
    let err = RuleSet::from_sources(
        &[(PathBuf::from("a.yaml"), text.to_owned()), (PathBuf::from("b.yaml"), text.to_owned())],
        None,
    )
    .unwrap_err();
    let p = problems(err);
    assert!(p[0].starts_with("b.yaml:2: ") && p[0].contains("already defined at a.yaml:2"), "{p:?}");
}

#[test]
fn globs() {
    assert!(glob_match("team-*", "team-a"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "axxbyyc"));
    assert!(!glob_match("a*b*c", "axxc"));
    assert!(!glob_match("ab*ba", "aba"));
    assert!(glob_match("shop", "shop"));
    assert!(!glob_match("shop", "shops"));
}

/// The shipped rules load, reference only shipped prompts and cover the whole failure catalog.
#[test]
fn default_rules_cover_the_catalog() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("..");
    let rules = RuleSet::load(&root.join("rules")).unwrap_or_else(|e| panic!("{e}"));
    for reason in [
        "CreateContainerConfigError",
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "OOMKilled",
        "Unhealthy",
        "FailedScheduling",
        "ProgressDeadlineExceeded",
        "NodeNotReady",
    ] {
        let mut s = signal(SignalSource::Cluster, reason, "default");
        if reason == "NodeNotReady" {
            s.object = WorkloadRef::new("Node", "", "node-1");
            s.workload = None;
        }
        assert!(rules.match_signal(&s).is_some(), "no default rule for {reason}");
    }
    for alert in [
        "KubePodCrashLooping",
        "KubePodNotReady",
        "KubeDeploymentReplicasMismatch",
        "KubeDeploymentRolloutStuck",
        "KubeContainerWaiting",
        "KubeNodeNotReady",
        "KubeStatefulSetReplicasMismatch",
        "KubeJobFailed",
    ] {
        let mut s = signal(SignalSource::Alertmanager, alert, "default");
        s.severity = Some("warning".into());
        assert!(rules.match_signal(&s).is_some(), "no default rule for alert {alert}");
    }
    // CPU throttling is the workload's to fix (raise the limit within policy), not a report.
    let mut throttled = signal(SignalSource::Alertmanager, "CPUThrottlingHigh", "default");
    throttled.severity = Some("info".into());
    let rule = rules.match_signal(&throttled).expect("a default rule for CPUThrottlingHigh");
    assert!(rule.allow_mutations && rule.name == "alert-cpu-throttling", "{}", rule.name);
    let mut watchdog = signal(SignalSource::Alertmanager, "Watchdog", "default");
    watchdog.severity = Some("none".into());
    assert!(rules.match_signal(&watchdog).is_none(), "Watchdog must not open incidents");
}
