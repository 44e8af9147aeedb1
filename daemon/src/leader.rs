//! Leader election over a `coordination.k8s.io/v1` Lease, so that the
//! watchers and the drift cron run on one replica at a time.
//!
//! The same protocol as client-go's leaderelection: the holder renews the
//! Lease every `renew_interval`; a follower takes over when it has seen the
//! same (holder, renewTime) record for a whole `lease_duration` by its own
//! clock (so clock skew between nodes does not matter), or at once when the
//! holder released the Lease on shutdown. Writes use the resourceVersion as
//! a precondition, so two followers never both win. A leader that cannot
//! renew for `renew_deadline` steps down before its Lease can expire.
//!
//! Failover bound: a leader that shuts down cleanly is replaced within
//! `retry_interval` (default 2 s); one that dies without releasing, within
//! `lease_duration + retry_interval` (default 17 s).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Leader election settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease; default: `POD_NAMESPACE`, else `default`.
    pub lease_namespace: Option<String>,
    /// This replica's identity; default: `POD_NAME`, else host name plus a random suffix.
    pub identity: Option<String>,
    /// Seconds a Lease is valid without renewal.
    pub lease_duration_seconds: u64,
    /// Seconds between renewals by the leader.
    pub renew_interval_seconds: u64,
    /// Seconds after the last successful renewal at which the leader steps down.
    pub renew_deadline_seconds: u64,
    /// Seconds between attempts by followers.
    pub retry_interval_seconds: u64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            lease_name: "kubemedic-leader".into(),
            lease_namespace: None,
            identity: None,
            lease_duration_seconds: 15,
            renew_interval_seconds: 5,
            renew_deadline_seconds: 10,
            retry_interval_seconds: 2,
        }
    }
}

impl LeaderConfig {
    /// The timing must leave a leader time to step down before anyone else may take over.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if c.lease_name.is_empty() {
            return Err("leader_election.lease_name must not be empty".into());
        }
        if c.renew_interval_seconds == 0 || c.retry_interval_seconds == 0 {
            return Err("leader_election intervals must be > 0".into());
        }
        if !(c.renew_interval_seconds < c.renew_deadline_seconds && c.renew_deadline_seconds < c.lease_duration_seconds)
        {
            return Err(
                "leader_election needs renew_interval_seconds < renew_deadline_seconds < lease_duration_seconds".into(),
            );
        }
        Ok(())
    }

    /// Worst-case time until a follower leads after the leader died without releasing.
    pub fn failover_bound(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds + self.retry_interval_seconds)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot read Lease {name}")]
    Get {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write Lease {name}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What a follower last saw in the Lease and when (by its own clock).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: String,
    renew_time: Option<jiff::Timestamp>,
    at: Instant,
}

/// Runs the election for one replica.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    config: LeaderConfig,
    observed: Option<Observed>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector").field("lease", &self.name).field("identity", &self.identity).finish()
    }
}

fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kubemedic".into());
    format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A watch that always says "leader", for the single-replica (embedded) mode.
