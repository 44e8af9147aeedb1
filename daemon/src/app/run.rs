//! `kubemedic run`: the daemon. Wires intake (watchers on the leader, the
//! Alertmanager receiver), the incident tracker and queue, the agent workers,
//! the approvals service, the drift cron, and one HTTP server (MCP,
//! alerts, Slack, approvals API, metrics and health) under one shutdown token.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::AppError;
use crate::agent::{self, Deps, Request};
use crate::alerts::{self, AlertsState, SharedOwners};
use crate::approvals::http::HttpOptions;
use crate::approvals::slack::SlackClient;
use crate::approvals::{Approvals, Rediagnose};
use crate::bus::{Bus, IncidentQueue};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::drift::job::DriftJob;
use crate::incident::tracker::Tracker;
use crate::incident::{Incident, IncidentStatus};
use crate::leader::{self, LeaderElector};
use crate::mcp::auth::Authenticator;
use crate::prompts::Catalog;
use crate::rules::{PromptSignature, RuleSet};
use crate::store::Store;
use crate::telemetry::audit::{AuditKind, AuditLog, AuditRecord};
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::Metrics;

/// Signals waiting for the tracker.
const SIGNAL_QUEUE: usize = 4096;
/// Incidents waiting for the agent queue.
const INCIDENT_QUEUE: usize = 1024;
/// Concurrent diagnoses per replica.
const AGENT_WORKERS: usize = 2;
/// How long runs in flight may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(20);
/// Waits before diagnosing again when a run could not read the cluster (apiserver down or
/// unreachable): an incident is not closed on a diagnosis made blind.
const DIAGNOSIS_RETRIES: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(5), Duration::from_secs(10)];

/// Everything the workers share.
struct Shared {
    deps: Deps,
    store: Arc<dyn Store>,
    approvals: Arc<Approvals>,
    metrics: Arc<Metrics>,
    audit: AuditLog,
}

