//! The audit trail: an append-only JSON Lines file under the state
//! directory, one line per tool call, prompt fetch and decision, linking it
//! to the user who started it. Arguments are redacted before they are
//! written; results are never written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// File name of the audit log inside the state directory.
pub const FILE_NAME: &str = "audit.jsonl";

/// How many recent records are kept in memory for the MCP resource.
const RECENT: usize = 500;

/// What kind of action a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    ToolCall,
    PromptFetch,
    ResourceRead,
    /// A human decision on a proposal (approve / reject), or an apply outcome.
    Decision,
    /// Anything else a module wants on the trail (agent run, drift report).
    Event,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    pub time: Timestamp,
    pub kind: AuditKind,
    /// Who: token name, OIDC subject, stdio user, or `kubemedic` for the daemon itself.
    pub user: String,
    /// `stdio`, `http`, `agent`, `slack`, `cli`, ...
    pub transport: String,
    /// Tool, prompt or resource name, or the decision (`approve`, `reject`).
    pub action: String,
    /// Arguments, redacted.
    pub args: serde_json::Value,
    /// The object acted on (`namespace/Kind/name`, a proposal id), if any.
    pub target: Option<String>,
    /// `ok`, `denied`, `invalid`, `error`, `pending`, ...
    pub outcome: String,
    /// Error or outcome detail, redacted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub duration_ms: u64,
    /// OpenTelemetry trace id when a trace is active, else a fresh random id.
    pub trace_id: String,
    /// With `auth.impersonate`: the identity the apiserver saw (`Impersonate-User` and groups),
    /// sent with kubemedic's own credentials; absent: kubemedic's own identity only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated: Option<String>,
}

impl AuditRecord {
    /// A record stamped now, with a trace id; fill in the rest with the builder methods.
    pub fn new(kind: AuditKind, user: &str, transport: &str, action: &str) -> Self {
        Self {
            time: Timestamp::now(),
            kind,
            user: user.to_owned(),
            transport: transport.to_owned(),
            action: action.to_owned(),
            args: serde_json::Value::Object(Default::default()),
            target: None,
            outcome: "ok".into(),
            detail: String::new(),
            duration_ms: 0,
            trace_id: current_trace_id(),
            impersonated: None,
        }
    }

    /// The identity the apiserver saw, when kubemedic impersonated the caller.
    pub fn impersonated(mut self, user: &str, groups: &[String]) -> Self {
        self.impersonated =
            Some(if groups.is_empty() { user.to_owned() } else { format!("{user} (groups {})", groups.join(", ")) });
        self
    }

    /// Arguments; redacted here, so callers cannot forget.
    pub fn args(mut self, mut args: serde_json::Value) -> Self {
        crate::redact::redact_value(&mut args);
        self.args = args;
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn outcome(mut self, outcome: &str, detail: &str) -> Self {
        self.outcome = outcome.to_owned();
        self.detail = crate::redact::redact_text(detail).into_owned();
        self
    }

    pub fn duration(mut self, d: std::time::Duration) -> Self {
        self.duration_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }
}

/// The trace id of the current span when OpenTelemetry is active.
fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context().trace_id();
    if id == opentelemetry::trace::TraceId::INVALID {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        id.to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

struct Inner {
    file: Option<File>,
    recent: VecDeque<AuditRecord>,
}

/// The audit log; cheap to clone, safe to share.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Inner>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.path).finish()
    }
}

impl AuditLog {
    /// Open (create or append to) `state_dir/audit.jsonl`.
    pub fn open(state_dir: &Path) -> Result<Self, AuditError> {
        let path = state_dir.join(FILE_NAME);
        std::fs::create_dir_all(state_dir).map_err(|source| AuditError::Open { path: path.clone(), source })?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Open { path: path.clone(), source })?;
        Ok(Self { inner: Arc::new(Mutex::new(Inner { file: Some(file), recent: VecDeque::new() })), path: Some(path) })
    }

    /// An audit log kept in memory only (tests, `kubemedic diagnose`).
    pub fn in_memory() -> Self {
        Self { inner: Arc::new(Mutex::new(Inner { file: None, recent: VecDeque::new() })), path: None }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Append one record. A write failure is logged, never fatal: the call
    /// it records has already happened.
    pub fn record(&self, record: AuditRecord) {
        // The sink: whatever a caller put in, the file and `recent` get it through the gate.
        let record = crate::redact::gate().typed(record);
        let mut line = match serde_json::to_string(&record) {
            Ok(l) => l,
            Err(err) => {
                tracing::warn!(error = %err, "cannot encode audit record");
                return;
            }
        };
        line.push('\n');
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(file) = inner.file.as_mut()
            && let Err(err) = file.write_all(line.as_bytes())
        {
            tracing::warn!(error = %err, path = ?self.path, "cannot write audit record");
        }
        if inner.recent.len() == RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(record);
    }

    /// Record a decision on a proposal (for the approvals service, Slack, CLI).
    pub fn decision(
        &self,
        user: &str,
        transport: &str,
        proposal_id: &str,
        decision: &str,
        outcome: &str,
        detail: &str,
    ) {
        self.record(
            AuditRecord::new(AuditKind::Decision, user, transport, decision)
                .target(proposal_id)
                .outcome(outcome, detail),
        );
    }

    /// The most recent records (newest last), at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<AuditRecord> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let skip = inner.recent.len().saturating_sub(limit);
        inner.recent.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines_with_redacted_args() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(
            AuditRecord::new(AuditKind::ToolCall, "alice", "http", "propose_patch")
                .args(serde_json::json!({"env": [{"name": "API_TOKEN", "value": "sekrit-value"}]}))
                .target("shop/Deployment/web")
                .outcome("ok", ""),
        );
        log.decision("bob", "slack", "p-1", "approve", "ok", "password=hunter2");
        drop(log);
        // Reopening appends, never truncates.
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(AuditRecord::new(AuditKind::PromptFetch, "carol", "stdio", "diagnose-workload"));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["user"], "alice");
        assert_eq!(lines[0]["target"], "shop/Deployment/web");
        assert_eq!(lines[0]["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(lines[1]["kind"], "decision");
        assert!(!text.contains("sekrit-value") && !text.contains("hunter2"), "{text}");
        assert_eq!(log.recent(10).len(), 1);
    }
}
