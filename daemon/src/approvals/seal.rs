//! Binding an approval to content: a proposal's [`digest`] covers what would
//! change (cluster, target, action with patch type and body), the approver
//! approves that digest, and the decision is sealed with an HMAC under the
//! installation's approval key. Apply recomputes the digest and checks the
//! seal, so a writer to the store (a NATS KV client, a copied redb file) who
//! rewrites a patch after it was shown, or forges an `approved` proposal,
//! gets nothing applied.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};

use sha2::Sha256;

use crate::model::proposal::{KubeIdentity, Proposal};

/// Env var holding the approval key (hex or any string of at least 32 bytes); every replica
/// sharing a store must use the same key.
pub const KEY_ENV: &str = "KUBEMEDIC_APPROVAL_KEY";
/// File under `state_dir` holding a generated key when [`KEY_ENV`] is not set.
pub const KEY_FILE: &str = "approval.key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the approval key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the approval key {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the approval key {path} is {len} bytes, not {KEY_LEN}: delete it to make a new one")]
    Length { path: PathBuf, len: usize },
    #[error("{KEY_ENV} must hold at least {KEY_LEN} bytes")]
    ShortEnv,
}

pub use crate::model::digest::{canonical, digest, short};
pub use crate::model::proposal::ApprovalSeal;

/// The approval key. Its `Debug` does not print it.
#[derive(Clone)]
pub struct ApprovalKey(Vec<u8>);

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalKey(..)")
    }
}

impl ApprovalKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() < KEY_LEN {
            return Err(SealError::ShortEnv);
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A fresh random key (seals verifiable within this process only).
    pub fn random() -> Self {
        let mut key = [0u8; KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).expect("system randomness");
        Self(key.to_vec())
    }

    /// The key for a process without a state directory: [`KEY_ENV`] if set, else one random key
    /// shared by everything in this process.
    pub fn process_default() -> Self {
        static KEY: std::sync::OnceLock<ApprovalKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            match std::env::var(KEY_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Self::from_bytes(v.trim().as_bytes()))
            {
                Some(Ok(k)) => k,
                _ => Self::random(),
            }
        })
        .clone()
    }

    /// [`KEY_ENV`] when set, else `state_dir/approval.key`, created (owner-only) on first use.
    pub fn load(state_dir: &Path) -> Result<Self, SealError> {
        if let Some(v) = std::env::var(KEY_ENV).ok().filter(|v| !v.trim().is_empty()) {
            return Self::from_bytes(v.trim().as_bytes());
        }
        let path = state_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == KEY_LEN => Ok(Self(bytes)),
            Ok(bytes) => Err(SealError::Length { path, len: bytes.len() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                let write = |path: &Path| -> std::io::Result<()> {
                    std::fs::create_dir_all(state_dir)?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let mut file = options.open(path)?;
                    file.write_all(&key.0)?;
                    file.sync_all()
                };
                match write(&path) {
                    Ok(()) => Ok(key),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(state_dir),
                    Err(source) => Err(SealError::Write { path, source }),
                }
            }
            Err(source) => Err(SealError::Read { path, source }),
        }
    }

    fn hmac(
        &self,
        id: &str,
        digest: &str,
        approver: &str,
        decided_at: &str,
        kube: Option<&KubeIdentity>,
    ) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        // Length-prefixed fields: no two tuples encode alike. A Kubernetes identity (who the
        // change is sent as) is sealed too, so a store writer cannot add a group.
        let mut fields = vec![id, digest, approver, decided_at];
        if let Some(k) = kube {
            fields.push("kube/v1");
            fields.push(&k.user);
            fields.extend(k.groups.iter().map(String::as_str));
        }
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// Seal an approval of proposal `id` at `digest`.
    pub fn seal(&self, id: &str, digest: &str, approver: &str, decided_at: &str, via: &str) -> ApprovalSeal {
        self.seal_as(id, digest, approver, decided_at, via, None)
    }

    /// [`Self::seal`], with the Kubernetes identity the change is to be sent as.
    pub fn seal_as(
        &self,
        id: &str,
        digest: &str,
        approver: &str,
        decided_at: &str,
        via: &str,
        kube: Option<KubeIdentity>,
    ) -> ApprovalSeal {
        let mac = hex::encode(self.hmac(id, digest, approver, decided_at, kube.as_ref()).finalize().into_bytes());
        ApprovalSeal {
            approver: approver.to_owned(),
            digest: digest.to_owned(),
            decided_at: decided_at.to_owned(),
            via: via.to_owned(),
            mac,
            kube_identity: kube,
        }
    }

    /// The origin seal of a proposal kubemedic offers: an HMAC over its id, its content digest
    /// and a hash of everything a person is shown or a rule relies on (diff, rationale, risk,
    /// requester, approver list, drafter, expiry). Set when the proposal is stored; a writer to
    /// the store without the key cannot offer a change of their own, rewrite what the card,
    /// the CLI or MCP shows, or extend a proposal's life.
    pub fn origin(&self, p: &Proposal) -> String {
        let d = digest(p);
        let shown = shown_hash(p);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        for field in ["origin/v1", p.id.as_str(), d.as_str(), shown.as_str()] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Why `p` is not a proposal kubemedic offered as it is stored, if it is not.
    pub fn check_origin(&self, p: &Proposal) -> Result<(), String> {
        let Some(tag) = p.origin.as_deref() else {
            return Err("the proposal carries no origin seal (not offered by this kubemedic)".into());
        };
        let want = self.origin(p);
        // Both are hex of a fixed length; compare without an early exit.
        let same = tag.len() == want.len() && tag.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err("the stored proposal is not what kubemedic offered (its origin seal does not verify)".into())
        }
    }

    /// Why `p` may not be applied, if it may not: no seal, a seal that does not verify, a seal
    /// for another digest, or content that no longer hashes to the approved digest.
    pub fn check(&self, p: &Proposal) -> Result<(), String> {
        let Some(seal) = &p.approval else {
            return Err("the proposal carries no sealed approval (not approved through kubemedic)".into());
        };
        let ok = hex::decode(&seal.mac).is_ok_and(|tag| {
            self.hmac(&p.id, &seal.digest, &seal.approver, &seal.decided_at, seal.kube_identity.as_ref())
                .verify_slice(&tag)
                .is_ok()
        });
        if !ok {
            return Err("the approval seal does not verify (forged or written with another approval key)".into());
        }
        if p.decided_by().is_some_and(|by| by != seal.approver) {
            return Err("the approval seal names another approver than the recorded decision".into());
        }
        let now = digest(p);
        if now != seal.digest {
            return Err(format!(
                "digest mismatch: approved {} but the stored change hashes to {now} (changed after approval)",
                short(&seal.digest)
            ));
        }
        Ok(())
    }
}