pub async fn run(config: Config) -> Result<ExitCode, AppError> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    std::fs::create_dir_all(&config.state_dir)?;

    config.alerts.validate()?;
    let cluster = Cluster::connect(&config.cluster).await?;
    let _secrets = super::watch_secrets(&cluster, shutdown.clone()).await;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    readiness.set("started", false);
    let audit = AuditLog::open(&config.state_dir)?;

    // Rules and prompts: refuse to start on a broken file (the message names file and line).
    let prompts = Catalog::load(&config.prompts_dir)?;
    let rules = Arc::new(RuleSet::load_with_prompts(&config.rules_dir, Some(&signatures(&prompts)))?);
    tracing::info!(rules = rules.len(), prompts = prompts.len(), "loaded rules and prompts");

    // State and queues: NATS JetStream when configured, else embedded.
    let (bus, store, queue, nats_client): (Bus, Arc<dyn Store>, IncidentQueue, Option<async_nats::Client>) =
        match &config.nats {
            Some(nats) => {
                let client = crate::bus::connect(nats).await?;
                let store = crate::store::nats::NatsStore::open(
                    async_nats::jetstream::new(client.clone()),
                    crate::store::nats::DEFAULT_BUCKET,
                )
                .await?;
                let queue = IncidentQueue::nats(client.clone(), nats).await?;
                (Bus::with_nats(client.clone()), Arc::new(store), queue, Some(client))
            }
            None => {
                let store = crate::store::redb::RedbStore::open(&config.state_dir)?;
                (Bus::local(), Arc::new(store), IncidentQueue::local(INCIDENT_QUEUE, Duration::from_secs(300)), None)
            }
        };

    // Leadership: watchers and the drift cron run on one replica at a time.
    let (is_leader, leader_task) = match (&config.nats, nats_client.is_some()) {
        (Some(nats), true) => {
            let elector = LeaderElector::new(cluster.client.clone(), &nats.leader_election);
            tracing::info!(identity = elector.identity(), "leader election on");
            let (rx, task) = elector.spawn(shutdown.clone());
            (rx, Some(task))
        }
        _ => (leader::always_leader(), None),
    };

    // Approvals.
    let slack = config.slack.as_ref().map(SlackClient::from_config).transpose()?;
    let signing_secret = match &config.slack {
        Some(s) => Some(s.signing_secret()?),
        None => None,
    };
    let (rediagnose_tx, rediagnose_rx) = mpsc::channel::<Rediagnose>(64);
    let approvals = Arc::new(
        Approvals::new(store.clone(), cluster.clone(), slack, config.approvals.clone())
            .with_replica(&replica_name())
            .with_audit(audit.clone())
            .with_bus(bus.clone())
            .with_policy(config.policy.clone())
            .with_rediagnose(rediagnose_tx),
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(approvals.clone().run(shutdown.clone()).instrument(tracing::info_span!("approvals")));

    // MCP server (tools + prompts), shared by HTTP sessions and the LLM runner.
    let sink: Arc<dyn crate::tools::ProposalSink> = approvals.clone();
    let server = crate::mcp::build_server(&config, cluster.clone(), Some(store.clone()), Some(sink), audit.clone())?;
    // Both runners call kubemedic's own tools (audited, as the agent with the operator role).
    let deps = Deps::from_config(cluster.clone(), &config)?.with_tools(server.tools().clone())?;
    let shared =
        Arc::new(Shared { deps, store: store.clone(), approvals: approvals.clone(), metrics: metrics.clone(), audit });

    // Intake: signals -> tracker -> incident channel -> queue (shared across replicas with NATS).
    let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (incident_tx, mut incident_rx) = mpsc::channel::<Incident>(INCIDENT_QUEUE);
    let tracker = Arc::new(Tracker::new(rules, store.clone(), incident_tx).with_metrics(metrics.clone()));
    match tracker.restore().await {
        Ok(n) if n > 0 => tracing::info!(incidents = n, "restored open incidents"),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %super::error_chain(&err), "cannot restore incidents"),
    }
    // The tracker holds the incident sender for as long as `run` holds the tracker, so the
    // enqueue loop cannot wait for the channel to close: it stops once the tracker has
    // drained its last signals after shutdown, and queues what that drain produced.
    let tracker_done = CancellationToken::new();
    {
        let tracker = tracker.clone();
        let shutdown = shutdown.clone();
        let done = tracker_done.clone();
        tasks.spawn(
            async move {
                tracker.run(signal_rx, shutdown).await;
                done.cancel();
            }
            .instrument(tracing::info_span!("tracker")),
        );
    }
    let queue = Arc::new(queue);
    {
        let queue = queue.clone();
        let metrics = metrics.clone();
        let done = tracker_done.clone();
        tasks.spawn(
            async move {
                let enqueue = |incident: Incident| {
                    let queue = queue.clone();
                    let metrics = metrics.clone();
                    async move {
                        if let Err(err) = queue.enqueue(&incident).await {
                            tracing::error!(incident = %incident.id, error = %super::error_chain(&err), "cannot queue incident");
                        }
                        if let Ok(depth) = queue.depth().await {
                            metrics.queue_depth(i64::try_from(depth).unwrap_or(i64::MAX));
                        }
                    }
                };
                loop {
                    tokio::select! {
                        biased;
                        incident = incident_rx.recv() => match incident {
                            Some(incident) => enqueue(incident).await,
                            None => return,
                        },
                        () = done.cancelled() => {
                            while let Ok(incident) = incident_rx.try_recv() {
                                enqueue(incident).await;
                            }
                            return;
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("enqueue")),
        );
    }

    // Watchers, on the leader only. While they run, their stores resolve alert pods to
    // their owners and feed namespace labels to rules with a namespace selector.
    let owners = Arc::new(SharedOwners::default());
    let watch_cache = server.tools().watch_cache().clone();
    {
        let cluster = cluster.clone();
        let watch_config = config.watch.clone();
        let signals = signal_tx.clone();
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        let tracker = tracker.clone();
        let owners = owners.clone();
        let watch_cache = watch_cache.clone();
        tasks.spawn(leader::while_leader(is_leader.clone(), shutdown.clone(), move |token| {
            let cluster = cluster.clone();
            let watch_config = watch_config.clone();
            let signals = signals.clone();
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            let tracker = tracker.clone();
            let owners = owners.clone();
            let watch_cache = watch_cache.clone();
            async move {
                metrics.set_leader(true);
                match crate::watch::spawn(cluster, &watch_config, signals, token) {
                    Ok(handle) => {
                        handle.ready().await;
                        owners.set(Some(handle.owners()));
                        watch_cache.set(Some(handle.cache().clone()));
                        if watch_config.namespace_labels {
                            tracker.set_namespace_labels(Some(handle.namespace_labels()));
                        }
                        readiness.set("watchers", true);
                        tracing::info!("watchers synced");
                        handle.join().await;
                        owners.set(None);
                        watch_cache.set(None);
                        tracker.set_namespace_labels(None);
                    }
                    Err(crate::watch::WatchError::Disabled) => tracing::info!("watchers disabled"),
                    Err(err) => tracing::error!(error = %super::error_chain(&err), "cannot start watchers"),
                }
                metrics.set_leader(false);
            }
        }));
    }

    // Drift cron, on the leader only.
    let drift_job = DriftJob {
        cluster: cluster.clone(),
        config: config.drift.clone(),
        store: store.clone(),
        bus: bus.clone(),
        metrics: metrics.clone(),
        notifier: match &config.slack {
            Some(slack) => {
                Some(Arc::new(SlackClient::from_config(slack)?) as Arc<dyn crate::drift::job::DriftNotifier>)
            }
            None => None,
        },
    };
    {
        let is_leader = is_leader.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(err) = drift_job.run_scheduled(is_leader, token).await {
                tracing::error!(error = %super::error_chain(&err), "drift schedule stopped");
            }
        });
    }

    // Agent workers: take incidents from the queue, diagnose, submit proposals.
    let runs = CancellationToken::new();
    for worker in 0..AGENT_WORKERS {
        let queue = queue.clone();
        let shared = shared.clone();
        let stop = shutdown.clone();
        let runs = runs.clone();
        tasks.spawn(
            async move {
                loop {
                    let delivery = tokio::select! {
                        () = stop.cancelled() => return,
                        d = queue.next() => d,
                    };
                    match delivery {
                        Ok(delivery) => {
                            // A run in flight finishes after SIGTERM (until the grace period ends).
                            // Held in this worker while it retries: the embedded queue has no
                            // redelivery, and NATS is told the run is still in progress.
                            for (attempt, wait) in DIAGNOSIS_RETRIES.iter().map(Some).chain([None]).enumerate() {
                                let outcome = tokio::select! {
                                    () = runs.cancelled() => return,
                                    o = diagnose_incident(&shared, delivery.incident.clone(), wait.is_none()) => o,
                                };
                                let (Outcome::Retry(why), Some(wait)) = (outcome, wait) else { break };
                                tracing::warn!(incident = %delivery.incident.id, attempt = attempt + 1, retry_in = ?wait, "diagnosis incomplete, retrying: {why}");
                                let _ = delivery.in_progress().await;
                                tokio::select! {
                                    () = runs.cancelled() => return,
                                    () = tokio::time::sleep(*wait) => {}
                                }
                            }
                            if let Err(err) = delivery.ack().await {
                                tracing::warn!(error = %super::error_chain(&err), "cannot ack incident");
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %super::error_chain(&err), "incident queue unavailable; retrying");
                            tokio::select! {
                                () = stop.cancelled() => return,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("agent_worker", worker)),
        );
    }

    // Proposals whose target changed before apply: diagnose the incident again.
    {
        let shared = shared.clone();
        let mut rx = rediagnose_rx;
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    () = stop.cancelled() => return,
                    r = rx.recv() => match r { Some(r) => r, None => return },
                };
                let Some(id) = request.incident_id.as_deref() else { continue };
                match shared.store.get_incident(id).await {
                    Ok(Some(incident)) => {
                        tracing::info!(incident = id, reason = %request.reason, "diagnosing again");
                        diagnose_incident(&shared, incident, true).await;
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(error = %super::error_chain(&err), "cannot load incident"),
                }
            }
        });
    }

    // One HTTP server.
    let mut alerts_state = AlertsState::new(cluster.name.clone(), config.alerts.clone(), signal_tx.clone());
    alerts_state.scope = Some(cluster.scope.clone());
    alerts_state.owners = Some(owners.clone());
    let authenticator = Arc::new(Authenticator::new(&config.auth).await?);
    if !authenticator.is_configured() {
        tracing::warn!("no MCP tokens or OIDC configured: /mcp and the approvals API refuse every request");
    }
    let api_options = HttpOptions { signing_secret, auth: authenticator.clone() };
    let app = Router::new()
        .merge(crate::telemetry::health::router(metrics.clone(), readiness.clone()))
        .merge(if config.alerts.enabled { alerts::router(alerts_state) } else { Router::new() })
        .merge(crate::approvals::http::router(approvals.clone(), api_options))
        .merge(crate::mcp::http::router(server, authenticator, &config.http, shutdown.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(config.http.max_body_bytes));
    let listener = tokio::net::TcpListener::bind(config.http.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, cluster = %cluster.name, "kubemedic running");
    readiness.set("started", true);
    let http_stop = shutdown.clone();
    let limits = config.http.limits();
    // The buffered body is bounded by the larger of the two limits; each route keeps its own below it.
    let max_body = config.http.max_body_bytes.max(if config.alerts.enabled { config.alerts.max_body_bytes } else { 0 });
    let http = tokio::spawn(async move { crate::listener::serve(listener, app, &limits, max_body, http_stop).await });

    shutdown.cancelled().await;
    tracing::info!(grace_seconds = GRACE.as_secs(), "shutting down: intake stopped, finishing runs in flight");
    readiness.set("started", false);
    // One deadline for everything: an idle daemon is done in milliseconds, a busy one waits
    // for its runs at most GRACE (then at most a second each for the Lease release and HTTP close).
    let deadline = tokio::time::Instant::now() + GRACE;
    let drained = tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            tasks = tasks.len(),
            "grace period over; abandoning runs still in flight (their incidents are redelivered)"
        );
        runs.cancel();
        tasks.abort_all();
    }
    let at_least = |floor: Duration| deadline.max(tokio::time::Instant::now() + floor);
    if let Some(task) = leader_task {
        // Releasing the Lease lets another replica take over at once instead of after its expiry.
        let _ = tokio::time::timeout_at(at_least(Duration::from_secs(1)), task).await;
    }
    // MCP sessions end with the shutdown token; a request still open past the deadline is cut.
    let mut http = http;
    match tokio::time::timeout_at(at_least(Duration::from_secs(1)), &mut http).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "HTTP server stopped with an error"),
        Ok(Err(err)) => tracing::warn!(error = %err, "HTTP server task failed"),
        Err(_) => {
            tracing::warn!("HTTP connections still open after the grace period; closing them");
            http.abort();
        }
    }
    tracker.flush().await;
    Ok(ExitCode::SUCCESS)
}

