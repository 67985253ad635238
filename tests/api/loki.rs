//! Log shipping to Loki, exercised with the real binary against a test
//! receiver that speaks Loki's push protocol (snappy block compression of a
//! `logproto.PushRequest`): lines arrive as the stdout JSON lines, with the
//! expected labels and the pod as structured metadata,
//! a receiver that is down or never answers does not slow requests, memory
//! stays bounded, and queued lines are flushed at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kindling::telemetry::loki::proto;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::{ServerProcess, free_port};

#[derive(Clone, Copy)]
enum Mode {
    Healthy,
    /// Accepts connections and reads requests, never answers.
    Hanging,
    /// Answers 503 to the first this many pushes, then behaves like Healthy.
    UnavailableFor(u64),
    /// Answers 503 until this long after the receiver started, then behaves
    /// like Healthy.
    UnavailableDuring(Duration),
    /// Answers 429 (Loki's rate limit) to every push.
    TooManyRequests,
    /// Takes every entry of a push but its first, and answers 400 with the
    /// reason, as Loki does for an entry it will not take (too old, too
    /// long): its message ends "total ignored: 1 out of N for stream: …".
    RejectingOne,
}

/// The reason [`Mode::RejectingOne`] gives, as Loki words it.
const REJECT_REASON: &str = "entry too far behind";

/// What the receiver saw. `problems` collects its own failed checks: its
/// connection tasks are detached, so a panic there would go unnoticed.
#[derive(Default)]
struct Seen {
    /// Every stream entry accepted (204).
    lines: Vec<Entry>,
    /// Every push body received, whatever the answer, and when.
    bodies: Vec<Vec<u8>>,
    pushed_at: Vec<Instant>,
    answered: BTreeMap<u16, u64>,
    problems: Vec<String>,
}

/// One log line as Loki would store it.
struct Entry {
    labels: BTreeMap<String, String>,
    line: Value,
    structured_metadata: BTreeMap<String, String>,
}

#[derive(Clone)]
struct Received(Arc<Mutex<Seen>>);

impl Received {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails the test if any of the receiver's own checks failed.
    fn assert_no_problems(&self) {
        let seen = self.seen();
        assert!(seen.problems.is_empty(), "receiver: {:?}", seen.problems);
    }

    /// How many times the access line of `request_id` arrived.
    fn access_lines(&self, request_id: &str) -> usize {
        self.seen()
            .lines
            .iter()
            .filter(|Entry { line, .. }| {
                line["request_id"] == request_id && line["message"] == "request completed"
            })
            .count()
    }

    /// The gaps between consecutive pushes.
    fn gaps(&self) -> Vec<Duration> {
        let seen = self.seen();
        seen.pushed_at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A Loki that takes pushes and never answers (tests/api/lifecycle.rs); its port.
pub(crate) async fn hanging_receiver() -> u16 {
    start_receiver(Mode::Hanging).await.0
}

async fn start_receiver(mode: Mode) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received(Arc::default());
    let sink = received.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                if let Err(problem) = serve_connection(stream, mode, started, &sink).await {
                    sink.seen().problems.push(problem);
                }
            });
        }
    });
    (port, received)
}

