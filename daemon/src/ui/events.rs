//! `/ui/events`: the bus as server-sent events.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::{Ui, error_page};

/// Server-sent events from the bus: the subject and the object's id and state (the page
/// fetches what changed itself, through the same checks as any page).
pub(super) async fn stream(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if ui.viewer(&headers).await.is_none() {
        return error_page(None, StatusCode::UNAUTHORIZED, "sign in first");
    }
    let rx = ui.deps.bus.subscribe();
    let stop = ui.deps.shutdown.clone();
    let stream = futures::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        let next = tokio::select! {
            () = stop.cancelled() => return None,
            next = rx.recv() => next,
        };
        let data = match next {
            Ok(msg) => {
                let v: serde_json::Value = msg.json().unwrap_or_default();
                let brief = serde_json::json!({
                    "subject": msg.subject,
                    "id": v.get("id").and_then(|x| x.as_str()),
                    "state": v.get("state").and_then(|x| x.as_str()),
                    "incident_id": v.get("incident_id").and_then(|x| x.as_str()),
                });
                crate::redact::gate().text(&brief.to_string()).into_owned()
            }
            // Fell behind: the page fetches everything again.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => "{}".to_owned(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(Event::default().event("change").data(data)), (rx, stop)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
