//! Sessions: refresh-token families and their tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{data_types::PgInterval, dsl::now, prelude::*};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    schema::{refresh_families, refresh_tokens, users},
    users::UserRow,
};

/// What exchanging a refresh token came to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current, or was rotated within the reuse interval (a retry): it is spent, and
    /// the new one is stored as the session's only working refresh token.
    Rotated {
        /// The session's user.
        user_id: Uuid,
        /// The session.
        family_id: Uuid,
        /// When the new refresh token expires.
        expires_at: DateTime<Utc>,
        /// Whether the token had already been rotated, within the reuse interval.
        retry: bool,
    },
    /// The token had been exchanged longer ago than the reuse interval: its whole family is now
    /// revoked.
    Reused,
    /// Unknown, expired, or of a revoked or expired session.
    Invalid,
}

/// Starts a session for `user_id` that ends by `session_expires_at`, with its first refresh token,
/// which expires at `token_expires_at` or when the session ends, whichever is sooner. Returns the
/// session's id and when the token expires.
///
/// # Errors
/// Database errors.
pub async fn start_session(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    session_expires_at: DateTime<Utc>,
    token_hash: &[u8],
    token_expires_at: DateTime<Utc>,
) -> QueryResult<(Uuid, DateTime<Utc>)> {
    let token_expires_at = token_expires_at.min(session_expires_at);
    let family_id = Uuid::now_v7();
    conn.transaction(async |conn| {
        diesel::insert_into(refresh_families::table)
            .values((
                refresh_families::id.eq(family_id),
                refresh_families::user_id.eq(user_id),
                refresh_families::expires_at.eq(session_expires_at),
            ))
            .execute(conn)
            .await?;
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_hash.eq(token_hash),
                refresh_tokens::family_id.eq(family_id),
                refresh_tokens::expires_at.eq(token_expires_at),
            ))
            .execute(conn)
            .await?;
        Ok((family_id, token_expires_at))
    })
    .await
}

/// Exchanges the refresh token hashed `old_hash` for the one hashed `new_hash`, which expires at
/// `new_expires_at` or with its session, whichever comes first.
///
/// A token already exchanged less than `reuse_interval` ago is a retry whose answer was lost
/// (RFC 9700 §4.14.2 allows this grace): it is exchanged again, and the token it was exchanged for
/// — every other unspent token of the session — is spent at the same time, so that a session
/// keeps exactly one working refresh token. Only the hashes are stored, so the earlier answer
/// cannot be sent again; a new token it is. Exchanged longer ago (or `reuse_interval` zero), it is
/// taken as stolen and its whole family is revoked.
///
/// Every exchange locks its session's row first, then touches tokens: exchanges within one session
/// run one after the other (two racing retries each see what the other did, and each gets a
/// working pair), and no two of them can deadlock.
///
/// # Errors
/// Database errors.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    old_hash: &[u8],
    new_hash: &[u8],
    new_expires_at: DateTime<Utc>,
    reuse_interval: Duration,
) -> QueryResult<Rotation> {
    let grace = PgInterval::from_microseconds(
        i64::try_from(reuse_interval.as_micros()).unwrap_or(i64::MAX),
    );
    conn.transaction(async |conn| {
        let Some(family_id) = refresh_tokens::table
            .find(old_hash)
            .select(refresh_tokens::family_id)
            .first::<Uuid>(conn)
            .await
            .optional()?
        else {
            return Ok(Rotation::Invalid);
        };
        let live: Option<(Uuid, DateTime<Utc>)> = refresh_families::table
            .find(family_id)
            .filter(refresh_families::revoked_at.is_null())
            .filter(refresh_families::expires_at.gt(now))
            .select((refresh_families::user_id, refresh_families::expires_at))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some((user_id, session_expires_at)) = live else {
            return Ok(Rotation::Invalid);
        };

        let spent = diesel::update(
            refresh_tokens::table
                .find(old_hash)
                .filter(refresh_tokens::rotated_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set(refresh_tokens::rotated_at.eq(now))
        .execute(conn)
        .await?
            == 1;
        let retry = !spent;
        if retry {
            let (rotated, recently): (bool, Option<bool>) = refresh_tokens::table
                .find(old_hash)
                .select((
                    refresh_tokens::rotated_at.is_not_null(),
                    (refresh_tokens::rotated_at + grace).gt(now),
                ))
                .first(conn)
                .await?;
            if !rotated {
                return Ok(Rotation::Invalid);
            }
            if reuse_interval.is_zero() || recently != Some(true) {
                revoke_family(conn, family_id).await?;
                return Ok(Rotation::Reused);
            }
            diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::family_id.eq(family_id))
                    .filter(refresh_tokens::rotated_at.is_null()),
            )
            .set(refresh_tokens::rotated_at.eq(now))
            .execute(conn)
            .await?;
        }

        let expires_at = new_expires_at.min(session_expires_at);
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_hash.eq(new_hash),
                refresh_tokens::family_id.eq(family_id),
                refresh_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)
            .await?;
        Ok(Rotation::Rotated {
            user_id,
            family_id,
            expires_at,
            retry,
        })
    })
    .await
}