/// One keep-alive connection: read each request, check and record it, answer.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    mode: Mode,
    started: Instant,
    sink: &Received,
) -> Result<(), String> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let (mut line, mut length, mut path) = (String::new(), 0usize, String::new());
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return Ok(());
            }
            if path.is_empty() {
                path = line.split(' ').nth(1).unwrap_or_default().to_owned();
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v
                    .trim()
                    .parse()
                    .map_err(|e| format!("content-length: {e}"))?;
            }
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("body: {e}"))?;
        if path != "/loki/api/v1/push" {
            return Err(format!("push to {path}"));
        }
        let push = proto::decode(&body).map_err(|e| format!("invalid push body: {e}"))?;
        if let Mode::Hanging = mode {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        let (status, answer) = {
            let mut seen = sink.seen();
            let status = match mode {
                Mode::RejectingOne => 400,
                Mode::TooManyRequests => 429,
                Mode::UnavailableFor(pushes) if (seen.bodies.len() as u64) < pushes => 503,
                Mode::UnavailableDuring(outage) if started.elapsed() < outage => 503,
                _ => 204,
            };
            seen.bodies.push(body);
            seen.pushed_at.push(Instant::now());
            *seen.answered.entry(status).or_default() += 1;
            let mut answer = String::new();
            if matches!(status, 204 | 400) {
                for (s, stream) in push.streams.into_iter().enumerate() {
                    let labels = parse_labels(&stream.labels);
                    let total = stream.entries.len();
                    for (e, entry) in stream.entries.into_iter().enumerate() {
                        if status == 400 && s == 0 && e == 0 {
                            answer = format!(
                                "entry with timestamp {:?} ignored, reason: '{REJECT_REASON}, \
                                 oldest acceptable timestamp is: 2026-01-01T00:00:00Z',\n\
                                 user 'fake', total ignored: 1 out of {total} for stream: {}",
                                entry.timestamp, stream.labels
                            );
                            continue;
                        }
                        let line: Value = serde_json::from_slice(&entry.line).map_err(|e| {
                            let text = String::from_utf8_lossy(&entry.line);
                            format!("not a JSON line ({e}): {text}")
                        })?;
                        let structured_metadata = entry
                            .structured_metadata
                            .into_iter()
                            .map(|pair| (pair.name, pair.value))
                            .collect();
                        seen.lines.push(Entry {
                            labels: labels.clone(),
                            line,
                            structured_metadata,
                        });
                    }
                }
            }
            (status, answer)
        };
        let reason = match status {
            204 => "No Content",
            400 => "Bad Request",
            429 => "Too Many Requests",
            _ => "Service Unavailable",
        };
        write
            .write_all(
                format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            )
            .await
            .map_err(|e| format!("answer: {e}"))?;
    }
}

