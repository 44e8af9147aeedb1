//! The architecture test: imports run one way, from `app` down to `model`.
//!
//! It reads every file under `daemon/src`, finds each `crate::…` path (in `use` items,
//! in expressions and types, inside macro calls such as `tracing::warn!`, and `super::…`
//! chains that climb to the crate root), maps the file and the path to their top-level
//! modules and fails with `file:line` when a module names one in a layer above its own,
//! when two modules of one layer import each other (directly or around a loop), or when a
//! module has no layer. [`LAYERS`] is the map; `lib.rs` describes the same in prose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

/// The layers, lowest first. A module may name modules of its own layer (as long as no
/// loop forms) and of the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    // Plain types and pure state machines. `signal` re-exports `model::signal` for old paths.
    ("model", &["model", "signal"]),
    // Talk to one outside thing each (apiserver, disk, NATS, OTLP, HTTP clients and
    // listeners, files of rules and prompts); know the model, not the services.
    (
        "adapters",
        &[
            "names",
            "cluster",
            "listener",
            "redact",
            "store",
            "bus",
            "telemetry",
            "leader",
            "prompts",
            "rules",
            "auth",
            "slack",
        ],
    ),
    // What kubemedic does with them: policy, intake, incidents, drift, approvals.
    ("services", &["policy", "watch", "alerts", "incident", "drift", "approvals"]),
    // The tool surface, the MCP server over it, the agents that call it, and the web UI
    // (beside mcp: another door onto the approvals service and the store).
    ("tools, mcp, agents and the web UI", &["tools", "mcp", "agent", "ui"]),
    // The incident path: tracker → queue → diagnose → submit.
    ("pipeline", &["pipeline"]),
    // Wiring and commands; `config` aggregates every module's section, so it sits here.
    ("app", &["app", "config"]),
];

/// Crate roots and this test: they declare or read every module and belong to no layer.
const ROOTS: &[&str] = &["lib", "main", "architecture_tests"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// One top-level module named by a file, where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    module: String,
    line: usize,
}

/// Collects the top-level modules a file names, with lines.
struct Finder {
    /// How deep the current item is below the crate root (`a/b.rs` starts at 2; an inline
    /// `mod tests { … }` adds one), to resolve `super::` chains.
    depth: usize,
    found: Vec<Import>,
}

impl Finder {
    fn push(&mut self, ident: &syn::Ident) {
        self.found.push(Import { module: ident.to_string(), line: ident.span().start().line });
    }

    /// The top-level module of a path given as its leading identifiers, if it leaves the
    /// file's own module through the crate root.
    fn path_segments<'a>(&mut self, mut idents: impl Iterator<Item = &'a syn::Ident>) {
        let Some(first) = idents.next() else { return };
        if first == "crate" {
            if let Some(next) = idents.next() {
                self.push(next);
            }
        } else if first == "super" {
            let mut ups = 1;
            for ident in idents {
                if ident == "super" {
                    ups += 1;
                } else {
                    if ups >= self.depth {
                        self.push(ident);
                    }
                    return;
                }
            }
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<syn::Ident>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.clone());
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.clone());
                self.path_segments(prefix.iter());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.clone());
                self.path_segments(prefix.iter());
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                // `use crate::*` names every module at once: record the root itself.
                let leaves_root = prefix.first().is_some_and(|f| f == "crate" && prefix.len() == 1)
                    || (prefix.iter().all(|i| i == "super") && prefix.len() >= self.depth);
                if leaves_root {
                    let star = g.star_token.span;
                    self.found.push(Import { module: "*".into(), line: star.start().line });
                } else {
                    self.path_segments(prefix.iter());
                }
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(item, prefix);
                }
            }
        }
    }

    /// Macro bodies are tokens, not syntax: look for `crate :: ident` in them.
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let tokens: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id) if id == "crate" => {
                    if let [
                        proc_macro2::TokenTree::Punct(a),
                        proc_macro2::TokenTree::Punct(b),
                        proc_macro2::TokenTree::Ident(next),
                        ..,
                    ] = &tokens[i + 1..]
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        self.push(next);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, &mut Vec::new());
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.path_segments(path.segments.iter().map(|s| &s.ident));
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.depth += 1;
        syn::visit::visit_item_mod(self, item);
        self.depth -= 1;
    }
}

