//! Who is calling, proven: bearer tokens (stored as SHA-256 hashes) or OIDC JWTs over HTTP,
//! a configured local user on stdio. One adapter for every door that takes credentials: MCP,
//! the approvals HTTP API and the Alertmanager webhook; roles gate every tool.

pub mod jwt;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use crate::model::identity::Role;
use crate::model::identity::{Caller, Transport};

/// Authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User name recorded for stdio sessions.
    pub stdio_user: String,
    /// Role of stdio sessions.
    pub stdio_role: Role,
    /// Static bearer tokens for HTTP; only their SHA-256 is stored.
    pub tokens: Vec<TokenConfig>,
    /// OpenID Connect JWTs for HTTP; absent = tokens only.
    pub oidc: Option<OidcConfig>,
    /// The URL clients use for `/mcp` (e.g. `https://kubemedic.example.com/mcp`): the
    /// `resource` of `/.well-known/oauth-protected-resource`. Absent = `http://<Host>/mcp`
    /// from a request whose Host the listener accepts; set it behind TLS or a proxy.
    pub resource: Option<String>,
    /// OAuth scopes clients should request, advertised as `scopes_supported` and in the
    /// 401 challenge; empty = not advertised.
    pub scopes: Vec<String>,
    /// Send MCP callers' reads to the apiserver as them (`Impersonate-User`, `Impersonate-Group`),
    /// so the cluster's RBAC decides what they see, and let an approval through only when the
    /// approver may make the change themselves. kubemedic's ServiceAccount needs `impersonate`.
    pub impersonate: bool,
    /// Groups of the stdio user (with `impersonate`).
    pub stdio_groups: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            stdio_user: std::env::var("USER").unwrap_or_else(|_| "local".into()),
            stdio_role: Role::Viewer,
            tokens: Vec::new(),
            oidc: None,
            resource: None,
            scopes: Vec::new(),
            impersonate: false,
            stdio_groups: Vec::new(),
        }
    }
}

/// One static bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// User name recorded in the audit trail.
    pub name: String,
    /// Lowercase hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Role granted to the token.
    pub role: Role,
    /// Kubernetes groups of the token's user (with `auth.impersonate`).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// OIDC JWT validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected audience (`aud` claim, string or list).
    pub audience: String,
    /// JWKS URL (fetched at start, again every `jwks_refresh_seconds` and on
    /// an unknown key id, one fetch at a time, backing off after a failure).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// JWKS file (instead of a URL).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Claim holding the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claim naming the user in the audit trail.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Group → role; a user gets the highest role of their groups.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Role>,
    /// Role for a valid token whose groups map to none; absent = refused.
    #[serde(default)]
    pub default_role: Option<Role>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// How often the JWKS is fetched again even when every key id is known,
    /// so a key the identity provider withdrew stops being accepted.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_seconds: u64,
}

