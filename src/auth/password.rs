//! bcrypt hashing and verification, always on tokio's blocking pool: a hash at cost 12 takes about
//! a quarter of a second of CPU, which on the async runtime would stall every other request.

use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::domain::Password;

/// Hashes and verifies passwords at the configured bcrypt cost.
#[derive(Debug)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at the same cost, verified against when the email is unknown,
    /// so that sign-in costs the same whether or not the account exists. Made on first use, to
    /// keep start-up fast.
    dummy_hash: OnceCell<String>,
}

/// Hashing failed; only a broken bcrypt setting or a dead blocking pool can cause it.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    /// A hasher at bcrypt cost `cost`.
    #[must_use]
    pub fn new(cost: u32) -> Self {
        Self {
            cost,
            dummy_hash: OnceCell::new(),
        }
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// bcrypt refused the cost, or the blocking task died.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let cost = self.cost;
        blocking(move || {
            bcrypt::hash(password.expose(), cost).map_err(|e| HashError(e.to_string()))
        })
        .await?
    }

    /// Checks `candidate` (normalised as at signup) against `stored`, or against a dummy hash when
    /// there is no stored hash, so that the answer takes as long either way. A candidate over 72
    /// bytes never matches (no such password can have been set, and bcrypt would compare only its
    /// first 72 bytes).
    ///
    /// # Errors
    /// The blocking task died, or the dummy hash could not be made.
    pub async fn verify(
        &self,
        candidate: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let (hash, exists) = match stored {
            Some(hash) => (hash, true),
            None => (self.dummy_hash().await?.to_string(), false),
        };
        let candidate = Password::normalise(&candidate);
        let fits = candidate.len() <= Password::MAX_BYTES;
        let matches = blocking(move || bcrypt::verify(candidate, &hash).unwrap_or(false)).await?;
        Ok(exists && fits && matches)
    }

    async fn dummy_hash(&self) -> Result<&str, HashError> {
        let cost = self.cost;
        self.dummy_hash
            .get_or_try_init(|| async move {
                let random = uuid::Uuid::new_v4().to_string();
                blocking(move || bcrypt::hash(random, cost).map_err(|e| HashError(e.to_string())))
                    .await?
            })
            .await
            .map(String::as_str)
    }
}

/// Runs CPU-bound work on the blocking pool, inside the caller's tracing span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .in_current_span()
        .await
        .map_err(|e| HashError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw.to_string(), &[]).unwrap()
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash(password("correct horse")).await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(4);
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_candidate_longer_than_72_bytes_never_matches_its_truncation() {
        let hasher = PasswordHasher::new(4);
        let stored = "k9#Vq2!xZ".repeat(8);
        let hash = hasher.hash(password(&stored)).await.unwrap();
        assert!(
            !hasher
                .verify(format!("{stored}extra"), Some(hash))
                .await
                .unwrap()
        );
    }
}
