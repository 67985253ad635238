//! Keyset pagination: `?limit=N&cursor=C` in, `next_cursor` out.
//!
//! The cursor is opaque to clients (base64url of `v1:<last id>`); rows are
//! ordered by id and a page is "id > last id", so a full walk returns every
//! row exactly once with no OFFSET scan. A limit above [`MAX_LIMIT`] is a 422,
//! not silently clamped, so a client never believes it got more than it did.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::FieldErrors;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    /// Only rows with an id greater than this.
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

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
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
