//! Browser sessions and logins in progress: a session is a random id in a cookie (HttpOnly,
//! Secure, SameSite=Strict) that names who signed in and the CSRF token their forms carry. A
//! restart signs everyone out; with several replicas, a session belongs to the replica that
//! created it (route browsers with session affinity).
//!
//! A login in progress holds no memory: its `state` carries its start time and a MAC under a
//! key of this process, and its PKCE verifier and nonce are MACs of the state, so anyone may
//! start logins at any rate without pushing out someone else's. Only a finished login's
//! state is remembered (until it would have expired), so a replayed callback finds nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};

use crate::auth::Role;

/// The session cookie.
pub const SESSION_COOKIE: &str = "km_session";
/// The cookie that binds a login in progress to the browser that started it.
pub const LOGIN_COOKIE: &str = "km_login";
/// How long a login may take at the identity provider.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Most sessions (and, separately, logins in progress) held; the oldest go first.
const MAX_ENTRIES: usize = 10_000;

/// Who is looking at a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    pub groups: Vec<String>,
    /// The CSRF token of a browser session; `None` for a bearer token.
    pub csrf: Option<String>,
}

impl Viewer {
    pub fn may_decide(&self) -> bool {
        self.role >= Role::Approver
    }
}

/// A login between the redirect to the identity provider and its callback.
#[derive(Debug, Clone)]
pub struct Login {
    pub verifier: String,
    pub nonce: String,
}

struct Entry<T> {
    value: T,
    until: Instant,
}

/// Sessions, and the key and finished states of logins.
pub struct Sessions {
    ttl: Duration,
    sessions: Mutex<HashMap<String, Entry<Viewer>>>,
    /// Signs login states and derives their verifier and nonce; new at every start.
    login_key: ring::hmac::Key,
    /// States of finished logins, until they would have expired.
    finished: Mutex<HashMap<String, Entry<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Drop what expired, then the entries closest to expiring while the map is full.
fn make_room<T>(map: &mut HashMap<String, Entry<T>>, now: Instant) {
    map.retain(|_, e| e.until > now);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let login_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).expect("the system's random source");
        Self { ttl, sessions: Mutex::default(), login_key, finished: Mutex::default() }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `viewer` (its CSRF token is set here); returns the session id.
    pub fn create(&self, mut viewer: Viewer) -> String {
        viewer.csrf = Some(random_token());
        let id = random_token();
        let now = Instant::now();
        let mut map = lock(&self.sessions);
        make_room(&mut map, now);
        map.insert(id.clone(), Entry { value: viewer, until: now + self.ttl });
        id
    }

    pub fn get(&self, id: &str) -> Option<Viewer> {
        let map = lock(&self.sessions);
        map.get(id).filter(|e| e.until > Instant::now()).map(|e| e.value.clone())
    }

