//! Rules (`rules/*.yaml`): match signals to prompt workflows.
//!
//! A rule says which signals it takes (source, reason, namespace and label
//! selectors, alert labels, severity), which prompt workflow diagnoses them
//! and with which arguments, who may approve, whether mutations may be
//! proposed at all, and the cooldown and rate limit of its incidents.
//! Files are read in name order and rules in file order; the first rule that
//! matches wins. Everything is checked at load time: a broken file is
//! refused with `file:line: reason` and no rule of it is used.

pub mod check;
pub mod selector;
pub mod spec;
pub mod template;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::signal::{Signal, SignalSource};

pub use selector::LabelSelector;
pub use spec::{RuleFile, RuleSpec, parse_duration};
pub use template::Template;

/// Cooldown when a rule does not set one.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(15 * 60);

/// One problem in one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line.max(1), self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules directory {}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read rule file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, one `file:line: reason` per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RuleProblem>),
}

/// What a prompt accepts, for checking a rule's workflow arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptSignature {
    /// Every declared argument.
    pub arguments: BTreeSet<String>,
    /// The required ones.
    pub required: BTreeSet<String>,
}

/// Compiled match conditions.
#[derive(Debug, Clone, Default)]
pub struct RuleMatch {
    pub sources: Vec<SignalSource>,
    pub reasons: Vec<String>,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
    /// Lowercase.
    pub kinds: Vec<String>,
    pub alert_labels: BTreeMap<String, String>,
    pub severity: Vec<String>,
}

/// A rate limit on new incidents of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub per: Duration,
}

/// The workflow a rule starts.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub prompt: String,
    pub arguments: BTreeMap<String, Template>,
}

impl Workflow {
    /// The prompt arguments for one signal.
    pub fn arguments_for(&self, signal: &Signal) -> BTreeMap<String, String> {
        self.arguments.iter().map(|(k, t)| (k.clone(), t.render(signal))).collect()
    }
}

/// A loaded, checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub matches: RuleMatch,
    pub workflow: Workflow,
    pub approvers: Vec<String>,
    pub allow_mutations: bool,
    pub cooldown: Duration,
    pub rate_limit: Option<RateLimit>,
    /// Where it was defined, for messages.
    pub file: PathBuf,
    pub line: usize,
}

impl Rule {
    /// Whether the signal satisfies every condition. `namespace_labels` are the
    /// labels of the workload's namespace when known; a rule with a namespace
    /// selector does not match when they are not.
    pub fn matches(&self, signal: &Signal, namespace_labels: Option<&BTreeMap<String, String>>) -> bool {
        let m = &self.matches;
        let subject = signal.subject();
        if !m.sources.is_empty() && !m.sources.contains(&signal.source) {
            return false;
        }
        if !m.reasons.is_empty() && !m.reasons.contains(&signal.reason) {
            return false;
        }
        if !m.namespaces.is_empty() && !m.namespaces.iter().any(|p| glob_match(p, &subject.namespace)) {
            return false;
        }
        if !m.kinds.is_empty() && !m.kinds.iter().any(|k| k.eq_ignore_ascii_case(&subject.kind)) {
            return false;
        }
        if !m.severity.is_empty() && !signal.severity.as_ref().is_some_and(|s| m.severity.contains(s)) {
            return false;
        }
        if !m.alert_labels.is_empty() {
            if signal.source != SignalSource::Alertmanager {
                return false;
            }
            if !m.alert_labels.iter().all(|(k, v)| signal.labels.get(k) == Some(v)) {
                return false;
            }
        }
        if let Some(sel) = &m.object_selector
            && !sel.matches(&signal.labels)
        {
            return false;
        }
        if let Some(sel) = &m.namespace_selector {
            match namespace_labels {
                Some(labels) if sel.matches(labels) => {}
                _ => return false,
            }
        }
        true
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Every rule, in match order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Load every `*.yaml` / `*.yml` file of `dir` (not recursive).
    pub fn load(dir: &Path) -> Result<Self, RulesError> {
        Self::load_with_prompts(dir, None)
    }

    /// Load, and when `prompts` is given also check that each workflow names
    /// an existing prompt, passes only arguments it declares and every argument it requires.
    pub fn load_with_prompts(
        dir: &Path,
        prompts: Option<&BTreeMap<String, PromptSignature>>,
    ) -> Result<Self, RulesError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RulesError::ReadDir { path: dir.to_owned(), source })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| RulesError::ReadDir { path: dir.to_owned(), source })?;
            let path = entry.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
        files.sort();
        let mut sources = Vec::new();
        for path in files {
            let text =
                std::fs::read_to_string(&path).map_err(|source| RulesError::ReadFile { path: path.clone(), source })?;
            sources.push((path, text));
        }
        Self::from_sources(&sources, prompts)
    }

    /// Build from `(file name, contents)` pairs, in the given order.
    pub fn from_sources(
        sources: &[(PathBuf, String)],
        prompts: Option<&BTreeMap<String, PromptSignature>>,
    ) -> Result<Self, RulesError> {
        let mut problems = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        for (path, text) in sources {
            let file: RuleFile = match serde_yaml_ng::from_str(text) {
                Ok(f) => f,
                Err(err) => {
                    let line = err.location().map_or(0, |l| l.line()).min(line_count(text).max(1));
                    problems.push(RuleProblem { file: path.clone(), line, reason: yaml_reason(&err) });
                    continue;
                }
            };
            let mut seen: HashMap<String, usize> = HashMap::new();
            for spec in file.rules {
                let before = problems.len();
                let occurrence = {
                    let n = seen.entry(spec.name.clone()).or_default();
                    *n += 1;
                    *n - 1
                };
                let rule = compile(path, text, occurrence, spec, prompts, &mut problems);
                if let Some(rule) = rule
                    && problems.len() == before
                {
                    if let Some(first) = rules.iter().find(|r| r.name == rule.name) {
                        problems.push(RuleProblem {
                            file: path.clone(),
                            line: rule.line,
                            reason: format!(
                                "rule {:?} is already defined at {}:{}",
                                rule.name,
                                first.file.display(),
                                first.line
                            ),
                        });
                    } else {
                        rules.push(rule);
                    }
                }
            }
        }
        if problems.is_empty() { Ok(Self { rules }) } else { Err(RulesError::Invalid(problems)) }
    }

    /// The first rule that takes the signal. Rules with a namespace selector never match here;
    /// use [`RuleSet::match_signal_with`] with the namespace's labels.
    pub fn match_signal(&self, signal: &Signal) -> Option<&Rule> {
        self.match_signal_with(signal, None)
    }

    /// The first rule that takes the signal, given the labels of its namespace.
    pub fn match_signal_with(
        &self,
        signal: &Signal,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(signal, namespace_labels))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Lines as editors and YAML count them (`\r\n`, `\n`, `\r`, NEL, LS, PS end a line). libyaml
