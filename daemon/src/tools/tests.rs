//! Tool tests against a fake apiserver (no cluster needed).

use base64::Engine as _;
use serde_json::{Value, json};

use super::testing::{SECRET_VALUE, caller, shop_fixture, tools};
use super::*;
use crate::model::proposal::ProposalState;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET_VALUE), "{what} leaks the secret value: {text}");
    assert!(!text.contains(&b64(SECRET_VALUE)), "{what} leaks the base64 secret value: {text}");
}

/// What a sink (MCP, Slack, bus, audit) sends: the tool's answer through the gate.
fn sent(mut out: Value) -> Value {
    crate::redact::gate().value(&mut out);
    out
}

#[tokio::test]
async fn no_read_tool_leaks_a_secret_value() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    super::testing::learn_fixture_secrets();
    let admin = caller(Role::Admin);
    let calls = [
        ("list_resources", json!({"kind": "Secret", "namespace": "shop"})),
        ("list_resources", json!({"kind": "ConfigMap"})),
        ("list_resources", json!({"kind": "Event", "namespace": "shop"})),
        ("get_resource", json!({"kind": "Secret", "namespace": "shop", "name": "db"})),
        ("get_resource", json!({"kind": "ConfigMap", "namespace": "shop", "name": "cfg"})),
        ("describe_workload", json!({"namespace": "shop", "kind": "Deployment", "name": "web"})),
        ("events", json!({"namespace": "shop"})),
        ("events", json!({})),
        ("pod_logs", json!({"namespace": "shop", "name": "web-aaa-1"})),
        ("pod_logs", json!({"namespace": "shop", "kind": "Deployment", "name": "web"})),
        ("decode_secret", json!({"namespace": "shop", "name": "db"})),
        ("decode_secret", json!({"namespace": "shop", "workload_kind": "Deployment", "workload_name": "web"})),
        ("cluster_health", json!({})),
        ("workload_graph", json!({"namespace": "shop"})),
        ("rollout_history", json!({"namespace": "shop", "kind": "Deployment", "name": "web"})),
    ];
    for (name, args) in calls {
        let out = tools.call(&admin, name, args.clone()).await.unwrap_or_else(|e| panic!("{name} {args}: {e}"));
        assert_clean(name, &sent(out).to_string());
    }
    let logs = sent(tools.call(&admin, "pod_logs", json!({"namespace": "shop", "name": "web-aaa-1"})).await.unwrap());
    let lines: Vec<&str> = logs["logs"][0]["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(lines, ["starting", "connecting with password=[REDACTED]", "raw [REDACTED]", "ERROR out of memory"]);
    // The audit trail neither.
    let audit = serde_json::to_string(&tools.audit().recent(100)).unwrap();
    assert_clean("audit", &audit);
    assert!(api.writes().is_empty(), "reads wrote: {:?}", api.writes());
}