/// The top-level module a file under `src/` belongs to, and how deep the file's module is
/// (`agent.rs` → (`agent`, 1), `agent/builtin/gather.rs` → (`agent`, 3)).
fn module_of(file: &str) -> (String, usize) {
    let parts: Vec<&str> = file.trim_end_matches(".rs").split('/').collect();
    (parts[0].to_owned(), parts.len())
}

/// The top-level modules `source` (the file `file`, relative to `src/`) names.
fn imports(file: &str, source: &str) -> Result<Vec<Import>, String> {
    let ast = syn::parse_file(source).map_err(|e| format!("{file}:{}: cannot parse: {e}", e.span().start().line))?;
    let mut finder = Finder { depth: module_of(file).1, found: Vec::new() };
    finder.visit_file(&ast);
    Ok(finder.found)
}

/// Every problem in a set of `(path relative to src/, source)` files.
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut unassigned = BTreeSet::new();
    // module → module it names → first place it does.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (file, source) in files {
        let (module, _) = module_of(file);
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            if unassigned.insert(module.clone()) {
                problems.push(format!("src/{file}: module `{module}` is not assigned a layer (add it to LAYERS)"));
            }
            continue;
        };
        let found = match imports(file, source) {
            Ok(found) => found,
            Err(e) => {
                problems.push(format!("src/{e}"));
                continue;
            }
        };
        for Import { module: target, line } in found {
            if target == module {
                continue;
            }
            let at = format!("src/{file}:{line}");
            match layer_of(&target) {
                None => {
                    problems.push(format!("{at}: `{module}` names `crate::{target}`, which is not assigned a layer"))
                }
                Some(theirs) if theirs > own => problems.push(format!(
                    "{at}: `{module}` ({}) imports `{target}` ({}), a layer above its own",
                    LAYERS[own].0, LAYERS[theirs].0
                )),
                Some(_) => {
                    edges.entry(module.clone()).or_default().entry(target).or_insert(at);
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        let mut text = format!("import cycle: {}", cycle.join(" → "));
        for pair in cycle.windows(2) {
            text.push_str(&format!("\n    {} → {} at {}", pair[0], pair[1], edges[&pair[0]][&pair[1]]));
        }
        problems.push(text);
    }
    problems
}

/// One loop per group of modules that reach each other, as `a → b → … → a`.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in edges.get(&m).into_iter().flat_map(|e| e.keys()) {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        false
    };
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for start in edges.keys() {
        if reported.contains(start) || !reaches(start, start) {
            continue;
        }
        // Walk from `start` along edges that lead back to it until it is reached again.
        let mut path = vec![start.clone()];
        let mut at = start.clone();
        loop {
            let next = edges[&at]
                .keys()
                .find(|n| *n == start || (!path.contains(n) && reaches(n, start)))
                .expect("a module on a loop has an edge that stays on it")
                .clone();
            path.push(next.clone());
            if &next == start {
                break;
            }
            at = next;
        }
        reported.extend(path.iter().cloned());
        out.push(path);
    }
    out
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("read src dir").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src").to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).expect("read source")));
        }
    }
}

