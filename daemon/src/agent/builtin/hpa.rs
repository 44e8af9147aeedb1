//! HorizontalPodAutoscaler unable to scale: the scale target is missing
//! (with the near name that exists), the metrics cannot be computed (no
//! metrics API, or containers without the request a utilization target
//! needs), or min and max leave no room.

use serde_json::Value;

use super::analyze::{Finding, last_message};
use super::config::closest_key;
use super::gather::Facts;

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == type_)
}

/// Resources named by `Resource` metrics with a utilization target.
fn utilization_resources(hpa: &Value) -> Vec<String> {
    let mut out: Vec<String> = hpa
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "Resource" && m.pointer("/resource/target/type") == Some(&Value::from("Utilization")))
        .filter_map(|m| m.pointer("/resource/name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if hpa.pointer("/spec/targetCPUUtilizationPercentage").is_some() {
        out.push("cpu".into());
    }
    out
}

pub fn analyze(facts: &Facts) -> Finding {
    let w = &facts.target;
    let hpa = &facts.object;
    let tk = hpa.pointer("/spec/scaleTargetRef/kind").and_then(Value::as_str).unwrap_or("?");
    let tn = hpa.pointer("/spec/scaleTargetRef/name").and_then(Value::as_str).unwrap_or("?");
    let min = hpa.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1);
    let max = hpa.pointer("/spec/maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    let mut f = Finding {
        chain: vec![format!("{w}: scales {tk}/{tn} between {min} and {max}")],
        confidence: 0.9,
        ..Default::default()
    };
    let target = facts.related.iter().find(|o| o["kind"] == tk && o.get("candidate").is_none());
    let Some(target) = target else {
        let names: Vec<String> = facts
            .related
            .iter()
            .filter(|o| o["kind"] == tk)
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let near = closest_key(tn, &names).cloned();
        f.summary = format!("{w} cannot scale: its target {tk}/{tn} does not exist");
        f.root_cause = format!(
            "scaleTargetRef {tk}/{tn} of {w} does not exist in {}{}",
            w.namespace,
            near.as_ref().map(|n| format!("; {tk}/{n} does")).unwrap_or_default()
        );
        f.chain.push(format!("{tk}/{tn} missing"));
        f.advice.push(match near {
            Some(n) => format!("Set spec.scaleTargetRef.name of {w} to {n}."),
            None => format!("Create {tk}/{tn} or point spec.scaleTargetRef at the workload to scale."),
        });
        return f;
    };
    if max > 0 && min >= max {
        f.summary = format!("{w} cannot scale: minReplicas {min} and maxReplicas {max} leave no room");
        f.root_cause = format!("{w} has minReplicas {min} and maxReplicas {max}, so the replica count is fixed");
        f.advice.push(format!("Raise maxReplicas of {w} above {min} if it should scale."));
        return f;
    }
    let active = condition(hpa, "ScalingActive");
    let metric_failure = active
        .filter(|c| c["status"] == "False")
        .map(|c| {
            (c["reason"].as_str().unwrap_or_default().to_owned(), c["message"].as_str().unwrap_or_default().to_owned())
        })
        .or_else(|| {
            ["FailedGetResourceMetric", "FailedComputeMetricsReplicas", "FailedGetScale"]
                .iter()
                .find_map(|r| last_message(facts, r).map(|m| ((*r).to_owned(), m)))
        });
    if let Some((reason, message)) = metric_failure {
        // A utilization target needs a request on every container of the target's pods.
        let containers =
            target.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
        let missing: Vec<String> = utilization_resources(hpa)
            .iter()
            .flat_map(|res| {
                containers
                    .iter()
                    .filter(move |c| c.pointer(&format!("/resources/requests/{res}")).is_none())
                    .map(move |c| format!("{} has no {res} request", c["name"].as_str().unwrap_or("?")))
            })
            .collect();
        f.chain.push(format!("ScalingActive=False: {reason}"));
        if !missing.is_empty() {
            f.summary = format!("{w} cannot compute utilization: {}", missing.join(", "));
            f.root_cause = format!(
                "{w} targets resource utilization but in {tk}/{tn} {}; utilization is a share of the request",
                missing.join(", ")
            );
            f.advice.push(format!("Give the containers of {tk}/{tn} resource requests ({}).", missing.join("; ")));
        } else {
            f.summary = format!("{w} cannot read its metrics ({reason})");
            f.root_cause = format!(
                "{w} cannot get the metrics it scales on ({reason}: {message}); the metrics API (metrics-server or \
                 an adapter) does not answer"
            );
            f.advice.push(
                "Install metrics-server (resource metrics) or the adapter that serves the custom/external metrics the \
                 HPA names, and check `kubectl get apiservice` for v1beta1.metrics.k8s.io."
                    .into(),
            );
        }
        return f;
    }
    if let Some(c) = condition(hpa, "AbleToScale").filter(|c| c["status"] == "False") {
        let reason = c["reason"].as_str().unwrap_or_default();
        f.summary = format!("{w} is unable to scale ({reason})");
        f.root_cause = format!("{w}: AbleToScale=False ({reason}: {})", c["message"].as_str().unwrap_or_default());
        return f;
    }
    let current = hpa.pointer("/status/currentReplicas").and_then(Value::as_i64).unwrap_or(0);
    f.summary = format!("{w} looks healthy: {current} replica(s) of {tk}/{tn}, range {min}–{max}");
    f.root_cause = "no failure found: the autoscaler reads its metrics and may scale".into();
    f.confidence = 0.6;
    f
}