#[tokio::test]
async fn decode_secret_shows_keys_and_reveals_only_to_admins() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    super::testing::learn_fixture_secrets();
    let out = tools
        .call(
            &caller(Role::Viewer),
            "decode_secret",
            json!({"namespace": "shop", "workload_kind": "deploy", "workload_name": "web"}),
        )
        .await
        .unwrap();
    let keys = &out["secrets"][0]["keys"];
    assert_eq!(keys[0]["key"], "password");
    assert_eq!(keys[0]["empty"], false);
    assert!(keys[0].get("size").is_none(), "no exact size: {keys}");
    assert!(keys[0]["fingerprint"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(keys[0].get("value").is_none());
    let r = &out["references"][0];
    assert_eq!(
        (r["key"].as_str(), r["resolves"].as_bool(), r["closest_key"].as_str()),
        (Some("passwrd"), Some(false), Some("password"))
    );

    let err = tools
        .call(&caller(Role::Approver), "decode_secret", json!({"namespace": "shop", "name": "db", "reveal": true}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Forbidden { needed: Role::Admin, .. }), "{err}");
    let out = tools
        .call(&caller(Role::Admin), "decode_secret", json!({"namespace": "shop", "name": "db", "reveal": true}))
        .await
        .unwrap();
    assert_eq!(out["secrets"][0]["keys"][0]["value"], SECRET_VALUE);
    // Revealed values are still never written to the audit trail.
    assert_clean("audit", &serde_json::to_string(&tools.audit().recent(100)).unwrap());
}

#[tokio::test]
async fn describe_walks_the_owner_chain() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let out = tools
        .call(
            &caller(Role::Viewer),
            "describe_workload",
            json!({"namespace": "shop", "kind": "Deployment", "name": "web"}),
        )
        .await
        .unwrap();
    let chain: Vec<&str> = out["owner_chain"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(chain, ["Deployment/web", "ReplicaSet/web-bbb", "ReplicaSet/web-aaa", "Pod/web-aaa-1", "Pod/web-bbb-1"]);
    let bad = out["pods"].as_array().unwrap().iter().find(|p| p["name"] == "web-bbb-1").unwrap();
    assert_eq!(bad["containers"][0]["state"]["reason"], "CreateContainerConfigError");
    assert!(out["events"].as_array().unwrap().iter().any(|e| e["reason"] == "Failed"));
    // From a pod upwards.
    let out = tools
        .call(
            &caller(Role::Viewer),
            "describe_workload",
            json!({"namespace": "shop", "kind": "pod", "name": "web-aaa-1"}),
        )
        .await
        .unwrap();
    assert_eq!(out["owner_chain"], json!(["Deployment/web", "ReplicaSet/web-aaa", "Pod/web-aaa-1"]));
    assert_eq!(out["pods"][0]["containers"][0]["last_state"]["reason"], "OOMKilled");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let v = caller(Role::Viewer);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("list_resources", json!({"kind": "Widget"}), "unknown kind `Widget`"),
        ("get_resource", json!({"kind": "Pod", "namespace": "shop", "name": "Bad_Name"}), "not a valid DNS-1123 name"),
        ("get_resource", json!({"kind": "Pod", "namespace": "Shop!", "name": "x"}), "not a valid DNS-1123 label"),
        (
            "pod_logs",
            json!({"namespace": "shop", "name": "web-aaa-1", "tail": 10_000_000}),
            "tail must be between 1 and 5000",
        ),
        (
            "pod_logs",
            json!({"namespace": "shop", "name": "web-aaa-1", "grep": "(unclosed"}),
            "not a valid regular expression",
        ),
        ("events", json!({"namespace": "shop", "limit": "ten"}), "invalid type"),
        ("events", json!({"namespace": "shop", "bogus": 1}), "unknown field `bogus`"),
        ("events", json!(["not", "an", "object"]), "arguments must be a JSON object"),
        ("describe_workload", json!({"namespace": "shop", "kind": "Service", "name": "x"}), "use one of"),
        ("nope", json!({}), "unknown tool `nope`"),
    ];
    for (name, args, want) in cases {
        let err = tools.call(&v, name, args.clone()).await.unwrap_err().to_string();
        assert!(err.contains(want), "{name} {args}: got `{err}`, want `{want}`");
    }
    // Hidden namespaces do not exist; their events are not listed.
    let err = tools.call(&v, "events", json!({"namespace": "hidden"})).await.unwrap_err();
    assert!(matches!(err, ToolError::NotFound(_)), "{err}");
    let all = tools.call(&v, "events", json!({})).await.unwrap();
    assert!(all["events"].as_array().unwrap().iter().all(|e| e["namespace"] != "hidden"));
    let ns = tools.call(&v, "list_resources", json!({"kind": "Event"})).await.unwrap();
    assert!(ns["items"].as_array().unwrap().iter().all(|e| e["namespace"] != "hidden"));
    assert!(api.writes().is_empty());
    // Every failure is on the audit trail with its outcome.
    let audit = tools.audit().recent(100);
    assert!(audit.iter().any(|r| r.action == "pod_logs" && r.outcome == "invalid"));
}

