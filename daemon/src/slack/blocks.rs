//! Block Kit for proposals: incident, diagnosis, root cause, diff, evidence,
//! and Approve (with a confirm dialog) / Reject buttons while the proposal
//! is open; who decided and the outcome once it is not.
//!
//! Everything that comes from the cluster (names, logs, events, diffs) is
//! untrusted text: it is escaped so it cannot mention `@channel` or forge
//! links, and cut to Block Kit's limits. tests/python/test_slack.py parses
//! the golden output (tests/python/fixtures/slack_blocks.json) with
//! slack_sdk's Block Kit models.

use serde_json::{Value, json};

use crate::model::diagnosis::Diagnosis;
use crate::model::incident::Incident;
use crate::model::proposal::{Proposal, ProposalState};

/// `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "kubemedic_approve";
/// `action_id` of the Reject button.
pub const REJECT_ACTION: &str = "kubemedic_reject";
/// `block_id` of the actions block.
pub const DECISION_BLOCK: &str = "kubemedic_decision";

const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const HEADER_MAX: usize = 150;
const EVIDENCE_MAX: usize = 6;

/// What a proposal message shows besides the proposal itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub incident: Option<&'a Incident>,
    pub diagnosis: Option<&'a Diagnosis>,
    /// Who may approve in Slack, as mrkdwn mentions (from `slack.approvers`).
    pub approvers: Option<&'a str>,
    /// The proposal's web page (`ui.external_url`), linked from the card.
    pub link: Option<&'a str>,
}

/// Escape Slack mrkdwn control characters (`&`, `<`, `>`).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Cut to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `<@U123>` for Slack user ids, the escaped name for CLI/MCP users.
pub fn who(user: &str) -> String {
    let slack_id = user.len() >= 3
        && matches!(user.as_bytes()[0], b'U' | b'W')
        && user.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if slack_id { format!("<@{user}>") } else { format!("*{}*", escape(user)) }
}

fn mrkdwn(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": truncate(text, max)})
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate(text, max), "emoji": true})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": mrkdwn(text, SECTION_MAX)})
}

/// `Kind namespace/name`.
pub fn target_display(p: &Proposal) -> String {
    let t = &p.target;
    if t.namespace.is_empty() {
        format!("{} {}", t.kind, t.name)
    } else {
        format!("{} {}/{}", t.kind, t.namespace, t.name)
    }
}

/// A code block that survives hostile content (no closing fence inside).
fn code(text: &str, max: usize) -> String {
    let body = escape(text).replace("```", "ʼʼʼ");
    let body = truncate(body.trim_end(), max.saturating_sub(8));
    format!("```\n{body}\n```")
}

fn date(ts: jiff::Timestamp) -> String {
    format!("<!date^{}^{{date_short_pretty}} {{time}}|{}>", ts.as_second(), ts.strftime("%Y-%m-%d %H:%M UTC"))
}

/// One line on where the proposal stands, for the message and the text fallback.
pub fn status_line(p: &Proposal) -> Option<String> {
    let by = p.decided_by().map(who).unwrap_or_else(|| "someone".into());
    let outcome = p.outcome.as_deref().map(escape).unwrap_or_default();
    let line = match p.state {
        ProposalState::Proposed | ProposalState::Pending => return None,
        ProposalState::Approved | ProposalState::Applying => {
            format!(":hourglass_flowing_sand: Approved by {by}; applying…")
        }
        ProposalState::Applied => {
            format!(":hourglass_flowing_sand: Approved by {by}; applied, waiting for the rollout…")
        }
        ProposalState::Verified => format!(":white_check_mark: Approved by {by}; applied and verified. {outcome}"),
        ProposalState::Failed => format!(":x: Approved by {by}; failed: {outcome}"),
        ProposalState::Refused => format!(":no_entry: Refused before anything was sent: {outcome}"),
        ProposalState::Rejected => format!(":no_entry_sign: Rejected by {by}. Nothing was changed."),
        ProposalState::Expired => ":zzz: Expired without a decision. Nothing was changed.".to_owned(),
    };
    Some(line.trim_end().to_owned())
}

