//! Telemetry, in one place: what every request gets and what every log line
//! goes through.
//!
//! - [`Telemetry`] is the Rocket stage (one fairing). It manages the metrics
//!   registry, mounts `GET /metrics`, assigns each request its ID and echoes
//!   it, counts and times the request, and writes its access line.
//! - [`in_request_spans`] wraps the routes' handlers so that every event
//!   logged while serving a request (the service's, sqlx's) carries its
//!   `request_id`, `method` and `route`.
//! - [`logging::init`] installs the log pipeline (JSON lines on stdout, and
//!   to Loki with LOKI_URL) and returns the handle whose `flush` must run
//!   after Rocket has shut down: requests still finishing during the grace
//!   period log too, so the flush cannot be a shutdown fairing (those run
//!   when shutdown begins).
//!
//! The database layer reports pool and query figures through
//! [`crate::db::DbObserver`], which [`metrics::Metrics`] implements: `db`
//! does not know about telemetry.

pub mod logging;
pub mod loki;
pub mod metrics;
pub mod request_id;

use std::sync::Arc;
use std::time::Instant;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Header;
use rocket::route::{self, Handler, Route};
use rocket::{Build, Data, Request, Response, Rocket, routes};
use tracing::Instrument;

use crate::db::DbObservers;
use metrics::Metrics;
use request_id::RequestId;

/// Route label for requests that matched no route, so unknown paths cannot
/// create unbounded label values.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The telemetry stage: attach it once (`startup::build_rocket` does).
pub struct Telemetry {
    metrics: Arc<Metrics>,
}

impl Telemetry {
    pub fn stage() -> Self {
        // Registration of fixed, distinct names cannot fail; a failure is a bug.
        let metrics = Metrics::new().expect("metric definitions are valid");
        Telemetry {
            metrics: Arc::new(metrics),
        }
    }
}

/// The routes the stage mounts: `GET /metrics`.
pub fn routes() -> Vec<Route> {
    routes![metrics::endpoint]
}

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
impl Fairing for Telemetry {
    fn info(&self) -> Info {
        Info {
            name: "telemetry",
            kind: Kind::Ignite | Kind::Request | Kind::Response,
        }
    }

    /// The registry is per application (tests run several in one process);
    /// the database layer reports into it as its [`DbObservers`].
    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        Ok(rocket
            .manage(self.metrics.clone())
            .manage(DbObservers(self.metrics.clone()))
            .mount("/", routes()))
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        RequestId::of(req);
        req.local_cache(|| RequestStart(Instant::now()));
        if !is_metrics_scrape(req) {
            self.metrics.http_in_flight.inc();
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
        self.metrics.http_in_flight.dec();
        self.metrics
            .observe_request(req.method(), route, status, latency);
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