/// Prometheus-style label set `{a="x",b="y"}` → {a: x, b: y}.
fn parse_labels(raw: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = raw.trim().trim_start_matches('{').trim_end_matches('}');
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches([',', ' ']).to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// What the tests below need beyond [`ServerProcess`].
trait LokiProbe {
    fn rss_kib(&self) -> u64;
    async fn metric(&self, name: &str) -> f64;
    async fn load(&self, n: usize) -> Duration;
}

async fn start_server(loki_url: &str, extra: &[(&str, &str)]) -> ServerProcess {
    let mut env = vec![
        ("LOKI_URL", loki_url),
        ("POD_NAMESPACE", "test-ns"),
        ("POD_NAME", "pod-1"),
        ("APP_ENVIRONMENT", "test"),
        ("SHUTDOWN_GRACE_SECS", "2"),
    ];
    env.extend_from_slice(extra);
    ServerProcess::start(&env).await
}

impl LokiProbe for ServerProcess {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not exported"))
    }

    /// Sends `n` list requests, 8 at a time, each with the longest request
    /// ID the API keeps (128 characters, which every line of the request
    /// carries); returns the slowest.
    async fn load(&self, n: usize) -> Duration {
        requests_with_ids(self, n, |_| {
            uuid::Uuid::new_v4().simple().to_string().repeat(4)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loki_receives_the_stdout_json_lines_with_low_cardinality_labels_and_flushes_at_shutdown() {
    let (port, received) = start_receiver(Mode::Healthy).await;
    let mut server = start_server(
        &format!("http://127.0.0.1:{port}"),
        // sqlx logs each statement at debug, inside the request's span.
        &[("RUST_LOG", "info,sqlx::query=debug")],
    )
    .await;
    let res = server
        .client
        .get(server.url("/api/items/31337"))
        .header("X-Request-Id", "loki-trace-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);

    received.assert_no_problems();
    let seen = received.seen();
    let received = &seen.lines;
    assert!(!received.is_empty(), "nothing reached the receiver");
    for Entry {
        labels,
        line,
        structured_metadata,
    } in received.iter()
    {
        let keys: Vec<_> = labels.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["app", "environment", "level", "namespace"],
            "labels: {labels:?}"
        );
        assert_eq!(labels["app"], "kindling-api");
        assert_eq!(labels["namespace"], "test-ns");
        assert_eq!(labels["environment"], "test");
        assert_eq!(
            line["level"].as_str(),
            Some(&*labels["level"].to_uppercase())
        );
        assert!(line["timestamp"].is_string() && line["target"].is_string());
        assert_eq!(
            structured_metadata,
            &BTreeMap::from([("pod".to_owned(), "pod-1".to_owned())])
        );
    }
    let access = received
        .iter()
        .map(|entry| &entry.line)
        .find(|line| line["request_id"] == "loki-trace-1" && line["message"] == "request completed")
        .expect("the request's access line");
    assert_eq!(access["route"], "/api/items/<id>");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["status"], 404);
    assert!(access["latency_ms"].is_number());
    assert_eq!(access["target"], "kindling::access");
    // A line logged while serving the request (by sqlx) carries the span's fields.
    let query = received
        .iter()
        .map(|entry| &entry.line)
        .find(|line| {
            line["target"] == "sqlx::query" && line["span"]["request_id"] == "loki-trace-1"
        })
        .expect("a query line with the request's request_id");
    assert_eq!(query["span"]["route"], "/api/items/<id>");
    // Logged after the server stopped: it can only arrive through the flush.
    assert!(
        received
            .iter()
            .any(|entry| entry.line["message"] == "shut down cleanly"),
        "final line not flushed"
    );
}

/// Down (nothing listening) and hanging (accepts, never answers): requests
/// stay fast, queued bytes stay under the bound, the overflow is counted,
/// resident memory does not grow with the backlog, and shutdown is bounded.
///
/// The volume is chosen so that the memory check means something: at
/// RUST_LOG=trace these 8,000 requests, with LOKI_QUEUE_MAX_BYTES=1 GiB
/// (i.e. no bound), grew RSS by 30.2 and 36.7 MiB (down, hanging); with the
/// bound, by 2 to 4 MiB, depending on what else runs (the allocator's and the
/// writers' working sets move with load). The limit sits between the two.
async fn unavailable_loki_is_harmless(loki_url: String) {
    let mut server = start_server(
        &loki_url,
        &[("LOKI_QUEUE_MAX_BYTES", "65536"), ("RUST_LOG", "trace")],
    )
    .await;
    // Warm-up to a steady state (allocator arenas, sqlx's statement cache,
    // the log writers' buffers), so that what follows measures the backlog.
    server.load(2000).await;
    let rss_before = server.rss_kib();
    let slowest = server.load(8000).await;
    let rss_after = server.rss_kib();

    // A request path that waited for Loki would take the 5 s push timeout (or,
    // hanging, forever). 3 s leaves room for a loaded 2-core CI machine
    // writing trace-level logs.
    assert!(
        slowest < Duration::from_secs(3),
        "slowest request {slowest:?}"
    );
    assert!(server.metric("kindling_loki_queue_bytes").await <= 65536.0);
    assert!(
        server.metric("kindling_loki_dropped_events_total").await > 0.0,
        "overflow not counted"
    );
    assert_eq!(
        server.metric("kindling_loki_delivered_events_total").await,
        0.0
    );
    let growth_mib = rss_after.saturating_sub(rss_before) as f64 / 1024.0;
    assert!(
        growth_mib < 8.0,
        "RSS grew {growth_mib:.1} MiB under a dead Loki"
    );
    // Grace (2 s) + mercy + flush bound (2 s), with margin.
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_loki_does_not_slow_requests_or_grow_memory() {
    let (port, _) = start_receiver(Mode::Hanging).await;
    unavailable_loki_is_harmless(format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_loki_does_not_slow_requests_or_grow_memory() {
    unavailable_loki_is_harmless(format!("http://127.0.0.1:{}", free_port())).await;
}

/// Sends `n` list requests, 8 at a time, the i-th with `X-Request-Id: id(i)`;
/// returns the slowest.
async fn requests_with_ids(
    server: &ServerProcess,
    n: usize,
    id: impl Fn(usize) -> String,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for batch in 0..n.div_ceil(8) {
        let tasks: Vec<_> = (batch * 8..((batch + 1) * 8).min(n))
            .map(|i| {
                let (client, url) = (server.client.clone(), server.url("/api/items?limit=1"));
                let id = id(i);
                tokio::spawn(async move {
                    let started = Instant::now();
                    let res = client
                        .get(url)
                        .header("X-Request-Id", id)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    started.elapsed()
                })
            })
            .collect();
        for task in tasks {
            slowest = slowest.max(task.await.unwrap());
        }
    }
    slowest
}

/// Sends `n` requests tagged `X-Request-Id: <prefix>-<i>`.
async fn traced_requests(server: &ServerProcess, prefix: &str, n: usize) {
    requests_with_ids(server, n, |i| format!("{prefix}-{i}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn loki_answering_503_gets_every_access_line_exactly_once_after_it_recovers() {
    // Four failed pushes: with backoff from 250 ms that is an outage of ~4 s.
    let (port, received) = start_receiver(Mode::UnavailableFor(4)).await;
    let mut server = start_server(&format!("http://127.0.0.1:{port}"), &[]).await;
    traced_requests(&server, "outage", 200).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(0..200).all(|i| received.access_lines(&format!("outage-{i}")) > 0) {
        assert!(
            Instant::now() < deadline,
            "lines from the outage never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        received.seen().answered.get(&503),
        Some(&4),
        "the outage did not happen"
    );
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);
    for i in 0..200 {
        let id = format!("outage-{i}");
        assert_eq!(received.access_lines(&id), 1, "access line of {id}");
    }
    received.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_access_line_arrives_exactly_once() {
    let (port, received) = start_receiver(Mode::Healthy).await;
    let mut server = start_server(&format!("http://127.0.0.1:{port}"), &[]).await;
    traced_requests(&server, "once", 300).await;
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);
    for i in 0..300 {
        let id = format!("once-{i}");
        assert_eq!(received.access_lines(&id), 1, "access line of {id}");
    }
    received.assert_no_problems();
}

/// The shipper's own HTTP client logs at debug too (hyper-util, reqwest,
/// rustls). Were those lines shipped, each push would log lines for the next
/// one: a push every batch interval, forever, with no traffic.
#[tokio::test(flavor = "multi_thread")]
async fn at_debug_level_the_shippers_own_transport_events_are_never_shipped() {
    let (port, received) = start_receiver(Mode::Healthy).await;
    let server = start_server(
        &format!("http://127.0.0.1:{port}"),
        &[("RUST_LOG", "debug")],
    )
    .await;
    // A client that closes its connection at once, so the server's own
    // debug line about a keep-alive connection ending is not logged later.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = client.get(server.url("/api/items/1")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = received.seen();
    let last = seen
        .pushed_at
        .last()
        .expect("the request's lines were pushed");
    assert!(
        last.elapsed() >= Duration::from_secs(2),
        "pushes go on without traffic: {} pushes, the last {:?} ago",
        seen.pushed_at.len(),
        last.elapsed()
    );
}

/// Loki answers 503 through the first 9 s; the forwarder backs off
/// (0.25, 0.5, 1, 2, 4, 8 s) and is asleep when SIGTERM comes at ~10 s. The
/// flush must wake it: Loki is healthy again and the last lines must not be
/// lost to the backoff.
#[tokio::test(flavor = "multi_thread")]
async fn the_final_flush_wakes_a_forwarder_backing_off_after_an_outage() {
    let (port, received) = start_receiver(Mode::UnavailableDuring(Duration::from_secs(9))).await;
    let started = Instant::now();
    let mut server = start_server(&format!("http://127.0.0.1:{port}"), &[]).await;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(10) {
        traced_requests(&server, &format!("during-{i}"), 1).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    traced_requests(&server, "the-last", 1).await;
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);
    assert!(
        received.seen().answered.get(&503).is_some_and(|&n| n >= 3),
        "the outage did not happen: {:?}",
        received.seen().answered
    );
    assert_eq!(
        received.access_lines("the-last-0"),
        1,
        "the last request's line was lost"
    );
    let lost: Vec<_> = (0..i)
        .map(|i| format!("during-{i}-0"))
        .filter(|id| received.access_lines(id) != 1)
        .collect();
    assert!(lost.is_empty(), "lines lost or duplicated: {lost:?}");
    received.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_pushes_are_retried_with_growing_capped_backoff() {
    let (port, received) = start_receiver(Mode::TooManyRequests).await;
    let server = start_server(&format!("http://127.0.0.1:{port}"), &[]).await;
    traced_requests(&server, "limited", 1).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let gaps = received.gaps();
    assert!(gaps.len() >= 4, "too few retries: {gaps:?}");
    for pair in gaps.windows(2) {
        // Doubling, with room for scheduling noise on a loaded machine.
        assert!(
            pair[1] >= pair[0].mul_f64(1.5),
            "the backoff does not grow: {gaps:?}"
        );
    }
    assert!(
        gaps.iter().all(|gap| *gap <= Duration::from_secs(11)),
        "a gap beyond the cap: {gaps:?}"
    );
    assert_eq!(
        server.metric("kindling_loki_dropped_events_total").await,
        0.0,
        "a rate-limited batch is kept, not dropped"
    );
}

/// Loki takes the entries it can and answers 400 for those it will not
/// take, saying why and how many: the counters follow Loki's count, the
/// rejected batch is not sent again, and the reason reaches the service's
/// own stdout once, not once per push.
#[tokio::test(flavor = "multi_thread")]
async fn entries_loki_rejects_are_counted_as_loki_counts_them_and_the_reason_is_logged_once() {
    let (port, received) = start_receiver(Mode::RejectingOne).await;
    let mut server = start_server(&format!("http://127.0.0.1:{port}"), &[]).await;
    for wave in 0..4 {
        traced_requests(&server, &format!("rejected-{wave}"), 25).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (pushes, rejected, stored) = {
        let seen = received.seen();
        let mut distinct = seen.bodies.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            seen.bodies.len(),
            "a rejected batch was sent again"
        );
        (seen.bodies.len(), seen.answered[&400], seen.lines.len())
    };
    assert!(pushes >= 2, "{pushes} pushes: the test needs several");
    assert_eq!(
        server.metric("kindling_loki_dropped_events_total").await,
        rejected as f64,
        "dropped must be what Loki ignored (1 per push), not whole batches"
    );
    assert_eq!(
        server.metric("kindling_loki_delivered_events_total").await,
        stored as f64,
        "delivered must be what Loki took"
    );
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)).await, 0);
    let stdout = server.stdout();
    let reasons = stdout.lines().filter(|l| l.contains(REJECT_REASON)).count();
    assert_eq!(
        reasons, 1,
        "Loki's reason, logged {reasons} times:\n{stdout}"
    );
    received.assert_no_problems();
}

#[test]
fn a_loki_url_that_is_not_a_url_stops_the_start_with_the_reason() {
    let out = crate::helpers::kindling_command(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://kindling@127.0.0.1:1/kindling"),
            ("LOKI_URL", "http://not a host"),
        ],
    )
    .output()
    .expect("run kindling");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LOKI_URL could not be used: the push URL")
            && stderr.contains("is invalid"),
        "{stderr}"
    );
}
