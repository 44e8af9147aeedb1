//! Slack: proposals posted with Approve / Reject buttons through the Web API
//! (`chat.postMessage`, `chat.update`, thread replies, ephemeral refusals),
//! and signed interaction requests verified.
//!
//! This is the adapter (Web API client, request signing, Block Kit, interaction payloads);
//! posting proposals and acting on clicks is the approvals service's (`approvals::slack`).
//!
//! The client honours `429 Retry-After` and retries 5xx and connection
//! errors with exponential backoff; the retry policy lives in [`Retry`],
//! apart from the calls.

pub mod blocks;
pub mod interaction;
pub mod signature;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::proposal::SlackRef;

/// Slack app settings. Token and signing secret come from env vars, never the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Channel id to post proposals to.
    pub channel: String,
    /// Base URL of the Web API (a local stand-in in tests).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Env var holding the bot token (`xoxb-...`).
    #[serde(default = "default_token_env")]
    pub bot_token_env: String,
    /// Env var holding the signing secret used to verify interaction requests.
    #[serde(default = "default_secret_env")]
    pub signing_secret_env: String,
    /// Retries after a 429 or a 5xx before a call fails.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_api_url() -> String {
    "https://slack.com/api".into()
}
fn default_token_env() -> String {
    "SLACK_BOT_TOKEN".into()
}
fn default_secret_env() -> String {
    "SLACK_SIGNING_SECRET".into()
}
fn default_retries() -> u32 {
    4
}
fn default_timeout() -> u64 {
    10
}

impl SlackConfig {
    /// A config for `channel` with every default.
    pub fn new(channel: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            api_url: default_api_url(),
            bot_token_env: default_token_env(),
            signing_secret_env: default_secret_env(),
            max_retries: default_retries(),
            timeout_seconds: default_timeout(),
        }
    }

    /// The signing secret from its env var.
    pub fn signing_secret(&self) -> Result<Secret, SlackError> {
        Secret::from_env(&self.signing_secret_env)
    }
}

/// A token or secret whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Read from `var`; a missing or empty variable is an error naming the variable.
    pub fn from_env(var: &str) -> Result<Self, SlackError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Self(v.trim().to_owned())),
            _ => Err(SlackError::MissingEnv(var.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot build HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("Slack {method} failed to send")]
    Send {
        method: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Slack {method} returned HTTP {status} after {attempts} attempts")]
    Status { method: String, status: u16, attempts: u32 },
    #[error("Slack {method} returned an unreadable body")]
    Body {
        method: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Slack {method} failed: {error}")]
    Api { method: String, error: String },
}

/// When and how long to wait before retrying a call.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_retries: u32,
    /// First backoff after a 5xx; doubled each time.
    pub base: Duration,
    /// Longest single wait (also caps `Retry-After`).
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { max_retries: 4, base: Duration::from_millis(500), cap: Duration::from_secs(30) }
    }
}

impl Retry {
    /// The wait before retry number `attempt` (0-based), or `None` to give up.
    /// `retry_after` is the server's `Retry-After` in seconds, for 429s.
    pub fn delay(&self, attempt: u32, status: Option<u16>, retry_after: Option<u64>) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        match status {
            Some(429) => Some(Duration::from_secs(retry_after.unwrap_or(1)).min(self.cap)),
            Some(s) if (500..600).contains(&s) => Some(self.backoff(attempt)),
            None => Some(self.backoff(attempt)),
            Some(_) => None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(2u32.saturating_pow(attempt)).min(self.cap)
    }
}

/// A Slack Web API client bound to one channel.
#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    channel: String,
    retry: Retry,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient").field("base_url", &self.base_url).field("channel", &self.channel).finish()
    }
}

impl SlackClient {
    /// From the config; the bot token is read from its env var.
    pub fn from_config(config: &SlackConfig) -> Result<Self, SlackError> {
        let token = Secret::from_env(&config.bot_token_env)?;
        let retry = Retry { max_retries: config.max_retries, ..Retry::default() };
        Self::new(&config.api_url, token, &config.channel, Duration::from_secs(config.timeout_seconds), retry)
    }

