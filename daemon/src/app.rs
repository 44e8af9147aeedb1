//! The one place that wires the modules together, one function per command.
//!
//! Each command loads and builds what it needs once (prompts, the cluster client, the
//! store, the MCP server, the agent's runner) and hands every module its own config
//! section; the configuration was validated as a whole when it was loaded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::agent::Deps;
use crate::approvals::Approvals;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::prompts::Catalog;
use crate::store::Store;
use crate::telemetry::audit::AuditLog;
use crate::tools::{ProposalSink, Tools};

/// Errors from commands; each module has its own typed error underneath.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

pub use crate::model::error::error_chain;

/// Telemetry guard: flushes exporters on shutdown.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flush and stop the span exporter (bounded by the SDK's own timeouts).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("kubemedic: cannot flush spans: {err}");
        }
    }
}

/// How chatty the logs are by default (`RUST_LOG`, when set, wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// One-shot commands (`demo`, `diagnose`, `drift`, ...): warnings and errors only, so
    /// logs do not bury the command's own output.
    Quiet,
    /// The long-running commands (`run`, `mcp`), and `-v` for the others.
    Info,
    /// `-vv`: debug for kubemedic itself.
    Debug,
}

impl Verbosity {
    /// The level for a command: its default raised by each `-v`.
    pub fn for_command(long_running: bool, verbose: u8) -> Self {
        match (long_running, verbose) {
            (false, 0) => Self::Quiet,
            (true, 0) | (false, 1) => Self::Info,
            _ => Self::Debug,
        }
    }

    /// The `EnvFilter` directives. Targets match by prefix: `kube=warn` alone would also
    /// silence `kubemedic`.
    pub fn directives(self) -> &'static str {
        match self {
            Self::Quiet => "warn",
            Self::Info => "info,kube=warn,rmcp=warn,kubemedic=info",
            Self::Debug => "info,kube=warn,rmcp=warn,kubemedic=debug",
        }
    }
}

/// Colour in log lines only for a person at a terminal (a file, a pipe or a CI log gets
/// plain text), and never when `NO_COLOR` is set (no-color.org).
pub fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Logs to stderr (always: stdout belongs to MCP stdio and to command
/// output); spans to OTLP when the standard `OTEL_*` variables ask for it.
/// Must run inside the Tokio runtime (the gRPC exporter needs it).
pub fn init_telemetry(verbosity: Verbosity) -> Telemetry {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    use tracing_subscriber::Layer as _;

    let filter_for = |v: Verbosity| {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(v.directives()))
    };
    // Quiet is for the terminal: spans still go to a collector at info, as the daemon's do.
    let filter = filter_for(verbosity);
    let span_filter = filter_for(if matches!(verbosity, Verbosity::Quiet) { Verbosity::Info } else { verbosity });
    let provider = match crate::telemetry::otel::provider_from_env() {
        Ok(p) => p,
        Err(err) => {
            eprintln!("kubemedic: OpenTelemetry export disabled: {}", error_chain(&err));
            None
        }
    };
    let otel = provider.as_ref().map(|p| crate::telemetry::otel::layer(p).with_filter(span_filter));
    let colour = log_colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour)
                .with_writer(crate::telemetry::logs::Gated(std::io::stderr))
                .with_filter(filter),
        )
        .with(otel)
        .try_init();
    Telemetry { provider }
}

pub mod demo;
pub mod eval;
mod progress;
mod run;

/// How long a command waits for the first listing of the Secrets in scope before it
/// produces output (the gate scrubs values it learns later from then on).
const SECRET_WATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Start the watch that keeps the redaction gate's known Secret values current, and wait
/// (bounded) for its first listing, so the first output already knows them.
pub async fn watch_secrets(
    cluster: &crate::cluster::Cluster,
    shutdown: tokio_util::sync::CancellationToken,
) -> crate::redact::watch::SecretWatch {
    let watch = crate::redact::watch::secrets(&cluster.client, &cluster.scope, crate::redact::gate(), shutdown);
    if !watch.settled(SECRET_WATCH_WAIT).await {
        tracing::warn!(
            wait_seconds = SECRET_WATCH_WAIT.as_secs(),
            "Secret values not listed yet; their values are scrubbed from when they arrive"
        );
    }
    watch
}

