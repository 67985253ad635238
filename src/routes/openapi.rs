//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API, derived
//! by utoipa from the handlers' `#[utoipa::path]` attributes and the types'
//! `ToSchema`, so it changes with the code. tests/api/openapi.rs checks that
//! it lists exactly the mounted routes and that its limits are the domain's.
//!
//! Here: the list of documented handlers. The error responses that several
//! handlers share live in `responses.rs`, below both: the document is
//! assembled above the handlers, which never import it.

use rocket::get;
use rocket::serde::json::Json;
use utoipa::OpenApi;

use crate::error::Problem;
use crate::routes::responses::ValidationProblem;
use crate::routes::{health, items, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kindling API",
        description = "Items and users over a pooled Postgres. Every error is RFC 9457 application/problem+json."
    ),
    paths(
        items::list,
        items::create,
        items::get,
        items::replace,
        items::remove,
        users::list,
        users::create,
        users::get,
        health::live,
        health::live_alias,
        health::startup,
        health::ready,
        health::ready_alias,
        health::summary,
        document,
        // Mounted by the telemetry stage (`telemetry::routes`).
        crate::telemetry::metrics::endpoint,
    ),
    // Referenced only from the shared responses below, which utoipa does not
    // scan for schemas.
    components(schemas(Problem, ValidationProblem))
)]
pub struct ApiDoc;

/// The document, as served and as printed by `kindling openapi`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // utoipa fills it from Cargo.toml, which names no license (`publish = false`).
    doc.info.license = None;
    doc
}

/// This document.
#[utoipa::path(
    operation_id = "getOpenapiDocument",
    tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object))
)]
#[get("/api/openapi.json")]
pub fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
