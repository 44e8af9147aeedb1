//! Long operations and live resources. An approval returns as soon as it is
//! recorded; the apply and its verification go on in the background, and a
//! client follows them in one of three ways, whatever its protocol version:
//!
//! - a task (the Tasks extension, when the client declares it): the call
//!   returns a task handle, `tasks/get` reports the proposal's state as the
//!   status message and, once it is final, the proposal as the result;
//! - `wait_proposal` with a progress token (any version): progress
//!   notifications at each change of state;
//! - the resource `kubemedic://proposals/{id}` (and the lists): read it, or
//!   subscribe (`resources/subscribe` up to 2025-11-25, `subscriptions/listen`
//!   from 2026-07-28) and get `notifications/resources/updated` when it changes.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, Task};
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::model::proposal::Proposal;
use crate::tools::{Caller, Tools};

/// How often subscribed resources are read again when nothing woke the watcher (a change made
/// by another process reaches only the shared store).
const POLL: Duration = Duration::from_secs(1);

/// What a resource read returns now, hashed; `None` when it cannot be read.
async fn fingerprint(clusters: &[Tools], caller: &Caller, uri: &str) -> Option<u64> {
    let result = super::resources::read(clusters, caller, uri).await.ok()?;
    let text = serde_json::to_string(&result).ok()?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Some(h.finish())
}

/// Sends one `notifications/resources/updated`; false when the client is gone.
pub type Notify = Arc<dyn Fn(String) -> BoxFuture<'static, bool> + Send + Sync>;

/// Watch the resources `uris()` names (in any of `clusters`) for `caller` and call `notify` with each one whose
/// content changed, until `stop` fires or `notify` fails. Woken by the approvals service's
/// updates (this process's applies) and otherwise every [`POLL`].
pub async fn watch(
    clusters: Arc<[Tools]>,
    caller: Caller,
    uris: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    notify: Notify,
    stop: CancellationToken,
) {
    // Woken by the default cluster's approvals (the others' changes are found by the poll).
    let mut updates = clusters.first().and_then(Tools::proposal_updates);
    let mut seen: HashMap<String, Option<u64>> = HashMap::new();
    loop {
        let wanted = uris();
        seen.retain(|uri, _| wanted.contains(uri));
        for uri in wanted {
            let now = fingerprint(&clusters, &caller, &uri).await;
            let changed = seen.insert(uri.clone(), now).is_some_and(|before| before != now);
            if changed && !notify(uri).await {
                return;
            }
        }
        let woken = async {
            match updates.as_mut() {
                Some(rx) => match rx.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        updates = None;
                        std::future::pending::<()>().await;
                    }
                },
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = woken => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The resource subscriptions of one session (`resources/subscribe`).
#[derive(Default)]
pub struct Subscriptions {
    uris: Mutex<BTreeSet<String>>,
    watcher: Mutex<Option<CancellationToken>>,
}

impl Subscriptions {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn uris(&self) -> Vec<String> {
        Self::lock(&self.uris).iter().cloned().collect()
    }

    /// Add `uri`; a fresh stop token when the session has no running watcher (the caller
    /// starts one with it), `None` when one runs already.
    pub fn add(&self, uri: String) -> Option<CancellationToken> {
        Self::lock(&self.uris).insert(uri);
        let mut watcher = Self::lock(&self.watcher);
        if watcher.as_ref().is_some_and(|t| !t.is_cancelled()) {
            return None;
        }
        let token = CancellationToken::new();
        *watcher = Some(token.clone());
        Some(token)
    }

    pub fn remove(&self, uri: &str) {
        let mut uris = Self::lock(&self.uris);
        uris.remove(uri);
        if uris.is_empty()
            && let Some(t) = Self::lock(&self.watcher).take()
        {
            t.cancel();
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some(t) = Self::lock(&self.watcher).take() {
            t.cancel();
        }
    }
}

/// Tasks (the Tasks extension) that follow proposals to a final state, each readable only by
/// the user who started it.
#[derive(Clone, Default)]
pub struct ProposalTasks {
    manager: TaskManager,
    owners: Arc<Mutex<HashMap<String, String>>>,
}

impl ProposalTasks {
    /// Start a task following `proposal` until it is final; its result is the final proposal
    /// (through the redaction gate). The task lives as long as the proposal may still be decided
    /// and verified.
    pub fn start(&self, tools: &Tools, caller: &Caller, proposal: &Proposal, message: String) -> Task {
        let ttl = Duration::from_secs(tools.proposal_ttl_seconds() + 900);
        let options = TaskOptions::new()
            .with_ttl_ms(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .with_poll_interval_ms(1_000)
            .with_status_message(crate::redact::gate().text(&status(proposal)).into_owned());
        let (tools, id) = (tools.clone(), proposal.id.clone());
        let task = self.manager.spawn(options, move |ctx| {
            Box::pin(async move {
                let follow = tools.follow_proposal(&id, None, |p| {
                    ctx.set_status_message(crate::redact::gate().text(&status(p)).into_owned());
                });
                let p = tokio::select! {
                    p = follow => p.map_err(|e| TaskExit::Error(McpError::internal_error(
                        crate::redact::gate().text(&crate::model::error::error_chain(&e)).into_owned(), None)))?,
                    // Only the following stops: an approved change is applied and verified anyway.
                    () = ctx.cancelled() => return Err(TaskExit::Cancelled),
                };
                let mut value = json!({"proposal": p, "message": final_message(&p, &message)});
                crate::redact::gate().value(&mut value);
                Ok(CallToolResult::structured(value))
            })
        });
        let mut owners = Self::lock(&self.owners);
        // Forget the owners of tasks the manager has evicted (retention past their TTL).
        owners.retain(|id, _| self.manager.get_task(id).is_ok());
        owners.insert(task.task_id.clone(), caller.user.clone());
        task
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The task manager, once `caller` is known to own `task_id` (another user's task is
    /// as unknown as one that never existed).
    pub fn owned(&self, caller: &Caller, task_id: &str) -> Result<&TaskManager, McpError> {
        let mut owners = Self::lock(&self.owners);
        // Evicted by the manager's retention: forget the owner too.
        if self.manager.get_task(task_id).is_err() {
            owners.remove(task_id);
        }
        match owners.get(task_id) {
            Some(owner) if owner == &caller.user => Ok(&self.manager),
            _ => Err(McpError::invalid_params(format!("unknown task {task_id}"), None)),
        }
    }
}

fn status(p: &Proposal) -> String {
    format!("proposal {}: {}", p.id, p.state.as_str())
}

fn final_message(p: &Proposal, started: &str) -> String {
    let outcome = p.outcome.as_deref().filter(|o| !o.is_empty()).map(|o| format!(" ({o})")).unwrap_or_default();
    format!("{started} Final state: {}{outcome}.", p.state.as_str())
}
