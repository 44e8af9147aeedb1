//! A fake apiserver for tests without a cluster: it serves objects by path, answers
//! dry-run patches by applying them to a copy, and records every real write (so tests can
//! assert that nothing was mutated); [`shop_fixture`] fills one with a small failing shop.
//!
//! Only kube and serde types cross this API, so kubemedic's own unit tests use it too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt as _;
use kube::client::Body;
use serde_json::{Value, json};

/// A known secret value planted in fixtures; must never leave the tools.
pub const SECRET_VALUE: &str = "s3cr3t-Hunter2-value";

#[derive(Clone, Default)]
pub struct FakeApi {
    pub objects: Arc<Mutex<BTreeMap<String, Value>>>,
    /// `METHOD path` of every request that would change the cluster.
    pub writes: Arc<Mutex<Vec<String>>>,
    /// `METHOD path` of every request, reads included (to count round trips).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// `METHOD path?query` of every request, the query percent-decoded (to check what a read asked for).
    pub queries: Arc<Mutex<Vec<String>>>,
}

fn plural_path(api_version: &str, kind: &str, ns: Option<&str>) -> String {
    let k = kubemedic::tools::kinds::KINDS.iter().find(|k| k.kind == kind).expect("fixture kind");
    let base = if api_version.contains('/') { format!("/apis/{api_version}") } else { format!("/api/{api_version}") };
    match ns {
        Some(ns) if k.namespaced => format!("{base}/namespaces/{ns}/{}", k.plural),
        _ => format!("{base}/{}", k.plural),
    }
}

impl FakeApi {
    pub fn add(&self, obj: Value) -> &Self {
        let path = format!(
            "{}/{}",
            plural_path(
                obj["apiVersion"].as_str().unwrap(),
                obj["kind"].as_str().unwrap(),
                obj["metadata"]["namespace"].as_str()
            ),
            obj["metadata"]["name"].as_str().unwrap()
        );
        self.objects.lock().unwrap().insert(path, obj);
        self
    }

    /// Logs for `pods/log` of one pod.
    pub fn logs(&self, ns: &str, pod: &str, text: &str) -> &Self {
        self.objects
            .lock()
            .unwrap()
            .insert(format!("/api/v1/namespaces/{ns}/pods/{pod}/log"), Value::String(text.into()));
        self
    }

    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    /// The objects of `kind` it holds, decoded (e.g. to fill a watch store in a test).
    pub fn all_of<K: serde::de::DeserializeOwned>(&self, kind: &str) -> Vec<K> {
        let objects = self.objects.lock().unwrap();
        objects
            .values()
            .filter(|v| v["kind"] == kind)
            .map(|v| serde_json::from_value(v.clone()).expect("a fake apiserver object decodes"))
            .collect()
    }

    /// Every request so far (`METHOD path`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Every request so far with its query (`METHOD path?query`, decoded), oldest first.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }

    fn handle(&self, method: &http::Method, uri: &http::Uri, body: &[u8]) -> (u16, Vec<u8>) {
        let path = uri.path().trim_end_matches('/').to_owned();
        self.requests.lock().unwrap().push(format!("{method} {path}"));
        let query = uri.query().unwrap_or_default();
        let decoded: String = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        self.queries.lock().unwrap().push(if decoded.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path}?{decoded}")
        });
        let dry_run = query.contains("dryRun=All");
        let objects = self.objects.lock().unwrap();
        let not_found = || {
            let s = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("{path} not found"), "reason": "NotFound", "code": 404});
            (404, s.to_string().into_bytes())
        };
        match *method {
            http::Method::GET => {
                if let Some(v) = objects.get(&path) {
                    return match v {
                        Value::String(text) => (200, text.clone().into_bytes()),
                        other => (200, other.to_string().into_bytes()),
                    };
                }
                // A collection: items directly below, in one namespace or across all.
                let segments: Vec<&str> = path.split('/').collect();
                let plural = *segments.last().unwrap_or(&"");
                let prefix = segments[..segments.len() - 1].join("/");
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(p, v)| {
                        if !v.is_object() {
                            return false;
                        }
                        let parts: Vec<&str> = p.split('/').collect();
                        let n = parts.len();
                        n >= 2
                            && parts[n - 2] == plural
                            && (p.starts_with(&format!("{path}/"))
                                || (p.starts_with(&format!("{prefix}/namespaces/")) && !path.contains("/namespaces/")))
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                if items.is_empty() && !path.ends_with('s') {
                    return not_found();
                }
                (
                    200,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
                        .to_string()
                        .into_bytes(),
                )
            }
            http::Method::PATCH if dry_run => {
                let Some(live) = objects.get(&path).cloned() else { return not_found() };
                let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let mut out = live;
                if patch.is_array() {
                    match serde_json::from_value::<json_patch::Patch>(patch) {
                        Ok(p) => {
                            if let Err(e) = json_patch::patch(&mut out, &p) {
                                eprintln!("fake apiserver: json patch failed: {e}");
                            }
                        }
                        Err(e) => eprintln!("fake apiserver: bad json patch: {e}"),
                    }
                } else {
                    json_patch::merge(&mut out, &patch);
                }
                (200, out.to_string().into_bytes())
            }
            http::Method::DELETE if dry_run => match objects.get(&path) {
                Some(v) => (200, v.to_string().into_bytes()),
                None => not_found(),
            },
            _ => {
                drop(objects);
                self.writes.lock().unwrap().push(format!("{method} {path}"));
                (200, b"{}".to_vec())
            }
        }
    }

    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: http::Request<Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let (status, out) = me.handle(&parts.method, &parts.uri, &bytes);
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(out))
                        .unwrap(),
                )
            }
        });
        kube::Client::new(svc, "default")
    }
}

