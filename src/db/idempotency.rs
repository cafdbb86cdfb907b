//! Idempotency keys (`POST /news` with `Idempotency-Key`): the first response given to a request
//! with a key, kept in PostgreSQL for [`KEEP_FOR_HOURS`] so that a retry on any replica gets it again
//! instead of creating a second item.
//!
//! One transaction claims the key, creates the item and records the response
//! ([`create_news_once`]). So a committed key always has its response, an item created with a key
//! always has its key, and a request that fails — a 4xx found late, a 503, a server killed mid-way
//! — leaves nothing behind: its key is free again, and there is no stale claim for anyone to take
//! over. While the transaction runs, a transaction-scoped advisory lock on the key makes a
//! concurrent request with it answer 409 at once rather than queue behind the row lock; the
//! primary key `(user_id, key)`, not the lock, is what keeps two items from being made (a second
//! claim that got past the lock would wait for the first transaction and then find its row).

use std::time::Duration;

use diesel::{
    dsl::{IntervalDsl, now},
    prelude::*,
    query_dsl::methods::FilterDsl,
    sql_types::BigInt,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    DbPool,
    news::{NewsRow, insert_news},
    schema::idempotency_keys,
};
use crate::domain::{IdempotencyKey, NewsDraft, RequestFingerprint};

/// How long a key is kept, in hours. A request with a key older than this is a new request.
pub const KEEP_FOR_HOURS: i32 = 24;

/// How often each replica deletes expired keys ([`clean_up_every`]).
pub const CLEAN_UP_EVERY: Duration = Duration::from_secs(300);

/// The most keys one clean-up statement deletes: short statements, short row locks.
const CLEAN_UP_BATCH: i64 = 1000;

diesel::define_sql_function! {
    /// Takes the transaction-scoped advisory lock `key` if it is free; never waits.
    fn pg_try_advisory_xact_lock(key: BigInt) -> Bool;
}

/// A response as first given, to be given again byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Its status (a 2xx).
    pub status: u16,
    /// Its body.
    pub body: Vec<u8>,
    /// Its `Location` header.
    pub location: Option<String>,
    /// Its `ETag` header.
    pub etag: Option<String>,
}

/// What a request with an idempotency key came to.
#[derive(Debug)]
pub enum Once<T> {
    /// The first request with the key: done now, and its response recorded.
    Done(T, StoredResponse),
    /// An earlier request with the key and the same fingerprint succeeded: its response.
    Replay(StoredResponse),
    /// The key was used with another request (another fingerprint); nothing was done.
    Mismatch,
    /// A request with the key is running now; nothing was done.
    InFlight,
}

/// Creates a news item by `author` unless `key` has already created one: the whole of a first
/// request, in one transaction (see the module's documentation). `render` makes the response
/// from the new row; it is recorded with the key before the transaction commits.
///
/// # Errors
/// Database errors, and `render`'s.
pub async fn create_news_once<E>(
    conn: &mut AsyncPgConnection,
    author: Uuid,
    key: &IdempotencyKey,
    fingerprint: RequestFingerprint,
    draft: NewsDraft,
    render: impl FnOnce(&NewsRow) -> Result<StoredResponse, E> + Send,
) -> Result<Once<NewsRow>, E>
where
    E: From<diesel::result::Error> + Send,
{
    let key = key.as_str();
    conn.transaction(async |conn| {
        if !diesel::select(pg_try_advisory_xact_lock(lock_id(author, key)))
            .get_result::<bool>(conn)
            .await?
        {
            return Ok(Once::InFlight);
        }
        if !claim(conn, author, key, fingerprint).await? {
            return Ok(earlier(conn, author, key, fingerprint).await?);
        }
        let row = insert_news(conn, author, draft).await?;
        let response = render(&row)?;
        diesel::update(idempotency_keys::table.find((author, key)))
            .set((
                idempotency_keys::response_status.eq(i16::try_from(response.status).ok()),
                idempotency_keys::response_body.eq(&response.body),
                idempotency_keys::response_location.eq(&response.location),
                idempotency_keys::response_etag.eq(&response.etag),
            ))
            .execute(conn)
            .await?;
        Ok(Once::Done(row, response))
    })
    .await
}

/// Inserts the key's row, or takes over a row older than [`KEEP_FOR_HOURS`] (which the clean-up has not
/// reached yet); `false` when a live row holds the key.
async fn claim(
    conn: &mut AsyncPgConnection,
    author: Uuid,
    key: &str,
    fingerprint: RequestFingerprint,
) -> QueryResult<bool> {
    let hash = fingerprint.as_bytes().as_slice();
    let upsert = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(author),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(hash),
        ))
        .on_conflict((idempotency_keys::user_id, idempotency_keys::key))
        .do_update()
        .set((
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::created_at.eq(now),
            idempotency_keys::response_status.eq(None::<i16>),
            idempotency_keys::response_body.eq(None::<Vec<u8>>),
            idempotency_keys::response_location.eq(None::<String>),
            idempotency_keys::response_etag.eq(None::<String>),
        ));
    // `ON CONFLICT … DO UPDATE … WHERE`: only an expired row is taken over.
    let claimed = FilterDsl::filter(
        upsert,
        (idempotency_keys::created_at + KEEP_FOR_HOURS.hours()).le(now),
    )
    .execute(conn)
    .await?;
    Ok(claimed == 1)
}

