//! PersistentVolumeClaim: a Pending claim is explained by its StorageClass
//! (missing, with the near name that exists; a provisioner nobody runs;
//! WaitForFirstConsumer, which is not a failure), or, without a class, by
//! the volumes that exist and why none fits (access mode, size). A claim's
//! class cannot be changed in place, so a fix is advice naming the class.

use serde_json::Value;

use super::analyze::{Finding, last_message};
use super::config::closest_key;
use super::gather::Facts;

fn name(o: &Value) -> String {
    o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

pub fn claim(facts: &Facts) -> Finding {
    let w = &facts.target;
    let pvc = &facts.object;
    let phase = pvc.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    let classes: Vec<&Value> = facts.related.iter().filter(|o| o["kind"] == "StorageClass").collect();
    let class_names: Vec<String> = classes.iter().map(|c| name(c)).collect();
    let wanted = pvc.pointer("/spec/storageClassName").and_then(Value::as_str);
    let modes = strings(pvc.pointer("/spec/accessModes"));
    let size = pvc.pointer("/spec/resources/requests/storage").and_then(Value::as_str).unwrap_or("?").to_owned();
    let mut f = Finding { confidence: 0.9, ..Default::default() };
    if phase == "Bound" {
        let vol = pvc.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("?");
        f.summary = format!("{w} is Bound to {vol}");
        f.root_cause = "no failure found: the claim is bound".into();
        f.chain = vec![format!("{w}: Bound to {vol}")];
        f.confidence = 0.6;
        return f;
    }
    if phase == "Lost" {
        let vol = pvc.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("?");
        f.summary = format!("{w} is Lost: its volume {vol} is gone");
        f.root_cause = format!("the PersistentVolume {vol} the claim was bound to no longer exists");
        f.chain = vec![format!("{w}: Lost"), format!("PersistentVolume {vol} missing")];
        f.advice
            .push("Restore the volume from backup or recreate the claim; data on it is not recoverable here.".into());
        return f;
    }
    f.chain.push(format!("{w}: {phase}"));
    match wanted.filter(|c| !c.is_empty()) {
        Some(class) => {
            let Some(sc) = classes.iter().find(|c| name(c) == class) else {
                let near = closest_key(class, &class_names).cloned();
                f.summary = format!("{w} is {phase}: StorageClass {class} does not exist");
                f.root_cause = format!(
                    "StorageClass {class} named by {w} does not exist{}",
                    match &near {
                        Some(n) => format!("; StorageClass {n} does"),
                        None => format!(
                            " (classes: {})",
                            if class_names.is_empty() { "none".into() } else { class_names.join(", ") }
                        ),
                    }
                );
                f.chain.push(format!("StorageClass {class} missing"));
                f.advice.push(match &near {
                    Some(n) => format!(
                        "storageClassName cannot be changed on an existing claim: recreate {} with storageClassName: \
                         {n} (delete it and apply it again; nothing is stored on an unbound claim).",
                        w.name
                    ),
                    None => {
                        format!("Create StorageClass {class} or recreate the claim with one of the existing classes.")
                    }
                });
                return f;
            };
            let provisioner = sc["provisioner"].as_str().unwrap_or_default();
            let binding = sc["volumeBindingMode"].as_str().unwrap_or("Immediate");
            if binding == "WaitForFirstConsumer" && last_message(facts, "ProvisioningFailed").is_none() {
                f.summary = format!("{w} waits for a pod: StorageClass {class} binds on first consumer");
                f.root_cause = format!(
                    "no failure found: StorageClass {class} uses WaitForFirstConsumer, so the claim stays Pending \
                     until a pod that uses it is scheduled"
                );
                f.chain.push(format!("StorageClass {class}: WaitForFirstConsumer"));
                f.confidence = 0.6;
                return f;
            }
            if let Some(msg) = last_message(facts, "ProvisioningFailed") {
                f.summary = format!("{w} is {phase}: provisioning by {provisioner} fails");
                f.root_cause = format!("provisioner {provisioner} of StorageClass {class} fails: {msg}");
                f.chain.push(format!("ProvisioningFailed: {msg}"));
                f.advice
                    .push(format!("Read the logs of the {provisioner} provisioner; the claim asks {size} {modes:?}."));
                return f;
            }
            if provisioner == "kubernetes.io/no-provisioner" || last_message(facts, "ExternalProvisioning").is_some() {
                let what = if provisioner == "kubernetes.io/no-provisioner" {
                    format!("StorageClass {class} has no provisioner and no PersistentVolume of that class fits")
                } else {
                    format!("no provisioner {provisioner} is running for StorageClass {class}")
                };
                f.summary = format!("{w} is {phase}: {what}");
                f.root_cause =
                    format!("{what}, so nothing creates a volume for the claim ({size}, {})", modes.join(","));
                f.chain.push(format!("StorageClass {class}: provisioner {provisioner}"));
                f.chain.push("no volume is created".into());
                f.advice.push(format!(
                    "Install or fix the {provisioner} provisioner, or create a PersistentVolume of class {class} with \
                     at least {size} and access modes {}.",
                    modes.join(",")
                ));
                return f;
            }
            volume_fit(facts, &mut f, Some(class), &modes, &size, phase);
        }
        None => volume_fit(facts, &mut f, None, &modes, &size, phase),
    }
    f
}

/// Without a provisioner: which existing volumes come closest and why none fits.
fn volume_fit(facts: &Facts, f: &mut Finding, class: Option<&str>, modes: &[String], size: &str, phase: &str) {
    let w = &facts.target;
    let want_bytes = crate::policy::quantity::parse(size).unwrap_or(0.0);
    let mut reasons = Vec::new();
    for pv in facts.related.iter().filter(|o| o["kind"] == "PersistentVolume") {
        let pv_class = pv.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or_default();
        if pv_class != class.unwrap_or_default() {
            continue;
        }
        let n = name(pv);
        if pv.pointer("/status/phase").and_then(Value::as_str) != Some("Available") {
            reasons.push(format!("{n} is not Available"));
            continue;
        }
        let pv_modes = strings(pv.pointer("/spec/accessModes"));
        let missing: Vec<&String> = modes.iter().filter(|m| !pv_modes.contains(m)).collect();
        let cap = pv.pointer("/spec/capacity/storage").and_then(Value::as_str).unwrap_or("0");
        if !missing.is_empty() {
            reasons.push(format!("{n} offers {} but the claim needs {}", pv_modes.join(","), modes.join(",")));
        } else if crate::policy::quantity::parse(cap).unwrap_or(0.0) < want_bytes {
            reasons.push(format!("{n} holds {cap}, the claim asks {size}"));
        }
    }
    let class_text = class.map(|c| format!("StorageClass {c}")).unwrap_or_else(|| "no StorageClass".into());
    f.summary = format!("{w} is {phase}: no volume fits ({class_text})");
    f.root_cause = if reasons.is_empty() {
        format!(
            "{w} names {class_text} and no PersistentVolume of that class exists{}",
            last_message(facts, "FailedBinding").map(|m| format!(" ({m})")).unwrap_or_default()
        )
    } else {
        format!("no PersistentVolume fits {w}: {}", reasons.join("; "))
    };
    f.chain.push(format!("{class_text}: no matching volume"));
    f.confidence = 0.8;
    f.advice.push(format!(
        "Create a PersistentVolume{} with at least {size} and access modes {}, or set a default StorageClass with a \
         running provisioner.",
        class.map(|c| format!(" of class {c}")).unwrap_or_default(),
        modes.join(",")
    ));
}
