//! The tracker folds signals into incidents.
//!
//! - Same fingerprint (cluster, namespace, owning workload, reason) while the
//!   incident is open: folded (count and last_seen), never a new incident.
//! - Another reason on a workload that already has an open incident: folded
//!   into that incident too (a crash loop that also fails probes, a stuck
//!   rollout whose pods cannot pull) so one broken workload is one incident.
//! - After an incident resolves, signals with its fingerprint are folded
//!   into it for the rule's cooldown; after that a new incident opens.
//! - New incidents are limited per rule (`rate_limit`); over the limit they
//!   are dropped, counted and logged.
//! - A new incident is stored first, then pushed to the incident queue (the
//!   agent workers' intake). A full queue is counted and logged; the incident
//!   stays in the store as `open`, so nothing is lost.
//!
//! Folded counts are written back in batches ([`Tracker::flush`]) with a
//! compare-and-set read-modify-write, so the agent's updates to the same
//! incident survive, and the agent's survive the tracker's.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Incident, IncidentStatus, fingerprint};
use crate::bus::{Enqueued, IncidentQueue, QueueError};
use crate::model::signal::{Signal, SignalSource, SignalStatus, WorkloadRef};
use crate::rules::RuleSet;
use crate::store::Store;

/// Looks up the labels of a namespace (for rules with a namespace selector).
pub type NamespaceLabels = Arc<dyn Fn(&str) -> Option<BTreeMap<String, String>> + Send + Sync>;

/// How often folded counts are written back.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Intake counters, cheap to update from any task.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Signals received (firing and resolved).
    pub signals_total: AtomicU64,
    /// Incidents opened.
    pub incidents_total: AtomicU64,
    /// Signals folded into an existing incident.
    pub folded_total: AtomicU64,
    /// Incidents resolved.
    pub resolved_total: AtomicU64,
    /// Firing signals no rule took.
    pub unmatched_total: AtomicU64,
    /// New incidents refused by a rule's rate limit.
    pub rate_limited_total: AtomicU64,
    /// Incidents or signals that could not be handed on (full or closed queue, rate limit, store failure).
    pub dropped_total: AtomicU64,
    /// Incidents waiting in the agent queue, as of the last enqueue.
    pub queue_depth: AtomicU64,
}

/// A point-in-time copy of [`IntakeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntakeSnapshot {
    pub signals_total: u64,
    pub incidents_total: u64,
    pub folded_total: u64,
    pub resolved_total: u64,
    pub unmatched_total: u64,
    pub rate_limited_total: u64,
    pub dropped_total: u64,
    pub queue_depth: u64,
}

impl IntakeStats {
    pub fn snapshot(&self) -> IntakeSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IntakeSnapshot {
            signals_total: g(&self.signals_total),
            incidents_total: g(&self.incidents_total),
            folded_total: g(&self.folded_total),
            resolved_total: g(&self.resolved_total),
            unmatched_total: g(&self.unmatched_total),
            rate_limited_total: g(&self.rate_limited_total),
            dropped_total: g(&self.dropped_total),
            queue_depth: g(&self.queue_depth),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// What became of one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new incident (its id).
    Opened(String),
    /// Folded into an existing incident (its id).
    Folded(String),
    /// An open incident was resolved (its id).
    Resolved(String),
    /// A resolved signal for something with no open incident, or an alert
    /// resolution noted on an incident opened for another reason.
    Noted,
    /// No rule takes the signal.
    Unmatched,
    /// The rule's rate limit refused a new incident.
    RateLimited,
}

struct Entry {
    workload_key: (String, WorkloadRef),
    resolved_at: Option<Instant>,
    cooldown: Duration,
    /// Signals folded since the last flush, and the newest one's time.
    pending: u64,
    last_seen: jiff::Timestamp,
    /// Whether its resolution still has to be written.
    resolve_pending: bool,
}

#[derive(Default)]
struct State {
    incidents: HashMap<String, Entry>,
    /// Every fingerprint that folds into an incident: its id and whether it is the incident's own.
    by_fingerprint: HashMap<String, (String, bool)>,
    /// The open incident of each (cluster, workload).
    open_by_workload: HashMap<(String, WorkloadRef), String>,
    /// Creation times of recent incidents per rule.
    rate: HashMap<String, VecDeque<Instant>>,
    dirty: HashSet<String>,
}

/// Folds signals into incidents; see the module docs.
pub struct Tracker {
    rules: RwLock<Arc<RuleSet>>,
    store: Arc<dyn Store>,
    queue: IncidentQueue,
    namespace_labels: RwLock<Option<NamespaceLabels>>,
    state: Mutex<State>,
    stats: Arc<IntakeStats>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

impl Tracker {
    pub fn new(rules: Arc<RuleSet>, store: Arc<dyn Store>, queue: IncidentQueue) -> Self {
        Self {
            rules: RwLock::new(rules),
            store,
            queue,
            namespace_labels: RwLock::new(None),
            state: Mutex::new(State::default()),
            stats: Arc::new(IntakeStats::default()),
            metrics: None,
        }
    }

