//! Alertmanager webhook bodies through the daemon's real receiver: the axum
//! route of `kubemedic::alerts::router` (body-size limit, JSON envelope,
//! version check, per-alert parse, scope filter, signal queue), then what the
//! daemon does with each signal (fingerprint, JSON round trip for the store
//! and bus, rule matching and argument rendering with the shipped rules).
//!
//! Properties: nothing panics; every answer is 200 or a clean 400/413 with a
//! JSON `{"error": ...}`; a body within the limit that is a version-4 webhook
//! is taken; every alert of a taken body is counted exactly once (accepted,
//! out of scope or rejected with its index); each accepted alert is exactly
//! one signal and survives a JSON round trip unchanged.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kubemedic::alerts::{self, AlertsConfig, AlertsState, Webhook};
use kubemedic::cluster::Scope;
use kubemedic::rules::RuleSet;
use kubemedic::signal::{Signal, SignalSource};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// Small enough that the fuzzer's inputs (run.sh passes -max_len=8192) reach the 413 path.
const MAX_BODY: usize = 4096;
/// Room for every alert of a MAX_BODY body, so the handler never waits on a full queue.
const QUEUE: usize = MAX_BODY;
/// Out of scope: alerts about it are counted but not queued.
const EXCLUDED_NAMESPACE: &str = "kube-system";

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    signals: Mutex<mpsc::Receiver<Signal>>,
    rules: RuleSet,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (tx, rx) = mpsc::channel(QUEUE);
        let config = AlertsConfig { enabled: true, max_body_bytes: MAX_BODY, bearer_token_sha256: None };
        let mut state = AlertsState::new("fuzz", config, tx);
        state.scope = Some(Scope { exclude: vec![EXCLUDED_NAMESPACE.into()], ..Scope::default() });
        let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let rules = RuleSet::load(&rules_dir).expect("the shipped rules load");
        Harness { rt, router: alerts::router(state), signals: Mutex::new(rx), rules }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let request = Request::post(alerts::PATH)
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("request");
    let (status, body) = h.rt.block_on(async {
        let resp = h.router.clone().oneshot(request).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("response body");
        (status, bytes)
    });
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("every answer is JSON");
    let signals: Vec<Signal> = {
        let mut rx = h.signals.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    };

    // What the body is, independently of the handler.
    let envelope = serde_json::from_slice::<Webhook>(data).ok();
    let acceptable = data.len() <= MAX_BODY && envelope.as_ref().is_some_and(|w| w.version == "4");

    if status != StatusCode::OK {
        assert!(signals.is_empty(), "a refused body queued {} signals", signals.len());
        assert!(
            answer.get("error").and_then(|e| e.as_str()).is_some_and(|e| !e.is_empty()),
            "refusal without a message: {answer}"
        );
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => assert!(data.len() > MAX_BODY, "413 for {} bytes", data.len()),
            StatusCode::BAD_REQUEST => assert!(!acceptable, "a version-4 webhook was refused: {answer}"),
            other => panic!("unexpected status {other}: {answer}"),
        }
        return;
    }
    assert!(acceptable, "taken although oversized or not a version-4 webhook");
    let webhook = envelope.expect("acceptable implies parsed");
    let count = |k: &str| answer[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {answer}")) as usize;
    let rejected = answer["rejected"].as_array().expect("rejected is a list");
    assert_eq!(count("accepted"), count("firing") + count("resolved"));
    assert_eq!(count("accepted"), signals.len(), "accepted count vs queued signals");
    assert_eq!(count("accepted") + count("out_of_scope") + rejected.len(), webhook.alerts.len(), "{answer}");
    let mut last_index = None;
    for r in rejected {
        let index = r["index"].as_u64().expect("rejection index") as usize;
        assert!(index < webhook.alerts.len() && last_index.is_none_or(|l| l < index), "{answer}");
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{answer}");
        last_index = Some(index);
    }

    for signal in &signals {
        assert_eq!(signal.source, SignalSource::Alertmanager);
        assert!(!signal.reason.trim().is_empty(), "signal without an alert name");
        assert_eq!(signal.labels.get("alertname"), Some(&signal.reason));
        assert_ne!(signal.subject().namespace, EXCLUDED_NAMESPACE, "out-of-scope alert queued");
        // The store and the bus carry signals as JSON.
        let json = serde_json::to_string(signal).expect("signal serialises");
        let back: Signal = serde_json::from_str(&json).expect("signal deserialises");
        assert_eq!(&back, signal, "signal JSON round trip");
        let fp = kubemedic::incident::fingerprint(&signal.cluster, signal.subject(), &signal.reason);
        assert_eq!(fp.len(), 64);
        // What the intake does next: the first matching rule, and its prompt arguments.
        let ns_labels: BTreeMap<String, String> = signal.labels.clone();
        if let Some(rule) = h.rules.match_signal_with(signal, Some(&ns_labels)) {
            let args = rule.workflow.arguments_for(signal);
            assert_eq!(args.len(), rule.workflow.arguments.len());
        }
    }
});