    pub fn new(
        base_url: &str,
        token: Secret,
        channel: &str,
        timeout: Duration,
        retry: Retry,
    ) -> Result<Self, SlackError> {
        // reqwest is built without a TLS provider of its own; main installs ring, and so
        // does this (idempotently) for tests and embedders.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(SlackError::Client)?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            channel: channel.to_owned(),
            retry,
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Post a message (a thread reply when `thread_ts` is set); returns where it landed.
    pub async fn post_message(
        &self,
        text: &str,
        blocks: Option<Value>,
        thread_ts: Option<&str>,
    ) -> Result<SlackRef, SlackError> {
        let mut body = json!({"channel": self.channel, "text": text, "unfurl_links": false, "unfurl_media": false});
        if let Some(b) = blocks {
            body["blocks"] = b;
        }
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let out = self.call("chat.postMessage", &body).await?;
        let channel = out.get("channel").and_then(Value::as_str).unwrap_or(&self.channel).to_owned();
        let ts = out
            .get("ts")
            .and_then(Value::as_str)
            .ok_or_else(|| SlackError::Api { method: "chat.postMessage".into(), error: "response has no ts".into() })?;
        Ok(SlackRef { channel, ts: ts.to_owned() })
    }

    /// Replace a posted message.
    pub async fn update_message(&self, at: &SlackRef, text: &str, blocks: Value) -> Result<(), SlackError> {
        let body = json!({"channel": at.channel, "ts": at.ts, "text": text, "blocks": blocks});
        self.call("chat.update", &body).await.map(drop)
    }

    /// Reply in the proposal's thread.
    pub async fn reply(&self, at: &SlackRef, text: &str) -> Result<SlackRef, SlackError> {
        let blocks = blocks::text_blocks(text);
        let body = json!({"channel": at.channel, "thread_ts": at.ts, "text": text, "blocks": blocks});
        let out = self.call("chat.postMessage", &body).await?;
        let ts = out.get("ts").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(SlackRef { channel: at.channel.clone(), ts })
    }

    /// A message only `user` sees (refusals).
    pub async fn post_ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), SlackError> {
        let body = json!({"channel": channel, "user": user, "text": text});
        self.call("chat.postEphemeral", &body).await.map(drop)
    }

    /// One Web API call with the retry policy. Slack answers 200 with
    /// `ok: false` for API errors; those are not retried.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.base_url);
        // The sink: every message, card and reply leaves through the redaction gate.
        let mut gated = body.clone();
        crate::redact::gate().value(&mut gated);
        let body = &gated;
        let mut attempt = 0;
        loop {
            let sent = self.http.post(&url).bearer_auth(self.token.expose()).json(body).send().await;
            let (status, retry_after) = match sent {
                Ok(resp) if resp.status().is_success() => {
                    let out: Value =
                        resp.json().await.map_err(|source| SlackError::Body { method: method.into(), source })?;
                    if out.get("ok").and_then(Value::as_bool) == Some(true) {
                        return Ok(out);
                    }
                    let error = out.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned();
                    return Err(SlackError::Api { method: method.into(), error });
                }
                Ok(resp) => {
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    (Some(resp.status().as_u16()), retry_after)
                }
                Err(source) if attempt >= self.retry.max_retries => {
                    return Err(SlackError::Send { method: method.into(), source });
                }
                Err(err) => {
                    tracing::debug!(method, error = %err, "Slack call failed to send; retrying");
                    (None, None)
                }
            };
            let Some(wait) = self.retry.delay(attempt, status, retry_after) else {
                return Err(SlackError::Status {
                    method: method.into(),
                    status: status.unwrap_or(0),
                    attempts: attempt + 1,
                });
            };
            tracing::info!(
                method,
                status,
                wait_ms = wait.as_millis() as u64,
                attempt,
                "Slack call throttled or failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str, retries: u32) -> SlackClient {
        let retry = Retry { max_retries: retries, base: Duration::from_millis(10), cap: Duration::from_secs(2) };
        SlackClient::new(base, Secret::new("xoxb-test"), "C1", Duration::from_secs(5), retry).unwrap()
    }

    #[test]
    fn retry_policy() {
        let r = Retry { max_retries: 3, base: Duration::from_millis(100), cap: Duration::from_secs(1) };
        assert_eq!(r.delay(0, Some(429), Some(7)), Some(Duration::from_secs(1)), "Retry-After is capped");
        assert_eq!(r.delay(0, Some(429), None), Some(Duration::from_secs(1)));
        assert_eq!(r.delay(0, Some(503), None), Some(Duration::from_millis(100)));
        assert_eq!(r.delay(2, Some(500), None), Some(Duration::from_millis(400)));
        assert_eq!(r.delay(3, Some(500), None), None, "gives up after max_retries");
        assert_eq!(r.delay(0, Some(404), None), None, "4xx other than 429 is not retried");
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret::new("xoxb-very-secret");
        assert!(!format!("{s:?}").contains("very-secret"));
        let c = client("http://127.0.0.1:1", 0);
        assert!(!format!("{c:?}").contains("xoxb"));
    }
}
