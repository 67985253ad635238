//! Command line: `kindling [serve|migrate|healthcheck|openapi]` (default
//! `serve`); `kindling --help` lists them. Configuration comes from the
//! environment (src/config.rs), not from flags.
//!
//! In the library rather than in `src/main.rs` for the dev loop: clap's
//! derives, the Tokio runtime and anyhow are generic code that the crate
//! using them compiles. In the binary crate they were compiled again after
//! every edit of the library; here they sit in a unit of incremental
//! compilation that an edit elsewhere leaves untouched (docs/dev-loop.md,
//! "Measured").

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Settings};
use crate::{db, startup, telemetry};
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
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
pub fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    if let Err(e) = config::load_dotenv() {
        eprintln!("{e}");
        return ExitCode::from(CONFIGURATION_ERROR);
    }
    match command {
        Command::Healthcheck => return healthcheck(),
        Command::Openapi => {
            return match crate::routes::openapi::spec().to_pretty_json() {
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
        let logging = match telemetry::logging::init(&settings.telemetry).await {
            Ok(logging) => logging,
            Err(e) => {
                // The cause chain: "LOKI_URL could not be used: …: …".
                eprintln!("{:#}", anyhow::Error::from(e));
                return ExitCode::from(CONFIGURATION_ERROR);
            }
        };
        let outcome = match command {
            Command::Migrate => migrate(settings).await,
            _ => serve(settings).await,
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

/// Part of the shutdown budget: terminationGracePeriodSeconds covers the
/// preStop pause, SHUTDOWN_GRACE_SECS, Rocket's 2 s mercy and this.
const LOKI_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let applied = db::migrate(&settings.database.url)
        .await
        .context("migrate")?;
    tracing::info!(applied, "migrations up to date");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    startup::build_rocket(settings)
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
