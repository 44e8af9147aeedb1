//! One byte budget for every tool result, applied where results leave the
//! MCP server (not per tool): a result over budget is cut at record
//! boundaries (array elements, lines of multi-line text) and carries a note
//! saying what was left out and how to get it (a `continue` token, or the
//! tool's narrower filters).
//!
//! The budget is measured on the result's JSON text (`content[0].text`), the
//! part every client hands to the model; `structuredContent` carries the same
//! value once more for clients that read it instead.

use serde::Serialize;
use serde_json::Value;

/// Default budget. Claude Code refuses tool output above 25,000 tokens
/// (`MAX_MCP_OUTPUT_TOKENS`) and moves a result above 50,000 characters out of
/// the conversation into a file; JSON runs at roughly 3 to 4 bytes a token, so
/// 25,000 bytes (about 7,000 tokens) stays in the conversation of every client
/// we know, while still holding a hundred or more list items.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 25_000;

/// The smallest budget accepted: below it the note alone would not fit.
pub const MIN_MAX_RESULT_BYTES: usize = 2_000;

/// Room kept free for the note and the fields the cut adds.
const NOTE_RESERVE: usize = 1_200;

/// Rounds of cutting before the last resort (cutting inside one long string).
const MAX_ROUNDS: usize = 64;

/// One container that was cut.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Cut {
    /// JSON pointer of the array or text in the result.
    pub at: String,
    /// What a record is there: `items` (array elements), `lines` or `chars`.
    pub unit: &'static str,
    pub kept: usize,
    pub omitted: usize,
}

/// What the cut result carries under `budget`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetNote {
    pub max_bytes: usize,
    /// Size of the whole result before the cut.
    pub full_bytes: usize,
    pub cuts: Vec<Cut>,
    /// How to get the rest, in one sentence a model can follow.
    pub note: String,
}

/// Cut `value` (a result of `tool`) to `max_bytes` of JSON text,
/// adding a `budget` field that says what was cut and how to continue. `None` when it fits.
///
/// The JSON text plus the note repeated as a text block of its own (so the text a model
/// reads ends with it) stay within `max_bytes`.
pub fn fit(tool: &str, value: &mut Value, max_bytes: usize) -> Option<BudgetNote> {
    let full_bytes = json_len(value);
    if full_bytes <= max_bytes {
        return None;
    }
    let original = value.clone();
    let mut reserve = NOTE_RESERVE;
    loop {
        let note = fit_within(tool, value, max_bytes, reserve, full_bytes);
        let total = json_len(value) + note.note.len();
        if total <= max_bytes || reserve >= max_bytes {
            return Some(note);
        }
        // Many cuts make a long note: cut again from the start with more room for it.
        reserve += total - max_bytes + 64;
        *value = original.clone();
    }
}

fn fit_within(tool: &str, value: &mut Value, max_bytes: usize, reserve: usize, full_bytes: usize) -> BudgetNote {
    let target = max_bytes.saturating_sub(reserve).max(1);
    let mut cuts: Vec<Cut> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let size = json_len(value);
        if size <= target {
            break;
        }
        // Share the cut among the big containers (a water level), so one list is not
        // emptied while another of the same size keeps everything.
        let containers = outer_containers(value);
        if containers.is_empty() {
            break;
        }
        let mut progressed = false;
        for (at, excess) in water_level(&containers, size - target) {
            // Log lines are a tail: the newest (last) ones are kept.
            let newest_last = tool == "pod_logs" && at.ends_with("/lines");
            if let Some(cut) = cut_container(value, &at, excess, newest_last) {
                progressed |= cut.omitted > 0;
                merge(&mut cuts, cut);
            }
        }
        if !progressed {
            break;
        }
    }
    // Last resort: a record bigger than the whole budget (one huge line) is cut inside.
    while json_len(value) > target {
        let Some(at) = longest_string(value) else { break };
        let over = json_len(value) - target;
        let Some(cut) = cut_chars(value, &at, over) else { break };
        merge(&mut cuts, cut);
    }
    if tool == "list_resources" {
        align_listing(value, &mut cuts);
    }
    let note = continuation(tool, max_bytes, value, &cuts);
    let budget = BudgetNote { max_bytes, full_bytes, cuts, note };
    if let Value::Object(map) = value {
        if matches!(map.get("truncated"), Some(Value::Bool(_))) {
            map.insert("truncated".into(), Value::Bool(true));
        }
        map.insert("budget".into(), serde_json::to_value(&budget).unwrap_or_default());
    }
    budget
}