#[tokio::test]
async fn viewers_cannot_mutate_and_proposals_never_apply_by_themselves() {
    let api = shop_fixture();
    let (tools, sink) = tools(&api);
    let err = tools
        .call(
            &caller(Role::Viewer),
            "scale",
            json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Forbidden { needed: Role::Operator, .. }), "{err}");
    assert!(sink.proposals.lock().unwrap().is_empty());

    let op = caller(Role::Operator);
    let out = tools
        .call(&op, "scale", json!({"namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 3}))
        .await
        .unwrap();
    assert_eq!(out["proposal"]["state"], "pending");
    assert_eq!(out["proposal"]["action"]["body"], json!({"spec": {"replicas": 3}}));
    let id = out["proposal"]["id"].as_str().unwrap().to_owned();

    // An operator cannot approve; apply_proposal needs the approver role.
    let err = tools.call(&op, "apply_proposal", json!({"id": id})).await.unwrap_err();
    assert!(matches!(err, ToolError::Forbidden { .. }), "{err}");
    assert!(tools.decide(&op, &id, true).await.is_err());

    let undo = tools
        .call(&op, "rollout_undo", json!({"namespace": "shop", "kind": "Deployment", "name": "web"}))
        .await
        .unwrap();
    let body = &undo["proposal"]["action"]["body"][0];
    assert_eq!(body["path"], "/spec/template");
    assert_eq!(body["value"]["spec"]["containers"][0]["image"], "shop/web:1");
    assert!(body["value"]["metadata"]["labels"].get("pod-template-hash").is_none());

    let del = tools.call(&op, "delete_pod", json!({"namespace": "shop", "name": "web-bbb-1"})).await.unwrap();
    assert_eq!(del["proposal"]["action"]["type"], "delete");
    assert!(api.writes().is_empty(), "a proposal mutated the cluster: {:?}", api.writes());
    assert!(sink.decisions.lock().unwrap().is_empty());
    assert_eq!(sink.proposals.lock().unwrap().len(), 3);
    assert!(sink.proposals.lock().unwrap().values().all(|p| p.state == ProposalState::Pending));
}

#[tokio::test]
async fn a_refused_propose_patch_is_stored_as_a_refused_proposal_with_its_reason() {
    let api = shop_fixture();
    let (tools, sink) = tools(&api);
    super::testing::learn_fixture_secrets();
    let op = caller(Role::Operator);
    // A hostile draft: a privilege-escalation field, a secret literal in the body and the rationale.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web",
        "securityContext": {"privileged": true},
        "env": [{"name": "DB_PASSWORD", "value": SECRET_VALUE}],
    }]}}}});
    let args = json!({
        "namespace": "shop", "kind": "Deployment", "name": "web", "patch_type": "strategic",
        "patch": patch, "rationale": format!("needs root; the password is {SECRET_VALUE}"),
    });
    let err = tools.call(&op, "propose_patch", args).await.unwrap_err();
    let ToolError::Refused(message) = &err else { panic!("expected a refusal, got {err}") };
    assert!(message.contains("privilege-escalation"), "{message}");
    let id = message.rsplit(' ').next().unwrap().trim_end_matches(')').to_owned();
    assert!(message.contains(&format!("recorded as refused proposal {id}")), "{message}");
    assert_clean("the refusal", message);

    // A missing target is refused at another stage, and recorded too.
    let err = tools
        .call(
            &op,
            "propose_patch",
            json!({"namespace": "shop", "kind": "Deployment", "name": "ghost", "patch_type": "merge",
                   "patch": {"spec": {"replicas": 2}}, "rationale": "scale the ghost"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, ToolError::Refused(m) if m.contains("does not exist")), "{err}");

    // The operator finds both in list_proposals, with who asked and why they were refused.
    let listed = tools.call(&op, "list_proposals", json!({"state": "refused"})).await.unwrap();
    let listed = listed["proposals"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let p = listed.iter().find(|p| p["id"] == id.as_str()).expect("the privileged draft is listed");
    assert_eq!(p["state"], "refused");
    assert_eq!(p["drafter"], "mcp");
    assert_eq!(p["requested_by"], "operator (internal)");
    assert_eq!(p["target"]["kind"], "Deployment");
    assert_eq!(p["target"]["name"], "web");
    let reason = p["outcome"].as_str().unwrap();
    assert!(reason.starts_with("policy: ") && reason.contains("privilege-escalation"), "{reason}");
    assert_eq!(p["history"][0]["to"], "refused");
    assert_eq!(p["history"][0]["note"], reason);
    assert!(
        listed.iter().any(|p| p["target"]["name"] == "ghost"
            && p["outcome"].as_str().is_some_and(|r| r.starts_with("target: ") && r.contains("does not exist"))),
        "{listed:?}"
    );
    // What the store holds (what the bus and every later read see) carries no secret.
    let stored = sink.store.get_proposal(&id).await.unwrap().unwrap().value;
    assert_eq!(stored.state, ProposalState::Refused);
    assert_clean("the stored refused proposal", &serde_json::to_string(&stored).unwrap());

    // Nothing was applied or decided, and a refused proposal cannot be approved.
    assert!(api.writes().is_empty(), "a refused draft mutated the cluster: {:?}", api.writes());
    let err = tools.decide(&caller(Role::Approver), &id, true).await.unwrap_err();
    assert!(err.to_string().contains("not pending"), "{err}");
    assert!(sink.decisions.lock().unwrap().is_empty());
    assert!(api.writes().is_empty());

    // The attempt is on the audit trail, naming the stored record, without the secret.
    let audit = tools.audit().recent(100);
    assert!(
        audit.iter().any(|r| r.action == "propose_patch" && r.outcome == "refused" && r.detail.contains(&id)),
        "{audit:?}"
    );
    assert_clean("the audit trail", &serde_json::to_string(&audit).unwrap());
}

#[tokio::test]
async fn rollout_status_reports_progress() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let progress: ProgressFn = std::sync::Arc::new(move |done, total, msg| s.lock().unwrap().push((done, total, msg)));
    let out = tools
        .call_with_progress(
            &caller(Role::Viewer),
            "rollout_status",
            json!({"namespace": "shop", "kind": "Deployment", "name": "web"}),
            Some(progress),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "progressing");
    assert_eq!(out["message"], "1 of 2 new replicas updated");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let err = tools
        .call(
            &caller(Role::Viewer),
            "rollout_status",
            json!({"namespace": "shop", "kind": "Deployment", "name": "web", "wait_seconds": 100_000}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wait_seconds must be between 0 and 600"), "{err}");
}

#[test]
fn shipped_prompts_name_real_tools() {
    let dir =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("../prompts");
    let catalog = crate::prompts::Catalog::load(&dir).unwrap();
    catalog.check_tools(&tool_names()).unwrap();
}

#[tokio::test]
async fn listings_with_objects_return_them_as_get_resource_does() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    super::testing::learn_fixture_secrets();
    let viewer = caller(Role::Viewer);
    let out = tools
        .call(&viewer, "list_resources", json!({"kind": "Secret", "namespace": "shop", "objects": true}))
        .await
        .unwrap();
    let secret = &out["objects"][0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["dataKeys"], json!(["password", "username"]));
    assert!(secret.get("data").is_none() && secret["metadata"].get("managedFields").is_none(), "{secret}");
    // A Secret's values are gone before the exit gate; what leaves passes the gate as well.
    assert_clean("secret objects", &out.to_string());
    let out = tools.call(&viewer, "list_resources", json!({"kind": "ConfigMap", "objects": true})).await.unwrap();
    assert_eq!(out["objects"].as_array().unwrap().len(), out["items"].as_array().unwrap().len());
    assert_clean("configmap objects", &sent(out).to_string());
    // Without `objects`, none.
    let out = tools.call(&viewer, "list_resources", json!({"kind": "Pod", "namespace": "shop"})).await.unwrap();
    assert!(out.get("objects").is_none(), "{out}");
}

#[tokio::test]
async fn a_kind_an_older_apiserver_serves_under_its_older_version_is_read_there() {
    let api = shop_fixture();
    // A 1.20 apiserver: CronJob is batch/v1beta1 only.
    api.add(
        json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "0 3 * * *", "suspend": true}}),
    );
    let (tools, _) = tools(&api);
    let viewer = caller(Role::Viewer);
    let out = tools
        .call(&viewer, "get_resource", json!({"kind": "CronJob", "namespace": "shop", "name": "nightly"}))
        .await
        .unwrap();
    assert_eq!(out["object"]["apiVersion"], "batch/v1beta1");
    assert_eq!(out["object"]["spec"]["suspend"], true);
    let err = tools
        .call(&viewer, "get_resource", json!({"kind": "CronJob", "namespace": "shop", "name": "absent"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::NotFound(_)), "{err}");
}

