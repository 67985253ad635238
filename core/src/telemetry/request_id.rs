//! Request IDs: accepted from `X-Request-Id` when sane, generated otherwise,
//! echoed on every response and written into logs and problem bodies.

use std::cell::Cell;
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

    /// A random (version 4) UUID. Its bits come from a per-thread
    /// SplitMix64 generator seeded once from the operating system, not
    /// from a system call per request: request IDs must be unique, not
    /// unpredictable.
    pub fn generate() -> RequestId {
        let bytes = ID_BITS.with(|state| {
            let (hi, lo) = (splitmix64(state), splitmix64(state));
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&hi.to_le_bytes());
            bytes[8..].copy_from_slice(&lo.to_le_bytes());
            bytes
        });
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        RequestId(uuid.hyphenated().encode_lower(&mut text).to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

thread_local! {
    static ID_BITS: Cell<u64> = Cell::new({
        let seed = uuid::Uuid::new_v4().as_u64_pair();
        seed.0 ^ seed.1
    });
}

/// The SplitMix64 step: a 64-bit counter passed through a bijective mixer,
/// so one thread never repeats a value within 2^64 calls.
fn splitmix64(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