/// puts the end of a stream without a final line break on the line after the last one, which
/// must not reach an operator as `file:line`.
fn line_count(text: &str) -> usize {
    let is_break = |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let breaks = text.chars().filter(|c| is_break(*c)).count() - text.matches("\r\n").count();
    breaks + usize::from(text.chars().next_back().is_some_and(|c| !is_break(c)))
}

/// serde_yaml_ng puts "at line N column M" into the message; the line is already in front.
fn yaml_reason(err: &serde_yaml_ng::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The key a field is nested under, for finding its line.
fn parent_of(field: &str) -> Option<&'static str> {
    match field {
        "max" | "per" => Some("rate_limit"),
        "reasons" | "namespace_selector" | "object_selector" => Some("match"),
        "prompt" | "arguments" => Some("workflow"),
        _ => None,
    }
}

fn compile(
    path: &Path,
    text: &str,
    occurrence: usize,
    spec: RuleSpec,
    prompts: Option<&BTreeMap<String, PromptSignature>>,
    problems: &mut Vec<RuleProblem>,
) -> Option<Rule> {
    let locator = Locator::new(text, &spec.name, occurrence);
    let line = locator.start;
    macro_rules! problem {
        ($problems:expr, $field:expr, $reason:expr $(,)?) => {
            $problems.push(RuleProblem {
                file: path.to_owned(),
                line: locator.field(parent_of($field), $field),
                reason: $reason,
            })
        };
    }
    let name = spec.name.trim().to_owned();
    if name.is_empty() {
        problem!(problems, "name", "rule name must not be empty".into());
    }
    let m = &spec.matches;
    let parse_selector = |field: &str, value: &Option<String>, problems: &mut Vec<RuleProblem>| {
        value.as_ref().and_then(|s| match LabelSelector::parse(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                problem!(problems, field, format!("rule {name:?}: bad {field}: {e}"));
                None
            }
        })
    };
    let namespace_selector = parse_selector("namespace_selector", &m.namespace_selector, problems);
    let object_selector = parse_selector("object_selector", &m.object_selector, problems);
    if m.reasons.iter().any(|r| r.trim().is_empty()) {
        problem!(problems, "reasons", format!("rule {name:?}: empty reason"));
    }
    let cooldown = match spec.cooldown.as_deref().map(parse_duration).transpose() {
        Ok(d) => d.unwrap_or(DEFAULT_COOLDOWN),
        Err(e) => {
            problem!(problems, "cooldown", format!("rule {name:?}: bad cooldown: {e}"));
            DEFAULT_COOLDOWN
        }
    };
    let rate_limit = spec.rate_limit.as_ref().and_then(|rl| {
        if rl.max == 0 {
            problem!(problems, "max", format!("rule {name:?}: rate_limit.max must be at least 1"));
        }
        match parse_duration(&rl.per) {
            Ok(per) if per > Duration::ZERO => Some(RateLimit { max: rl.max, per }),
            Ok(_) => {
                problem!(problems, "per", format!("rule {name:?}: rate_limit.per must be longer than zero"));
                None
            }
            Err(e) => {
                problem!(problems, "per", format!("rule {name:?}: bad rate_limit.per: {e}"));
                None
            }
        }
    });
    let mut arguments = BTreeMap::new();
    for (key, value) in &spec.workflow.arguments {
        match Template::parse(value) {
            Ok(t) => {
                arguments.insert(key.clone(), t);
            }
            Err(e) => problems.push(RuleProblem {
                file: path.to_owned(),
                line: locator.field(Some("arguments"), key),
                reason: format!("rule {name:?}: argument {key}: {e}"),
            }),
        }
    }
    let prompt = spec.workflow.prompt.trim().to_owned();
    if prompt.is_empty() {
        problem!(problems, "prompt", format!("rule {name:?}: workflow.prompt must not be empty"));
    } else if let Some(prompts) = prompts {
        match prompts.get(&prompt) {
            None => {
                let known: Vec<&str> = prompts.keys().map(String::as_str).collect();
                problem!(
                    problems,
                    "prompt",
                    format!("rule {name:?}: unknown prompt {prompt:?} (known: {})", known.join(", "))
                );
            }
            Some(sig) => {
                for arg in spec.workflow.arguments.keys() {
                    if !sig.arguments.contains(arg) {
                        problems.push(RuleProblem {
                            file: path.to_owned(),
                            line: locator.field(Some("arguments"), arg),
                            reason: format!("rule {name:?}: prompt {prompt:?} has no argument {arg:?}"),
                        });
                    }
                }
                for req in &sig.required {
                    if !spec.workflow.arguments.contains_key(req) {
                        problem!(
                            problems,
                            if spec.workflow.arguments.is_empty() { "workflow" } else { "arguments" },
                            format!("rule {name:?}: prompt {prompt:?} requires argument {req:?}"),
                        );
                    }
                }
            }
        }
    }
    Some(Rule {
        name,
        description: spec.description,
        matches: RuleMatch {
            sources: m.source.clone(),
            reasons: m.reasons.iter().map(|r| r.trim().to_owned()).collect(),
            namespaces: m.namespaces.clone(),
            namespace_selector,
            object_selector,
            kinds: m.kinds.iter().map(|k| k.to_ascii_lowercase()).collect(),
            alert_labels: m.alert_labels.clone(),
            severity: m.severity.clone(),
        },
        workflow: Workflow { prompt, arguments },
        approvers: spec.approvers,
        allow_mutations: spec.allow_mutations,
        cooldown,
        rate_limit,
        file: path.to_owned(),
        line,
    })
}

