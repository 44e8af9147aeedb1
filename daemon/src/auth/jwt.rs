//! OIDC JWT validation with `ring` (already in the tree through rustls):
//! RS256/384/512 and ES256/384 against a JWKS from a URL or a file; `iss`,
//! `aud`, `exp`, `nbf` checked; the groups claim mapped to a role.
//! `none` and HMAC algorithms are refused.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{AuthError, OidcConfig, Role};
use crate::model::identity::{Caller, Transport};

/// Do not refetch the JWKS more often than this on unknown key ids: a
/// stream of tokens with forged `kid`s costs at most one fetch per interval.
const REFRESH_MIN: Duration = Duration::from_secs(30);
/// First wait after a failed fetch; doubled on each further failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the identity provider keeps failing.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

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

/// The keys in use; `generation` counts successful fetches so a caller that
/// waited for someone else's fetch can tell it happened.
struct KeySet {
    jwks: Arc<Jwks>,
    generation: u64,
}

/// Bookkeeping of fetches, behind the single-flight lock.
struct FetchState {
    last_ok: Instant,
    /// Set after a failure: no attempt before this instant.
    retry_at: Option<(Instant, String)>,
    failures: u32,
}

/// Why the JWKS is fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// A token names a key id the current set lacks (rotation, or forgery).
    UnknownKid,
    /// The refresh interval elapsed.
    Scheduled,
}

struct Inner {
    config: OidcConfig,
    keys: RwLock<KeySet>,
    /// Held for the whole of one fetch: concurrent callers wait for it
    /// instead of fetching again (single flight).
    fetch: tokio::sync::Mutex<FetchState>,
}

/// Validates JWTs against the identity provider's keys. Keys are refreshed
/// on a schedule by a task that ends when the verifier is dropped.
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| AuthError::Jwt(format!("{what} is not base64url")))
}

impl OidcVerifier {
    /// Fetches the keys (an error here is a start-up error) and starts the
    /// scheduled refresh.
    pub async fn new(config: OidcConfig) -> Result<Self, AuthError> {
        let jwks = load(&config).await?;
        let verifier = Self::with_keys(config, jwks);
        let every = Duration::from_secs(verifier.inner.config.jwks_refresh_seconds.max(1));
        tokio::spawn(scheduled_refresh(Arc::downgrade(&verifier.inner), every));
        Ok(verifier)
    }

    /// For tests: a verifier over given keys, without the scheduled refresh.
    pub fn with_keys(config: OidcConfig, jwks: Jwks) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                config,
                keys: RwLock::new(KeySet { jwks: Arc::new(jwks), generation: 0 }),
                fetch: tokio::sync::Mutex::new(FetchState { last_ok: now, retry_at: None, failures: 0 }),
            }),
        }
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
        let (jwks, generation) = self.inner.current();
        if let Some(k) = find(&jwks) {
            return Ok(k);
        }
        // Keys may have rotated: refetch, at most once per REFRESH_MIN for everyone.
        self.inner.refresh(Reason::UnknownKid, generation).await?;
        find(&self.inner.current().0).ok_or_else(|| AuthError::Jwt(format!("no key for kid {kid:?}")))
    }
    fn check_claims(&self, claims: &Value) -> Result<Caller, AuthError> {
        let c = &self.inner.config;
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
        Ok(Caller::new(user, role, Transport::Http).with_groups(groups))
    }
}

impl Inner {
    fn current(&self) -> (Arc<Jwks>, u64) {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (Arc::clone(&keys.jwks), keys.generation)
    }

    /// Fetches the JWKS unless another caller did since `seen` (then its
    /// result is used), the last failure's backoff has not run out, or (for
    /// an unknown kid) the last fetch was less than [`REFRESH_MIN`] ago.
    async fn refresh(&self, reason: Reason, seen: u64) -> Result<(), AuthError> {
        let mut state = self.fetch.lock().await;
        if self.current().1 != seen {
            return Ok(());
        }
        let now = Instant::now();
        if let Some((at, why)) = &state.retry_at
            && now < *at
        {
            return Err(AuthError::JwksBackoff(why.clone(), (*at - now).as_secs().max(1)));
        }
        if reason == Reason::UnknownKid && now < state.last_ok + REFRESH_MIN && state.retry_at.is_none() {
            return Ok(());
        }
        match load(&self.config).await {
            Ok(jwks) => {
                let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                keys.jwks = Arc::new(jwks);
                keys.generation += 1;
                drop(keys);
                *state = FetchState { last_ok: Instant::now(), retry_at: None, failures: 0 };
                tracing::debug!(?reason, "JWKS refreshed");
                Ok(())
            }
            Err(err) => {
                state.failures = state.failures.saturating_add(1);
                let wait = BACKOFF_FIRST.saturating_mul(1u32 << (state.failures - 1).min(16)).min(BACKOFF_MAX);
                state.retry_at = Some((Instant::now() + wait, err.to_string()));
                tracing::warn!(error = %err, ?reason, retry_in_s = wait.as_secs(), "JWKS fetch failed; keeping the last keys");
                Err(err)
            }
        }
    }

