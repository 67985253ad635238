//! Command line: `kindling [serve|migrate|healthcheck|openapi]` (default `serve`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use kindling::config::{self, Settings};
use kindling::{db, startup, telemetry};

const USAGE: &str = "usage: kindling [serve|migrate|healthcheck|openapi]
  serve        run the API (default); MIGRATE_ON_START=true migrates first
  migrate      apply the embedded migrations and exit
  healthcheck  exit 0 if this host's API answers /api/v1/health/live
  openapi      print the OpenAPI document served at /api/openapi.json";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    if let Err(e) = config::load_dotenv() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if command == "healthcheck" {
        return healthcheck();
    }
    if command == "openapi" {
        println!("{:#}", kindling::routes::openapi::spec());
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "migrate") {
        eprintln!("unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    rocket::execute(async move {
        let logging = match telemetry::init_logging(&settings.telemetry).await {
            Ok(logging) => logging,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let outcome = if command == "migrate" {
            migrate(settings).await
        } else {
            serve(settings).await
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "{command} failed");
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

async fn migrate(settings: Settings) -> Result<(), String> {
    let applied = db::migrate(&settings.database.url)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(applied, "migrations up to date");
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), String> {
    startup::build_rocket(settings)
        .launch()
        .await
        .map(|_| tracing::info!("shut down cleanly"))
        .map_err(|e| e.to_string())
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
