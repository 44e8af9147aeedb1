//! Secret redaction, used by every module that lets cluster text leave the
//! process (tool results, logs, spans, audit records, Slack messages).
//!
//! Two layers: [`redact_text`] removes what *looks* like a secret (a
//! `password=...` pair, a bearer token, a JWT, a private key block, a
//! URL with credentials, well-known token formats); a [`Scrubber`] removes
//! what *is* a secret: the actual values of the Secrets in scope, in plain
//! and base64 form, wherever they appear.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

struct Pattern {
    re: Regex,
    /// Replacement (may use capture groups).
    with: &'static str,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |re: &str, with: &'static str| Pattern { re: Regex::new(re).expect("redaction pattern"), with };
    vec![
        p(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)", "[REDACTED PRIVATE KEY]"),
        p(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", REDACTED),
        p(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", "$1 [REDACTED]"),
        p(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", "${1}[REDACTED]@"),
        p(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
        p(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", REDACTED),
        p(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", REDACTED),
        p(r"\bsk-[A-Za-z0-9_-]{20,}", REDACTED),
        // key=value / key: value / "key": "value" where the key names a secret.
        p(
            r#"(?i)(["']?[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth)[a-z0-9_.-]*["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&"']+)"#,
            "${1}[REDACTED]",
        ),
    ]
});

/// Remove secret-looking substrings from `text`.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for p in PATTERNS.iter() {
        if p.re.is_match(&out) {
            out = Cow::Owned(p.re.replace_all(&out, p.with).into_owned());
        }
    }
    out
}

/// Whether a field or variable name says its value is secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
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

/// Removes known secret values (and their base64 forms) from text.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    needles: Vec<String>,
}

/// Values shorter than this are not scrubbed: they would match everywhere.
const MIN_SECRET_LEN: usize = 4;

impl Scrubber {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one secret value.
    pub fn add(&mut self, value: &[u8]) {
        let Ok(text) = std::str::from_utf8(value) else {
            // Binary values can still appear base64-encoded.
            self.push(base64::engine::general_purpose::STANDARD.encode(value));
            return;
        };
        let text = text.trim();
        if text.len() < MIN_SECRET_LEN {
            return;
        }
        self.push(text.to_owned());
        self.push(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()));
        // Multi-line values (certificates, files): each substantial line on its own.
        for line in text.lines().map(str::trim).filter(|l| l.len() >= 16) {
            self.push(line.to_owned());
        }
    }

    fn push(&mut self, s: String) {
        if s.len() >= MIN_SECRET_LEN && !self.needles.contains(&s) {
            self.needles.push(s);
            // Longest first, so a value containing another is removed whole.
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` without any known secret value.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = Cow::Owned(out.replace(n.as_str(), REDACTED));
            }
        }
        out
    }

    /// Scrub every string (and object key) of a JSON value in place.
    pub fn scrub_value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.scrub(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_value(i)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut item) in old {
                    self.scrub_value(&mut item);
                    map.insert(self.scrub(&k).into_owned(), item);
                }
            }
            _ => {}
        }
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

    #[test]
    fn scrubber_removes_known_values_and_base64() {
        let mut s = Scrubber::new();
        s.add(b"correct-horse-battery");
        s.add(b"ab"); // too short, ignored
        let b64 = base64::engine::general_purpose::STANDARD.encode("correct-horse-battery");
        let text = format!("got correct-horse-battery and {b64} ab");
        assert_eq!(s.scrub(&text), "got [REDACTED] and [REDACTED] ab");
        let mut v = serde_json::json!({"a": ["x correct-horse-battery y"], "correct-horse-battery": 1});
        s.scrub_value(&mut v);
        assert!(!v.to_string().contains("correct-horse"), "{v}");
    }
}