/// What the earlier request with the key left: its response, if the request was the same.
async fn earlier(
    conn: &mut AsyncPgConnection,
    author: Uuid,
    key: &str,
    fingerprint: RequestFingerprint,
) -> QueryResult<Once<NewsRow>> {
    type Stored = (
        Vec<u8>,
        Option<i16>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
    );
    let (hash, status, body, location, etag): Stored = idempotency_keys::table
        .find((author, key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
            idempotency_keys::response_location,
            idempotency_keys::response_etag,
        ))
        .first(conn)
        .await?;
    if hash != fingerprint.as_bytes() {
        return Ok(Once::Mismatch);
    }
    // A committed row always has its response (it is written in the claiming transaction); a row
    // without one is a claim still running, seen only if the advisory lock was somehow missed.
    Ok(match (status.and_then(|s| u16::try_from(s).ok()), body) {
        (Some(status), Some(body)) => Once::Replay(StoredResponse {
            status,
            body,
            location,
            etag,
        }),
        _ => Once::InFlight,
    })
}

/// The advisory lock of one user's key: 64 bits of the SHA-256 of both. Two keys that share them
/// (one chance in 2^64 per pair in flight at once) only make one of them wait its turn with a 409.
fn lock_id(author: Uuid, key: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"idempotency-key\0")
        .chain_update(author.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Deletes at most `batch` keys older than [`KEEP_FOR_HOURS`]; returns how many. Rows another
/// transaction holds are skipped, so replicas cleaning up at once do not queue behind each other.
///
/// # Errors
/// Database errors.
pub async fn delete_expired(conn: &mut AsyncPgConnection, batch: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM idempotency_keys WHERE (user_id, key) IN (\
             SELECT user_id, key FROM idempotency_keys \
             WHERE created_at < now() - make_interval(hours => $1) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<diesel::sql_types::Integer, _>(KEEP_FOR_HOURS)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await
}

/// Deletes every expired key, a batch at a time; returns how many.
///
/// # Errors
/// No connection, or a database error; what was deleted before it stays deleted.
pub async fn clean_up(pool: &DbPool) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = pool.get().await?;
    let mut deleted = 0;
    loop {
        // Through `run`: a deadline, and a connection a standby refused is not lent again.
        let batch = pool
            .run(&mut conn, async |c| delete_expired(c, CLEAN_UP_BATCH).await)
            .await?;
        deleted += batch;
        if i64::try_from(batch).unwrap_or(i64::MAX) < CLEAN_UP_BATCH {
            return Ok(deleted);
        }
    }
}

/// Runs [`clean_up`] every [`CLEAN_UP_EVERY`], for as long as the server runs; every replica does.
/// The expired password-hashing slots ([`super::hash_slots::clean_up`]) and one-time account
/// tokens ([`super::tokens::delete_expired`]) are deleted in the same round.
///
/// A periodic task rather than a delete piggy-backed on each insert: creates pay nothing for it,
/// and keys still expire on a replica that no longer gets writes. Replicas do not coordinate: each
/// statement is a bounded, index-driven `DELETE` that skips rows another one holds. A key that
/// outlives its 24 hours before the next run is already treated as absent ([`create_news_once`]
/// takes it over).
pub async fn clean_up_every(pool: DbPool, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match clean_up(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired idempotency keys deleted"),
            Err(err) => tracing::warn!(error = %err, "idempotency keys not cleaned up; will retry"),
        }
        // The password-hashing slots that outlived their lease (`db::hash_slots`), beside.
        match super::hash_slots::clean_up(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired password-hashing slots deleted"),
            Err(err) => tracing::warn!(error = %err, "hashing slots not cleaned up; will retry"),
        }
        // Mailed one-time tokens past their lifetime (`db::tokens`): at most one per user and
        // purpose, so few, but none kept longer than it could be used.
        match clean_up_tokens(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired account tokens deleted"),
            Err(err) => tracing::warn!(error = %err, "account tokens not cleaned up; will retry"),
        }
    }
}

/// Deletes the expired one-time account tokens ([`super::tokens::delete_expired`]).
async fn clean_up_tokens(pool: &DbPool) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = pool.get().await?;
    Ok(pool
        .run(&mut conn, async |c| super::tokens::delete_expired(c).await)
        .await?)
}
