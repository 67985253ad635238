//! Prometheus metrics. Every metric name is defined once, in [`names`]; the
//! dashboards and alert rules in k8s/observability are tested against the
//! exposition of a running API, so a renamed metric fails CI there.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use rocket::http::{ContentType, Method};
use rocket::{State, get};

use super::logging::stdout_dropped_lines;
use super::loki::LOKI_STATS;
use crate::db::{Db, DbObserver};

pub mod names {
    pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
    pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
    pub const DB_POOL_CONNECTIONS: &str = "kindling_db_pool_connections";
    pub const DB_POOL_ACQUIRE_DURATION_SECONDS: &str = "kindling_db_pool_acquire_duration_seconds";
    pub const DB_QUERY_DURATION_SECONDS: &str = "kindling_db_query_duration_seconds";
    pub const DB_UP: &str = "kindling_db_up";
    pub const BUILD_INFO: &str = "kindling_build_info";
    pub const LOKI_DROPPED_EVENTS_TOTAL: &str = "kindling_loki_dropped_events_total";
    pub const LOKI_DELIVERED_EVENTS_TOTAL: &str = "kindling_loki_delivered_events_total";
    pub const LOKI_QUEUE_BYTES: &str = "kindling_loki_queue_bytes";
    pub const LOG_DROPPED_LINES_TOTAL: &str = "kindling_log_dropped_lines_total";
}

/// Latency buckets for an API that answers in milliseconds: 1 ms to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One registry per application instance (tests run several in a process).
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    db_pool_connections: IntGaugeVec,
    db_acquire: Histogram,
    db_query: HistogramVec,
    db_up: IntGauge,
    /// The log pipeline's process-wide counters, copied in at scrape time.
    loki_dropped: IntCounter,
    loki_delivered: IntCounter,
    loki_queue_bytes: IntGauge,
    log_dropped: IntCounter,
}

/// Registers `metric` in `registry` and hands it back.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: Result<M, prometheus::Error>,
) -> Result<M, prometheus::Error> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        use names::*;
        let r = Registry::new();
        let build_info = registered(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    BUILD_INFO,
                    "Build of the running binary (value is always 1)",
                ),
                &["version", "git_sha"],
            ),
        )?;
        let git_sha = option_env!("KINDLING_GIT_SHA").unwrap_or("unknown");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), git_sha])
            .set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            http_requests: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        HTTP_REQUESTS_TOTAL,
                        "HTTP requests served, by matched route template",
                    ),
                    &["method", "route", "status"],
                ),
            )?,
            http_duration: registered(
                &r,
                HistogramVec::new(
                    latency(HTTP_REQUEST_DURATION_SECONDS, "HTTP request latency"),
                    &["method", "route"],
                ),
            )?,
            http_in_flight: registered(
                &r,
                IntGauge::new(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being served"),
            )?,
            db_pool_connections: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        DB_POOL_CONNECTIONS,
                        "Database pool connections by state (in_use, idle)",
                    ),
                    &["state"],
                ),
            )?,
            db_acquire: registered(
                &r,
                Histogram::with_opts(latency(
                    DB_POOL_ACQUIRE_DURATION_SECONDS,
                    "Time a request waited for a pooled database connection",
                )),
            )?,
            db_query: registered(
                &r,
                HistogramVec::new(
                    latency(
                        DB_QUERY_DURATION_SECONDS,
                        "Database round trips by operation",
                    ),
                    &["operation"],
                ),
            )?,
            db_up: registered(
                &r,
                IntGauge::new(DB_UP, "1 if the last database round trip succeeded, else 0"),
            )?,
            loki_dropped: registered(
                &r,
                IntCounter::new(
                    LOKI_DROPPED_EVENTS_TOTAL,
                    "Log events not delivered to Loki (queue full, Loki down or too slow, rejected)",
                ),
            )?,
            loki_delivered: registered(
                &r,
                IntCounter::new(LOKI_DELIVERED_EVENTS_TOTAL, "Log events Loki accepted"),
            )?,
            loki_queue_bytes: registered(
                &r,
                IntGauge::new(LOKI_QUEUE_BYTES, "Compressed log batches waiting for Loki"),
            )?,
            log_dropped: registered(
                &r,
                IntCounter::new(
                    LOG_DROPPED_LINES_TOTAL,
                    "Log lines dropped because stdout did not drain (tracing-appender's bound)",
                ),
            )?,
            registry: r,
        })
    }

    /// Counts a request and records its latency under its route template
    /// (or `unmatched`).
    pub fn observe_request(&self, method: Method, route: &str, status: u16, latency: Duration) {
        let status = status.to_string();
        let http_requests =
            self.http_requests
                .with_label_values(&[method.as_str(), route, &status]);
        http_requests.inc();
        let http_duration = self
            .http_duration
            .with_label_values(&[method.as_str(), route]);
        http_duration.observe(latency.as_secs_f64());
    }

    /// The text exposition, with the pool's and the log pipeline's figures
    /// read at scrape time.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(idle);
        self.db_pool_connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        let copy =
            |counter: &IntCounter, total: u64| counter.inc_by(total.saturating_sub(counter.get()));
        copy(
            &self.loki_dropped,
            LOKI_STATS.dropped.load(Ordering::Relaxed),
        );
        copy(
            &self.loki_delivered,
            LOKI_STATS.delivered.load(Ordering::Relaxed),
        );
        copy(&self.log_dropped, stdout_dropped_lines());
        self.loki_queue_bytes
            .set(LOKI_STATS.queue_bytes.load(Ordering::Relaxed) as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `GET /metrics` in the Prometheus text format. Not counted in the HTTP
/// metrics and not access-logged (see the `Telemetry` fairing).
#[utoipa::path(
    operation_id = "getMetrics", tag = "meta",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub fn endpoint(metrics: &State<Arc<Metrics>>, db: &Db) -> (ContentType, String) {
    let content_type = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    (content_type, metrics.render(&db.pool))
}

/// The database layer's reports, as metrics.
impl DbObserver for Metrics {
    fn connection_acquired(&self, waited: Duration, ok: bool) {
        self.db_acquire.observe(waited.as_secs_f64());
        if !ok {
            self.db_up.set(0);
        }
    }

    fn query_finished(&self, operation: &'static str, took: Duration, reached_database: bool) {
        let histogram = self.db_query.with_label_values(&[operation]);
        histogram.observe(took.as_secs_f64());
        self.db_up.set(i64::from(reached_database));
    }

    fn database_checked(&self, reachable: bool) {
        self.db_up.set(i64::from(reachable));
    }
}
