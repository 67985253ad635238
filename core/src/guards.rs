//! Request and data guards: how raw HTTP input becomes typed handler
//! arguments, each failure already shaped as an [`ApiError`].

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::Status;
use rocket::request::{self, FromParam, FromRequest, Request};
use utoipa::IntoParams;

use crate::config::Settings;
use crate::domain::page::PageRequest;
use crate::error::{ApiError, FieldErrors};

/// A JSON request body: the Content-Type says JSON (else 415), it fits the
/// configured limit (else 413) and it parses (else 400). Field validation is
/// the domain types' job (422).
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

#[rocket::async_trait]
impl<'r> FromData<'r> for JsonBody {
    type Error = ApiError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let is_json = req.content_type().is_some_and(|ct| {
            ct.top() == "application"
                && (ct.sub() == "json" || ct.sub().as_str().ends_with("+json"))
        });
        if !is_json {
            return data::Outcome::Error((
                Status::UnsupportedMediaType,
                ApiError::UnsupportedMediaType,
            ));
        }
        let limit = req
            .rocket()
            .state::<Settings>()
            .map_or(64 * 1024, |s| s.body_limit_bytes);
        let text = match data.open(limit.bytes()).into_string().await {
            Ok(text) if text.is_complete() => text.into_inner(),
            Ok(_) => {
                return data::Outcome::Error((
                    Status::PayloadTooLarge,
                    ApiError::PayloadTooLarge { limit },
                ));
            }
            Err(e) => {
                let err = ApiError::BadRequest(format!("request body could not be read: {e}"));
                return data::Outcome::Error((Status::BadRequest, err));
            }
        };
        match serde_json::from_str(&text) {
            Ok(value) => data::Outcome::Success(JsonBody(value)),
            Err(e) => {
                data::Outcome::Error((Status::BadRequest, ApiError::MalformedJson(e.to_string())))
            }
        }
    }
}

/// A resource id in the path: a positive 64-bit integer, else 400.
#[derive(Debug, Clone, Copy, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct ResourceId(#[param(minimum = 1)] pub i64);

impl<'a> FromParam<'a> for ResourceId {
    type Error = ApiError;

    fn from_param(param: &'a str) -> Result<Self, Self::Error> {
        match param.parse::<i64>() {
            Ok(id) if id > 0 => Ok(ResourceId(id)),
            _ => Err(ApiError::BadRequest(format!(
                "{param:?} is not a valid id (a positive integer)"
            ))),
        }
    }
}

/// `?limit=N&cursor=C` of a list endpoint. Read from the raw query so that a
/// repeated parameter is a 422 rather than silently ignored; other
/// parameters are ignored.
#[rocket::async_trait]
impl<'r> FromRequest<'r> for PageRequest {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let (mut limit, mut cursor) = (None, None);
        let mut repeated = FieldErrors::new();
        for field in req.query_fields() {
            let slot = match field.name.key_lossy().as_str() {
                "limit" => &mut limit,
                "cursor" => &mut cursor,
                _ => continue,
            };
            if slot.replace(field.value).is_some() {
                let message = "must be given at most once".to_owned();
                repeated.insert(field.name.key_lossy().to_string(), message);
            }
        }
        let errors = match PageRequest::parse(limit, cursor) {
            Ok(page) if repeated.is_empty() => return request::Outcome::Success(page),
            Ok(_) => repeated,
            Err(mut errors) => {
                errors.append(&mut repeated);
                errors
            }
        };
        request::Outcome::Error((Status::UnprocessableEntity, ApiError::Validation(errors)))
    }
}

/// The `If-Match` precondition of a PUT. `Any` is `*`; `Versions` holds the
/// versions named by strong entity tags (`"3"`). Weak tags never match
/// (RFC 9110 uses strong comparison for If-Match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Absent,
    Any,
    Versions(Vec<i32>),
}

impl IfMatch {
    /// The versions an update may apply to, or `None` for "any version".
    pub fn allowed_versions(&self) -> Option<&[i32]> {
        match self {
            IfMatch::Versions(v) => Some(v),
            IfMatch::Absent | IfMatch::Any => None,
        }
    }

    pub fn parse(raw: &str) -> Result<IfMatch, ApiError> {
        if raw.trim() == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        for tag in raw.split(',').map(str::trim) {
            if tag.starts_with("W/") {
                continue;
            }
            let inner = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| {
                    ApiError::BadRequest("If-Match must be \"*\" or quoted entity tags".into())
                })?;
            // A well-formed tag that is not one of our versions simply never matches.
            if let Ok(v) = inner.parse() {
                versions.push(v);
            }
        }
        Ok(IfMatch::Versions(versions))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfMatch {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        match req.headers().get_one("If-Match").map(IfMatch::parse) {
            None => request::Outcome::Success(IfMatch::Absent),
            Some(Ok(m)) => request::Outcome::Success(m),
            Some(Err(e)) => request::Outcome::Error((Status::BadRequest, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parses_strong_tags_and_star() {
        assert_eq!(IfMatch::parse("*").unwrap(), IfMatch::Any);
        assert_eq!(
            IfMatch::parse("\"3\", W/\"4\", \"x\"").unwrap(),
            IfMatch::Versions(vec![3])
        );
        assert!(IfMatch::parse("3").is_err());
    }
}
