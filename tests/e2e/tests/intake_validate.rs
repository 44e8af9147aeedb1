//! `kubemedic validate` as CI runs it: the shipped rules and prompts pass;
//! broken ones are reported as `file:line: reason` with a non-zero exit.

mod intake_common;

use std::process::Command;

use intake_common::{repo_root, state_dir};

fn validate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(e2e::daemon::bin()).arg("validate").args(args).current_dir(repo_root()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_rules_and_prompts_are_valid() {
    let (code, stdout, stderr) = validate(&["--rules", "rules", "--prompts", "prompts"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

#[test]
fn broken_rules_are_reported_with_file_and_line() {
    let dir = state_dir("validate");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("a.yaml"),
        "rules:\n  - name: a\n    match: {reasons: [X], object_selector: \"app in (\"}\n    workflow:\n      prompt: no-such-prompt\n",
    )
    .unwrap();
    std::fs::write(rules.join("b.yaml"), "rules:\n  - name: b\n    mach: {}\n").unwrap();
    let rules_arg = rules.display().to_string();
    let prompts_arg = repo_root().join("prompts").display().to_string();
    let (code, _, stderr) = validate(&["--rules", &rules_arg, "--prompts", &prompts_arg]);
    assert_eq!(code, 1, "{stderr}");
    let a = rules.join("a.yaml").display().to_string();
    let b = rules.join("b.yaml").display().to_string();
    assert!(stderr.contains(&format!("{a}:3: rule \"a\": bad object_selector")), "{stderr}");
    assert!(stderr.contains(&format!("{a}:5: rule \"a\": unknown prompt \"no-such-prompt\"")), "{stderr}");
    assert!(stderr.contains(&format!("{b}:3: ")) && stderr.contains("unknown field `mach`"), "{stderr}");
    assert!(stderr.contains("3 problem(s) found"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_a_usage_error() {
    let dir = state_dir("validate-config");
    let config = dir.join("config.yaml");
    std::fs::write(&config, "drift: {schedule: \"every night\"}\n").unwrap();
    let config_arg = config.display().to_string();
    let (code, _, stderr) = validate(&["--config", &config_arg, "--rules", "rules", "--prompts", "prompts"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("drift.schedule") && stderr.contains("every night"), "{stderr}");
    std::fs::write(&config, "alerts: {max_body_byte: 10}\n").unwrap();
    let (code, _, stderr) = validate(&["--config", &config_arg]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("unknown field `max_body_byte`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
