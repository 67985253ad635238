//! Black-box tests of the HTTP API against real Postgres. One binary with
//! modules keeps link time down; see helpers.rs for the harness.

mod config;
mod errors;
mod health;
mod helpers;
mod items;
mod lifecycle;
mod loki;
mod metrics;
mod openapi;
mod outage;
mod pagination;
mod pool;
mod users;