    /// When the next scheduled fetch is due: the interval after the last
    /// success, or the end of the backoff after a failure.
    async fn next_due(&self, every: Duration) -> Instant {
        let state = self.fetch.lock().await;
        match &state.retry_at {
            Some((at, _)) => *at,
            None => state.last_ok + every,
        }
    }
}

/// Refreshes the keys every `every` (sooner after a failure, on the backoff)
/// until the verifier is dropped.
async fn scheduled_refresh(inner: Weak<Inner>, every: Duration) {
    loop {
        let due = match inner.upgrade() {
            Some(inner) => inner.next_due(every).await,
            None => return,
        };
        tokio::time::sleep_until(due).await;
        let Some(inner) = inner.upgrade() else { return };
        if Instant::now() < inner.next_due(every).await {
            continue; // an unknown-kid fetch refreshed the keys meanwhile
        }
        let seen = inner.current().1;
        // A failure is logged and backed off inside; the old keys stay in use.
        let _ = inner.refresh(Reason::Scheduled, seen).await;
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
        kid: String,
        pub jwks: Jwks,
    }

    impl TestIssuer {
        pub(crate) fn new() -> Self {
            Self::with_kid("k1")
        }

        pub(crate) fn with_kid(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            let public = pair.public_key().as_ref();
            let jwks: Jwks = serde_json::from_value(json!({"keys": [{"kty": "EC", "kid": kid, "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65])}]}))
            .unwrap();
            Self { pair, kid: kid.to_owned(), jwks }
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
            let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}).to_string());
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
            jwks_refresh_seconds: 3600,
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

    /// A JWKS endpoint on 127.0.0.1 that counts fetches and can be told to
    /// serve other keys or to fail.
    struct JwksServer {
        url: String,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
        /// `None` = answer 500.
        body: Arc<std::sync::Mutex<Option<String>>>,
    }

    impl JwksServer {
        async fn start(body: String) -> Self {
            let _ = rustls::crypto::ring::default_provider().install_default();
            use axum::http::StatusCode;
            use std::sync::atomic::{AtomicUsize, Ordering};
            let fetches = Arc::new(AtomicUsize::new(0));
            let body = Arc::new(std::sync::Mutex::new(Some(body)));
            let (f, b) = (Arc::clone(&fetches), Arc::clone(&body));
            let app = axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let (f, b) = (Arc::clone(&f), Arc::clone(&b));
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        match b.lock().unwrap().clone() {
                            Some(body) => (StatusCode::OK, body),
                            None => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_owned()),
                        }
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            Self { url, fetches, body }
        }

        fn fetches(&self) -> usize {
            self.fetches.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn serve(&self, body: Option<String>) {
            *self.body.lock().unwrap() = body;
        }

        fn config(&self) -> OidcConfig {
            OidcConfig { jwks_url: Some(self.url.clone()), jwks_file: None, ..config() }
        }
    }

    /// Runs `n` verifications of `token` at once and returns how many passed.
    async fn concurrently(v: &Arc<OidcVerifier>, token: &str, n: usize) -> usize {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (v, t) = (Arc::clone(v), token.to_owned());
            set.spawn(async move { v.verify(&t).await.is_ok() });
        }
        set.join_all().await.into_iter().filter(|ok| *ok).count()
    }

    #[tokio::test(start_paused = true)]
    async fn rotated_keys_are_fetched_once_for_many_callers_and_forged_kids_cause_no_storm() {
        let old = TestIssuer::with_kid("k1");
        let server = JwksServer::start(old.jwks_json()).await;
        let v = Arc::new(OidcVerifier::new(server.config()).await.unwrap());
        assert_eq!(server.fetches(), 1, "fetched at start");
        assert_eq!(concurrently(&v, &old.sign(&claims(&["sre"])), 10).await, 10);
        assert_eq!(server.fetches(), 1, "known kid: no fetch");

        // The provider rotates to k2; fifty callers with a k2 token arrive together.
        let new = TestIssuer::with_kid("k2");
        server.serve(Some(new.jwks_json()));
        tokio::time::advance(REFRESH_MIN + Duration::from_secs(1)).await;
        assert_eq!(concurrently(&v, &new.sign(&claims(&["sre"])), 50).await, 50);
        assert_eq!(server.fetches(), 2, "one fetch for all fifty callers");

        // Forged kids right after: refused without any fetch.
        for i in 0..100 {
            let forged = TestIssuer::with_kid(&format!("forged-{i}"));
            let err = v.verify(&forged.sign(&claims(&["sre"]))).await.unwrap_err();
            assert!(err.to_string().contains("no key for kid"), "{err}");
        }
        assert_eq!(server.fetches(), 2, "forged kids within the minimum interval fetch nothing");

        // After the interval, a burst of forged kids costs exactly one fetch.
        tokio::time::advance(REFRESH_MIN + Duration::from_secs(1)).await;
        let forged = TestIssuer::with_kid("forged-late");
        assert_eq!(concurrently(&v, &forged.sign(&claims(&["sre"])), 50).await, 0);
        assert_eq!(server.fetches(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_backs_off_exponentially_and_keeps_the_old_keys() {
        let issuer = TestIssuer::with_kid("k1");
        let server = JwksServer::start(issuer.jwks_json()).await;
        let v = Arc::new(OidcVerifier::new(server.config()).await.unwrap());
        server.serve(None);
        tokio::time::advance(REFRESH_MIN + Duration::from_secs(1)).await;
        let forged = TestIssuer::with_kid("forged").sign(&claims(&["sre"]));

        // First unknown kid: one fetch, which fails; everyone waiting shares it.
        assert_eq!(concurrently(&v, &forged, 20).await, 0);
        assert_eq!(server.fetches(), 2);
        // Within the backoff: no fetch, and the error says so.
        let err = v.verify(&forged).await.unwrap_err();
        assert!(matches!(err, AuthError::JwksBackoff(..)), "{err}");
        assert_eq!(server.fetches(), 2);
        // Known keys keep working while the provider is down.
        assert!(v.verify(&issuer.sign(&claims(&["sre"]))).await.is_ok());

        // Backoff 1 s, then 2 s, then 4 s.
        tokio::time::advance(BACKOFF_FIRST).await;
        assert!(v.verify(&forged).await.is_err());
        assert_eq!(server.fetches(), 3);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(v.verify(&forged).await.is_err());
        assert_eq!(server.fetches(), 3, "second backoff is 2 s");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(v.verify(&forged).await.is_err());
        assert_eq!(server.fetches(), 4);

        // The provider recovers with a new key: after the backoff, it is found.
        let new = TestIssuer::with_kid("k2");
        server.serve(Some(new.jwks_json()));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(v.verify(&new.sign(&claims(&["sre"]))).await.is_ok());
        assert_eq!(server.fetches(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_refreshed_on_schedule_so_a_withdrawn_key_stops_working() {
        let old = TestIssuer::with_kid("k1");
        let server = JwksServer::start(old.jwks_json()).await;
        let v = Arc::new(OidcVerifier::new(server.config()).await.unwrap());
        let every = Duration::from_secs(config().jwks_refresh_seconds);
        let new = TestIssuer::with_kid("k2");
        server.serve(Some(new.jwks_json()));

        tokio::time::advance(every - Duration::from_secs(1)).await;
        assert_eq!(server.fetches(), 1);
        assert!(v.verify(&old.sign(&claims(&["sre"]))).await.is_ok(), "not yet refreshed");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(server.fetches(), 2, "scheduled refresh");
        let err = v.verify(&old.sign(&claims(&["sre"]))).await.unwrap_err();
        assert!(err.to_string().contains("no key for kid"), "withdrawn key refused: {err}");
        assert!(v.verify(&new.sign(&claims(&["sre"]))).await.is_ok());
        assert_eq!(server.fetches(), 2);

        // A failing scheduled fetch keeps the keys and retries on the backoff, not every tick.
        server.serve(None);
        tokio::time::sleep(every - Duration::from_millis(500)).await;
        assert_eq!(server.fetches(), 3);
        assert!(v.verify(&new.sign(&claims(&["sre"]))).await.is_ok());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(server.fetches(), 4, "retried after 1 s");

        // Dropping the verifier ends the refresh task.
        drop(v);
        tokio::time::sleep(every * 3).await;
        assert!(server.fetches() <= 5, "fetches after drop: {}", server.fetches());
    }

    #[test]
    fn refresh_interval_below_the_minimum_is_refused() {
        let mut o = config();
        o.jwks_refresh_seconds = 0;
        let auth = super::super::AuthConfig { oidc: Some(o), ..super::super::AuthConfig::default() };
        assert!(auth.validate().unwrap_err().to_string().contains("jwks_refresh_seconds"));
    }
}
