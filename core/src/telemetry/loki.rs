//! Log shipping to Loki: each stdout line, pushed as it is.
//!
//! `logging::LineTee` hands every formatted line to [`LokiSink::admit`];
//! Loki gets exactly the JSON object stdout gets. Why not tracing-loki: see
//! the README ("Why not tracing-loki"). What this shipper guarantees,
//! whatever Loki does (down, slow, hanging, rate-limiting, rejecting):
//!
//! - **Bounded.** Lines wait in a pending list of at most
//!   [`MAX_PENDING_BYTES`]; every [`BATCH_INTERVAL`] (or at
//!   [`WAKE_AT_PENDING`] lines) they become one push body (protobuf
//!   `logproto.PushRequest`, snappy-compressed) in an outbox of at most
//!   LOKI_QUEUE_MAX_BYTES, oldest dropped first.
//! - **Counted.** Every line is delivered or counted in
//!   `kindling_loki_dropped_events_total`; a 400 is counted as Loki counts
//!   what it ignored, and its reason logged at most once a minute.
//! - **Timed.** One push at a time, each within [`PUSH_TIMEOUT`]; retries
//!   back off from 250 ms to 10 s; the final flush wakes a forwarder asleep
//!   in its backoff and retries at the shortest interval until its deadline.
//! - **Not self-feeding.** The shipper runs on a thread of its own; events
//!   logged there (its warnings, the debug lines of hyper, reqwest and
//!   rustls about each push) go to stdout only, whatever RUST_LOG says.
//!   Shipped, each push would log lines for the next: a push loop forever.
//!
//! Streams are labelled `app`, `namespace`, `environment` and `level` (low
//! cardinality); the pod rides on each entry as structured metadata.

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

/// Bytes of lines waiting to be batched before new ones are dropped and
/// counted. Bytes, not lines: one event with a 1 MiB field is a 1 MiB line.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Lines that end a batch before its interval is up.
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
    /// Set on the shipper's threads: nothing logged there is shipped.
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

fn count_dropped(lines: u64) {
    LOKI_STATS.dropped.fetch_add(lines, Ordering::Relaxed);
}

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

    /// A push body (snappy raw format around the protobuf), as Loki reads it.
    pub fn decode(body: &[u8]) -> Result<PushRequest, String> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| format!("not snappy (raw block format): {e}"))?;
        prost::Message::decode(raw.as_slice()).map_err(|e| format!("not a PushRequest: {e}"))
    }
}

/// Loki's level label values, indexed by [`level_index`].
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

/// A compressed push body and how many lines it holds.
struct Batch {
    id: u64,
    body: Bytes,
    entries: u64,
}

#[derive(Default)]
struct Outbox {
    batches: VecDeque<Batch>,
    bytes: usize,
    next_id: u64,
}

impl Outbox {
    /// Exports the queued bytes (`kindling_loki_queue_bytes`).
    fn publish(&self) {
        LOKI_STATS
            .queue_bytes
            .store(self.bytes as u64, Ordering::Relaxed);
    }
}

/// What the log writer, the shipper's thread and the final flush share.
struct Shared {
    pending: Mutex<PendingList>,
    outbox: Mutex<Outbox>,
    max_outbox_bytes: usize,
    /// The first pending line, or [`WAKE_AT_PENDING`] of them.
    lines_waiting: Notify,
    /// A batch was added to the outbox.
    batch_ready: Notify,
    /// The final flush began (`flushing`) or found nothing left (`drained`).
    flushing: AtomicBool,
    flush_begun: Notify,
    drained: Notify,
    /// Each level's stream labels, formatted once.
    labels: [String; 5],
    pod: String,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the log writer hands each line. Cheap to clone.
#[derive(Clone)]
pub struct LokiSink(Arc<Shared>);

impl LokiSink {
    fn new(settings: &TelemetrySettings) -> Self {
        let labels = LEVELS.map(|level| {
            format!(
                "{{app=\"kindling-api\",environment=\"{}\",level=\"{level}\",namespace=\"{}\"}}",
                label_value(&settings.environment),
                label_value(&settings.namespace),
            )
        });
        LokiSink(Arc::new(Shared {
            pending: Mutex::default(),
            outbox: Mutex::default(),
            max_outbox_bytes: settings.loki_queue_max_bytes,
            lines_waiting: Notify::new(),
            batch_ready: Notify::new(),
            flushing: AtomicBool::new(false),
            flush_begun: Notify::new(),
            drained: Notify::new(),
            labels,
            pod: settings.pod_name.clone(),
        }))
    }

