//! The event bus: every incident, proposal, decision, drift report and
//! audit record is published on `kubemedic.<suffix>` subjects.
//!
//! There is always a bus. In-process subscribers ([`Bus::subscribe`]) see
//! every event in both modes; with NATS configured the same events also go
//! to core NATS so other replicas and outside consumers can follow them.
//! Incidents that need diagnosing do not travel on the bus but on the
//! [`IncidentQueue`] (a JetStream work queue), which delivers each to one
//! replica only.

pub mod queue;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use queue::{Delivery, Enqueued, IncidentQueue, QueueError};

/// Subject prefix of every event.
pub const SUBJECT_PREFIX: &str = "kubemedic";

/// NATS JetStream settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// NATS credentials file (`.creds`: JWT + nkey seed). At most one of `credentials_file`,
    /// `nkey_seed_file`, `user` (with `password_env`) and `token_env` may be set; with none,
    /// the `NATS_TOKEN` env var is used when set.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// File holding an nkey user seed (`SU…`).
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Env var holding the password of `user` (never the password itself).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Env var holding a token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// JetStream stream that holds incidents waiting for diagnosis (work-queue retention).
    #[serde(default = "default_stream")]
    pub incident_stream: String,
    /// Subject the incident stream binds (must not overlap another stream's subjects).
    #[serde(default = "default_subject")]
    pub incident_subject: String,
    /// Durable pull consumer shared by all replicas.
    #[serde(default = "default_consumer")]
    pub incident_consumer: String,
    /// Seconds during which a second copy of the same incident (same fingerprint) is dropped.
    #[serde(default = "default_dedup")]
    pub dedup_window_seconds: u64,
    /// Seconds a replica has to diagnose an incident before it is handed to another.
    #[serde(default = "default_ack_wait")]
    pub ack_wait_seconds: u64,
    /// How often an incident is delivered before it is given up on.
    #[serde(default = "default_max_deliver")]
    pub max_deliver: i64,
    /// Leader election (Kubernetes Lease) for watchers and the drift cron.
    #[serde(default)]
    pub leader_election: crate::leader::LeaderConfig,
}

fn default_stream() -> String {
    "KUBEMEDIC_INCIDENTS".into()
}
fn default_subject() -> String {
    queue::INCIDENT_SUBJECT.into()
}
fn default_consumer() -> String {
    "kubemedic-diagnose".into()
}
fn default_dedup() -> u64 {
    120
}
fn default_ack_wait() -> u64 {
    300
}
fn default_max_deliver() -> i64 {
    5
}

impl NatsConfig {
    /// Settings for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials_file: None,
            nkey_seed_file: None,
            user: None,
            password_env: None,
            token_env: None,
            incident_stream: default_stream(),
            incident_subject: default_subject(),
            incident_consumer: default_consumer(),
            dedup_window_seconds: default_dedup(),
            ack_wait_seconds: default_ack_wait(),
            max_deliver: default_max_deliver(),
            leader_election: crate::leader::LeaderConfig::default(),
        }
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.trim().is_empty() {
            return Err("nats.url must not be empty".into());
        }
        if self.incident_stream.is_empty() || self.incident_stream.contains(['.', ' ', '*', '>']) {
            return Err("nats.incident_stream must be a name without '.', ' ', '*' or '>'".into());
        }
        if self.incident_subject.is_empty() || self.incident_subject.contains([' ', '*', '>']) {
            return Err("nats.incident_subject must be a literal subject".into());
        }
        let methods = [
            self.credentials_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some(),
            self.token_env.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "nats: set at most one of credentials_file, nkey_seed_file, user (+ password_env) and token_env".into(),
            );
        }
        if self.user.is_some() != self.password_env.is_some() {
            return Err("nats.user and nats.password_env go together".into());
        }
        if self.dedup_window_seconds == 0 || self.ack_wait_seconds == 0 {
            return Err("nats.dedup_window_seconds and nats.ack_wait_seconds must be > 0".into());
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return Err("nats.max_deliver must be > 0 (or -1 for unlimited)".into());
        }
        self.leader_election.validate()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot read NATS credentials file {path}")]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS credential env var {0} is not set or empty")]
    MissingEnv(String),
    #[error("invalid bus subject suffix {0:?} (dot-separated tokens, no spaces or wildcards)")]
    Subject(String),
    #[error("cannot encode event for {subject}")]
    Encode {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot publish {subject} to NATS")]
    Publish {
        subject: String,
        #[source]
        source: async_nats::PublishError,
    },
}

/// Connect to NATS as configured (shared by the bus, the incident queue and the NATS store).
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, BusError> {
    let mut options = async_nats::ConnectOptions::new().name("kubemedic").connection_timeout(Duration::from_secs(5));
    let env = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| BusError::MissingEnv(var.to_owned()))
    };
    if let Some(path) = &config.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| BusError::Credentials { path: path.clone(), source })?;
    } else if let Some(path) = &config.nkey_seed_file {
        let seed =
            std::fs::read_to_string(path).map_err(|source| BusError::Credentials { path: path.clone(), source })?;
        options = options.nkey(seed.trim().to_owned());
    } else if let (Some(user), Some(var)) = (&config.user, &config.password_env) {
        options = options.user_and_password(user.clone(), env(var)?);
    } else if let Some(var) = &config.token_env {
        options = options.token(env(var)?);
    } else if let Ok(token) = std::env::var("NATS_TOKEN")
        && !token.is_empty()
    {
        options = options.token(token);
    }
    options.connect(config.url.as_str()).await.map_err(|source| BusError::Connect { url: config.url.clone(), source })
}

