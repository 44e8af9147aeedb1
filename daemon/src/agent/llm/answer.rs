//! The model's final answer: a JSON object in the Diagnosis shape, parsed
//! and validated strictly (a bad answer gets one retry, then the built-in
//! result is used instead).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::model::diagnosis::Evidence;
use crate::model::proposal::{Action, PatchType, Risk, TargetRef};
use crate::model::signal::WorkloadRef;
use crate::policy::{ProposalDraft, target};

/// The JSON the model must end with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub summary: String,
    pub root_cause: String,
    pub confidence: f32,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub mermaid: Option<String>,
    #[serde(default)]
    pub proposals: Vec<AnswerProposal>,
    #[serde(default)]
    pub advice: Vec<String>,
}

/// A fix the model proposes; it still has to pass policy and dry-run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerProposal {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    pub patch_type: PatchType,
    pub patch: Value,
    pub rationale: String,
    #[serde(default)]
    pub risk: Option<Risk>,
}

/// Described to the model in the system prompt.
pub const SCHEMA_TEXT: &str = r#"{
  "summary": "one line for humans",
  "root_cause": "the root cause, not the symptom",
  "confidence": 0.0-1.0,
  "evidence": [{"tool": "<a tool you called>", "args": {...}, "finding": "what it showed"}],
  "mermaid": "flowchart TD ... (the causal chain)",
  "proposals": [{"kind": "Deployment", "namespace": "...", "name": "...",
                 "patch_type": "strategic" | "merge" | "json", "patch": <patch body>,
                 "rationale": "why this fixes the root cause", "risk": "low" | "medium" | "high"}],
  "advice": ["what a human must do when no safe patch exists"]
}"#;

/// The JSON object inside a reply (bare, or in a ```json fence, or surrounded by prose).
pub fn extract(text: &str) -> Option<&str> {
    let t = text.trim();
    let start = t.find('{')?;
    let end = t.rfind('}')?;
    (end > start).then(|| &t[start..=end])
}

/// Parse and validate; `called` are the tools the model actually used.
pub fn parse(text: &str, called: &BTreeSet<String>) -> Result<Answer, String> {
    let json = extract(text).ok_or("the reply contains no JSON object")?;
    let answer: Answer = serde_json::from_str(json).map_err(|e| format!("the JSON does not match the schema: {e}"))?;
    if answer.summary.trim().is_empty() || answer.root_cause.trim().is_empty() {
        return Err("summary and root_cause must not be empty".into());
    }
    if !(0.0..=1.0).contains(&answer.confidence) {
        return Err(format!("confidence must be between 0 and 1, got {}", answer.confidence));
    }
    for e in &answer.evidence {
        if !called.contains(&e.tool) {
            return Err(format!("evidence cites tool {} which was not called in this session", e.tool));
        }
    }
    if let Some(m) = &answer.mermaid
        && !(m.trim_start().starts_with("flowchart") || m.trim_start().starts_with("graph"))
    {
        return Err("mermaid must be a flowchart (start with `flowchart` or `graph`)".into());
    }
    for p in &answer.proposals {
        if target::kind_info(&p.kind).is_none() {
            return Err(format!("proposal kind {} is not a Kubernetes kind kubemedic can patch", p.kind));
        }
        if p.rationale.trim().is_empty() {
            return Err("every proposal needs a rationale".into());
        }
    }
    Ok(answer)
}

/// A draft for each proposal; proposals aimed at anything but the diagnosed
/// object are refused here (tool results are untrusted and must not steer
/// changes elsewhere).
pub fn drafts(answer: &Answer, subject: &WorkloadRef) -> (Vec<ProposalDraft>, Vec<(String, String)>) {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for p in &answer.proposals {
        let info = target::kind_info(&p.kind);
        let kind = info.map(|i| i.kind).unwrap_or(&p.kind);
        let same =
            kind.eq_ignore_ascii_case(&subject.kind) && p.name == subject.name && p.namespace == subject.namespace;
        let display = format!("{kind} {}/{}", p.namespace, p.name);
        if !same {
            refused.push((display, format!("proposals may only target the diagnosed object {subject}")));
            continue;
        }
        ok.push(ProposalDraft {
            incident_id: None,
            target: TargetRef {
                api_version: info.map(|i| i.api_version.to_owned()).unwrap_or_default(),
                kind: kind.to_owned(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                resource_version: None,
                generation: None,
                content_digest: None,
            },
            action: Action::Patch { patch_type: p.patch_type, body: p.patch.clone() },
            rationale: p.rationale.clone(),
            risk: p.risk,
            requested_by: String::new(),
            approvers: Vec::new(),
            ttl_seconds: 3600,
        });
    }
    (ok, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn called() -> BTreeSet<String> {
        ["events".to_owned()].into()
    }

    #[test]
    fn parses_fenced_json() {
        let text = "Here you go:\n```json\n{\"summary\":\"s\",\"root_cause\":\"r\",\"confidence\":0.8,\
                    \"evidence\":[{\"tool\":\"events\",\"args\":{},\"finding\":\"f\"}]}\n```";
        let a = parse(text, &called()).unwrap();
        assert_eq!(a.summary, "s");
    }

    #[test]
    fn refuses_bad_answers() {
        assert!(parse("I think it is broken.", &called()).unwrap_err().contains("no JSON"));
        let bad = r#"{"summary":"s","root_cause":"r","confidence":3}"#;
        assert!(parse(bad, &called()).unwrap_err().contains("confidence"));
        let bad = r#"{"summary":"s","root_cause":"r","confidence":0.5,"evidence":[{"tool":"pod_logs","args":{},"finding":"x"}]}"#;
        assert!(parse(bad, &called()).unwrap_err().contains("not called"));
        let bad = r#"{"summary":"s","root_cause":"r","confidence":0.5,"extra":1}"#;
        assert!(parse(bad, &called()).unwrap_err().contains("schema"));
    }

    #[test]
    fn proposals_elsewhere_are_refused() {
        let a = parse(
            r#"{"summary":"s","root_cause":"r","confidence":0.5,"proposals":[
                {"kind":"Deployment","namespace":"ns","name":"other","patch_type":"merge","patch":{},"rationale":"x"},
                {"kind":"deployment","namespace":"ns","name":"api","patch_type":"merge","patch":{},"rationale":"y"}]}"#,
            &called(),
        )
        .unwrap();
        let (ok, refused) = drafts(&a, &WorkloadRef::new("Deployment", "ns", "api"));
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].target.kind, "Deployment");
        assert_eq!(refused.len(), 1);
    }
}
