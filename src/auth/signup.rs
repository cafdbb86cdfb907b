//! The sign-up limit: each client address may attempt so many sign-ups per window, counted in
//! PostgreSQL like failed sign-ins (so replicas share it) and reserved the same way, before any
//! password is hashed.

use std::net::IpAddr;

use diesel_async::pooled_connection::deadpool::PoolError;

use crate::{
    config::SignupConfig,
    db::{
        DbPool,
        throttle::{self, Budget, Reserved, ThrottleKey},
    },
};

/// Why a sign-up may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum SignupLimitError {
    /// This address has used up its sign-ups; try again after this many seconds.
    #[error("too many sign-ups from this address; retry after {0} s")]
    Throttled(u64),
    /// No connection could be had.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A query failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Counts one sign-up attempt from `client` (`None`, an unknown address, is one address of its
/// own), or refuses it when the address has had `limits.max_per_ip` in the current window. Every
/// attempt that gets this far counts, whatever follows (a taken email included: a 409 tells
/// whether an account exists, so it is limited as well); a body that breaks the schema is refused
/// before and does not.
///
/// # Errors
/// [`SignupLimitError::Throttled`], or a failure of the database.
pub async fn reserve_signup(
    pool: &DbPool,
    limits: SignupConfig,
    client: Option<IpAddr>,
) -> Result<(), SignupLimitError> {
    let mut conn = pool.get().await?;
    let budget = Budget {
        key: ThrottleKey::SignupFromIp(client),
        limit: limits.max_per_ip,
    };
    match pool
        .run(&mut conn, async |c| {
            throttle::reserve(c, &[budget], limits.window).await
        })
        .await?
    {
        // Kept: a sign-up counts whether or not it succeeds.
        Reserved::Granted(_reservation) => Ok(()),
        Reserved::Refused { retry_after } => Err(SignupLimitError::Throttled(retry_after)),
    }
}
