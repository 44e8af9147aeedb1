//! Jobs and CronJobs. A failed Job is explained by its failing pods' error
//! (the exit code and the log line that reports it), never re-run without
//! approval; a CronJob that does not run is suspended, has a schedule that
//! never fires, or keeps producing failed Jobs.

use std::str::FromStr;

use serde_json::Value;

use super::analyze::{Finding, exit_code, pod_name, statuses, terminated_reason};
use super::gather::{Facts, truncate};
use super::logline::explaining_line;

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True")
}

/// The failing pods' error: `(pod, "exit code N (Reason)", log line)`.
fn pod_error(facts: &Facts) -> Option<(String, String, Option<String>)> {
    let pod = facts.pods.iter().rev().find(|p| statuses(p).any(|cs| exit_code(cs).is_some_and(|c| c != 0)))?;
    let cs = statuses(pod).find(|cs| exit_code(cs).is_some_and(|c| c != 0))?;
    let code = format!(
        "exit code {}{}",
        exit_code(cs).unwrap_or_default(),
        terminated_reason(cs).map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let name = pod_name(pod);
    let log = facts
        .logs
        .iter()
        .find(|(k, _)| k.starts_with(&format!("{name}/")))
        .and_then(|(_, t)| explaining_line(t))
        .map(|l| truncate(l, 200));
    Some((name, code, log))
}

/// A Job that failed (BackoffLimitExceeded, DeadlineExceeded); `None` when it has not.
pub fn job(facts: &Facts) -> Option<Finding> {
    if facts.target.kind != "Job" {
        return None;
    }
    let failed = condition(&facts.object, "Failed")?;
    let w = &facts.target;
    let reason = failed["reason"].as_str().unwrap_or("Failed");
    let message = failed["message"].as_str().unwrap_or_default();
    let mut f = Finding {
        summary: format!("{w} failed: {reason}"),
        chain: vec![format!("{w}: Failed ({reason}: {message})")],
        confidence: 0.85,
        ..Default::default()
    };
    let error = pod_error(facts);
    f.root_cause = match (&error, reason) {
        (Some((pod, code, log)), _) => {
            f.chain.push(format!("pod {pod}: {code}"));
            if let Some(l) = log {
                f.chain.push(format!("log: {l:?}"));
            }
            format!(
                "{w} {} ({reason}) because its pods fail: {pod} ended with {code}{}",
                if reason == "DeadlineExceeded" { "ran past its activeDeadlineSeconds" } else { "gave up" },
                log.as_ref().map(|l| format!("; the log reports: {l:?}")).unwrap_or_default()
            )
        }
        (None, "DeadlineExceeded") => {
            format!("{w} ran longer than its activeDeadlineSeconds ({message}); its pods did not finish in time")
        }
        (None, _) => format!("{w} failed ({reason}: {message}); its failed pods are gone, so their error is unknown"),
    };
    f.advice.push(format!(
        "Fix the cause the pods report, then re-run the Job (delete and re-create {}; a Job's pod template cannot be \
         changed). Re-running is a change: it needs approval like any other.",
        w.name
    ));
    Some(f)
}

/// Whether a cron schedule ever fires (five fields, as Kubernetes writes them).
fn schedule_fires(schedule: &str) -> Result<bool, String> {
    let fields = schedule.split_whitespace().count();
    let six = if fields == 5 { format!("0 {schedule}") } else { schedule.to_owned() };
    let s = cron::Schedule::from_str(&six).map_err(|e| e.to_string())?;
    Ok(s.upcoming(chrono::Utc).next().is_some())
}

pub fn cronjob(facts: &Facts) -> Finding {
    let w = &facts.target;
    let cj = &facts.object;
    let schedule = cj.pointer("/spec/schedule").and_then(Value::as_str).unwrap_or_default();
    let mut f = Finding { confidence: 0.9, ..Default::default() };
    f.chain.push(format!("{w}: schedule {schedule:?}"));
    if cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        f.summary = format!("{w} does not run: it is suspended");
        f.root_cause = format!("{w} has spec.suspend: true, so the controller starts no Jobs");
        f.chain.push("suspend: true".into());
        f.advice.push(format!(
            "Resume it when it should run again: `kubectl -n {} patch cronjob {} -p '{{\"spec\":{{\"suspend\":false}}}}'`.",
            w.namespace, w.name
        ));
        return f;
    }
    match schedule_fires(schedule) {
        Err(e) => {
            f.summary = format!("{w} does not run: its schedule {schedule:?} is not valid");
            f.root_cause = format!("the schedule {schedule:?} of {w} cannot be parsed ({e})");
            f.advice.push("Write the schedule as five cron fields: minute hour day-of-month month day-of-week.".into());
            return f;
        }
        Ok(false) => {
            f.summary = format!("{w} never runs: its schedule {schedule:?} matches no date");
            f.root_cause = format!("the schedule {schedule:?} of {w} never fires (no date matches every field)");
            f.chain.push("no upcoming run".into());
            f.advice.push("Fix the day-of-month/month fields: the schedule names a date that does not exist.".into());
            return f;
        }
        Ok(true) => {}
    }
    let jobs: Vec<&Value> = facts.related.iter().filter(|o| o["kind"] == "Job").collect();
    let failed: Vec<&Value> = jobs.iter().copied().filter(|j| condition(j, "Failed").is_some()).collect();
    if let Some(last) = failed.last() {
        let jname = last.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
        let reason = condition(last, "Failed").and_then(|c| c["reason"].as_str()).unwrap_or("Failed");
        f.summary = format!("{w}: {} of {} Job(s) failed, the latest {jname} ({reason})", failed.len(), jobs.len());
        f.chain.push(format!("Job {jname}: Failed ({reason})"));
        f.root_cause = match pod_error(facts) {
            Some((pod, code, log)) => {
                f.chain.push(format!("pod {pod}: {code}"));
                format!(
                    "the Jobs of {w} fail: {jname} ({reason}), pod {pod} ended with {code}{}",
                    log.map(|l| format!("; the log reports: {l:?}")).unwrap_or_default()
                )
            }
            None => format!("the Jobs of {w} fail: {jname} ({reason})"),
        };
        f.advice.push("Fix what the Job's pods report; the next scheduled run picks up the fix.".into());
        return f;
    }
    let last = cj.pointer("/status/lastScheduleTime").and_then(Value::as_str).unwrap_or("never");
    f.summary = format!("{w} looks healthy: {} Job(s), none failed, last scheduled {last}", jobs.len());
    f.root_cause = "no failure found: the CronJob is active and its Jobs do not fail".into();
    f.confidence = 0.6;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_that_never_fire_are_told_apart_from_bad_ones() {
        assert_eq!(schedule_fires("*/5 * * * *"), Ok(true));
        assert_eq!(schedule_fires("0 0 30 2 *"), Ok(false));
        assert!(schedule_fires("every day").is_err());
    }
}
