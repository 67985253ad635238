//! Log shipping to Loki with tracing-loki, bounded so that a Loki that is
//! down, slow or hanging can never slow a request or grow memory.
//!
//! tracing-loki 0.2.7 has three unbounded behaviours: its 512-slot event
//! channel drops silently when full, its send queue has no limit, and its
//! HTTP client has no timeout, so a Loki that accepts connections and never
//! answers makes the queue grow forever. We keep tracing-loki for what it
//! does well (labels, per-level streams, protobuf + snappy encoding) and put
//! two bounds around it:
//!
//! 1. [`BoundedLayer`] admits an event into tracing-loki only while fewer
//!    than [`MAX_UNACKED_EVENTS`] admitted events are still unaccounted for;
//!    otherwise it drops the event and counts it. tracing-loki's channel and
//!    queue therefore never hold more than that many events, and its channel
//!    never overflows silently.
//! 2. tracing-loki pushes to a relay on 127.0.0.1 inside this process (an
//!    HTTP/1.1 server on hyper), which answers at once, keeps at most
//!    LOKI_QUEUE_MAX_BYTES (default 4 MiB) of compressed batches (dropping
//!    the oldest, counted) and forwards them to the real Loki with a request
//!    timeout and backoff.
//!
//! Every event is thus delivered or counted in
//! `kindling_loki_dropped_events_total`; stdout logging is unaffected.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Event, Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetrySettings;

/// Events admitted to tracing-loki but not yet handed to the relay. Sized
/// for bursts: at several thousand requests a second on a busy 2-core
/// machine, tracing-loki's push round trip can stall for a few hundred
/// milliseconds, and a window of 400 then dropped events (bench/run.sh
/// checks that none are). At ~0.5 KiB per queued event this bounds the
/// memory at about 2 MiB.
pub const MAX_UNACKED_EVENTS: u64 = 4096;
/// Largest push body the relay accepts from tracing-loki.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Largest request head (request line and headers) the relay reads.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Upper bound on one push to the real Loki.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one push from tracing-loki per this interval (see `serve_pushes`).
const PUSH_PACING: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Target of the relay's own events (Loki down, rejected, resumed). They go
/// to stdout only: shipped to a Loki that rejects batches, each rejection's
/// warning would be a new batch to reject, a push loop without end.
const RELAY_TARGET: &str = "kindling::loki";

/// Process-wide counters (logging is process-wide), exported as metrics.
#[derive(Default)]
pub struct LokiStats {
    /// Events admitted into tracing-loki.
    pub admitted: AtomicU64,
    /// Events the relay has received from tracing-loki.
    pub relayed: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub queue_bytes: AtomicU64,
}

pub static LOKI_STATS: LazyLock<LokiStats> = LazyLock::new(LokiStats::default);

