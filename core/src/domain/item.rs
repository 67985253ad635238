//! Items as the API accepts them (`NewItem`) and returns them (`Item`).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::fields::ObjectReader;
use crate::error::FieldErrors;

pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// Body of `POST /api/items` and `PUT /api/items/{id}` (full replacement:
/// an absent description clears it). Text must not contain U+0000.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
// For ToSchema only (`additionalProperties: false`): `parse` is what refuses
// unknown fields. The limits below are literals, as utoipa takes no constants
// there; tests/api/openapi.rs checks them against the constants above.
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// At most 200 characters as sent and not only whitespace; stored trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// At most 2000 characters; absent or null means no description.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

impl NewItem {
    pub fn parse(body: Value) -> Result<Self, FieldErrors> {
        let mut r = ObjectReader::new(body, &["name", "description"])?;
        // The limit applies to the name as sent, so it means what the
        // OpenAPI document's maxLength says; the stored name is trimmed.
        let name = r.required_string("name").and_then(|raw| {
            let trimmed = raw.trim();
            if raw.chars().count() > NAME_MAX_CHARS {
                r.fail("name", "must be at most 200 characters")
            } else if trimmed.is_empty() {
                r.fail("name", "must not be empty")
            } else {
                Some(trimmed.to_owned())
            }
        });
        let description = r.optional_string("description").and_then(|d| match d {
            Some(text) if text.chars().count() > DESCRIPTION_MAX_CHARS => {
                r.fail("description", "must be at most 2000 characters")
            }
            other => Some(other),
        });
        let item = name
            .zip(description)
            .map(|(name, description)| NewItem { name, description });
        r.finish(item)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Item {
    #[schema(minimum = 1)]
    pub id: i64,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Starts at 1 and grows by one on every replacement; the ETag is `"<version>"`.
    #[schema(minimum = 1)]
    pub version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_is_trimmed_and_description_optional() {
        let item = NewItem::parse(json!({"name": "  lamp "})).unwrap();
        assert_eq!(
            item,
            NewItem {
                name: "lamp".into(),
                description: None
            }
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errors =
            NewItem::parse(json!({"name": " ", "description": 7, "colour": "red"})).unwrap_err();
        assert_eq!(errors["name"], "must not be empty");
        assert_eq!(errors["description"], "must be a string or null");
        assert_eq!(errors["colour"], "is not a known field");
    }

    #[test]
    fn nul_characters_are_rejected() {
        let errors = NewItem::parse(json!({"name": "a\0b", "description": "\0"})).unwrap_err();
        assert!(errors.contains_key("name") && errors.contains_key("description"));
    }

    #[test]
    fn name_limit_counts_the_name_as_sent() {
        let padded = format!(" {}", "x".repeat(200));
        assert!(NewItem::parse(json!({ "name": padded })).is_err());
        assert!(NewItem::parse(json!({"name": format!(" {}", "x".repeat(199))})).is_ok());
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(NewItem::parse(json!({"name": "é".repeat(200)})).is_ok());
        assert!(NewItem::parse(json!({"name": "é".repeat(201)})).is_err());
        assert!(NewItem::parse(json!({"name": "a", "description": "x".repeat(2001)})).is_err());
    }
}
