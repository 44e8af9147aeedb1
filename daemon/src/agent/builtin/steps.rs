//! Running a prompt workflow's declared steps through kubemedic's own
//! tools, as the agent (operator role): each call is scope-checked,
//! redacted and audited by [`crate::tools::Tools::call`]. The analyzers
//! work on the typed facts gathered alongside; the steps add what only the
//! tools report (rollout status) and leave the audit trail.

use serde_json::Value;

use crate::model::diagnosis::Evidence;
use crate::model::identity::Role;
use crate::prompts::Step;
use crate::tools::{Caller, Tools, Transport};

/// Tools whose findings the typed gathering already records.
const GATHERED: &[&str] =
    &["describe_workload", "events", "rollout_history", "decode_secret", "pod_logs", "get_resource", "cluster_health"];

/// What the steps added.
#[derive(Debug, Default)]
pub struct Stepped {
    pub evidence: Vec<Evidence>,
    pub notes: Vec<String>,
}

/// Run `steps` in order (nothing when no tools are configured).
pub async fn run(tools: Option<&Tools>, steps: &[Step]) -> Stepped {
    let mut out = Stepped::default();
    let Some(tools) = tools.filter(|_| !steps.is_empty()) else { return out };
    let caller = Caller::new("kubemedic-agent", Role::Operator, Transport::Agent);
    for step in steps {
        let args = Value::Object(step.args.clone());
        match tools.call(&caller, &step.tool, args.clone()).await {
            Ok(v) if !GATHERED.contains(&step.tool.as_str()) => {
                out.evidence.push(Evidence { tool: step.tool.clone(), args, finding: summarize(&v) });
            }
            Ok(_) => {}
            Err(e) => out.notes.push(format!("step {} failed: {}", step.tool, crate::model::error::error_chain(&e))),
        }
    }
    out.notes.push(format!("{} workflow step(s) ran through kubemedic's tools", steps.len()));
    out
}

/// One line from a tool's structured output.
fn summarize(v: &Value) -> String {
    if let (Some(status), Some(message)) =
        (v.get("status").and_then(Value::as_str), v.get("message").and_then(Value::as_str))
    {
        return format!("{status}: {message}");
    }
    super::gather::truncate(&v.to_string(), 240)
}
