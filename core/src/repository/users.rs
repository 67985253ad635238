use sqlx::PgConnection;

use crate::domain::page::PageRequest;
use crate::domain::user::{NewUser, User};

const COLUMNS: &str = "id, username, email, created_at";

pub async fn list(conn: &mut PgConnection, page: PageRequest) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(page.after_id.unwrap_or(0))
    .bind(page.limit + 1)
    .fetch_all(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: i64) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Inserts a user; a duplicate username or email (case-insensitive) fails
/// with a unique violation on `users_username_key` / `users_email_key`.
pub async fn insert(conn: &mut PgConnection, new: &NewUser) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO users (username, email) VALUES ($1, $2) RETURNING {COLUMNS}"
    ))
    .bind(&new.username)
    .bind(&new.email)
    .fetch_one(conn)
    .await
}
