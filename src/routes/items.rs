//! `/api/items`: list, read, create, replace, delete.

use rocket::http::{Header, Status};
use rocket::serde::json::Json;
use rocket::{Responder, delete, get, post, put};

use crate::db::DbConn;
use crate::domain::item::{Item, NewItem};
use crate::domain::page::{Page, PageRequest};
use crate::error::{ApiError, Problem};
use crate::guards::{IfMatch, JsonBody, ResourceId};
use crate::repository::items::{self, UpdateOutcome};
use crate::routes::responses::{BAD_ID, BodyErrors, DatabaseErrors, PROBLEM_JSON, PageErrors};

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

/// Lists items in id order, a page at a time.
// Keyset pagination: see `domain::page`.
#[utoipa::path(
    operation_id = "listItems", tag = "items", params(PageRequest),
    responses(
        (status = 200, description = "A page of items in id order", body = Page<Item>),
        PageErrors,
        DatabaseErrors,
    )
)]
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

/// Reads an item.
#[utoipa::path(
    operation_id = "getItem", tag = "items", params(ResourceId),
    responses(
        (status = 200, description = "The item; ETag is its version", body = Item,
         headers(("ETag" = String, description = "Strong ETag of the version, e.g. `\"3\"`"))),
        (status = 400, description = BAD_ID, body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such item", body = Problem, content_type = PROBLEM_JSON),
        DatabaseErrors,
    )
)]
#[get("/api/items/<id>")]
pub async fn get(mut db: DbConn, id: Result<ResourceId, ApiError>) -> Result<TaggedItem, ApiError> {
    let ResourceId(id) = id?;
    db.run("items_get", async |c| items::find(c, id).await)
        .await?
        .map(TaggedItem::from)
        .ok_or(ApiError::NotFound("item"))
}

/// Creates an item.
#[utoipa::path(
    operation_id = "createItem", tag = "items", request_body = NewItem,
    responses(
        (status = 201, description = "Created", body = Item, headers(
            ("Location" = String, description = "Path of the new item"),
            ("ETag" = String, description = "Strong ETag of the version, e.g. `\"1\"`"),
        )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM_JSON),
        BodyErrors,
        DatabaseErrors,
    )
)]
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

/// Replaces an item.
///
/// Full replacement of name and description. With `If-Match`, the write
/// happens only if the stored version still matches (else 412, row unchanged).
#[utoipa::path(
    operation_id = "replaceItem", tag = "items", request_body = NewItem,
    params(
        ResourceId,
        // The pattern is what `IfMatch::parse` accepts: `*`, or a list of
        // quoted (strong) or `W/` (weak) tags.
        ("If-Match" = Option<String>, Header, nullable = false,
         pattern = r#"^\s*(\*|(W/[^,]*|"[^,]*")(\s*,\s*(W/[^,]*|"[^,]*"))*)\s*$"#,
         description = "Strong ETag(s) of the version being replaced (`\"3\"`), or `*`; weak tags never match. Without it the replacement is unconditional."),
    ),
    responses(
        (status = 200, description = "Replaced; version incremented", body = Item,
         headers(("ETag" = String, description = "Strong ETag of the new version"))),
        (status = 400, description = "Malformed JSON, an id that is not a positive integer, or an If-Match that is not `*` or quoted entity tags",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such item", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match does not match the current version; nothing was changed",
         body = Problem, content_type = PROBLEM_JSON),
        BodyErrors,
        DatabaseErrors,
    )
)]
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

/// Deletes an item.
#[utoipa::path(
    operation_id = "deleteItem", tag = "items", params(ResourceId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = BAD_ID, body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such item", body = Problem, content_type = PROBLEM_JSON),
        DatabaseErrors,
    )
)]
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
