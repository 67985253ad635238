//! Prometheus metrics. Every metric name is defined once, in [`names`]; the
//! dashboards and alert rules in k8s/observability are tested against the
//! exposition of a running API, so a renamed metric fails CI there.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use rocket::http::ContentType;
use rocket::{State, get};

use super::loki::LOKI_STATS;
use crate::db::Db;

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
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        use names::*;
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                HTTP_REQUESTS_TOTAL,
                "HTTP requests served, by matched route template",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(HTTP_REQUEST_DURATION_SECONDS, "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let http_in_flight = IntGauge::new(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being served")?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                DB_POOL_CONNECTIONS,
                "Database pool connections by state (in_use, idle)",
            ),
            &["state"],
        )?;
        let db_acquire = Histogram::with_opts(
            HistogramOpts::new(
                DB_POOL_ACQUIRE_DURATION_SECONDS,
                "Time a request waited for a pooled database connection",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let db_query = HistogramVec::new(
            HistogramOpts::new(
                DB_QUERY_DURATION_SECONDS,
                "Database round trips by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let db_up = IntGauge::new(DB_UP, "1 if the last database round trip succeeded, else 0")?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Build of the running binary (value is always 1)",
            ),
            &["version", "git_sha"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("KINDLING_GIT_SHA").unwrap_or("unknown"),
            ])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(db_acquire.clone()))?;
        registry.register(Box::new(db_query.clone()))?;
        registry.register(Box::new(db_up.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(LokiCollector::new()?))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            http_in_flight,
            db_pool_connections,
            db_acquire,
            db_query,
            db_up,
        })
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(latency.as_secs_f64());
    }

    pub fn observe_acquire(&self, waited: Duration, ok: bool) {
        self.db_acquire.observe(waited.as_secs_f64());
        if !ok {
            self.db_up.set(0);
        }
    }

    pub fn observe_query(&self, operation: &str, took: Duration, reached_database: bool) {
        self.db_query
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
        self.db_up.set(i64::from(reached_database));
    }

    pub fn set_db_up(&self, up: bool) {
        self.db_up.set(i64::from(up));
    }

    /// The text exposition, with pool gauges read at scrape time.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        let size = i64::from(pool.size());
        let idle = pool.num_idle() as i64;
        self.db_pool_connections
            .with_label_values(&["idle"])
            .set(idle);
        self.db_pool_connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Exposes the process-wide Loki pipeline counters (see loki.rs).
struct LokiCollector {
    dropped: IntCounter,
    delivered: IntCounter,
    queue_bytes: IntGauge,
}

impl LokiCollector {
    fn new() -> Result<Self, prometheus::Error> {
        use names::*;
        Ok(LokiCollector {
            dropped: IntCounter::new(
                LOKI_DROPPED_EVENTS_TOTAL,
                "Log events not delivered to Loki (queue full, Loki down or too slow)",
            )?,
            delivered: IntCounter::new(LOKI_DELIVERED_EVENTS_TOTAL, "Log events Loki accepted")?,
            queue_bytes: IntGauge::new(
                LOKI_QUEUE_BYTES,
                "Compressed log batches waiting for Loki",
            )?,
        })
    }
}

impl Collector for LokiCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            &self.dropped.desc(),
            &self.delivered.desc(),
            &self.queue_bytes.desc(),
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = &*LOKI_STATS;
        self.dropped.reset();
        self.dropped.inc_by(stats.dropped.load(Ordering::Relaxed));
        self.delivered.reset();
        self.delivered
            .inc_by(stats.delivered.load(Ordering::Relaxed));
        self.queue_bytes
            .set(stats.queue_bytes.load(Ordering::Relaxed) as i64);
        [
            self.dropped.collect(),
            self.delivered.collect(),
            self.queue_bytes.collect(),
        ]
        .concat()
    }
}

/// `GET /metrics` in the Prometheus text format. Not counted in the HTTP
/// metrics and not access-logged (see the request fairing).
#[get("/metrics")]
pub fn endpoint(metrics: &State<Arc<Metrics>>, db: &Db) -> (ContentType, String) {
    let content_type = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    (content_type, metrics.render(&db.pool))
}
