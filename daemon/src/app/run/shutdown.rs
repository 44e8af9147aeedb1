//! Signals in, and the bounded drain out.

use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long runs in flight (diagnoses, applies) may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(20);

/// SIGTERM or SIGINT cancels the root token once; a second one exits at once.
pub(super) fn spawn_signal_handler(token: CancellationToken) {
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

/// This replica's name in proposals' history: the pod name when in a cluster.
pub(super) fn replica_name() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("kubemedic-{}", std::process::id()))
}

/// After the root token is cancelled: let the tasks finish within [`GRACE`], then release
/// the Lease and close the HTTP server.
pub(super) async fn drain(
    mut tasks: JoinSet<()>,
    leader: Option<JoinHandle<()>>,
    mut http: JoinHandle<std::io::Result<()>>,
) {
    tracing::info!(grace_seconds = GRACE.as_secs(), "shutting down: intake stopped, finishing runs in flight");
    // One deadline for everything: an idle daemon is done in milliseconds, a busy one waits
    // for its runs at most GRACE (then at most a second each for the Lease release and HTTP close).
    let deadline = tokio::time::Instant::now() + GRACE;
    let drained = tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            tasks = tasks.len(),
            "grace period over; abandoning runs still in flight (their incidents are redelivered)"
        );
        tasks.abort_all();
    }
    let at_least = |floor: Duration| deadline.max(tokio::time::Instant::now() + floor);
    if let Some(task) = leader {
        // Releasing the Lease lets another replica take over at once instead of after its expiry.
        let _ = tokio::time::timeout_at(at_least(Duration::from_secs(1)), task).await;
    }
    // MCP sessions end with the shutdown token; a request still open past the deadline is cut.
    match tokio::time::timeout_at(at_least(Duration::from_secs(1)), &mut http).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "HTTP server stopped with an error"),
        Ok(Err(err)) => tracing::warn!(error = %err, "HTTP server task failed"),
        Err(_) => {
            tracing::warn!("HTTP connections still open after the grace period; closing them");
            http.abort();
        }
    }
}
