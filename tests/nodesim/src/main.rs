//! nodesim: simulated kubelets for the local control plane. See README.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use nodesim::machine::Backoff;
use nodesim::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Plays the kubelets of simulated nodes against a real control plane.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Number of simulated nodes (sim-node-0..N-1).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Node name prefix.
    #[arg(long, default_value = "sim-node")]
    node_prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Port of the kubelet log endpoint on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    kubelet_port: u16,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct Common {
    /// Kubeconfig of the cluster to join.
    #[arg(long, env = "KUBECONFIG", global = true)]
    kubeconfig: Option<PathBuf>,
    /// Registry file (images the simulated registry holds); default: the compiled-in registry.yaml.
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    /// Concurrent API calls (status patches, events, reads).
    #[arg(long, default_value_t = 32, global = true)]
    concurrency: usize,
    /// First back-off (CrashLoopBackOff, ImagePullBackOff, config retries), in milliseconds.
    #[arg(long, default_value_t = 1000, global = true)]
    backoff_base_ms: u64,
    /// Longest back-off, in milliseconds (kubelet: 5 minutes).
    #[arg(long, default_value_t = 8000, global = true)]
    backoff_max_ms: u64,
    /// Record only Warning events (skip Pulled/Created/Started/Killing).
    #[arg(long, global = true)]
    warnings_only: bool,
    /// Stamp new events with `eventTime` (microseconds, taken as the create request leaves), so a
    /// watcher can measure how long the apiserver took to deliver them. Real kubelets do not.
    #[arg(long, global = true)]
    event_time: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure how fast pods reach their derived status on fresh bench nodes, then clean up.
    Bench {
        /// Simulated nodes for the benchmark (bench-node-*).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Pods in total.
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        /// Percentage of broken pods (half bad image, half missing Secret key).
        #[arg(long, default_value_t = 10)]
        broken_percent: u32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_seconds: u64,
    },
}

async fn client(path: &PathBuf) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("read kubeconfig {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("use kubeconfig {}", path.display()))?;
    Client::try_from(cfg).context("build client")
}

fn shutdown_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let c = &cli.common;
    if c.backoff_base_ms == 0 || c.backoff_max_ms < c.backoff_base_ms {
        eprintln!("nodesim: --backoff-base-ms must be > 0 and <= --backoff-max-ms");
        std::process::exit(64);
    }
    let registry = match &c.registry {
        Some(p) => match Registry::load(p) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "nodesim: {e}: {}",
                    std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default()
                );
                std::process::exit(64);
            }
        },
        None => Registry::default_set(),
    };
    let opts = nodesim::Options {
        nodes: cli.nodes,
        node_prefix: cli.node_prefix.clone(),
        cpu: cli.cpu.clone(),
        memory: cli.memory.clone(),
        max_pods: cli.max_pods,
        kubelet_port: cli.kubelet_port,
        registry,
        backoff: Backoff {
            base: Duration::from_millis(c.backoff_base_ms),
            max: Duration::from_millis(c.backoff_max_ms),
        },
        concurrency: c.concurrency,
        normal_events: !c.warnings_only,
        event_time: c.event_time,
        ..nodesim::Options::default()
    };
    let Some(kubeconfig) = &c.kubeconfig else {
        eprintln!("nodesim: no cluster: pass --kubeconfig FILE or set KUBECONFIG");
        std::process::exit(64);
    };
    let client = client(kubeconfig).await?;
    let cancel = CancellationToken::new();
    shutdown_on_signal(cancel.clone());

    match cli.command {
        Some(Command::Bench { nodes, pods, broken_percent, timeout_seconds }) => {
            let b = nodesim::bench::BenchOptions {
                nodes,
                pods,
                broken_percent,
                timeout: Duration::from_secs(timeout_seconds),
            };
            let report = tokio::select! {
                r = nodesim::bench::run(client, opts, b) => r?,
                () = cancel.cancelled() => anyhow::bail!("interrupted"),
            };
            println!("{report}");
        }
        None => {
            let running = nodesim::start(client, opts, cancel.clone()).await?;
            let names: Vec<&str> = running.nodes.iter().map(|n| n.name.as_str()).collect();
            println!(
                "nodesim ready: {} nodes ({}), kubelet endpoint https://127.0.0.1:{}",
                names.len(),
                names.join(", "),
                running.kubelet_port
            );
            cancel.cancelled().await;
            // Let pod tasks see the cancellation and drop their connections.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
