//! The log pipeline: every event is one JSON line (formatted once by
//! [`super::json`]), written to stdout by a background thread (see
//! [`super::stdout`]) and, with LOKI_URL, the same line shipped to Loki (see
//! [`super::loki`]). `RUST_LOG` filters both. `log` records (Rocket's,
//! sqlx's) are bridged into tracing.

use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::{json, loki, stdout};
use crate::config::TelemetrySettings;

/// Why logging could not start. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("configuration error: RUST_LOG is invalid")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    #[error("configuration error: LOKI_URL could not be used")]
    Loki(#[source] loki::LokiError),
    #[error("logging could not be initialised: the stdout writer did not start")]
    Stdout(#[source] std::io::Error),
    #[error("logging could not be initialised: a global subscriber is already set")]
    AlreadySet(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber and starts the writers. Returns the
/// handle that flushes both at shutdown. Must run inside a Tokio runtime.
pub async fn init(settings: &TelemetrySettings) -> Result<Logging, LoggingError> {
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(LoggingError::Filter)?;
    let (sink, loki) = match &settings.loki_url {
        Some(url) => {
            let (sink, shipper) = loki::start(settings, url).map_err(LoggingError::Loki)?;
            (Some(sink), Some(shipper))
        }
        None => (None, None),
    };
    let (lines, stdout) = stdout::spawn(sink).map_err(LoggingError::Stdout)?;
    let stdout_layer = tracing_subscriber::fmt::layer()
        .fmt_fields(json::JsonFields)
        .event_format(json::JsonLines)
        .with_writer(lines);
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout_layer)
        .try_init()
        .map_err(LoggingError::AlreadySet)?;
    Ok(Logging { stdout, loki })
}

/// What must be flushed before the process exits.
pub struct Logging {
    stdout: stdout::StdoutFlusher,
    loki: Option<loki::LokiShipper>,
}

impl Logging {
    /// Ships queued events to Loki (within `loki_within`), then writes every
    /// line still queued for stdout.
    pub async fn flush(self, loki_within: Duration) {
        if let Some(loki) = self.loki {
            loki.flush(loki_within).await;
        }
        // Lines are never dropped; this bound only guards against a stdout
        // that no longer drains (a reader that stopped).
        self.stdout.flush(Duration::from_secs(10));
    }
}
