//! Events about an object, as `kubectl describe` shows them.

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

/// Events in `ns` whose involved object is `kind/name` (any uid), oldest first.
pub async fn for_object(client: &Client, ns: &str, kind: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let fields = format!("involvedObject.kind={kind},involvedObject.name={name}");
    let mut events = api
        .list(&ListParams::default().fields(&fields))
        .await
        .unwrap_or_else(|e| panic!("list events for {kind} {ns}/{name}: {e}"))
        .items;
    events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0).or(e.event_time.clone().map(|t| t.0)));
    events
}

/// Events about Pod `ns/name`.
pub async fn for_pod(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    for_object(client, ns, "Pod", name).await
}

/// All events in a namespace.
pub async fn in_namespace(client: &Client, ns: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default()).await.unwrap_or_else(|e| panic!("list events in {ns}: {e}")).items
}

/// The first event with this reason, if any.
pub fn find<'a>(events: &'a [Event], reason: &str) -> Option<&'a Event> {
    events.iter().find(|e| e.reason.as_deref() == Some(reason))
}

/// True when some event has this reason and its message contains `needle`.
pub fn has(events: &[Event], reason: &str, needle: &str) -> bool {
    events.iter().any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().unwrap_or("").contains(needle))
}

/// One line per event (`type reason: message (xN)`), for assertion messages.
pub fn summary(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}: {} (x{})",
                e.type_.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or(""),
                e.count.unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
