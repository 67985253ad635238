//! Log shipping to Loki: each event's stdout line, pushed as it is.
//!
//! Every event is formatted once, by [`super::json`]. The stdout writer's
//! [`super::stdout::LineWriter`] hands the finished line to stdout and, with
//! LOKI_URL, to [`LokiSink::admit`] here: the same bytes, shared, not copied
//! or formatted again. Loki gets exactly the JSON object stdout gets.
//!
//! Streams are labelled `app`, `namespace`, `environment` and `level` (low
//! cardinality); the pod's name rides on each entry as structured metadata
//! (`pod`), which Loki 3 stores beside the line without making a stream of
//! it.
//!
//! Nothing here can slow a request or grow memory without bound, whatever
//! Loki does (down, slow, hanging, rejecting):
//!
//! 1. [`LokiSink::admit`] appends the line to a pending list under a short
//!    lock and returns. Beyond [`MAX_PENDING_EVENTS`] it drops the line and
//!    counts it. The batcher task is woken once per batch, not per event.
//! 2. The batcher turns the pending lines into one push body (protobuf
//!    `logproto.PushRequest`, snappy-compressed) every [`BATCH_INTERVAL`], or
//!    sooner once [`WAKE_AT_PENDING`] lines wait, and queues it in the
//!    outbox. The outbox holds at most LOKI_QUEUE_MAX_BYTES (default 4 MiB)
//!    of bodies and drops the oldest beyond that, counted.
//! 3. The forwarder sends one body at a time with a timeout, retries with
//!    backoff while Loki is unavailable, and drops (counted) what Loki
//!    rejects for good.
//!
//! Every line is thus delivered or counted in
//! `kindling_loki_dropped_events_total`; stdout is unaffected either way.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Level;

use crate::config::TelemetrySettings;

/// Lines waiting for the batcher before new ones are dropped (and counted).
/// The batcher normally takes them every [`BATCH_INTERVAL`] or at
/// [`WAKE_AT_PENDING`]; the rest is headroom for a batcher that two busy
/// cores leave waiting. At ~0.3 KiB per access line this bounds the memory
/// at about 2.5 MiB.
const MAX_PENDING_EVENTS: usize = 8192;
/// Lines that wake the batcher before its interval is up. It also sizes the
/// buffers the batcher keeps (see [`Scratch`]): about 0.3 MiB for the
/// protobuf and as much for snappy's output at ~0.3 KiB per line.
const WAKE_AT_PENDING: usize = 1024;
/// How long lines gather into one push once the first one is pending.
const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound on one push to Loki.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Target of the shipper's own events (Loki down, rejected, resumed). They
/// go to stdout only: shipped to a Loki that rejects batches, each
/// rejection's warning would be a new batch to reject, a push loop without
/// end.
const SHIPPER_TARGET: &str = "kindling::loki";

/// Process-wide counters (logging is process-wide), exported as metrics.
#[derive(Default)]
pub struct LokiStats {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub queue_bytes: AtomicU64,
}

pub static LOKI_STATS: LazyLock<LokiStats> = LazyLock::new(LokiStats::default);