    /// Also count into the Prometheus metrics (`/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<crate::telemetry::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Count a dropped signal or incident, with why.
    fn dropped(&self, why: &str) {
        bump(&self.stats.dropped_total);
        if let Some(m) = &self.metrics {
            m.dropped_signal(why);
        }
    }

    /// Rules with a namespace selector need the namespace's labels (e.g. from the watchers' store).
    pub fn with_namespace_labels(self, lookup: NamespaceLabels) -> Self {
        self.set_namespace_labels(Some(lookup));
        self
    }

    /// Set or clear the namespace label lookup later, e.g. when this replica becomes the
    /// leader and starts the watchers (`WatchHandle::namespace_labels`), or stops being it.
    pub fn set_namespace_labels(&self, lookup: Option<NamespaceLabels>) {
        *self.namespace_labels.write().unwrap_or_else(|e| e.into_inner()) = lookup;
    }

    pub fn stats(&self) -> Arc<IntakeStats> {
        self.stats.clone()
    }

    /// Swap in reloaded rules; open incidents keep the rule they were opened with.
    pub fn set_rules(&self, rules: Arc<RuleSet>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pick up incidents that are still open in the store (after a restart), so
    /// their signals fold into them instead of opening duplicates.
    pub async fn restore(&self) -> Result<usize, crate::store::StoreError> {
        let incidents = self.store.list_incidents().await?;
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut state = self.lock();
        let mut n = 0;
        for inc in incidents.into_iter().filter(|i| i.status != IncidentStatus::Resolved) {
            let key = (inc.cluster.clone(), inc.workload.clone());
            let cooldown = rules.get(&inc.rule).map_or(crate::rules::DEFAULT_COOLDOWN, |r| r.cooldown);
            state.by_fingerprint.insert(inc.fingerprint.clone(), (inc.id.clone(), true));
            state.open_by_workload.insert(key.clone(), inc.id.clone());
            state.incidents.insert(
                inc.id.clone(),
                Entry {
                    workload_key: key,
                    resolved_at: None,
                    cooldown,
                    pending: 0,
                    last_seen: inc.last_seen,
                    resolve_pending: false,
                },
            );
            n += 1;
        }
        Ok(n)
    }

    /// Handle one signal.
    pub async fn observe(&self, signal: Signal) -> Outcome {
        bump(&self.stats.signals_total);
        if let Some(m) = &self.metrics {
            m.signal(match signal.source {
                SignalSource::Cluster => "cluster",
                SignalSource::Alertmanager => "alertmanager",
                SignalSource::Cron => "cron",
                SignalSource::Manual => "manual",
            });
        }
        let from_watch = (signal.source == SignalSource::Cluster).then_some(signal.observed_at);
        let outcome = match signal.status {
            SignalStatus::Firing => self.firing(signal).await,
            SignalStatus::Resolved => self.resolved(signal).await,
        };
        // How long intake took under load (the watch stamped the signal when the change arrived).
        if let (Some(m), Some(at), Outcome::Opened(_) | Outcome::Folded(_)) = (&self.metrics, from_watch, &outcome) {
            m.signal_handled(jiff::Timestamp::now().duration_since(at).as_secs_f64().max(0.0));
        }
        outcome
    }

    async fn firing(&self, signal: Signal) -> Outcome {
        let subject = signal.subject().clone();
        let fp = fingerprint(&signal.cluster, &subject, &signal.reason);
        let key = (signal.cluster.clone(), subject.clone());
        let now = Instant::now();
        // Fold when possible; decide under the lock, write after it.
        {
            let mut state = self.lock();
            let target = match state.by_fingerprint.get(&fp) {
                Some((id, _)) => Some(id.clone()),
                None => state.open_by_workload.get(&key).cloned(),
            };
            if let Some(id) = target {
                let live = state.incidents.get(&id).is_some_and(|e| match e.resolved_at {
                    None => true,
                    Some(at) => now.duration_since(at) < e.cooldown,
                });
                if live {
                    let entry = state.incidents.get_mut(&id).expect("checked above");
                    entry.pending += 1;
                    entry.last_seen = signal.observed_at.max(entry.last_seen);
                    state.by_fingerprint.entry(fp).or_insert((id.clone(), false));
                    state.dirty.insert(id.clone());
                    bump(&self.stats.folded_total);
                    return Outcome::Folded(id);
                }
                forget(&mut state, &id);
            }
        }
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner()).clone();
        let lookup = self.namespace_labels.read().unwrap_or_else(|e| e.into_inner()).clone();
        let ns_labels = match (lookup, subject.namespace.is_empty()) {
            (Some(lookup), false) => lookup(&subject.namespace),
            _ => None,
        };
        let Some(rule) = rules.match_signal_with(&signal, ns_labels.as_ref()) else {
            bump(&self.stats.unmatched_total);
            tracing::debug!(reason = %signal.reason, workload = %subject, "no rule takes this signal");
            return Outcome::Unmatched;
        };
        let incident = {
            let mut state = self.lock();
            // Another task may have opened it while the lock was released.
            let raced = state
                .by_fingerprint
                .get(&fp)
                .map(|(id, _)| id.clone())
                .or_else(|| state.open_by_workload.get(&key).cloned());
            if let Some(id) = raced
                && let Some(entry) = state.incidents.get_mut(&id)
            {
                entry.pending += 1;
                state.by_fingerprint.entry(fp).or_insert((id.clone(), false));
                state.dirty.insert(id.clone());
                bump(&self.stats.folded_total);
                return Outcome::Folded(id);
            }
            if let Some(limit) = rule.rate_limit {
                let times = state.rate.entry(rule.name.clone()).or_default();
                while times.front().is_some_and(|t| now.duration_since(*t) >= limit.per) {
                    times.pop_front();
                }
                if times.len() >= limit.max as usize {
                    drop(state);
                    bump(&self.stats.rate_limited_total);
                    self.dropped("rate_limited");
                    tracing::warn!(rule = %rule.name, reason = %signal.reason, workload = %subject,
                        max = limit.max, per = ?limit.per, "rate limit reached; no incident opened");
                    return Outcome::RateLimited;
                }
                times.push_back(now);
            }
            let incident = Incident {
                id: uuid::Uuid::now_v7().to_string(),
                fingerprint: fp.clone(),
                cluster: signal.cluster.clone(),
                workload: subject.clone(),
                reason: signal.reason.clone(),
                rule: rule.name.clone(),
                prompt: rule.workflow.prompt.clone(),
                arguments: rule.workflow.arguments_for(&signal),
                allow_mutations: rule.allow_mutations,
                approvers: rule.approvers.clone(),
                status: IncidentStatus::Open,
                first_seen: signal.observed_at,
                last_seen: signal.observed_at,
                count: 1,
                first_signal: signal.clone(),
                summary: None,
                proposals: Vec::new(),
                diagnosis: None,
            };
            state.by_fingerprint.insert(fp, (incident.id.clone(), true));
            state.open_by_workload.insert(key.clone(), incident.id.clone());
            state.incidents.insert(
                incident.id.clone(),
                Entry {
                    workload_key: key,
                    resolved_at: None,
                    cooldown: rule.cooldown,
                    pending: 0,
                    last_seen: signal.observed_at,
                    resolve_pending: false,
                },
            );
            incident
        };
        bump(&self.stats.incidents_total);
        if let Some(m) = &self.metrics {
            m.incident(&incident.reason);
        }
        tracing::info!(incident = %incident.id, rule = %incident.rule, reason = %incident.reason,
            workload = %incident.workload, "incident opened");
        if let Err(err) = self.store.create_incident(&incident).await {
            self.dropped("store_error");
            tracing::error!(incident = %incident.id, error = %crate::model::error::error_chain(&err),
                "cannot store incident; handing it to the agent anyway");
        }
        match self.queue.enqueue(&incident).await {
            Ok(Enqueued::Queued) => {}
            Ok(Enqueued::Duplicate) => {
                tracing::debug!(incident = %incident.id, "already queued (same fingerprint within the dedup window)");
            }
            Err(QueueError::Full { capacity }) => {
                self.dropped("queue_full");
                tracing::warn!(incident = %incident.id, capacity,
                    "incident queue full; the incident stays open in the store without a diagnosis run");
            }
            Err(QueueError::Closed) => {
                self.dropped("queue_closed");
                tracing::warn!(incident = %incident.id, "incident queue closed; the incident stays open in the store");
            }
            Err(err) => {
                tracing::error!(incident = %incident.id, error = %crate::model::error::error_chain(&err), "cannot queue incident");
            }
        }
        self.update_depth().await;
        Outcome::Opened(incident.id)
    }

