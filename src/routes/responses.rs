//! The error responses that several operations share, as the OpenAPI
//! document describes them. The handlers name them in their
//! `#[utoipa::path]`; `openapi.rs` assembles the document above both.

use utoipa::{IntoResponses, ToSchema};

use crate::error::{FieldErrors, Problem};

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The 400 of an operation whose only input is the id in its path.
pub const BAD_ID: &str = "The id is not a positive integer";

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