/// Bytes of `v` as compact JSON.
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

fn merge(cuts: &mut Vec<Cut>, cut: Cut) {
    match cuts.iter_mut().find(|c| c.at == cut.at && c.unit == cut.unit) {
        Some(c) => {
            c.kept = cut.kept;
            c.omitted += cut.omitted;
        }
        None => cuts.push(cut),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The cuttable containers not inside another one, with their sizes.
fn outer_containers(v: &Value) -> Vec<(String, usize)> {
    fn walk(v: &Value, path: &mut String, out: &mut Vec<(String, usize)>) {
        match v {
            Value::Array(items) if items.len() >= 2 => out.push((path.clone(), json_len(v))),
            Value::String(s) if s.trim_end_matches('\n').contains('\n') => out.push((path.clone(), json_len(v))),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(item, path, out);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&escape(k));
                    walk(item, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// How much to take from each container so that `over` bytes go and every container
/// above the resulting level is brought down to it.
fn water_level(containers: &[(String, usize)], over: usize) -> Vec<(String, usize)> {
    let mut sizes: Vec<usize> = containers.iter().map(|(_, s)| *s).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    // Find the level: with the k biggest above it, k * (s_k-1 - level) summed reaches `over`.
    let mut level = 0;
    let mut sum = 0usize;
    for (k, s) in sizes.iter().enumerate() {
        sum += s;
        let next = sizes.get(k + 1).copied().unwrap_or(0);
        // Removing everything above `next` from the k+1 biggest.
        if sum - (k + 1) * next >= over {
            level = (sum - over) / (k + 1);
            break;
        }
    }
    containers.iter().filter(|(_, s)| *s > level).map(|(at, s)| (at.clone(), s - level)).collect()
}

/// Drop trailing records (leading ones when `from_front`) of the container at `at` until
/// `over` bytes are gone; at least one record stays.
fn cut_container(value: &mut Value, at: &str, over: usize, from_front: bool) -> Option<Cut> {
    match value.pointer_mut(at)? {
        Value::Array(items) => {
            let before = items.len();
            let mut removed = 0;
            let mut drop = 0;
            while before - drop > 1 && removed < over {
                let index = if from_front { drop } else { before - 1 - drop };
                removed += json_len(&items[index]) + 1;
                drop += 1;
            }
            if from_front {
                items.drain(..drop);
            } else {
                items.truncate(before - drop);
            }
            let unit = if from_front { "items (the last ones kept)" } else { "items" };
            Some(Cut { at: at.to_owned(), unit, kept: items.len(), omitted: drop })
        }
        Value::String(text) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let before = lines.len();
            let mut keep = lines.len();
            let mut removed = 0;
            while keep > 1 && removed < over {
                keep -= 1;
                // Escaping can only make a line longer in JSON, so this never under-counts by much.
                removed += json_len(&Value::String(lines[keep].to_owned())).saturating_sub(2);
            }
            let kept: String = lines[..keep].concat();
            *text = kept;
            Some(Cut { at: at.to_owned(), unit: "lines", kept: keep, omitted: before - keep })
        }
        _ => None,
    }
}

fn longest_string(v: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String, best: &mut Option<(String, usize)>) {
        match v {
            Value::String(s) if s.len() > 64 && best.as_ref().is_none_or(|(_, b)| s.len() > *b) => {
                *best = Some((path.clone(), s.len()));
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(item, path, best);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&escape(k));
                    walk(item, path, best);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    walk(v, &mut String::new(), &mut best);
    best.map(|(p, _)| p)
}

fn cut_chars(value: &mut Value, at: &str, over: usize) -> Option<Cut> {
    let Value::String(text) = value.pointer_mut(at)? else { return None };
    let before = text.chars().count();
    // Keep at least 64 bytes; the marker says the text goes on.
    let mut keep = text.len().saturating_sub(over + 8).max(64).min(text.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    if keep >= text.len() {
        return None;
    }
    text.truncate(keep);
    text.push_str(" [cut]");
    let kept = text.chars().count() - " [cut]".len();
    Some(Cut { at: at.to_owned(), unit: "chars", kept, omitted: before - kept })
}

/// The sentence that tells the caller how to get what was cut.
fn continuation(tool: &str, max_bytes: usize, value: &mut Value, cuts: &[Cut]) -> String {
    let what = cuts
        .iter()
        .map(|c| format!("{} keeps {} of {} {}", c.at, c.kept, c.kept + c.omitted, c.unit))
        .collect::<Vec<_>>()
        .join("; ");
    let kept_at = |at: &str| cuts.iter().find(|c| c.at == at).map(|c| c.kept);
    let how = match tool {
        "list_resources" => match list_continue(value, kept_at("/items")) {
            Some(token) => format!(
                "call list_resources again with the same kind, namespace and label_selector and continue: \"{token}\" for the next items (or a smaller limit, or a label_selector)"
            ),
            None => "call list_resources with a smaller limit or a label_selector".to_owned(),
        },
        "events" => format!(
            "call events with limit: {} or narrower filters (since_seconds, event_type, reason, kind and name)",
            kept_at("/events").unwrap_or(10)
        ),
        "pod_logs" => match cuts.iter().filter(|c| c.at.ends_with("/lines")).map(|c| c.kept).min() {
            Some(k) => format!(
                "call pod_logs with tail: {k} for a result that fits (the newest lines were kept), or narrow with a grep pattern, since_seconds, one container or a smaller max_pods"
            ),
            None => "call pod_logs with a smaller tail, a grep pattern, since_seconds, one container, or a smaller max_pods".to_owned(),
        },
        "cluster_health" => "call cluster_health with namespace for one namespace, then describe_workload or list_resources for details".to_owned(),
        "workload_graph" => "call workload_graph with kind and name for one workload's graph".to_owned(),
        "drift_check" => "call drift_check with namespace for one namespace".to_owned(),
        "list_incidents" => format!(
            "call list_incidents with limit: {} or narrower filters (status, namespace)",
            kept_at("/incidents").unwrap_or(10)
        ),
        "list_proposals" => format!(
            "call list_proposals with limit: {} or a state filter",
            kept_at("/proposals").unwrap_or(10)
        ),
        "describe_workload" => "call events with the workload's kind and name for all its events, and list_resources (kind Pod, a label_selector) for all its pods".to_owned(),
        "get_resource" => "call describe_workload or list_resources for a summary of the object".to_owned(),
        _ => format!("call {tool} with narrower arguments"),
    };
    format!("Result cut to fit the {max_bytes}-byte budget (mcp.max_result_bytes): {what}. To get the rest, {how}.")
}

/// A listing asked for with `objects: true` holds each item twice (`items[i]` and `objects[i]`);
/// the water level may cut the two arrays to different lengths, but the `continue` token follows
/// `items`. Cut both to the shorter one so following the token skips nothing.
fn align_listing(value: &mut Value, cuts: &mut Vec<Cut>) {
    let len = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).map(Vec::len);
    let (Some(items), Some(objects)) = (len(value, "items"), len(value, "objects")) else { return };
    if objects == 0 || items == objects {
        return;
    }
    let keep = items.min(objects);
    for key in ["items", "objects"] {
        if let Some(Value::Array(list)) = value.get_mut(key)
            && list.len() > keep
        {
            let omitted = list.len() - keep;
            list.truncate(keep);
            merge(cuts, Cut { at: format!("/{key}"), unit: "items", kept: keep, omitted });
        }
    }
}

/// For a cut listing: the `continue` token after the last item kept (`namespace/name`),
/// written into the result so following it yields exactly what was cut and everything after.
fn list_continue(value: &mut Value, kept: Option<usize>) -> Option<String> {
    kept?;
    let last = value.get("items")?.as_array()?.last()?;
    let ns = last.get("namespace").and_then(Value::as_str).unwrap_or_default();
    let name = last.get("name").and_then(Value::as_str)?;
    let token = format!("{ns}/{name}");
    if let Value::Object(map) = value {
        map.insert("continue".into(), Value::String(token.clone()));
    }
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods(n: usize) -> Value {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"kind": "Pod", "namespace": "bulk", "name": format!("bulk-{i:05}"), "status": "Running"}))
            .collect();
        json!({"kind": "Pod", "items": items, "truncated": false})
    }

    #[test]
    fn a_result_within_budget_is_untouched() {
        let mut v = pods(3);
        let before = v.clone();
        assert!(fit("list_resources", &mut v, 25_000).is_none());
        assert_eq!(v, before);
    }

    #[test]
    fn a_listing_with_objects_is_cut_to_the_same_items_in_both_arrays() {
        let mut v = pods(3000);
        let objects: Vec<Value> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| json!({"kind": "Pod", "metadata": {"name": i["name"], "namespace": "bulk"}, "spec": {"padding": "x".repeat(400)}}))
            .collect();
        v["objects"] = Value::Array(objects);
        let note = fit("list_resources", &mut v, 200_000).unwrap();
        let items = v["items"].as_array().unwrap();
        let objects = v["objects"].as_array().unwrap();
        assert!(!items.is_empty());
        assert_eq!(items.len(), objects.len(), "{}", note.note);
        let last = items.last().unwrap()["name"].as_str().unwrap();
        assert_eq!(objects.last().unwrap()["metadata"]["name"], json!(last));
        assert_eq!(v["continue"], json!(format!("bulk/{last}")));
        for at in ["/items", "/objects"] {
            let cut = note.cuts.iter().find(|c| c.at == at).unwrap();
            assert_eq!((cut.kept, cut.kept + cut.omitted), (items.len(), 3000), "{at}");
        }
    }

    #[test]
    fn a_listing_is_cut_at_an_item_and_continues_after_the_last_kept_item() {
        let mut v = pods(3000);
        let note = fit("list_resources", &mut v, 25_000).unwrap();
        assert!(json_len(&v) + note.note.len() <= 25_000, "{}", json_len(&v));
        let items = v["items"].as_array().unwrap();
        assert!(items.len() > 100, "uses the budget, not a fraction of it: {}", items.len());
        let last = items.last().unwrap()["name"].as_str().unwrap();
        assert_eq!(v["continue"], json!(format!("bulk/{last}")));
        assert_eq!(v["truncated"], json!(true));
        assert_eq!(
            note.cuts,
            vec![Cut { at: "/items".into(), unit: "items", kept: items.len(), omitted: 3000 - items.len() }]
        );
        assert!(note.note.contains(&format!("continue: \"bulk/{last}\"")), "{}", note.note);
        assert_eq!(v["budget"]["note"], json!(note.note));
        // Every kept item is whole.
        assert!(items.iter().all(|i| i["status"] == "Running"));
    }

    #[test]
    fn text_is_cut_at_a_line_and_nested_lists_at_their_records() {
        let lines: Vec<Value> = (0..5000).map(|i| json!(format!("line {i} of the log"))).collect();
        let mermaid: String = (0..3000).map(|i| format!("  p{i} --> rs\n")).collect();
        let mut v = json!({"logs": [{"pod": "a", "lines": lines}], "mermaid": mermaid});
        let note = fit("pod_logs", &mut v, 10_000).unwrap();
        assert!(json_len(&v) + note.note.len() <= 10_000);
        assert!(v["mermaid"].as_str().unwrap().ends_with('\n'), "whole lines only");
        assert!(v["logs"][0]["lines"].as_array().unwrap().iter().all(|l| l.as_str().unwrap().ends_with("of the log")));
        let lines = v["logs"][0]["lines"].as_array().unwrap();
        assert_eq!(lines.last().unwrap(), "line 4999 of the log", "a log keeps its newest lines");
        assert!(note.cuts.iter().any(|c| c.at == "/logs/0/lines" && c.unit.starts_with("items (the last")));
        assert!(note.cuts.iter().any(|c| c.at == "/mermaid" && c.unit == "lines"));
        assert!(note.note.contains(&format!("tail: {}", lines.len())) && note.note.contains("grep"), "{}", note.note);
    }

    #[test]
    fn two_big_lists_share_the_cut() {
        let a: Vec<Value> = (0..3000).map(|i| json!(format!("Pod/bulk-{i:05}"))).collect();
        let b: Vec<Value> = (0..3000).map(|i| json!({"pod": format!("bulk-{i:05}"), "ready": true})).collect();
        let mut v = json!({"owner_chain": a, "pods": b});
        let note = fit("describe_workload", &mut v, 25_000).unwrap();
        assert!(json_len(&v) + note.note.len() <= 25_000);
        let (a, b) = (v["owner_chain"].as_array().unwrap().len(), v["pods"].as_array().unwrap().len());
        assert!(a > 100 && b > 100, "both keep a fair share: {a} and {b}");
        assert!(json_len(&v) > 20_000, "and the budget is used: {}", json_len(&v));
    }

    #[test]
    fn one_record_larger_than_the_budget_is_cut_inside_as_a_last_resort() {
        let mut v = json!({"object": {"data": "x".repeat(100_000)}});
        let note = fit("get_resource", &mut v, 5_000).unwrap();
        assert!(json_len(&v) + note.note.len() <= 5_000);
        assert_eq!(note.cuts[0].unit, "chars");
        assert!(v["object"]["data"].as_str().unwrap().ends_with("[cut]"));
    }
}
