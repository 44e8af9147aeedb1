//! The UI's static files, all inside the binary: its script and style sheet, and Mermaid
//! when the build found it (see `daemon/build.rs`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/mermaid.rs"));

const UI_JS: &str = include_str!("../../assets/ui.js");
const UI_CSS: &str = include_str!("../../assets/ui.css");

/// `/ui/assets/{name}`: public (the login page needs the style sheet), and nothing in them
/// comes from the cluster.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match (name.as_str(), MERMAID) {
        ("ui.js", _) => (UI_JS.as_bytes(), "text/javascript; charset=utf-8"),
        ("ui.css", _) => (UI_CSS.as_bytes(), "text/css; charset=utf-8"),
        ("mermaid.js", Some(m)) => (m, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, max-age=3600")], body).into_response()
}
