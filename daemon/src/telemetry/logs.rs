//! The log sink: a `MakeWriter` for the fmt layer that holds each formatted
//! event and writes it through the redaction gate in one piece, so a field
//! or message carrying cluster text (an error chain, a log line, a probe's
//! output) cannot put a secret in the daemon's logs.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

/// Wraps a `MakeWriter` (stderr in the daemon).
#[derive(Debug, Clone)]
pub struct Gated<M>(pub M);

/// One event's output, written through the gate when dropped.
pub struct Line<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Gated<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line { buf: Vec::with_capacity(256), inner: self.0.make_writer() }
    }
}

impl<W: Write> Line<W> {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let gated = crate::redact::gate().bytes(&self.buf);
        let result = self.inner.write_all(&gated).and_then(|()| self.inner.flush());
        self.buf.clear();
        result
    }
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing mid-event would cut a secret across two gate passes: wait for the whole event.
        Ok(())
    }
}

impl<W: Write> Drop for Line<W> {
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
}
