//! Rule files: YAML parsing, validation and error reporting (with line numbers)
//! for one or two files, so duplicate-name checks across files are reached too.
#![no_main]

use std::path::PathBuf;

use kubemedic::rules::RuleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<(PathBuf, String)> = match text.split_once("\n---8<---\n") {
        Some((a, b)) => vec![(PathBuf::from("a.yaml"), a.to_owned()), (PathBuf::from("b.yaml"), b.to_owned())],
        None => vec![(PathBuf::from("rules.yaml"), text.to_owned())],
    };
    match RuleSet::from_sources(&sources, None) {
        Ok(set) => {
            assert_eq!(set.len(), set.rules().len());
            for rule in set.rules() {
                let _ = set.get(&rule.name);
            }
        }
        Err(err) => {
            // Errors must render (they are shown to operators).
            let _ = err.to_string();
        }
    }
});
