//! Configuration: the one place that reads the environment.
//!
//! Precedence, highest first: variables from a Kubernetes Secret, variables
//! from a ConfigMap (the Deployment lists the Secret after the ConfigMap, so it
//! wins), a `.env` file in the working directory (never overrides a variable
//! that is already set), then the defaults below. A missing or malformed
//! setting is a [`ConfigError`] naming the variable; `main` prints it on one
//! line and exits with status 2.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// Default `RUST_LOG`: our events at info; Rocket's own per-request chatter
/// is replaced by the access log line (see telemetry), so only its warnings
/// stay; Postgres NOTICEs (e.g. "already exists, skipping") only from warn.
pub const DEFAULT_LOG_FILTER: &str =
    "info,rocket=warn,rocket::server::_=off,sqlx::postgres::notice=warn";

/// Everything the service needs to start, parsed and validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub address: IpAddr,
    pub port: u16,
    /// Largest accepted request body. Kept small on purpose: an API that
    /// stores short names and emails has no use for large bodies.
    pub body_limit_bytes: u64,
    /// Time in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub migrate_on_start: bool,
    pub telemetry: TelemetrySettings,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    /// Contains the password: never printed (see the Debug impl).
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// Upper bound on any single database round trip made by a request.
    pub query_timeout: Duration,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// Where logs go and how they are labelled.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// `RUST_LOG` filter directives.
    pub log_filter: String,
    /// Base URL of Loki; no push when unset.
    pub loki_url: Option<String>,
    /// Bound on compressed log batches held while Loki is unreachable.
    pub loki_queue_max_bytes: usize,
    pub environment: String,
    pub namespace: String,
    pub pod_name: String,
}

/// A setting that is missing or cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable} {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

/// Loads `.env` when present. A missing file is fine; a malformed one is an
/// error, because silently ignoring half of it would be worse.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError {
            variable: ".env".into(),
            problem: format!("could not be read: {e}"),
        }),
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of
    /// mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let url = env.required("DATABASE_URL")?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(env.invalid("DATABASE_URL", "must be a postgres:// URL"));
        }
        if let Err(e) = PgConnectOptions::from_str(&url) {
            return Err(ConfigError {
                variable: "DATABASE_URL".into(),
                problem: format!("is not a valid postgres:// URL ({})", redact_error(&e)),
            });
        }
        let max_connections: u32 =
            env.parsed("DATABASE_MAX_CONNECTIONS", default_max_connections())?;
        let min_connections: u32 = env.parsed("DATABASE_MIN_CONNECTIONS", 0)?;
        if max_connections == 0 {
            return Err(env.invalid("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if min_connections > max_connections {
            return Err(env.invalid(
                "DATABASE_MIN_CONNECTIONS",
                "must not exceed DATABASE_MAX_CONNECTIONS",
            ));
        }
        let database = DatabaseSettings {
            url,
            max_connections,
            min_connections,
            acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000)?,
            query_timeout: env.millis("DATABASE_QUERY_TIMEOUT_MS", 5_000)?,
        };
        let body_limit_bytes: u64 = env.parsed("BODY_LIMIT_BYTES", 64 * 1024)?;
        if !(1..=16 * 1024 * 1024).contains(&body_limit_bytes) {
            return Err(env.invalid("BODY_LIMIT_BYTES", "must be between 1 and 16777216"));
        }
        let loki_url = env.optional("LOKI_URL");
        if let Some(url) = &loki_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(env.invalid("LOKI_URL", "must start with http:// or https://"));
        }
        Ok(Settings {
            database,
            address: env.parsed("ROCKET_ADDRESS", IpAddr::from([127, 0, 0, 1]))?,
            port: env.parsed("ROCKET_PORT", 8000)?,
            body_limit_bytes,
            shutdown_grace: Duration::from_secs(env.parsed("SHUTDOWN_GRACE_SECS", 10)?),
            migrate_on_start: env.boolean("MIGRATE_ON_START", false)?,
            telemetry: TelemetrySettings {
                log_filter: env
                    .optional("RUST_LOG")
                    .unwrap_or_else(|| DEFAULT_LOG_FILTER.into()),
                loki_url,
                loki_queue_max_bytes: env.parsed("LOKI_QUEUE_MAX_BYTES", 4 * 1024 * 1024)?,
                environment: env
                    .optional("APP_ENVIRONMENT")
                    .unwrap_or_else(|| "local".into()),
                namespace: env
                    .optional("POD_NAMESPACE")
                    .unwrap_or_else(|| "none".into()),
                pod_name: env.optional("POD_NAME").unwrap_or_else(local_hostname),
            },
        })
    }
}

/// sqlx's URL errors can echo the URL, password included; keep only the kind.
fn redact_error(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "unparseable",
        _ => "invalid",
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "local".into())
}

/// Default pool size: four connections per core the process may use
/// (`available_parallelism` honours cgroup CPU limits), between 4 and 32.
/// A request holds a connection for one round trip, so a few per core keep
/// the cores busy while others wait on Postgres; more only queue inside
/// Postgres. bench/run.sh measured no throughput difference between 4, 10
/// and 16 on 2 cores (docs/performance.md).
pub fn default_max_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).clamp(4, 32) as u32
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// Unset and empty are the same: an empty value in a ConfigMap means "use the default".
    fn optional(&self, key: &str) -> Option<String> {
        (self.0)(key).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.optional(key).ok_or_else(|| ConfigError {
            variable: key.into(),
            problem: "is not set".into(),
        })
    }

    fn invalid(&self, key: &str, problem: &str) -> ConfigError {
        ConfigError {
            variable: key.into(),
            problem: problem.into(),
        }
    }

    fn parsed<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.optional(key) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
                variable: key.into(),
                problem: format!("has an invalid value {raw:?}"),
            }),
        }
    }

    fn millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parsed(key, default)?;
        if ms == 0 {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        Ok(Duration::from_millis(ms))
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
            Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
            Some(v) => Err(ConfigError {
                variable: key.into(),
                problem: format!("has an invalid value {v:?} (expected true or false)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://u:p@localhost:5432/db");

    #[test]
    fn defaults_apply_when_only_database_url_is_set() {
        let s = settings(&[URL]).unwrap();
        assert_eq!(s.port, 8000);
        assert_eq!(s.body_limit_bytes, 65_536);
        assert_eq!(s.database.max_connections, default_max_connections());
        assert!((4..=32).contains(&s.database.max_connections));
        assert!(!s.migrate_on_start);
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let e = settings(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration error: DATABASE_URL is not set"
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let e = settings(&[URL, ("ROCKET_PORT", "eighty")]).unwrap_err();
        assert_eq!(e.variable, "ROCKET_PORT");
        let e = settings(&[URL, ("MIGRATE_ON_START", "maybe")]).unwrap_err();
        assert_eq!(e.variable, "MIGRATE_ON_START");
        let e = settings(&[("DATABASE_URL", "mysql://nope")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
    }

    #[test]
    fn debug_output_never_contains_the_password() {
        let s = settings(&[("DATABASE_URL", "postgres://u:hunter2@localhost/db")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