    pub fn remove(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// A new login: returns its `state` (also the value of the login cookie) and the login.
    pub fn start_login(&self) -> (String, Login) {
        let body = format!("{}.{}", unix_seconds(), random_token());
        let state = format!("{body}.{}", self.mac("state", &body));
        let login = self.login_of(&state);
        (state, login)
    }

    /// The login `state` names, once: a forged or expired state, or a callback replayed,
    /// finds nothing.
    pub fn finish_login(&self, state: &str) -> Option<Login> {
        self.finish_login_at(state, unix_seconds())
    }

    fn finish_login_at(&self, state: &str, now: u64) -> Option<Login> {
        let (body, mac) = state.rsplit_once('.')?;
        if !same(mac, &self.mac("state", body)) {
            return None;
        }
        let started: u64 = body.split_once('.')?.0.parse().ok()?;
        if started > now || now - started >= LOGIN_TTL.as_secs() {
            return None;
        }
        let at = Instant::now();
        let mut finished = lock(&self.finished);
        make_room(&mut finished, at);
        if finished.contains_key(state) {
            return None;
        }
        finished.insert(state.to_owned(), Entry { value: (), until: at + LOGIN_TTL });
        Some(self.login_of(state))
    }

    fn login_of(&self, state: &str) -> Login {
        Login { verifier: self.mac("verifier", state), nonce: self.mac("nonce", state) }
    }

    /// HMAC-SHA256 of `purpose|data` under the login key, lowercase hex (64 characters, a valid
    /// PKCE verifier).
    fn mac(&self, purpose: &str, data: &str) -> String {
        hex::encode(ring::hmac::sign(&self.login_key, format!("{purpose}|{data}").as_bytes()))
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 256 random bits, lowercase hex: no run of it can look like a token format the
/// redaction gate removes from pages (`sk-…`, `ghp_…`, `AKIA…`), which would break the form.
pub fn random_token() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and Secure always (browsers keep Secure cookies on
/// `http://localhost` and `http://127.0.0.1` too).
pub fn set_cookie(name: &str, value: &str, path: &str, same_site: &str, max_age: Duration) -> HeaderValue {
    let v =
        format!("{name}={value}; Path={path}; Max-Age={}; HttpOnly; Secure; SameSite={same_site}", max_age.as_secs());
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str, path: &str) -> HeaderValue {
    set_cookie(name, "", path, "Strict", Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Viewer {
        Viewer { user: "ana".into(), role: Role::Approver, groups: vec![], csrf: None }
    }

    #[test]
    fn sessions_carry_a_csrf_token_and_end() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create(viewer());
        let v = s.get(&id).unwrap();
        assert_eq!(v.user, "ana");
        let csrf = v.csrf.unwrap();
        assert_eq!(csrf.len(), 64, "256 bits");
        assert_ne!(csrf, id);
        assert!(s.get("forged").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::ZERO);
        let id = short.create(viewer());
        assert!(short.get(&id).is_none(), "expired");
    }

    #[test]
    fn a_login_finishes_once() {
        let s = Sessions::new(Duration::from_secs(60));
        let (state, login) = s.start_login();
        assert_ne!(login.verifier, login.nonce);
        assert_eq!(login.verifier.len(), 64);
        let finished = s.finish_login(&state).unwrap();
        assert_eq!((finished.verifier, finished.nonce), (login.verifier, login.nonce));
        assert!(s.finish_login(&state).is_none(), "a replayed callback finds nothing");
    }

    /// Forged, altered, foreign and expired states find nothing; a flood of logins started
    /// holds no memory and pushes out no one's login in progress.
    #[test]
    fn login_states_are_unforgeable_and_a_flood_evicts_nothing() {
        let s = Sessions::new(Duration::from_secs(60));
        let (state, login) = s.start_login();
        for _ in 0..(MAX_ENTRIES * 2) {
            s.start_login();
        }
        let (body, mac) = state.rsplit_once('.').unwrap();
        let (started, random) = body.split_once('.').unwrap();
        let later: u64 = started.parse::<u64>().unwrap() + 1;
        let forged = [
            "forged".to_owned(),
            format!("{later}.{random}.{mac}"),             // an altered start time
            format!("{started}.{}.{mac}", random_token()), // another random part
            format!("{body}.{}", random_token()),          // a made-up MAC
            format!("{body}."),
        ];
        for f in &forged {
            assert!(s.finish_login(f).is_none(), "{f}");
        }
        let other = Sessions::new(Duration::from_secs(60));
        assert!(other.finish_login(&state).is_none(), "another process's (or replica's) key");
        let t: u64 = started.parse().unwrap();
        assert!(s.finish_login_at(&state, t + LOGIN_TTL.as_secs()).is_none(), "expired");
        assert!(s.finish_login_at(&state, t - 1).is_none(), "started in the future");
        assert_eq!(s.finish_login(&state).unwrap().verifier, login.verifier, "the first login still finishes");
    }

    #[test]
    fn cookies_are_parsed_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; km_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "km"), None);
        let c = set_cookie(SESSION_COOKIE, "abc", "/ui", "Strict", Duration::from_secs(60));
        let c = c.to_str().unwrap();
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui", "Max-Age=60"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn the_store_stays_bounded() {
        let mut map = HashMap::new();
        let now = Instant::now();
        for i in 0..MAX_ENTRIES {
            map.insert(i.to_string(), Entry { value: (), until: now + Duration::from_secs(i as u64 + 1) });
        }
        make_room(&mut map, now);
        assert_eq!(map.len(), MAX_ENTRIES - 1);
        assert!(!map.contains_key("0"), "the entry closest to expiring went first");
    }
}
