//! Rule files as written (`rules/*.yaml`). These types are the source of
//! `schemas/rules.schema.json`, which editors use to validate rule files.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::signal::SignalSource;

/// One rule file: a list of rules, tried in order (files in name order).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "kubemedic rule file")]
pub struct RuleFile {
    /// The rules of this file; the first rule (by file name, then position) that matches a signal wins.
    pub rules: Vec<RuleSpec>,
}

/// A rule: which signals it takes and what happens with them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name across all rule files (shown in incidents, metrics and Slack).
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the rule is for, for reviewers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Which signals the rule takes; every given condition must hold.
    #[serde(rename = "match")]
    pub matches: MatchSpec,
    /// The prompt workflow that diagnoses incidents of this rule.
    pub workflow: WorkflowSpec,
    /// Who may approve its proposals (Slack user ids or MCP/CLI user names); empty = anyone with the approver role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Whether the workflow may propose changes at all; false = diagnose and report only.
    #[serde(default)]
    pub allow_mutations: bool,
    /// After an incident resolves, how long further signals with the same fingerprint are folded into it
    /// instead of opening a new incident (e.g. `15m`, `1h30m`). Default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub cooldown: Option<String>,
    /// At most this many new incidents from this rule per window; further ones are dropped and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// Conditions on a signal. Omitted conditions always hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Signal sources (`cluster`, `alertmanager`, `cron`, `manual`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<SignalSource>,
    /// Reasons: Kubernetes' own words (`CrashLoopBackOff`, `OOMKilled`, `FailedScheduling`, ...) or alert names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Namespaces of the workload; `*` matches any run of characters (`team-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Label selector on the workload's namespace (`kubectl -l` syntax, e.g. `team=payments,env!=dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Label selector on the object's labels (for alerts: the alert's labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<String>,
    /// Kinds of the workload (`Deployment`, `StatefulSet`, `Node`, ...), case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Alert labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alert_labels: BTreeMap<String, String>,
    /// Severities (`critical`, `warning`, ...); signals without a severity do not match when this is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<String>,
}

/// The prompt workflow to run.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Prompt name (the `name` in the front matter of a file under `prompts/`).
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// Prompt arguments; values may use `{{ namespace }}`, `{{ kind }}`, `{{ name }}`, `{{ reason }}`,
    /// `{{ cluster }}`, `{{ object_kind }}`, `{{ object_name }}`, `{{ severity }}`, `{{ message }}`,
    /// `{{ source }}` and `{{ labels.KEY }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arguments: BTreeMap<String, String>,
}

/// A rate limit on new incidents.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Largest number of new incidents per window.
    #[schemars(range(min = 1))]
    pub max: u32,
    /// Window length (e.g. `1h`).
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub per: String,
}

/// Parse `1h30m`, `15m`, `90s`, `500ms`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 30s, 15m, 1h30m, 2d)");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The JSON Schema of a rule file, pretty-printed with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RuleFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "5", "m", "5x", "1h 5m", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// `schemas/rules.schema.json` is generated from these types; regenerate with
    /// `UPDATE_SCHEMAS=1 cargo test -p kubemedic --lib rules::spec`.
    #[test]
    fn published_schema_is_up_to_date() {
        let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
            .join("../schemas/rules.schema.json");
        let expected = json_schema();
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is out of date: run UPDATE_SCHEMAS=1 cargo test -p kubemedic --lib rules::spec",
            path.display()
        );
    }
}
