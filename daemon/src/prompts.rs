//! Prompt workflows (`prompts/*.md`): Markdown with a front matter of name, description, arguments and steps.
//!
//! A prompt is two things at once: the Markdown body tells an agent (a human
//! at an MCP client, or the LLM runner) the workflow step by step, and the
//! declared `steps` are the same workflow as tool calls that the built-in
//! diagnostician executes deterministically. Both refer to arguments as
//! `{{name}}` placeholders, filled in by [`Prompt::render`].
//!
//! ```text
//! ---
//! name: diagnose-workload
//! description: Find the root cause of a failing workload.
//! arguments:
//!   - name: namespace
//!     description: Namespace of the workload.
//!     required: true
//! steps:
//!   - tool: describe_workload
//!     args: { namespace: "{{namespace}}", kind: "{{kind}}", name: "{{name}}" }
//! ---
//! # Markdown body ...
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Arguments a prompt is rendered with.
pub type Arguments = BTreeMap<String, String>;

/// One declared argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptArgument {
    /// Placeholder name, used as `{{name}}` in the body and step arguments.
    pub name: String,
    /// What the argument means, shown to MCP clients.
    #[serde(default)]
    pub description: String,
    /// Whether rendering fails without it.
    #[serde(default)]
    pub required: bool,
}

/// One tool call of the workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Tool name (see [`crate::tools`]).
    pub tool: String,
    /// Tool arguments; string values may contain `{{argument}}` placeholders.
    /// A value that is exactly one placeholder of an absent optional argument is dropped.
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
    /// Why the step is there, for humans and for the evidence trail.
    #[serde(default)]
    pub purpose: String,
}

/// A loaded prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prompt {
    /// Unique name (DNS-1123 label style).
    pub name: String,
    pub description: String,
    pub arguments: Vec<PromptArgument>,
    pub steps: Vec<Step>,
    /// Markdown body with placeholders.
    pub body: String,
    /// File it was loaded from.
    #[serde(skip)]
    #[schemars(skip)]
    pub source: PathBuf,
}

/// The front matter as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    name: String,
    description: String,
    #[serde(default)]
    arguments: Vec<PromptArgument>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompt directory {}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read prompt file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that is not a valid prompt; `line` is 1-based within the file.
    #[error("{}:{line}: {reason}", path.display())]
    Invalid { path: PathBuf, line: usize, reason: String },
    #[error("prompt {name} is defined twice: {} and {}", first.display(), second.display())]
    Duplicate { name: String, first: PathBuf, second: PathBuf },
    #[error("prompt {prompt}: missing required argument {argument}")]
    MissingArgument { prompt: String, argument: String },
    #[error("prompt {prompt}: unknown argument {argument} (declared: {declared})")]
    UnknownArgument { prompt: String, argument: String, declared: String },
}

/// All prompts of a directory, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    prompts: BTreeMap<String, Prompt>,
}