/// Finds the line of a rule, and of a field inside it, in the file text
/// (serde gives no positions for values that parse but do not make sense).
struct Locator<'a> {
    lines: Vec<&'a str>,
    /// 1-based line of the rule's `name:`.
    start: usize,
    /// 0-based index one past the rule's last line.
    end: usize,
}

impl<'a> Locator<'a> {
    /// `occurrence` counts earlier rules of the same name in this file.
    fn new(text: &'a str, rule_name: &str, occurrence: usize) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let is_name_line = |l: &str| {
            let t = l.trim_start().trim_start_matches('-').trim_start();
            t.strip_prefix("name:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == rule_name)
        };
        let start = lines.iter().enumerate().filter(|(_, l)| is_name_line(l)).nth(occurrence).map_or(1, |(i, _)| i + 1);
        // The rule ends where the next list item at its indentation (or less) starts.
        let indent = |l: &str| l.len() - l.trim_start().len();
        let item_indent = lines
            .get(start.saturating_sub(1))
            .map(|l| if l.trim_start().starts_with('-') { indent(l) } else { indent(l).saturating_sub(2) })
            .unwrap_or(0);
        let end = lines
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, l)| l.trim_start().starts_with("- ") && indent(l) <= item_indent)
            .map_or(lines.len(), |(i, _)| i);
        Self { lines, start, end }
    }

    fn has_key(line: &str, key: &str) -> bool {
        let t = line.trim_start().trim_start_matches('-').trim_start();
        let t = t.trim_start_matches('"');
        if t.starts_with(&format!("{key}:")) || t.starts_with(&format!("{key}\":")) {
            return true;
        }
        ["{", ", ", "{ ", ","].iter().any(|p| line.contains(&format!("{p}{key}:")))
    }

    /// Line of `key:` within the rule, searched from the line of `parent:`
    /// when given; else the rule's first line.
    fn field(&self, parent: Option<&str>, key: &str) -> usize {
        if parent.is_none() && key == "name" {
            return self.start;
        }
        // From the line after `name:` (keys before it are found by the fallback below).
        let rule_first = self.start.saturating_sub(1);
        let from = parent
            .and_then(|p| (rule_first..self.end).find(|&i| Self::has_key(self.lines[i], p)))
            .unwrap_or(rule_first + 1);
        (from..self.end)
            .chain(rule_first..from)
            .find(|&i| Self::has_key(self.lines[i], key))
            .map_or(self.start, |i| i + 1)
    }
}

#[cfg(test)]
mod tests;