/// The fallback `text` of a proposal message (notifications, screen readers).
pub fn message_text(p: &Proposal) -> String {
    let head = format!("kubemedic proposal for {}", target_display(p));
    match status_line(p) {
        Some(s) => format!("{head}: {s}"),
        None => format!("{head}: waiting for approval"),
    }
}

/// The whole proposal message for its current state.
pub fn proposal_blocks(p: &Proposal, ctx: Context<'_>) -> Value {
    let mut blocks =
        vec![json!({"type": "header", "text": plain(&format!("Proposal: {}", target_display(p)), HEADER_MAX)})];

    let incident = match ctx.incident {
        Some(i) => format!("*Incident*\n{} ({} signals)", escape(&i.reason), i.count),
        None => format!("*Incident*\n{}", escape(p.incident_id.as_deref().unwrap_or("none"))),
    };
    let fields = [
        incident,
        format!("*Cluster*\n{}", escape(&p.cluster)),
        format!("*Risk*\n{}", format!("{:?}", p.risk).to_lowercase()),
        format!("*Requested by*\n{}", escape(&p.requested_by)),
        format!("*Expires*\n{}", date(p.expires_at)),
        format!("*Who may approve*\n{}", who_may_approve(p, ctx.approvers)),
    ];
    blocks.push(json!({"type": "section", "fields": fields.iter().map(|f| mrkdwn(f, FIELD_MAX)).collect::<Vec<_>>()}));

    let summary = ctx.diagnosis.map(|d| d.summary.as_str()).or(ctx.incident.and_then(|i| i.summary.as_deref()));
    if let Some(summary) = summary {
        blocks.push(section(&format!("*Diagnosis*\n{}", escape(summary))));
    }
    if let Some(d) = ctx.diagnosis {
        blocks.push(section(&format!("*Root cause*\n{}", escape(&d.root_cause))));
    }
    blocks.push(section(&format!("*Proposed change*\n{}", escape(&p.rationale))));
    if !p.diff.trim().is_empty() {
        blocks.push(section(&format!("*Diff*\n{}", code(&p.diff, SECTION_MAX - 10))));
    }
    if let Some(d) = ctx.diagnosis.filter(|d| !d.evidence.is_empty()) {
        let mut lines: Vec<String> = d
            .evidence
            .iter()
            .take(EVIDENCE_MAX)
            .map(|e| format!("• `{}`: {}", escape(&e.tool), escape(&truncate(&e.finding, 400))))
            .collect();
        if d.evidence.len() > EVIDENCE_MAX {
            lines.push(format!("…and {} more", d.evidence.len() - EVIDENCE_MAX));
        }
        blocks.push(section(&format!("*Evidence*\n{}", lines.join("\n"))));
    }
    blocks.push(json!({"type": "divider"}));

    match status_line(p) {
        None => blocks.push(decision_actions(p)),
        Some(line) => blocks.push(section(&line)),
    }
    blocks.push(json!({
        "type": "context",
        "elements": [mrkdwn(
            &format!(
                "proposal `{}` · {} · digest `{}`{}",
                escape(&p.id),
                p.state.as_str(),
                escape(crate::model::digest::short(p.digest.as_deref().unwrap_or("none"))),
                ctx.link.map(|l| format!(" · <{}|open in kubemedic>", escape(l).replace('|', "%7C"))).unwrap_or_default()
            ),
            FIELD_MAX
        )]
    }));
    Value::Array(blocks)
}

