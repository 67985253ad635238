//! Probes. `live` never touches the database; `startup` reports the start-up
//! sequence; `ready` asks Postgres a trivial question with a short timeout and
//! checks the schema is at the latest embedded migration. The summary at
//! `/api/v1/health/` reports each check with its latency.
//!
//! Probe failures are `application/problem+json` with a `checks` member, so
//! they follow the same error contract as the rest of the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{Request, State, get, response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoResponses, ToSchema};

use crate::db::{Db, DbObservers, SchemaStatus, schema_status};
use crate::error::Problem;
use crate::routes::responses::PROBLEM_JSON;

/// How long the readiness check waits for Postgres.
pub const READY_TIMEOUT: Duration = Duration::from_millis(1000);
/// A database slower than this makes the summary `degraded`.
pub const DEGRADED_LATENCY: Duration = Duration::from_millis(250);

/// Set once start-up is complete (see `startup.rs`). Clones share the flag.
#[derive(Debug, Default, Clone)]
pub struct Lifecycle {
    started: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Up,
    Down,
    /// Not checked: what it depends on is down.
    Unknown,
}

#[derive(Debug, Serialize, Clone, ToSchema)]
pub struct Check {
    pub status: CheckStatus,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// The summary's verdict: `degraded` still serves (pending migrations, or a
/// database slower than `DEGRADED_LATENCY`), `unhealthy` does not.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

/// Body of `GET /api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    status: Overall,
    version: &'static str,
    checks: Checks,
}

#[derive(Debug, Serialize, ToSchema)]
struct Checks {
    startup: Check,
    database: Check,
    migrations: Check,
}

impl Checks {
    async fn run(lifecycle: &Lifecycle, db: &Db) -> Checks {
        let start = Instant::now();
        let probe = tokio::time::timeout(READY_TIMEOUT, async {
            let mut conn = db.pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            let db_latency = start.elapsed();
            let schema_start = Instant::now();
            let schema = schema_status(&mut conn).await?;
            Ok::<_, sqlx::Error>((db_latency, schema, schema_start.elapsed()))
        })
        .await;
        let startup = Check {
            status: if lifecycle.is_started() {
                CheckStatus::Up
            } else {
                CheckStatus::Down
            },
            latency_ms: 0.0,
            detail: None,
        };
        let (database, migrations) = match probe {
            Ok(Ok((db_latency, schema, schema_latency))) => {
                let (status, detail) = match schema {
                    SchemaStatus::UpToDate { version } => {
                        (CheckStatus::Up, format!("at version {version}"))
                    }
                    SchemaStatus::Pending { applied, expected } => (
                        CheckStatus::Down,
                        format!("{applied} of {expected} migrations applied"),
                    ),
                    SchemaStatus::Inconsistent { version } => (
                        CheckStatus::Down,
                        format!("migration {version} failed or was modified after being applied"),
                    ),
                };
                (
                    check(CheckStatus::Up, db_latency, None),
                    check(status, schema_latency, Some(detail)),
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database check failed");
                let unknown = check(
                    CheckStatus::Unknown,
                    Duration::ZERO,
                    Some("database unreachable".into()),
                );
                (
                    check(
                        CheckStatus::Down,
                        start.elapsed(),
                        Some("database error".into()),
                    ),
                    unknown,
                )
            }
            Err(_) => {
                let detail = format!("no answer within {} ms", READY_TIMEOUT.as_millis());
                let unknown = check(
                    CheckStatus::Unknown,
                    Duration::ZERO,
                    Some("database unreachable".into()),
                );
                (
                    check(CheckStatus::Down, start.elapsed(), Some(detail)),
                    unknown,
                )
            }
        };
        Checks {
            startup,
            database,
            migrations,
        }
    }

    fn ready(&self) -> bool {
        [&self.startup, &self.database, &self.migrations]
            .iter()
            .all(|c| c.status == CheckStatus::Up)
    }

    fn overall(&self) -> Overall {
        if self.startup.status != CheckStatus::Up || self.database.status != CheckStatus::Up {
            Overall::Unhealthy
        } else if self.migrations.status != CheckStatus::Up
            || self.database.latency_ms > DEGRADED_LATENCY.as_secs_f64() * 1e3
        {
            Overall::Degraded
        } else {
            Overall::Healthy
        }
    }
}

fn check(status: CheckStatus, latency: Duration, detail: Option<String>) -> Check {
    Check {
        status,
        latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
        detail,
    }
}

/// Body of a passing probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: &'static str,
    /// What was checked (`live` checks nothing and omits it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    checks: Option<Value>,
}

