//! kindling: the items and users API that the kindling platform runs.
//!
//! Where things live:
//! - `cli`         the command line (`kindling serve|migrate|healthcheck|openapi`)
//! - `config`      reads the environment (one place), `Settings`
//! - `startup`     assembles the Rocket application (`build_rocket`)
//! - `routes/*`    one file per resource; `routes::all()` lists every route
//! - `domain/*`    validated input types and pagination
//! - `repository/*` all SQL
//! - `db`          connection pool (`db/pool.rs`), migrations, schema checks, query time limits
//! - `error`       every error → RFC 9457 problem+json
//! - `guards`      JSON body, path ids, If-Match
//! - `telemetry`   request IDs, access log, metrics, `/metrics`, logs to stdout and Loki

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod guards;
pub mod repository;
pub mod routes;
pub mod startup;
pub mod telemetry;