impl Catalog {
    /// Load every `*.md` file of `dir` (not recursive). Any invalid file fails
    /// the whole load, with file and line.
    pub fn load(dir: &Path) -> Result<Catalog, PromptError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PromptError::ReadDir { path: dir.to_owned(), source })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PromptError::ReadDir { path: dir.to_owned(), source })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut catalog = Catalog::default();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| PromptError::ReadFile { path: path.clone(), source })?;
            catalog.insert(Prompt::parse(&path, &text)?)?;
        }
        Ok(catalog)
    }

    /// Add one prompt; refuses a second prompt of the same name.
    pub fn insert(&mut self, prompt: Prompt) -> Result<(), PromptError> {
        if let Some(first) = self.prompts.get(&prompt.name) {
            return Err(PromptError::Duplicate {
                name: prompt.name.clone(),
                first: first.source.clone(),
                second: prompt.source.clone(),
            });
        }
        self.prompts.insert(prompt.name.clone(), prompt);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    /// Prompts sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Prompt> {
        self.prompts.values()
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// Check that every step names one of `tools`; returns file-level errors.
    pub fn check_tools(&self, tools: &[&str]) -> Result<(), PromptError> {
        for p in self.prompts.values() {
            for (i, step) in p.steps.iter().enumerate() {
                if !tools.contains(&step.tool.as_str()) {
                    return Err(PromptError::Invalid {
                        path: p.source.clone(),
                        line: 1,
                        reason: format!("step {} names unknown tool `{}`", i + 1, step.tool),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Prompt {
    /// Parse one prompt file's text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Prompt, PromptError> {
        let invalid = |line: usize, reason: String| PromptError::Invalid { path: path.to_owned(), line, reason };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.split_inclusive('\n');
        match lines.next() {
            Some(first) if first.trim_end() == "---" => {}
            _ => return Err(invalid(1, "missing front matter: the file must start with a `---` line".into())),
        }
        let mut yaml = String::new();
        let mut closing = None;
        for (i, line) in lines.by_ref().enumerate() {
            if line.trim_end() == "---" {
                closing = Some(i + 2);
                break;
            }
            yaml.push_str(line);
        }
        let Some(closing_line) = closing else {
            return Err(invalid(1, "front matter is not closed by a `---` line".into()));
        };
        let body: String = lines.collect();
        let fm: FrontMatter = serde_yaml_ng::from_str(&yaml).map_err(|e| {
            // Front matter starts on line 2 of the file.
            let line = e.location().map_or(2, |l| l.line() + 1);
            invalid(line, format!("invalid front matter: {e}"))
        })?;
        let line_of = |needle: &str| yaml.lines().position(|l| l.contains(needle)).map_or(2, |i| i + 2);

        if !is_prompt_name(&fm.name) {
            return Err(invalid(
                line_of("name:"),
                format!("name `{}` must be lowercase letters, digits and '-', at most 63 characters", fm.name),
            ));
        }
        if fm.description.trim().is_empty() {
            return Err(invalid(line_of("description:"), "description must not be empty".into()));
        }
        let mut declared = BTreeSet::new();
        for a in &fm.arguments {
            if !is_argument_name(&a.name) {
                return Err(invalid(
                    line_of(&a.name),
                    format!("argument name `{}` must be letters, digits and '_'", a.name),
                ));
            }
            if !declared.insert(a.name.as_str()) {
                return Err(invalid(line_of(&a.name), format!("argument `{}` is declared twice", a.name)));
            }
        }
        for (i, step) in fm.steps.iter().enumerate() {
            if step.tool.trim().is_empty() {
                return Err(invalid(line_of("tool:"), format!("step {} has an empty tool", i + 1)));
            }
            let mut used = Vec::new();
            for v in step.args.values() {
                placeholders_in_value(v, &mut used);
            }
            for name in used {
                if !declared.contains(name.as_str()) {
                    return Err(invalid(
                        line_of(&format!("{{{{{name}}}}}")),
                        format!("step {} ({}) uses undeclared argument `{{{{{name}}}}}`", i + 1, step.tool),
                    ));
                }
            }
        }
        let mut used = Vec::new();
        placeholders(&body, &mut used);
        for name in used {
            if !declared.contains(name.as_str()) {
                let line = body.lines().position(|l| l.contains(&format!("{{{{{name}}}}}"))).unwrap_or(0);
                return Err(invalid(
                    closing_line + 1 + line,
                    format!("body uses undeclared argument `{{{{{name}}}}}`"),
                ));
            }
        }
        Ok(Prompt {
            name: fm.name,
            description: fm.description.trim().to_owned(),
            arguments: fm.arguments,
            steps: fm.steps,
            body,
            source: path.to_owned(),
        })
    }

    /// Fill in the placeholders. Required arguments must be present, unknown
    /// ones are refused; absent optional ones render as empty text (and a step
    /// argument that is only that placeholder is left out).
    pub fn render(&self, args: &Arguments) -> Result<(String, Vec<Step>), PromptError> {
        for name in args.keys() {
            if !self.arguments.iter().any(|a| &a.name == name) {
                return Err(PromptError::UnknownArgument {
                    prompt: self.name.clone(),
                    argument: name.clone(),
                    declared: self.arguments.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        for a in &self.arguments {
            if a.required && args.get(&a.name).is_none_or(|v| v.trim().is_empty()) {
                return Err(PromptError::MissingArgument { prompt: self.name.clone(), argument: a.name.clone() });
            }
        }
        let body = substitute(&self.body, args);
        let steps = self
            .steps
            .iter()
            .map(|s| {
                let mut out = serde_json::Map::new();
                for (k, v) in &s.args {
                    if let serde_json::Value::String(text) = v
                        && let Some(name) = sole_placeholder(text)
                        && !args.contains_key(name)
                    {
                        continue;
                    }
                    out.insert(k.clone(), substitute_value(v, args));
                }
                Step { tool: s.tool.clone(), args: out, purpose: substitute(&s.purpose, args) }
            })
            .collect();
        Ok((body, steps))
    }
}

fn is_prompt_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_argument_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Names of `{{name}}` placeholders in `text`.
fn placeholders(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if is_argument_name(name) {
            out.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
}

fn placeholders_in_value(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => placeholders(s, out),
        serde_json::Value::Array(items) => items.iter().for_each(|i| placeholders_in_value(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| placeholders_in_value(i, out)),
        _ => {}
    }
}

fn sole_placeholder(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (is_argument_name(inner)).then_some(inner)
}

fn substitute(text: &str, args: &Arguments) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if is_argument_name(after[..end].trim()) => {
                let name = after[..end].trim();
                out.push_str(args.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn substitute_value(v: &serde_json::Value, args: &Arguments) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(substitute(s, args)),
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute_value(i, args)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), substitute_value(i, args))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nname: demo\ndescription: A demo.\narguments:\n  - name: namespace\n    description: ns\n    required: true\n  - name: container\nsteps:\n  - tool: events\n    args: { namespace: \"{{namespace}}\", limit: 5 }\n  - tool: pod_logs\n    args: { namespace: \"{{namespace}}\", container: \"{{container}}\" }\n---\n# Look at {{namespace}}\n";

    fn args(pairs: &[(&str, &str)]) -> Arguments {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parses_and_renders() {
        let p = Prompt::parse(Path::new("demo.md"), GOOD).unwrap();
        assert_eq!(p.name, "demo");
        assert_eq!(p.arguments.len(), 2);
        let (body, steps) = p.render(&args(&[("namespace", "shop")])).unwrap();
        assert_eq!(body, "# Look at shop\n");
        assert_eq!(steps[0].args["namespace"], "shop");
        assert_eq!(steps[0].args["limit"], 5);
        // Absent optional argument: the key is left out, not sent empty.
        assert!(!steps[1].args.contains_key("container"));
        let (_, steps) = p.render(&args(&[("namespace", "shop"), ("container", "web")])).unwrap();
        assert_eq!(steps[1].args["container"], "web");
    }

    #[test]
    fn render_checks_arguments() {
        let p = Prompt::parse(Path::new("demo.md"), GOOD).unwrap();
        let err = p.render(&Arguments::new()).unwrap_err();
        assert_eq!(err.to_string(), "prompt demo: missing required argument namespace");
        let err = p.render(&args(&[("namespace", "a"), ("nope", "b")])).unwrap_err();
        assert!(err.to_string().contains("unknown argument nope"), "{err}");
    }

    #[test]
    fn errors_carry_file_and_line() {
        let bad = "---\nname: demo\ndescription: x\nsteps:\n  - tool: events\n    argz: {}\n---\nbody\n";
        let err = Prompt::parse(Path::new("p/bad.md"), bad).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p/bad.md:6:"), "{msg}");
        assert!(msg.contains("argz"), "{msg}");

        let undeclared = "---\nname: demo\ndescription: x\n---\nline one\nuses {{who}}\n";
        let msg = Prompt::parse(Path::new("u.md"), undeclared).unwrap_err().to_string();
        assert!(msg.starts_with("u.md:6:"), "{msg}");
        assert!(msg.contains("{{who}}"), "{msg}");

        let msg = Prompt::parse(Path::new("n.md"), "no front matter").unwrap_err().to_string();
        assert!(msg.starts_with("n.md:1: missing front matter"), "{msg}");

        let msg =
            Prompt::parse(Path::new("n.md"), "---\nname: Bad_Name\ndescription: x\n---\n").unwrap_err().to_string();
        assert!(msg.starts_with("n.md:2:"), "{msg}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.md"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.md"), GOOD).unwrap();
        let err = Catalog::load(dir.path()).unwrap_err();
        assert!(matches!(err, PromptError::Duplicate { .. }), "{err}");
    }

    #[test]
    fn shipped_prompts_load() {
        let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("../prompts");
        let catalog = Catalog::load(&dir).unwrap();
        for name in [
            "diagnose-workload",
            "summarize-cluster-health",
            "triage-alert",
            "validate-rollout",
            "log-triage",
            "drift-report",
        ] {
            let p = catalog.get(name).unwrap_or_else(|| panic!("prompt {name} missing"));
            assert!(!p.steps.is_empty(), "{name} has no steps");
            assert!(p.body.len() > 200, "{name} body too short");
        }
    }
}