pub fn always_leader() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    // Keep the sender alive for the life of the process so the receiver never reports closed.
    std::mem::forget(tx);
    rx
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: &LeaderConfig) -> Self {
        let namespace = config
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".into());
        Self {
            api: Api::namespaced(client, &namespace),
            name: config.lease_name.clone(),
            identity: config.identity.clone().unwrap_or_else(default_identity),
            config: config.clone(),
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Start electing in the background. The receiver is `true` while this replica leads;
    /// on cancellation the Lease is released (if held) before the task ends.
    pub fn spawn(self, cancel: CancellationToken) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let span = tracing::info_span!("leader_election", lease = %self.name, identity = %self.identity);
        let handle = tokio::spawn(tracing::Instrument::instrument(self.run(tx, cancel), span));
        (rx, handle)
    }

    /// The election loop; see [`LeaderElector::spawn`].
    pub async fn run(mut self, tx: watch::Sender<bool>, cancel: CancellationToken) {
        let mut last_renew: Option<Instant> = None;
        loop {
            let leading = *tx.borrow();
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renew = Some(Instant::now());
                    if !leading {
                        tracing::info!("became leader");
                    }
                    tx.send_replace(true);
                }
                Ok(false) => {
                    if leading {
                        tracing::warn!("lost the lease to another replica");
                    }
                    tx.send_replace(false);
                }
                Err(err) => {
                    let deadline = Duration::from_secs(self.config.renew_deadline_seconds);
                    if leading && last_renew.is_none_or(|t| t.elapsed() >= deadline) {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot renew lease; stepping down");
                        tx.send_replace(false);
                    } else {
                        tracing::warn!(error = %crate::model::error::error_chain(&err), "lease election attempt failed");
                    }
                }
            }
            let interval =
                if *tx.borrow() { self.config.renew_interval_seconds } else { self.config.retry_interval_seconds };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(interval)) => {}
            }
        }
        if *tx.borrow() {
            // Stop leading before releasing so nothing acts as leader after another replica may.
            tx.send_replace(false);
            match self.release().await {
                Ok(()) => tracing::info!("released the lease"),
                Err(err) => tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot release lease"),
            }
        }
    }

    fn spec(&self, now: jiff::Timestamp, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.config.lease_duration_seconds).unwrap_or(i32::MAX)),
            acquire_time: Some(acquire.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: `Ok(true)` if this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = jiff::Timestamp::now();
        let existing = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| LeaderError::Get { name: self.name.clone(), source })?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(source) => Err(LeaderError::Write { name: self.name.clone(), source }),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = &holder
            && !ours
        {
            let renew_time = spec.renew_time.as_ref().map(|t| t.0);
            let changed = self.observed.as_ref().is_none_or(|o| o.holder != *holder || o.renew_time != renew_time);
            if changed {
                self.observed = Some(Observed { holder: holder.clone(), renew_time, at: Instant::now() });
            }
            let duration = Duration::from_secs(
                spec.lease_duration_seconds
                    .and_then(|d| u64::try_from(d).ok())
                    .unwrap_or(self.config.lease_duration_seconds),
            );
            let observed_at = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if observed_at.elapsed() < duration {
                return Ok(false);
            }
            tracing::info!(previous = %holder, "lease expired; taking over");
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquire = if ours { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(now, acquire, transitions));
        // replace() carries metadata.resourceVersion: a concurrent writer makes this a 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(source) => Err(LeaderError::Write { name: self.name.clone(), source }),
        }
    }

    /// Give the Lease up so a follower takes over at its next attempt.
    async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| LeaderError::Get { name: self.name.clone(), source })?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(source) => Err(LeaderError::Write { name: self.name.clone(), source }),
        }
    }
}

/// Run `task` only while `is_leader` is true: start it with a child token when this replica
/// becomes leader, cancel it (and wait for it) when leadership is lost or on shutdown.
pub async fn while_leader<F, Fut>(mut is_leader: watch::Receiver<bool>, cancel: CancellationToken, mut task: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        // Wait to lead.
        while !*is_leader.borrow_and_update() {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = is_leader.changed() => if changed.is_err() { return },
            }
        }
        let token = cancel.child_token();
        let mut running = tokio::spawn(task(token.clone()));
        let mut finished = false;
        loop {
            tokio::select! {
                _ = &mut running, if !finished => finished = true,
                () = cancel.cancelled() => break,
                changed = is_leader.changed() => {
                    if changed.is_err() || !*is_leader.borrow_and_update() { break }
                }
            }
        }
        // A task that ended on its own is not restarted until leadership changes hands.
        token.cancel();
        if !finished {
            let _ = running.await;
        }
        if cancel.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn config_checks_timing() {
        assert!(LeaderConfig::default().validate().is_ok());
        assert_eq!(LeaderConfig::default().failover_bound(), Duration::from_secs(17));
        let bad = LeaderConfig { renew_deadline_seconds: 20, ..Default::default() };
        assert!(bad.validate().is_err());
    }

    #[tokio::test]
    async fn while_leader_starts_and_stops_the_task() {
        let (tx, rx) = watch::channel(false);
        let cancel = CancellationToken::new();
        let starts = Arc::new(AtomicUsize::new(0));
        let stops = Arc::new(AtomicUsize::new(0));
        let (s1, s2) = (starts.clone(), stops.clone());
        let runner = tokio::spawn(while_leader(rx, cancel.clone(), move |token| {
            let (starts, stops) = (s1.clone(), s2.clone());
            async move {
                starts.fetch_add(1, Ordering::SeqCst);
                token.cancelled().await;
                stops.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let wait_for = |counter: Arc<AtomicUsize>, n: usize| async move {
            for _ in 0..200 {
                if counter.load(Ordering::SeqCst) == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("counter never reached {n}");
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 0, "followers do not run the task");
        tx.send_replace(true);
        wait_for(starts.clone(), 1).await;
        tx.send_replace(false);
        wait_for(stops.clone(), 1).await;
        tx.send_replace(true);
        wait_for(starts.clone(), 2).await;
        cancel.cancel();
        runner.await.unwrap();
        assert_eq!(stops.load(Ordering::SeqCst), 2);
    }
}