/// Loki's `logproto.PushRequest` (pkg/push/push.proto), decoded only to count
/// entries per batch. Also used by the tests' receiver.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<prost_types::Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }

    /// Why a push body could not be read.
    #[derive(Debug, thiserror::Error)]
    pub enum DecodeError {
        #[error("not snappy (raw block format)")]
        Snappy(#[from] snap::Error),
        #[error("not a logproto.PushRequest")]
        Protobuf(#[from] prost::DecodeError),
    }

    /// Decodes a push body: snappy raw (block) format around the protobuf.
    pub fn decode(body: &[u8]) -> Result<PushRequest, DecodeError> {
        decode_as(body)
    }

    /// Snappy raw (block) format around a protobuf message `M`.
    fn decode_as<M: prost::Message + Default>(body: &[u8]) -> Result<M, DecodeError> {
        let raw = snap::raw::Decoder::new().decompress_vec(body)?;
        Ok(M::decode(raw.as_slice())?)
    }

    /// The same message with only what counting needs: entries decode as
    /// empty messages, so their lines and labels are skipped, not copied.
    #[derive(Clone, PartialEq, prost::Message)]
    struct PushCount {
        #[prost(message, repeated, tag = "1")]
        streams: Vec<StreamCount>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct StreamCount {
        #[prost(message, repeated, tag = "2")]
        entries: Vec<Skipped>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Skipped {}

    /// The number of entries in a push body.
    pub fn count_entries(body: &[u8]) -> Result<u64, DecodeError> {
        let push: PushCount = decode_as(body)?;
        Ok(push.streams.iter().map(|s| s.entries.len() as u64).sum())
    }
}

/// Admission control in front of tracing-loki's layer (see module docs).
pub struct BoundedLayer<L> {
    inner: L,
}

impl<S, L> Layer<S> for BoundedLayer<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(id, values, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() == RELAY_TARGET {
            return;
        }
        let stats = &*LOKI_STATS;
        let unacked = stats
            .admitted
            .load(Ordering::Relaxed)
            .saturating_sub(stats.relayed.load(Ordering::Relaxed));
        if unacked >= MAX_UNACKED_EVENTS {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        stats.admitted.fetch_add(1, Ordering::Relaxed);
        self.inner.on_event(event, ctx);
    }
}

/// A compressed push body waiting for Loki (`Bytes`: retries send it again
/// without copying).
struct Batch {
    body: Bytes,
    entries: u64,
}

/// Batches waiting for Loki, their total size, and whether the forwarder
/// holds one outside the queue. Guarded by one lock, so the three agree.
#[derive(Default)]
struct Backlog {
    batches: VecDeque<Batch>,
    bytes: usize,
    sending: bool,
}

struct Relay {
    max_bytes: usize,
    backlog: Mutex<Backlog>,
    ready: Notify,
    idle: Notify,
}

impl Relay {
    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(backlog: &Backlog) {
        LOKI_STATS
            .queue_bytes
            .store(backlog.bytes as u64, Ordering::Relaxed);
    }

    /// Queues a batch, dropping (and counting) the oldest beyond the bound.
    fn enqueue(&self, batch: Batch) {
        let mut backlog = self.backlog();
        backlog.bytes += batch.body.len();
        backlog.batches.push_back(batch);
        while backlog.bytes > self.max_bytes {
            let Some(oldest) = backlog.batches.pop_front() else {
                break;
            };
            backlog.bytes -= oldest.body.len();
            LOKI_STATS
                .dropped
                .fetch_add(oldest.entries, Ordering::Relaxed);
        }
        Self::publish(&backlog);
        drop(backlog);
        self.ready.notify_one();
    }

    /// The next batch to send; `None` means the forwarder is idle.
    fn take(&self) -> Option<Batch> {
        let mut backlog = self.backlog();
        let batch = backlog.batches.pop_front();
        if let Some(b) = &batch {
            backlog.bytes -= b.body.len();
        }
        backlog.sending = batch.is_some();
        Self::publish(&backlog);
        if batch.is_none() {
            self.idle.notify_waiters();
        }
        batch
    }

    /// Puts a batch that failed back at the front, unless that would
    /// exceed the bound, in which case it is dropped and counted.
    fn give_back(&self, batch: Batch) {
        let mut backlog = self.backlog();
        if backlog.bytes + batch.body.len() > self.max_bytes {
            LOKI_STATS
                .dropped
                .fetch_add(batch.entries, Ordering::Relaxed);
        } else {
            backlog.bytes += batch.body.len();
            backlog.batches.push_front(batch);
        }
        Self::publish(&backlog);
    }

    fn is_empty(&self) -> bool {
        let backlog = self.backlog();
        backlog.batches.is_empty() && !backlog.sending
    }

    /// Counts everything still queued as dropped (at shutdown).
    fn abandon(&self) {
        let mut backlog = self.backlog();
        let lost: u64 = backlog.batches.drain(..).map(|b| b.entries).sum();
        LOKI_STATS.dropped.fetch_add(lost, Ordering::Relaxed);
        backlog.bytes = 0;
        Self::publish(&backlog);
    }
}

/// Why log shipping could not start.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    #[error("the in-process relay could not listen on 127.0.0.1")]
    Relay(#[source] std::io::Error),
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("tracing-loki refused the relay's URL or a label")]
    Layer(#[source] tracing_loki::Error),
    #[error("the relay's URL is invalid")]
    Url(#[source] tracing_loki::url::ParseError),
}

/// Handle that flushes queued events at shutdown.
pub struct LokiShipper {
    controller: tracing_loki::BackgroundTaskController,
    background: JoinHandle<()>,
    relay: Arc<Relay>,
    forwarder: JoinHandle<()>,
}

/// Builds the layer and starts the relay and tracing-loki's background task.
/// Must be called inside a Tokio runtime.
pub async fn start(
    settings: &TelemetrySettings,
    loki_url: &str,
) -> Result<(BoundedLayer<tracing_loki::Layer>, LokiShipper), LokiError> {
    let push_url = format!("{}/loki/api/v1/push", loki_url.trim_end_matches('/'));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LokiError::Relay)?;
    let relay_addr = listener.local_addr().map_err(LokiError::Relay)?;
    let relay = Arc::new(Relay {
        max_bytes: settings.loki_queue_max_bytes,
        backlog: Mutex::default(),
        ready: Notify::new(),
        idle: Notify::new(),
    });
    tokio::spawn(accept(listener, relay.clone()));
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(LokiError::Client)?;
    let forwarder = tokio::spawn(forward(client, push_url, relay.clone()));

    let url =
        tracing_loki::url::Url::parse(&format!("http://{relay_addr}/")).map_err(LokiError::Url)?;
    let (layer, controller, background) = tracing_loki::builder()
        .label("app", "kindling-api")
        .and_then(|b| b.label("namespace", &settings.namespace))
        .and_then(|b| b.label("environment", &settings.environment))
        .and_then(|b| b.extra_field("pod", settings.pod_name.clone()))
        .and_then(|b| b.build_controller_url(url))
        .map_err(LokiError::Layer)?;
    let background = tokio::spawn(background);
    Ok((
        BoundedLayer { inner: layer },
        LokiShipper {
            controller,
            background,
            relay,
            forwarder,
        },
    ))
}

impl LokiShipper {
    /// Flushes tracing-loki into the relay and the relay into Loki, giving
    /// up (and counting the rest as dropped) after `within`.
    pub async fn flush(self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.controller.shutdown().await;
        let _ = tokio::time::timeout_at(deadline, self.background).await;
        loop {
            // Created before the check, so a notification in between is not lost.
            let idle = self.relay.idle.notified();
            if self.relay.is_empty() || tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.forwarder.abort();
        self.relay.abandon();
    }
}

/// The relay's HTTP side: hyper's HTTP/1.1 server, keep-alive, for
/// tracing-loki's POSTs only.
async fn accept(listener: TcpListener, relay: Arc<Relay>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let relay = relay.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| receive_push(req, relay.clone()));
            let _ = http1::Builder::new()
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Queues one push body and answers 204 (400 if it is not a push body,
/// 413 if it is larger than [`MAX_BODY_BYTES`]).
async fn receive_push(
    req: hyper::Request<Incoming>,
    relay: Arc<Relay>,
) -> Result<hyper::Response<Empty<Bytes>>, std::convert::Infallible> {
    let answer = |status: StatusCode| {
        let mut res = hyper::Response::new(Empty::new());
        *res.status_mut() = status;
        Ok(res)
    };
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return answer(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => return answer(StatusCode::BAD_REQUEST),
    };
    let Ok(entries) = proto::count_entries(&body) else {
        return answer(StatusCode::BAD_REQUEST);
    };
    LOKI_STATS.relayed.fetch_add(entries, Ordering::Relaxed);
    relay.enqueue(Batch { body, entries });
    // Pacing: tracing-loki pushes again as soon as a push is answered, which
    // under load means a push (and a forward to Loki) every few events.
    // Holding the answer lets events gather into larger batches; the
    // admission window above is already released.
    tokio::time::sleep(PUSH_PACING).await;
    answer(StatusCode::NO_CONTENT)
}

/// Sends queued batches to Loki one at a time with a timeout; retries with
/// backoff while Loki is unavailable. Reports state changes once, on stdout.
async fn forward(client: reqwest::Client, push_url: String, relay: Arc<Relay>) {
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    loop {
        let Some(batch) = relay.take() else {
            relay.ready.notified().await;
            continue;
        };
        let result = client
            .post(&push_url)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .body(batch.body.clone())
            .send()
            .await;
        match result {
            Ok(res) if res.status().is_success() => {
                LOKI_STATS
                    .delivered
                    .fetch_add(batch.entries, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!(target: RELAY_TARGET, "log delivery to Loki resumed");
                }
                backoff = Duration::from_millis(250);
                continue;
            }
            // 4xx other than 429 will not succeed on retry (e.g. rejected labels).
            Ok(res) if res.status().is_client_error() && res.status().as_u16() != 429 => {
                LOKI_STATS
                    .dropped
                    .fetch_add(batch.entries, Ordering::Relaxed);
                tracing::warn!(target: RELAY_TARGET, status = res.status().as_u16(), "Loki rejected a batch; dropped");
                continue;
            }
            Ok(res) => {
                if !failing {
                    tracing::warn!(target: RELAY_TARGET, status = res.status().as_u16(), "Loki push failed; retrying");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(target: RELAY_TARGET, error = %e, "Loki unreachable; queueing (bounded)");
                }
            }
        }
        failing = true;
        relay.give_back(batch);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
