//! `/api/users`: list, read, create.

use rocket::http::Header;
use rocket::serde::json::Json;
use rocket::{Responder, get, post};

use crate::db::DbConn;
use crate::domain::page::{Page, PageRequest};
use crate::domain::user::{NewUser, User};
use crate::error::ApiError;
use crate::guards::{JsonBody, ResourceId};
use crate::repository::users;

#[derive(Responder)]
#[response(status = 201, content_type = "json")]
pub struct CreatedUser {
    body: Json<User>,
    location: Header<'static>,
}

/// Keyset pagination: see `domain::page`.
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

#[get("/api/users/<id>")]
pub async fn get(mut db: DbConn, id: Result<ResourceId, ApiError>) -> Result<Json<User>, ApiError> {
    let ResourceId(id) = id?;
    db.run("users_get", async |c| users::find(c, id).await)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("user"))
}

/// A duplicate username or email (case-insensitive) is a 409 naming the field.
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
