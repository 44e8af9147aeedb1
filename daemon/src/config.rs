//! The configuration file (YAML). How the process runs lives in flags and
//! standard env vars; what to remediate lives here and in rules/prompts.
//!
//! Every section denies unknown fields so a typo is an error, not a silently
//! ignored setting.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::cluster::ClusterConfig;
pub use crate::listener::HttpConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which cluster to talk to and what of it is visible.
    pub cluster: ClusterConfig,
    /// More clusters for `kubemedic mcp` (each with its own name, kubeconfig or context and
    /// scope): tools and resources take a `cluster` argument, default `cluster`. The daemon
    /// serves one cluster per replica set and refuses this.
    pub clusters: Vec<ClusterConfig>,
    /// Directory of rule files (`*.yaml`).
    pub rules_dir: PathBuf,
    /// Directory of prompt workflows (`*.md`).
    pub prompts_dir: PathBuf,
    /// Where the embedded store and the audit log live.
    pub state_dir: PathBuf,
    /// The HTTP listener (MCP, Alertmanager, Slack, metrics).
    pub http: HttpConfig,
    /// Who may call MCP tools and with which role.
    pub auth: crate::auth::AuthConfig,
    /// The MCP surface: result budget, read-only.
    pub mcp: crate::mcp::McpConfig,
    /// Alertmanager webhook receiver.
    pub alerts: crate::alerts::AlertsConfig,
    /// Cluster watchers.
    pub watch: crate::watch::WatchConfig,
    /// Which runner diagnoses incidents.
    pub agent: crate::agent::AgentConfig,
    /// What proposals may change.
    pub policy: crate::policy::PolicyConfig,
    /// Proposal expiry and approval paths.
    pub approvals: crate::approvals::ApprovalsConfig,
    /// Slack app; absent = no Slack.
    pub slack: Option<crate::slack::SlackConfig>,
    /// NATS JetStream; absent = embedded store, in-process queues, one replica.
    pub nats: Option<crate::bus::NatsConfig>,
    /// Drift report schedule and sources.
    pub drift: crate::drift::DriftConfig,
    /// The web UI under `/ui/`: sign-in, the external URL Slack links to.
    pub ui: crate::ui::UiConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Load from a file, or defaults when `path` is `None`. Relative
    /// directories are resolved against the current directory.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                serde_yaml_ng::from_str::<Config>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?
            }
            None => Config::default(),
        };
        if config.rules_dir.as_os_str().is_empty() {
            config.rules_dir = "rules".into();
        }
        if config.prompts_dir.as_os_str().is_empty() {
            config.prompts_dir = "prompts".into();
        }
        if config.state_dir.as_os_str().is_empty() {
            config.state_dir = ".kubemedic".into();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.name.trim().is_empty() {
            return Err(ConfigError::Invalid("cluster.name must not be empty".into()));
        }
        if self.http.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("http.max_body_bytes must be > 0".into()));
        }
        crate::names::namespace_list("cluster.namespaces", &self.cluster.namespaces)
            .and_then(|()| crate::names::namespace_list("cluster.exclude_namespaces", &self.cluster.exclude_namespaces))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut names = vec![self.cluster.name.as_str()];
        for (i, c) in self.clusters.iter().enumerate() {
            let name = c.name.trim();
            if name.is_empty() || name.contains(['/', '?', '&', '=', '#']) {
                return Err(ConfigError::Invalid(format!(
                    "clusters[{i}].name {:?} must be a non-empty name without / ? & = #",
                    c.name
                )));
            }
            if names.contains(&name) {
                return Err(ConfigError::Invalid(format!("clusters[{i}].name {name:?} is used twice")));
            }
            names.push(name);
            crate::names::namespace_list(&format!("clusters[{i}].namespaces"), &c.namespaces)
                .and_then(|()| {
                    crate::names::namespace_list(&format!("clusters[{i}].exclude_namespaces"), &c.exclude_namespaces)
                })
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.http.limits().validate().map_err(|e| ConfigError::Invalid(format!("http.{e}")))?;
        // Each section checks what serde cannot; the first problem stops start-up (exit 64).
        let invalid = |section: &str, e: String| ConfigError::Invalid(format!("{section}: {e}"));
        self.auth.validate().map_err(|e| invalid("auth", crate::model::error::error_chain(&e)))?;
        self.mcp.validate().map_err(|e| invalid("mcp", e))?;
        self.alerts.validate().map_err(|e| invalid("alerts", e))?;
        self.alerts.check_listener(self.http.listen).map_err(|e| invalid("alerts", e))?;
        self.agent.validate().map_err(|e| invalid("agent", e))?;
        self.policy.validate().map_err(|e| invalid("policy", e))?;
        self.approvals.validate().map_err(|e| invalid("approvals", e))?;
        self.drift.validate().map_err(|e| invalid("drift.schedule", crate::model::error::error_chain(&e)))?;
        self.ui.validate(&self.auth).map_err(|e| invalid("ui", e))?;
        if let Some(slack) = &self.slack {
            slack.validate().map_err(ConfigError::Invalid)?;
        }
        if let Some(nats) = &self.nats {
            nats.validate().map_err(|e| invalid("nats", e))?;
        }
        Ok(())
    }

    /// Every problem `kubemedic validate` reports about the configuration itself, as
    /// `config: section: reason` lines (validation on load stops at the first one).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = parse_cron(&self.drift.schedule) {
            problems.push(format!("config: drift.schedule: {e}"));
        }
        if let Err(e) = self.alerts.validate() {
            problems.push(format!("config: {e}"));
        }
        if self.watch.event_max_age_seconds == 0 {
            problems.push("config: watch.event_max_age_seconds must be > 0".into());
        }
        problems
    }
}