impl Probe {
    fn ok(checks: Option<Value>) -> Self {
        Probe {
            status: "ok",
            checks,
        }
    }
}

/// The OpenAPI description of [`ProbeResponse`].
#[derive(IntoResponses)]
pub enum ProbeResponses {
    #[response(status = 200, description = "Passing")]
    Passing(Probe),
    #[response(
        status = 503,
        description = "Failing; `checks` says which check failed",
        content_type = PROBLEM_JSON,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
    )]
    Failing(Problem),
}

/// 200 with a JSON body, or 503 problem+json carrying the same `checks`.
pub struct ProbeResponse {
    ok: bool,
    detail: &'static str,
    checks: Value,
}

impl<'r> response::Responder<'r, 'static> for ProbeResponse {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if self.ok {
            Json(Probe::ok(Some(self.checks))).respond_to(req)
        } else {
            let mut problem = Problem::new(Status::ServiceUnavailable, self.detail.into());
            problem.type_ = "urn:kindling:problem:not-ready".into();
            problem.extensions = Some(json!({"checks": self.checks}));
            problem.respond_to(req)
        }
    }
}

/// Liveness: the process answers; never touches the database
#[utoipa::path(
    operation_id = "getLiveness",
    tag = "health",
    responses((status = 200, description = "Passing", body = Probe))
)]
#[get("/api/v1/health/live")]
pub fn live() -> Json<Probe> {
    Json(Probe::ok(None))
}

/// Alias of /api/v1/health/live
// Kept for the older seeds' probes.
#[utoipa::path(
    operation_id = "getLivenessAlias",
    tag = "health",
    responses((status = 200, description = "Passing", body = Probe))
)]
#[get("/health")]
pub fn live_alias() -> Json<Probe> {
    live()
}

/// Start-up complete (configuration, pool, migrations)
#[utoipa::path(operation_id = "getStartup", tag = "health", responses(ProbeResponses))]
#[get("/api/v1/health/startup")]
pub fn startup(lifecycle: &State<Lifecycle>) -> ProbeResponse {
    let started = lifecycle.is_started();
    ProbeResponse {
        ok: started,
        detail: "start-up has not completed",
        checks: json!({"startup": {"status": if started { "up" } else { "down" }}}),
    }
}

/// Postgres answers and the schema is at the latest migration
#[utoipa::path(
    operation_id = "getReadiness",
    tag = "health",
    responses(ProbeResponses)
)]
#[get("/api/v1/health/ready")]
pub async fn ready(
    lifecycle: &State<Lifecycle>,
    db: &Db,
    db_observers: &State<DbObservers>,
) -> ProbeResponse {
    let checks = Checks::run(lifecycle, db).await;
    db_observers
        .0
        .database_checked(checks.database.status == CheckStatus::Up);
    ProbeResponse {
        ok: checks.ready(),
        detail: "not ready to serve traffic",
        checks: serde_json::to_value(&checks).unwrap_or(Value::Null),
    }
}

/// Alias of /api/v1/health/ready
// Kept for the older seeds' probes.
#[utoipa::path(
    operation_id = "getReadinessAlias",
    tag = "health",
    responses(ProbeResponses)
)]
#[get("/db-check")]
pub async fn ready_alias(
    lifecycle: &State<Lifecycle>,
    db: &Db,
    db_observers: &State<DbObservers>,
) -> ProbeResponse {
    ready(lifecycle, db, db_observers).await
}

/// Health report with every check's status and latency; always 200
// A report, not a probe: `status` says healthy, degraded or unhealthy.
#[utoipa::path(
    operation_id = "getHealthReport",
    tag = "health",
    responses((status = 200, description = "Report", body = HealthReport))
)]
#[get("/api/v1/health")]
pub async fn summary(lifecycle: &State<Lifecycle>, db: &Db) -> Json<HealthReport> {
    let checks = Checks::run(lifecycle, db).await;
    Json(HealthReport {
        status: checks.overall(),
        version: env!("CARGO_PKG_VERSION"),
        checks,
    })
}
