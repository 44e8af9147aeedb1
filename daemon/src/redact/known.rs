//! The known-value scrubber: removes the actual values of the Secrets in
//! scope, wherever and however they appear in outgoing text.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::REDACTED;

/// Values shorter than this (after trimming) are not scrubbed: a Secret
/// holding `true` or `prod` would otherwise erase that word from every
/// message. Short values are left to the key and pattern rules.
pub const MIN_SECRET_LEN: usize = 6;

/// Lines of a multi-line value (a certificate, a config file) at least this
/// long are scrubbed on their own too, so one line quoted in a log goes.
const MIN_LINE_LEN: usize = 16;

/// Removes known secret values, in every form they are likely to take in
/// text: as is, trimmed, each long line of a multi-line value, and base64
/// (standard and URL-safe, with and without padding) of the raw and of the
/// trimmed bytes. One Aho-Corasick automaton over all of them, so the cost of
/// a scrub does not grow with the number of Secrets.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Longest first (also the automaton's pattern order).
    needles: Vec<String>,
    automaton: Option<AhoCorasick>,
}

/// Every form of `value` that can appear in text.
fn forms(value: &[u8], out: &mut Vec<String>) {
    let b64 = |bytes: &[u8], out: &mut Vec<String>| {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            out.push(engine.encode(bytes));
        }
    };
    let trimmed = value.trim_ascii();
    if trimmed.len() < MIN_SECRET_LEN {
        return;
    }
    b64(value, out);
    if trimmed.len() != value.len() {
        b64(trimmed, out);
    }
    if let Ok(text) = std::str::from_utf8(trimmed) {
        out.push(text.to_owned());
        if text.contains('\n') {
            out.extend(text.lines().map(str::trim).filter(|l| l.len() >= MIN_LINE_LEN).map(str::to_owned));
        }
        // What a JSON or YAML encoder makes of it (quotes, newlines, backslashes escaped).
        if let Ok(json) = serde_json::to_string(text) {
            let inner = &json[1..json.len() - 1];
            if inner != text {
                out.push(inner.to_owned());
            }
        }
    }
}

impl Scrubber {
    /// A scrubber for these secret values (raw bytes, as a Secret's `data` holds them).
    pub fn new<V: AsRef<[u8]>>(values: impl IntoIterator<Item = V>) -> Self {
        let mut needles = Vec::new();
        for v in values {
            forms(v.as_ref(), &mut needles);
        }
        needles.retain(|n| n.len() >= MIN_SECRET_LEN);
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        let automaton = if needles.is_empty() {
            None
        } else {
            // Leftmost-longest: a value containing another is removed whole.
            AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&needles).ok()
        };
        Self { needles, automaton }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// How many distinct forms are scrubbed.
    pub fn len(&self) -> usize {
        self.needles.len()
    }

    /// `text` without any known secret value.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(ac) = &self.automaton else { return Cow::Borrowed(text) };
        if !ac.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        ac.replace_all_with(text, &mut out, |_, _, dst| {
            dst.push_str(REDACTED);
            true
        });
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_value_goes() {
        let raw = "correct-horse-battery\n";
        let s = Scrubber::new([raw.as_bytes(), b"ab"]);
        let cases = [
            "correct-horse-battery".to_owned(),
            STANDARD.encode(raw),
            STANDARD.encode(raw.trim()),
            STANDARD_NO_PAD.encode(raw.trim()),
            URL_SAFE.encode(raw),
        ];
        for c in cases {
            let text = format!("got {c} here, ab");
            assert_eq!(s.scrub(&text), "got [REDACTED] here, ab", "form {c}");
        }
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn short_values_are_not_scrubbed_and_long_lines_are() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2xhdWRlIGNhbmFyeQ\n-----END CERTIFICATE-----\n";
        let s = Scrubber::new([&b"true"[..], pem.as_bytes()]);
        assert_eq!(s.scrub("enabled: true"), "enabled: true");
        assert_eq!(s.scrub("line MIIBszCCAVmgAwIBAgIUQ2xhdWRlIGNhbmFyeQ end"), "line [REDACTED] end");
    }

    #[test]
    fn json_escaped_values_and_overlaps() {
        let s = Scrubber::new(["pa\"ss\nword-1", "abcdef", "abcdefgh"]);
        assert_eq!(s.scrub(r#"{"v":"pa\"ss\nword-1"}"#), r#"{"v":"[REDACTED]"}"#);
        assert_eq!(s.scrub("x abcdefgh y abcdef"), "x [REDACTED] y [REDACTED]");
    }
}
