//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API, derived
//! by utoipa from the handlers' `#[utoipa::path]` attributes and the types'
//! `ToSchema`, so it changes with the code. tests/api/openapi.rs checks that
//! it lists exactly the mounted routes and that its limits are the domain's.
//!
//! Here: the list of documented handlers, and the error responses that
//! several operations share.

use rocket::get;
use rocket::serde::json::Json;
use utoipa::{IntoResponses, OpenApi, ToSchema};

use crate::error::{FieldErrors, Problem};
use crate::routes::{health, items, users};

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The 400 of an operation whose only input is the id in its path.
pub const BAD_ID: &str = "The id is not a positive integer";

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

/// A 422's body: `errors` maps each field to its message.
#[derive(ToSchema)]
pub struct ValidationProblem {
    #[serde(flatten)]
    pub problem: Problem,
    #[schema(inline)]
    pub errors: FieldErrors,
}

/// The failures of reading a JSON body, shared by the operations that take
/// one (their 400 is listed with each, as it also covers their other input).
#[derive(IntoResponses)]
pub enum BodyErrors {
    #[response(
        status = 413,
        description = "Body larger than BODY_LIMIT_BYTES (default 65536)",
        content_type = PROBLEM_JSON
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Content-Type is not application/json",
        content_type = PROBLEM_JSON
    )]
    NotJson(Problem),
    #[response(
        status = 422,
        description = "Well-formed but invalid: `errors` maps each field to its message",
        content_type = PROBLEM_JSON
    )]
    Invalid(ValidationProblem),
}

/// The 422 of a list operation: `limit` or `cursor` is malformed.
#[derive(IntoResponses)]
#[response(
    status = 422,
    description = "Invalid limit or cursor",
    content_type = PROBLEM_JSON
)]
pub struct PageErrors(pub ValidationProblem);

/// The 503 of every operation that uses the database (`Retry-After` is
/// `error::RETRY_AFTER_SECS`).
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "Database unavailable or too slow; retry after the given seconds",
    content_type = PROBLEM_JSON,
    headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
)]
pub struct DatabaseErrors(pub Problem);