    async fn resolved(&self, signal: Signal) -> Outcome {
        let subject = signal.subject().clone();
        let key = (signal.cluster.clone(), subject.clone());
        let fp = fingerprint(&signal.cluster, &subject, &signal.reason);
        let id = {
            let mut state = self.lock();
            // The watchers resolve a workload as a whole (it is healthy again); an
            // alert resolves the incident it opened, and only annotates one opened for another reason.
            let target = if signal.source == SignalSource::Alertmanager {
                match state.by_fingerprint.get(&fp) {
                    Some((id, true)) => Some(id.clone()),
                    Some((id, false)) => {
                        tracing::info!(incident = %id, alert = %signal.reason,
                            "alert resolved; the incident was opened for another reason and stays open");
                        return Outcome::Noted;
                    }
                    None => None,
                }
            } else {
                state.open_by_workload.get(&key).cloned()
            };
            let Some(id) = target else { return Outcome::Noted };
            let Some(entry) = state.incidents.get_mut(&id) else { return Outcome::Noted };
            if entry.resolved_at.is_some() {
                return Outcome::Noted;
            }
            entry.resolved_at = Some(Instant::now());
            entry.resolve_pending = true;
            entry.last_seen = signal.observed_at.max(entry.last_seen);
            let wk = entry.workload_key.clone();
            if state.open_by_workload.get(&wk) == Some(&id) {
                state.open_by_workload.remove(&wk);
            }
            state.dirty.insert(id.clone());
            id
        };
        bump(&self.stats.resolved_total);
        tracing::info!(incident = %id, workload = %subject, "incident resolved");
        self.flush_one(&id).await;
        Outcome::Resolved(id)
    }

