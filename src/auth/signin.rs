//! Sign-in, as one use case: the throttle policy, the password check and the start of a session,
//! over the database and the hasher, without HTTP.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::PoolError;
use uuid::Uuid;

use super::{PasswordHasher, SecretToken, password::HashError};
use crate::{
    config::{SessionConfig, ThrottleConfig},
    db::{
        DbPool,
        throttle::{self, Budget, Reserved, ThrottleKey},
        users::{self, UserRow},
    },
    domain::{
        Invalid, MAX_CANONICAL_EMAIL_BYTES, SigninEmail, SigninPassword, TextRule, canonical_email,
    },
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
    /// The account (from this address, or from everywhere) or the client address is at its limit
    /// of failures; try again after this many seconds.
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
    /// Signs `credentials` in from `client` (`None` when the address is unknown: all such
    /// callers count as one address).
    ///
    /// Before any bcrypt work, the attempt reserves one failure of each of its counts (see
    /// [`budgets`]) in one statement; when any is at its limit it is refused at once and takes
    /// nothing. No connection is held while hashing. A wrong password or an unknown email keeps
    /// the reservation: that is the failure counted. A success gives it back, and forgets the
    /// account's failures from this address (the owner is here), but not the account's failures
    /// from elsewhere nor the address's at other accounts: one good account cannot launder
    /// guesses at others, and the owner's success does not reopen the account to strangers. A
    /// refusal by the hashing queue (429 or 503: nothing was checked) gives it back too.
    ///
    /// # Errors
    /// [`SigninError::Throttled`], [`SigninError::BadCredentials`], a refusal by the hashing queue
    /// ([`SigninError::Hash`]), or a failure of the database or the hasher.
    pub async fn sign_in(
        &self,
        credentials: Credentials,
        client: Option<IpAddr>,
    ) -> Result<StartedSession, SigninError> {
        let Credentials { email, password } = credentials;
        // No account can have an email PostgreSQL cannot store (a NUL) or whose canonical form is
        // too long to index: such an email is simply unknown, and only the address's count applies.
        let account = Some(canonical_email(&email)).filter(|account| {
            !account.contains('\0') && account.len() <= MAX_CANONICAL_EMAIL_BYTES
        });
        let user = self.check(account, password, client).await?;
        let mut conn = self.pool.get().await?;
        let refresh = SecretToken::generate().map_err(|e| SigninError::Random(e.to_string()))?;
        let now = Utc::now();
        let (session_id, refresh_expires_at) = self
            .pool
            .run(&mut conn, async |c| {
                crate::db::sessions::start_session(
                    c,
                    user.id,
                    now + self.sessions.max_lifetime,
                    &refresh.hash,
                    now + self.sessions.refresh_token_ttl,
                )
                .await
            })
            .await?;
        Ok(StartedSession {
            user_id: user.id,
            session_id,
            refresh_token: refresh.token,
            refresh_expires_at,
        })
    }

    /// Checks the password of the signed-in user `user_id` (re-authentication before a change to
    /// the account), under the same throttle as sign-in: it counts toward that account's failures
    /// exactly as a sign-in would, and is refused with [`SigninError::Throttled`] once the account
    /// is at a limit.
    ///
    /// # Errors
    /// As [`Signin::sign_in`]; a wrong password is [`SigninError::BadCredentials`].
    pub async fn check_password(
        &self,
        user_id: Uuid,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<UserRow, SigninError> {
        let account = {
            let mut conn = self.pool.get().await?;
            self.pool
                .run(&mut conn, async |c| {
                    users::find_canonical_email(c, user_id).await
                })
                .await?
        };
        let user = self.check(account, password, client).await?;
        if user.id == user_id {
            Ok(user)
        } else {
            Err(SigninError::BadCredentials)
        }
    }

    /// The throttle and the password check of `account` (a canonical email, `None` when no account
    /// can have the email typed) from `client`; see [`Signin::sign_in`].
    async fn check(
        &self,
        account: Option<String>,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<UserRow, SigninError> {
        let (reservation, found) = {
            let mut conn = self.pool.get().await?;
            let budgets = budgets(self.limits, account.as_deref(), client);
            let reservation = match self
                .pool
                .run(&mut conn, async |c| {
                    throttle::reserve(c, &budgets, self.limits.window).await
                })
                .await?
            {
                Reserved::Granted(reservation) => reservation,
                Reserved::Refused { retry_after } => {
                    return Err(SigninError::Throttled(retry_after));
                }
            };
            let found = match &account {
                Some(account) => {
                    self.pool
                        .run(&mut conn, async |c| {
                            users::find_with_password_hash(c, account).await
                        })
                        .await?
                }
                None => None,
            };
            (reservation, found)
        };
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
        let verified = match self.passwords.verify(password, hash, client).await {
            Ok(verified) => verified,
            Err(err) => {
                // Refused by the hashing queue (or failed): no password was checked, so no
                // failure was either — else refusals would use up an account's budget for free.
                let mut conn = self.pool.get().await?;
                self.pool
                    .run(&mut conn, async |c| reservation.give_back(c, &[]).await)
                    .await?;
                return Err(err.into());
            }
        };

        let Some(user) = user.filter(|_| verified) else {
            return Err(SigninError::BadCredentials);
        };
        let mut conn = self.pool.get().await?;
        let owner_here: Vec<ThrottleKey> = account
            .map(|account| ThrottleKey::AccountFromIp { account, client })
            .into_iter()
            .collect();
        self.pool
            .run(&mut conn, async |c| {
                reservation.give_back(c, &owner_here).await
            })
            .await?;
        Ok(user)
    }
}

/// The throttle policy: what one sign-in attempt for `account` (a canonical email, `None` when no
/// account can have the email typed) from `client` counts against, and each count's limit.
///
/// - the account from this address, `SIGNIN_MAX_FAILURES`: someone guessing from one address is
///   stopped soon, without locking the owner out elsewhere;
/// - the account from every address, `SIGNIN_MAX_FAILURES_PER_ACCOUNT`: bounds guessing at one
///   account from many addresses;
/// - the address at every account, `SIGNIN_MAX_FAILURES_PER_IP`: bounds one address guessing at
///   many accounts.
#[must_use]
pub fn budgets(
    limits: ThrottleConfig,
    account: Option<&str>,
    client: Option<IpAddr>,
) -> Vec<Budget> {
    let mut budgets = vec![Budget {
        key: ThrottleKey::Ip(client),
        limit: limits.max_failures_per_ip,
    }];
    if let Some(account) = account {
        budgets.push(Budget {
            key: ThrottleKey::AccountFromIp {
                account: account.to_string(),
                client,
            },
            limit: limits.max_failures,
        });
        budgets.push(Budget {
            key: ThrottleKey::Account(account.to_string()),
            limit: limits.max_failures_per_account,
        });
    }
    budgets
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: ThrottleConfig = ThrottleConfig {
        max_failures: 3,
        max_failures_per_ip: 10,
        max_failures_per_account: 30,
        window: Duration::from_secs(900),
    };

    #[test]
    fn an_attempt_counts_against_the_account_from_its_address_the_account_and_the_address() {
        let client: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let budget = |key, limit| Budget { key, limit };
        assert_eq!(
            budgets(LIMITS, Some("ada@example.com"), client),
            vec![
                budget(ThrottleKey::Ip(client), 10),
                budget(
                    ThrottleKey::AccountFromIp {
                        account: "ada@example.com".into(),
                        client,
                    },
                    3
                ),
                budget(ThrottleKey::Account("ada@example.com".into()), 30),
            ]
        );
        assert_eq!(
            budgets(LIMITS, None, None),
            vec![budget(ThrottleKey::Ip(None), 10)],
            "an email no account can have counts only against the address"
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