/// Loki's push message (`logproto.PushRequest`, pkg/push/push.proto), with
/// only the fields the service sends. Also decoded by the tests' receiver.
pub mod proto {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// The stream's labels in selector syntax: `{app="…",level="info"}`.
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<prost_types::Timestamp>,
        /// A `string` in the .proto; `bytes` has the same encoding and lets
        /// the stdout line be shared instead of copied into a `String`.
        #[prost(bytes = "bytes", tag = "2")]
        pub line: Bytes,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// Why a push body could not be read.
    #[derive(Debug, thiserror::Error)]
    pub enum DecodeError {
        #[error("not snappy (raw block format)")]
        Snappy(#[from] snap::Error),
        #[error("not a logproto.PushRequest")]
        Protobuf(#[from] prost::DecodeError),
    }

    /// A push body: snappy raw (block) format around the protobuf, as Loki
    /// takes it.
    pub fn decode(body: &[u8]) -> Result<PushRequest, DecodeError> {
        let raw = snap::raw::Decoder::new().decompress_vec(body)?;
        Ok(prost::Message::decode(raw.as_slice())?)
    }
}

/// Loki's level label values, in the order of [`level_index`].
const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn level_index(level: Level) -> usize {
    match level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

/// One line waiting for the batcher.
struct Pending {
    level: usize,
    at: SystemTime,
    line: Bytes,
}

#[derive(Default)]
struct PendingList {
    lines: Vec<Pending>,
    /// Set by the final flush: later lines are counted as dropped.
    closed: bool,
}

/// Where the stdout writer hands each line (see module docs). Cheap to clone.
#[derive(Clone)]
pub struct LokiSink(Arc<Sink>);

struct Sink {
    pending: Mutex<PendingList>,
    wake: Notify,
    /// Only the batcher (and the final flush) use it.
    scratch: Mutex<Scratch>,
    /// Each level's stream labels, formatted once.
    labels: [String; 5],
    pod: String,
}

impl LokiSink {
    fn new(settings: &TelemetrySettings) -> Self {
        let labels = LEVELS.map(|level| {
            format!(
                "{{app=\"kindling-api\",environment=\"{}\",level=\"{level}\",namespace=\"{}\"}}",
                label_value(&settings.environment),
                label_value(&settings.namespace),
            )
        });
        LokiSink(Arc::new(Sink {
            pending: Mutex::default(),
            wake: Notify::new(),
            scratch: Mutex::new(Scratch::new()),
            labels,
            pod: settings.pod_name.clone(),
        }))
    }

    fn pending(&self) -> MutexGuard<'_, PendingList> {
        self.0.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether lines of events like this one go to Loki: all but the
    /// shipper's own (see [`SHIPPER_TARGET`]).
    pub fn takes(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() != SHIPPER_TARGET
    }

    /// Queues one finished line (with its trailing newline) for Loki, or
    /// drops and counts it when [`MAX_PENDING_EVENTS`] are already waiting.
    /// Never blocks beyond a short lock.
    pub fn admit(&self, level: Level, line: Bytes) {
        let at = SystemTime::now();
        let mut pending = self.pending();
        if pending.closed || pending.lines.len() >= MAX_PENDING_EVENTS {
            drop(pending);
            LOKI_STATS.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.lines.push(Pending {
            level: level_index(level),
            at,
            line,
        });
        let waiting = pending.lines.len();
        drop(pending);
        // The first line starts a batch; many lines end it early.
        if waiting == 1 || waiting == WAKE_AT_PENDING {
            self.0.wake.notify_one();
        }
    }

    /// Takes every pending line and queues them as one push body.
    fn ship_pending(&self, outbox: &Outbox, close: bool) {
        let mut scratch = self.0.scratch.lock().unwrap_or_else(|p| p.into_inner());
        // Swapped with the spare list, so neither is grown from empty again.
        let mut lines = mem::take(&mut scratch.lines);
        {
            let mut pending = self.pending();
            pending.closed |= close;
            mem::swap(&mut pending.lines, &mut lines);
        }
        if lines.is_empty() {
            scratch.lines = lines;
            return;
        }
        let count = lines.len() as u64;
        let mut per_level = [0; 5];
        for line in &lines {
            per_level[line.level] += 1;
        }
        let mut streams = per_level.map(Vec::with_capacity);
        for Pending {
            level,
            at,
            mut line,
        } in lines.drain(..)
        {
            if line.last() == Some(&b'\n') {
                line.truncate(line.len() - 1);
            }
            streams[level].push(proto::EntryAdapter {
                timestamp: Some(at.into()),
                line,
                structured_metadata: vec![proto::LabelPairAdapter {
                    name: "pod".into(),
                    value: self.0.pod.clone(),
                }],
            });
        }
        let push = proto::PushRequest {
            streams: streams
                .into_iter()
                .zip(&self.0.labels)
                .filter(|(entries, _)| !entries.is_empty())
                .map(|(entries, labels)| proto::StreamAdapter {
                    labels: labels.clone(),
                    entries,
                })
                .collect(),
        };
        scratch.lines = lines;
        match scratch.encode(&push) {
            Some(body) => outbox.enqueue(Batch {
                body,
                entries: count,
            }),
            // Only for a body over snappy's ~4 GiB limit, which the pending
            // bound rules out; counted all the same.
            None => {
                LOKI_STATS.dropped.fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

/// The batcher's lists and buffers, kept from one push to the next. Freed memory goes
/// back to the OS at once (src/allocator.rs), so buffers of a few hundred
/// KiB allocated per push cost a page fault for every 4 KiB touched: about
/// 2,800 faults a second at 10k requests a second, measured with
/// `perf record -e page-faults`.
struct Scratch {
    /// The spare pending list.
    lines: Vec<Pending>,
    protobuf: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

/// Buffers grown beyond this by a burst are released after use.
const SCRATCH_KEEP_BYTES: usize = 1024 * 1024;

impl Scratch {
    fn new() -> Self {
        Scratch {
            lines: Vec::new(),
            protobuf: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// The push body (snappy raw format around the protobuf), or `None`
    /// if it is too large for snappy.
    fn encode(&mut self, push: &proto::PushRequest) -> Option<Bytes> {
        self.protobuf.clear();
        prost::Message::encode(push, &mut self.protobuf).expect("a Vec grows as needed");
        let room = snap::raw::max_compress_len(self.protobuf.len());
        if self.compressed.len() < room {
            self.compressed.resize(room, 0);
        }
        let body = self
            .snappy
            .compress(&self.protobuf, &mut self.compressed)
            .ok()
            .map(|n| Bytes::copy_from_slice(&self.compressed[..n]));
        if self.protobuf.capacity() > SCRATCH_KEEP_BYTES {
            *self = Scratch::new();
        } else if self.lines.capacity() > MAX_PENDING_EVENTS / 2 {
            self.lines = Vec::new();
        }
        body
    }
}

/// A label value inside double quotes, escaped as Loki's selector syntax
/// (and Prometheus's) requires.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Gathers pending lines into push bodies: woken by the first pending line,
/// it waits [`BATCH_INTERVAL`] (or until [`WAKE_AT_PENDING`] lines wait)
/// and ships them all.
async fn batch(sink: LokiSink, outbox: Arc<Outbox>) {
    loop {
        sink.0.wake.notified().await;
        tokio::select! {
            () = tokio::time::sleep(BATCH_INTERVAL) => {}
            () = sink.0.wake.notified() => {}
        }
        sink.ship_pending(&outbox, false);
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

struct Outbox {
    max_bytes: usize,
    backlog: Mutex<Backlog>,
    ready: Notify,
    idle: Notify,
}

impl Outbox {
    fn new(max_bytes: usize) -> Self {
        Outbox {
            max_bytes,
            backlog: Mutex::default(),
            ready: Notify::new(),
            idle: Notify::new(),
        }
    }

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
    #[error("the push URL {0:?} is invalid")]
    Url(String, #[source] reqwest::Error),
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// Handle that flushes queued lines at shutdown.
pub struct LokiShipper {
    sink: LokiSink,
    outbox: Arc<Outbox>,
    batcher: JoinHandle<()>,
    forwarder: JoinHandle<()>,
}

/// Starts the batcher and the forwarder; returns the sink the stdout writer
/// hands lines to, and the handle that flushes them at shutdown. Must be
/// called inside a Tokio runtime.
pub fn start(
    settings: &TelemetrySettings,
    loki_url: &str,
) -> Result<(LokiSink, LokiShipper), LokiError> {
    let push_url = format!("{}/loki/api/v1/push", loki_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(LokiError::Client)?;
    // Checked now, so that a bad LOKI_URL stops the start instead of
    // failing every push.
    let request = client
        .post(&push_url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .build()
        .map_err(|e| LokiError::Url(push_url, e))?;
    let outbox = Arc::new(Outbox::new(settings.loki_queue_max_bytes));
    let sink = LokiSink::new(settings);
    let batcher = tokio::spawn(batch(sink.clone(), outbox.clone()));
    let forwarder = tokio::spawn(forward(client, request, outbox.clone()));
    Ok((
        sink.clone(),
        LokiShipper {
            sink,
            outbox,
            batcher,
            forwarder,
        },
    ))
}

impl LokiShipper {
    /// Ships every line logged so far and waits for Loki to take them,
    /// giving up (and counting the rest as dropped) after `within`. Lines
    /// logged after this call are counted as dropped.
    pub async fn flush(self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.batcher.abort();
        self.sink.ship_pending(&self.outbox, true);
        loop {
            // Created before the check, so a notification in between is not lost.
            let idle = self.outbox.idle.notified();
            if self.outbox.is_empty() || tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.forwarder.abort();
        self.outbox.abandon();
    }
}

/// Sends queued batches to Loki one at a time with a timeout; retries with
/// backoff while Loki is unavailable. Reports state changes once, on stdout.
async fn forward(client: reqwest::Client, request: reqwest::Request, outbox: Arc<Outbox>) {
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    loop {
        let Some(batch) = outbox.take() else {
            outbox.ready.notified().await;
            continue;
        };
        let mut push = request
            .try_clone()
            .expect("a request without a body clones");
        *push.body_mut() = Some(batch.body.clone().into());
        let result = client.execute(push).await;
        match result {
            Ok(res) if res.status().is_success() => {
                LOKI_STATS
                    .delivered
                    .fetch_add(batch.entries, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!(target: SHIPPER_TARGET, "log delivery to Loki resumed");
                }
                backoff = Duration::from_millis(250);
                continue;
            }
            // 4xx other than 429 will not succeed on retry (e.g. rejected labels).
            Ok(res) if res.status().is_client_error() && res.status().as_u16() != 429 => {
                LOKI_STATS
                    .dropped
                    .fetch_add(batch.entries, Ordering::Relaxed);
                tracing::warn!(target: SHIPPER_TARGET, status = res.status().as_u16(), "Loki rejected a batch; dropped");
                continue;
            }
            Ok(res) => {
                if !failing {
                    tracing::warn!(target: SHIPPER_TARGET, status = res.status().as_u16(), "Loki push failed; retrying");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(target: SHIPPER_TARGET, error = %e, "Loki unreachable; queueing (bounded)");
                }
            }
        }
        failing = true;
        outbox.give_back(batch);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(namespace: &str) -> TelemetrySettings {
        TelemetrySettings {
            log_filter: "info".into(),
            loki_url: None,
            loki_queue_max_bytes: 1 << 20,
            environment: "test".into(),
            namespace: namespace.into(),
            pod_name: "pod-7".into(),
        }
    }

    fn line(text: &str) -> Bytes {
        Bytes::from(format!("{text}\n"))
    }

    #[test]
    fn pending_lines_become_one_push_with_a_stream_per_level() {
        let sink = LokiSink::new(&settings("name\"space"));
        let outbox = Outbox::new(1 << 20);
        sink.admit(Level::INFO, line(r#"{"n":1}"#));
        sink.admit(Level::ERROR, line(r#"{"n":2}"#));
        sink.admit(Level::INFO, line(r#"{"n":3}"#));
        sink.ship_pending(&outbox, false);

        let batch = outbox.take().expect("one batch");
        assert_eq!(batch.entries, 3);
        assert!(outbox.take().is_none());
        let push = proto::decode(&batch.body).unwrap();
        let streams: Vec<(&str, Vec<&[u8]>)> = push
            .streams
            .iter()
            .map(|s| (&*s.labels, s.entries.iter().map(|e| &*e.line).collect()))
            .collect();
        assert_eq!(
            streams,
            [
                (
                    r#"{app="kindling-api",environment="test",level="info",namespace="name\"space"}"#,
                    vec![&br#"{"n":1}"#[..], br#"{"n":3}"#]
                ),
                (
                    r#"{app="kindling-api",environment="test",level="error",namespace="name\"space"}"#,
                    vec![&br#"{"n":2}"#[..]]
                ),
            ]
        );
        for entry in push.streams.iter().flat_map(|s| &s.entries) {
            assert!(entry.timestamp.is_some());
            assert_eq!(
                entry.structured_metadata,
                [proto::LabelPairAdapter {
                    name: "pod".into(),
                    value: "pod-7".into()
                }]
            );
        }
    }

    #[test]
    fn lines_beyond_the_bound_or_after_the_final_flush_are_dropped_and_counted() {
        let sink = LokiSink::new(&settings("ns"));
        let outbox = Outbox::new(1 << 30);
        let dropped = || LOKI_STATS.dropped.load(Ordering::Relaxed);
        let before = dropped();
        for _ in 0..=MAX_PENDING_EVENTS {
            sink.admit(Level::INFO, line("{}"));
        }
        assert_eq!(dropped() - before, 1);
        sink.ship_pending(&outbox, true);
        assert_eq!(outbox.take().unwrap().entries, MAX_PENDING_EVENTS as u64);
        sink.admit(Level::WARN, line("{}"));
        assert_eq!(dropped() - before, 2);
        sink.ship_pending(&outbox, false);
        assert!(outbox.take().is_none());
    }
}
