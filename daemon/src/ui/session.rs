//! Browser sessions and pending logins, in memory: a session is a random id in a cookie
//! (HttpOnly, Secure, SameSite=Strict) that names who signed in and the CSRF token their
//! forms carry. A restart signs everyone out; with several replicas, a session belongs to
//! the replica that created it (route browsers with session affinity).

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
    started: Instant,
}

struct Entry<T> {
    value: T,
    until: Instant,
}

/// Sessions and logins in progress.
pub struct Sessions {
    ttl: Duration,
    sessions: Mutex<HashMap<String, Entry<Viewer>>>,
    logins: Mutex<HashMap<String, Entry<Login>>>,
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
        Self { ttl, sessions: Mutex::default(), logins: Mutex::default() }
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
        let state = random_token();
        let login = Login { verifier: random_token(), nonce: random_token(), started: Instant::now() };
        let mut map = lock(&self.logins);
        make_room(&mut map, login.started);
        map.insert(state.clone(), Entry { value: login.clone(), until: login.started + LOGIN_TTL });
        (state, login)
    }

    /// The login `state` names, once: a callback replayed finds nothing.
    pub fn finish_login(&self, state: &str) -> Option<Login> {
        let e = lock(&self.logins).remove(state)?;
        (e.until > Instant::now() && e.value.started.elapsed() < LOGIN_TTL).then_some(e.value)
    }
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
        assert_eq!(s.finish_login(&state).unwrap().verifier, login.verifier);
        assert!(s.finish_login(&state).is_none(), "a replayed callback finds nothing");
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
