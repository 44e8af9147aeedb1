//! The log sink: a `MakeWriter` for the fmt layer that holds each formatted
//! event and writes it through the redaction gate in one piece, so a field
//! or message carrying cluster text (an error chain, a log line, a probe's
//! output) cannot put a secret in the daemon's logs.
//!
//! [`hold`] keeps log lines back while a person reads something and answers (the demo's
//! report and its `Apply this change?` prompt): they are written, in order, when the hold
//! ends, instead of landing in the middle of the text.

use std::io::Write;
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

/// Wraps a `MakeWriter` (stderr in the daemon).
#[derive(Debug, Clone)]
pub struct Gated<M>(pub M);

/// One event's output, written through the gate when dropped.
pub struct Line<W: Write + Send + 'static> {
    buf: Vec<u8>,
    inner: Option<W>,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Gated<M>
where
    M::Writer: Send + 'static,
{
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line { buf: Vec::with_capacity(256), inner: Some(self.0.make_writer()) }
    }
}

/// A held line: writes itself when the hold ends.
type Pending = Box<dyn FnOnce() + Send>;

/// Lines held back; `None` when nothing holds them.
static HELD: Mutex<Option<Vec<Pending>>> = Mutex::new(None);

/// More lines than this while held are written at once (a hold must never lose a line,
/// nor grow without bound if something logs in a loop).
const HELD_MAX: usize = 10_000;

fn held() -> std::sync::MutexGuard<'static, Option<Vec<Pending>>> {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// While the returned guard lives, log lines are kept back; dropping it writes them.
/// One hold at a time: a second `hold()` while the first lives returns a guard that
/// does nothing (the first one's end releases everything).
#[must_use = "the hold ends when the guard is dropped"]
pub fn hold() -> Hold {
    let mut h = held();
    let owner = h.is_none();
    if owner {
        *h = Some(Vec::new());
    }
    Hold { owner }
}

/// See [`hold`].
#[derive(Debug)]
pub struct Hold {
    owner: bool,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        // Take the queue first: a line written while the queue drains goes straight out.
        let pending = held().take().unwrap_or_default();
        for write in pending {
            write();
        }
    }
}

fn write_line<W: Write>(inner: &mut W, gated: &[u8]) -> std::io::Result<()> {
    inner.write_all(gated).and_then(|()| inner.flush())
}

impl<W: Write + Send + 'static> Line<W> {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let gated = crate::redact::gate().bytes(&self.buf).into_owned();
        self.buf.clear();
        let Some(mut inner) = self.inner.take() else { return Ok(()) };
        {
            let mut h = held();
            if let Some(queue) = h.as_mut().filter(|q| q.len() < HELD_MAX) {
                queue.push(Box::new(move || {
                    // Nowhere to report a failed log write.
                    let _ = write_line(&mut inner, &gated);
                }));
                return Ok(());
            }
        }
        write_line(&mut inner, &gated)
    }
}

impl<W: Write + Send + 'static> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing mid-event would cut a secret across two gate passes: wait for the whole event.
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for Line<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_pass_the_gate() {
        let canary = "L0g-canary-value-512";
        crate::redact::gate().set_known(crate::redact::Scrubber::new([canary]));
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(Gated(move || sink.clone())).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(message_from_cluster = %format!("exec probe: {canary}"), "probe failed");
            tracing::info!("connecting with password=hunter22 as {canary}");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("probe failed") && text.contains("connecting with"), "{text}");
        assert!(!text.contains(canary), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn held_lines_wait_for_the_end_of_the_hold_in_order() {
        let sink = Sink::default();
        let out = sink.clone();
        let text = move || String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let subscriber = tracing_subscriber::fmt().with_writer(Gated(move || sink.clone())).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("line before");
            let guard = hold();
            tracing::warn!("held one");
            drop(hold()); // a nested hold does not release the first one's lines
            tracing::warn!("held two");
            assert!(text().contains("line before") && !text().contains("held"), "{}", text());
            drop(guard);
            tracing::warn!("line after");
        });
        let all = text();
        let at = |s: &str| all.find(s).unwrap_or_else(|| panic!("{s} missing: {all}"));
        assert!(
            at("line before") < at("held one") && at("held one") < at("held two") && at("held two") < at("line after")
        );
        assert_eq!(all.lines().count(), 4, "{all}");
    }
}