/// Parse a cron schedule the way the daemon does (five fields get a leading seconds field).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 { format!("0 {expr}") } else { expr.to_owned() };
    <cron::Schedule as std::str::FromStr>::from_str(&full).map_err(|e| format!("invalid cron schedule {expr:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_refused() {
        let err = serde_yaml_ng::from_str::<Config>("clustr: {}\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `clustr`"), "{err}");
    }

    #[test]
    fn an_unauthenticated_webhook_is_refused_on_a_non_loopback_listener() {
        let parse = |yaml: &str| serde_yaml_ng::from_str::<Config>(yaml).unwrap().validate();
        for listen in ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080"] {
            let err = parse(&format!("http: {{listen: \"{listen}\"}}\n")).unwrap_err().to_string();
            assert!(err.contains("alerts.bearer_token_sha256") && err.contains("allow_unauthenticated"), "{err}");
        }
        parse("http: {listen: \"127.0.0.1:8080\"}\n").unwrap();
        parse("http: {listen: \"[::1]:8080\"}\n").unwrap();
        parse("http: {listen: \"0.0.0.0:8080\"}\nalerts: {allow_unauthenticated: true}\n").unwrap();
        parse("http: {listen: \"0.0.0.0:8080\"}\nalerts: {enabled: false}\n").unwrap();
        let hashed =
            format!("http: {{listen: \"0.0.0.0:8080\"}}\nalerts: {{bearer_token_sha256: \"{}\"}}\n", "a".repeat(64));
        parse(&hashed).unwrap();
    }

    #[test]
    fn listener_limits_are_configurable_and_zero_is_refused() {
        let c: Config =
            serde_yaml_ng::from_str("http: {max_connections: 7, header_read_timeout_seconds: 3}\n").unwrap();
        assert_eq!(c.http.limits().max_connections, 7);
        assert_eq!(c.http.limits().header_read_timeout_seconds, 3);
        assert_eq!(c.http.limits().body_read_timeout_seconds, 30);
        let zero: Config = serde_yaml_ng::from_str("http: {body_read_timeout_seconds: 0}\n").unwrap();
        assert!(zero.validate().unwrap_err().to_string().contains("http.body_read_timeout_seconds"));
    }

    #[test]
    fn problems_name_the_section() {
        let mut config = Config::default();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        config.drift.schedule = "every night".into();
        config.watch.event_max_age_seconds = 0;
        let p = config.problems();
        assert!(
            p.iter().any(|l| l.starts_with("config: drift.schedule") && l.contains("invalid cron schedule")),
            "{p:#?}"
        );
        assert!(p.iter().any(|l| l.contains("watch.event_max_age_seconds")), "{p:#?}");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(parse_cron("0 2 * * *").is_ok());
        assert!(parse_cron("0 0 2 * * *").is_ok());
    }

    #[test]
    fn defaults_are_usable() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.cluster.name, "local");
        assert_eq!(c.rules_dir, PathBuf::from("rules"));
    }
}