/// A small namespace: Deployment `web` (two revisions, the newest failing),
/// its ReplicaSets and Pods, a Secret holding [`SECRET_VALUE`], events, a node.
pub fn shop_fixture() -> FakeApi {
    let api = FakeApi::default();
    let meta = |name: &str, uid: &str, owner: Option<(&str, &str, &str)>| {
        let mut m = json!({"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "7",
            "creationTimestamp": "2026-11-25T10:00:00Z", "managedFields": [{"manager": "kubectl"}], "labels": {"app": "web"}});
        if let Some((kind, oname, ouid)) = owner {
            m["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": ouid, "controller": true}]);
        }
        m
    };
    let template = |image: &str| {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image,
            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "passwrd"}}}]}]}})
    };
    let mut dep_meta = meta("web", "d-1", None);
    dep_meta["generation"] = json!(2);
    dep_meta["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
    api.add(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dep_meta,
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("shop/web:2")},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"}]}}));
    for (rev, hash, image, ready) in [(1, "aaa", "shop/web:1", 2), (2, "bbb", "shop/web:2", 0)] {
        let mut m = meta(&format!("web-{hash}"), &format!("rs-{rev}"), Some(("Deployment", "web", "d-1")));
        m["annotations"] = json!({"deployment.kubernetes.io/revision": rev.to_string()});
        let mut t = template(image);
        t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        api.add(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": m,
            "spec": {"replicas": if rev == 2 { 1 } else { 2 }, "template": t}, "status": {"readyReplicas": ready}}));
    }
    api.add(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-bbb-1", "p-1", Some(("ReplicaSet", "web-bbb", "rs-2"))),
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "shop/web:2"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "web", "image": "shop/web:2", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "couldn't find key passwrd in Secret shop/db"}}}]}}));
    api.add(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-aaa-1", "p-2", Some(("ReplicaSet", "web-aaa", "rs-1"))),
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "shop/web:1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "web", "image": "shop/web:1", "imageID": "", "ready": true, "restartCount": 3,
                "state": {"running": {}}, "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}));
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, SECRET_VALUE);
    let last_applied = format!("{{\"data\":{{\"password\":\"{b64}\"}}}}");
    api.add(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop", "uid": "s-1",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
        "type": "Opaque", "data": {"password": b64, "username": "YWRtaW4="}}));
    api.add(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"},
        "data": {"leak": format!("db={SECRET_VALUE}")}}));
    api.add(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "shop", "creationTimestamp": "2026-11-25T10:01:00Z"},
        "involvedObject": {"kind": "Pod", "name": "web-bbb-1", "namespace": "shop"}, "type": "Warning", "reason": "Failed",
        "message": format!("Error: couldn't find key passwrd in Secret shop/db (value {SECRET_VALUE})"), "count": 4,
        "lastTimestamp": "2026-11-25T10:05:00Z"}));
    api.add(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2", "namespace": "shop"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"}, "type": "Normal", "reason": "ScalingReplicaSet",
        "message": "Scaled up replica set web-bbb to 1", "count": 1, "lastTimestamp": "2026-11-25T10:00:30Z"}));
    api.add(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e3", "namespace": "hidden"},
        "involvedObject": {"kind": "Pod", "name": "x", "namespace": "hidden"}, "type": "Warning", "reason": "Secret", "message": "hidden", "count": 1}));
    api.add(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}));
    api.logs(
        "shop",
        "web-aaa-1",
        &format!("starting\nconnecting with password={SECRET_VALUE}\nraw {SECRET_VALUE}\nERROR out of memory\n"),
    );
    api
}
