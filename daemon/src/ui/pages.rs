//! The pages. Each takes data that already passed the redaction gate and escapes every value
//! it writes (see [`super::html`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::http::StatusCode;

use super::IndexQuery;
use super::html::{diff, esc, layout, path_segment, query_value};
use super::session::Viewer;
use crate::model::incident::{Incident, IncidentStatus};
use crate::model::proposal::{Action, Proposal, ProposalState};
use crate::slack::blocks::target_display;

/// What the index lists.
pub struct Lists {
    pub incidents: Vec<Incident>,
    pub proposals: Vec<Proposal>,
}

fn status_str(s: IncidentStatus) -> &'static str {
    match s {
        IncidentStatus::Open => "open",
        IncidentStatus::Diagnosing => "diagnosing",
        IncidentStatus::Diagnosed => "diagnosed",
        IncidentStatus::Resolved => "resolved",
    }
}

fn ts(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn badge(state: &str) -> String {
    format!(r#"<span class="badge s-{0}">{0}</span>"#, esc(state))
}

fn incident_link(i: &Incident) -> String {
    format!(r#"<a href="/ui/incidents/{}">{}</a>"#, path_segment(&i.id), esc(&format!("{} {}", i.reason, i.workload)))
}

fn proposal_link(p: &Proposal) -> String {
    format!(
        r#"<a href="/ui/proposals/{}">{}</a>"#,
        path_segment(&p.id),
        esc(&format!("{} {}", action_verb(p), target_display(p)))
    )
}

fn action_verb(p: &Proposal) -> &'static str {
    match p.action {
        Action::Patch { .. } => "patch",
        Action::Delete => "delete",
    }
}

/// Unresolved incidents first, each group newest first.
fn incident_order(a: &Incident, b: &Incident) -> std::cmp::Ordering {
    let resolved = |i: &Incident| i.status == IncidentStatus::Resolved;
    resolved(a).cmp(&resolved(b)).then(b.last_seen.cmp(&a.last_seen))
}

/// The two lists, filtered (the part the live refresh replaces).
pub fn index_lists(lists: &Lists, q: &IndexQuery) -> String {
    let ns = q.namespace.as_deref().filter(|n| !n.is_empty());
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    let mut incidents: Vec<&Incident> = lists
        .incidents
        .iter()
        .filter(|i| ns.is_none_or(|n| i.workload.namespace == n))
        .filter(|i| state.is_none_or(|s| status_str(i.status) == s))
        .collect();
    incidents.sort_by(|a, b| incident_order(a, b));
    let mut proposals: Vec<&Proposal> = lists
        .proposals
        .iter()
        .filter(|p| ns.is_none_or(|n| p.target.namespace == n))
        .filter(|p| state.is_none_or(|s| p.state.as_str() == s))
        .collect();
    proposals.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let mut out = String::from(
        r#"<h2>Incidents</h2><table class="list" id="incidents"><thead><tr><th>Status</th><th>Incident</th><th>Namespace</th><th>Signals</th><th>Last seen</th><th>Summary</th></tr></thead><tbody>"#,
    );
    for i in &incidents {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            badge(status_str(i.status)),
            incident_link(i),
            esc(&i.workload.namespace),
            i.count,
            ts(i.last_seen),
            esc(i.summary.as_deref().unwrap_or(""))
        );
    }
    if incidents.is_empty() {
        out.push_str(r#"<tr><td colspan="6" class="empty">No incidents.</td></tr>"#);
    }
    out.push_str(r#"</tbody></table><h2>Proposals</h2><table class="list" id="proposals"><thead><tr><th>State</th><th>Proposal</th><th>Namespace</th><th>Risk</th><th>Created</th><th>Requested by</th></tr></thead><tbody>"#);
    for p in &proposals {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            badge(p.state.as_str()),
            proposal_link(p),
            esc(&p.target.namespace),
            esc(&format!("{:?}", p.risk).to_lowercase()),
            ts(p.created_at),
            esc(p.requester())
        );
    }
    if proposals.is_empty() {
        out.push_str(r#"<tr><td colspan="6" class="empty">No proposals.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

/// `/ui/`: filters and the lists, refreshed when the bus says something changed.
pub fn index(viewer: &Viewer, lists: &Lists, q: &IndexQuery) -> String {
    let namespaces: BTreeSet<&str> = lists
        .incidents
        .iter()
        .map(|i| i.workload.namespace.as_str())
        .chain(lists.proposals.iter().map(|p| p.target.namespace.as_str()))
        .filter(|n| !n.is_empty())
        .collect();
    let selected = |a: Option<&str>, b: &str| if a == Some(b) { " selected" } else { "" };
    let mut form = String::from(
        r#"<form class="filters" method="get" action="/ui/"><label>Namespace <select name="namespace"><option value="">all</option>"#,
    );
    for n in &namespaces {
        let _ = write!(form, r#"<option value="{0}"{1}>{0}</option>"#, esc(n), selected(q.namespace.as_deref(), n));
    }
    form.push_str(r#"</select></label> <label>State <select name="state"><option value="">all</option>"#);
    let states = [
        "open",
        "diagnosing",
        "diagnosed",
        "resolved",
        "pending",
        "approved",
        "rejected",
        "expired",
        "applying",
        "applied",
        "verified",
        "failed",
        "refused",
    ];
    for s in states {
        let _ = write!(form, r#"<option value="{0}"{1}>{0}</option>"#, s, selected(q.state.as_deref(), s));
    }
    form.push_str(r#"</select></label> <button>Filter</button></form>"#);
    let live = format!(
        "/ui/?namespace={}&state={}&fragment=1",
        query_value(q.namespace.as_deref().unwrap_or("")),
        query_value(q.state.as_deref().unwrap_or(""))
    );
    let body = format!(
        r#"<h1>Incidents and proposals</h1>{form}<p class="live" id="live" hidden>live</p><section id="lists" data-live="{}">{}</section>"#,
        esc(&live),
        index_lists(lists, q)
    );
    layout("Incidents and proposals", Some(viewer), &body)
}

/// An incident: what was seen, the diagnosis with its causal graph, the timeline.
pub fn incident(viewer: &Viewer, i: &Incident, proposals: &[Proposal]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<h1>{} <span class="sub">{}</span></h1><dl class="facts"><dt>Status</dt><dd>{}</dd><dt>Object</dt><dd>{}</dd><dt>Cluster</dt><dd>{}</dd><dt>Rule</dt><dd>{}</dd><dt>Signals</dt><dd>{} between {} and {}</dd></dl>"#,
        esc(&i.reason),
        esc(&i.workload.to_string()),
        badge(status_str(i.status)),
        esc(&i.workload.to_string()),
        esc(&i.cluster),
        esc(&i.rule),
        i.count,
        ts(i.first_seen),
        ts(i.last_seen),
    );
    if let Some(s) = &i.summary {
        let _ = write!(b, r#"<p class="summary">{}</p>"#, esc(s));
    }
    match &i.diagnosis {
        Some(d) => {
            let _ = write!(
                b,
                r#"<h2>Diagnosis</h2><dl class="facts"><dt>Root cause</dt><dd>{}</dd><dt>Confidence</dt><dd>{:.0}%</dd><dt>Runner</dt><dd>{}</dd></dl>"#,
                esc(&d.root_cause),
                d.confidence * 100.0,
                esc(&d.runner)
            );
            if !d.mermaid.trim().is_empty() {
                let note = if super::assets::MERMAID.is_some() {
                    ""
                } else {
                    r#"<p class="note">This build carries no diagram renderer (it was built without Mermaid; see the README), so the chain is shown as its Mermaid source.</p>"#
                };
                let _ = write!(
                    b,
                    r#"<h2>Causal chain</h2>{note}<div class="graph"><pre class="mermaid" id="chain">{}</pre></div>"#,
                    esc(&d.mermaid)
                );
            }
            if !d.evidence.is_empty() {
                b.push_str(r#"<h2>Evidence</h2><table class="list evidence"><thead><tr><th>Tool</th><th>Arguments</th><th>Finding</th></tr></thead><tbody>"#);
                for e in &d.evidence {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                        esc(&e.tool),
                        esc(&e.args.to_string()),
                        esc(&e.finding)
                    );
                }
                b.push_str("</tbody></table>");
            }
            for (title, items) in [("Advice", &d.advice), ("Notes", &d.notes)] {
                if !items.is_empty() {
                    let _ = write!(b, "<h2>{title}</h2><ul>");
                    for a in items {
                        let _ = write!(b, "<li>{}</li>", esc(a));
                    }
                    b.push_str("</ul>");
                }
            }
            if !d.refused.is_empty() {
                b.push_str("<h2>Refused changes</h2><ul>");
                for r in &d.refused {
                    let _ = write!(b, "<li>{}: {}</li>", esc(&r.target), esc(&r.reason));
                }
                b.push_str("</ul>");
            }
        }
        None => b.push_str(r#"<p class="note">Not diagnosed yet.</p>"#),
    }
    // The timeline: the signals folded in, then what became of the proposals.
    let s = &i.first_signal;
    let mut events: Vec<(jiff::Timestamp, String)> = vec![(
        s.observed_at,
        format!(
            "First signal: {} from {:?} on {}{}",
            s.reason,
            s.source,
            s.object,
            if s.message.is_empty() { String::new() } else { format!(": {}", s.message) }
        ),
    )];
    if i.count > 1 {
        events.push((i.last_seen, format!("Latest signal ({} folded into this incident)", i.count)));
    }
    for p in proposals {
        for t in &p.history {
            let by = if t.by.is_empty() { String::new() } else { format!(" by {}", t.by) };
            let note = if t.note.is_empty() { String::new() } else { format!(": {}", t.note) };
            events.push((
                t.at,
                format!("Proposal {} {} → {}{by}{note}", target_display(p), t.from.as_str(), t.to.as_str()),
            ));
        }
    }
    events.sort_by_key(|(t, _)| *t);
    b.push_str(r#"<h2>Timeline</h2><ol class="timeline">"#);
    for (t, what) in &events {
        let _ = write!(b, "<li><time>{}</time> {}</li>", ts(*t), esc(what));
    }
    b.push_str("</ol>");
    if !proposals.is_empty() {
        b.push_str("<h2>Proposals</h2><ul>");
        for p in proposals {
            let _ = write!(b, "<li>{} {}</li>", badge(p.state.as_str()), proposal_link(p));
        }
        b.push_str("</ul>");
    }
    let body = format!(r#"<article data-watch-incident="{}">{b}</article>"#, esc(&i.id));
    layout(&format!("Incident {} {}", i.reason, i.workload), Some(viewer), &body)
}

/// A proposal: the change and why, the checks it passed, its history, and the decision.
pub fn proposal(viewer: &Viewer, p: &Proposal) -> String {
    let mut b = String::new();
    let incident = p
        .incident_id
        .as_deref()
        .map(|id| format!(r#"<a href="/ui/incidents/{}">{}</a>"#, path_segment(id), esc(id)))
        .unwrap_or_else(|| "none".into());
    let approvers = if p.approvers.is_empty() { "any approver".to_owned() } else { p.approvers.join(", ") };
    let _ = write!(
        b,
        r#"<h1>{} <span class="sub">{}</span></h1><dl class="facts"><dt>State</dt><dd id="state">{}</dd><dt>Risk</dt><dd>{}</dd><dt>Drafted by</dt><dd>{}</dd><dt>Requested by</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Expires</dt><dd>{}</dd><dt>May approve</dt><dd>{}</dd><dt>Incident</dt><dd>{}</dd><dt>Content digest</dt><dd><code>{}</code></dd></dl>"#,
        esc(action_verb(p)),
        esc(&target_display(p)),
        badge(p.state.as_str()),
        esc(&format!("{:?}", p.risk).to_lowercase()),
        esc(p.drafter.as_str()),
        esc(p.requester()),
        ts(p.created_at),
        ts(p.expires_at),
        esc(&approvers),
        incident,
        esc(p.digest.as_deref().unwrap_or("")),
    );
    if let Some(o) = &p.outcome {
        let _ = write!(b, r#"<p class="outcome">{}</p>"#, esc(o));
    }
    let _ = write!(b, r#"<h2>Rationale</h2><p>{}</p><h2>Change</h2>{}"#, esc(&p.rationale), diff(&p.diff));
    let _ = write!(
        b,
        r#"<h2>Policy and dry-run</h2><p>Passed the patch policy's <b>{}</b> tier and a server-side dry-run before it was offered. At apply kubemedic checks again: the approval's seal, that the content is still this digest, the policy, and the target's resourceVersion.</p>"#,
        esc(p.drafter.as_str())
    );
    b.push_str(r#"<h2>History</h2><table class="list history"><thead><tr><th>When</th><th>From</th><th>To</th><th>By</th><th>Note</th></tr></thead><tbody>"#);
    for t in &p.history {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ts(t.at),
            esc(t.from.as_str()),
            esc(t.to.as_str()),
            esc(&t.by),
            esc(&t.note)
        );
    }
    b.push_str("</tbody></table>");
    if p.state == ProposalState::Pending {
        match (&viewer.csrf, viewer.may_decide()) {
            (_, false) => b.push_str(r#"<p class="note" id="no-decision">You may read this proposal; deciding needs the approver role.</p>"#),
            (Some(csrf), true) => {
                let _ = write!(
                    b,
                    r#"<form class="decide" method="post" action="/ui/proposals/{}/decide"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="digest" value="{}"><button class="approve" name="decision" value="approve">Approve</button> <button class="reject" name="decision" value="reject">Reject</button></form>"#,
                    path_segment(&p.id),
                    esc(csrf),
                    esc(p.digest.as_deref().unwrap_or(""))
                );
            }
            (None, true) => b.push_str(r#"<p class="note">Decide with <code>kubemedic approve|reject</code> or POST this page's decide form with your bearer token.</p>"#),
        }
    }
    let body = format!(r#"<article data-watch-proposal="{}">{b}</article>"#, esc(&p.id));
    layout(&format!("Proposal {}", target_display(p)), Some(viewer), &body)
}

/// The latest drift report.
pub fn drift(viewer: &Viewer, report: Option<&serde_json::Value>) -> String {
    let body = match report.map(|r| serde_json::from_value::<crate::drift::DriftReport>(r.clone())) {
        None => "<h1>Drift</h1><p class=\"note\">No drift report yet (the drift job runs on its schedule, or `kubemedic drift`).</p>".to_owned(),
        Some(Err(e)) => format!("<h1>Drift</h1><p class=\"note\">The stored report cannot be read: {}</p>", esc(&e.to_string())),
        Some(Ok(r)) => {
            let mut b = format!(
                r#"<h1>Drift <span class="sub">{} at {}</span></h1><p>{} objects checked, {} drifted.</p>"#,
                esc(&r.cluster),
                esc(&r.generated_at),
                r.checked,
                r.drifted()
            );
            if !r.objects.is_empty() {
                b.push_str(r#"<table class="list"><thead><tr><th>Object</th><th>Desired from</th><th>Field</th><th>Desired</th><th>Live</th><th>Changed by</th></tr></thead><tbody>"#);
                for o in &r.objects {
                    if o.missing {
                        let _ = write!(b, r#"<tr><td>{}</td><td>{}</td><td colspan="4">missing from the cluster</td></tr>"#, esc(&o.object_ref()), esc(&o.source.to_string()));
                    }
                    for f in &o.fields {
                        let f = serde_json::to_value(f).unwrap_or_default();
                        let get = |k: &str| match f.get(k) {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(serde_json::Value::Null) | None => String::new(),
                            Some(v) => v.to_string(),
                        };
                        let _ = write!(
                            b,
                            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                            esc(&o.object_ref()),
                            esc(&o.source.to_string()),
                            esc(&get("path")),
                            esc(&get("desired")),
                            esc(&get("live")),
                            esc(&get("changed_by"))
                        );
                    }
                }
                b.push_str("</tbody></table>");
            }
            if !r.errors.is_empty() {
                b.push_str("<h2>Not read (the report is partial)</h2><ul>");
                for e in &r.errors {
                    let _ = write!(b, "<li>{}</li>", esc(e));
                }
                b.push_str("</ul>");
            }
            b
        }
    };
    layout("Drift", Some(viewer), &body)
}

/// The one page served without signing in.
pub fn login(viewer: Option<&Viewer>, oidc: bool) -> String {
    let mut b = String::from("<h1>Sign in</h1>");
    if let Some(v) = viewer {
        let _ = write!(b, r#"<p>Signed in as {}. <a href="/ui/">Continue</a></p>"#, esc(&v.user));
    }
    if oidc {
        b.push_str(
            r#"<p><a class="button" id="sign-in" href="/ui/login/start">Sign in with your identity provider</a></p>"#,
        );
    } else {
        b.push_str(r#"<p class="note">Browser sign-in is not configured (<code>ui.oidc</code>); scripts use a bearer token.</p>"#);
    }
    layout("Sign in", viewer, &b)
}

/// After the callback: on to the index, by a navigation that starts on this site.
pub fn signed_in(viewer: &Viewer) -> String {
    let b = format!(
        r#"<h1>Signed in</h1><p>Welcome, {}. <a id="continue" href="/ui/">Continue</a></p><meta http-equiv="refresh" content="0;url=/ui/">"#,
        esc(&viewer.user)
    );
    layout("Signed in", Some(viewer), &b)
}

/// A refusal or failure, said plainly.
pub fn error(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> String {
    let b = format!(
        r#"<h1>{}</h1><p class="error" id="error">{}</p><p><a href="/ui/">Back to the list</a></p>"#,
        esc(status.canonical_reason().unwrap_or("Error")),
        esc(message)
    );
    layout(status.canonical_reason().unwrap_or("Error"), viewer, &b)
}

#[cfg(test)]
mod tests;