/// Prompts for a command that can diagnose without them (the built-in steps stand in);
/// `kubemedic run` and `kubemedic mcp` require the directory.
fn prompts_or_builtin(dir: &Path) -> Result<Catalog, crate::prompts::PromptError> {
    if dir.is_dir() {
        Catalog::load(dir)
    } else {
        tracing::warn!(dir = %dir.display(), "prompts directory not found; built-in steps only");
        Ok(Catalog::default())
    }
}

/// With `auth.impersonate`, clients that act as the callers, over the cluster's `kube_config`.
fn impersonation(config: &Config, kube_config: &kube::Config) -> Option<Arc<crate::cluster::Impersonation>> {
    config.auth.impersonate.then(|| Arc::new(crate::cluster::Impersonation::new(kube_config.clone())))
}

/// kubemedic's tools as the MCP server offers them, each part from its own config section.
fn tools(
    config: &Config,
    (cluster, impersonation): (Cluster, Option<Arc<crate::cluster::Impersonation>>),
    store: Option<Arc<dyn Store>>,
    approvals: Option<Arc<dyn ProposalSink>>,
    audit: AuditLog,
) -> Result<Tools, crate::redact::fingerprint::FingerprintError> {
    let key = crate::redact::fingerprint::FingerprintKey::load_or_create(&config.state_dir)?;
    let mut tools = Tools::new(cluster, store, audit)
        .with_fingerprint_key(key)
        .with_policy(config.policy.clone(), config.approvals.ttl_seconds)
        .with_drift(config.drift.clone());
    if let Some(impersonation) = impersonation {
        tools = tools.with_impersonation(impersonation);
    }
    Ok(match approvals {
        Some(a) => tools.with_approvals(a),
        None => tools,
    })
}

/// `kubemedic run`: see [`run::run`].
pub async fn run(config: Config) -> Result<ExitCode, AppError> {
    run::run(config).await
}

