//! Sign-in, as one use case: the throttle policy, the password check and the start of a session,
//! over the database and the hasher, without HTTP.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::PoolError;
use uuid::Uuid;

use super::{NewRefreshToken, PasswordHasher, password::HashError};
use crate::{
    config::{SessionConfig, ThrottleConfig},
    db::{
        DbPool,
        throttle::{self, FailureCount, ThrottleKey},
        users,
    },
    domain::{Invalid, SigninEmail, SigninPassword, TextRule},
};

/// What sign-in needs.
#[derive(Clone, Copy)]
pub struct Signin<'a> {
    /// Connections; none is held while bcrypt runs.
    pub pool: &'a DbPool,
    /// bcrypt.
    pub passwords: &'a PasswordHasher,
    /// The failure limits.
    pub limits: ThrottleConfig,
    /// Session and refresh-token lifetimes.
    pub sessions: SessionConfig,
}

/// An email and a password as typed at sign-in, within the lengths sign-in reads.
#[derive(Debug)]
pub struct Credentials {
    email: String,
    password: String,
}

impl Credentials {
    /// # Errors
    /// Every field that is longer than sign-in reads (no account can have such an email or
    /// password).
    pub fn parse(email: String, password: String) -> Result<Self, Vec<Invalid>> {
        let invalid: Vec<Invalid> = [
            SigninEmail::check(&email).err(),
            SigninPassword::check(&password).err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if invalid.is_empty() {
            Ok(Self { email, password })
        } else {
            Err(invalid)
        }
    }
}

/// A session just started: what the client is handed.
#[derive(Debug)]
pub struct StartedSession {
    /// The user signed in.
    pub user_id: Uuid,
    /// The new session (refresh-token family).
    pub session_id: Uuid,
    /// The first refresh token, in the clear (only its hash is stored).
    pub refresh_token: String,
    /// When that refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Why sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    /// The email or the client address failed too often; try again after this many seconds.
    #[error("too many failed sign-ins; retry after {0} s")]
    Throttled(u64),
    /// Unknown email or wrong password: one answer for both.
    #[error("wrong email or password")]
    BadCredentials,
    /// No connection could be had.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A query failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    /// bcrypt failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// No random bytes for the refresh token.
    #[error("no randomness for the refresh token: {0}")]
    Random(String),
}

impl Signin<'_> {
    /// Signs `credentials` in from `client` (when the address is known).
    ///
    /// The throttle is checked before any bcrypt work, and no connection is held while hashing.
    /// A failure counts against the email and the address; a success forgets the email's failures
    /// but not the address's, so that one good account cannot launder guesses at others.
    ///
    /// # Errors
    /// [`SigninError::Throttled`], [`SigninError::BadCredentials`], or a failure of the database or
    /// the hasher.
    pub async fn sign_in(
        &self,
        credentials: Credentials,
        client: Option<IpAddr>,
    ) -> Result<StartedSession, SigninError> {
        let Credentials { email, password } = credentials;
        let email_key = ThrottleKey::email(&email);
        let mut keys = vec![email_key.clone()];
        keys.extend(client.map(ThrottleKey::Ip));

        let found = {
            let mut conn = self.pool.get().await?;
            let counts = throttle::current_failures(&mut conn, &keys, self.limits.window).await?;
            if let Some(secs) = retry_after(self.limits, &counts, Utc::now()) {
                return Err(SigninError::Throttled(secs));
            }
            // No account can have an email PostgreSQL cannot store (a NUL): such an email is
            // simply unknown.
            if email.contains('\0') {
                None
            } else {
                users::find_with_password_hash(&mut conn, email.trim()).await?
            }
        };
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
        let verified = self.passwords.verify(password, hash, client).await?;

        let mut conn = self.pool.get().await?;
        let Some(user) = user.filter(|_| verified) else {
            throttle::record_failure(&mut conn, &keys, self.limits.window).await?;
            return Err(SigninError::BadCredentials);
        };
        throttle::clear(&mut conn, &email_key).await?;
        let refresh =
            NewRefreshToken::generate().map_err(|e| SigninError::Random(e.to_string()))?;
        let now = Utc::now();
        let (session_id, refresh_expires_at) = crate::db::sessions::start_session(
            &mut conn,
            user.id,
            now + self.sessions.max_lifetime,
            &refresh.hash,
            now + self.sessions.refresh_token_ttl,
        )
        .await?;
        Ok(StartedSession {
            user_id: user.id,
            session_id,
            refresh_token: refresh.token,
            refresh_expires_at,
        })
    }
}

