//! Command line: `kindling [serve|migrate|healthcheck|openapi]` (default
//! `serve`); `kindling --help` lists them. Configuration comes from the
//! environment (core/src/config.rs), not from flags.
//!
//! Here rather than beside the routes for the dev loop: the command line
//! instantiates generic code for the whole server (clap's derives, the Tokio
//! runtime, Rocket's launch future, anyhow), and each crate compiles the
//! instances it uses. In the routes' crate that work was redone after every
//! edit of a handler, about 0.2 s of each rebuild (docs/dev-loop.md,
//! "Measured"). The routes' crate hands over what only it knows as a
//! [`Service`].

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Settings};
use crate::{db, telemetry};
use anyhow::Context;
use clap::{Parser, Subcommand};
use rocket::{Build, Rocket};

/// What the command line runs: the parts that live with the routes (`src/`),
/// which this crate cannot name. `src/main.rs` passes `kindling::SERVICE`.
#[derive(Clone, Copy)]
pub struct Service {
    /// The whole application (`kindling::startup::build_rocket`).
    pub build_rocket: fn(Settings) -> Rocket<Build>,
    /// The OpenAPI document served at /api/openapi.json.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

#[derive(Parser)]
#[command(
    name = "kindling",
    version,
    about = "kindling: items and users over HTTP/JSON, backed by Postgres"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Run the API (the default); MIGRATE_ON_START=true migrates first
    Serve,
    /// Apply the embedded migrations and exit
    Migrate,
    /// Exit 0 if this host's API answers /api/v1/health/live (for images without curl)
    Healthcheck,
    /// Print the OpenAPI document served at /api/openapi.json
    Openapi,
}

/// Exit status for configuration errors (and, from clap, usage errors).
const CONFIGURATION_ERROR: u8 = 2;

/// The whole program: `src/main.rs` calls this and nothing else.
pub fn main(service: Service) -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    if let Err(e) = config::load_dotenv() {
        eprintln!("{e}");
        return ExitCode::from(CONFIGURATION_ERROR);
    }
    match command {
        Command::Healthcheck => return healthcheck(),
        Command::Openapi => {
            return match (service.openapi)().to_pretty_json() {
                Ok(doc) => {
                    println!("{doc}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("OpenAPI document: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Serve | Command::Migrate => {}
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(CONFIGURATION_ERROR);
        }
    };
    rocket::execute(async move {
        let logging = match telemetry::logging::init(&settings.telemetry) {
            Ok(logging) => logging,
            Err(e) => {
                // The cause chain: "LOKI_URL could not be used: …: …".
                eprintln!("{:#}", anyhow::Error::from(e));
                return ExitCode::from(CONFIGURATION_ERROR);
            }
        };
        let outcome = match command {
            Command::Migrate => migrate(settings).await,
            _ => serve(service, settings).await,
        };
        if let Err(e) = &outcome {
            tracing::error!(error = format!("{e:#}"), "kindling failed");
        }
        // Queued log lines reach Loki (within a bounded time) and stdout
        // before exit.
        logging.flush(LOKI_FLUSH_TIMEOUT).await;
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        }
    })
}

// How long the process can live after SIGTERM, term by term, in the order
// they are spent; [`shutdown_bound`] sums them. The README's shutdown sentence
// and tests/api/lifecycle.rs use that sum; terminationGracePeriodSeconds
// (k8s/base/api/deployment.yaml) must cover it plus the preStop pause.

/// Rocket's mercy: after the grace period, time for connections to close
/// (src/startup.rs sets it).
pub const ROCKET_MERCY: Duration = Duration::from_secs(2);

/// Rocket 0.5 then waits this much longer for handler tasks still running
/// (a query outliving the grace period) and gives up: its server gives up at
/// grace + mercy + 1 s, and `serve` fails.
pub const ROCKET_LAST_WAIT: Duration = Duration::from_secs(1);

/// The bound on shipping queued lines to Loki, when LOKI_URL is set.
pub const LOKI_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Dropping tracing-appender 0.2's `WorkerGuard` (`Logging::flush`): up to
/// 100 ms to hand the stdout writer thread its shutdown message, then up to
/// 1 s for that thread to write what is queued (non_blocking.rs, `impl Drop
/// for WorkerGuard`).
pub const STDOUT_DRAIN_TIMEOUT: Duration = Duration::from_millis(1100);

/// Once [`main`]'s future returns, `rocket::execute` shuts its runtime down
/// with this timeout for blocking tasks (`shutdown.force`, on by default).
pub const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

/// The longest the process lives after SIGTERM with SHUTDOWN_GRACE_SECS =
/// `grace`, whatever its requests do, with (`loki`) or without LOKI_URL.
pub fn shutdown_bound(grace: Duration, loki: bool) -> Duration {
    let loki_flush = if loki {
        LOKI_FLUSH_TIMEOUT
    } else {
        Duration::ZERO
    };
    grace
        + ROCKET_MERCY
        + ROCKET_LAST_WAIT
        + loki_flush
        + STDOUT_DRAIN_TIMEOUT
        + RUNTIME_SHUTDOWN_TIMEOUT
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let applied = db::migrate(&settings.database.url)
        .await
        .context("migrate")?;
    tracing::info!(applied, "migrations up to date");
    Ok(())
}

async fn serve(service: Service, settings: Settings) -> anyhow::Result<()> {
    (service.build_rocket)(settings)
        .launch()
        .await
        .context("serve")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// For images without curl: a plain HTTP/1.0 GET of the live probe.
fn healthcheck() -> ExitCode {
    let port = std::env::var("ROCKET_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let result = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /api/v1/health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })();
    match result {
        Ok(r) if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("unhealthy: {}", r.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
