//! The clustered store: one NATS JetStream KV bucket shared by all replicas.
//!
//! Keys are `incidents.<id>`, `proposals.<id>` and `drift.latest`. The KV
//! revision is the JetStream sequence of the last write to the key, so
//! `kv.update(key, value, revision)` is a compare-and-set across replicas:
//! two replicas that read the same pending proposal and both try to approve
//! it get one success and one `WrongLastRevision`.

use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;

use super::{Store, StoreError, Versioned};
use crate::model::incident::Incident;
use crate::model::proposal::Proposal;

/// Default bucket name.
pub const DEFAULT_BUCKET: &str = "kubemedic";

/// The JetStream KV store.
#[derive(Clone)]
pub struct NatsStore {
    kv: kv::Store,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore").finish_non_exhaustive()
    }
}

fn backend(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context}: {e}"))
}

/// NATS keys allow `[-/_=.a-zA-Z0-9]`; ids are uuids, but refuse anything else clearly.
fn key(prefix: &str, id: &str) -> Result<String, StoreError> {
    let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if !ok {
        return Err(StoreError::Backend(format!("id {id:?} cannot be a NATS KV key")));
    }
    Ok(format!("{prefix}.{id}"))
}

impl NatsStore {
    /// Connect to `url` and open (or create) `bucket`.
    pub async fn connect(url: &str, bucket: &str) -> Result<Self, StoreError> {
        let client = async_nats::connect(url).await.map_err(|e| backend(&format!("cannot connect to {url}"), e))?;
        Self::open(jetstream::new(client), bucket).await
    }

    /// Open (or create) `bucket` on an existing JetStream context (shared with the bus).
    pub async fn open(js: jetstream::Context, bucket: &str) -> Result<Self, StoreError> {
        if let Ok(kv) = js.get_key_value(bucket).await {
            return Ok(Self { kv });
        }
        // The stream a KV bucket is made of, created directly: `create_key_value` first
        // queries the account, whose reply older servers (Debian's 2.9) shape differently.
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("kubemedic incidents, proposals and drift report".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| backend(&format!("cannot create KV bucket {bucket}"), e))?;
        let kv = js.get_key_value(bucket).await.map_err(|e| backend(&format!("cannot open KV bucket {bucket}"), e))?;
        Ok(Self { kv })
    }

    /// Every live entry under `prefix`, sorted by key.
    ///
    /// The key set comes from the stream's subject index (one server-side snapshot), not from
    /// `kv.keys()`: that walks an ordered consumer which, while other tasks write, repeats keys
    /// updated mid-walk and can stop before reaching keys whose only message moved (seen in the
    /// alert-storm test: one incident listed twice, another missing).
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let filter = format!("{}{prefix}.>", self.kv.prefix);
        let mut keys: Vec<String> = self
            .kv
            .stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| backend("cannot list keys", e))?
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .map_err(|e| backend("cannot list keys", e))?;
        keys.sort_unstable();
        keys.dedup();
        let mut out = Vec::with_capacity(keys.len());
        for subject in keys {
            let Some(k) = subject.strip_prefix(self.kv.prefix.as_str()) else { continue };
            if let Some(v) = self.kv.get(k).await.map_err(|e| backend("cannot read key", e))? {
                out.push((k.to_owned(), v));
            }
        }
        Ok(out)
    }
}

impl NatsStore {
    /// The value under `key` with its KV revision (a deleted key reads as absent).
    async fn versioned<T: serde::de::DeserializeOwned>(&self, key: String) -> Result<Option<Versioned<T>>, StoreError> {
        let entry = self.kv.entry(key).await.map_err(|e| backend("cannot read key", e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => Ok(Some(Versioned {
                value: serde_json::from_slice(&e.value).map_err(StoreError::Decode)?,
                revision: e.revision,
            })),
            _ => Ok(None),
        }
    }

    async fn create(&self, what: &'static str, key: String, id: &str, bytes: Vec<u8>) -> Result<u64, StoreError> {
        match self.kv.create(key, bytes.into()).await {
            Ok(rev) => Ok(rev),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists { what, id: id.to_owned() })
            }
            Err(e) => Err(backend(&format!("cannot create {what}"), e)),
        }
    }

    async fn compare_and_set(
        &self,
        what: &'static str,
        key: String,
        id: &str,
        bytes: Vec<u8>,
        expected: u64,
    ) -> Result<u64, StoreError> {
        match self.kv.update(key.as_str(), bytes.into(), expected).await {
            Ok(rev) => Ok(rev),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                if self.versioned::<serde::de::IgnoredAny>(key).await?.is_none() {
                    Err(StoreError::NotFound { what, id: id.to_owned() })
                } else {
                    Err(StoreError::Conflict { what, id: id.to_owned(), expected })
                }
            }
            Err(e) => Err(backend(&format!("cannot update {what}"), e)),
        }
    }
}

#[async_trait]
impl Store for NatsStore {
    async fn create_incident(&self, incident: &Incident) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(incident).map_err(StoreError::Decode)?;
        self.create("incident", key("incidents", &incident.id)?, &incident.id, bytes).await
    }

    async fn get_incident_versioned(&self, id: &str) -> Result<Option<Versioned<Incident>>, StoreError> {
        self.versioned(key("incidents", id)?).await
    }

    async fn update_incident(&self, incident: &Incident, expected: u64) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(incident).map_err(StoreError::Decode)?;
        self.compare_and_set("incident", key("incidents", &incident.id)?, &incident.id, bytes, expected).await
    }

    async fn list_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.list("incidents")
            .await?
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).map_err(StoreError::Decode))
            .collect()
    }

    async fn create_proposal(&self, proposal: &Proposal) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(proposal).map_err(StoreError::Decode)?;
        self.create("proposal", key("proposals", &proposal.id)?, &proposal.id, bytes).await
    }

    async fn get_proposal(&self, id: &str) -> Result<Option<Versioned<Proposal>>, StoreError> {
        self.versioned(key("proposals", id)?).await
    }

    async fn update_proposal(&self, proposal: &Proposal, expected: u64) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(proposal).map_err(StoreError::Decode)?;
        self.compare_and_set("proposal", key("proposals", &proposal.id)?, &proposal.id, bytes, expected).await
    }

    async fn list_proposals(&self) -> Result<Vec<Proposal>, StoreError> {
        self.list("proposals")
            .await?
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).map_err(StoreError::Decode))
            .collect()
    }

    async fn put_drift_report(&self, report: &serde_json::Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(report).map_err(StoreError::Decode)?;
        self.kv.put("drift.latest", bytes.into()).await.map_err(|e| backend("cannot write drift report", e))?;
        Ok(())
    }

    async fn latest_drift_report(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let v = self.kv.get("drift.latest").await.map_err(|e| backend("cannot read drift report", e))?;
        v.map(|b| serde_json::from_slice(&b).map_err(StoreError::Decode)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(key("proposals", "0190-ab_c").unwrap(), "proposals.0190-ab_c");
        assert!(key("proposals", "a.b").is_err());
        assert!(key("proposals", "a b").is_err());
        assert!(key("proposals", "").is_err());
    }
}
