//! `kubemedic run`: the daemon. Wires intake (watchers on the leader, the
//! Alertmanager receiver), the incident pipeline, the approvals service, the drift
//! cron, and one HTTP server (MCP, alerts, Slack, approvals API, metrics and
//! health) under one shutdown token.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::AppError;
use crate::agent::Deps;
use crate::alerts::{self, AlertsState, SharedOwners};
use crate::approvals::Approvals;
use crate::approvals::http::HttpOptions;
use crate::auth::Authenticator;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::incident::tracker::Tracker;
use crate::pipeline::{Inputs, Pipeline};
use crate::prompts::Catalog;
use crate::rules::RuleSet;
use crate::slack::SlackClient;
use crate::telemetry::audit::AuditLog;
use crate::telemetry::health::Readiness;
use crate::telemetry::metrics::Metrics;

mod backends;
mod leader_tasks;
mod shutdown;

/// Signals waiting for the tracker.
const SIGNAL_QUEUE: usize = 4096;
/// Re-diagnosis requests waiting for a worker.
const REDIAGNOSE_QUEUE: usize = 64;

pub async fn run(config: Config) -> Result<ExitCode, AppError> {
    let shutdown = CancellationToken::new();
    shutdown::spawn_signal_handler(shutdown.clone());
    std::fs::create_dir_all(&config.state_dir)?;

    let (cluster, kube_config) = Cluster::connect_with_config(&config.cluster).await?;
    let _secrets = super::watch_secrets(&cluster, shutdown.clone()).await;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    readiness.set("started", false);
    let audit = AuditLog::open(&config.state_dir)?;

    // Rules and prompts, loaded once: refuse to start on a broken file (the message names file and line).
    let prompts = Catalog::load(&config.prompts_dir)?;
    let rules = Arc::new(RuleSet::load_with_prompts(&config.rules_dir, Some(&backends::signatures(&prompts)))?);
    tracing::info!(rules = rules.len(), prompts = prompts.len(), "loaded rules and prompts");

    let backends = backends::Backends::connect(config.nats.as_ref(), &config.state_dir).await?;
    let (is_leader, leader_task) = backends.leadership(&cluster, shutdown.clone());

    // Approvals.
    let slack = config.slack.as_ref().map(SlackClient::from_config).transpose()?;
    let signing_secret = config.slack.as_ref().map(|s| s.signing_secret()).transpose()?;
    let (rediagnose_tx, rediagnose_rx) = mpsc::channel(REDIAGNOSE_QUEUE);
    let (applies_tx, applies_rx) = mpsc::unbounded_channel();
    let seal_key = crate::approvals::seal::ApprovalKey::load(&config.state_dir)?;
    let mut approvals =
        Approvals::new(backends.store.clone(), cluster.clone(), slack.clone(), config.approvals.clone());
    if let Some(mapping) = config.slack.as_ref().and_then(|s| s.approvers.clone()) {
        approvals = approvals.with_slack_approvers(mapping);
    }
    let impersonation = super::impersonation(&config, &kube_config);
    if let Some(i) = &impersonation {
        approvals = approvals.with_impersonation(i.clone());
    }
    let approvals = Arc::new(
        approvals
            .with_seal_key(seal_key)
            .with_ui_url(config.ui.enabled.then(|| config.ui.external_url.clone()).flatten())
            .with_replica(&shutdown::replica_name())
            .with_audit(audit.clone())
            .with_bus(backends.bus.clone())
            .with_policy(config.policy.clone())
            .with_rediagnose(rediagnose_tx)
            .with_applies(applies_tx),
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(approvals.clone().run(shutdown.clone()).instrument(tracing::info_span!("approvals")));

    // One MCP server (tools + prompts), shared by HTTP sessions and the agent's runners
    // (which call kubemedic's own tools, audited, as the agent with the operator role).
    let sink: Arc<dyn crate::tools::ProposalSink> = approvals.clone();
    let tools = super::tools(
        &config,
        (cluster.clone(), impersonation),
        Some(backends.store.clone()),
        Some(sink),
        audit.clone(),
    )?;
    let server = crate::mcp::build_server(tools, prompts.clone())?.with_max_result_bytes(config.mcp.max_result_bytes);
    let deps = Deps::new(cluster.clone(), config.policy.clone(), config.agent.clone(), Arc::new(prompts))?
        .with_server(&server);

    // The incident pipeline: signals -> tracker -> queue -> workers -> approvals -> applies.
    let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
    let tracker =
        Arc::new(Tracker::new(rules, backends.store.clone(), backends.queue.clone()).with_metrics(metrics.clone()));
    match tracker.restore().await {
        Ok(n) if n > 0 => tracing::info!(incidents = n, "restored open incidents"),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %super::error_chain(&err), "cannot restore incidents"),
    }
    let pipeline = Arc::new(Pipeline {
        deps,
        store: backends.store.clone(),
        queue: backends.queue.clone(),
        approvals: approvals.clone(),
        metrics: metrics.clone(),
        audit,
        bus: Some(backends.bus.clone()),
    });
    let inputs = Inputs { signals: signal_rx, rediagnose: rediagnose_rx, applies: applies_rx };
    pipeline.spawn(&mut tasks, tracker.clone(), inputs, &shutdown);

    // Watchers and the drift cron, on the leader only. While the watchers run, their stores
    // resolve alert pods to their owners and feed namespace labels to the rules.
    let owners = Arc::new(SharedOwners::default());
    let intake = leader_tasks::Watchers {
        cluster: cluster.clone(),
        config: config.watch.clone(),
        signals: signal_tx.clone(),
        readiness: readiness.clone(),
        metrics: metrics.clone(),
        tracker: tracker.clone(),
        owners: owners.clone(),
        cache: server.tools().watch_cache().clone(),
    };
    tasks.spawn(intake.spawn_while_leader(is_leader.clone(), shutdown.clone()));
    let drift = crate::drift::job::DriftJob {
        cluster: cluster.clone(),
        config: config.drift.clone(),
        store: backends.store.clone(),
        bus: backends.bus.clone(),
        metrics: metrics.clone(),
        notifier: slack.map(|s| Arc::new(s) as Arc<dyn crate::drift::job::DriftNotifier>),
    };
    tasks.spawn(leader_tasks::drift(drift, is_leader, shutdown.clone()).instrument(tracing::info_span!("drift")));

    // One HTTP server.
    let mut alerts_state = AlertsState::new(cluster.name.clone(), config.alerts.clone(), signal_tx);
    alerts_state.scope = Some(cluster.scope.clone());
    alerts_state.owners = Some(owners);
    alerts_state.client = Some(cluster.client.clone());
    let authenticator = Arc::new(Authenticator::new(&config.auth).await?);
    if !authenticator.is_configured() {
        tracing::warn!("no MCP tokens or OIDC configured: /mcp and the approvals API refuse every request");
    }
    let api_options = HttpOptions { signing_secret, auth: authenticator.clone() };
    let ui = if config.ui.enabled {
        crate::ui::router(crate::ui::UiDeps {
            config: config.ui.clone(),
            approvals: approvals.clone(),
            store: backends.store.clone(),
            auth: authenticator.clone(),
            bus: backends.bus.clone(),
            shutdown: shutdown.clone(),
        })
    } else {
        Router::new()
    };
    let app = Router::new()
        .merge(ui)
        .merge(crate::telemetry::health::router(metrics, readiness.clone()))
        .merge(if config.alerts.enabled { alerts::router(alerts_state) } else { Router::new() })
        .merge(crate::approvals::http::router(approvals, api_options))
        .merge(crate::mcp::http::router(
            server.read_only(config.mcp.read_only),
            authenticator,
            &config.http,
            shutdown.clone(),
        ))
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
    readiness.set("started", false);
    shutdown::drain(tasks, leader_task, http).await;
    tracker.flush().await;
    Ok(ExitCode::SUCCESS)
}