    /// Whether lines of events like this one go to Loki: all but the
    /// shipper's own (see the module docs).
    pub fn takes(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() != SHIPPER_TARGET && !ON_SHIPPER_THREAD.with(Cell::get)
    }

    /// Queues one finished line (with its trailing newline), or drops and
    /// counts it beyond [`MAX_PENDING_BYTES`]. Never blocks beyond a short lock.
    pub fn admit(&self, level: Level, line: Bytes) {
        let at = SystemTime::now();
        let mut pending = locked(&self.0.pending);
        if pending.closed || pending.bytes + line.len() > MAX_PENDING_BYTES {
            drop(pending);
            return count_dropped(1);
        }
        pending.bytes += line.len();
        let level = level_index(level);
        pending.lines.push(Pending { level, at, line });
        let waiting = pending.lines.len();
        drop(pending);
        if waiting == 1 || waiting == WAKE_AT_PENDING {
            self.0.lines_waiting.notify_one();
        }
    }

    /// Turns every pending line into one batch at the back of the outbox,
    /// dropping (and counting) the oldest batches beyond its bound.
    fn ship_pending(&self, close: bool) {
        let lines = {
            let mut pending = locked(&self.0.pending);
            pending.closed |= close;
            pending.bytes = 0;
            mem::take(&mut pending.lines)
        };
        if lines.is_empty() {
            return;
        }
        let entries = lines.len() as u64;
        let mut streams: [Vec<proto::EntryAdapter>; 5] = Default::default();
        for Pending { level, at, line } in lines {
            let line = line
                .strip_suffix(b"\n")
                .map_or(line.clone(), |l| line.slice_ref(l));
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
            streams: (streams.into_iter().zip(&self.0.labels))
                .filter(|(entries, _)| !entries.is_empty())
                .map(|(entries, labels)| proto::StreamAdapter {
                    labels: labels.clone(),
                    entries,
                })
                .collect(),
        };
        let protobuf = prost::Message::encode_to_vec(&push);
        // Fails only beyond snappy's ~4 GiB, which the pending bound rules out.
        let Ok(body) = snap::raw::Encoder::new().compress_vec(&protobuf) else {
            return count_dropped(entries);
        };
        let mut outbox = locked(&self.0.outbox);
        outbox.bytes += body.len();
        let id = outbox.next_id;
        outbox.next_id += 1;
        let body = body.into();
        outbox.batches.push_back(Batch { id, body, entries });
        while outbox.bytes > self.0.max_outbox_bytes {
            let oldest = outbox.batches.pop_front().expect("bytes are in batches");
            outbox.bytes -= oldest.body.len();
            count_dropped(oldest.entries);
        }
        outbox.publish();
    }

    /// The oldest batch (id, body, lines), left in the outbox until settled.
    fn next_batch(&self) -> Option<(u64, Bytes, u64)> {
        let outbox = locked(&self.0.outbox);
        (outbox.batches.front()).map(|b| (b.id, b.body.clone(), b.entries))
    }

    /// Removes batch `id` (delivered, or rejected for good), unless the
    /// bound dropped it meanwhile.
    fn settle_batch(&self, id: u64) {
        let mut outbox = locked(&self.0.outbox);
        if outbox.batches.front().is_some_and(|b| b.id == id) {
            let batch = outbox.batches.pop_front().expect("just seen");
            outbox.bytes -= batch.body.len();
        }
        outbox.publish();
    }

    fn is_drained(&self) -> bool {
        locked(&self.0.outbox).batches.is_empty() && locked(&self.0.pending).lines.is_empty()
    }

