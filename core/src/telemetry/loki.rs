//! Log shipping to Loki: each event's stdout line, pushed as it is.
//!
//! Every event is formatted once, by tracing-subscriber's JSON format;
//! `logging::LineTee` hands the finished line to stdout and, with LOKI_URL,
//! to [`LokiSink::admit`] here. Loki gets exactly the JSON object stdout
//! gets.
//!
//! Why not tracing-loki (README, "Why not tracing-loki"): it has no push
//! timeout, an unbounded backlog, a channel that drops silently and no
//! structured metadata. This shipper is bounded, counted and timed:
//!
//! 1. [`LokiSink::admit`] appends the line to a pending list under a short
//!    lock and returns. Beyond [`MAX_PENDING_BYTES`] it drops the line and
//!    counts it. The batcher is woken once per batch, not per event.
//! 2. The batcher turns the pending lines into one push body (protobuf
//!    `logproto.PushRequest`, snappy-compressed) every [`BATCH_INTERVAL`], or
//!    sooner once [`WAKE_AT_PENDING`] lines wait, and queues it in the
//!    outbox, which holds at most LOKI_QUEUE_MAX_BYTES (default 4 MiB) of
//!    bodies and drops the oldest beyond that, counted.
//! 3. The forwarder sends one body at a time with a timeout, retries with
//!    growing, capped backoff while Loki is unavailable or rate-limits (429),
//!    and counts what Loki rejects for good (400) as Loki counts it.
//!
//! The batcher and the forwarder run on a thread of their own. Events logged
//! on it (the shipper's warnings, and the debug lines of its HTTP client:
//! hyper, reqwest, rustls) go to stdout only, whatever RUST_LOG says: shipped,
//! each push would log lines for the next one, a push loop without end.
//!
//! Streams are labelled `app`, `namespace`, `environment` and `level` (low
//! cardinality); the pod's name rides on each entry as structured metadata
//! (`pod`). Every line is delivered or counted in
//! `kindling_loki_dropped_events_total`; stdout is unaffected either way.

use std::cell::Cell;
use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::Level;

use crate::config::TelemetrySettings;

/// Bytes of lines waiting for the batcher before new ones are dropped (and
/// counted). The batcher normally takes them every [`BATCH_INTERVAL`] or at
/// [`WAKE_AT_PENDING`] lines; the rest is headroom for a batcher that two
/// busy cores leave waiting. Bytes, not lines: one event with a 1 MiB field
/// is a 1 MiB line.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Lines that wake the batcher before its interval is up. It also sizes the
/// buffers the batcher keeps (see [`Scratch`]): about 0.3 MiB for the
/// protobuf and as much for snappy's output at ~0.3 KiB per line.
const WAKE_AT_PENDING: usize = 1024;
/// How long lines gather into one push once the first one is pending.
const BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound on one push to Loki.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Loki's reason for a rejection is logged at most this often.
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Target of the shipper's own events (Loki down, rejected, resumed).
const SHIPPER_TARGET: &str = "kindling::loki";

