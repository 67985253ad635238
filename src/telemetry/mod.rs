//! Logs, metrics and request telemetry. Every log line is one JSON object on
//! stdout (and, with LOKI_URL, in Loki); each request produces one access
//! line carrying its `request_id`, `method`, `route` template, `status` and
//! `latency_ms`, and is counted in the HTTP metrics.

pub mod loki;
pub mod metrics;
pub mod stdout;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::route::{self, Handler, Route};
use rocket::{Data, Orbit, Request, Response, Rocket};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySettings;
use crate::request_id::{self, RequestId};

/// Route label for requests that matched no route, so unknown paths cannot
/// create unbounded label values.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Installs the global subscriber: JSON lines on stdout (written by a
/// background thread, see [`stdout`]), filtered by `RUST_LOG`, plus the
/// bounded Loki layer when LOKI_URL is set. `log` records (Rocket's, sqlx's)
/// are bridged into tracing. Returns the handle that flushes both at
/// shutdown. Must run inside a Tokio runtime.
pub async fn init_logging(settings: &TelemetrySettings) -> Result<Logging, String> {
    let filter = EnvFilter::try_new(&settings.log_filter)
        .map_err(|e| format!("configuration error: RUST_LOG is invalid ({e})"))?;
    let (loki_layer, loki) = match &settings.loki_url {
        Some(url) => {
            let (layer, shipper) = loki::start(settings, url).await?;
            (Some(layer), Some(shipper))
        }
        None => (None, None),
    };
    let (lines, stdout) =
        stdout::spawn().map_err(|e| format!("logging could not be initialised: {e}"))?;
    let stdout_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_writer(lines);
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout_layer)
        .with(loki_layer)
        .try_init()
        .map_err(|e| format!("logging could not be initialised: {e}"))?;
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

/// Per-request bookkeeping: assigns the request ID, echoes it, and writes the
/// access log line.
pub struct RequestTelemetry;

struct RequestStart(Instant);

/// Prometheus scrapes are neither counted nor logged.
fn is_metrics_scrape(req: &Request<'_>) -> bool {
    req.uri().path() == "/metrics"
}

/// The matched route's template (`/api/items/<id>`), never the raw path.
/// Borrowed from the route table: no allocation per request.
pub fn route_label<'r>(req: &'r Request<'_>) -> &'r str {
    req.route().map(|r| r.uri.path()).unwrap_or(UNMATCHED_ROUTE)
}

#[rocket::async_trait]
impl Fairing for RequestTelemetry {
    fn info(&self) -> Info {
        Info {
            name: "request telemetry",
            kind: Kind::Liftoff | Kind::Request | Kind::Response,
        }
    }

    /// The route table is final once the server is up: resolve each
    /// route's metric series now rather than by label on every request.
    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(metrics) = rocket.state::<Arc<metrics::Metrics>>() {
            metrics.resolve_routes(rocket.routes());
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        RequestId::of(req);
        req.local_cache(|| RequestStart(Instant::now()));
        if !is_metrics_scrape(req)
            && let Some(metrics) = req.rocket().state::<Arc<metrics::Metrics>>()
        {
            metrics.http_in_flight.inc();
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let request_id = RequestId::of(req);
        // Borrowed for the response's lifetime: no copy of the ID.
        res.set_header(Header::new(request_id::HEADER, request_id.as_str()));
        if is_metrics_scrape(req) {
            return;
        }
        let latency = req.local_cache(|| RequestStart(Instant::now())).0.elapsed();
        let status = res.status().code;
        let route = route_label(req);
        let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
        if let Some(metrics) = req.rocket().state::<Arc<metrics::Metrics>>() {
            metrics.http_in_flight.dec();
            metrics.observe_request(req.route(), req.method(), route, status, latency);
        }
        tracing::info!(
            target: "kindling::access",
            request_id = %request_id,
            method = %req.method(),
            route = %route,
            path = %req.uri().path(),
            status,
            latency_ms,
            "request completed"
        );
    }
}

/// Runs every route's handler (its guards, the handler and its responder)
/// inside a `request` span carrying `request_id`, `method` and `route`, so
/// every event logged while serving a request — the service's, sqlx's —
/// carries them, on stdout and in Loki. Status and latency are known only at
/// the end and are on the access line.
pub fn in_request_spans(routes: Vec<Route>) -> Vec<Route> {
    routes
        .into_iter()
        .map(|mut r| {
            r.handler = Box::new(InRequestSpan(r.handler));
            r
        })
        .collect()
}

#[derive(Clone)]
struct InRequestSpan(Box<dyn Handler>);

#[rocket::async_trait]
impl Handler for InRequestSpan {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        let span = tracing::info_span!(
            "request",
            request_id = %RequestId::of(req),
            method = %req.method(),
            route = %route_label(req),
        );
        self.0.handle(req, data).instrument(span).await
    }
}
