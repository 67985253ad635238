//! Request IDs: accepted from `X-Request-Id` when sane, generated otherwise,
//! echoed on every response and written into logs and problem bodies.

use std::fmt;

use rocket::Request;

pub const HEADER: &str = "X-Request-Id";
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The request's ID, computed once per request and cached on it.
    pub fn of<'r>(req: &'r Request<'_>) -> &'r RequestId {
        req.local_cache(|| {
            req.headers()
                .get_one(HEADER)
                .and_then(RequestId::accept)
                .unwrap_or_else(RequestId::generate)
        })
    }

    /// Accepts a client-supplied ID only if it cannot smuggle anything into a
    /// log line or header: 1..=128 characters of `[A-Za-z0-9._:-]`.
    pub fn accept(raw: &str) -> Option<RequestId> {
        let ok = (1..=MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        ok.then(|| RequestId(raw.to_owned()))
    }

    /// A random (version 4) UUID. (uuid's `fast-rng` feature would avoid a
    /// `getrandom` call per ID, but brings a third major of `rand`, which
    /// deny.toml refuses.)
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(
            RequestId::accept("abc-123_x.y:z").unwrap().as_str(),
            "abc-123_x.y:z"
        );
        assert!(RequestId::accept("").is_none());
        assert!(RequestId::accept("has space").is_none());
        assert!(RequestId::accept("line\nbreak").is_none());
        assert!(RequestId::accept(&"a".repeat(129)).is_none());
        assert_eq!(RequestId::generate().as_str().len(), 36);
    }

    #[test]
    fn generated_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
        }
    }
}