thread_local! {
    /// Set on the shipper's threads: events logged there are not shipped.
    static ON_SHIPPER_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn mark_shipper_thread() {
    ON_SHIPPER_THREAD.with(|on| on.set(true));
}

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
    bytes: usize,
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
    /// shipper's own, logged on its thread (see the module docs).
    pub fn takes(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() != SHIPPER_TARGET && !ON_SHIPPER_THREAD.with(Cell::get)
    }

    /// Queues one finished line (with its trailing newline) for Loki, or
    /// drops and counts it when it would take the pending lines beyond
    /// [`MAX_PENDING_BYTES`]. Never blocks beyond a short lock.
    pub fn admit(&self, level: Level, line: Bytes) {
        let at = SystemTime::now();
        let mut pending = self.pending();
        if pending.closed || pending.bytes + line.len() > MAX_PENDING_BYTES {
            drop(pending);
            LOKI_STATS.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes += line.len();
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
            pending.bytes = 0;
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
        } else if self.lines.capacity() > 4 * WAKE_AT_PENDING {
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
    /// Set by the final flush: the forwarder stops backing off for long.
    flushing: AtomicBool,
    /// Cuts the forwarder's backoff short (the final flush).
    wake: Notify,
}

impl Outbox {
    fn new(max_bytes: usize) -> Self {
        Outbox {
            max_bytes,
            backlog: Mutex::default(),
            ready: Notify::new(),
            idle: Notify::new(),
            flushing: AtomicBool::new(false),
            wake: Notify::new(),
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
    #[error("the shipper's thread could not be started")]
    Thread(#[source] std::io::Error),
}

/// Handle that flushes queued lines at shutdown.
pub struct LokiShipper {
    sink: LokiSink,
    outbox: Arc<Outbox>,
    /// Ends the shipper's thread.
    stop: Arc<Notify>,
}

/// Starts the shipper's thread (the batcher and the forwarder); returns the
/// sink the log writer hands lines to, and the handle that flushes them at
/// shutdown.
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
    let stop = Arc::new(Notify::new());
    // Its own runtime on its own thread, so that everything the HTTP client
    // does (its connection tasks, DNS on the blocking pool) runs on threads
    // marked as the shipper's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(mark_shipper_thread)
        .build()
        .map_err(LokiError::Thread)?;
    let (batcher_sink, forwarder_outbox, until) = (sink.clone(), outbox.clone(), stop.clone());
    std::thread::Builder::new()
        .name("kindling-loki".into())
        .spawn(move || {
            mark_shipper_thread();
            runtime.block_on(async move {
                tokio::spawn(batch(batcher_sink, forwarder_outbox.clone()));
                tokio::select! {
                    () = forward(client, request, forwarder_outbox) => {}
                    () = until.notified() => {}
                }
            });
            // A push may still hang on a socket; the process is exiting.
            runtime.shutdown_background();
        })
        .map_err(LokiError::Thread)?;
    Ok((sink.clone(), LokiShipper { sink, outbox, stop }))
}

impl LokiShipper {
    /// Ships every line logged so far and waits for Loki to take them,
    /// giving up (and counting the rest as dropped) after `within`. A
    /// forwarder asleep in its backoff is woken and retries at the shortest
    /// interval. Lines logged after this call are counted as dropped.
    pub async fn flush(self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.sink.ship_pending(&self.outbox, true);
        self.outbox.flushing.store(true, Ordering::Relaxed);
        self.outbox.wake.notify_one();
        loop {
            // Created before the check, so a notification in between is not lost.
            let idle = self.outbox.idle.notified();
            if self.outbox.is_empty() || tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        self.stop.notify_one();
        self.outbox.abandon();
    }
}

/// What became of one push.
enum Pushed {
    Delivered,
    /// Loki took the batch but for `ignored` entries, which it will never
    /// take (400, with its reason).
    Rejected {
        ignored: u64,
        reason: String,
    },
    /// Worth retrying: Loki down, overloaded (5xx), rate-limiting (429).
    Retry {
        why: String,
    },
}

async fn push(client: &reqwest::Client, request: &reqwest::Request, batch: &Batch) -> Pushed {
    let mut push = request
        .try_clone()
        .expect("a request without a body clones");
    *push.body_mut() = Some(batch.body.clone().into());
    match client.execute(push).await {
        Ok(res) if res.status().is_success() => Pushed::Delivered,
        // Other 4xx will not succeed on retry (rejected entries, labels).
        Ok(res) if res.status().is_client_error() && res.status().as_u16() != 429 => {
            let status = res.status().as_u16();
            let reason = res.text().await.unwrap_or_default();
            Pushed::Rejected {
                ignored: ignored_entries(&reason).map_or(batch.entries, |n| n.min(batch.entries)),
                reason: format!("{status}: {}", truncated(&reason, 512)),
            }
        }
        Ok(res) => Pushed::Retry {
            why: format!("status {}", res.status().as_u16()),
        },
        Err(e) => Pushed::Retry { why: e.to_string() },
    }
}

/// How many entries Loki says it ignored: its 400 ends each stream's
/// report with "total ignored: N out of M". `None` when it does not say
/// (the whole batch was refused).
fn ignored_entries(reason: &str) -> Option<u64> {
    let counts: Vec<u64> = reason
        .match_indices("total ignored: ")
        .filter_map(|(at, marker)| {
            let rest = &reason[at + marker.len()..];
            rest.split(' ').next()?.parse().ok()
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end()
}

/// Sends queued batches to Loki one at a time with a timeout; retries with
/// backoff while Loki is unavailable. Reports state changes once, and
/// Loki's reasons for rejecting at most every [`REJECTION_LOG_INTERVAL`],
/// on stdout.
async fn forward(client: reqwest::Client, request: reqwest::Request, outbox: Arc<Outbox>) {
    let mut backoff = FIRST_BACKOFF;
    let mut failing = false;
    let mut last_rejection_logged: Option<Instant> = None;
    let mut rejections_unlogged = 0u64;
    loop {
        let Some(batch) = outbox.take() else {
            outbox.ready.notified().await;
            continue;
        };
        match push(&client, &request, &batch).await {
            Pushed::Delivered => {
                LOKI_STATS
                    .delivered
                    .fetch_add(batch.entries, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!(target: SHIPPER_TARGET, "log delivery to Loki resumed");
                }
                backoff = FIRST_BACKOFF;
                continue;
            }
            Pushed::Rejected { ignored, reason } => {
                LOKI_STATS
                    .delivered
                    .fetch_add(batch.entries - ignored, Ordering::Relaxed);
                LOKI_STATS.dropped.fetch_add(ignored, Ordering::Relaxed);
                rejections_unlogged += 1;
                if last_rejection_logged.is_none_or(|at| at.elapsed() >= REJECTION_LOG_INTERVAL) {
                    tracing::warn!(
                        target: SHIPPER_TARGET,
                        ignored,
                        pushes = rejections_unlogged,
                        reason = %reason,
                        "Loki rejected log entries; dropped"
                    );
                    last_rejection_logged = Some(Instant::now());
                    rejections_unlogged = 0;
                }
                continue;
            }
            Pushed::Retry { why } => {
                if !failing {
                    tracing::warn!(target: SHIPPER_TARGET, why = %why, "Loki push failed; retrying with backoff (queue bounded)");
                }
            }
        }
        failing = true;
        outbox.give_back(batch);
        if outbox.flushing.load(Ordering::Relaxed) {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = outbox.wake.notified() => {}
        }
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

    /// The tests below count drops in the process-wide [`LOKI_STATS`]: one
    /// at a time.
    static STATS: Mutex<()> = Mutex::new(());

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// One event with a 1 MiB field is a 1 MiB line. With no batcher
    /// taking them (Loki slow, the batcher starved), 96 of them must not
    /// hold 96 MiB: the pending lines are bounded in bytes, the rest dropped
    /// and counted.
    #[test]
    fn pending_lines_are_bounded_in_bytes_and_huge_lines_do_not_grow_memory() {
        let _one_at_a_time = STATS.lock().unwrap_or_else(|p| p.into_inner());
        let sink = LokiSink::new(&settings("ns"));
        let dropped = || LOKI_STATS.dropped.load(Ordering::Relaxed);
        let (before, rss_before) = (dropped(), rss_kib());
        for _ in 0..96 {
            let mut line = vec![b'x'; 1 << 20];
            line.push(b'\n');
            sink.admit(Level::INFO, Bytes::from(line));
        }
        let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
        assert!(
            dropped() - before >= 80,
            "{} of 96 one-MiB lines dropped",
            dropped() - before
        );
        assert!(growth_mib <= 24, "RSS grew {growth_mib} MiB");
    }

    #[test]
    fn the_ignored_count_is_read_from_lokis_reasons() {
        let one_stream = "entry with timestamp 2026-12-05 10:00:00 +0000 UTC ignored, reason: \
                          'entry too far behind',\nuser 'fake', total ignored: 3 out of 10 \
                          for stream: {app=\"kindling-api\"}";
        assert_eq!(ignored_entries(one_stream), Some(3));
        let two = format!(
            "{one_stream}\n{}",
            one_stream.replace("3 out of", "2 out of")
        );
        assert_eq!(ignored_entries(&two), Some(5));
        assert_eq!(
            ignored_entries("error at least one label pair is required"),
            None
        );
        assert_eq!(truncated("héllo", 2), "h");
    }

    #[test]
    fn lines_beyond_the_bound_or_after_the_final_flush_are_dropped_and_counted() {
        let _one_at_a_time = STATS.lock().unwrap_or_else(|p| p.into_inner());
        let sink = LokiSink::new(&settings("ns"));
        let outbox = Outbox::new(1 << 30);
        let dropped = || LOKI_STATS.dropped.load(Ordering::Relaxed);
        let before = dropped();
        let fit = MAX_PENDING_BYTES / line("{}").len();
        for _ in 0..=fit {
            sink.admit(Level::INFO, line("{}"));
        }
        assert_eq!(dropped() - before, 1);
        sink.ship_pending(&outbox, true);
        assert_eq!(outbox.take().unwrap().entries, fit as u64);
        sink.admit(Level::WARN, line("{}"));
        assert_eq!(dropped() - before, 2);
        sink.ship_pending(&outbox, false);
        assert!(outbox.take().is_none());
    }
}
