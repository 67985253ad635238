//! Every route of the API, in one list (`GET /metrics` belongs to the
//! telemetry stage, which mounts it). tests/api/openapi.rs checks that the
//! OpenAPI document (`openapi.rs`) describes exactly these and `/metrics`.

pub mod health;
pub mod items;
pub mod openapi;
pub mod responses;
pub mod users;

use rocket::{Route, routes};

pub fn all() -> Vec<Route> {
    routes![
        items::list,
        items::get,
        items::create,
        items::replace,
        items::remove,
        users::list,
        users::get,
        users::create,
        health::live,
        health::live_alias,
        health::startup,
        health::ready,
        health::ready_alias,
        health::summary,
        openapi::document,
    ]
}
