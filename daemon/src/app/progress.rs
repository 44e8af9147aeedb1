//! Progress for the one-shot commands' long waits (the demo's rollout waits and the
//! verification window): what is awaited and the time left, so a person at the terminal
//! sees that something moves.
//!
//! On a terminal (stderr) a spinner redraws one line in place; anywhere else (a file, a
//! pipe, a CI log) a plain line is written every [`PLAIN_EVERY`], without escape codes.
//! Either way the line goes to stderr: stdout carries the command's own output.

use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the plain (non-terminal) form writes a line.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the spinner's text is refreshed.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// The text of a progress line: `what: detail (12s, up to 48s left)`.
pub fn describe(what: &str, detail: &str, elapsed: Duration, limit: Option<Duration>) -> String {
    // The detail is cluster text (a rollout's state, an apiserver error): it leaves through the gate.
    let detail = crate::redact::gate().text(detail.trim());
    let detail = detail.trim();
    let head = if detail.is_empty() { what.to_owned() } else { format!("{what}: {detail}") };
    let elapsed = elapsed.as_secs();
    match limit {
        Some(limit) => {
            let left = limit.as_secs().saturating_sub(elapsed);
            format!("{head} ({elapsed}s, up to {left}s left)")
        }
        None => format!("{head} ({elapsed}s)"),
    }
}

/// What `detail` said since the wait started (an earlier wait's last word is not news).
struct Detail {
    rx: Option<watch::Receiver<String>>,
    now: String,
}

impl Detail {
    fn new(mut rx: Option<watch::Receiver<String>>) -> Self {
        if let Some(rx) = rx.as_mut() {
            rx.mark_unchanged();
        }
        Self { rx, now: String::new() }
    }

    fn current(&mut self) -> &str {
        if let Some(rx) = self.rx.as_mut()
            && rx.has_changed().unwrap_or(false)
        {
            self.now = rx.borrow_and_update().clone();
        }
        &self.now
    }
}

/// Where the plain form writes (stderr in the product; a buffer in tests).
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// One wait being shown; [`Wait::finish`] (or drop) removes the spinner.
pub struct Wait {
    bar: Option<ProgressBar>,
    ticker: JoinHandle<()>,
}

impl Wait {
    /// Show a wait for `what`, bounded by `limit` if it has one. `detail`, when given,
    /// says at each moment what exactly is awaited (verification's own words).
    pub fn start(what: impl Into<String>, limit: Option<Duration>, detail: Option<watch::Receiver<String>>) -> Self {
        if std::io::stderr().is_terminal() {
            Self::spinner(what.into(), limit, detail)
        } else {
            let sink: Sink = Arc::new(Mutex::new(std::io::stderr()));
            Self::plain(what.into(), limit, detail, sink)
        }
    }

    fn spinner(what: String, limit: Option<Duration>, detail: Option<watch::Receiver<String>>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let started = Instant::now();
        let shown = bar.clone();
        let mut detail = Detail::new(detail);
        let ticker = tokio::spawn(async move {
            loop {
                shown.set_message(describe(&what, detail.current(), started.elapsed(), limit));
                tokio::time::sleep(REDRAW_EVERY).await;
            }
        });
        Self { bar: Some(bar), ticker }
    }

    /// The plain form: a line at once, then one every [`PLAIN_EVERY`].
    pub fn plain(what: String, limit: Option<Duration>, detail: Option<watch::Receiver<String>>, sink: Sink) -> Self {
        let started = Instant::now();
        let mut detail = Detail::new(detail);
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(PLAIN_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let line = describe(&what, detail.current(), started.elapsed(), limit);
                let mut out = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Nowhere to report a failed progress line.
                let _ = writeln!(out, "... {line}").and_then(|()| out.flush());
            }
        });
        Self { bar: None, ticker }
    }

    /// Stop showing the wait: the spinner's line is cleared, so what follows starts on a
    /// clean line.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_is_awaited_and_the_time_left() {
        let s = Duration::from_secs;
        assert_eq!(
            describe("verifying Deployment/web", "stable for 12s of 30s", s(20), Some(s(300))),
            "verifying Deployment/web: stable for 12s of 30s (20s, up to 280s left)"
        );
        assert_eq!(describe("diagnosing", "", s(3), None), "diagnosing (3s)");
        assert_eq!(describe("waiting", " ", s(400), Some(s(300))), "waiting (400s, up to 0s left)");
    }

    #[derive(Default)]
    struct Buf(Vec<u8>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn plain_lines_come_every_five_seconds_with_the_current_detail() {
        let buf = Arc::new(Mutex::new(Buf::default()));
        let sink: Sink = buf.clone();
        let (tx, rx) = watch::channel("stale: from the last verification".to_owned());
        let wait = Wait::plain("verifying Deployment/web".into(), Some(Duration::from_secs(60)), Some(rx), sink);
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send_replace("stable for 3s of 30s".into());
        tokio::time::sleep(Duration::from_secs(11)).await;
        wait.finish();
        tokio::time::sleep(Duration::from_secs(20)).await;
        let text = String::from_utf8(buf.lock().unwrap().0.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "... verifying Deployment/web (0s, up to 60s left)",
                "... verifying Deployment/web: stable for 3s of 30s (5s, up to 55s left)",
                "... verifying Deployment/web: stable for 3s of 30s (10s, up to 50s left)",
            ],
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no escape codes off a terminal: {text:?}");
    }
}
