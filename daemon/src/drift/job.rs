//! The scheduled drift report: on the leader only, at each cron tick build
//! the report, store it as the latest one, publish it on the bus and post a
//! summary to chat. A failed run is logged and counted; the next tick runs
//! again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{DriftConfig, DriftError, DriftReport, parse_schedule};
use crate::bus::Bus;
use crate::cluster::Cluster;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Where the drift summary is posted (Slack in the daemon).
#[async_trait]
pub trait DriftNotifier: Send + Sync {
    /// Post `text`; the error is a short reason for the log (never a secret).
    async fn post_drift_summary(&self, text: &str) -> Result<(), String>;
}

/// Everything one drift run needs.
#[derive(Clone)]
pub struct DriftJob {
    pub cluster: Cluster,
    pub config: DriftConfig,
    pub store: Arc<dyn Store>,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    pub notifier: Option<Arc<dyn DriftNotifier>>,
}

/// Objects listed in the chat summary.
const SUMMARY_OBJECTS: usize = 10;

impl DriftJob {
    /// Build, store, publish and announce one report.
    pub async fn run_once(&self) -> Result<DriftReport, DriftError> {
        let report = match super::report(&self.cluster, &self.config).await {
            Ok(r) => r,
            Err(err) => {
                self.metrics.drift_run("error", None);
                return Err(err);
            }
        };
        let json = serde_json::to_value(&report).map_err(DriftError::Encode)?;
        if let Err(err) = self.store.put_drift_report(&json).await {
            self.metrics.drift_run("error", None);
            return Err(DriftError::Store(err));
        }
        self.metrics.drift_run("ok", Some(report.drifted()));
        if let Err(err) = self.bus.publish("drift.report", &json).await {
            tracing::warn!(error = %crate::model::error::error_chain(&err), "cannot publish drift report");
        }
        if let Some(notifier) = &self.notifier {
            let span = crate::telemetry::otel::slack_span("chat.postMessage", "drift");
            let result = tracing::Instrument::instrument(
                notifier.post_drift_summary(&report.summary(SUMMARY_OBJECTS)),
                span.clone(),
            )
            .await;
            match result {
                Ok(()) => crate::telemetry::otel::record_outcome(&span, "ok"),
                Err(reason) => {
                    crate::telemetry::otel::record_outcome(&span, "error");
                    self.metrics.slack_error("drift_summary");
                    tracing::warn!(%reason, "cannot post drift summary");
                }
            }
        }
        tracing::info!(
            checked = report.checked,
            drifted = report.drifted(),
            errors = report.errors.len(),
            "drift report written"
        );
        Ok(report)
    }

    /// Run on the schedule while this replica leads, until `cancel`.
    pub async fn run_scheduled(
        self,
        is_leader: watch::Receiver<bool>,
        cancel: CancellationToken,
    ) -> Result<(), DriftError> {
        if !self.config.enabled {
            return Ok(());
        }
        let schedule = parse_schedule(&self.config.schedule)?;
        let job = Arc::new(self);
        crate::leader::while_leader(is_leader, cancel, move |token| {
            let job = job.clone();
            let schedule = schedule.clone();
            async move { job.tick_loop(&schedule, token).await }
        })
        .await;
        Ok(())
    }

    async fn tick_loop(&self, schedule: &cron::Schedule, cancel: CancellationToken) {
        loop {
            let Some(wait) = until_next(schedule, chrono::Utc::now()) else {
                tracing::warn!(schedule = %self.config.schedule, "drift schedule has no future run");
                return;
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            // A run in flight finishes even if leadership is lost meanwhile: it only reads the cluster.
            let span = tracing::info_span!("drift_run", cluster = %self.cluster.name);
            if let Err(err) = tracing::Instrument::instrument(self.run_once(), span).await {
                tracing::warn!(error = %crate::model::error::error_chain(&err), "drift report failed");
            }
        }
    }
}

/// Time from `now` to the schedule's next tick.
pub fn until_next(schedule: &cron::Schedule, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let next = schedule.after(&now).next()?;
    Some((next - now).to_std().unwrap_or(Duration::ZERO))
}

/// Drift summaries go to the proposals' Slack channel.
#[async_trait]
impl DriftNotifier for crate::slack::SlackClient {
    async fn post_drift_summary(&self, text: &str) -> Result<(), String> {
        self.post_message(text, None, None).await.map(|_| ()).map_err(|e| crate::model::error::error_chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_next_tick() {
        let s = parse_schedule("*/15 * * * *").unwrap();
        let now = "2026-11-25T10:07:30Z".parse().unwrap();
        assert_eq!(until_next(&s, now), Some(Duration::from_secs(7 * 60 + 30)));
    }
}
