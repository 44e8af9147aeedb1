use super::*;

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn run(p: &Pod, view: &ConfigView) -> Outcome {
    let c = &p.spec.as_ref().unwrap().containers[0];
    container(p, c, view, &Registry::default_set(), "10.64.0.7").0
}

fn view(secrets: &[(&str, &[&str])], cms: &[(&str, &[&str])]) -> ConfigView {
    let conv = |xs: &[(&str, &[&str])]| {
        xs.iter().map(|(n, ks)| (n.to_string(), Some(ks.iter().map(|k| k.to_string()).collect()))).collect()
    };
    ConfigView { secrets: conv(secrets), config_maps: conv(cms) }
}

const API: &str = r#"
metadata: {name: api-1, namespace: shop}
spec:
  containers:
  - name: api
    image: ghcr.io/kubemedic-demo/api:1.2.0
    env:
    - name: DB_PASSWORD
      valueFrom: {secretKeyRef: {name: api-db, key: DB_PASWORD}}
"#;

#[test]
fn missing_secret_key_is_a_config_error_with_kubelets_words() {
    let p = pod(API);
    let got = run(&p, &view(&[("api-db", &["DB_PASSWORD"])], &[]));
    assert_eq!(got, Outcome::Config("couldn't find key DB_PASWORD in Secret shop/api-db".into()));
    let mut missing = view(&[], &[]);
    missing.secrets.insert("api-db".into(), None);
    assert_eq!(run(&p, &missing), Outcome::Config("secret \"api-db\" not found".into()));
    assert!(matches!(run(&p, &view(&[("api-db", &["DB_PASWORD"])], &[])), Outcome::Run(_)));
}