/// How one diagnosis attempt ended.
enum Outcome {
    Done,
    /// The cluster could not be read; worth another attempt (the reason).
    Retry(String),
}

/// Whether a run that ended like this should be tried again before the incident is closed:
/// reads of the cluster failed (apiserver restarting, network) and nothing could be concluded.
fn retryable(result: &Result<agent::Diagnosis, agent::AgentError>) -> Option<String> {
    match result {
        Err(err @ (agent::AgentError::Read { .. } | agent::AgentError::Timeout(..))) => Some(super::error_chain(err)),
        Err(_) => None,
        Ok(d) if d.proposals.is_empty() && d.advice.is_empty() => d
            .notes
            .iter()
            .filter_map(|n| n.strip_prefix("not gathered: "))
            .find(|gap| !gap.contains("outside the configured scope"))
            .map(|gap| format!("not gathered: {gap}")),
        Ok(_) => None,
    }
}

/// Run the incident's workflow, store the outcome, hand proposals to approvals.
/// Unless `last_try`, a run that could not read the cluster leaves the incident open and
/// asks for another attempt.
async fn diagnose_incident(shared: &Shared, mut incident: Incident, last_try: bool) -> Outcome {
    let span = crate::telemetry::otel::agent_span(
        &incident.prompt,
        &incident.id,
        &incident.cluster,
        &incident.workload.namespace,
    );
    async {
        incident.status = IncidentStatus::Diagnosing;
        if let Err(err) = shared.store.put_incident(&incident).await {
            tracing::warn!(error = %super::error_chain(&err), "cannot store incident");
        }
        let request = Request::from(&incident);
        let result = agent::run(&shared.deps, &request).await;
        if let (false, Some(why)) = (last_try, retryable(&result)) {
            incident.status = IncidentStatus::Open;
            incident.summary = Some(format!("diagnosis incomplete, will retry: {why}"));
            let _ = shared.store.put_incident(&incident).await;
            return Outcome::Retry(why);
        }
        let diagnosis = match result {
            Ok(d) => d,
            Err(err) => {
                tracing::error!(incident = %incident.id, error = %super::error_chain(&err), "diagnosis failed");
                incident.status = IncidentStatus::Open;
                incident.summary = Some(format!("diagnosis failed: {}", super::error_chain(&err)));
                let _ = shared.store.put_incident(&incident).await;
                return Outcome::Done;
            }
        };
        // The agent acts for the rule that opened the incident.
        shared.audit.record(
            AuditRecord::new(AuditKind::Event, &request.requested_by, "daemon", "diagnose")
                .target(incident.workload.to_string())
                .outcome("ok", &crate::redact::redact_text(&diagnosis.summary)),
        );
        incident.summary = Some(diagnosis.summary.clone());
        incident.status = IncidentStatus::Diagnosed;
        for proposal in &diagnosis.proposals {
            match shared.approvals.submit_with(proposal.clone(), Some(diagnosis.clone())).await {
                Ok(p) => {
                    shared.metrics.proposal_state(p.state.as_str());
                    incident.proposals.push(p.id);
                }
                Err(err) => {
                    tracing::warn!(incident = %incident.id, error = %super::error_chain(&err), "proposal not offered")
                }
            }
        }
        if let Err(err) = shared.store.put_incident(&incident).await {
            tracing::warn!(error = %super::error_chain(&err), "cannot store diagnosis");
        }
        tracing::info!(
            incident = %incident.id,
            workload = %incident.workload,
            proposals = incident.proposals.len(),
            "diagnosed: {}",
            crate::redact::redact_text(&diagnosis.root_cause)
        );
        Outcome::Done
    }
    .instrument(span)
    .await
}

