//! `kubemedic validate`: every problem in rules and prompts, as `file:line: reason`, for CI and GitOps review.
//!
//! Unlike loading for `run` (which stops at the first broken prompt file),
//! this reads every file on its own so one run reports everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{PromptSignature, RuleSet, RulesError};
use crate::prompts::{Prompt, PromptError};

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct Report {
    /// `file:line: reason`, one per problem.
    pub problems: Vec<String>,
    pub rules: usize,
    pub prompts: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn md_files(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    Ok(files)
}

/// Check everything. `tools` are the tool names prompt steps may use (None = do not check).
pub fn check(rules_dir: &Path, prompts_dir: &Path, tools: Option<&[&str]>) -> Report {
    let mut report = Report::default();
    // Prompts, file by file.
    let mut prompts: BTreeMap<String, (PathBuf, Prompt)> = BTreeMap::new();
    let mut prompts_ok = true;
    match md_files(prompts_dir) {
        Err(e) => {
            prompts_ok = false;
            report.problems.push(format!("{}: cannot read prompt directory: {e}", prompts_dir.display()));
        }
        Ok(files) => {
            for path in files {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        prompts_ok = false;
                        report.problems.push(format!("{}:1: cannot read: {e}", path.display()));
                        continue;
                    }
                };
                match Prompt::parse(&path, &text) {
                    Ok(p) => {
                        if let Some(tools) = tools {
                            for step in &p.steps {
                                if !tools.contains(&step.tool.as_str()) {
                                    let line = text
                                        .lines()
                                        .position(|l| l.contains("tool:") && l.contains(step.tool.as_str()))
                                        .map_or(1, |i| i + 1);
                                    report.problems.push(format!(
                                        "{}:{line}: step names unknown tool `{}` (known: {})",
                                        path.display(),
                                        step.tool,
                                        tools.join(", ")
                                    ));
                                }
                            }
                        }
                        if let Some((first, _)) = prompts.get(&p.name) {
                            report.problems.push(format!(
                                "{}:1: prompt {} is already defined in {}",
                                path.display(),
                                p.name,
                                first.display()
                            ));
                        } else {
                            prompts.insert(p.name.clone(), (path, p));
                        }
                    }
                    Err(e @ PromptError::Invalid { .. }) => {
                        prompts_ok = false;
                        report.problems.push(e.to_string());
                    }
                    Err(e) => {
                        prompts_ok = false;
                        report.problems.push(format!("{}:1: {}", path.display(), crate::model::error::error_chain(&e)));
                    }
                }
            }
        }
    }
    report.prompts = prompts.len();
    let signatures: BTreeMap<String, PromptSignature> = prompts
        .values()
        .map(|(_, p)| {
            let sig = PromptSignature {
                arguments: p.arguments.iter().map(|a| a.name.clone()).collect(),
                required: p.arguments.iter().filter(|a| a.required).map(|a| a.name.clone()).collect(),
            };
            (p.name.clone(), sig)
        })
        .collect();
    // Rules; prompt references only when every prompt parsed (else the broken
    // prompt would show up again as "unknown prompt" in every rule using it).
    match RuleSet::load_with_prompts(rules_dir, prompts_ok.then_some(&signatures)) {
        Ok(rules) if rules.is_empty() => {
            report
                .problems
                .push(format!("{}: no rules (*.yaml): no signal would ever open an incident", rules_dir.display()));
        }
        Ok(rules) => report.rules = rules.len(),
        Err(RulesError::Invalid(problems)) => report.problems.extend(problems.iter().map(ToString::to_string)),
        Err(e) => report.problems.push(format!("{}: {}", rules_dir.display(), crate::model::error::error_chain(&e))),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn shipped_rules_and_prompts_pass() {
        let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("..");
        let report = check(&root.join("rules"), &root.join("prompts"), None);
        assert!(report.ok(), "{:#?}", report.problems);
        assert!(report.rules >= 10 && report.prompts >= 6, "{report:?}");
    }

    #[test]
    fn every_problem_is_reported_with_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let (rules, prompts) = (tmp.path().join("rules"), tmp.path().join("prompts"));
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::create_dir_all(&prompts).unwrap();
        write(
            &prompts,
            "good.md",
            "---\nname: good\ndescription: d\narguments:\n  - {name: name, required: true}\nsteps:\n  - tool: nope\n    args: {name: \"{{name}}\"}\n---\nbody {{name}}\n",
        );
        write(&rules, "a.yaml", "rules:\n  - name: a\n    match: {reasons: [X]}\n    workflow: {prompt: missing}\n");
        write(
            &rules,
            "b.yaml",
            "rules:\n  - name: b\n    match: {object_selector: \"app in\"}\n    workflow: {prompt: good, arguments: {name: x}}\n    bogus: 1\n",
        );
        write(
            &rules,
            "c.yaml",
            "rules:\n  - name: c\n    match: {namespace_selector: \"a=b\"}\n    workflow: {prompt: good, arguments: {name: x}}\n",
        );
        let report = check(&rules, &prompts, Some(&["describe_workload"]));
        let p = &report.problems;
        let has = |prefix: &str, needle: &str| p.iter().any(|l| l.starts_with(prefix) && l.contains(needle));
        assert!(has(&prompts.join("good.md").display().to_string(), "unknown tool `nope`"), "{p:#?}");
        assert!(has(&format!("{}:4: ", rules.join("a.yaml").display()), "unknown prompt \"missing\""), "{p:#?}");
        assert!(has(&format!("{}:", rules.join("b.yaml").display()), "unknown field `bogus`"), "{p:#?}");
        assert_eq!(p.len(), 3, "{p:#?}");
    }

    #[test]
    fn missing_dirs_are_problems() {
        let tmp = tempfile::tempdir().unwrap();
        let report = check(&tmp.path().join("no-rules"), &tmp.path().join("no-prompts"), None);
        assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    }
}
