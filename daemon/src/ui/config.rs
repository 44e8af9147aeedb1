//! The `ui` section of the configuration.

use serde::Deserialize;

use crate::auth::AuthConfig;

/// `ui` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve the web UI under `/ui/`.
    pub enabled: bool,
    /// The URL people open kubemedic at (e.g. `https://kubemedic.example.com`), without a
    /// path: the OIDC redirect is `<external_url>/ui/callback`, and Slack cards link to
    /// `<external_url>/ui/proposals/<id>`. Needed for the OIDC login.
    pub external_url: Option<String>,
    /// Browser sign-in with the OIDC authorization-code flow (PKCE); absent = bearer
    /// tokens only (scripts, or a proxy that adds them).
    pub oidc: Option<UiOidcConfig>,
    /// How long a browser session lasts, in hours.
    pub session_hours: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self { enabled: true, external_url: None, oidc: None, session_hours: 8 }
    }
}

/// The OIDC client the UI signs people in with. Its ID tokens are verified by `auth.oidc`
/// (issuer, keys, groups → roles), so `auth.oidc.audience` must be this `client_id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiOidcConfig {
    /// The client id registered with the identity provider.
    pub client_id: String,
    /// The provider's authorization endpoint (its discovery document's `authorization_endpoint`).
    pub authorization_endpoint: String,
    /// The provider's token endpoint.
    pub token_endpoint: String,
    /// Scopes asked for; `openid` is always included.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Env var holding the client secret, for providers that want one besides PKCE.
    #[serde(default)]
    pub client_secret_env: Option<String>,
}

pub(crate) fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into(), "groups".into()]
}

impl UiConfig {
    /// Checks serde cannot express; `auth` is the section that verifies the ID tokens.
    pub fn validate(&self, auth: &AuthConfig) -> Result<(), String> {
        if let Some(url) = &self.external_url {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("external_url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!("external_url {url:?} must be an http(s) URL with a host"));
            }
            if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!("external_url {url:?} must have no path, query or fragment"));
            }
        }
        if self.session_hours == 0 || self.session_hours > 24 * 7 {
            return Err(format!("session_hours is {}; it must be 1 to 168", self.session_hours));
        }
        let Some(o) = &self.oidc else { return Ok(()) };
        if self.external_url.is_none() {
            return Err("oidc needs external_url (the redirect URI is <external_url>/ui/callback)".into());
        }
        for (name, url) in
            [("authorization_endpoint", &o.authorization_endpoint), ("token_endpoint", &o.token_endpoint)]
        {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("oidc.{name} {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("oidc.{name} {url:?} must be an http(s) URL"));
            }
        }
        if o.client_id.trim().is_empty() {
            return Err("oidc.client_id must not be empty".into());
        }
        match &auth.oidc {
            None => Err("oidc needs auth.oidc (the issuer and keys that verify the ID tokens)".into()),
            Some(a) if a.audience != o.client_id => Err(format!(
                "oidc.client_id is {:?} but auth.oidc.audience is {:?}: the ID tokens the login gets are for the \
                 client id, so auth.oidc.audience must be the same",
                o.client_id, a.audience
            )),
            Some(_) => Ok(()),
        }
    }

    /// The proposal's page, for links from Slack and elsewhere; `None` without `external_url`.
    pub fn proposal_url(&self, id: &str) -> Option<String> {
        self.external_url.as_ref().map(|u| format!("{}/ui/proposals/{id}", u.trim_end_matches('/')))
    }
}
