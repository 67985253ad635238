//! `/api/users`: list, read, create.

use rocket::http::Header;
use rocket::serde::json::Json;
use rocket::{Responder, get, post};

use crate::db::DbConn;
use crate::domain::page::{Page, PageRequest};
use crate::domain::user::{NewUser, User};
use crate::error::{ApiError, Problem};
use crate::guards::{JsonBody, ResourceId};
use crate::repository::users;
use crate::routes::responses::{BAD_ID, BodyErrors, DatabaseErrors, PROBLEM_JSON, PageErrors};

#[derive(Responder)]
#[response(status = 201, content_type = "json")]
pub struct CreatedUser {
    body: Json<User>,
    location: Header<'static>,
}

/// Lists users in id order, a page at a time.
// Keyset pagination: see `domain::page`.
#[utoipa::path(
    operation_id = "listUsers", tag = "users", params(PageRequest),
    responses(
        (status = 200, description = "A page of users in id order", body = Page<User>),
        PageErrors,
        DatabaseErrors,
    )
)]
#[get("/api/users")]
pub async fn list(
    mut db: DbConn,
    page: Result<PageRequest, ApiError>,
) -> Result<Json<Page<User>>, ApiError> {
    let page = page?;
    let rows = db
        .run("users_list", async |c| users::list(c, page).await)
        .await?;
    Ok(Json(Page::from_rows(rows, page, |user| user.id)))
}

/// Reads a user.
#[utoipa::path(
    operation_id = "getUser", tag = "users", params(ResourceId),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = BAD_ID, body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such user", body = Problem, content_type = PROBLEM_JSON),
        DatabaseErrors,
    )
)]
#[get("/api/users/<id>")]
pub async fn get(mut db: DbConn, id: Result<ResourceId, ApiError>) -> Result<Json<User>, ApiError> {
    let ResourceId(id) = id?;
    db.run("users_get", async |c| users::find(c, id).await)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("user"))
}

/// Creates a user.
///
/// A duplicate username or email (case-insensitive) is a 409 naming the field.
#[utoipa::path(
    operation_id = "createUser", tag = "users", request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User,
         headers(("Location" = String, description = "Path of the new user"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Username or email already taken (case-insensitive); `errors` names the field",
         body = Problem, content_type = PROBLEM_JSON),
        BodyErrors,
        DatabaseErrors,
    )
)]
#[post("/api/users", data = "<body>")]
pub async fn create(
    mut db: DbConn,
    body: Result<JsonBody, ApiError>,
) -> Result<CreatedUser, ApiError> {
    let new = NewUser::parse(body?.0).map_err(ApiError::Validation)?;
    let user = db
        .run("users_insert", async |c| users::insert(c, &new).await)
        .await?;
    Ok(CreatedUser {
        location: Header::new("Location", format!("/api/users/{}", user.id)),
        body: Json(user),
    })
}
