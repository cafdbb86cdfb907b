//! An `Idempotency-Key` as a client sends it (IETF httpapi idempotency-key draft), and the
//! fingerprint of the request it guards.

use sha2::{Digest, Sha256};

/// A key naming one logical request of one user: 1 to 255 visible ASCII characters other than `"`
/// and `\`. The draft makes the header a structured-field string (`"…"`); clients that follow
/// Stripe's older convention send the key bare. Both are read, and name the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key, in characters (all ASCII, so also bytes).
    pub const MAX_CHARS: usize = 255;

    /// Reads a header value.
    ///
    /// # Errors
    /// What is wrong with it, for a 400.
    pub fn parse(header: &str) -> Result<Self, &'static str> {
        let key = header
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(header);
        if key.is_empty() {
            return Err("the Idempotency-Key is empty");
        }
        if key.len() > Self::MAX_CHARS {
            return Err("the Idempotency-Key is longer than 255 characters");
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(
                "the Idempotency-Key may hold only visible ASCII characters other than `\"` and `\\`",
            );
        }
        Ok(Self(key.to_string()))
    }

    /// The key without the quotes it may have come in.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The SHA-256 of a request's parts, each length-prefixed so that no two different requests run
/// together into the same bytes. A retry must have the fingerprint of the first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFingerprint([u8; 32]);

impl RequestFingerprint {
    /// The fingerprint of `parts`, in order.
    #[must_use]
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }

    /// The 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_quoted_or_bare_and_names_the_same_key() {
        let bare = IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap();
        let quoted = IdempotencyKey::parse("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").unwrap();
        assert_eq!(bare, quoted);
        assert_eq!(bare.as_str(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&format!("\"{}\"", "k".repeat(255))).is_ok());
    }

    #[test]
    fn a_key_that_is_empty_too_long_or_not_visible_ascii_is_refused() {
        for bad in [
            String::new(),
            "\"\"".to_string(),
            "k".repeat(256),
            "a b".to_string(),
            "a\"b".to_string(),
            "\"a".to_string(),
            "a\\b".to_string(),
            "clé".to_string(),
            "a\tb".to_string(),
        ] {
            assert!(IdempotencyKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            RequestFingerprint::of(&[b"ab", b"c"]),
            RequestFingerprint::of(&[b"a", b"bc"])
        );
        assert_eq!(
            RequestFingerprint::of(&[b"a", b"bc"]),
            RequestFingerprint::of(&[b"a", b"bc"])
        );
    }
}
