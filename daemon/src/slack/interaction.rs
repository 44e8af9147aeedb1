//! Interaction payloads: Slack POSTs `application/x-www-form-urlencoded`
//! with one field, `payload`, holding JSON. Only `block_actions` from the
//! proposal buttons matter here; everything else is ignored.

use serde::Deserialize;

use super::blocks::{APPROVE_ACTION, REJECT_ACTION};

/// The parts of a `block_actions` payload kubemedic reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: User,
    #[serde(default)]
    pub actions: Vec<ActionValue>,
    pub channel: Option<Channel>,
    pub container: Option<Container>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: String,
    pub username: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionValue {
    pub action_id: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Container {
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
}

/// A decision read from a click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub proposal_id: String,
    pub approve: bool,
    pub user: String,
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("form body has no `payload` field")]
    NoPayload,
    #[error("`payload` is not valid percent-encoding")]
    Encoding,
    #[error("`payload` is not a JSON block_actions payload: {0}")]
    Json(String),
}

/// Decode one field of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Result<Option<String>, PayloadError> {
    for pair in body.split(|b| *b == b'&') {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = percent_decode(kv.next().unwrap_or_default())?;
        if key == name {
            return percent_decode(kv.next().unwrap_or_default()).map(Some);
        }
    }
    Ok(None)
}

fn percent_decode(s: &[u8]) -> Result<String, PayloadError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Exactly two hex digits: `u8::from_str_radix` would also take a sign (`%+1`).
                let digit = |at: usize| s.get(at).and_then(|b| char::from(*b).to_digit(16));
                let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
                    return Err(PayloadError::Encoding);
                };
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| PayloadError::Encoding)
}

/// Parse a form body into the payload, or `Ok(None)` when it is some other
/// interaction type kubemedic does not handle.
pub fn parse(body: &[u8]) -> Result<Option<BlockActions>, PayloadError> {
    let payload = form_field(body, "payload")?.ok_or(PayloadError::NoPayload)?;
    let value: serde_json::Value = serde_json::from_str(&payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    if value.get("type").and_then(|t| t.as_str()) != Some("block_actions") {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(|e| PayloadError::Json(e.to_string()))
}

impl BlockActions {
    /// The proposal decision this payload carries, if it is a click on our buttons.
    pub fn click(&self) -> Option<Click> {
        self.actions.iter().find_map(|a| {
            let approve = match a.action_id.as_str() {
                APPROVE_ACTION => true,
                REJECT_ACTION => false,
                _ => return None,
            };
            let proposal_id = a.value.clone().filter(|v| !v.is_empty())?;
            let channel = self
                .channel
                .as_ref()
                .map(|c| c.id.clone())
                .or_else(|| self.container.as_ref().and_then(|c| c.channel_id.clone()));
            Some(Click { proposal_id, approve, user: self.user.id.clone(), channel })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn parses_a_click() {
        let payload = r#"{"type":"block_actions","user":{"id":"U1","username":"ana"},"channel":{"id":"C1"},
            "container":{"type":"message","message_ts":"1.2","channel_id":"C1"},
            "actions":[{"action_id":"kubemedic_approve","block_id":"kubemedic_decision","value":"p 1","type":"button"}]}"#;
        let body = format!("payload={}", encode(payload));
        let a = parse(body.as_bytes()).unwrap().unwrap();
        assert_eq!(
            a.click(),
            Some(Click { proposal_id: "p 1".into(), approve: true, user: "U1".into(), channel: Some("C1".into()) })
        );
    }

    /// A sign after `%` was read as part of the number, so `%+1` decoded to U+0001 where every
    /// other decoder keeps it literal; fuzz/fuzz_targets/slack_interaction.rs checks the decoder
    /// against `form_urlencoded`.
    #[test]
    fn percent_escapes_are_two_hex_digits() {
        assert_eq!(form_field(b"payload=%+1", "payload"), Err(PayloadError::Encoding));
        assert_eq!(form_field(b"payload=%-1", "payload"), Err(PayloadError::Encoding));
        assert_eq!(form_field(b"%+0payload=x", "payload"), Err(PayloadError::Encoding));
        assert_eq!(form_field(b"payload=%7b%7D+%C3%BC", "payload"), Ok(Some("{} \u{fc}".to_owned())));
    }

    #[test]
    fn ignores_other_types_and_refuses_junk() {
        let body = format!("payload={}", encode(r#"{"type":"view_submission","user":{"id":"U1"}}"#));
        assert!(parse(body.as_bytes()).unwrap().is_none());
        assert_eq!(parse(b"foo=bar").unwrap_err(), PayloadError::NoPayload);
        assert_eq!(parse(b"payload=%ZZ").unwrap_err(), PayloadError::Encoding);
        assert!(matches!(parse(b"payload=%7Bnope").unwrap_err(), PayloadError::Json(_)));
        for truncated in ["payload=%", "payload=%7", "payload=a%4"] {
            assert_eq!(parse(truncated.as_bytes()).unwrap_err(), PayloadError::Encoding, "{truncated}");
        }
        let other = format!(
            "payload={}",
            encode(r#"{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"x","value":"p"}]}"#)
        );
        assert!(parse(other.as_bytes()).unwrap().unwrap().click().is_none());
    }
}
