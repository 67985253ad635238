//! The log pipeline, composed from kept parts: every event is one JSON line
//! in tracing-subscriber's own format (`fmt::layer().json()`), written to
//! stdout through tracing-appender's non-blocking writer (bounded, lossy,
//! off the request path) and, with LOKI_URL, the same line handed to the
//! Loki shipper ([`super::loki`]). [`LineTee`] is the one place where a line
//! goes two ways; it is formatted once. `RUST_LOG` filters both. `log`
//! records (Rocket's, sqlx's) are bridged into tracing.
//!
//! A line's shape: `timestamp`, `level`, the event's fields (`message`
//! first), `target`, then `span` (the innermost span's fields and `name`)
//! and `spans` (every enclosing span, outermost first). A request's
//! `request_id`, `method` and `route` are thus on every line logged while
//! serving it, also from a span nested inside the request's.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use tracing::Metadata;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use super::loki;
use crate::config::TelemetrySettings;

/// Lines queued for stdout before new ones are dropped (and counted in
/// `kindling_log_dropped_lines_total`): a stdout that stops draining must
/// not stall requests or grow memory. tracing-appender's default is 128,000
/// lines; at a few hundred bytes a line this holds about 2 MiB, many
/// seconds of the busiest traffic the service has been measured at.
const STDOUT_BUFFERED_LINES: usize = 8192;

/// Why logging could not start. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("configuration error: RUST_LOG is invalid")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    #[error("configuration error: LOKI_URL could not be used")]
    Loki(#[source] loki::LokiError),
    #[error("logging could not be initialised: a global subscriber is already set")]
    AlreadySet(#[source] tracing_subscriber::util::TryInitError),
}

/// tracing-appender's count of lines dropped for a full stdout queue.
static STDOUT_DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped because stdout did not drain (0 before logging starts).
pub fn stdout_dropped_lines() -> u64 {
    STDOUT_DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Installs the global subscriber and starts the writers. Returns the
/// handle that flushes both at shutdown.
pub fn init(settings: &TelemetrySettings) -> Result<Logging, LoggingError> {
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(LoggingError::Filter)?;
    let (loki_sink, loki) = match &settings.loki_url {
        Some(url) => {
            let (sink, shipper) = loki::start(settings, url).map_err(LoggingError::Loki)?;
            (Some(sink), Some(shipper))
        }
        None => (None, None),
    };
    // The writer thread drains every queued line into the buffer, then
    // flushes: one write(2) per burst instead of one per line (stdout alone
    // is line-buffered).
    let (stdout, stdout_guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(STDOUT_BUFFERED_LINES)
        .thread_name("kindling-stdout")
        .finish(io::BufWriter::with_capacity(64 * 1024, io::stdout()));
    STDOUT_DROPPED.get_or_init(|| stdout.error_counter());
    let tee = LineTee {
        stdout,
        loki: loki_sink,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(json_lines(tee))
        .try_init()
        .map_err(LoggingError::AlreadySet)?;
    Ok(Logging { stdout_guard, loki })
}

/// tracing-subscriber's JSON format with the options that give the line's
/// shape (module docs), writing to `writer`.
fn json_lines<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

/// Hands each formatted line to stdout and, unless it is the shipper's own,
/// to Loki.
struct LineTee {
    stdout: NonBlocking,
    loki: Option<loki::LokiSink>,
}

impl<'a> MakeWriter<'a> for LineTee {
    type Writer = TeeLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        TeeLine {
            stdout: self.stdout.clone(),
            loki: None,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let loki = self.loki.as_ref().filter(|sink| sink.takes(meta));
        TeeLine {
            stdout: self.stdout.clone(),
            loki: loki.map(|sink| (sink, *meta.level())),
        }
    }
}

/// One line on its way. tracing-subscriber writes a formatted line in one
/// `write_all`, which `NonBlocking` takes whole.
struct TeeLine<'a> {
    stdout: NonBlocking,
    loki: Option<(&'a loki::LokiSink, tracing::Level)>,
}

impl io::Write for TeeLine<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if let Some((sink, level)) = self.loki {
            sink.admit(level, Bytes::copy_from_slice(line));
        }
        self.stdout.write(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// What must be flushed before the process exits.
pub struct Logging {
    stdout_guard: WorkerGuard,
    loki: Option<loki::LokiShipper>,
}

impl Logging {
    /// Ships queued events to Loki (within `loki_within`), then writes the
    /// lines still queued for stdout: tracing-appender's guard waits up to
    /// about 1 s for its writer thread.
    pub async fn flush(self, loki_within: Duration) {
        if let Some(loki) = self.loki {
            loki.flush(loki_within).await;
        }
        let guard = self.stdout_guard;
        // Dropping the guard blocks while the writer drains.
        let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects the lines written, for the test to read.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_logged_in_a_span_nested_in_a_request_still_carries_the_requests_fields() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(json_lines(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "request",
                request_id = "r-1",
                method = "GET",
                route = "/api/items"
            );
            let _in_request = request.enter();
            let nested = tracing::info_span!("load", table = "items");
            let _in_nested = nested.enter();
            tracing::info!(rows = 3, "loaded");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "loaded");
        assert_eq!(line["rows"], 3);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"]["name"], "load");
        assert_eq!(line["spans"][0]["name"], "request");
        assert_eq!(line["spans"][0]["request_id"], "r-1");
        assert_eq!(line["spans"][0]["method"], "GET");
        assert_eq!(line["spans"][0]["route"], "/api/items");
    }
}