#[test]
fn imports_only_go_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() > 50, "found only {} files under {}", files.len(), src.display());
    let mut problems = check(&files);
    // A module in the map without a file is a stale entry.
    let present: BTreeSet<String> = files.iter().map(|(f, _)| module_of(f).0).collect();
    for module in LAYERS.iter().flat_map(|(_, m)| m.iter()) {
        if !present.contains(*module) {
            problems.push(format!("LAYERS names `{module}`, which has no file under src/"));
        }
    }
    assert!(problems.is_empty(), "{} architecture problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[cfg(test)]
mod self_tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> Vec<String> {
        check(&files.iter().map(|(f, s)| ((*f).to_owned(), (*s).to_owned())).collect::<Vec<_>>())
    }

    #[test]
    fn a_use_of_an_upper_layer_is_reported_with_file_and_line() {
        let p = run(&[("store.rs", "use std::fmt;\nuse crate::approvals::Approvals;\n")]);
        assert_eq!(
            p,
            ["src/store.rs:2: `store` (adapters) imports `approvals` (services), a layer above its own"],
            "{p:#?}"
        );
    }

    #[test]
    fn inline_paths_in_code_types_and_macros_are_found() {
        let source = "fn f(e: &E) {\n    tracing::warn!(error = %crate::app::error_chain(e), \"x\");\n    \
                      let t: crate::tools::Tools = make();\n    crate::pipeline::start();\n}\n";
        let p = run(&[("leader.rs", source)]);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("src/leader.rs:2: `leader` (adapters) imports `app`"), "{p:#?}");
        assert!(p[1].starts_with("src/leader.rs:3: `leader` (adapters) imports `tools`"), "{p:#?}");
        assert!(p[2].starts_with("src/leader.rs:4: `leader` (adapters) imports `pipeline`"), "{p:#?}");
    }

    #[test]
    fn grouped_renamed_and_nested_uses_are_each_checked() {
        let source = "use crate::{model::signal::Signal, pipeline::Pipeline as P, agent};\n\
                      mod inner { use crate::mcp::KubemedicServer; }\n";
        let p = run(&[("bus/queue.rs", source)]);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p.iter().any(|l| l.contains("imports `pipeline`")), "{p:#?}");
        assert!(p.iter().any(|l| l.contains("imports `agent`")), "{p:#?}");
        assert!(p.iter().any(|l| l.starts_with("src/bus/queue.rs:2:") && l.contains("imports `mcp`")), "{p:#?}");
    }

    #[test]
    fn super_chains_that_reach_the_crate_root_count() {
        // agent/builtin/x.rs is three deep: two `super`s stay in `agent`, three leave it.
        let p = run(&[("policy/tier/x.rs", "use super::super::check::X;\nuse super::super::super::app::Y;\n")]);
        assert_eq!(p, ["src/policy/tier/x.rs:2: `policy` (services) imports `app` (app), a layer above its own"]);
        // From an inline module one more `super` is needed.
        let p = run(&[("store.rs", "mod tests { use super::*; use super::super::pipeline::P; }\n")]);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("imports `pipeline`"), "{p:#?}");
    }

    #[test]
    fn a_module_without_a_layer_is_reported() {
        let p = run(&[("newthing.rs", "pub fn f() {}\n"), ("newthing/inner.rs", "")]);
        assert_eq!(p, ["src/newthing.rs: module `newthing` is not assigned a layer (add it to LAYERS)"]);
        let p = run(&[("tools.rs", "use crate::mystery::X;\n")]);
        assert_eq!(p, ["src/tools.rs:1: `tools` names `crate::mystery`, which is not assigned a layer"]);
    }

    #[test]
    fn modules_of_one_layer_that_import_each_other_are_a_cycle() {
        let p = run(&[
            ("tools.rs", "use crate::model::identity::Role;\nuse crate::mcp::KubemedicServer;\n"),
            ("mcp.rs", "\n\nuse crate::agent::Deps;\n"),
            ("agent.rs", "use crate::tools::Tools;\n"),
        ]);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].starts_with("import cycle: agent → tools → mcp → agent"), "{p:#?}");
        assert!(p[0].contains("mcp → agent at src/mcp.rs:3"), "{p:#?}");
    }

    #[test]
    fn downward_and_sideways_imports_comments_and_strings_pass() {
        let p = run(&[
            (
                "pipeline.rs",
                "use crate::model::incident::Incident;\nuse crate::store::Store;\nuse crate::agent::Deps;\n",
            ),
            (
                "store.rs",
                "//! See [`crate::app`].\n// use crate::app::x;\nconst S: &str = \"crate::app\";\nuse crate::redact::gate;\n",
            ),
            ("model/incident.rs", "use crate::model::signal::Signal;\nuse super::proposal::Proposal;\n"),
            ("lib.rs", "pub mod app;\npub mod model;\n"),
        ]);
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn a_file_that_does_not_parse_is_a_problem_not_a_pass() {
        let p = run(&[("store.rs", "fn (")]);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].starts_with("src/store.rs:1: cannot parse"), "{p:#?}");
    }
}
