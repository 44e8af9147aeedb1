//! The redaction gate: everything that leaves the process (Slack, MCP
//! results, the approvals API, the NATS bus, the LLM request, OTel spans,
//! logs, the audit trail, command output) passes [`gate`] at its sink, so
//! no producer can forget it.
//!
//! Two layers: the rules ([`redact_text`], [`redact_value`]) remove what
//! *looks* like a secret (a `password=...` pair, an env var or ConfigMap key
//! named like a secret, a bearer/basic token, a JWT, a private key block, a
//! URL with credentials, well-known token formats); the [`Scrubber`] removes
//! what *is* a secret: the values of the Secrets in scope, which
//! [`watch::secrets`] keeps current from a watch (no listing per call).

pub mod fingerprint;
pub mod known;
pub mod watch;

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use regex::{Regex, RegexSet};
use serde::Serialize;
use serde_json::Value;

pub use known::Scrubber;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

struct Pattern {
    re: Regex,
    /// Replacement (may use capture groups).
    with: &'static str,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |re: &str, with: &'static str| Pattern { re: Regex::new(re).expect("redaction pattern"), with };
    pattern_list(p)
});

/// A key that names a secret, in the `key: value` patterns.
const SECRET_KEY: &str = r#"["']?[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth)[a-z0-9_.-]*["']?"#;

/// A YAML line `key:` whose value is not on the line: a block scalar (`|`, `>-`, ...) or a plain
/// scalar continued on the lines below (or a nested mapping, which [`redact_continued`] leaves to
/// its own keys). Group 1: the key's column (indentation, and a list item's `- `); group 2: the
/// block indicator, if any.
static CONTINUED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?im)^([ \t]*(?:-[ \t]+)?){SECRET_KEY}[ \t]*:[ \t]*([|>][-+0-9]*)?[ \t]*\r?$"))
        .expect("redaction pattern")
});

/// Every pattern in one automaton: one scan says whether any of them matches, so clean text
/// (nearly all of it: every key and string of every tool result) costs one pass, not ten.
static ANY: LazyLock<RegexSet> = LazyLock::new(|| {
    let all = PATTERNS.iter().map(|p| p.re.as_str()).chain([CONTINUED.as_str()]);
    RegexSet::new(all).expect("redaction pattern set")
});

