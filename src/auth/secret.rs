//! Secret tokens — refresh tokens, and the one-time tokens mailed for a password reset or an email
//! confirmation: 256 random bits, shown once, stored only as their SHA-256.
//!
//! A refresh token is not a JWT, so it can never pass for an access token, and an access token
//! (which does not hash to any stored refresh token) can never pass for a refresh token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// A new secret token: the text for the client (or the mail), the hash for the database.
pub struct SecretToken {
    /// What the client keeps and presents.
    pub token: String,
    /// What the database keeps.
    pub hash: Vec<u8>,
}

impl SecretToken {
    /// 32 bytes from the operating system's random source.
    ///
    /// # Errors
    /// The random source failed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_secret_token(&token);
        Ok(Self { token, hash })
    }
}

/// The stored form of a secret token.
#[must_use]
pub fn hash_secret_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A refresh token as a client presents it: 1 to 512 characters (ours are 43; the limit only keeps
/// hashing cheap).
pub struct PresentedRefreshToken;

impl crate::domain::TextRule for PresentedRefreshToken {
    const FIELD: &'static str = "refresh_token";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 512;
}

/// A one-time token from a mailed link (password reset, email confirmation) as a client presents it
/// (`token`): 1 to 512 characters (ours are 43; the limit only keeps hashing cheap).
pub struct PresentedAccountToken;

impl crate::domain::TextRule for PresentedAccountToken {
    const FIELD: &'static str = "token";
    const MIN_CHARS: usize = 1;
    const MAX_CHARS: usize = 512;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_32_bytes() {
        let a = SecretToken::generate().unwrap();
        let b = SecretToken::generate().unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert_eq!(a.hash.len(), 32);
        assert_eq!(a.hash, hash_secret_token(&a.token));
    }
}
