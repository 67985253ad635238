//! Keyset pagination: `?limit=N&cursor=C` in, `next_cursor` out.
//!
//! The cursor is opaque to clients (base64url of `v1:<last id>`); rows are
//! ordered by id and a page is "id > last id", with no OFFSET scan. So a walk
//! returns every row committed before it started exactly once, in id order,
//! and never a row twice, while rows are added or deleted (even the row the
//! cursor names): a row deleted before the walk reaches it is absent, and a
//! row committed after the walk read past its id (ids are taken at insert)
//! is in the next walk only. tests/api/pagination.rs shows each case. A
//! limit above [`MAX_LIMIT`] is a 422, not silently clamped, so a client never
//! believes it got more than it did.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::FieldErrors;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Read from the query string (see `guards.rs`), which its `IntoParams`
/// documents; the limits there are literals (utoipa takes no constants
/// there), checked against the constants above by tests/api/openapi.rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Page size, 1..=200 (default 50); larger values are rejected with 422, not clamped.
    #[param(required = false, minimum = 1, maximum = 200, default = json!(DEFAULT_LIMIT))]
    pub limit: i64,
    // Only rows with an id greater than this, decoded from `cursor`; the
    // doc comment is that parameter's description.
    /// Opaque `next_cursor` from the previous page; any other value is a 422.
    /// A walk returns every row committed before it started exactly once, in
    /// id order, never a row twice. Ids are taken at insert, not commit: a row
    /// committed after the walk read past its id appears only in the next walk.
    #[param(rename = "cursor", value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$")]
    pub after_id: Option<i64>,
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let limit = match limit.map(str::parse::<i64>) {
            None => DEFAULT_LIMIT,
            Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                errors.insert(
                    "limit".into(),
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                );
                DEFAULT_LIMIT
            }
        };
        let after_id = match cursor.map(decode_cursor) {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => {
                errors.insert(
                    "cursor".into(),
                    "is not a cursor returned by this API".into(),
                );
                None
            }
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, after_id })
        } else {
            Err(errors)
        }
    }
}

/// A page of rows in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order: the
    /// extra row only signals that another page exists.
    pub fn from_rows(mut rows: Vec<T>, request: PageRequest, id_of: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() as i64 > request.limit;
        rows.truncate(request.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    text.strip_prefix("v1:")?.parse().ok().filter(|id| *id >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_rejected() {
        let c = encode_cursor(42);
        assert_eq!(
            PageRequest::parse(None, Some(&c)).unwrap().after_id,
            Some(42)
        );
        for garbage in ["not-a-cursor", ""] {
            let errors = PageRequest::parse(None, Some(garbage)).unwrap_err();
            assert!(errors.contains_key("cursor"), "{garbage:?} accepted");
        }
    }

    #[test]
    fn limit_outside_range_is_rejected_not_clamped() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::parse(Some("200"), None).unwrap().limit, 200);
        for bad in ["0", "201", "-1", "ten"] {
            assert!(PageRequest::parse(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_cursor_only_when_more_rows_exist() {
        let req = PageRequest {
            limit: 2,
            after_id: None,
        };
        let page = Page::from_rows(vec![1, 2, 3], req, |r| *r);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor, Some(encode_cursor(2)));
        assert_eq!(Page::from_rows(vec![1, 2], req, |r| *r).next_cursor, None);
    }
}
