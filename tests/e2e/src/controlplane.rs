//! A control plane of a test's own: etcd and kube-apiservers on free ports (the flags of
//! tests/cluster/up.sh), so a test can kill and restart an apiserver without disturbing the
//! shared one. No controller-manager or scheduler runs: what they would write, the test writes.
//! (The same set-up as tests/intake_apiserver_restart.rs, shared here for the daemon-level test.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the Kubernetes server binaries are (`K8S_BIN`, else the cache tests/cluster/up.sh fills).
pub fn k8s_bin() -> PathBuf {
    std::env::var_os("K8S_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kubemedic/k8s-v1.20.2")
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// etcd of its own plus kube-apiservers started on it.
pub struct ControlPlane {
    dir: PathBuf,
    etcd_port: u16,
    token: String,
    _etcd: Proc,
}

impl ControlPlane {
    /// etcd on free ports, with the keys and token file the apiservers need, under `dir`.
    pub fn start(dir: &Path) -> ControlPlane {
        run(Command::new("openssl").args(["genrsa", "-out"]).arg(dir.join("sa.key")).arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(dir.join("sa.key"))
            .arg("-out")
            .arg(dir.join("sa.pub")));
        let token = format!("restart-{}", crate::unique_name("t"));
        std::fs::write(dir.join("tokens.csv"), format!("{token},admin,admin-uid,system:masters\n")).unwrap();
        let (etcd_port, peer_port) = (crate::daemon::free_port(), crate::daemon::free_port());
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

    /// A kube-apiserver on `port` (same flags as tests/cluster/up.sh); its log is `dir/{name}.log`
    /// and its audit log of every write ([`Self::audit_log`]) `dir/{name}-audit.log`.
    pub fn apiserver(&self, name: &str, port: u16) -> Proc {
        let d = &self.dir;
        let policy = d.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  verbs: [create, update, patch, delete]\n",
        )
        .unwrap();
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
            .arg(format!("--audit-policy-file={}", policy.display()))
            .arg(format!("--audit-log-path={}", d.join(format!("{name}-audit.log")).display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver");
        Proc(child)
    }

    /// The audit events (JSON lines) the apiserver `name` wrote for every write request: who
    /// (`user`, and `impersonatedUser` when a client impersonated), `verb`, `objectRef`.
    pub fn audit_log(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join(format!("{name}-audit.log")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A client of the apiserver on `port`, as the admin token.
    pub async fn client(&self, port: u16) -> Client {
        crate::install_crypto();
        let kc: Kubeconfig = serde_yaml_ng::from_str(&self.kubeconfig(port)).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        Client::try_from(config).unwrap()
    }

    /// A kubeconfig (YAML) for the apiserver on `port`, as the admin token.
    pub fn kubeconfig(&self, port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\n\
             users:\n- name: u\n  user: {{token: \"{}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            self.token
        )
    }

    /// Wait until the apiserver behind `client` serves the `default` namespace.
    pub async fn wait_ready(&self, client: &Client, what: &str) {
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
