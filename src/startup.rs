//! Assembles the application. `main` and the integration tests both call
//! [`build_rocket`], so the tests exercise exactly what ships.

use std::time::Duration;

use rocket::config::{LogLevel, Shutdown, Sig};
use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket, catchers};
use rocket_db_pools::Database;

use crate::cli;
use crate::config::Settings;
use crate::db::{self, Db, PoolFigment};
use crate::error::default_catcher;
use crate::routes::{self, health::Lifecycle};
use crate::telemetry::{Telemetry, in_request_spans};

/// Rocket's configuration, derived from [`Settings`] only: Rocket.toml and
/// `ROCKET_*` variables other than address and port are not consulted, so
/// there is one source of truth.
pub fn figment(settings: &Settings) -> Figment {
    let d = &settings.database;
    let shutdown = Shutdown {
        ctrlc: true,
        signals: [Sig::Term, Sig::Int].into_iter().collect(),
        grace: settings.shutdown_grace.as_secs() as u32,
        // Time for connections to close after the grace period; one term of
        // the shutdown bound (`cli::shutdown_bound`).
        mercy: cli::ROCKET_MERCY.as_secs() as u32,
        ..Shutdown::default()
    };
    Figment::from(rocket::Config::default())
        .merge(("address", settings.address))
        .merge(("port", settings.port))
        .merge(("ident", "kindling"))
        // Rocket's own logger is replaced by tracing (see core/src/telemetry/).
        .merge(("log_level", LogLevel::Off))
        .merge(("cli_colors", false))
        .merge(("shutdown", shutdown))
        .merge((format!("databases.{}", Db::NAME), PoolFigment::from(d)))
}

/// The whole service: pool, routes, catchers, telemetry and the start-up
/// sequence. Launching it never needs the database to be up.
pub fn build_rocket(settings: Settings) -> Rocket<Build> {
    let lifecycle = Lifecycle::default();
    rocket::custom(figment(&settings))
        .attach(Db::init())
        .attach(Telemetry::stage())
        .attach(start_up(settings.clone(), lifecycle.clone()))
        .manage(settings)
        .manage(lifecycle)
        .mount("/", in_request_spans(routes::all()))
        .register("/", catchers![default_catcher])
}

/// Marks start-up complete once the server is listening and, with
/// MIGRATE_ON_START, once migrations have been applied. Migration retries
/// until Postgres answers, so the pod waits instead of crash-looping.
/// Listening is also the moment a dev build goes live: its `dev reload`
/// line (only under the dev loop, see `dev_reload`) is logged first.
fn start_up(settings: Settings, lifecycle: Lifecycle) -> AdHoc {
    AdHoc::on_liftoff("start-up", move |_| {
        Box::pin(async move {
            crate::dev_reload::log_reload_if_any();
            tokio::spawn(async move {
                if settings.migrate_on_start {
                    migrate_until_done(&settings.database.url).await;
                }
                lifecycle.mark_started();
                tracing::info!("start-up complete");
            });
        })
    })
}

async fn migrate_until_done(url: &str) {
    let mut delay = Duration::from_millis(250);
    loop {
        match db::migrate(url).await {
            Ok(applied) => {
                tracing::info!(applied, "migrations up to date");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "migration failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
