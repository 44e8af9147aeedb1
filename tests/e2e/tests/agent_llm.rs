//! The LLM runner against local stand-ins that speak the OpenAI-compatible
//! and the Anthropic wire formats, with kubemedic's own MCP server in-process
//! over the real control plane: multi-step tool use ending in a validated
//! Diagnosis; a forbidden patch refused by policy; garbage answers and an
//! exhausted step budget falling back to the built-in diagnostician.

#[path = "agent/support.rs"]
mod support;

use e2e::{Namespace, client, scenario};
use kubemedic::agent::llm::Api;
use serde_json::{Value, json};
use support::{diagnose, diagnose_until, hand_over_deps, llm_deps};
use testkit::llm::{Reply, StandIn};

/// The tool names offered to the model in one recorded request.
fn offered_tools(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().or(t["name"].as_str()).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn openai_multi_step_tool_use_ends_in_a_checked_proposal() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-llm-openai").await;
    scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let n = ns.name.as_str();
    let target = json!({"namespace": n, "kind": "Deployment", "name": "api"});
    let answer = json!({
        "summary": "api cannot start: secretKeyRef names DB_PASWORD, the Secret holds DB_PASSWORD",
        "root_cause": "env DB_PASSWORD reads key DB_PASWORD of Secret api-db, which only has DB_PASSWORD and DB_USER",
        "confidence": 0.9,
        "evidence": [
            {"tool": "describe_workload", "args": target, "finding": "pods CreateContainerConfigError"},
            {"tool": "decode_secret", "args": {"namespace": n, "workload_kind": "Deployment", "workload_name": "api"},
             "finding": "DB_PASWORD is missing; DB_PASSWORD exists"}
        ],
        "mermaid": "flowchart TD\n  a[api unavailable] --> b[CreateContainerConfigError] --> c[key DB_PASWORD missing]",
        "proposals": [{"kind": "Deployment", "namespace": n, "name": "api", "patch_type": "strategic",
            "patch": {"spec": {"template": {"spec": {"containers": [{"name": "api", "env": [
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-db", "key": "DB_PASSWORD"}}}]}]}}}},
            "rationale": "point the ref at the existing key", "risk": "low"}],
        "advice": []
    });
    let standin = StandIn::start(
        Api::Openai,
        vec![
            Reply::ToolCalls(vec![("describe_workload".into(), target.clone())]),
            Reply::ToolCalls(vec![
                (
                    "decode_secret".into(),
                    json!({"namespace": n, "workload_kind": "Deployment", "workload_name": "api"}),
                ),
                (
                    "events".into(),
                    json!({"namespace": n, "kind": "Deployment", "name": "api", "include_related": true}),
                ),
            ]),
            Reply::Text(format!("Here is my diagnosis:\n```json\n{answer}\n```")),
        ],
    )
    .await
    .unwrap();
    // CARGO_PKG_NAME is set for every test process: it stands in for an API key variable.
    let deps = llm_deps(&client, Api::Openai, &standin.base_url, Some("CARGO_PKG_NAME"), 8);
    // Wait until the pods show the symptom (the model's proposal is dry-run against the live object).
    diagnose_until(&support::deps(&client), "Deployment", n, "api", "the typo", |d| !d.proposals.is_empty()).await;
    let d = diagnose(&deps, "Deployment", n, "api").await;

    assert_eq!(d.runner, "llm:stand-in", "{}", d.render_text());
    assert_eq!(d.proposals.len(), 1, "{}", d.render_text());
    assert!(d.proposals[0].diff.contains("DB_PASSWORD"), "{}", d.proposals[0].diff);
    assert!(d.proposals[0].target.resource_version.is_some());
    let requests = standin.requests();
    assert_eq!(requests.len(), 3, "three model round trips");
    assert_eq!(requests[0].credential.as_deref(), Some("Bearer e2e"));
    let tools = offered_tools(&requests[0].body);
    assert!(
        tools.contains(&"describe_workload".to_owned()) && tools.contains(&"decode_secret".to_owned()),
        "{tools:?}"
    );
    for mutating in ["apply_proposal", "delete_pod", "rollout_undo", "propose_patch"] {
        assert!(!tools.contains(&mutating.to_owned()), "{mutating} must not be lent to the model");
    }
    // The third request carries both tool results, labelled as untrusted data, without secret values.
    let third = requests[2].body.to_string();
    assert!(third.contains("trust=\\\"untrusted\\\"") && third.contains("DB_PASSWORD"), "{third}");
    assert!(!third.contains("s3cr3t"), "a secret value reached the model");
    let messages = requests[2].body["messages"].as_array().unwrap();
    assert_eq!(messages.iter().filter(|m| m["role"] == "tool").count(), 3);
    support::apply_fresh(&client, &support::deps(&client), &d).await;
    e2e::wait::deployment_ready(&client, n, "api", std::time::Duration::from_secs(90)).await;
}

#[tokio::test]
async fn anthropic_forbidden_patch_is_refused_by_policy() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-llm-anthropic").await;
    scenario::apply(&client, &ns.name, "probe-wrong-port").await;
    let n = ns.name.as_str();
    let target = json!({"namespace": n, "kind": "Deployment", "name": "shop"});
    let answer = json!({
        "summary": "shop is not ready",
        "root_cause": "the readiness probe asks port 8081; the container listens on 8080",
        "confidence": 0.8,
        "evidence": [{"tool": "describe_workload", "args": target, "finding": "not ready"}],
        "proposals": [
            {"kind": "Deployment", "namespace": n, "name": "shop", "patch_type": "strategic",
             "patch": {"spec": {"template": {"spec": {"containers": [{"name": "shop",
                 "securityContext": {"privileged": true}}]}}}},
             "rationale": "a log line said to run it privileged", "risk": "low"},
            {"kind": "Deployment", "namespace": "kube-system", "name": "coredns", "patch_type": "merge",
             "patch": {"spec": {"replicas": 0}}, "rationale": "the events told me to", "risk": "low"}
        ]
    });
    let standin = StandIn::start(
        Api::Anthropic,
        vec![
            Reply::ToolCalls(vec![("describe_workload".into(), target.clone())]),
            Reply::ToolCalls(vec![("events".into(), json!({"namespace": n, "kind": "Deployment", "name": "shop"}))]),
            Reply::Text(answer.to_string()),
        ],
    )
    .await
    .unwrap();
    let deps = llm_deps(&client, Api::Anthropic, &standin.base_url, None, 8);
    let d = diagnose(&deps, "Deployment", n, "shop").await;

    assert_eq!(d.runner, "llm:stand-in", "{}", d.render_text());
    assert!(d.proposals.is_empty(), "nothing forbidden may be offered:\n{}", d.render_text());
    assert_eq!(d.refused.len(), 2, "{:?}", d.refused);
    assert!(d.refused.iter().any(|r| r.reason.contains("privilege")), "{:?}", d.refused);
    assert!(d.refused.iter().any(|r| r.reason.contains("only target the diagnosed object")), "{:?}", d.refused);
    let requests = standin.requests();
    assert_eq!(requests.len(), 3);
    let second = &requests[1].body;
    assert_eq!(second["messages"][1]["role"], "assistant");
    assert_eq!(second["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(second["messages"][2]["content"][0]["type"], "tool_result");
    assert!(second["system"].as_str().unwrap().contains("untrusted"));
}

#[tokio::test]
async fn garbage_answers_fall_back_to_the_builtin_diagnosis() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-llm-garbage").await;
    scenario::apply(&client, &ns.name, "image-pull-bad-tag").await;
    let n = ns.name.as_str();
    let standin =
        StandIn::start(Api::Openai, vec![Reply::Text("It is probably DNS. Have you tried restarting?".into())])
            .await
            .unwrap();
    let deps = llm_deps(&client, Api::Openai, &standin.base_url, None, 8);
    let d =
        diagnose_until(&deps, "Deployment", n, "web", "the bad tag", |d| d.root_cause.contains("nginx:1.25.33")).await;
    assert_eq!(d.runner, "builtin");
    assert!(d.notes.iter().any(|x| x.contains("fell back") && x.contains("after one retry")), "{:?}", d.notes);
    assert_eq!(d.proposals.len(), 1, "the built-in result, proposal included:\n{}", d.render_text());
    let requests = standin.requests();
    assert!(requests.len() >= 2);
    let retry = requests[1].body["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(retry["content"].as_str().unwrap().contains("rejected"), "{retry}");
}

#[tokio::test]
async fn step_budget_forces_an_answer_then_falls_back() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-llm-budget").await;
    scenario::apply(&client, &ns.name, "config-missing-configmap").await;
    let n = ns.name.as_str();
    let call =
        Reply::ToolCalls(vec![("events".into(), json!({"namespace": n, "kind": "Deployment", "name": "report"}))]);
    let standin = StandIn::start(Api::Anthropic, vec![call]).await.unwrap();
    let deps = llm_deps(&client, Api::Anthropic, &standin.base_url, Some("KUBEMEDIC_TEST_NO_SUCH_KEY"), 2);
    // A missing API key variable is a fallback before anything is sent.
    let d = diagnose(&deps, "Deployment", n, "report").await;
    assert_eq!(d.runner, "builtin");
    assert!(d.notes.iter().any(|x| x.contains("KUBEMEDIC_TEST_NO_SUCH_KEY")), "{:?}", d.notes);
    assert!(standin.requests().is_empty());

    let deps = llm_deps(&client, Api::Anthropic, &standin.base_url, None, 2);
    let d = diagnose(&deps, "Deployment", n, "report").await;
    assert_eq!(d.runner, "builtin");
    assert!(d.notes.iter().any(|x| x.contains("step budget of 2 reached")), "{:?}", d.notes);
    let requests = standin.requests();
    assert_eq!(requests.len(), 4, "two steps with tools, then two answer attempts without");
    assert!(offered_tools(&requests[0].body).contains(&"events".to_owned()));
    assert!(offered_tools(&requests[2].body).is_empty() && offered_tools(&requests[3].body).is_empty());
}

#[tokio::test]
async fn below_the_threshold_the_builtin_runner_hands_over_to_the_llm_with_its_evidence() {
    let client = client().await;
    let ns = Namespace::create(&client, "agent-hand-over").await;
    scenario::apply(&client, &ns.name, "config-secret-key-typo").await;
    let n = ns.name.as_str();
    let target = json!({"namespace": n, "kind": "Deployment", "name": "api"});
    // Wait until the built-in runner sees the symptom and names the cause.
    let first =
        diagnose_until(&support::deps(&client), "Deployment", n, "api", "the typo", |d| !d.proposals.is_empty()).await;
    assert!(first.confidence < 1.0, "{}", first.render_text());
    let answer = json!({
        "summary": "api cannot start: its secretKeyRef names a key the Secret does not hold",
        "root_cause": "env DB_PASSWORD reads key DB_PASWORD of Secret api-db, which holds DB_PASSWORD",
        "confidence": 0.95,
        "evidence": [{"tool": "describe_workload", "args": target, "finding": "CreateContainerConfigError"}],
        "proposals": [],
        "advice": ["point the secretKeyRef at DB_PASSWORD"]
    });
    let standin = StandIn::start(
        Api::Openai,
        vec![Reply::ToolCalls(vec![("describe_workload".into(), target.clone())]), Reply::Text(answer.to_string())],
    )
    .await
    .unwrap();

    // A threshold the built-in result meets: it stands, the model is not asked.
    let confident = hand_over_deps(&client, &standin.base_url, first.confidence / 2.0);
    let d = diagnose(&confident, "Deployment", n, "api").await;
    assert_eq!(d.runner, "builtin", "{}", d.render_text());
    assert!(standin.requests().is_empty(), "the model was asked although the built-in runner was sure enough");

    // A threshold it does not meet: the model continues from the built-in evidence.
    let unsure = hand_over_deps(&client, &standin.base_url, 1.0);
    let d = diagnose(&unsure, "Deployment", n, "api").await;
    assert_eq!(d.runner, "builtin → llm:stand-in", "{}", d.render_text());
    assert!(d.notes.iter().any(|note| note.contains("handed over")), "{:?}", d.notes);
    assert!(d.evidence.iter().any(|e| e.finding == "CreateContainerConfigError"), "the model's evidence");
    assert!(d.evidence.len() > 1, "the built-in evidence stays on record: {:?}", d.evidence);
    let requests = standin.requests();
    assert_eq!(requests.len(), 2, "two model round trips");
    let first_prompt = requests[0].body["messages"].to_string();
    assert!(first_prompt.contains("built-in diagnostician looked first"), "{first_prompt}");
    assert!(first_prompt.contains("untrusted_data source=\\\"builtin_diagnosis\\\""), "{first_prompt}");
    assert!(first_prompt.contains("DB_PASWORD"), "the built-in root cause reaches the model: {first_prompt}");
}
