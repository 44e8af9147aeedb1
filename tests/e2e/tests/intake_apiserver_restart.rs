//! Killing and restarting the apiserver mid-watch loses no failure.
//!
//! The test runs its own etcd and two kube-apiservers on it (A and B, same
//! flags as tests/cluster/up.sh), so killing A does not disturb the other
//! tests. kubemedic watches through A. While A is down, pods fail (status
//! written through B, as a kubelet would through another apiserver replica).
//! When A is back, the watchers resume from their resourceVersion or, on
//! 410 Gone, relist, and every failure becomes exactly one incident.

mod intake_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use intake_common::{Intake, repo_root, state_dir};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kubemedic::signal::WorkloadRef;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn k8s_bin() -> PathBuf {
    std::env::var_os("K8S_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kubemedic/k8s-v1.20.2")
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct ControlPlane {
    dir: PathBuf,
    etcd_port: u16,
    token: String,
    _etcd: Proc,
}

impl ControlPlane {
    fn start(dir: &Path) -> ControlPlane {
        run(Command::new("openssl").args(["genrsa", "-out"]).arg(dir.join("sa.key")).arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(dir.join("sa.key"))
            .arg("-out")
            .arg(dir.join("sa.pub")));
        let token = format!("restart-{}", e2e::unique_name("t"));
        std::fs::write(dir.join("tokens.csv"), format!("{token},admin,admin-uid,system:masters\n")).unwrap();
        let (etcd_port, peer_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let etcd = Command::new("etcd")
            .args(["--name", "default", "--log-level", "warn", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        ControlPlane { dir: dir.to_owned(), etcd_port, token, _etcd: Proc(etcd) }
    }

    fn apiserver(&self, name: &str, port: u16) -> Proc {
        let d = &self.dir;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join(format!("{name}.log"))).unwrap();
        let child = Command::new(k8s_bin().join("kube-apiserver"))
            .arg(format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", d.join(format!("certs-{name}")).display()))
            .args(["--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true"])
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!("--service-account-key-file={}", d.join("sa.pub").display()))
            .arg(format!("--service-account-signing-key-file={}", d.join("sa.key").display()))
            .arg("--api-audiences=https://kubernetes.default.svc")
            .arg(format!("--token-auth-file={}", d.join("tokens.csv").display()))
            .args(["--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount"])
            .args(["--enable-priority-and-fairness=false", "--insecure-port=0"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver");
        Proc(child)
    }

    async fn client(&self, port: u16) -> Client {
        e2e::install_crypto();
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\n\
             users:\n- name: u\n  user: {{token: \"{}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            self.token
        );
        let kc: Kubeconfig = serde_yaml_ng::from_str(&kc).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        Client::try_from(config).unwrap()
    }

    async fn wait_ready(&self, client: &Client, what: &str) {
        for _ in 0..300 {
            if client.apiserver_version().await.is_ok()
                && Api::<Namespace>::all(client.clone()).get_opt("default").await.ok().flatten().is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = std::fs::read_to_string(self.dir.join(format!("{what}.log"))).unwrap_or_default();
        panic!("{what} not ready; log tail:\n{}", log.lines().rev().take(20).collect::<Vec<_>>().join("\n"));
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "restart"}},
        // No scheduler runs here, and none is named this: the pods stay put for their status writes.
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "registry.local/app:1"}]}
    }))
    .unwrap()
}

fn status(waiting: &str, last_terminated: Option<&str>) -> serde_json::Value {
    let mut cs = serde_json::json!({
        "name": "c", "image": "registry.local/app:1", "imageID": "", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": waiting, "message": "written by the restart test"}}
    });
    if let Some(reason) = last_terminated {
        cs["lastState"] = serde_json::json!({"terminated": {"exitCode": 137, "reason": reason}});
    }
    serde_json::json!({"status": {"phase": "Pending", "containerStatuses": [cs]}})
}

async fn fail(api: &Api<Pod>, name: &str, waiting: &str, last: Option<&str>) {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status(waiting, last)))
        .await
        .unwrap_or_else(|e| panic!("status of {name}: {e}"));
}

#[tokio::test]
async fn apiserver_restart_loses_no_failure() {
    let dir = state_dir("apiserver-restart");
    let cp = ControlPlane::start(&dir);
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Some(cp.apiserver("apiserver-a", port_a));
    let _b = cp.apiserver("apiserver-b", port_b);
    let (client_a, client_b) = (cp.client(port_a).await, cp.client(port_b).await);
    cp.wait_ready(&client_a, "apiserver-a").await;
    cp.wait_ready(&client_b, "apiserver-b").await;

    let ns = "restart";
    let ns_obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client_b.clone()).create(&PostParams::default(), &ns_obj).await.unwrap();
    let pods_b: Api<Pod> = Api::namespaced(client_b.clone(), ns);
    for name in ["p0", "p1", "p2", "p3"] {
        pods_b.create(&PostParams::default(), &pod(name)).await.unwrap();
    }
    let intake = Intake::start(client_a.clone(), vec![ns.into()], &repo_root().join("rules")).await;
    let pod_ref = |n: &str| WorkloadRef::new("Pod", ns, n);

    // Sanity: a failure while A is up.
    fail(&pods_b, "p0", "CrashLoopBackOff", Some("Error")).await;
    intake.wait_incident(Duration::from_secs(30), "for p0", |i| i.workload == pod_ref("p0")).await;

    // A goes away mid-watch; failures happen through B meanwhile.
    drop(a.take());
    fail(&pods_b, "p1", "ErrImagePull", None).await;
    fail(&pods_b, "p2", "CrashLoopBackOff", Some("OOMKilled")).await;
    fail(&pods_b, "p3", "CreateContainerConfigError", None).await;
    pods_b.create(&PostParams::default(), &pod("p4")).await.unwrap();
    fail(&pods_b, "p4", "CrashLoopBackOff", Some("Error")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(intake.incidents().await.len(), 1, "nothing can arrive while A is down");

    // A comes back with the same flags.
    let _a = cp.apiserver("apiserver-a", port_a);
    cp.wait_ready(&client_a, "apiserver-a").await;
    let expect = [
        ("p1", "ImagePullBackOff"),
        ("p2", "OOMKilled"),
        ("p3", "CreateContainerConfigError"),
        ("p4", "CrashLoopBackOff"),
    ];
    for (name, reason) in expect {
        let inc = intake
            .wait_incident(Duration::from_secs(120), &format!("for {name} after the restart"), |i| {
                i.workload == pod_ref(name)
            })
            .await;
        assert_eq!(inc.reason, reason, "{name}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all = intake.incidents().await;
    assert_eq!(all.len(), 5, "exactly one incident per failed pod: {all:#?}\n{}", intake.signal_summary());
    let errors = intake.watch.as_ref().map_or(0, |w| w.stats().errors_total.load(std::sync::atomic::Ordering::Relaxed));
    assert!(errors > 0, "the watchers should have seen the apiserver go away");
    intake.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