fn pattern_list(p: impl Fn(&str, &'static str) -> Pattern) -> Vec<Pattern> {
    vec![
        p(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)", "[REDACTED PRIVATE KEY]"),
        p(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", REDACTED),
        p(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", "$1 [REDACTED]"),
        p(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", "${1}[REDACTED]@"),
        p(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
        p(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", REDACTED),
        p(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", REDACTED),
        p(r"\bsk-[A-Za-z0-9_-]{20,}", REDACTED),
        // key=value / key: value / "key": "value" where the key names a secret, the value on the
        // key's line: a key at a line's end never takes the next line's first word (in a diff,
        // its `-`/`+` marker). Values on the lines below are [`redact_continued`]'s.
        p(&format!(r#"(?i)({SECRET_KEY}[ \t]*[:=][ \t]*)("[^"]*"|'[^']*'|[^\s,;&"']+)"#), "${1}[REDACTED]"),
    ]
}

/// The lines below a secret-named `key:` that hold its value: every more-indented line of a block
/// scalar, or of a plain scalar continued there. A nested mapping or list (`secretKeyRef:` over
/// `name:`/`key:` lines) is not a value: its own keys go through the patterns. Lines with no more
/// indentation than the key's (a diff's next `-` line) end the value.
fn redact_continued(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    for caps in CONTINUED.captures_iter(text) {
        let (line_end, column) = (caps.get(0).map_or(0, |m| m.end()), caps[1].len());
        let block = caps.get(2).is_some();
        if line_end < copied {
            continue; // inside a value already redacted
        }
        let Some(newline) = text[line_end..].find('\n') else { continue };
        let start = line_end + newline + 1;
        let mut end = start;
        let mut value_lines = 0;
        for line in text[start..].split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let content = body.trim_start_matches([' ', '\t']);
            if content.is_empty() {
                end += line.len();
                continue;
            }
            if body.len() - content.len() <= column {
                break;
            }
            let structure = content.starts_with("- ") || content.ends_with(':') || content.contains(": ");
            if !block && (value_lines == 0 && structure || content.starts_with('#')) {
                break;
            }
            value_lines += 1;
            end += line.len();
        }
        if value_lines == 0 {
            continue;
        }
        // Copy through the key's line; each value line keeps its indentation and line ending.
        out.push_str(&text[copied..start]);
        for line in text[start..end].split_inclusive('\n') {
            let body = line.trim_end_matches(['\n', '\r']);
            let content = body.trim_start_matches([' ', '\t']);
            out.push_str(&body[..body.len() - content.len()]);
            if !content.is_empty() {
                out.push_str(REDACTED);
            }
            out.push_str(&line[body.len()..]);
        }
        copied = end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Remove secret-looking substrings from `text`.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !ANY.is_match(text) {
        return Cow::Borrowed(text);
    }
    // Something matches: values on the lines below their key first (the key's line keeps its
    // block indicator for this pass), then the patterns in order, each on what the previous left.
    let mut out = if CONTINUED.is_match(text) { redact_continued(text) } else { Cow::Borrowed(text) };
    for p in PATTERNS.iter() {
        if p.re.is_match(&out) {
            out = Cow::Owned(p.re.replace_all(&out, p.with).into_owned());
        }
    }
    out
}

/// Whether a field or variable name says its value is secret. Names that
/// *refer* to a secret (`secretName`, `secretKeyRef`, `tokenSecrets`) are not.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const REFERS: &[&str] = &["name", "names", "ref", "refs", "secrets", "kind", "type"];
    if REFERS.iter().any(|s| k.ends_with(s)) && !k.ends_with("password") {
        return false;
    }
    ["password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "private_key", "privatekey", "credential"]
        .iter()
        .any(|w| k.contains(w))
        || k == "authorization"
        || k == "pwd"
}

/// Redact a JSON value in place: secret-looking strings, and the values of
/// object fields whose name says they are secret.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(r) = redact_text(s) {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            // Kubernetes env entries: {"name": "DB_PASSWORD", "value": "..."}.
            let env_secret = map.get("name").and_then(Value::as_str).is_some_and(is_secret_key);
            for (k, item) in map.iter_mut() {
                let secret_field = is_secret_key(k) || (env_secret && k == "value");
                if secret_field && (item.is_string() || item.is_number()) {
                    *item = Value::String(REDACTED.into());
                } else {
                    redact_value(item);
                }
            }
        }
        _ => {}
    }
}

/// The one gate. Cheap to call: the known values sit behind an `Arc` that
/// the Secret watch swaps when a Secret changes.
#[derive(Debug, Default)]
pub struct Gate {
    known: RwLock<Arc<Scrubber>>,
}

static GATE: LazyLock<Gate> = LazyLock::new(Gate::default);

/// The process's gate (a global because the log writer needs it before
/// anything else is built, and every sink must see the same known values).
pub fn gate() -> &'static Gate {
    &GATE
}

impl Gate {
    /// Replace the known secret values.
    pub fn set_known(&self, scrubber: Scrubber) {
        *self.known.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(scrubber);
    }

    /// The known secret values as of now.
    pub fn known(&self) -> Arc<Scrubber> {
        self.known.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `text` fit to leave the process.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let known = self.known();
        match known.scrub(text) {
            Cow::Borrowed(t) => redact_text(t),
            Cow::Owned(t) => Cow::Owned(redact_text(&t).into_owned()),
        }
    }

    /// Bytes fit to leave the process (a log line); non-UTF-8 input is scrubbed lossily.
    pub fn bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let text = String::from_utf8_lossy(bytes);
        match self.text(&text) {
            Cow::Borrowed(_) if matches!(text, Cow::Borrowed(_)) => Cow::Borrowed(bytes),
            other => Cow::Owned(other.into_owned().into_bytes()),
        }
    }

    /// Redact a JSON value in place: the key rules, the patterns, the known
    /// values, also inside strings that hold JSON (a last-applied annotation,
    /// a tool result's text block). Returns whether anything changed.
    pub fn value(&self, v: &mut Value) -> bool {
        let known = self.known();
        gate_value(&known, v)
    }

    /// `item` serialized and redacted.
    pub fn json<T: Serialize + ?Sized>(&self, item: &T) -> Result<Value, serde_json::Error> {
        let mut v = serde_json::to_value(item)?;
        self.value(&mut v);
        Ok(v)
    }

    /// `item` serialized, redacted, and read back as its own type (for sinks
    /// that take typed values, like an MCP result).
    pub fn typed<T: Serialize + serde::de::DeserializeOwned>(&self, item: T) -> T {
        let Ok(mut v) = serde_json::to_value(&item) else { return item };
        if !self.value(&mut v) {
            return item;
        }
        serde_json::from_value(v).unwrap_or(item)
    }
}

fn gate_text(known: &Scrubber, s: &mut String) -> bool {
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(mut inner) = serde_json::from_str::<Value>(s)
    {
        if !gate_value(known, &mut inner) {
            return false;
        }
        let pretty = s.contains("\n ");
        let out = if pretty { serde_json::to_string_pretty(&inner) } else { serde_json::to_string(&inner) };
        if let Ok(out) = out {
            *s = out;
            return true;
        }
    }
    let scrubbed = match known.scrub(s) {
        Cow::Borrowed(t) => match redact_text(t) {
            Cow::Borrowed(_) => return false,
            Cow::Owned(r) => r,
        },
        Cow::Owned(t) => redact_text(&t).into_owned(),
    };
    *s = scrubbed;
    true
}

/// Whether [`gate_text`] could change `key` (without copying it): JSON in it, a known value, a pattern.
fn key_may_change(known: &Scrubber, key: &str) -> bool {
    let t = key.trim_start();
    t.starts_with('{') || t.starts_with('[') || matches!(known.scrub(key), Cow::Owned(_)) || ANY.is_match(key)
}

fn gate_value(known: &Scrubber, v: &mut Value) -> bool {
    match v {
        Value::String(s) => gate_text(known, s),
        Value::Array(items) => items.iter_mut().fold(false, |changed, i| gate_value(known, i) | changed),
        Value::Object(map) => {
            // Kubernetes env entries: {"name": "DB_PASSWORD", "value": "..."}.
            let env_secret = map.get("name").and_then(Value::as_str).is_some_and(is_secret_key);
            let mut changed = false;
            // Keys are rarely secret: only those that are get the map rebuilt.
            let mut keys = Vec::new();
            for (k, item) in map.iter_mut() {
                let secret_field = is_secret_key(k) || (env_secret && k == "value");
                if secret_field && (item.is_string() || item.is_number()) {
                    changed |= item.as_str() != Some(REDACTED);
                    *item = Value::String(REDACTED.into());
                } else {
                    changed |= gate_value(known, item);
                }
                if key_may_change(known, k) {
                    let mut key = k.clone();
                    if gate_text(known, &mut key) {
                        keys.push((k.clone(), key));
                    }
                }
            }
            for (old, new) in keys {
                if let Some(item) = map.remove(&old) {
                    map.insert(new, item);
                    changed = true;
                }
            }
            changed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cases = [
            ("connecting with password=hunter2 now", "connecting with password=[REDACTED] now"),
            ("DB_PASSWORD: s3cr3t", "DB_PASSWORD: [REDACTED]"),
            (r#"{"api_key": "abc123"}"#, r#"{"api_key": [REDACTED]}"#),
            ("Authorization: Bearer abcdefghijklmnop", "Authorization: [REDACTED] [REDACTED]"),
            ("curl -H 'x: Bearer abcdefghijklmnop'", "curl -H 'x: Bearer [REDACTED]'"),
            ("postgres://app:pa55w0rd@db:5432/x", "postgres://[REDACTED]@db:5432/x"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x", "jwt [REDACTED]"),
            ("all good, 3 replicas ready", "all good, 3 replicas ready"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), want, "input: {input}");
        }
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----";
        assert_eq!(redact_text(pem), "[REDACTED PRIVATE KEY]");
    }

    /// A secret-named key at a line's end: its value on the lines below is redacted (block and
    /// plain scalars), a nested mapping is left to its own keys, and a diff's next line keeps its
    /// marker and text.
    #[test]
    fn values_on_the_lines_below_their_key() {
        let cases = [
            // Block scalars, at any indentation and in a list item; the value ends at less indentation.
            (
                "password: |\n  hunter2\n  second line\nmode: prod",
                "password: [REDACTED]\n  [REDACTED]\n  [REDACTED]\nmode: prod",
            ),
            (
                "  - api_key: >-\n      s3cr3t: with colon\n\n      more\n    next: x",
                "  - api_key: [REDACTED]\n      [REDACTED]\n\n      [REDACTED]\n    next: x",
            ),
            ("token: |\r\n  abc\r\n", "token: [REDACTED]\r\n  [REDACTED]\r\n"),
            // A plain scalar continued below its key.
            ("db:\n  password:\n    hunter2\n  user: app", "db:\n  password:\n    [REDACTED]\n  user: app"),
            // A nested mapping is not a value: its keys are judged on their own.
            ("secretKeyRef:\n  name: api-db\n  key: DB_PASSWORD", "secretKeyRef:\n  name: api-db\n  key: DB_PASSWORD"),
            ("credentials:\n  - token: abc", "credentials:\n  - token: [REDACTED]"),
            // A unified diff: the key at a line's end does not eat the next line's marker.
            (
                "-        secretKeyRef:\n-          key: DB_PASWORD\n+        secretKeyRef:\n+          key: DB_PASSWORD",
                "-        secretKeyRef:\n-          key: DB_PASWORD\n+        secretKeyRef:\n+          key: DB_PASSWORD",
            ),
            // Same-line values never reach across a line.
            ("password:\nnext: 1", "password:\nnext: 1"),
            ("token =\n  ", "token =\n  "),
            ("auth:", "auth:"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), want, "input: {input:?}");
        }
        // The pre-scan sees a key whose value is on the next line.
        assert!(ANY.is_match("password:\n  hunter2"));
    }

    #[test]
    fn json_values() {
        let mut v = serde_json::json!({
            "env": [{"name": "DB_PASSWORD", "value": "plain"}, {"name": "MODE", "value": "prod"}],
            "token": "t0k3n",
            "msg": "password=abc",
        });
        redact_value(&mut v);
        assert_eq!(v["env"][0]["value"], REDACTED);
        assert_eq!(v["env"][1]["value"], "prod");
        assert_eq!(v["token"], REDACTED);
        assert_eq!(v["msg"], "password=[REDACTED]");
    }

    fn canary_gate() -> Gate {
        let g = Gate::default();
        g.set_known(Scrubber::new(["Zq9-canary-Value-77"]));
        g
    }

    #[test]
    fn gate_scrubs_known_values_patterns_and_json_in_strings() {
        let g = canary_gate();
        assert_eq!(g.text("log: Zq9-canary-Value-77 and token=abc"), "log: [REDACTED] and token=[REDACTED]");
        let last_applied = serde_json::json!({"spec": {"containers": [{"env": [
            {"name": "MODE", "value": "Zq9-canary-Value-77"}, {"name": "API_TOKEN", "value": "other-literal"}]}]}});
        let mut v = serde_json::json!({
            "metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string(),
                "kubernetes.io/change-cause": "kubectl set env MODE=Zq9-canary-Value-77",
            }},
            "data": {"db_password": "plain-literal", "mode": "fine"},
            "volumes": [{"secret": {"secretName": "db-creds"}}],
            "Zq9-canary-Value-77": 1,
        });
        assert!(g.value(&mut v));
        let out = v.to_string();
        for leaked in ["Zq9-canary", "other-literal", "plain-literal"] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert_eq!(v["volumes"][0]["secret"]["secretName"], "db-creds", "a reference to a Secret is not a secret");
        assert_eq!(v["data"]["mode"], "fine");
        let annotation =
            v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap();
        let inner: Value = serde_json::from_str(annotation).expect("still JSON");
        assert_eq!(inner["spec"]["containers"][0]["env"][1]["value"], REDACTED);
    }

    #[test]
    fn gate_leaves_clean_values_alone() {
        let g = canary_gate();
        let mut v = serde_json::json!({"summary": "3 of 3 replicas ready", "text": "{\"a\": 1}"});
        let before = v.clone();
        assert!(!g.value(&mut v));
        assert_eq!(v, before);
        assert!(matches!(g.bytes(b"plain line\n"), Cow::Borrowed(_)));
        assert_eq!(&*g.bytes(b"x Zq9-canary-Value-77\n"), b"x [REDACTED]\n");
    }

    #[test]
    fn typed_values_round_trip() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Out {
            message: String,
            count: u32,
        }
        let g = canary_gate();
        let out = g.typed(Out { message: "exec probe said Zq9-canary-Value-77".into(), count: 2 });
        assert_eq!(out, Out { message: "exec probe said [REDACTED]".into(), count: 2 });
    }

    #[test]
    fn references_to_secrets_are_not_secret_keys() {
        for k in ["secretName", "secretKeyRef", "imagePullSecrets", "tokenSecretRef", "secret_type"] {
            assert!(!is_secret_key(k), "{k}");
        }
        for k in ["DB_PASSWORD", "apiToken", "client_secret", "AWS_SECRET_ACCESS_KEY", "credentials"] {
            assert!(is_secret_key(k), "{k}");
        }
    }
}