/// What each prompt accepts, for checking rule workflows at start-up.
fn signatures(prompts: &Catalog) -> BTreeMap<String, PromptSignature> {
    prompts
        .iter()
        .map(|p| {
            let sig = PromptSignature {
                arguments: p.arguments.iter().map(|a| a.name.clone()).collect(),
                required: p.arguments.iter().filter(|a| a.required).map(|a| a.name.clone()).collect(),
            };
            (p.name.clone(), sig)
        })
        .collect()
}

/// This replica's name in proposals' history: the pod name when in a cluster.
fn replica_name() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("kubemedic-{}", std::process::id()))
}

/// SIGTERM or SIGINT cancels the root token once; a second one exits at once.
fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "cannot install SIGTERM handler");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received");
        token.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::WorkloadRef;

    fn diagnosis(notes: &[&str], advice: &[&str]) -> agent::Diagnosis {
        agent::Diagnosis {
            incident_id: None,
            workload: WorkloadRef::new("Deployment", "shop", "api"),
            summary: "not determined by the built-in analyzers".into(),
            root_cause: String::new(),
            evidence: Vec::new(),
            confidence: 0.1,
            mermaid: String::new(),
            proposals: Vec::new(),
            refused: Vec::new(),
            advice: advice.iter().map(|a| (*a).to_owned()).collect(),
            runner: "builtin".into(),
            notes: notes.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn blind_diagnoses_are_retried_and_conclusive_ones_are_not() {
        let blind = diagnosis(&["workflow x: steps a", "not gathered: events: connection refused"], &[]);
        assert_eq!(retryable(&Ok(blind)).as_deref(), Some("not gathered: events: connection refused"));
        let scoped = diagnosis(&["not gathered: secrets are outside the configured scope"], &[]);
        assert_eq!(retryable(&Ok(scoped)), None, "a scope gap does not go away by waiting");
        let advised = diagnosis(&["not gathered: events: connection refused"], &["create the Secret"]);
        assert_eq!(retryable(&Ok(advised)), None, "a conclusion was reached");
        let clean = diagnosis(&["workflow x: steps a"], &[]);
        assert_eq!(retryable(&Ok(clean)), None);
        assert!(retryable(&Err(agent::AgentError::Timeout("shop/Deployment/api".into(), 60))).is_some());
        assert_eq!(retryable(&Err(agent::AgentError::NotFound("shop/Deployment/api".into()))), None);
        assert_eq!(retryable(&Err(agent::AgentError::OutOfScope("x".into()))), None);
    }
}
