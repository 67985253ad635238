//! Errors and their HTTP form: the one place that turns a failure into a
//! status code and an RFC 9457 `application/problem+json` body.
//!
//! Database errors never reach the client verbatim. What the database cannot
//! answer (unreachable, connection lost, a query past its time limit, no
//! pooled connection in time) is 503 with `Retry-After`: waiting helps. What
//! it answers with a refusal is not retried: a unique violation is 409 naming
//! the field, a value it cannot store (SQLSTATE class 22) a 422, and anything
//! else, such as a CHECK the domain types should have enforced, is a bug:
//! logged at error level and answered with a generic 500. Each is shown by
//! tests/api/errors.rs, outage.rs or pool.rs.

use std::collections::BTreeMap;
use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder, Response};
use rocket::{Request, catch};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::telemetry::request_id::RequestId;

/// Field name → human-readable message, as returned in a 422's `errors`.
pub type FieldErrors = BTreeMap<String, String>;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Every way a request can fail. `Display` is for logs; clients see the
/// problem body built by `into_problem`, which never includes a cause.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("validation failed: {0:?}")]
    Validation(FieldErrors),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("request body is not JSON")]
    UnsupportedMediaType,
    #[error("If-Match does not match version {current_version}")]
    PreconditionFailed { current_version: i32 },
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] DbError),
    #[error("unexpected database error")]
    Internal(#[source] DbError),
}

/// Unique constraints (from `migrations/`) and the request field each
/// protects: a violation is a 409 naming the field. The one place that maps
/// the schema's constraints to API errors.
const UNIQUE_CONSTRAINTS: &[(&str, &str)] = &[
    ("users_username_key", "username"),
    ("users_email_key", "email"),
];

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(field.to_owned(), message.into())]))
    }

    pub fn status(&self) -> Status {
        match self {
            ApiError::NotFound(_) => Status::NotFound,
            ApiError::BadRequest(_) | ApiError::MalformedJson(_) => Status::BadRequest,
            ApiError::Validation(_) => Status::UnprocessableEntity,
            ApiError::PayloadTooLarge { .. } => Status::PayloadTooLarge,
            ApiError::UnsupportedMediaType => Status::UnsupportedMediaType,
            ApiError::PreconditionFailed { .. } => Status::PreconditionFailed,
            ApiError::Conflict { .. } => Status::Conflict,
            ApiError::DatabaseUnavailable(_) => Status::ServiceUnavailable,
            ApiError::Internal(_) => Status::InternalServerError,
        }
    }

    fn into_problem(self) -> Problem {
        let status = self.status();
        match self {
            ApiError::NotFound(what) => Problem::new(status, format!("{what} not found")),
            ApiError::BadRequest(detail) => Problem::new(status, detail),
            ApiError::MalformedJson(detail) => Problem::typed(
                status,
                "malformed-json",
                format!("body is not valid JSON: {detail}"),
            ),
            ApiError::Validation(errors) => {
                let mut p = Problem::typed(
                    status,
                    "validation-error",
                    "the request body or parameters failed validation".into(),
                );
                p.errors = Some(errors);
                p
            }
            ApiError::PayloadTooLarge { limit } => Problem::new(
                status,
                format!("request body exceeds the limit of {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType => Problem::new(
                status,
                "request body must be sent as application/json".into(),
            ),
            ApiError::PreconditionFailed { current_version } => Problem::typed(
                status,
                "version-mismatch",
                format!("If-Match does not match the current version \"{current_version}\""),
            ),
            ApiError::Conflict { field } => {
                let mut p = Problem::typed(status, "conflict", format!("{field} is already taken"));
                p.errors = Some(BTreeMap::from([(field.into(), "is already taken".into())]));
                p
            }
            ApiError::DatabaseUnavailable(_) => Problem::typed(
                status,
                "database-unavailable",
                "the database is unavailable; retry later".into(),
            ),
            ApiError::Internal(_) => Problem::new(status, "an unexpected error occurred".into()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        use sqlx::Error as E;
        let sqlx = match &e {
            DbError::TimedOut { .. } => return ApiError::DatabaseUnavailable(e),
            DbError::Sqlx(sqlx) => sqlx,
        };
        let code = match sqlx {
            E::Database(db) => db.code(),
            _ => None,
        };
        match (code.as_deref(), sqlx) {
            (Some("23505"), E::Database(db)) => {
                let field = UNIQUE_CONSTRAINTS
                    .iter()
                    .find(|(name, _)| db.constraint() == Some(*name))
                    .map_or("resource", |(_, field)| *field);
                ApiError::Conflict { field }
            }
            // 57014 query_canceled (statement timeout), class 08 connection
            // exceptions, 53 insufficient resources, 57P0x shutdown/crash.
            (Some(c), _)
                if c == "57014"
                    || c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P") =>
            {
                ApiError::DatabaseUnavailable(e)
            }
            (
                None,
                E::PoolTimedOut
                | E::PoolClosed
                | E::Io(_)
                | E::Tls(_)
                | E::Protocol(_)
                | E::WorkerCrashed,
            ) => ApiError::DatabaseUnavailable(e),
            // Class 22 "data exception": a value validation should have refused.
            // The client gets a 422 without the SQL text; the cause is logged.
            (Some(c), _) if c.starts_with("22") => {
                tracing::warn!(error = %e, "database refused a value that passed validation");
                ApiError::invalid("body", "contains a value that cannot be stored")
            }
            _ => ApiError::Internal(e),
        }
    }
}

/// The RFC 9457 body. `type` is `about:blank` when the status says it all,
/// otherwise a `urn:kindling:problem:*` identifier (listed on the field).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `about:blank`, or `urn:kindling:problem:` followed by `malformed-json`,
    /// `validation-error`, `version-mismatch`, `conflict`,
    /// `database-unavailable` or `not-ready`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    #[schema(minimum = 100, maximum = 599)]
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline, nullable = false)]
    pub errors: Option<FieldErrors>,
    /// Methods for the `Allow` header of a 405 (not part of the body).
    #[serde(skip)]
    pub allow: Option<String>,
    /// Extension members specific to one problem type, flattened into the body.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub extensions: Option<serde_json::Value>,
}

