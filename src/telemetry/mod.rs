//! Logs and request telemetry. Every log line is one JSON object on stdout;
//! each request produces one access line carrying its `request_id`,
//! `method`, `route` template, `status` and `latency_ms`.

use std::time::Instant;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySettings;
use crate::request_id::{self, RequestId};

/// Route label for requests that matched no route, so unknown paths cannot
/// create unbounded label values.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Installs the global subscriber: JSON lines on stdout, filtered by
/// `RUST_LOG`. `log` records (Rocket's, sqlx's) are bridged into tracing.
pub fn init_logging(settings: &TelemetrySettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.log_filter)
        .map_err(|e| format!("configuration error: RUST_LOG is invalid ({e})"))?;
    let stdout = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true);
    tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .try_init()
        .map_err(|e| format!("logging could not be initialised: {e}"))
}

/// Per-request bookkeeping: assigns the request ID, echoes it, and writes the
/// access log line.
pub struct RequestTelemetry;

struct RequestStart(Instant);

/// The matched route's template (`/api/items/<id>`), never the raw path.
pub fn route_label(req: &Request<'_>) -> String {
    req.route()
        .map(|r| r.uri.path().to_string())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned())
}

#[rocket::async_trait]
impl Fairing for RequestTelemetry {
    fn info(&self) -> Info {
        Info {
            name: "request telemetry",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        RequestId::of(req);
        req.local_cache(|| RequestStart(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let request_id = RequestId::of(req);
        res.set_header(Header::new(request_id::HEADER, request_id.to_string()));
        let latency = req.local_cache(|| RequestStart(Instant::now())).0.elapsed();
        let status = res.status().code;
        let route = route_label(req);
        let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
        if route == "/metrics" {
            return;
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
