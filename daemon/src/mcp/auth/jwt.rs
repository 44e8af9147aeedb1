//! OIDC JWT validation with `ring` (already in the tree through rustls):
//! RS256/384/512 and ES256/384 against a JWKS from a URL or a file; `iss`,
//! `aud`, `exp`, `nbf` checked; the groups claim mapped to a role.
//! `none` and HMAC algorithms are refused.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::{AuthError, OidcConfig, Role};
use crate::tools::{Caller, Transport};

/// Do not refetch the JWKS more often than this on unknown key ids.
const REFRESH_MIN: Duration = Duration::from_secs(30);

/// One key of a JWKS.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

pub struct OidcVerifier {
    config: OidcConfig,
    keys: RwLock<(Jwks, Instant)>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| AuthError::Jwt(format!("{what} is not base64url")))
}

impl OidcVerifier {
    pub async fn new(config: OidcConfig) -> Result<Self, AuthError> {
        let jwks = load(&config).await?;
        Ok(Self { config, keys: RwLock::new((jwks, Instant::now())) })
    }

    /// For tests: a verifier over given keys.
    pub fn with_keys(config: OidcConfig, jwks: Jwks) -> Self {
        Self { config, keys: RwLock::new((jwks, Instant::now())) }
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts.as_slice() else { return Err(AuthError::Jwt("not three dot-separated parts".into())) };
        let header: Header =
            serde_json::from_slice(&b64(h, "header")?).map_err(|e| AuthError::Jwt(format!("header: {e}")))?;
        let sig = b64(s, "signature")?;
        let message = format!("{h}.{p}");
        let key = self.key_for(header.kid.as_deref()).await?;
        verify_signature(&header.alg, &key, message.as_bytes(), &sig)?;
        let claims: Value =
            serde_json::from_slice(&b64(p, "payload")?).map_err(|e| AuthError::Jwt(format!("payload: {e}")))?;
        self.check_claims(&claims)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        let find = |jwks: &Jwks| -> Option<Jwk> {
            match kid {
                Some(kid) => jwks.keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
                None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
                None => None,
            }
        };
        {
            let guard = self.keys.read().await;
            if let Some(k) = find(&guard.0) {
                return Ok(k);
            }
            if self.config.jwks_url.is_none() || guard.1.elapsed() < REFRESH_MIN {
                return Err(AuthError::Jwt(format!("no key for kid {kid:?}")));
            }
        }
        // Keys may have rotated: refetch once.
        let fresh = load(&self.config).await?;
        let found = find(&fresh);
        *self.keys.write().await = (fresh, Instant::now());
        found.ok_or_else(|| AuthError::Jwt(format!("no key for kid {kid:?}")))
    }

    fn check_claims(&self, claims: &Value) -> Result<Caller, AuthError> {
        let c = &self.config;
        let now = jiff::Timestamp::now().as_second();
        let leeway = i64::try_from(c.leeway_seconds).unwrap_or(60);
        if claims.get("iss").and_then(Value::as_str) != Some(c.issuer.as_str()) {
            return Err(AuthError::Jwt("issuer does not match".into()));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == c.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(c.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(AuthError::Jwt("audience does not match".into()));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| AuthError::Jwt("no exp claim".into()))?;
        if exp + leeway < now {
            return Err(AuthError::Jwt("token expired".into()));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf - leeway > now
        {
            return Err(AuthError::Jwt("token not yet valid".into()));
        }
        let groups: Vec<String> = match claims.get(&c.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        let role = groups.iter().filter_map(|g| c.group_roles.get(g).copied()).max().or(c.default_role);
        let role: Role = role.ok_or_else(|| AuthError::NoRole(groups.join(",")))?;
        let user = claims
            .get(&c.user_claim)
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Jwt(format!("no {} claim", c.user_claim)))?;
        Ok(Caller::new(user, role, Transport::Http))
    }
}

async fn load(config: &OidcConfig) -> Result<Jwks, AuthError> {
    let text = match (&config.jwks_file, &config.jwks_url) {
        (Some(path), _) => {
            tokio::fs::read_to_string(path).await.map_err(|e| AuthError::Jwks(format!("{}: {e}", path.display())))?
        }
        (None, Some(url)) => reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AuthError::Jwks(e.to_string()))?
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| AuthError::Jwks(format!("{url}: {e}")))?
            .text()
            .await
            .map_err(|e| AuthError::Jwks(format!("{url}: {e}")))?,
        (None, None) => return Err(AuthError::Config("auth.oidc needs jwks_url or jwks_file".into())),
    };
    serde_json::from_str(&text).map_err(|e| AuthError::Jwks(format!("not a JWKS: {e}")))
}

