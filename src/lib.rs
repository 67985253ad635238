//! kindling: the items and users API that the kindling platform runs.
//!
//! Where things live (this crate, `src/`):
//! - `routes/*`    one file per resource; `routes::all()` lists every route
//! - `startup`     assembles the Rocket application (`build_rocket`)
//! - [`SERVICE`]   both, handed to the command line
//!
//! and in `kindling-core` (`core/src/`), re-exported here under the same
//! names, so `crate::db` and `kindling::db` mean the same module everywhere:
//! - `cli`         the command line (`kindling serve|migrate|healthcheck|openapi`)
//! - `config`      reads the environment (one place), `Settings`
//! - `domain/*`    validated input types and pagination
//! - `repository/*` all SQL
//! - `db`          sqlx's connection pool behind Rocket's guards, migrations, schema checks, query time limits
//! - `error`       every error → RFC 9457 problem+json
//! - `guards`      JSON body, path ids, If-Match
//! - `telemetry`   request IDs, access log, metrics, `/metrics`, logs to stdout and Loki
//! - `dev_reload`  the dev loop's `dev reload` line (build figures handed over by its scripts)
//!
//! Two crates so that an edit to a handler recompiles only this one
//! (docs/dev-loop.md, "Measured").

pub use kindling_core::{
    cli, config, db, dev_reload, domain, error, guards, repository, telemetry,
};

pub mod routes;
pub mod startup;

/// What `kindling` runs, handed to the command line by [`main`].
pub const SERVICE: cli::Service = cli::Service {
    build_rocket: startup::build_rocket,
    openapi: routes::openapi::spec,
};

/// The whole program: the command line ([`cli::main`]) running [`SERVICE`].
/// `src/main.rs` calls it. The dev loop also compiles this file as the root
/// of a binary (devbin/Cargo.toml), where this is the entry point.
pub fn main() -> std::process::ExitCode {
    cli::main(SERVICE)
}

// The dev loop's build links every dependency from one shared library
// (dylib/Cargo.toml); naming the crate is what links it.
#[cfg(feature = "dynamic-linking")]
use kindling_dylib as _;