/// SHA-256 of the canonical encoding of what people are shown about a proposal.
fn shown_hash(p: &Proposal) -> String {
    use sha2::Digest as _;
    let shown = serde_json::json!({
        "diff": p.diff,
        "rationale": p.rationale,
        "risk": p.risk,
        "requested_by": p.requested_by,
        "approvers": p.approvers,
        "drafter": p.drafter,
        "expires_at": p.expires_at.to_string(),
    });
    hex::encode(Sha256::digest(canonical(&shown).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proposal::{Action, PatchType, ProposalEvent, TargetRef};
    use serde_json::Value;
    use serde_json::json;

    fn proposal(body: Value) -> Proposal {
        let target = TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "api".into(),
            resource_version: Some("7".into()),
            generation: None,
            content_digest: None,
        };
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        Proposal::new(
            "local",
            target,
            Action::Patch { patch_type: PatchType::Strategic, body },
            now,
            jiff::SignedDuration::from_secs(60),
        )
    }

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":2,"x":1}],"c":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":"s","d":[{"x":1,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":{"c":"s","d":[{"x":1,"y":2}]},"b":1}"#);
        // Array order is content.
        assert_ne!(canonical(&json!([1, 2])), canonical(&json!([2, 1])));
        // Strings are escaped, so a key cannot smuggle structure.
        assert_eq!(canonical(&json!({"a\":1,\"b": 2})), r#"{"a\":1,\"b":2}"#);
    }

    #[test]
    fn digest_covers_target_and_action_but_not_the_resource_version() {
        let p = proposal(json!({"spec": {"replicas": 2}}));
        let d = digest(&p);
        assert_eq!(d.len(), 64);
        assert!(d.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut repinned = p.clone();
        repinned.target.resource_version = Some("8".into());
        assert_eq!(digest(&repinned), d, "resourceVersion is checked by the precondition, not the digest");
        let mut other = p.clone();
        other.action = Action::Patch { patch_type: PatchType::Strategic, body: json!({"spec": {"replicas": 3}}) };
        assert_ne!(digest(&other), d, "the body");
        let mut other = p.clone();
        other.action = Action::Patch { patch_type: PatchType::Merge, body: json!({"spec": {"replicas": 2}}) };
        assert_ne!(digest(&other), d, "the patch type");
        let mut other = p.clone();
        other.target.name = "web".into();
        assert_ne!(digest(&other), d, "the target");
        let mut other = p.clone();
        other.target.namespace = "kube-system".into();
        assert_ne!(digest(&other), d, "the namespace");
        let mut other = p.clone();
        other.cluster = "prod".into();
        assert_ne!(digest(&other), d, "the cluster");
        let mut other = p.clone();
        other.action = Action::Delete;
        assert_ne!(digest(&other), d, "the action kind");
        // Key order of the body does not matter.
        let reordered = proposal(serde_json::from_str(r#"{"spec":{"replicas":2}}"#).unwrap());
        assert_eq!(digest(&reordered), d);
    }

    #[test]
    fn the_origin_seal_covers_what_people_are_shown() {
        let key = ApprovalKey::random();
        let mut p = proposal(json!({"spec": {"replicas": 2}}));
        p.diff = "-replicas: 1\n+replicas: 2".into();
        p.origin = Some(key.origin(&p));
        key.check_origin(&p).unwrap();
        type Tamper = (&'static str, fn(&mut Proposal));
        let tampered: [Tamper; 6] = [
            ("the diff", |p| p.diff = "+ nothing to see".into()),
            ("the action", |p| p.action = Action::Delete),
            ("the expiry", |p| p.expires_at = p.expires_at.checked_add(jiff::SignedDuration::from_hours(24)).unwrap()),
            ("the approvers", |p| p.approvers = vec!["mallory".into()]),
            ("the requester", |p| p.requested_by = "rule:trusted".into()),
            ("the rationale", |p| p.rationale = "harmless".into()),
        ];
        for (what, change) in tampered {
            let mut q = p.clone();
            change(&mut q);
            assert!(key.check_origin(&q).is_err(), "{what} is covered");
        }
        // The state machine moving on does not touch it, nor a re-pinned resourceVersion.
        let mut moved = p.clone();
        moved.transition(&ProposalEvent::Offer, "kubemedic", jiff::Timestamp::now()).unwrap();
        moved.target.resource_version = Some("9".into());
        key.check_origin(&moved).unwrap();
        // Another installation's key, or none at all: refused.
        assert!(ApprovalKey::random().check_origin(&p).is_err());
        assert!(key.check_origin(&Proposal { origin: None, ..p }).is_err());
    }

    fn approved(key: &ApprovalKey, p: &mut Proposal, by: &str) {
        p.transition(&ProposalEvent::Offer, "kubemedic", jiff::Timestamp::now()).unwrap();
        p.transition(&ProposalEvent::Approve { by: by.into() }, by, jiff::Timestamp::now()).unwrap();
        let d = digest(p);
        p.approval = Some(key.seal(&p.id, &d, by, "2026-12-04T09:00:00Z", "http"));
    }

    #[test]
    fn a_seal_verifies_only_for_its_key_content_and_approver() {
        let key = ApprovalKey::random();
        let mut p = proposal(json!({"spec": {"replicas": 2}}));
        approved(&key, &mut p, "alice");
        key.check(&p).unwrap();

        let mut unsealed = p.clone();
        unsealed.approval = None;
        assert!(key.check(&unsealed).unwrap_err().contains("no sealed approval"));

        let other_key = ApprovalKey::random();
        assert!(other_key.check(&p).unwrap_err().contains("does not verify"));

        let mut rewritten = p.clone();
        rewritten.action = Action::Patch { patch_type: PatchType::Strategic, body: json!({"spec": {"replicas": 20}}) };
        assert!(key.check(&rewritten).unwrap_err().contains("digest mismatch"));

        let mut rewritten_both = rewritten.clone();
        let seal = rewritten_both.approval.as_mut().unwrap();
        seal.digest = digest(&rewritten);
        assert!(key.check(&rewritten_both).unwrap_err().contains("does not verify"), "digest is under the MAC");

        let mut other_approver = p.clone();
        other_approver.approval.as_mut().unwrap().approver = "mallory".into();
        assert!(key.check(&other_approver).is_err());

        let mut moved = p.clone();
        moved.id = "another-id".into();
        assert!(key.check(&moved).unwrap_err().contains("does not verify"), "the id is under the MAC");
        assert_eq!(format!("{key:?}"), "ApprovalKey(..)");
    }

    #[test]
    fn the_kubernetes_identity_a_change_is_sent_as_is_sealed() {
        let key = ApprovalKey::random();
        let mut p = proposal(json!({"spec": {"replicas": 2}}));
        approved(&key, &mut p, "bob");
        let d = p.approval.as_ref().unwrap().digest.clone();
        let bob = KubeIdentity { user: "bob".into(), groups: vec!["sre".into()] };
        p.approval = Some(key.seal_as(&p.id, &d, "bob", "2026-12-04T09:00:00Z", "mcp", Some(bob)));
        key.check(&p).unwrap();
        // A writer to the store escalates: another group, another user, or the identity removed.
        for tamper in [
            |k: &mut Option<KubeIdentity>| k.as_mut().unwrap().groups.push("system:masters".into()),
            |k: &mut Option<KubeIdentity>| k.as_mut().unwrap().user = "admin".into(),
            |k: &mut Option<KubeIdentity>| *k = None,
        ] {
            let mut forged = p.clone();
            tamper(&mut forged.approval.as_mut().unwrap().kube_identity);
            assert!(key.check(&forged).unwrap_err().contains("does not verify"), "{:?}", forged.approval);
        }
    }

    #[test]
    fn the_key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        // The env var would win; this test needs the file.
        if std::env::var(KEY_ENV).is_ok() {
            return;
        }
        let a = ApprovalKey::load(dir.path()).unwrap();
        let b = ApprovalKey::load(dir.path()).unwrap();
        assert_eq!(a.seal("i", "d", "u", "t", "v"), b.seal("i", "d", "u", "t", "v"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(ApprovalKey::load(dir.path()).unwrap_err().to_string().contains("5 bytes"));
        assert!(ApprovalKey::from_bytes(b"short").is_err());
    }
}
