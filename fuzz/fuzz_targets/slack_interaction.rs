//! Slack interaction requests: the form-encoded `payload=` body, the
//! block_actions JSON inside it, and the v0 request signature over the body.
#![no_main]

use kubemedic::approvals::slack::{interaction, signature};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-signing-secret";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    // Split the input into (timestamp, signature, body) on the first two newlines,
    // so the fuzzer controls all three headers-and-body parts.
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let ts = parts.next().map(String::from_utf8_lossy).map(|s| s.into_owned());
    let sig = parts.next().map(String::from_utf8_lossy).map(|s| s.into_owned());
    let body = parts.next().unwrap_or_default();

    // Arbitrary signatures must never verify (the secret is not in the input).
    let verdict = signature::verify(SECRET, ts.as_deref(), sig.as_deref(), body, NOW);
    if verdict.is_ok() {
        let expected = signature::sign(SECRET, ts.as_deref().unwrap_or_default(), body);
        assert_eq!(sig.as_deref(), Some(expected.as_str()), "a signature verified that sign() did not make");
    }
    // A correctly signed body always verifies when the timestamp is fresh.
    let good = signature::sign(SECRET, &NOW.to_string(), body);
    assert!(signature::verify(SECRET, Some(&NOW.to_string()), Some(&good), body, NOW).is_ok());

    let _ = interaction::form_field(body, "payload");
    if let Ok(Some(actions)) = interaction::parse(body) {
        let _ = actions.click();
    }
});