fn verify_signature(alg: &str, key: &Jwk, message: &[u8], sig: &[u8]) -> Result<(), AuthError> {
    let bad = || AuthError::Jwt("bad signature".into());
    let field = |v: &Option<String>, name: &str| {
        v.as_deref().ok_or_else(|| AuthError::Jwt(format!("key has no {name}"))).and_then(|s| b64(s, name))
    };
    match (alg, key.kty.as_str()) {
        ("RS256" | "RS384" | "RS512", "RSA") => {
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            let pk = signature::RsaPublicKeyComponents { n: field(&key.n, "n")?, e: field(&key.e, "e")? };
            pk.verify(params, message, sig).map_err(|_| bad())
        }
        ("ES256" | "ES384", "EC") => {
            let (params, crv): (&signature::EcdsaVerificationAlgorithm, &str) = if alg == "ES256" {
                (&signature::ECDSA_P256_SHA256_FIXED, "P-256")
            } else {
                (&signature::ECDSA_P384_SHA384_FIXED, "P-384")
            };
            if key.crv.as_deref() != Some(crv) {
                return Err(AuthError::Jwt(format!("{alg} needs a {crv} key")));
            }
            let mut point = vec![4u8];
            point.extend(field(&key.x, "x")?);
            point.extend(field(&key.y, "y")?);
            signature::UnparsedPublicKey::new(params, point).verify(message, sig).map_err(|_| bad())
        }
        (alg, kty) => Err(AuthError::Jwt(format!("algorithm {alg} with a {kty} key is not accepted"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    /// A P-256 key pair and its JWKS, for tests of the whole HTTP path too.
    pub(crate) struct TestIssuer {
        pair: EcdsaKeyPair,
        pub jwks: Jwks,
    }

    impl TestIssuer {
        pub(crate) fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            let public = pair.public_key().as_ref();
            let jwks: Jwks = serde_json::from_value(json!({"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65])}]}))
            .unwrap();
            Self { pair, jwks }
        }

        /// The JWKS document an identity provider would serve.
        pub(crate) fn jwks_json(&self) -> String {
            let keys: Vec<Value> = self
                .jwks
                .keys
                .iter()
                .map(|k| json!({"kty": k.kty, "kid": k.kid, "crv": k.crv, "x": k.x, "y": k.y}))
                .collect();
            json!({ "keys": keys }).to_string()
        }

        pub(crate) fn sign(&self, claims: &Value) -> String {
            let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}).to_string());
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            let msg = format!("{h}.{p}");
            let sig = self.pair.sign(&SystemRandom::new(), msg.as_bytes()).unwrap();
            format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    pub(crate) fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            audience: "kubemedic".into(),
            jwks_url: None,
            jwks_file: Some("unused".into()),
            groups_claim: "groups".into(),
            user_claim: "email".into(),
            group_roles: [("sre".to_owned(), Role::Approver), ("dev".to_owned(), Role::Viewer)].into(),
            default_role: None,
            leeway_seconds: 5,
        }
    }

    pub(crate) fn claims(groups: &[&str]) -> Value {
        let now = jiff::Timestamp::now().as_second();
        json!({"iss": "https://idp.example", "aud": ["kubemedic"], "exp": now + 300, "nbf": now - 10,
            "sub": "u-1", "email": "ana@example.com", "groups": groups})
    }

    #[tokio::test]
    async fn valid_tokens_map_groups_to_roles() {
        let issuer = TestIssuer::new();
        let v = OidcVerifier::with_keys(config(), issuer.jwks.clone());
        let c = v.verify(&issuer.sign(&claims(&["dev", "sre"]))).await.unwrap();
        assert_eq!((c.user.as_str(), c.role), ("ana@example.com", Role::Approver));
        let err = v.verify(&issuer.sign(&claims(&["other"]))).await.unwrap_err();
        assert!(matches!(err, AuthError::NoRole(_)), "{err}");
    }

    #[tokio::test]
    async fn bad_tokens_are_refused() {
        let issuer = TestIssuer::new();
        let v = OidcVerifier::with_keys(config(), issuer.jwks.clone());
        let mut c = claims(&["sre"]);
        c["exp"] = json!(1);
        assert!(v.verify(&issuer.sign(&c)).await.unwrap_err().to_string().contains("expired"));
        let mut c = claims(&["sre"]);
        c["aud"] = json!("someone-else");
        assert!(v.verify(&issuer.sign(&c)).await.unwrap_err().to_string().contains("audience"));
        let mut c = claims(&["sre"]);
        c["iss"] = json!("https://evil.example");
        assert!(v.verify(&issuer.sign(&c)).await.unwrap_err().to_string().contains("issuer"));
        // Signed by another key.
        let other = TestIssuer::new();
        assert!(v.verify(&other.sign(&claims(&["sre"]))).await.unwrap_err().to_string().contains("bad signature"));
        // Tampered payload.
        let token = issuer.sign(&claims(&["dev"]));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims(&["sre"]).to_string()), parts[2]);
        assert!(v.verify(&forged).await.is_err());
        // alg none.
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#), parts[1]);
        assert!(v.verify(&none).await.unwrap_err().to_string().contains("not accepted"));
    }
}