impl Problem {
    pub fn new(status: Status, detail: String) -> Self {
        Problem {
            type_: "about:blank".into(),
            title: status.reason_lossy().into(),
            status: status.code,
            detail,
            instance: None,
            request_id: None,
            errors: None,
            allow: None,
            extensions: None,
        }
    }

    fn typed(status: Status, slug: &str, detail: String) -> Self {
        Problem {
            type_: format!("urn:kindling:problem:{slug}"),
            ..Problem::new(status, detail)
        }
    }
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(mut self, req: &'r Request<'_>) -> response::Result<'static> {
        self.instance = Some(req.uri().path().to_string());
        self.request_id = Some(RequestId::of(req).to_string());
        let body = serde_json::to_vec(&self).map_err(|_| Status::InternalServerError)?;
        let mut res = Response::build();
        res.status(Status::new(self.status))
            .header(ContentType::new("application", "problem+json"))
            .sized_body(body.len(), Cursor::new(body));
        if self.status == Status::ServiceUnavailable.code {
            res.header(Header::new("Retry-After", RETRY_AFTER_SECS.to_string()));
        }
        if let Some(allow) = self.allow {
            res.header(Header::new("Allow", allow));
        }
        Ok(res.finalize())
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        // Logged inside the request span, which carries request_id and route.
        match &self {
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(cause = %cause, "database unavailable")
            }
            ApiError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            _ => {}
        }
        self.into_problem().respond_to(req)
    }
}

/// Every status Rocket produces itself (no route matched, a guard failed,
/// a panic) is answered here, so no HTML page ever leaves the service.
#[catch(default)]
pub fn default_catcher(status: Status, req: &Request<'_>) -> Problem {
    if status == Status::NotFound {
        let allowed = allowed_methods(req);
        if !allowed.is_empty() {
            let mut problem = Problem::new(
                Status::MethodNotAllowed,
                format!(
                    "{} is not supported here; use {}",
                    req.method(),
                    allowed.join(", ")
                ),
            );
            problem.allow = Some(allowed.join(", "));
            return problem;
        }
    }
    let detail = match status.code {
        404 => "no resource at this path".to_string(),
        // rocket_db_pools' Connection guard fails with 503 when the pool
        // cannot hand out a connection within DATABASE_ACQUIRE_TIMEOUT_MS.
        503 => "the database is unavailable; retry later".to_string(),
        422 => "a path or query parameter is malformed".to_string(),
        500 => "an unexpected error occurred".to_string(),
        _ => status.reason_lossy().to_string(),
    };
    let mut problem = Problem::new(status, detail);
    if status == Status::ServiceUnavailable {
        problem.type_ = "urn:kindling:problem:database-unavailable".into();
    }
    problem
}

/// Methods of the mounted routes whose path template matches the request's
/// path: non-empty means the path exists and only the method is wrong (405).
fn allowed_methods(req: &Request<'_>) -> Vec<String> {
    let path: Vec<&str> = req.uri().path().segments().collect();
    let mut methods: Vec<String> = req
        .rocket()
        .routes()
        .filter(|route| template_matches(route.uri.path(), &path))
        .map(|route| route.method.as_str().to_owned())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

/// Whether `/a/<x>/b` matches the request's path segments (`<x>` is one segment).
fn template_matches(template: &str, path: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == path.len()
        && parts
            .iter()
            .zip(path)
            .all(|(part, segment)| part.starts_with('<') || part == segment)
}
