//! Slack request signing (v0): `X-Slack-Signature = "v0=" + hex(HMAC-SHA256(
//! signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw_body))`,
//! with timestamps more than five minutes away from now refused as replays.
//!
//! The rules match `slack_sdk.signature.SignatureVerifier` exactly (checked
//! against it by tests/python/test_slack.py over the shared vectors in
//! tests/python/fixtures/slack_signatures.json): the comparison is on the
//! lowercase hex string, and the timestamp window is `|now - ts| <= 300`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now, in seconds.
pub const MAX_AGE_SECONDS: i64 = 60 * 5;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature header")]
    Missing,
    #[error("X-Slack-Request-Timestamp is not a number")]
    BadTimestamp,
    #[error("request timestamp is more than five minutes from now")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

/// The `X-Slack-Signature` value for a request (for tests and the stand-in).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// Verify one request at time `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if now.abs_diff(ts) > MAX_AGE_SECONDS as u64 {
        return Err(SignatureError::Stale);
    }
    // Only the canonical form (what Slack sends and slack_sdk compares) is accepted.
    let hex_part = signature.strip_prefix("v0=").ok_or(SignatureError::Mismatch)?;
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(SignatureError::Mismatch);
    }
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Mismatch)?;
    // Constant-time comparison.
    mac(secret, timestamp, body).verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        secret: String,
        timestamp: String,
        now: i64,
        body: String,
        signature: String,
        valid: bool,
    }

    const VECTORS: &str = include_str!("../../../tests/python/fixtures/slack_signatures.json");

    #[test]
    fn agrees_with_the_shared_vectors() {
        let vectors: Vec<Vector> = serde_json::from_str(VECTORS).unwrap();
        assert!(vectors.len() >= 8);
        for v in vectors {
            let got = verify(v.secret.as_bytes(), Some(&v.timestamp), Some(&v.signature), v.body.as_bytes(), v.now);
            assert_eq!(got.is_ok(), v.valid, "vector {}: {got:?}", v.name);
        }
    }

    #[test]
    fn slack_documentation_example() {
        // https://api.slack.com/authentication/verifying-requests-from-slack
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = sign(secret, "1531420618", body);
        assert_eq!(sig, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503");
        assert_eq!(verify(secret, Some("1531420618"), Some(&sig), body, 1531420618 + 10), Ok(()));
    }

    #[test]
    fn refusals() {
        let s = b"secret";
        let sig = sign(s, "1000", b"body");
        assert_eq!(verify(s, None, Some(&sig), b"body", 1000), Err(SignatureError::Missing));
        assert_eq!(verify(s, Some("x"), Some(&sig), b"body", 1000), Err(SignatureError::BadTimestamp));
        assert_eq!(verify(s, Some("1000"), Some(&sig), b"body", 1301), Err(SignatureError::Stale));
        assert_eq!(verify(s, Some("1000"), Some(&sig), b"body", 1300), Ok(()));
        assert_eq!(verify(s, Some("1000"), Some(&sig), b"bodY", 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"other", Some("1000"), Some(&sig), b"body", 1000), Err(SignatureError::Mismatch));
        let upper = format!("v0={}", sig[3..].to_uppercase());
        assert_eq!(verify(s, Some("1000"), Some(&upper), b"body", 1000), Err(SignatureError::Mismatch));
    }
}
