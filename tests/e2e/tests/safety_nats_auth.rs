//! NATS credentials: a nats-server started here on a free port requires user/password; the
//! daemon's connection fails with a clear error without them (or with a wrong password) and
//! works with them, the password read from the env var the config names.

use std::time::Duration;

use kubemedic::bus::{NatsConfig, connect};

#[tokio::test]
async fn a_nats_server_requiring_a_password_refuses_anonymous_and_accepts_the_configured_user() {
    e2e::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::daemon::free_port();
    let conf = dir.path().join("nats.conf");
    // The password is the value of an env var this process already has (setting one would
    // need `unsafe`): the config names the variable, kubemedic reads it.
    let password = std::env::var("HOME").expect("HOME");
    assert!(!password.contains('"'));
    std::fs::write(
        &conf,
        format!("listen: 127.0.0.1:{port}\nauthorization {{\n  user: kubemedic\n  password: \"{password}\"\n}}\n"),
    )
    .unwrap();
    let server = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
    let mut child = tokio::process::Command::new(server)
        .args(["-c", conf.to_str().unwrap()])
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server on PATH (or NATS_SERVER_BIN)");
    let url = format!("nats://127.0.0.1:{port}");
    e2e::wait::until(Duration::from_secs(10), "nats-server listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;

    let anonymous = NatsConfig::new(url.clone());
    let err = kubemedic::app::error_chain(&connect(&anonymous).await.unwrap_err());
    assert!(err.contains("cannot connect to NATS") && err.to_lowercase().contains("author"), "{err}");

    let wrong = NatsConfig {
        user: Some("kubemedic".into()),
        password_env: Some("CARGO_MANIFEST_DIR".into()),
        ..NatsConfig::new(url.clone())
    };
    assert!(connect(&wrong).await.is_err(), "a wrong password is refused");
    let missing = NatsConfig {
        user: Some("kubemedic".into()),
        password_env: Some("KM_E2E_NATS_UNSET".into()),
        ..NatsConfig::new(url.clone())
    };
    let err = connect(&missing).await.unwrap_err().to_string();
    assert!(err.contains("KM_E2E_NATS_UNSET"), "{err}");

    let good = NatsConfig {
        user: Some("kubemedic".into()),
        password_env: Some("HOME".into()),
        ..NatsConfig::new(url.clone())
    };
    let client = connect(&good).await.expect("connects with user/password");
    client.publish("kubemedic.e2e.auth", "ok".into()).await.unwrap();
    client.flush().await.unwrap();
    child.kill().await.unwrap();
}