fn default_groups_claim() -> String {
    "groups".into()
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_leeway() -> u64 {
    60
}
fn default_jwks_refresh() -> u64 {
    3600
}

impl AuthConfig {
    /// Checks that cannot be expressed in the types.
    pub fn validate(&self) -> Result<(), AuthError> {
        for t in &self.tokens {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(AuthError::Config(format!(
                    "auth.tokens[{}].sha256 must be 64 lowercase hex digits (the SHA-256 of the token, not the token)",
                    t.name
                )));
            }
            if t.name.trim().is_empty() {
                return Err(AuthError::Config("auth.tokens[].name must not be empty".into()));
            }
        }
        if let Some(r) = &self.resource {
            validate_resource(r).map_err(AuthError::Config)?;
        }
        if let Some(s) = self.scopes.iter().find(|s| s.is_empty() || s.contains([' ', '"', '\\'])) {
            return Err(AuthError::Config(format!("auth.scopes: {s:?} is not a scope token (no spaces or quotes)")));
        }
        if let Some(o) = &self.oidc
            && o.jwks_url.is_none() == o.jwks_file.is_none()
        {
            return Err(AuthError::Config("auth.oidc needs exactly one of jwks_url and jwks_file".into()));
        }
        if let Some(o) = &self.oidc
            && o.jwks_refresh_seconds < 30
        {
            return Err(AuthError::Config(format!(
                "auth.oidc.jwks_refresh_seconds is {}; it must be at least 30",
                o.jwks_refresh_seconds
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("unknown bearer token")]
    UnknownToken,
    #[error("invalid JWT: {0}")]
    Jwt(String),
    #[error("no role for this user (groups: {0})")]
    NoRole(String),
    #[error("invalid auth config: {0}")]
    Config(String),
    #[error("cannot load JWKS: {0}")]
    Jwks(String),
    #[error("JWKS unavailable: the last fetch failed ({0}); next attempt in {1} s")]
    JwksBackoff(String, u64),
}

/// Check `auth.resource`: an absolute http(s) URL without query or fragment (RFC 9728).
fn validate_resource(resource: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(resource).map_err(|e| format!("resource {resource:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("resource {resource:?} must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("resource {resource:?} must not have a query or a fragment (RFC 9728)"));
    }
    Ok(())
}

/// Hex SHA-256 of a token, as stored in the config.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Validates HTTP credentials into a [`Caller`].
pub struct Authenticator {
    tokens: Vec<TokenConfig>,
    oidc: Option<jwt::OidcVerifier>,
    /// What `/.well-known/oauth-protected-resource` and the 401 challenges say.
    resource: Option<String>,
    issuer: Option<String>,
    scopes: Vec<String>,
}

impl Authenticator {
    pub async fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        config.validate()?;
        let oidc = match &config.oidc {
            Some(o) => Some(jwt::OidcVerifier::new(o.clone()).await?),
            None => None,
        };
        Ok(Self {
            tokens: config.tokens.clone(),
            oidc,
            resource: config.resource.clone(),
            issuer: config.oidc.as_ref().map(|o| o.issuer.clone()),
            scopes: config.scopes.clone(),
        })
    }

    /// `auth.resource`: the URL clients use for `/mcp`, for the discovery metadata.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The OIDC issuer, the authorization server the discovery metadata names.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `auth.scopes`, advertised in the discovery metadata and the 401 challenge.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether any HTTP credential is configured (without one, `/mcp` refuses everyone).
    pub fn is_configured(&self) -> bool {
        !self.tokens.is_empty() || self.oidc.is_some()
    }

    /// `Authorization` header value → caller.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let hash = token_hash(token);
        // Compare all hashes without an early exit on the first byte.
        let mut found = None;
        for t in &self.tokens {
            let same = t.sha256.len() == hash.len()
                && t.sha256.bytes().zip(hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if same {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            return Ok(Caller::new(&t.name, t.role, Transport::Http).with_groups(t.groups.clone()));
        }
        match &self.oidc {
            Some(v) if token.matches('.').count() == 2 => v.verify(token).await,
            _ => Err(AuthError::UnknownToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_matched_by_hash() {
        let config = AuthConfig {
            tokens: vec![TokenConfig {
                name: "ci".into(),
                sha256: token_hash("t0ken"),
                role: Role::Operator,
                groups: Vec::new(),
            }],
            ..AuthConfig::default()
        };
        let auth = Authenticator::new(&config).await.unwrap();
        let c = auth.authenticate(Some("Bearer t0ken")).await.unwrap();
        assert_eq!((c.user.as_str(), c.role), ("ci", Role::Operator));
        assert!(matches!(auth.authenticate(Some("Bearer nope")).await, Err(AuthError::UnknownToken)));
        assert!(matches!(auth.authenticate(None).await, Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate(Some("Basic abc")).await, Err(AuthError::Missing)));
    }

    #[test]
    fn resource_config_is_checked() {
        validate_resource("https://km.example.com/mcp").unwrap();
        for bad in ["km.example.com/mcp", "ftp://km/mcp", "https://km/mcp?x=1", "https://km/mcp#f"] {
            assert!(validate_resource(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_tokens_in_config_are_refused() {
        let config = AuthConfig {
            tokens: vec![TokenConfig {
                name: "ci".into(),
                sha256: "t0ken".into(),
                role: Role::Admin,
                groups: Vec::new(),
            }],
            ..AuthConfig::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("64 lowercase hex digits"));
    }
}