/// One event as in-process subscribers see it.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Full subject, e.g. `kubemedic.incident.opened`.
    pub subject: String,
    /// JSON payload.
    pub payload: Bytes,
}

impl BusMessage {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// The event bus (cheap to clone).
#[derive(Clone, Debug)]
pub struct Bus {
    local: broadcast::Sender<BusMessage>,
    nats: Option<async_nats::Client>,
}

/// In-process subscribers that fall this far behind lose the oldest events (and are told so).
const LOCAL_CAPACITY: usize = 1024;

impl Default for Bus {
    fn default() -> Self {
        Self::local()
    }
}

impl Bus {
    /// In-process only (no NATS configured).
    pub fn local() -> Self {
        Self { local: broadcast::channel(LOCAL_CAPACITY).0, nats: None }
    }

    /// In-process and NATS.
    pub fn with_nats(client: async_nats::Client) -> Self {
        Self { local: broadcast::channel(LOCAL_CAPACITY).0, nats: Some(client) }
    }

    /// The NATS client when clustered.
    pub fn nats(&self) -> Option<&async_nats::Client> {
        self.nats.as_ref()
    }

    /// Every event published through this `Bus` (and its clones) from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.local.subscribe()
    }

    /// `kubemedic.<suffix>` for a valid suffix.
    pub fn subject(subject_suffix: &str) -> Result<String, BusError> {
        let valid = !subject_suffix.is_empty()
            && subject_suffix
                .split('.')
                .all(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic() && c != '*' && c != '>'));
        if valid {
            Ok(format!("{SUBJECT_PREFIX}.{subject_suffix}"))
        } else {
            Err(BusError::Subject(subject_suffix.to_owned()))
        }
    }

    /// Publish `payload` as JSON on `kubemedic.<subject_suffix>` (e.g. `incident.opened`,
    /// `proposal.approved`, `drift.report`, `audit`).
    pub async fn publish(&self, subject_suffix: &str, payload: &impl Serialize) -> Result<(), BusError> {
        let subject = Self::subject(subject_suffix)?;
        // The sink: every event leaves through the redaction gate.
        let payload = crate::redact::gate()
            .json(payload)
            .and_then(|v| serde_json::to_vec(&v))
            .map(Bytes::from)
            .map_err(|source| BusError::Encode { subject: subject.clone(), source })?;
        if let Some(client) = &self.nats {
            client
                .publish(subject.clone(), payload.clone())
                .await
                .map_err(|source| BusError::Publish { subject: subject.clone(), source })?;
        }
        // No in-process subscriber is not an error.
        let _ = self.local.send(BusMessage { subject, payload });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_to_subscribers() {
        let bus = Bus::local();
        let mut rx = bus.subscribe();
        bus.publish("drift.report", &serde_json::json!({"drifted": 2})).await.unwrap();
        let msg = rx.recv().await.unwrap();
        assert_eq!(msg.subject, "kubemedic.drift.report");
        assert_eq!(msg.json::<serde_json::Value>().unwrap()["drifted"], 2);
        // Publishing without subscribers is fine.
        Bus::local().publish("audit", &1).await.unwrap();
    }

    #[test]
    fn subject_suffix_is_checked() {
        assert_eq!(Bus::subject("proposal.approved").unwrap(), "kubemedic.proposal.approved");
        for bad in ["", "a..b", "a.*", ">", "has space", ".x"] {
            assert!(matches!(Bus::subject(bad), Err(BusError::Subject(_))), "{bad:?}");
        }
    }

    #[test]
    fn nats_config_defaults_and_checks() {
        let c: NatsConfig = serde_yaml_ng::from_str("url: nats://127.0.0.1:4222\n").unwrap();
        assert_eq!(c.incident_stream, "KUBEMEDIC_INCIDENTS");
        assert!(c.validate().is_ok());
        let c = NatsConfig { incident_stream: "a.b".into(), ..NatsConfig::new("nats://x") };
        assert!(c.validate().is_err());
        assert!(serde_yaml_ng::from_str::<NatsConfig>("url: x\nstreem: y\n").is_err());
    }

    #[test]
    fn nats_credentials_are_one_method_and_passwords_come_from_env() {
        let parse = |y: &str| serde_yaml_ng::from_str::<NatsConfig>(y).unwrap().validate();
        parse("url: nats://x\nuser: km\npassword_env: NATS_PASSWORD\n").unwrap();
        parse("url: nats://x\ntoken_env: NATS_TOKEN\n").unwrap();
        parse("url: nats://x\nnkey_seed_file: /s\n").unwrap();
        assert!(parse("url: nats://x\nuser: km\n").unwrap_err().contains("go together"));
        assert!(parse("url: nats://x\nuser: km\npassword_env: P\ntoken_env: T\n").unwrap_err().contains("at most one"));
        assert!(
            serde_yaml_ng::from_str::<NatsConfig>("url: x\npassword: hunter2\n").is_err(),
            "no password in the file"
        );
    }
}
