//! The `kubemedic` binary: parse the command line, load and check the
//! config, start telemetry, hand over to [`kubemedic::app`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kubemedic::app;
use kubemedic::config::Config;

/// Exit code for a usage or configuration error (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "kubemedic",
    version,
    about = "Kubernetes remediation daemon: watch, diagnose, propose, approve, apply, verify"
)]
struct Cli {
    /// Configuration file (YAML).
    #[arg(long, short, global = true, env = "KUBEMEDIC_CONFIG")]
    config: Option<PathBuf>,
    /// Kubeconfig file (overrides `cluster.kubeconfig`; default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// More log lines: `-v` info, `-vv` debug. One-shot commands log warnings only by
    /// default, `run` and `mcp` info; `RUST_LOG`, when set, decides instead.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
    Markdown,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: watchers, alerts, agent, Slack, MCP over HTTP, drift cron.
    Run,
    /// MCP over stdio, for Claude Desktop / Cursor.
    Mcp {
        /// Offer only the read tools: no proposal, approval or apply (also `mcp.read_only`).
        #[arg(long)]
        read_only: bool,
    },
    /// The whole loop on the local control plane with simulated nodes.
    Demo {
        /// Approve every proposal without asking.
        #[arg(long)]
        yes: bool,
        /// Only these scenarios (file stems under the scenarios directory).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Directory of scenario manifests.
        #[arg(long, default_value = "tests/scenarios")]
        scenarios: PathBuf,
        /// Namespace to create the scenarios in (default kubemedic-demo).
        #[arg(long, value_parser = namespace_name)]
        namespace: Option<String>,
    },
    /// The diagnosis scorecard: run every scenario with an `Expect` document, each in its own
    /// namespace, apply the first proposal, check it healed; print a table.
    Eval {
        /// Directory of scenario manifests.
        #[arg(default_value = "tests/scenarios")]
        scenarios: PathBuf,
        /// Only these scenarios (file stems).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Scenarios run at the same time.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Keep each scenario's namespace afterwards (to look at a miss).
        #[arg(long)]
        keep: bool,
        /// Exit 1 when fewer than this percentage of scenarios pass.
        #[arg(long, default_value_t = 100.0)]
        min_pass: f64,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Diagnose one workload now: NAMESPACE/KIND/NAME.
    Diagnose {
        target: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Write a drift report now.
    Drift {
        #[arg(long, value_enum, default_value = "markdown")]
        output: Output,
    },
    /// Check rules and prompts (for CI / GitOps review).
    Validate {
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
    },
    /// Approve a pending proposal.
    Approve {
        proposal: String,
        /// Daemon URL.
        #[arg(long, env = "KUBEMEDIC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Reject a pending proposal.
    Reject {
        proposal: String,
        #[arg(long, env = "KUBEMEDIC_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

/// A namespace name is a DNS label: clap refuses anything else with this message.
fn namespace_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok { Ok(s.to_owned()) } else { Err(format!("{s:?} is not a namespace name (lowercase letters, digits, '-')")) }
}

fn main() -> ExitCode {
    // reqwest is built without a default TLS provider; kube and async-nats use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(mut c) => {
            if let Some(path) = cli.kubeconfig {
                c.cluster.kubeconfig = Some(path);
            }
            c
        }
        Err(err) => {
            eprintln!("kubemedic: {}", app::error_chain(&err));
            return ExitCode::from(EX_USAGE);
        }
    };
    let one_cluster = matches!(
        cli.command,
        Command::Run | Command::Demo { .. } | Command::Eval { .. } | Command::Diagnose { .. } | Command::Drift { .. }
    );
    if !config.clusters.is_empty() && one_cluster {
        eprintln!(
            "kubemedic: `clusters:` is for `kubemedic mcp`; this command serves one cluster (`cluster:`). Run one daemon per cluster (they can share one NATS; see README \"Several clusters\")."
        );
        return ExitCode::from(EX_USAGE);
    }
    let long_running = matches!(cli.command, Command::Run | Command::Mcp { .. });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("kubemedic: cannot start runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry = app::init_telemetry(app::Verbosity::for_command(long_running, cli.verbose));
        let result = match cli.command {
            Command::Run => app::run(config).await,
            Command::Mcp { read_only } => app::mcp_stdio(config, read_only).await,
            Command::Demo { yes, only, scenarios, namespace } => {
                app::demo(config, app::DemoOptions { yes, only, scenarios, namespace }).await
            }
            Command::Eval { scenarios, only, jobs, keep, min_pass, output } => {
                let json = matches!(output, Output::Json);
                app::eval(config, app::EvalOptions { scenarios, only, jobs, keep, min_pass, json }).await
            }
            Command::Diagnose { target, output } => {
                app::diagnose(config, &target, matches!(output, Output::Json)).await
            }
            Command::Drift { output } => app::drift(config, matches!(output, Output::Json)).await,
            Command::Validate { rules, prompts } => app::validate(config, rules, prompts).await,
            Command::Approve { proposal, url } => app::decide(&url, &proposal, true).await,
            Command::Reject { proposal, url } => app::decide(&url, &proposal, false).await,
        };
        telemetry.shutdown();
        match result {
            Ok(code) => code,
            Err(err) => {
                // An error chain can carry cluster text: it leaves through the gate too.
                eprintln!("kubemedic: {}", kubemedic::redact::gate().text(&app::error_chain(err.as_ref())));
                // No cluster to talk to is a configuration error, like an invalid config file.
                let unconfigured = matches!(
                    err.downcast_ref::<kubemedic::cluster::ClusterError>(),
                    Some(kubemedic::cluster::ClusterError::NotConfigured { .. })
                );
                if unconfigured { ExitCode::from(EX_USAGE) } else { ExitCode::FAILURE }
            }
        }
    })
}