/// Seconds until sign-in is allowed again, when a key has used up its window's failures.
fn retry_after(limits: ThrottleConfig, counts: &[FailureCount], now: DateTime<Utc>) -> Option<u64> {
    counts
        .iter()
        .filter(|count| {
            let limit = match count.key {
                ThrottleKey::Ip(_) => limits.max_failures_per_ip,
                ThrottleKey::Email(_) => limits.max_failures_per_email,
            };
            count.failures >= limit
        })
        .map(|count| count.window_started_at + limits.window)
        .max()
        .map(|until| u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: ThrottleConfig = ThrottleConfig {
        max_failures_per_email: 3,
        max_failures_per_ip: 10,
        window: Duration::from_secs(900),
    };

    fn count(
        key: ThrottleKey,
        failures: i32,
        started_secs_ago: i64,
        now: DateTime<Utc>,
    ) -> FailureCount {
        FailureCount {
            key,
            window_started_at: now - chrono::TimeDelta::seconds(started_secs_ago),
            failures,
        }
    }

    #[test]
    fn each_kind_of_key_has_its_own_limit_and_the_latest_window_end_wins() {
        let now = Utc::now();
        let ip = ThrottleKey::Ip("192.0.2.1".parse().unwrap());
        let email = ThrottleKey::email(" Ada@Example.COM ");
        let cases = [
            (
                "below both limits",
                vec![
                    count(email.clone(), 2, 0, now),
                    count(ip.clone(), 9, 0, now),
                ],
                None,
            ),
            (
                "the email at its limit",
                vec![count(email.clone(), 3, 100, now)],
                Some(800),
            ),
            (
                "3 failures of an address are below its limit",
                vec![count(ip.clone(), 3, 0, now)],
                None,
            ),
            (
                "the address at its limit",
                vec![count(ip.clone(), 10, 600, now)],
                Some(300),
            ),
            (
                "both: the later end",
                vec![count(email.clone(), 3, 600, now), count(ip, 10, 100, now)],
                Some(800),
            ),
            (
                "a window about to close still says 1 s",
                vec![count(email, 3, 900, now)],
                Some(1),
            ),
        ];
        for (case, counts, expected) in cases {
            assert_eq!(retry_after(LIMITS, &counts, now), expected, "{case}");
        }
    }

    #[test]
    fn an_email_key_ignores_case_and_surrounding_space_and_stands_in_for_nul() {
        assert_eq!(
            ThrottleKey::email(" Ada@Example.COM "),
            ThrottleKey::email("ada@example.com")
        );
        assert_eq!(ThrottleKey::email("a\0b").stored(), "email:a\u{FFFD}b");
        assert_eq!(
            ThrottleKey::Ip("192.0.2.1".parse().unwrap()).stored(),
            "ip:192.0.2.1"
        );
    }

    #[test]
    fn credentials_longer_than_sign_in_reads_name_every_field() {
        let fields = |email: usize, password: usize| {
            Credentials::parse("e".repeat(email), "p".repeat(password))
                .err()
                .map(|invalid| invalid.iter().map(|i| i.field).collect::<Vec<_>>())
        };
        assert_eq!(fields(254, 1024), None);
        assert_eq!(fields(255, 1024), Some(vec!["email"]));
        assert_eq!(fields(254, 1025), Some(vec!["password"]));
        assert_eq!(fields(255, 1025), Some(vec!["email", "password"]));
    }
}