    /// Counts everything still queued as dropped (at the end of the flush).
    fn abandon(&self) {
        self.ship_pending(true);
        let mut outbox = locked(&self.0.outbox);
        count_dropped(outbox.batches.drain(..).map(|b| b.entries).sum());
        outbox.bytes = 0;
        outbox.publish();
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
    stop: Arc<Notify>,
}

/// Starts the shipper's thread; returns the sink the log writer hands
/// lines to, and the handle that flushes them at shutdown.
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
    let sink = LokiSink::new(settings);
    let stop = Arc::new(Notify::new());
    // Its own runtime, so that everything the HTTP client does (its
    // connection tasks, DNS on the blocking pool) runs on marked threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(mark_shipper_thread)
        .build()
        .map_err(LokiError::Thread)?;
    let (shipper, until) = (sink.clone(), stop.clone());
    std::thread::Builder::new()
        .name("kindling-loki".into())
        .spawn(move || {
            mark_shipper_thread();
            runtime.block_on(async move {
                tokio::spawn(batch(shipper.clone()));
                tokio::select! {
                    () = send(shipper, client, request) => {}
                    () = until.notified() => {}
                }
            });
            // A push may still hang on a socket; the process is exiting.
            runtime.shutdown_background();
        })
        .map_err(LokiError::Thread)?;
    Ok((sink.clone(), LokiShipper { sink, stop }))
}

impl LokiShipper {
    /// Ships every line logged so far and waits for Loki to take them,
    /// giving up (and counting the rest as dropped) after `within`. Lines
    /// logged after this call are counted as dropped.
    pub async fn flush(self, within: Duration) {
        let shared = &self.sink.0;
        let deadline = tokio::time::Instant::now() + within;
        self.sink.ship_pending(true);
        shared.flushing.store(true, Ordering::Relaxed);
        shared.flush_begun.notify_one();
        loop {
            // Registered before the check, so a notification in between is not lost.
            let drained = shared.drained.notified();
            if self.sink.is_drained() || tokio::time::timeout_at(deadline, drained).await.is_err() {
                break;
            }
        }
        self.stop.notify_one();
        self.sink.abandon();
    }
}

/// What became of one push.
enum Pushed {
    Delivered,
    /// Loki took the batch but for `ignored` entries, which it will never
    /// take (a 4xx other than 429, with its reason).
    Rejected {
        ignored: u64,
        reason: String,
    },
    /// Worth retrying: Loki down, overloaded (5xx), rate-limiting (429).
    Retry {
        why: String,
    },
}

async fn push(
    client: &reqwest::Client,
    request: &reqwest::Request,
    body: Bytes,
    entries: u64,
) -> Pushed {
    let mut push = request
        .try_clone()
        .expect("a request without a body clones");
    *push.body_mut() = Some(body.into());
    match client.execute(push).await {
        Ok(res) if res.status().is_success() => Pushed::Delivered,
        Ok(res) if res.status().is_client_error() && res.status().as_u16() != 429 => {
            let status = res.status().as_u16();
            let reason = res.text().await.unwrap_or_default();
            Pushed::Rejected {
                ignored: ignored_entries(&reason).map_or(entries, |n| n.min(entries)),
                reason: format!("{status}: {}", truncated(&reason, 512)),
            }
        }
        Ok(res) => Pushed::Retry {
            why: format!("status {}", res.status().as_u16()),
        },
        Err(e) => Pushed::Retry { why: e.to_string() },
    }
}

/// How many entries Loki says it ignored: its 400 ends each stream's report
/// with "total ignored: N out of M". `None` when it does not say (the whole
/// batch was refused).
fn ignored_entries(reason: &str) -> Option<u64> {
    let marker = "total ignored: ";
    let counts = reason.match_indices(marker).filter_map(|(at, _)| {
        let rest = &reason[at + marker.len()..];
        rest.split(' ').next()?.parse::<u64>().ok()
    });
    counts.reduce(|a, b| a + b)
}

fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end()
}

/// Gathers pending lines into a batch once the first has waited
/// [`BATCH_INTERVAL`] (or [`WAKE_AT_PENDING`] lines wait), whatever the
/// sender is doing: lines waiting for a slow or absent Loki are held
/// compressed in the bounded outbox, not raw.
async fn batch(sink: LokiSink) {
    let shared = &sink.0;
    loop {
        shared.lines_waiting.notified().await;
        tokio::select! {
            () = tokio::time::sleep(BATCH_INTERVAL) => {}
            () = shared.lines_waiting.notified() => {}
        }
        sink.ship_pending(false);
        shared.batch_ready.notify_one();
    }
}