/// A listing the watch stores cannot answer (a selector, or whole objects) is one read of the
/// apiserver's watch cache with the selectors, not a quorum list of etcd.
#[tokio::test]
async fn selected_listings_read_the_apiservers_watch_cache() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let viewer = caller(Role::Viewer);
    let out = tools
        .call(&viewer, "list_resources", json!({"kind": "Pod", "namespace": "shop", "label_selector": "app=web"}))
        .await
        .unwrap();
    assert!(!out["items"].as_array().unwrap().is_empty(), "{out}");
    tools
        .call(&viewer, "list_resources", json!({"kind": "Deployment", "namespace": "shop", "objects": true}))
        .await
        .unwrap();
    let queries = api.queries();
    let lists: Vec<&String> = queries.iter().filter(|q| q.contains("/namespaces/shop/")).collect();
    assert!(
        lists.iter().any(|q| q.starts_with("GET /api/v1/namespaces/shop/pods?") && q.contains("labelSelector=app=web")),
        "{queries:#?}"
    );
    assert!(lists.iter().any(|q| q.starts_with("GET /apis/apps/v1/namespaces/shop/deployments?")), "{queries:#?}");
    assert!(lists.iter().all(|q| q.contains("resourceVersion=0")), "{queries:#?}");
}

/// A workload's tree is read with its own selector from the apiserver's watch cache, and its
/// events one object at a time: nothing lists a whole namespace (issue 15: in a namespace of
/// hundreds of workloads those lists were most of a diagnosis).
#[tokio::test]
async fn workload_reads_ask_only_for_the_workloads_objects() {
    let api = shop_fixture();
    let (tools, _) = tools(&api);
    let viewer = caller(Role::Viewer);
    let args = json!({"namespace": "shop", "kind": "Deployment", "name": "web"});
    let described = tools.call(&viewer, "describe_workload", args.clone()).await.unwrap();
    let queries = api.queries();
    let lists: Vec<&String> = queries.iter().filter(|q| !q.contains("/shop/deployments/web")).collect();
    assert!(
        lists.iter().any(|q| q.starts_with("GET /apis/apps/v1/namespaces/shop/replicasets?")
            && q.contains("labelSelector=app=web")
            && q.contains("resourceVersion=0")),
        "{queries:#?}"
    );
    assert!(
        lists.iter().any(|q| q.starts_with("GET /api/v1/namespaces/shop/pods?")
            && q.contains("labelSelector=app=web")
            && q.contains("resourceVersion=0")),
        "{queries:#?}"
    );
    let events: Vec<&&String> = lists.iter().filter(|q| q.contains("/events")).collect();
    assert!(!events.is_empty(), "{queries:#?}");
    assert!(events.iter().all(|q| q.contains("fieldSelector=involvedObject.kind=")), "{events:#?}");
    assert!(events.iter().any(|q| q.contains("involvedObject.kind=Pod,involvedObject.name=web-bbb-1")), "{events:#?}");
    // The same answer as before: the failing pod's warning is there, events elsewhere are not.
    assert!(described["events"].as_array().unwrap().iter().any(|e| e["reason"] == "Failed"), "{described}");

    api.queries.lock().unwrap().clear();
    let mut related = args.clone();
    related["include_related"] = json!(true);
    let out = tools.call(&viewer, "events", related).await.unwrap();
    let objects: Vec<&str> = out["events"].as_array().unwrap().iter().map(|e| e["object"].as_str().unwrap()).collect();
    assert!(objects.contains(&"Pod/web-bbb-1") && objects.contains(&"Deployment/web"), "{out}");
    let queries = api.queries();
    assert!(
        !queries.iter().any(|q| q.starts_with("GET /api/v1/namespaces/shop/events") && !q.contains("fieldSelector=")),
        "no list of the namespace's events: {queries:#?}"
    );
}