#[test]
fn missing_configmap_via_env_from_and_optional_refs() {
    let p = pod(r#"
metadata: {name: r, namespace: n}
spec:
  containers:
  - name: report
    image: busybox:1.36
    envFrom: [{configMapRef: {name: settings}}, {secretRef: {name: maybe, optional: true}}]
"#);
    let mut v = view(&[], &[]);
    v.config_maps.insert("settings".into(), None);
    v.secrets.insert("maybe".into(), None);
    assert_eq!(run(&p, &v), Outcome::Config("configmap \"settings\" not found".into()));
    v.config_maps.insert("settings".into(), Some(BTreeSet::new()));
    assert!(matches!(run(&p, &v), Outcome::Run(_)));
}

#[test]
fn image_outside_the_registry_fails_to_pull_before_config_is_checked() {
    let p = pod(&API.replace("api:1.2.0", "api:9.9.9"));
    match run(&p, &view(&[], &[])) {
        Outcome::Pull(msg) => assert!(msg.contains("ghcr.io/kubemedic-demo/api:9.9.9: not found"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn memory_need_above_limit_is_oom_killed() {
    let p = pod(r#"
metadata:
  name: c
  annotations: {nodesim.kubemedic.io/memory-need: 200Mi}
spec:
  containers:
  - name: cache
    image: redis:7.2
    resources: {limits: {memory: 64Mi}}
"#);
    let Outcome::Run(spec) = run(&p, &ConfigView::default()) else { panic!() };
    assert_eq!(spec.exit, Some(Exit { code: 137, reason: "OOMKilled", after: Duration::from_secs(1) }));
    let raised = pod(&serde_yaml_ng::to_string(&p).unwrap().replace("64Mi", "256Mi"));
    let Outcome::Run(spec) = run(&raised, &ConfigView::default()) else { panic!() };
    assert_eq!(spec.exit, None);
}

#[test]
fn crash_annotations_per_container_win() {
    let p = pod(r#"
metadata:
  name: w
  annotations:
    nodesim.kubemedic.io/exit-code: "1"
    nodesim.kubemedic.io/exit-code.worker: "3"
    nodesim.kubemedic.io/logs: "boom\npanic: bad config\n"
    nodesim.kubemedic.io/run-seconds: "x"
spec:
  containers: [{name: worker, image: busybox}]
"#);
    let c = &p.spec.as_ref().unwrap().containers[0];
    let (out, warnings) = container(&p, c, &ConfigView::default(), &Registry::default_set(), "10.0.0.1");
    let Outcome::Run(spec) = out else { panic!() };
    assert_eq!(spec.exit.as_ref().map(|e| (e.code, e.reason)), Some((3, "Error")));
    assert_eq!(spec.logs, vec!["boom", "panic: bad config"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn probe_on_a_port_not_listened_on_fails() {
    let p = pod(r#"
metadata: {name: s}
spec:
  containers:
  - name: shop
    image: nginx:1.27
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: 8081}, periodSeconds: 10}
    livenessProbe: {tcpSocket: {port: http}}
"#);
    let Outcome::Run(spec) = run(&p, &ConfigView::default()) else { panic!() };
    match spec.readiness {
        ProbeResult::Fail { detail, period, errored, .. } => {
            assert_eq!(
                detail,
                "Get \"http://10.64.0.7:8081/healthz\": dial tcp 10.64.0.7:8081: connect: connection refused"
            );
            assert_eq!(period, PROBE_CAP);
            assert!(!errored);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(spec.liveness, ProbeResult::Pass { .. }));
}

#[test]
fn listen_ports_annotation_overrides_container_ports() {
    let p = pod(r#"
metadata:
  name: s
  annotations: {nodesim.kubemedic.io/listen-ports: "9090"}
spec:
  containers:
  - name: shop
    image: nginx:1.27
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}}
"#);
    let Outcome::Run(spec) = run(&p, &ConfigView::default()) else { panic!() };
    assert!(matches!(spec.readiness, ProbeResult::Fail { .. }));
}

#[test]
fn missing_volume_object_is_a_mount_error() {
    let p = pod(r#"
metadata: {name: v}
spec:
  containers: [{name: a, image: nginx}]
  volumes: [{name: cfg, configMap: {name: app-config}}]
"#);
    let mut v = ConfigView::default();
    assert_eq!(referenced(&p).1.into_iter().collect::<Vec<_>>(), vec!["app-config".to_string()]);
    v.config_maps.insert("app-config".into(), None);
    assert_eq!(
        mount_error(&p, &v).as_deref(),
        Some("MountVolume.SetUp failed for volume \"cfg\" : configmap \"app-config\" not found")
    );
}

#[test]
fn a_command_the_image_lacks_cannot_start() {
    let p = pod(r#"
metadata:
  name: w-1
  namespace: shop
  annotations: {nodesim.kubemedic.io/image-contents: "/usr/local/bin/worker, /bin/sh"}
spec:
  containers:
  - name: worker
    image: ghcr.io/kubemedic-demo/worker:1.4.0
    command: [worker-v2, --queue, jobs]
"#);
    let Outcome::Start(msg) = run(&p, &ConfigView::default()) else { panic!("expected a start error") };
    assert!(msg.contains(r#"exec: "worker-v2": executable file not found in $PATH"#), "{msg}");
    assert!(msg.starts_with(r#"failed to start container "worker""#), "{msg}");
    // A bare name is found by file name, an absolute path only as written.
    let mut ok = p.clone();
    ok.spec.as_mut().unwrap().containers[0].command = Some(vec!["worker".into()]);
    assert!(matches!(run(&ok, &ConfigView::default()), Outcome::Run(_)));
    ok.spec.as_mut().unwrap().containers[0].command = Some(vec!["/opt/worker".into()]);
    let Outcome::Start(msg) = run(&ok, &ConfigView::default()) else { panic!("expected a start error") };
    assert!(msg.contains("stat /opt/worker: no such file or directory"), "{msg}");
    // Without a command, the image's entrypoint runs.
    ok.spec.as_mut().unwrap().containers[0].command = None;
    assert!(matches!(run(&ok, &ConfigView::default()), Outcome::Run(_)));
}

#[test]
fn writing_past_the_ephemeral_storage_limit_means_eviction() {
    let p = pod(r#"
metadata:
  name: w-1
  namespace: shop
  annotations: {nodesim.kubemedic.io/ephemeral-storage-use: 300Mi, nodesim.kubemedic.io/run-seconds: "2"}
spec:
  containers:
  - name: thumbs
    image: nginx:1.25
    resources: {limits: {ephemeral-storage: 100Mi}}
"#);
    let Outcome::Run(spec) = run(&p, &ConfigView::default()) else { panic!() };
    let evict = spec.evict.expect("an eviction");
    assert_eq!(evict.message, "Container thumbs exceeded its local ephemeral storage limit \"100Mi\". ");
    assert_eq!(evict.after, Duration::from_secs(2));
    let mut roomy = p.clone();
    roomy.spec.as_mut().unwrap().containers[0].resources =
        serde_json::from_value(serde_json::json!({"limits": {"ephemeral-storage": "1Gi"}})).unwrap();
    let Outcome::Run(spec) = run(&roomy, &ConfigView::default()) else { panic!() };
    assert_eq!(spec.evict, None);
}
