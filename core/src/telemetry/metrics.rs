//! Prometheus metrics. Every metric name is defined once, in [`names`]; the
//! dashboards and alert rules in k8s/observability are tested against the
//! exposition of a running API, so a renamed metric fails CI there.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use rocket::http::{ContentType, Method};
use rocket::{Route, State, get};

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

/// Statuses whose request counters are cached per route; any other status
/// is looked up by label (correct, only slower).
const CACHED_STATUSES: [u16; 13] = [
    200, 201, 204, 304, 400, 404, 409, 412, 413, 415, 422, 500, 503,
];

/// One route's HTTP series, resolved on first use and kept: observing a
/// request then costs no label hashing, lock or allocation. Created lazily,
/// so a route never requested has no series in the exposition.
struct RouteSeries {
    /// The route's address: routes live as long as the server.
    route: usize,
    method: Method,
    duration: OnceLock<Histogram>,
    requests: [OnceLock<IntCounter>; CACHED_STATUSES.len()],
}

/// One registry per application instance (tests run several in a process).
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// Per mounted route, sorted by the route's address (see `resolve_routes`).
    routes: OnceLock<Vec<RouteSeries>>,
    pub http_in_flight: IntGauge,
    db_pool_connections: IntGaugeVec,
    db_acquire: Histogram,
    db_query: HistogramVec,
    /// `db_query`'s series by operation, resolved on first use: operations
    /// are a handful of `&'static str`, found by address without hashing.
    db_query_by_operation: RwLock<Vec<(&'static str, Histogram)>>,
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
            routes: OnceLock::new(),
            http_in_flight,
            db_pool_connections,
            db_acquire,
            db_query,
            db_query_by_operation: RwLock::default(),
            db_up,
        })
    }

    /// Prepares the per-route series for the launched route table. Routes
    /// live as long as the server, so a route is identified by its address.
    pub fn resolve_routes<'a>(&self, routes: impl Iterator<Item = &'a Route>) {
        let mut series: Vec<RouteSeries> = routes
            .map(|r| RouteSeries {
                route: r as *const Route as usize,
                method: r.method,
                duration: OnceLock::new(),
                requests: Default::default(),
            })
            .collect();
        series.sort_by_key(|s| s.route);
        let _ = self.routes.set(series);
    }

    fn series_of(&self, route: &Route, method: Method) -> Option<&RouteSeries> {
        let routes = self.routes.get()?;
        let addr = route as *const Route as usize;
        let i = routes.binary_search_by_key(&addr, |s| s.route).ok()?;
        // HEAD requests served by a GET route keep their own method label.
        Some(&routes[i]).filter(|s| s.method == method)
    }

    /// Counts a request and records its latency. `route` is the matched
    /// route and `route_label` its template (or `unmatched`).
    pub fn observe_request(
        &self,
        route: Option<&Route>,
        method: Method,
        route_label: &str,
        status: u16,
        latency: Duration,
    ) {
        let method_label = method.as_str();
        let counter_by_label = || {
            self.http_requests
                .with_label_values(&[method_label, route_label, &status.to_string()])
        };
        let Some(series) = route.and_then(|r| self.series_of(r, method)) else {
            counter_by_label().inc();
            self.http_duration
                .with_label_values(&[method_label, route_label])
                .observe(latency.as_secs_f64());
            return;
        };
        series
            .duration
            .get_or_init(|| {
                self.http_duration
                    .with_label_values(&[method_label, route_label])
            })
            .observe(latency.as_secs_f64());
        match CACHED_STATUSES.iter().position(|&s| s == status) {
            Some(i) => series.requests[i].get_or_init(counter_by_label).inc(),
            None => counter_by_label().inc(),
        }
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

/// Exposes the process-wide log pipeline counters (see logging.rs and
/// loki.rs).
struct LokiCollector {
    dropped: IntCounter,
    delivered: IntCounter,
    queue_bytes: IntGauge,
    stdout_dropped: IntCounter,
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
            stdout_dropped: IntCounter::new(
                LOG_DROPPED_LINES_TOTAL,
                "Log lines dropped because stdout did not drain (tracing-appender's bound)",
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
            &self.stdout_dropped.desc(),
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
        self.stdout_dropped.reset();
        self.stdout_dropped.inc_by(stdout_dropped_lines());
        [
            self.dropped.collect(),
            self.delivered.collect(),
            self.queue_bytes.collect(),
            self.stdout_dropped.collect(),
        ]
        .concat()
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
        let seconds = took.as_secs_f64();
        let known = |series: &[(&'static str, Histogram)]| {
            series
                .iter()
                .find(|(op, _)| std::ptr::eq(*op, operation) || *op == operation)
                .map(|(_, h)| h.observe(seconds))
                .is_some()
        };
        let cache = &self.db_query_by_operation;
        if !known(&cache.read().unwrap_or_else(PoisonError::into_inner)) {
            let histogram = self.db_query.with_label_values(&[operation]);
            histogram.observe(seconds);
            cache
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push((operation, histogram));
        }
        self.db_up.set(i64::from(reached_database));
    }

    fn database_checked(&self, reachable: bool) {
        self.db_up.set(i64::from(reachable));
    }
}
