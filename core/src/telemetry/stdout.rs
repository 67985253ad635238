//! Log lines to stdout, written off the request path and never dropped,
//! and handed to the Loki shipper too when there is one.
//!
//! Writing each JSON line straight to stdout means one `write(2)` per event
//! under the process-wide stdout lock, taken by whichever Tokio worker logs.
//! Instead, the formatting layer hands each finished line to a bounded
//! channel and one dedicated thread writes them out, many per system call.
//! When the channel is full the logging thread waits for room: a slow stdout
//! slows the service down rather than losing lines, because the access log
//! is the record of every request served.
//!
//! With LOKI_URL, the same finished line (shared bytes, not a copy) also
//! goes to [`super::loki::LokiSink::admit`]: each event is formatted once
//! for both outputs.

use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use super::loki::LokiSink;

/// Lines that may wait for the writer thread before loggers block
/// (a few MiB at most: access lines are ~300 bytes).
pub const CAPACITY: usize = 8 * 1024;
/// Bytes gathered before one write to stdout.
const BATCH_BYTES: usize = 64 * 1024;
/// After writing a batch, the writer lets lines gather this long before it
/// looks again. Without the pause it would fall asleep on an empty channel
/// after nearly every line, and every logging thread would pay a futex wake
/// (a system call and a context switch) to rouse it. A line therefore
/// reaches stdout at most a couple of milliseconds late under load, at once
/// when idle.
const GATHER: Duration = Duration::from_millis(2);

enum Message {
    Line(Bytes),
    /// Answered once every line sent before it has been written and flushed.
    Flush(SyncSender<()>),
}

/// The [`MakeWriter`] given to the formatting layer.
#[derive(Clone)]
pub struct StdoutLines {
    tx: SyncSender<Message>,
    loki: Option<LokiSink>,
}

/// Waits, at shutdown, for queued lines to reach stdout.
pub struct StdoutFlusher {
    tx: SyncSender<Message>,
}

/// Starts the writer thread. Lines also go to `loki` when given.
pub fn spawn(loki: Option<LokiSink>) -> io::Result<(StdoutLines, StdoutFlusher)> {
    let (tx, rx) = mpsc::sync_channel(CAPACITY);
    thread::Builder::new()
        .name("log-stdout".into())
        .spawn(move || write_lines(rx, io::stdout()))?;
    Ok((
        StdoutLines {
            tx: tx.clone(),
            loki,
        },
        StdoutFlusher { tx },
    ))
}

/// Writes lines as they come, batching whatever has queued up meanwhile into
/// one write, and flushing whenever the queue runs dry. A failing stdout
/// (closed pipe) must not stop the draining, or loggers would block forever.
/// While the channel is empty the thread sleeps in `recv`; a burst wakes it
/// once.
fn write_lines(rx: Receiver<Message>, out: impl Write) {
    let mut out = BufWriter::with_capacity(BATCH_BYTES, out);
    let handle = |message: Message, out: &mut BufWriter<_>| match message {
        Message::Line(line) => {
            let _ = out.write_all(&line);
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    while let Ok(first) = rx.recv() {
        handle(first, &mut out);
        while let Ok(next) = rx.try_recv() {
            handle(next, &mut out);
        }
        let _ = out.flush();
        thread::sleep(GATHER);
    }
}

impl StdoutFlusher {
    /// Returns once every line logged before the call is on stdout, or after
    /// `within`.
    pub fn flush(&self, within: Duration) {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            match done_rx.recv_timeout(within) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
                Err(RecvTimeoutError::Timeout) => {
                    eprintln!("log lines still queued for stdout after {within:?}")
                }
            }
        }
    }
}

/// One event's line, sent to the writer thread (and the Loki sink) when the
/// layer drops it.
pub struct LineWriter<'a> {
    tx: &'a SyncSender<Message>,
    /// Where the line goes besides stdout, at which level.
    loki: Option<(&'a LokiSink, Level)>,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for StdoutLines {
    type Writer = LineWriter<'a>;

    /// A writer for stdout only (the formatting layer asks for one per event
    /// through `make_writer_for`).
    fn make_writer(&'a self) -> Self::Writer {
        self.writer(None)
    }

    /// Also for Loki, if the sink takes events like this one.
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let loki = self.loki.as_ref().filter(|sink| sink.takes(meta));
        self.writer(loki.map(|sink| (sink, *meta.level())))
    }
}

impl StdoutLines {
    fn writer<'a>(&'a self, loki: Option<(&'a LokiSink, Level)>) -> LineWriter<'a> {
        LineWriter {
            tx: &self.tx,
            loki,
            line: Vec::new(),
        }
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            let line = Bytes::from(std::mem::take(&mut self.line));
            if let Some((sink, level)) = self.loki {
                sink.admit(level, line.clone());
            }
            // Blocks while the channel is full; fails only if the writer
            // thread is gone, and then there is nowhere left to write.
            let _ = self.tx.send(Message::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose contents the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_even_when_the_channel_is_full() {
        let (tx, rx) = mpsc::sync_channel(4);
        let sink = Shared::default();
        let writer = {
            let sink = sink.clone();
            thread::spawn(move || write_lines(rx, sink))
        };
        let lines = StdoutLines {
            tx: tx.clone(),
            loki: None,
        };
        let loggers: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                thread::spawn(move || {
                    for i in 0..1000 {
                        let mut w = lines.make_writer();
                        writeln!(w, "{t} {i}").unwrap();
                    }
                })
            })
            .collect();
        for l in loggers {
            l.join().unwrap();
        }
        StdoutFlusher { tx: tx.clone() }.flush(Duration::from_secs(10));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>());
        }
        drop((tx, lines));
        writer.join().unwrap();
    }
}