/// `kubemedic mcp`: MCP over stdio as the configured local user and role.
/// stdout carries only MCP messages; logs go to stderr. `read_only` (or
/// `mcp.read_only`) leaves the mutating tools out.
pub async fn mcp_stdio(config: Config, read_only: bool) -> Result<ExitCode, AppError> {
    use rmcp::ServiceExt as _;
    let prompts = Catalog::load(&config.prompts_dir)?;
    let audit = AuditLog::open(&config.state_dir)?;
    // With NATS configured, the same JetStream KV store as `kubemedic run` (shared, so incidents
    // and proposals made here are the daemon's too). The embedded store is single-writer: while
    // `kubemedic run` holds it, this process has no store and serves cluster reads only.
    let store: Option<Arc<dyn Store>> = match &config.nats {
        Some(nats) => {
            let client = crate::bus::connect(nats).await?;
            let js = async_nats::jetstream::new(client);
            Some(Arc::new(crate::store::nats::NatsStore::open(js, crate::store::nats::DEFAULT_BUCKET).await?))
        }
        None => match crate::store::redb::RedbStore::open(&config.state_dir) {
            Ok(s) => Some(Arc::new(s)),
            Err(err) => {
                tracing::warn!(error = %err, "no state store: incidents, proposals and mutating tools are unavailable");
                None
            }
        },
    };
    let read_only = read_only || config.mcp.read_only;
    // The embedded store is this process's alone while it runs: what an earlier `kubemedic mcp`
    // left unfinished (a client closing it mid-verification) is finished here. A shared NATS
    // store is resumed by the daemon's replicas, whose claims this process must not race.
    let resume = store.is_some() && config.nats.is_none() && !read_only;
    let seal_key = crate::approvals::seal::ApprovalKey::load(&config.state_dir)?;
    // Approved proposals are applied in the background (a tool call returns once the approval
    // is recorded); when the client goes away, the applies in flight finish before exit.
    let applies_done = tokio_util::sync::CancellationToken::new();
    let mut applying = Vec::new();
    // The default cluster, then `clusters:`; each with its own approvals service over the one
    // store (a proposal names its cluster).
    let mut served = Vec::new();
    for cluster_config in std::iter::once(&config.cluster).chain(&config.clusters) {
        let (cluster, kube_config) = Cluster::connect_with_config(cluster_config).await?;
        let impersonation = impersonation(&config, &kube_config);
        watch_secrets(&cluster, applies_done.clone()).await;
        let approvals: Option<Arc<dyn ProposalSink>> = store.clone().map(|store| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut a = Approvals::new(store, cluster.clone(), None, config.approvals.clone())
                .with_seal_key(seal_key.clone())
                .with_audit(audit.clone())
                .with_policy(config.policy.clone())
                .with_applies(tx);
            if let Some(i) = &impersonation {
                a = a.with_impersonation(i.clone());
            }
            let a = Arc::new(a);
            applying.push(tokio::spawn(a.clone().serve_applies(rx, applies_done.clone())));
            if resume {
                let a = a.clone();
                applying.push(tokio::spawn(async move {
                    match a.resume_applies().await {
                        Ok(done) if !done.is_empty() => {
                            tracing::info!(proposals = done.len(), "finished approved changes an earlier run left")
                        }
                        Ok(_) => {}
                        Err(err) => tracing::error!(
                            error = %crate::model::error::error_chain(&err),
                            "cannot resume approved changes an earlier run left"
                        ),
                    }
                }));
            }
            a as Arc<dyn ProposalSink>
        });
        served.push(tools(&config, (cluster, impersonation), store.clone(), approvals, audit.clone())?);
    }
    let default = served.remove(0);
    let server = crate::mcp::build_server(default, prompts)?
        .with_more_clusters(served)?
        .with_max_result_bytes(config.mcp.max_result_bytes)
        .read_only(read_only);
    let caller =
        crate::tools::Caller::new(&config.auth.stdio_user, config.auth.stdio_role, crate::tools::Transport::Stdio)
            .with_groups(config.auth.stdio_groups.clone());
    tracing::info!(user = %caller.user, role = ?caller.role, read_only, clusters = 1 + config.clusters.len(), "serving MCP on stdio");
    let service = server.with_caller(caller).serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    applies_done.cancel();
    for task in applying {
        let _ = task.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Options of `kubemedic demo`.
pub struct DemoOptions {
    pub yes: bool,
    pub only: Vec<String>,
    pub scenarios: PathBuf,
    /// The namespace the scenarios are created in (default `kubemedic-demo`).
    pub namespace: Option<String>,
}

/// `kubemedic demo`.
pub async fn demo(config: Config, options: DemoOptions) -> Result<ExitCode, AppError> {
    let files = demo::select(&options.scenarios, &options.only)?;
    let prompts = Arc::new(prompts_or_builtin(&config.prompts_dir)?);
    let cluster = Cluster::connect(&config.cluster).await?;
    watch_secrets(&cluster, tokio_util::sync::CancellationToken::new()).await;
    let deps = Deps::new(cluster.clone(), config.policy.clone(), config.agent.clone(), prompts)?;
    let store: Arc<dyn Store> = Arc::new(crate::store::redb::RedbStore::open(&config.state_dir.join("demo"))?);
    let audit = AuditLog::open(&config.state_dir)?;
    let (progress, verifying) = tokio::sync::watch::channel(String::new());
    let approvals = Arc::new(
        Approvals::new(store, cluster.clone(), None, config.approvals.clone())
            .with_policy(config.policy.clone())
            .with_audit(audit)
            .with_progress(progress),
    );
    let namespace = options.namespace.unwrap_or_else(|| demo::NAMESPACE.to_owned());
    let cx = demo::Context { deps: &deps, config: &config.approvals, cluster, approvals, verifying, namespace };
    let rows = demo::run(cx, files, options.yes).await?;
    println!("\n{}", demo::table(&rows));
    let failed = rows.iter().any(|r| r.decision == "approved" && !r.verified);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Options of `kubemedic eval`.
pub struct EvalOptions {
    pub scenarios: PathBuf,
    pub only: Vec<String>,
    /// Scenarios run at the same time.
    pub jobs: usize,
    /// Keep each scenario's namespace afterwards.
    pub keep: bool,
    /// Exit non-zero when fewer than this share (percent) of scenarios pass.
    pub min_pass: f64,
    pub json: bool,
}

/// `kubemedic eval`: the diagnosis scorecard over a directory of scenarios.
pub async fn eval(config: Config, options: EvalOptions) -> Result<ExitCode, AppError> {
    let files = eval::select(&options.scenarios, &options.only)?;
    let prompts = Arc::new(prompts_or_builtin(&config.prompts_dir)?);
    let cluster = Cluster::connect(&config.cluster).await?;
    watch_secrets(&cluster, tokio_util::sync::CancellationToken::new()).await;
    let deps = Deps::new(cluster.clone(), config.policy.clone(), config.agent.clone(), prompts)?;
    let store: Arc<dyn Store> = Arc::new(crate::store::redb::RedbStore::open(&config.state_dir.join("eval"))?);
    let audit = AuditLog::open(&config.state_dir)?;
    let approvals = Arc::new(
        Approvals::new(store, cluster.clone(), None, config.approvals.clone())
            .with_policy(config.policy.clone())
            .with_audit(audit),
    );
    let bench = eval::Bench { deps, cluster, approvals, keep: options.keep };
    let rows = eval::run(&bench, files, options.jobs).await;
    // The sink: root causes are cluster text.
    let gate = crate::redact::gate();
    if options.json {
        println!("{}", gate.text(&serde_json::to_string_pretty(&rows)?));
    } else {
        println!("{}", gate.text(&eval::table(&rows)));
    }
    Ok(if eval::percent(&rows) + 1e-9 < options.min_pass { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `kubemedic diagnose`.
pub async fn diagnose(config: Config, target: &str, json: bool) -> Result<ExitCode, AppError> {
    let workload = crate::agent::parse_target(target)?;
    let prompts = prompts_or_builtin(&config.prompts_dir)?;
    let cluster = Cluster::connect(&config.cluster).await?;
    watch_secrets(&cluster, tokio_util::sync::CancellationToken::new()).await;
    let mut deps = Deps::new(cluster.clone(), config.policy.clone(), config.agent.clone(), Arc::new(prompts.clone()))?;
    if config.agent.runner == crate::agent::RunnerKind::Llm {
        let audit = AuditLog::open(&config.state_dir)?;
        let tools = Tools::new(cluster, None, audit).with_policy(config.policy.clone(), config.approvals.ttl_seconds);
        deps = deps.with_server(&crate::mcp::build_server(tools, prompts)?);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let request = crate::agent::Request::workload(workload, &format!("cli:{user}"));
    // The sink: what this command prints leaves through the redaction gate.
    let diagnosis = crate::redact::gate().typed(crate::agent::run(&deps, &request).await?);
    if json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print!("{}", diagnosis.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `kubemedic drift`.
/// Prints the report (Markdown or JSON) on stdout; exit 0 whether or not anything drifted.
pub async fn drift(config: Config, json: bool) -> Result<ExitCode, AppError> {
    let cluster = Cluster::connect(&config.cluster).await?;
    watch_secrets(&cluster, tokio_util::sync::CancellationToken::new()).await;
    let report = crate::drift::report(&cluster, &config.drift).await?;
    let out = if json { serde_json::to_string_pretty(&report)? } else { report.to_markdown() };
    println!("{}", crate::redact::gate().text(&out));
    Ok(ExitCode::SUCCESS)
}

/// `kubemedic validate`.
pub async fn validate(config: Config, rules: Option<PathBuf>, prompts: Option<PathBuf>) -> Result<ExitCode, AppError> {
    let rules_dir = rules.unwrap_or_else(|| config.rules_dir.clone());
    let prompts_dir = prompts.unwrap_or_else(|| config.prompts_dir.clone());
    let tools: Vec<&str> = crate::tools::TOOLS.iter().map(|t| t.name).collect();
    let mut report = crate::rules::check::check(&rules_dir, &prompts_dir, Some(&tools));
    report.problems.extend(config.problems());
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    if report.ok() {
        println!(
            "ok: {} rules in {}, {} prompts in {}",
            report.rules,
            rules_dir.display(),
            report.prompts,
            prompts_dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s) found", report.problems.len());
        Ok(ExitCode::FAILURE)
    }
}

/// `kubemedic approve|reject`: decide through the daemon's authenticated API
/// (bearer token from `KUBEMEDIC_TOKEN`), then follow the proposal until it settles.
/// Exit 0 when it ends as decided (verified, or rejected), 1 otherwise.
pub async fn decide(url: &str, proposal: &str, approve: bool) -> Result<ExitCode, AppError> {
    use crate::model::proposal::{Proposal, ProposalState};
    let token = std::env::var("KUBEMEDIC_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or("KUBEMEDIC_TOKEN is not set (a token with the approver role)")?;
    if proposal.is_empty() || !proposal.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("invalid proposal id {proposal:?}").into());
    }
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let base = url.trim_end_matches('/');
    let verb = if approve { "approve" } else { "reject" };
    // Read what is being decided and send its digest: the daemon refuses the decision if the
    // stored change is no longer the one shown here.
    let resp = http.get(format!("{base}/api/proposals/{proposal}")).bearer_auth(token.trim()).send().await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let msg = body.get("error").and_then(|e| e.as_str()).unwrap_or("no detail");
        return Err(format!("cannot read proposal {proposal} ({status}): {msg}").into());
    }
    let shown: Proposal = resp.json().await?;
    let digest = shown
        .digest
        .clone()
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("the proposal carries no valid content digest; refusing to decide blind")?;
    let t = &shown.target;
    println!(
        "proposal {} ({}): {} {}/{} in {}; digest {digest}\n{}",
        shown.id,
        shown.state.as_str(),
        t.kind,
        t.namespace,
        t.name,
        shown.cluster,
        shown.diff
    );
    let resp = http
        .post(format!("{base}/api/proposals/{proposal}/{verb}?digest={digest}"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = body.get("error").and_then(|e| e.as_str()).unwrap_or("no detail");
        return Err(format!("{verb} refused ({status}): {msg}").into());
    }
    let mut p: Proposal = serde_json::from_value(body)?;
    println!("proposal {} {} by you", p.id, p.state.as_str());
    let mut last = p.state;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    while !p.state.is_terminal() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let resp = http.get(format!("{base}/api/proposals/{proposal}")).bearer_auth(token.trim()).send().await?;
        if !resp.status().is_success() {
            return Err(format!("cannot follow proposal {proposal}: HTTP {}", resp.status()).into());
        }
        p = resp.json().await?;
        if p.state != last {
            println!(
                "proposal {} {}{}",
                p.id,
                p.state.as_str(),
                p.outcome.as_deref().map(|o| format!(": {o}")).unwrap_or_default()
            );
            last = p.state;
        }
    }
    let ok = matches!((approve, p.state), (true, ProposalState::Verified) | (false, ProposalState::Rejected));
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_commands_are_quiet_unless_asked() {
        assert_eq!(Verbosity::for_command(false, 0), Verbosity::Quiet);
        assert_eq!(Verbosity::for_command(false, 1), Verbosity::Info);
        assert_eq!(Verbosity::for_command(false, 2), Verbosity::Debug);
        assert_eq!(Verbosity::for_command(true, 0), Verbosity::Info);
        assert_eq!(Verbosity::for_command(true, 1), Verbosity::Debug);
        assert_eq!(Verbosity::Quiet.directives(), "warn");
        for v in [Verbosity::Quiet, Verbosity::Info, Verbosity::Debug] {
            assert!(tracing_subscriber::EnvFilter::try_new(v.directives()).is_ok(), "{v:?}");
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some("".as_ref())));
        assert!(!log_colour(true, Some("1".as_ref())));
        assert!(!log_colour(false, None));
    }
}
