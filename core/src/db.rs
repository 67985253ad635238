//! The database: sqlx's own `PgPool` behind rocket_db_pools' request
//! guards, the embedded migrations, and schema checks for health.
//!
//! rocket_db_pools 0.2's built-in sqlx support is for sqlx 0.7 and connects
//! eagerly at ignition, so a database that is down at start-up would abort
//! the launch. [`DbPool`] implements its `Pool` trait for a sqlx 0.8 pool
//! that connects on first use (`connect_lazy_with`): the process starts,
//! answers live/startup, and the `Connection<Db>` guard answers 503 until
//! Postgres is reachable.
//!
//! The pool is sqlx's, used as its authors intend: it pings a connection
//! as it comes back (which also sends the ROLLBACK of a transaction a
//! handler left open) and again before lending it (`test_before_acquire`,
//! its default), replaces connections after [`MAX_LIFETIME`], and bounds
//! every wait. Skipping the checkout ping for a connection released within
//! the last second (a `before_acquire` rule) was measured and dropped: a
//! Postgres restarted within that second failed the next requests
//! (`tests/api/pool.rs`, the restart test), which is what the ping is for.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::http::Status;
use rocket::request::{self, FromRequest, Request};
use rocket_db_pools::{Connection, Database, Pool};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool, Postgres};

use crate::config::DatabaseSettings;

/// Migrations in the repository's `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The pool's settings live in Rocket's figment under `databases.<Db::NAME>`
/// (see `startup::figment`), filled from [`crate::config::DatabaseSettings`].
#[derive(Database)]
#[database("kindling")]
pub struct Db(DbPool);

/// The pool, which does not connect until first used, and the per-query
/// time limit.
pub struct DbPool {
    pub pool: PgPool,
    pub query_timeout: Duration,
}

/// The shape of `databases.kindling` in Rocket's figment.
#[derive(Debug, Serialize, Deserialize)]
pub struct PoolFigment {
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    pub query_timeout_ms: u64,
}

impl From<&DatabaseSettings> for PoolFigment {
    fn from(d: &DatabaseSettings) -> Self {
        PoolFigment {
            url: d.url.clone(),
            max_connections: d.max_connections,
            min_connections: d.min_connections,
            acquire_timeout_ms: d.acquire_timeout.as_millis() as u64,
            query_timeout_ms: d.query_timeout.as_millis() as u64,
        }
    }
}

/// Idle connections beyond `DATABASE_MIN_CONNECTIONS` are closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are replaced after this, so that server-side memory held by
/// a long-lived session is returned and a failover's new address is picked
/// up. sqlx's default.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
impl DbPool {
    /// A lazily connecting pool from the figment's settings.
    pub fn from_figment(cfg: &PoolFigment) -> Result<Self, sqlx::Error> {
        let query_timeout = Duration::from_millis(cfg.query_timeout_ms);
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(Duration::from_millis(cfg.acquire_timeout_ms))
            .idle_timeout(IDLE_TIMEOUT)
            .max_lifetime(MAX_LIFETIME)
            .connect_lazy_with(connect_options(&cfg.url, query_timeout)?);
        Ok(DbPool {
            pool,
            query_timeout,
        })
    }
}

#[rocket::async_trait]
impl Pool for DbPool {
    type Connection = PoolConnection<Postgres>;
    type Error = sqlx::Error;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let cfg: PoolFigment = figment
            .extract()
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        DbPool::from_figment(&cfg)
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.pool.acquire().await
    }

    /// Runs as a Rocket shutdown fairing, and Rocket stops accepting
    /// connections only after its shutdown fairings return, so this must not
    /// wait for checked-out connections (a request stuck in a long query
    /// would hold the listener open and the process alive). sqlx's `close`
    /// waits for them, so it runs in the background: new checkouts fail at
    /// once, idle connections close, and Rocket's grace and mercy bound the
    /// rest.
    async fn close(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move { pool.close().await });
    }
}