/// The truthful answer to "who may approve": the Slack approver mapping, narrowed by the
/// proposal's own list, never the requester.
pub fn who_may_approve(p: &Proposal, mapping: Option<&str>) -> String {
    let base = match (p.approvers.is_empty(), mapping) {
        (true, Some(m)) => m.to_owned(),
        (true, None) => "holders of the approver role (CLI, MCP)".to_owned(),
        (false, Some(m)) => format!(
            "only {}, and only if also listed here: {m}",
            p.approvers.iter().map(|a| who(a)).collect::<Vec<_>>().join(", ")
        ),
        (false, None) => p.approvers.iter().map(|a| who(a)).collect::<Vec<_>>().join(", "),
    };
    format!("{base}; not the requester ({})", escape(p.requester()))
}

/// The buttons' `value`: the proposal id and the digest the approver is shown, so a click
/// approves exactly this content (`<id>:<digest>`).
pub fn button_value(p: &Proposal) -> String {
    format!("{}:{}", p.id, p.digest.as_deref().unwrap_or_default())
}

fn decision_actions(p: &Proposal) -> Value {
    let confirm_text = format!(
        "kubemedic will change *{}* in cluster *{}* now (the change is refused if the object changed since the proposal).",
        escape(&target_display(p)),
        escape(&p.cluster)
    );
    json!({
        "type": "actions",
        "block_id": DECISION_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": plain("Approve", 75),
                "style": "primary",
                "value": button_value(p),
                "confirm": {
                    "title": plain("Apply this change?", 100),
                    "text": mrkdwn(&confirm_text, 300),
                    "confirm": plain("Apply", 30),
                    "deny": plain("Cancel", 30),
                    "style": "primary"
                }
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": plain("Reject", 75),
                "style": "danger",
                "value": button_value(p)
            }
        ]
    })
}

