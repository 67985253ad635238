//! Users as the API accepts them (`NewUser`) and returns them (`User`).

use email_address::EmailAddress;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::fields::ObjectReader;
use crate::error::FieldErrors;

/// Body of `POST /api/users`. Username and email are unique, ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
// For ToSchema only (`additionalProperties: false`): `parse` is what refuses
// unknown fields.
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 3..=50 characters of `[A-Za-z0-9_.-]`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,50}$", min_length = 3, max_length = 50)]
    pub username: String,
    /// A syntactically valid address of at most 254 characters; stored trimmed.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
}

impl NewUser {
    pub fn parse(body: Value) -> Result<Self, FieldErrors> {
        let mut r = ObjectReader::new(body, &["username", "email"])?;
        let username = r.required_string("username").and_then(|u| {
            let allowed = u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !(3..=50).contains(&u.len()) || !allowed {
                r.fail(
                    "username",
                    "must be 3 to 50 characters of A-Z, a-z, 0-9, '_', '.', '-'",
                )
            } else {
                Some(u)
            }
        });
        let email = r.required_string("email").and_then(|e| {
            let e = e.trim().to_owned();
            // Characters, like the CHECK (char_length) in the migration; the
            // per-part limits of email_address stay in bytes, as RFC 5321 has them.
            if e.chars().count() <= 254
                && EmailAddress::is_valid(&e)
                && !e.contains(char::is_whitespace)
            {
                Some(e)
            } else {
                r.fail("email", "must be a valid email address")
            }
        });
        let user = username
            .zip(email)
            .map(|(username, email)| NewUser { username, email });
        r.finish(user)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    #[schema(minimum = 1)]
    pub id: i64,
    pub username: String,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_valid_user() {
        let u = NewUser::parse(json!({"username": "ada.l_0", "email": "ada@example.org"})).unwrap();
        assert_eq!(u.username, "ada.l_0");
    }

    #[test]
    fn rejects_bad_usernames_and_emails() {
        for name in ["ab", "has space", "émile", &"x".repeat(51)] {
            let e = NewUser::parse(json!({"username": name, "email": "a@b.org"})).unwrap_err();
            assert!(e.contains_key("username"), "{name} accepted");
        }
        for email in ["plain", "a@", "@b.org", "a b@c.org"] {
            let e = NewUser::parse(json!({"username": "ada", "email": email})).unwrap_err();
            assert!(e.contains_key("email"), "{email} accepted");
        }
    }

    #[test]
    fn email_limit_counts_characters_not_bytes() {
        // 254 characters, 317 bytes: 32 "é" (the 64-byte local-part limit), then
        // a 31-"é" label and ASCII labels.
        let domain = format!(
            "{}.{}.{}.{}.org",
            "é".repeat(31),
            "x".repeat(63),
            "x".repeat(63),
            "x".repeat(57)
        );
        let email = format!("{}@{domain}", "é".repeat(32));
        assert_eq!(email.chars().count(), 254);
        assert!(NewUser::parse(json!({"username": "ada", "email": email})).is_ok());
        let longer = email.replacen(".org", "x.org", 1);
        assert!(NewUser::parse(json!({"username": "ada", "email": longer})).is_err());
    }
}
