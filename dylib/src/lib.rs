//! The dependencies as one shared library, for the dev loop only (see
//! Cargo.toml). Naming a crate here is what puts it into the library.

pub use anyhow;
pub use base64;
pub use bytes;
pub use clap;
pub use dotenvy;
pub use email_address;
pub use prometheus;
pub use prost;
pub use prost_types;
pub use reqwest;
pub use rocket;
pub use rocket_db_pools;
pub use serde;
pub use serde_json;
pub use snap;
pub use sqlx;
pub use thiserror;
pub use time;
pub use tokio;
pub use tracing;
pub use tracing_appender;
pub use tracing_log;
pub use tracing_subscriber;
pub use utoipa;
pub use uuid;
