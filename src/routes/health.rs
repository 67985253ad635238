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

use crate::db::{Db, DbObservers, SchemaStatus, schema_status};
use crate::error::Problem;

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

#[derive(Debug, Serialize, Clone)]
pub struct Check {
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
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
            status: if lifecycle.is_started() { "up" } else { "down" },
            latency_ms: 0.0,
            detail: None,
        };
        let (database, migrations) = match probe {
            Ok(Ok((db_latency, schema, schema_latency))) => {
                let (status, detail) = match schema {
                    SchemaStatus::UpToDate { version } => ("up", format!("at version {version}")),
                    SchemaStatus::Pending { applied, expected } => (
                        "down",
                        format!("{applied} of {expected} migrations applied"),
                    ),
                    SchemaStatus::Inconsistent { version } => (
                        "down",
                        format!("migration {version} failed or was modified after being applied"),
                    ),
                };
                (
                    check("up", db_latency, None),
                    check(status, schema_latency, Some(detail)),
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database check failed");
                let unknown = check(
                    "unknown",
                    Duration::ZERO,
                    Some("database unreachable".into()),
                );
                (
                    check("down", start.elapsed(), Some("database error".into())),
                    unknown,
                )
            }
            Err(_) => {
                let detail = format!("no answer within {} ms", READY_TIMEOUT.as_millis());
                let unknown = check(
                    "unknown",
                    Duration::ZERO,
                    Some("database unreachable".into()),
                );
                (check("down", start.elapsed(), Some(detail)), unknown)
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
            .all(|c| c.status == "up")
    }

    fn overall(&self) -> &'static str {
        if self.startup.status != "up" || self.database.status != "up" {
            "unhealthy"
        } else if self.migrations.status != "up"
            || self.database.latency_ms > DEGRADED_LATENCY.as_secs_f64() * 1e3
        {
            "degraded"
        } else {
            "healthy"
        }
    }
}

fn check(status: &'static str, latency: Duration, detail: Option<String>) -> Check {
    Check {
        status,
        latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
        detail,
    }
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
            Json(json!({"status": "ok", "checks": self.checks})).respond_to(req)
        } else {
            let mut problem = Problem::new(Status::ServiceUnavailable, self.detail.into());
            problem.type_ = "urn:kindling:problem:not-ready".into();
            problem.extensions = Some(json!({"checks": self.checks}));
            problem.respond_to(req)
        }
    }
}

#[get("/api/v1/health/live")]
pub fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Alias of `live` kept for the older seeds' probes.
#[get("/health")]
pub fn live_alias() -> Json<Value> {
    live()
}

#[get("/api/v1/health/startup")]
pub fn startup(lifecycle: &State<Lifecycle>) -> ProbeResponse {
    let started = lifecycle.is_started();
    ProbeResponse {
        ok: started,
        detail: "start-up has not completed",
        checks: json!({"startup": {"status": if started { "up" } else { "down" }}}),
    }
}

#[get("/api/v1/health/ready")]
pub async fn ready(
    lifecycle: &State<Lifecycle>,
    db: &Db,
    db_observers: &State<DbObservers>,
) -> ProbeResponse {
    let checks = Checks::run(lifecycle, db).await;
    db_observers
        .0
        .database_checked(checks.database.status == "up");
    ProbeResponse {
        ok: checks.ready(),
        detail: "not ready to serve traffic",
        checks: serde_json::to_value(&checks).unwrap_or(Value::Null),
    }
}

/// Alias of `ready` kept for the older seeds' probes.
#[get("/db-check")]
pub async fn ready_alias(
    lifecycle: &State<Lifecycle>,
    db: &Db,
    db_observers: &State<DbObservers>,
) -> ProbeResponse {
    ready(lifecycle, db, db_observers).await
}

/// The summary is a report, not a probe: always 200, with `status` one of
/// `healthy`, `degraded` or `unhealthy`.
#[get("/api/v1/health")]
pub async fn summary(lifecycle: &State<Lifecycle>, db: &Db) -> Json<Value> {
    let checks = Checks::run(lifecycle, db).await;
    Json(json!({
        "status": checks.overall(),
        "version": env!("CARGO_PKG_VERSION"),
        "checks": checks,
    }))
}