/// Connection options shared by the pool and `kindling migrate`. The server
/// enforces the same statement timeout the client waits for.
pub fn connect_options(
    url: &str,
    query_timeout: Duration,
) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("kindling")
        .options([("statement_timeout", query_timeout.as_millis().to_string())])
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// What the database layer reports about each request's connection and
/// queries. Telemetry implements it (`telemetry::metrics::Metrics`) and the
/// application hands it to Rocket as [`DbObservers`], so this module does not
/// depend on telemetry.
pub trait DbObserver: Send + Sync {
    /// A request waited `waited` for a pooled connection; `ok` if it got one.
    fn connection_acquired(&self, waited: Duration, ok: bool);
    /// One round trip under `operation` ended; `reached_database` unless it
    /// failed for want of a server (timeout, connection error).
    fn query_finished(&self, operation: &'static str, took: Duration, reached_database: bool);
    /// A readiness check found the database `reachable` or not.
    fn database_checked(&self, reachable: bool);
}

/// The [`DbObserver`] that Rocket manages for [`DbConn`].
#[derive(Clone)]
pub struct DbObservers(pub Arc<dyn DbObserver>);

/// A pooled connection for one request: rocket_db_pools' `Connection<Db>`
/// guard (503 through the catcher when the pool cannot supply one within
/// DATABASE_ACQUIRE_TIMEOUT_MS), the per-query time limit, and reports to the
/// [`DbObserver`].
pub struct DbConn {
    conn: Connection<Db>,
    query_timeout: Duration,
    observer: Arc<dyn DbObserver>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for DbConn {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let (Some(db), Some(DbObservers(observer))) =
            (Db::fetch(req.rocket()), req.rocket().state::<DbObservers>())
        else {
            return request::Outcome::Error((Status::InternalServerError, ()));
        };
        let started = Instant::now();
        let outcome = req.guard::<Connection<Db>>().await;
        observer.connection_acquired(started.elapsed(), outcome.is_success());
        match outcome {
            request::Outcome::Success(conn) => request::Outcome::Success(DbConn {
                conn,
                query_timeout: db.query_timeout,
                observer: observer.clone(),
            }),
            request::Outcome::Error((status, _)) => request::Outcome::Error((status, ())),
            request::Outcome::Forward(status) => request::Outcome::Forward(status),
        }
    }
}

impl DbConn {
    /// Runs one database round trip, bounded by the query timeout (a hung
    /// server gives 503, never a hang) and recorded under `operation` in
    /// `kindling_db_query_duration_seconds`.
    pub async fn run<T>(
        &mut self,
        operation: &'static str,
        query: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.query_timeout, query(&mut self.conn)).await;
        let reached_database = matches!(&result, Ok(Ok(_)) | Ok(Err(sqlx::Error::Database(_))));
        self.observer
            .query_finished(operation, started.elapsed(), reached_database);
        match result {
            Ok(result) => Ok(result?),
            Err(_) => Err(DbError::TimedOut {
                operation,
                limit_ms: self.query_timeout.as_millis(),
            }),
        }
    }
}

/// A failed round trip. `crate::error` decides what each means to a client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("{operation} exceeded the query time limit of {limit_ms} ms")]
    TimedOut {
        operation: &'static str,
        limit_ms: u128,
    },
}

/// Advisory-lock key that serialises `kindling migrate` runs (ASCII "kindling").
const MIGRATE_LOCK_KEY: i64 = 0x6b696e646c696e67;

/// Applies the embedded migrations and returns how many this run applied.
/// Concurrent migrators (two Job pods, or a Job and an API pod with
/// MIGRATE_ON_START) queue on a Postgres advisory lock; versions already
/// applied are skipped, so re-running is harmless.
pub async fn migrate(url: &str) -> Result<usize, sqlx::migrate::MigrateError> {
    // Migrations may legitimately run longer than a request's statement
    // timeout. One connection, so the session-level lock, the counts and
    // sqlx's own migration lock share a session (and the future stays Send).
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(connect_options(url, Duration::from_secs(600))?)
        .await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&pool)
        .await?;
    let before = applied_versions(&mut *pool.acquire().await?).await?.len();
    MIGRATOR.run(&pool).await?;
    let after = applied_versions(&mut *pool.acquire().await?).await?.len();
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(after.saturating_sub(before))
}

/// Where the schema stands relative to the embedded migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    UpToDate {
        version: i64,
    },
    Pending {
        applied: usize,
        expected: usize,
    },
    /// A migration failed half-way (`success = false`) or was edited after
    /// being applied (checksum differs).
    Inconsistent {
        version: i64,
    },
}

pub async fn schema_status(conn: &mut PgConnection) -> Result<SchemaStatus, sqlx::Error> {
    let applied = applied_versions(conn).await?;
    let mut latest = 0;
    let mut pending = 0;
    for m in MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        match applied.iter().find(|(v, _, _)| *v == m.version) {
            Some((v, success, checksum)) if !*success || checksum[..] != m.checksum[..] => {
                return Ok(SchemaStatus::Inconsistent { version: *v });
            }
            Some(_) => latest = latest.max(m.version),
            None => pending += 1,
        }
    }
    let expected = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count();
    Ok(if pending == 0 {
        SchemaStatus::UpToDate { version: latest }
    } else {
        SchemaStatus::Pending {
            applied: expected - pending,
            expected,
        }
    })
}

async fn applied_versions(
    conn: &mut PgConnection,
) -> Result<Vec<(i64, bool, Vec<u8>)>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
}
