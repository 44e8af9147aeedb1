//! The built-in diagnostician on objects that are not workloads (Service,
//! Ingress, PersistentVolumeClaim, CronJob, HorizontalPodAutoscaler) and on a
//! failed Job, against the real control plane and nodesim: each answers with
//! the object that is wrong and why; where a safe patch exists it is proposed,
//! applied, and the link heals.

#[path = "agent/support.rs"]
mod support;

use std::time::Duration;

use e2e::{Namespace, client, scenario};
use kubemedic::approvals::{Action, PatchType};
use support::{assert_well_formed, deps, diagnose_until, one_proposal};

/// Waits until the Service has at least one ready endpoint address.
async fn has_endpoints(client: &kube::Client, ns: &str, name: &str) {
    let api: kube::Api<k8s_openapi::api::core::v1::Endpoints> = kube::Api::namespaced(client.clone(), ns);
    for _ in 0..120 {
        if let Ok(Some(ep)) = api.get_opt(name).await
            && ep.subsets.iter().flatten().any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{ns}/{name} never got a ready endpoint");
}

#[tokio::test]
async fn service_selector_typo_is_pointed_at_the_pods_labels() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-svc-sel").await;
    scenario::apply(&client, &ns.name, "service-selector-typo").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Service", &ns.name, "ledger-api", "the selector typo", |d| !d.proposals.is_empty())
        .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("app=ledgr") && d.root_cause.contains("app=ledger"), "{}", d.root_cause);
    let p = one_proposal(&d);
    assert_eq!(p.target.kind, "Service");
    let Action::Patch { patch_type, body } = &p.action else { panic!() };
    assert_eq!(*patch_type, PatchType::Merge);
    assert_eq!(body["spec"]["selector"]["app"], "ledger", "{body}");
    support::apply_fresh(&client, &deps, &d).await;
    has_endpoints(&client, &ns.name, "ledger-api").await;
    let healed = support::diagnose(&deps, "svc", &ns.name, "ledger-api").await;
    assert!(healed.root_cause.starts_with("no failure found"), "{}", healed.render_text());
    ns.delete(&client).await;
}

#[tokio::test]
async fn service_target_port_is_fixed_to_the_declared_port() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-svc-port").await;
    scenario::apply(&client, &ns.name, "service-target-port").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Service", &ns.name, "catalog-svc", "the wrong targetPort", |d| {
        d.root_cause.contains("9091") && !d.proposals.is_empty()
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("9090"), "{}", d.root_cause);
    let p = one_proposal(&d);
    let Action::Patch { body, .. } = &p.action else { panic!() };
    assert_eq!(body["spec"]["ports"][0]["targetPort"], 9090, "{body}");
    support::apply_fresh(&client, &deps, &d).await;
    let healed = diagnose_until(&deps, "Service", &ns.name, "catalog-svc", "healed", |d| {
        d.root_cause.starts_with("no failure found")
    })
    .await;
    assert!(healed.proposals.is_empty());
    ns.delete(&client).await;
}

#[tokio::test]
async fn ingress_backend_is_fixed_to_the_existing_service() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-ing").await;
    scenario::apply(&client, &ns.name, "ingress-missing-backend").await;
    let deps = deps(&client);
    let d =
        diagnose_until(&deps, "Ingress", &ns.name, "shop-entry", "the missing Service", |d| !d.proposals.is_empty())
            .await;
    assert!(d.root_cause.contains("store-front") && d.root_cause.contains("storefront"), "{}", d.root_cause);
    let p = one_proposal(&d);
    let Action::Patch { patch_type, body } = &p.action else { panic!() };
    assert_eq!(*patch_type, PatchType::Json);
    assert_eq!(body[1]["value"], "storefront", "{body}");
    support::apply_fresh(&client, &deps, &d).await;
    let healed = support::diagnose(&deps, "Ingress", &ns.name, "shop-entry").await;
    assert!(healed.root_cause.starts_with("no failure found"), "{}", healed.render_text());
    ns.delete(&client).await;
}

#[tokio::test]
async fn pvc_with_a_missing_class_names_the_near_class() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-pvc-class").await;
    scenario::apply(&client, &ns.name, "pvc-missing-storageclass").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "pvc", &ns.name, "archive-data", "the missing class", |d| {
        d.root_cause.contains("fast-ssd-tier2")
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("does not exist") && d.root_cause.contains("fast-ssd-tier1"), "{}", d.root_cause);
    assert!(d.proposals.is_empty(), "storageClassName is immutable: advice only");
    assert!(d.advice.iter().any(|a| a.contains("storageClassName: fast-ssd-tier1")), "{:?}", d.advice);
    assert!(!d.root_cause.to_lowercase().contains("capacity"), "{}", d.root_cause);
    ns.delete(&client).await;
}

#[tokio::test]
async fn pvc_without_a_running_provisioner_says_so() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-pvc-prov").await;
    scenario::apply(&client, &ns.name, "pvc-no-provisioner").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "PersistentVolumeClaim", &ns.name, "scratch-space", "the missing provisioner", |d| {
        d.root_cause.contains("example.test/unprovisioned")
    })
    .await;
    assert!(d.root_cause.contains("no provisioner"), "{}", d.root_cause);
    assert!(d.proposals.is_empty());
    ns.delete(&client).await;
}

#[tokio::test]
async fn suspended_cronjob_is_reported() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-cron").await;
    scenario::apply(&client, &ns.name, "cronjob-suspended").await;
    let deps = deps(&client);
    let d = support::diagnose(&deps, "CronJob", &ns.name, "nightly-export").await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("suspend: true"), "{}", d.render_text());
    assert!(d.proposals.is_empty());
    ns.delete(&client).await;
}

#[tokio::test]
async fn hpa_with_a_missing_target_names_the_near_workload() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-hpa").await;
    scenario::apply(&client, &ns.name, "hpa-missing-target").await;
    let deps = deps(&client);
    let d = support::diagnose(&deps, "hpa", &ns.name, "queue-scaler").await;
    assert!(
        d.root_cause.contains("Deployment/queue-workr") && d.root_cause.contains("does not exist"),
        "{}",
        d.root_cause
    );
    assert!(d.advice.iter().any(|a| a.contains("queue-worker")), "{:?}", d.advice);
    ns.delete(&client).await;
}

#[tokio::test]
async fn failed_job_reports_the_error_line_not_the_last_line() {
    let client = client().await;
    let ns = Namespace::create(&client, "obj-job").await;
    scenario::apply(&client, &ns.name, "job-backoff-exceeded").await;
    let deps = deps(&client);
    let d = diagnose_until(&deps, "Job", &ns.name, "import-batch", "BackoffLimitExceeded", |d| {
        d.root_cause.contains("BackoffLimitExceeded") && d.root_cause.contains("IMPORT_BUCKET")
    })
    .await;
    assert_well_formed(&d);
    assert!(d.root_cause.contains("exit code 3"), "{}", d.root_cause);
    assert!(!d.root_cause.contains("shutting down"), "{}", d.root_cause);
    assert!(d.proposals.is_empty(), "a Job is re-run only with approval, never proposed blindly");
    ns.delete(&client).await;
}

#[tokio::test]
async fn kinds_that_are_not_diagnosable_are_refused_with_the_list() {
    let err = kubemedic::agent::parse_target("ns/Secret/x").unwrap_err();
    assert!(err.contains("Service") && err.contains("HorizontalPodAutoscaler"), "{err}");
    let t = kubemedic::agent::parse_target("ns/svc/web").unwrap();
    assert_eq!(t.kind, "Service");
}
