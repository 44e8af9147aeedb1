//! Alertmanager webhook bodies: the envelope, then every alert in it, then the
//! signal built from each alert. None of these may panic on any input.
#![no_main]

use kubemedic::alerts::payload::{Alert, Webhook};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(webhook) = serde_json::from_slice::<Webhook>(data) else {
        return;
    };
    for raw in webhook.alerts {
        if let Ok(alert) = Alert::parse(raw) {
            let signal = alert.to_signal("fuzz", None);
            // The fingerprint is derived from the signal; it must be computable too.
            let _ = format!("{signal:?}");
        }
    }
});
