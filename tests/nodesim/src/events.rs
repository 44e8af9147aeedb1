//! core/v1 Events as a kubelet records them: source component `kubelet`, host = the node, and
//! repeats of the same event folded into one object whose `count` grows (kubelet's event
//! correlator does the same).
//!
//! With [`Recorder::with_event_time`], a new event also carries `eventTime` (microseconds),
//! stamped just before its create request: what a reader needs to measure how long the
//! apiserver took to deliver it. A real kubelet leaves it empty (it writes the legacy fields
//! only); kube-apiserver then requires `action` and `reportingController`, which are set too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::Semaphore;

use crate::machine::EventSpec;

/// The object an event is about.
#[derive(Debug, Clone)]
pub struct Involved {
    /// `Pod` or `Node`.
    pub kind: &'static str,
    /// Namespace of the object (events about Nodes go to `default`).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (kubelet uses the node name as a Node's UID in its events).
    pub uid: String,
}

type Key = (String, Option<String>, &'static str, String);

/// Writes Events, folding repeats.
pub struct Recorder {
    client: Client,
    permits: Arc<Semaphore>,
    series: Mutex<HashMap<Key, (String, i32)>>,
    seq: AtomicU64,
    normal: bool,
    event_time: bool,
}

impl Recorder {
    /// A recorder that makes at most `permits` API calls at once (shared with status writes).
    /// With `normal == false`, Normal events are skipped (for load tests).
    pub fn new(client: Client, permits: Arc<Semaphore>, normal: bool) -> Recorder {
        Recorder {
            client,
            permits,
            series: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            normal,
            event_time: false,
        }
    }

    /// Stamp new events with `eventTime` (see the module docs).
    pub fn with_event_time(mut self, on: bool) -> Recorder {
        self.event_time = on;
        self
    }

    /// Records `ev` about `obj`, emitted by the kubelet of `node`. Failures are logged and
    /// dropped (a kubelet does not retry events either).
    pub async fn record(&self, obj: &Involved, node: &str, ev: &EventSpec) {
        if !self.normal && ev.type_ == "Normal" {
            return;
        }
        let key: Key = (obj.uid.clone(), ev.field_path.clone(), ev.reason, ev.message.clone());
        let existing = self.series.lock().expect("events lock").get(&key).cloned();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &obj.namespace);
        let now = Timestamp::now();
        let _permit = self.permits.acquire().await;
        if let Some((name, count)) = existing {
            let patch = serde_json::json!({ "count": count + 1, "lastTimestamp": Time(now) });
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.series.lock().expect("events lock").insert(key, (name, count + 1));
                    return;
                }
                Err(e) => tracing::debug!(event = %name, error = %e, "event repeat failed; creating a new one"),
            }
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.{:x}{:04x}", obj.name, now.as_nanosecond() as u64, n & 0xffff);
        let mut event = self.new_event(obj, node, ev, name.clone(), now);
        if self.event_time {
            // After the permit: the stamp is taken as the request leaves.
            event.event_time = Some(MicroTime(Timestamp::now()));
        }
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                self.series.lock().expect("events lock").insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(object = %obj.name, reason = ev.reason, error = %e, "event not recorded"),
        }
    }

    /// A first occurrence of `ev` about `obj`, with the legacy timestamps at `now`.
    fn new_event(&self, obj: &Involved, node: &str, ev: &EventSpec, name: String, now: Timestamp) -> Event {
        Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(obj.namespace.clone()), ..ObjectMeta::default() },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some(obj.kind.into()),
                namespace: (obj.kind != "Node").then(|| obj.namespace.clone()),
                name: Some(obj.name.clone()),
                uid: Some(obj.uid.clone()),
                field_path: ev.field_path.clone(),
                ..ObjectReference::default()
            },
            reason: Some(ev.reason.into()),
            message: Some(ev.message.clone()),
            type_: Some(ev.type_.into()),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.into()) }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.into()),
            // Required by the apiserver once `eventTime` is set.
            action: self.event_time.then(|| ev.reason.into()),
            ..Event::default()
        }
    }

    /// Forgets the series of an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.series.lock().expect("events lock").retain(|k, _| k.0 != uid);
    }
}