/// Blocks of a plain thread reply.
pub fn text_blocks(text: &str) -> Value {
    json!([section(text)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::diagnosis::Evidence;
    use crate::model::proposal::ProposalEvent;
    use crate::model::signal::WorkloadRef;

    fn golden() -> std::path::PathBuf {
        // At run time: the build cache may be shared by clones at other paths.
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
            .join("../tests/python/fixtures/slack_blocks.json")
    }

    fn fixed() -> (Proposal, Diagnosis) {
        let target = crate::model::proposal::TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: Some("42".into()),
            generation: None,
            content_digest: None,
        };
        let action = crate::model::proposal::Action::Patch {
            patch_type: crate::model::proposal::PatchType::Merge,
            body: json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
        };
        let created = "2026-11-25T18:00:00Z".parse().unwrap();
        let p = Proposal {
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            diff: "--- a/Deployment shop/web\n+++ b/Deployment shop/web\n@@\n-        image: web:2-broken\n+        image: web:1\n".into(),
            rationale: "Roll back to web:1, the last image whose pods ran <!channel>".into(),
            approvers: vec!["U1".into()],
            requested_by: "rule:test".into(),
            ..Proposal::new("local", target, action, created, jiff::SignedDuration::from_hours(1))
        };
        let p = Proposal { digest: Some(crate::model::digest::digest(&p)), ..p };
        let d = Diagnosis {
            incident_id: None,
            workload: WorkloadRef::new("Deployment", "shop", "web"),
            summary: "web cannot pull its image since the last rollout".into(),
            root_cause: "image web:2-broken does not exist in the registry".into(),
            evidence: vec![
                Evidence {
                    tool: "events".into(),
                    args: json!({}),
                    finding: "Failed to pull image \"web:2-broken\": not found".into(),
                },
                Evidence {
                    tool: "rollout_history".into(),
                    args: json!({}),
                    finding: "revision 2 changed the image from web:1 to web:2-broken".into(),
                },
            ],
            confidence: 0.9,
            mermaid: String::new(),
            proposals: vec![],
            refused: vec![],
            advice: vec![],
            runner: "builtin".into(),
            notes: vec![],
            gaps: vec![],
        };
        (p, d)
    }

    fn golden_set() -> Value {
        let (mut p, d) = fixed();
        let ctx = Context {
            incident: None,
            diagnosis: Some(&d),
            approvers: Some("<@U0APPROVER>, members of <!subteam^S0ONCALL>"),
            link: None,
        };
        let now = p.created_at;
        p.state = ProposalState::Pending;
        let pending = proposal_blocks(&p, ctx);
        let mut approved = p.clone();
        approved.transition(&ProposalEvent::Approve { by: "U0123ABC".into() }, "U0123ABC", now).unwrap();
        let approved_blocks = proposal_blocks(&approved, ctx);
        let mut verified = approved.clone();
        for e in [ProposalEvent::StartApply, ProposalEvent::Applied, ProposalEvent::Verified] {
            verified.transition(&e, "kubemedic", now).unwrap();
        }
        verified.outcome = Some("Deployment shop/web: 3/3 replicas updated and available".into());
        let mut failed = approved.clone();
        failed.transition(&ProposalEvent::StartApply, "kubemedic", now).unwrap();
        failed
            .transition(&ProposalEvent::Fail { reason: "target changed; diagnose again".into() }, "kubemedic", now)
            .unwrap();
        failed.outcome = Some("target changed; diagnose again".into());
        let mut rejected = p.clone();
        rejected.transition(&ProposalEvent::Reject { by: "alice".into() }, "alice", now).unwrap();
        json!({
            "pending": pending,
            "approved": approved_blocks,
            "verified": proposal_blocks(&verified, ctx),
            "failed": proposal_blocks(&failed, ctx),
            "rejected": proposal_blocks(&rejected, Context::default()),
            "reply": text_blocks(":white_check_mark: Verified: 3/3 replicas available"),
        })
    }

    #[test]
    fn the_card_links_to_the_web_page_when_the_ui_has_an_external_url() {
        let (p, d) = fixed();
        let ctx = |link| Context { incident: None, diagnosis: Some(&d), approvers: None, link };
        let url = format!("https://km.example/ui/proposals/{}", p.id);
        let with = proposal_blocks(&p, ctx(Some(&url))).to_string();
        assert!(with.contains(&format!("<{url}|open in kubemedic>")), "{with}");
        assert!(!proposal_blocks(&p, ctx(None)).to_string().contains("open in kubemedic"));
    }

    #[test]
    fn matches_the_golden_file_checked_by_slack_sdk() {
        let got = golden_set();
        if std::env::var_os("KUBEMEDIC_UPDATE_FIXTURES").is_some() {
            std::fs::write(golden(), serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        }
        let want: Value = serde_json::from_str(&std::fs::read_to_string(golden()).unwrap()).unwrap();
        assert_eq!(got, want, "Block Kit output changed: rerun with KUBEMEDIC_UPDATE_FIXTURES=1 and run tests/python");
    }

    #[test]
    fn pending_has_buttons_with_confirm_and_decided_has_none() {
        let set = golden_set();
        let actions = |k: &str| set[k].as_array().unwrap().iter().filter(|b| b["type"] == "actions").count();
        assert_eq!(actions("pending"), 1);
        let buttons = set["pending"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(buttons["elements"][0]["action_id"], APPROVE_ACTION);
        assert!(buttons["elements"][0]["confirm"].is_object());
        assert_eq!(buttons["elements"][1]["action_id"], REJECT_ACTION);
        for k in ["approved", "verified", "failed", "rejected"] {
            assert_eq!(actions(k), 0, "{k} still has buttons");
        }
        let text = set["approved"].to_string();
        assert!(text.contains("<@U0123ABC>"), "{text}");
        assert!(set["rejected"].to_string().contains("*alice*"));
    }

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        let set = golden_set();
        let s = set["pending"].to_string();
        assert!(!s.contains("<!channel>") && s.contains("&lt;!channel&gt;"));
        let (mut p, _) = fixed();
        p.diff = "x".repeat(10_000) + "```";
        let blocks = proposal_blocks(&p, Context::default());
        for b in blocks.as_array().unwrap() {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= SECTION_MAX);
            }
        }
        assert_eq!(who("U12AB"), "<@U12AB>");
        assert_eq!(who("bob<x>"), "*bob&lt;x&gt;*");
    }
}
