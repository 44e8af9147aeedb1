//! Running a prompt workflow's declared steps through kubemedic's own
//! tools, as the agent (operator role), on the [`Reader`] the gathering for
//! the analyzers then reads through as well: each call is scope-checked,
//! redacted and audited by [`crate::tools::Tools::call`], and a call the
//! gathering repeats is answered from the step's result. The steps add what
//! only the tools report (rollout status) to the evidence.

use serde_json::Value;

use super::read::Reader;
use crate::model::diagnosis::Evidence;
use crate::prompts::Step;

/// Tools whose findings the typed gathering already records.
const GATHERED: &[&str] =
    &["describe_workload", "events", "rollout_history", "decode_secret", "pod_logs", "get_resource", "cluster_health"];

/// What the steps added.
#[derive(Debug, Default)]
pub struct Stepped {
    pub evidence: Vec<Evidence>,
    pub notes: Vec<String>,
}

/// Run `steps` in order.
pub async fn run(reader: &Reader<'_>, steps: &[Step]) -> Stepped {
    let mut out = Stepped::default();
    if steps.is_empty() {
        return out;
    }
    for step in steps {
        let args = Value::Object(step.args.clone());
        match reader.call(&step.tool, args.clone()).await {
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
