//! kindling-core: everything the routes of the kindling API build on. The
//! `kindling` crate (`src/`) re-exports each module under the same name.
//!
//! - `cli`         the command line (`kindling serve|migrate|healthcheck|openapi`)
//! - `config`      reads the environment (one place), `Settings`
//! - `domain/*`    validated input types and pagination
//! - `repository/*` all SQL
//! - `db`          sqlx's connection pool behind Rocket's guards, migrations, schema checks, query time limits
//! - `dev_reload`  the dev loop's `dev reload` line after a live update (dev image only)
//! - `error`       every error → RFC 9457 problem+json
//! - `guards`      JSON body, path ids, If-Match
//! - `telemetry`   request IDs, access log, metrics, `/metrics`, logs to stdout and Loki

pub mod cli;
pub mod config;
pub mod db;
pub mod dev_reload;
pub mod domain;
pub mod error;
pub mod guards;
pub mod repository;
pub mod telemetry;