    async fn update_depth(&self) {
        let Ok(depth) = self.queue.depth().await else { return };
        self.stats.queue_depth.store(depth, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.queue_depth(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// Write folded counts and resolutions back (read-modify-write), and forget
    /// resolved incidents whose cooldown is over.
    pub async fn flush(&self) {
        let dirty: Vec<String> = self.lock().dirty.drain().collect();
        for id in dirty {
            self.flush_one(&id).await;
        }
        let now = Instant::now();
        let mut state = self.lock();
        let expired: Vec<String> = state
            .incidents
            .iter()
            .filter(|(_, e)| e.resolved_at.is_some_and(|at| now.duration_since(at) >= e.cooldown))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            forget(&mut state, &id);
        }
        drop(state);
    }

    async fn flush_one(&self, id: &str) {
        let (pending, last_seen, resolve) = {
            let mut state = self.lock();
            state.dirty.remove(id);
            let Some(e) = state.incidents.get_mut(id) else { return };
            let out = (e.pending, e.last_seen, e.resolve_pending);
            e.pending = 0;
            e.resolve_pending = false;
            out
        };
        if pending == 0 && !resolve {
            return;
        }
        // Compare-and-set: a worker may be writing its diagnosis to the same incident.
        let result = crate::store::modify_incident(self.store.as_ref(), id, |inc| {
            inc.count += pending;
            inc.last_seen = inc.last_seen.max(last_seen);
            if resolve {
                inc.status = IncidentStatus::Resolved;
            }
        })
        .await;
        if let Err(err) = result {
            // Put the work back so the next flush retries it.
            let mut state = self.lock();
            if let Some(e) = state.incidents.get_mut(id) {
                e.pending += pending;
                e.resolve_pending |= resolve;
                state.dirty.insert(id.to_owned());
            }
            tracing::warn!(incident = %id, error = %crate::model::error::error_chain(&err), "cannot update incident; will retry");
        }
    }

    /// Consume signals until shutdown (or until every sender is gone), flushing periodically.
    pub async fn run(self: Arc<Self>, mut signals: mpsc::Receiver<Signal>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                signal = signals.recv() => match signal {
                    Some(s) => { self.observe(s).await; }
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
            }
        }
        // Intake has stopped: take what is already queued, then write everything back.
        signals.close();
        while let Ok(s) = signals.try_recv() {
            self.observe(s).await;
        }
        self.flush().await;
    }
}

fn forget(state: &mut State, id: &str) {
    if let Some(e) = state.incidents.remove(id)
        && state.open_by_workload.get(&e.workload_key).is_some_and(|x| x == id)
    {
        state.open_by_workload.remove(&e.workload_key);
    }
    state.by_fingerprint.retain(|_, (i, _)| i != id);
    state.dirty.remove(id);
}

#[cfg(test)]
mod tests;
