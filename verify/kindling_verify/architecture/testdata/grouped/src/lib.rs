pub mod app;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod routes;
pub mod telemetry;
