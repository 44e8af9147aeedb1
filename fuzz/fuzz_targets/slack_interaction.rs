//! Slack interaction requests, in the order `POST /slack/interactions`
//! (daemon/src/approvals/http.rs) handles them: the v0 signature over the raw
//! body with the timestamp window, then the form-encoded `payload=` field,
//! the block_actions JSON inside it, and the click read from it.
//!
//! Input: `timestamp \n signature \n body`, so the fuzzer controls both headers
//! and the body. Since it cannot forge a signature, the body is also signed
//! with the secret (as Slack would) to reach the payload parser.
//!
//! Properties: nothing panics; only what `sign` makes verifies, and only
//! within five minutes; any change to a good signature is refused; the form
//! decoder agrees with the WHATWG urlencoded parser (the `form_urlencoded`
//! crate) whenever it accepts; a click survives re-encoding of its payload.
#![no_main]

use kubemedic::approvals::slack::interaction::{self, PayloadError};
use kubemedic::approvals::slack::signature::{self, MAX_AGE_SECONDS, SignatureError};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let ts = parts.next().map(|p| String::from_utf8_lossy(p).into_owned());
    let sig = parts.next().map(|p| String::from_utf8_lossy(p).into_owned());
    let body = parts.next().unwrap_or_default();

    // The headers as sent.
    match signature::verify(SECRET, ts.as_deref(), sig.as_deref(), body, NOW) {
        Ok(()) => {
            let ts = ts.as_deref().expect("verified without a timestamp");
            let at: i64 = ts.trim().parse().expect("verified with a timestamp that is not a number");
            assert!(NOW.abs_diff(at) <= MAX_AGE_SECONDS as u64, "verified a stale timestamp {at}");
            assert_eq!(sig.as_deref(), Some(signature::sign(SECRET, ts, body).as_str()), "forged signature verified");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // The same body signed as Slack would, at the fuzzed timestamp when it is a number.
    let ts = ts.filter(|t| t.trim().parse::<i64>().is_ok()).unwrap_or_else(|| NOW.to_string());
    let at: i64 = ts.trim().parse().expect("checked above");
    let good = signature::sign(SECRET, &ts, body);
    let fresh = NOW.abs_diff(at) <= MAX_AGE_SECONDS as u64;
    let verdict = signature::verify(SECRET, Some(&ts), Some(&good), body, NOW);
    assert_eq!(verdict.is_ok(), fresh, "{verdict:?} for a good signature at {at}");
    if !fresh {
        assert_eq!(verdict, Err(SignatureError::Stale));
        return;
    }
    // Any one-character change to a good signature is refused.
    let mut bad = good.clone().into_bytes();
    let i = body.first().map_or(3, |b| 3 + *b as usize % 64);
    bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).expect("hex");
    assert_eq!(signature::verify(SECRET, Some(&ts), Some(&bad), body, NOW), Err(SignatureError::Mismatch));
    assert_eq!(signature::verify(b"another secret", Some(&ts), Some(&good), body, NOW), Err(SignatureError::Mismatch));

    // The form layer against a reference decoder.
    let field = interaction::form_field(body, "payload");
    if let Ok(decoded) = &field {
        let reference = form_urlencoded::parse(body).find(|(k, _)| k == "payload").map(|(_, v)| v.into_owned());
        // `form_urlencoded` is lossy on invalid UTF-8 and lenient on bad escapes, where ours refuses;
        // whenever ours accepts, the two agree.
        assert_eq!(
            decoded,
            &reference,
            "form_field disagrees with form_urlencoded on {:?}",
            String::from_utf8_lossy(body)
        );
    }

    // What the handler does after verification.
    match interaction::parse(body) {
        Ok(None) => assert!(field.is_ok()),
        Ok(Some(actions)) => {
            assert_eq!(actions.kind, "block_actions");
            let payload = field.expect("parsed").expect("has a payload");
            let click = actions.click();
            if let Some(c) = &click {
                assert!(!c.proposal_id.is_empty());
                assert_eq!(c.user, actions.user.id);
            }
            // Re-encoded the way Slack encodes, the payload gives the same click.
            let again: String =
                form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload).finish();
            let reparsed =
                interaction::parse(again.as_bytes()).expect("re-encoded payload parses").expect("block_actions");
            assert_eq!(reparsed.click(), click, "click changed by re-encoding");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                PayloadError::NoPayload => assert!(matches!(field, Ok(None))),
                PayloadError::Encoding => assert!(field.is_err()),
                PayloadError::Json(_) => assert!(matches!(field, Ok(Some(_)))),
            }
        }
    }
});
