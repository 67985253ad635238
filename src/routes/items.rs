//! `/api/items`: list, read, create, replace, delete.

use rocket::http::{Header, Status};
use rocket::serde::json::Json;
use rocket::{Responder, delete, get, post, put};

use crate::db::DbConn;
use crate::domain::item::{Item, NewItem};
use crate::domain::page::{Page, PageRequest};
use crate::error::ApiError;
use crate::guards::{IfMatch, JsonBody, ResourceId};
use crate::repository::items::{self, UpdateOutcome};

/// An item with its version as a strong ETag (`"3"`).
#[derive(Responder)]
#[response(content_type = "json")]
pub struct TaggedItem {
    body: Json<Item>,
    etag: Header<'static>,
}

impl From<Item> for TaggedItem {
    fn from(item: Item) -> Self {
        TaggedItem {
            etag: etag(&item),
            body: Json(item),
        }
    }
}

#[derive(Responder)]
#[response(status = 201, content_type = "json")]
pub struct CreatedItem {
    body: Json<Item>,
    location: Header<'static>,
    etag: Header<'static>,
}

fn etag(item: &Item) -> Header<'static> {
    Header::new("ETag", format!("\"{}\"", item.version))
}

/// Keyset pagination: see `domain::page`.
#[get("/api/items")]
pub async fn list(
    mut db: DbConn,
    page: Result<PageRequest, ApiError>,
) -> Result<Json<Page<Item>>, ApiError> {
    let page = page?;
    let rows = db
        .run("items_list", async |c| items::list(c, page).await)
        .await?;
    Ok(Json(Page::from_rows(rows, page, |item| item.id)))
}

#[get("/api/items/<id>")]
pub async fn get(mut db: DbConn, id: Result<ResourceId, ApiError>) -> Result<TaggedItem, ApiError> {
    let ResourceId(id) = id?;
    db.run("items_get", async |c| items::find(c, id).await)
        .await?
        .map(TaggedItem::from)
        .ok_or(ApiError::NotFound("item"))
}

#[post("/api/items", data = "<body>")]
pub async fn create(
    mut db: DbConn,
    body: Result<JsonBody, ApiError>,
) -> Result<CreatedItem, ApiError> {
    let new = NewItem::parse(body?.0).map_err(ApiError::Validation)?;
    let item = db
        .run("items_insert", async |c| items::insert(c, &new).await)
        .await?;
    Ok(CreatedItem {
        location: Header::new("Location", format!("/api/items/{}", item.id)),
        etag: etag(&item),
        body: Json(item),
    })
}

/// Full replacement of name and description. With `If-Match`, the write
/// happens only if the stored version still matches (else 412, row unchanged).
#[put("/api/items/<id>", data = "<body>")]
pub async fn replace(
    mut db: DbConn,
    id: Result<ResourceId, ApiError>,
    if_match: Result<IfMatch, ApiError>,
    body: Result<JsonBody, ApiError>,
) -> Result<TaggedItem, ApiError> {
    let ResourceId(id) = id?;
    let if_match = if_match?;
    let new = NewItem::parse(body?.0).map_err(ApiError::Validation)?;
    let allowed = if_match.allowed_versions();
    let update = db.run("items_update", async |c| {
        items::update_if_version(c, id, &new, allowed).await
    });
    match update.await? {
        UpdateOutcome::Updated(item) => Ok(item.into()),
        UpdateOutcome::NotFound => Err(ApiError::NotFound("item")),
        UpdateOutcome::VersionMismatch { current_version } => {
            Err(ApiError::PreconditionFailed { current_version })
        }
    }
}

#[delete("/api/items/<id>")]
pub async fn remove(mut db: DbConn, id: Result<ResourceId, ApiError>) -> Result<Status, ApiError> {
    let ResourceId(id) = id?;
    if db
        .run("items_delete", async |c| items::delete(c, id).await)
        .await?
    {
        Ok(Status::NoContent)
    } else {
        Err(ApiError::NotFound("item"))
    }
}
