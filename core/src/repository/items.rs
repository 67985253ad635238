use sqlx::PgConnection;

use crate::domain::item::{Item, NewItem};
use crate::domain::page::PageRequest;

const COLUMNS: &str = "id, name, description, created_at, updated_at, version";

/// Outcome of a conditional update.
#[derive(Debug)]
pub enum UpdateOutcome {
    Updated(Item),
    NotFound,
    /// The row exists but its version is not one the caller allowed.
    VersionMismatch {
        current_version: i32,
    },
}

pub async fn list(conn: &mut PgConnection, page: PageRequest) -> Result<Vec<Item>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(page.after_id.unwrap_or(0))
    .bind(page.limit + 1)
    .fetch_all(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<Item>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM items WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn insert(conn: &mut PgConnection, new: &NewItem) -> Result<Item, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO items (name, description) VALUES ($1, $2) RETURNING {COLUMNS}"
    ))
    .bind(&new.name)
    .bind(&new.description)
    .fetch_one(conn)
    .await
}

/// Replaces name and description and bumps the version in one statement.
/// With `allowed_versions`, the row is changed only if its current version is
/// one of them; the check and the write are a single atomic UPDATE, so two
/// writers holding the same version can never both succeed.
pub async fn update_if_version(
    conn: &mut PgConnection,
    id: i64,
    new: &NewItem,
    allowed_versions: Option<&[i32]>,
) -> Result<UpdateOutcome, sqlx::Error> {
    let updated: Option<Item> = sqlx::query_as(&format!(
        "UPDATE items
            SET name = $2, description = $3, version = version + 1, updated_at = now()
          WHERE id = $1 AND ($4::int[] IS NULL OR version = ANY($4))
      RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&new.name)
    .bind(&new.description)
    .bind(allowed_versions)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(item) = updated {
        return Ok(UpdateOutcome::Updated(item));
    }
    let current: Option<i32> = sqlx::query_scalar("SELECT version FROM items WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(match current {
        None => UpdateOutcome::NotFound,
        Some(current_version) => UpdateOutcome::VersionMismatch { current_version },
    })
}

/// Returns whether a row was deleted.
pub async fn delete(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM items WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() == 1)
}
