//! HTML built by hand, carefully: every value goes through [`esc`] (text and attribute
//! values alike), URLs through [`path_segment`] / [`query_value`]. Names, logs, messages
//! and diffs come from the cluster and are untrusted.

use std::fmt::Write as _;

use super::session::Viewer;

/// Escape for HTML text and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode one URL path segment (ids are uuids, but nothing is assumed).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encode a query value.
pub fn query_value(s: &str) -> String {
    path_segment(s)
}

/// A whole page: header with navigation and who is signed in, then `body` (already HTML).
pub fn layout(title: &str, viewer: Option<&Viewer>, body: &str) -> String {
    let mut who = String::new();
    if let Some(v) = viewer {
        let role = format!("{:?}", v.role).to_lowercase();
        let _ = write!(who, r#"<span class="who" data-role="{}">{} ({})</span>"#, esc(&role), esc(&v.user), esc(&role));
        if let Some(csrf) = &v.csrf {
            let _ = write!(
                who,
                r#"<form class="inline" method="post" action="/ui/logout"><input type="hidden" name="csrf" value="{}"><button class="link">Sign out</button></form>"#,
                esc(csrf)
            );
        }
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · kubemedic</title><link rel="stylesheet" href="/ui/assets/ui.css"></head>
<body><header><a class="brand" href="/ui/">kubemedic</a><nav><a href="/ui/">Incidents &amp; proposals</a><a href="/ui/drift">Drift</a></nav>{who}</header>
<main>{body}</main><script src="/ui/assets/ui.js"></script></body></html>
"#,
        title = esc(title),
    )
}

/// A unified diff with each line coloured by what it does, YAML keys picked out.
pub fn diff(text: &str) -> String {
    let mut out = String::from(r#"<pre class="diff">"#);
    for line in text.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with("@@") {
            "hunk"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        };
        // Block spans: no newline between them (the pre would show it as an empty line).
        let _ = write!(out, r#"<span class="{class}">{}</span>"#, yaml_line(line, class));
    }
    out.push_str("</pre>");
    out
}

/// One diff line with its YAML key (after the +/-/space marker and indentation) in a span.
fn yaml_line(line: &str, class: &str) -> String {
    if matches!(class, "file" | "hunk") {
        return esc(line);
    }
    let (marker, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    let indent = rest.len() - rest.trim_start_matches([' ', '-']).len();
    let (lead, body) = rest.split_at(indent);
    match body.split_once(':') {
        Some((key, value)) if !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || "_-./\"'".contains(c)) => {
            format!(r#"{}{}<span class="key">{}</span>:{}"#, esc(marker), esc(lead), esc(key), esc(value))
        }
        _ => esc(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        let hostile = r#"<script>alert(1)</script>" onmouseover='x' &amp;"#;
        let e = esc(hostile);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''), "{e}");
        assert!(e.contains("&amp;amp;"));
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
    }

    #[test]
    fn a_diff_is_coloured_and_escaped() {
        let d = diff("--- a\n+++ b\n@@ -1 +1 @@\n   limits:\n-    memory: 64Mi\n+    memory: <b>128Mi</b>\n");
        assert!(d.contains(r#"<span class="del">-    <span class="key">memory</span>: 64Mi</span>"#), "{d}");
        assert!(
            d.contains(r#"<span class="add">+    <span class="key">memory</span>: &lt;b&gt;128Mi&lt;/b&gt;</span>"#),
            "{d}"
        );
        assert!(d.contains(r#"<span class="hunk">@@ -1 +1 @@</span>"#));
        assert!(!d.contains("<b>"));
        let key = diff("+<img src=x onerror=alert(1)>: v\n");
        assert!(!key.contains("<img"), "{key}");
    }

    #[test]
    fn the_layout_escapes_the_viewer() {
        let v = Viewer { user: "<i>eve</i>".into(), role: crate::auth::Role::Viewer, groups: vec![], csrf: None };
        let page = layout("<t>", Some(&v), "");
        assert!(page.contains("&lt;i&gt;eve&lt;/i&gt;") && page.contains("<title>&lt;t&gt;"));
        assert!(!page.contains("logout"), "no sign-out form without a session");
    }
}