async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .find(family_id)
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set(refresh_families::revoked_at.eq(now))
    .execute(conn)
    .await
}

/// Ends the session `family_id` and the session of the refresh token hashed `token_hash`, if each
/// is `user_id`'s.
///
/// # Errors
/// Database errors.
pub async fn end_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: &[u8],
) -> QueryResult<usize> {
    let of_token = refresh_tokens::table
        .find(token_hash)
        .select(refresh_tokens::family_id);
    diesel::update(
        refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::revoked_at.is_null())
            .filter(
                refresh_families::id
                    .eq(family_id)
                    .or(refresh_families::id.eq_any(of_token)),
            ),
    )
    .set(refresh_families::revoked_at.eq(now))
    .execute(conn)
    .await
}

/// Ends every session of `user_id`.
///
/// # Errors
/// Database errors.
pub async fn end_all_sessions(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set(refresh_families::revoked_at.eq(now))
    .execute(conn)
    .await
}

/// Ends every session of `user_id` but `keep` (the caller's, after a change of password).
///
/// # Errors
/// Database errors.
pub async fn end_other_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Uuid,
) -> QueryResult<usize> {
    diesel::update(
        refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::id.ne(keep))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set(refresh_families::revoked_at.eq(now))
    .execute(conn)
    .await
}

/// The session an access token names: its user and its refresh-token family.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef {
    /// The user the token was issued to.
    pub user_id: Uuid,
    /// The session (refresh-token family).
    pub family_id: Uuid,
}

/// A read made in the same statement as the check of the reader's session.
#[derive(Debug)]
pub enum SessionRead<T> {
    /// The session is live and the row exists.
    Found(T),
    /// The session is live; there is no such row.
    Missing,
    /// The user is gone or the session was revoked or has expired: nothing is returned.
    Ended,
}

/// The session joined to its user, if the user exists and the session is neither revoked nor
/// expired: the per-request check behind every bearer token, over two primary keys.
#[diesel::dsl::auto_type(no_type_alias)]
pub(super) fn live_session(session: SessionRef) -> _ {
    let user_id: Uuid = session.user_id;
    let family_id: Uuid = session.family_id;
    users::table
        .inner_join(refresh_families::table)
        .filter(users::id.eq(user_id))
        .filter(refresh_families::id.eq(family_id))
        .filter(refresh_families::revoked_at.is_null())
        .filter(refresh_families::expires_at.gt(now))
}

/// The user of a live session; `None` when the user is gone or the session was revoked or has
/// expired.
///
/// # Errors
/// Database errors.
pub async fn find_session_user(
    conn: &mut AsyncPgConnection,
    session: SessionRef,
) -> QueryResult<Option<UserRow>> {
    live_session(session)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether the session is live.
///
/// # Errors
/// Database errors.
pub async fn is_live(conn: &mut AsyncPgConnection, session: SessionRef) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(live_session(session)))
        .get_result(conn)
        .await
}
