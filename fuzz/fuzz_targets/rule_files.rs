//! Rule files through the loader the daemon and `kubemedic validate` use
//! (`RuleSet::from_sources` with the shipped prompts' signatures): YAML and
//! schema (unknown fields), then the semantic checks (names, selectors,
//! durations, rate limits, templates, prompt arguments, duplicates across
//! files), then what a loaded rule does (matching a signal and rendering its
//! workflow arguments).
//!
//! Input: one file, or two separated by a `---8<---` line, so duplicate names
//! across files are reached.
//!
//! Properties: nothing panics; a refusal lists at least one problem, each
//! pointing into one of the given files at a line that exists; a loaded set
//! has unique, trimmed, non-empty names; written back as YAML it loads again
//! to the same rules; a signal built from a rule's own conditions matches it.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kubemedic::prompts::Prompt;
use kubemedic::rules::{PromptSignature, Rule, RuleFile, RuleSet, RulesError, glob_match};
use kubemedic::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};
use libfuzzer_sys::fuzz_target;

fn prompts() -> &'static BTreeMap<String, PromptSignature> {
    static P: OnceLock<BTreeMap<String, PromptSignature>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts");
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("prompts dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path).expect("prompt file");
                let p = Prompt::parse(&path, &text).expect("shipped prompt parses");
                let sig = PromptSignature {
                    arguments: p.arguments.iter().map(|a| a.name.clone()).collect(),
                    required: p.arguments.iter().filter(|a| a.required).map(|a| a.name.clone()).collect(),
                };
                out.insert(p.name, sig);
            }
        }
        out
    })
}

/// Lines as YAML (and editors) count them: `\r\n`, `\n`, `\r`, NEL, LS and PS break lines.
fn yaml_lines(text: &str) -> usize {
    let breaks = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    breaks + 1
}

/// Everything about a loaded rule except where it was written.
fn meaning(r: &Rule) -> String {
    format!(
        "{} {:?} {:?} {:?} {:?} {} {:?} {:?}",
        r.name, r.matches, r.workflow, r.approvers, r.description, r.allow_mutations, r.cooldown, r.rate_limit
    )
}

/// A signal that satisfies the rule's own conditions, when they can all hold at once.
fn signal_for(rule: &Rule) -> Option<Signal> {
    let m = &rule.matches;
    if m.namespace_selector.is_some() || m.object_selector.is_some() {
        return None;
    }
    let source = if m.alert_labels.is_empty() {
        m.sources.first().copied().unwrap_or(SignalSource::Cluster)
    } else if m.sources.is_empty() || m.sources.contains(&SignalSource::Alertmanager) {
        SignalSource::Alertmanager
    } else {
        return None;
    };
    let namespace = m.namespaces.first().map(|p| p.replace('*', "")).unwrap_or_else(|| "shop".into());
    let kind = m.kinds.first().cloned().unwrap_or_else(|| "Deployment".into());
    Some(Signal {
        source,
        status: SignalStatus::Firing,
        reason: m.reasons.first().cloned().unwrap_or_else(|| "CrashLoopBackOff".into()),
        cluster: "fuzz".into(),
        object: WorkloadRef::new("Pod", namespace.clone(), "web-7d9f8b6c5-x2k4q"),
        workload: Some(WorkloadRef::new(kind, namespace, "web")),
        labels: m.alert_labels.clone(),
        severity: m.severity.first().cloned(),
        message: "{{ name }} is not a variable here".into(),
        observed_at: jiff::Timestamp::UNIX_EPOCH,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<(PathBuf, String)> = match text.split_once("\n---8<---\n") {
        Some((a, b)) => vec![(PathBuf::from("a.yaml"), a.to_owned()), (PathBuf::from("b.yaml"), b.to_owned())],
        None => vec![(PathBuf::from("rules.yaml"), text.to_owned())],
    };
    let set = match RuleSet::from_sources(&sources, Some(prompts())) {
        Ok(set) => set,
        Err(RulesError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in &problems {
                let (_, file_text) =
                    sources.iter().find(|(path, _)| path == &p.file).expect("problem names a given file");
                let lines = yaml_lines(file_text);
                assert!(p.line <= lines, "{p} points past the end ({lines} lines)");
                assert!(!p.reason.is_empty());
                assert!(p.to_string().starts_with(&format!("{}:", p.file.display())));
            }
            return;
        }
        Err(other) => panic!("from_sources reads no files, yet: {other}"),
    };

    assert_eq!(set.len(), set.rules().len());
    for (i, rule) in set.rules().iter().enumerate() {
        assert!(!rule.name.is_empty() && rule.name.trim() == rule.name, "name {:?}", rule.name);
        assert!(set.rules()[..i].iter().all(|r| r.name != rule.name), "duplicate {:?}", rule.name);
        assert!(std::ptr::eq(set.get(&rule.name).expect("get finds it"), rule));
        for pattern in &rule.matches.namespaces {
            assert!(glob_match(pattern, &pattern.replace('*', "")), "{pattern:?} does not match its own text");
        }
        if let Some(signal) = signal_for(rule) {
            assert!(rule.matches(&signal, None), "rule {:?} does not match {signal:?}", rule.name);
            let args = rule.workflow.arguments_for(&signal);
            assert_eq!(args.len(), rule.workflow.arguments.len());
            // The first matching rule is this one or an earlier one.
            let first = set.match_signal(&signal).expect("something matches");
            let pos = set.rules().iter().position(|r| std::ptr::eq(r, first)).expect("from the set");
            assert!(pos <= i);
        }
    }

    // Written back as YAML, the files load again to the same rules.
    let rewritten: Vec<(PathBuf, String)> = sources
        .iter()
        .map(|(path, text)| {
            let file: RuleFile = serde_yaml_ng::from_str(text).expect("loaded, so it parses");
            (path.clone(), serde_yaml_ng::to_string(&file).expect("rule file serialises"))
        })
        .collect();
    let again = match RuleSet::from_sources(&rewritten, Some(prompts())) {
        Ok(again) => again,
        Err(e) => panic!("written back, the rules no longer load: {e}\n{}", rewritten[0].1),
    };
    assert_eq!(
        set.rules().iter().map(meaning).collect::<Vec<_>>(),
        again.rules().iter().map(meaning).collect::<Vec<_>>(),
        "YAML round trip changed the rules"
    );
});