/// Sends the oldest batch until Loki settles it, backing off while Loki is
/// unavailable. Reports state changes once, and Loki's reasons for
/// rejecting at most every [`REJECTION_LOG_INTERVAL`].
async fn send(sink: LokiSink, client: reqwest::Client, request: reqwest::Request) {
    use tokio::time::{Instant as Deadline, sleep_until};
    let shared = &sink.0;
    let flushing = || shared.flushing.load(Ordering::Relaxed);
    let (mut backoff, mut retry_at): (Duration, Option<Deadline>) = (FIRST_BACKOFF, None);
    let mut last_rejection_logged: Option<Instant> = None;
    loop {
        let batch = sink.next_batch();
        let due = retry_at.is_none_or(|at| at <= Deadline::now());
        let Some((id, body, entries)) = batch.filter(|_| due) else {
            if flushing() && sink.is_drained() {
                shared.drained.notify_waiters();
            }
            let idle_until =
                retry_at.unwrap_or_else(|| Deadline::now() + Duration::from_secs(3600));
            tokio::select! {
                () = shared.batch_ready.notified() => {}
                () = shared.flush_begun.notified() => retry_at = None,
                () = sleep_until(idle_until) => {}
            }
            continue;
        };
        match push(&client, &request, body, entries).await {
            Pushed::Delivered => {
                sink.settle_batch(id);
                LOKI_STATS.delivered.fetch_add(entries, Ordering::Relaxed);
                if retry_at.take().is_some() {
                    tracing::info!(target: SHIPPER_TARGET, "log delivery to Loki resumed");
                }
                backoff = FIRST_BACKOFF;
            }
            Pushed::Rejected { ignored, reason } => {
                sink.settle_batch(id);
                LOKI_STATS
                    .delivered
                    .fetch_add(entries - ignored, Ordering::Relaxed);
                count_dropped(ignored);
                if last_rejection_logged.is_none_or(|at| at.elapsed() >= REJECTION_LOG_INTERVAL) {
                    tracing::warn!(target: SHIPPER_TARGET, ignored, reason, "Loki rejected log entries; dropped (this warning repeats at most once a minute)");
                    last_rejection_logged = Some(Instant::now());
                }
            }
            Pushed::Retry { why } => {
                if retry_at.is_none() {
                    tracing::warn!(target: SHIPPER_TARGET, why, "Loki push failed; retrying with backoff (queue bounded)");
                }
                let wait = if flushing() { FIRST_BACKOFF } else { backoff };
                retry_at = Some(Deadline::now() + wait);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(namespace: &str) -> LokiSink {
        LokiSink::new(&TelemetrySettings {
            log_filter: "info".into(),
            loki_url: None,
            loki_queue_max_bytes: 1 << 30,
            environment: "test".into(),
            namespace: namespace.into(),
            pod_name: "pod-7".into(),
        })
    }

    fn dropped() -> u64 {
        LOKI_STATS.dropped.load(Ordering::Relaxed)
    }

    /// One event with a 1 MiB field is a 1 MiB line. With nothing taking
    /// them (Loki slow, the shipper starved), 96 of them must not hold
    /// 96 MiB: the pending lines are bounded in bytes, the rest counted.
    #[test]
    fn pending_lines_are_bounded_in_bytes_and_huge_lines_do_not_grow_memory() {
        let rss_kib = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let sink = sink("ns");
        let (before, rss_before) = (dropped(), rss_kib());
        for _ in 0..96 {
            let mut line = vec![b'x'; 1 << 20];
            line.push(b'\n');
            sink.admit(Level::INFO, Bytes::from(line));
        }
        let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
        assert!(
            dropped() - before >= 80,
            "{} of 96 dropped",
            dropped() - before
        );
        assert!(growth_mib <= 24, "RSS grew {growth_mib} MiB");
    }

    #[test]
    fn the_ignored_count_is_read_from_lokis_reasons() {
        let one = "entry with timestamp 2026-12-05 10:00:00 +0000 UTC ignored, reason: 'entry too \
                   far behind',\nuser 'fake', total ignored: 3 out of 10 for stream: {app=\"a\"}";
        assert_eq!(ignored_entries(one), Some(3));
        assert_eq!(
            ignored_entries(&format!("{one}\n{}", one.replace(": 3 ", ": 2 "))),
            Some(5)
        );
        assert_eq!(
            ignored_entries("error at least one label pair is required"),
            None
        );
        assert_eq!(truncated("héllo", 2), "h");
    }
}
