//! The password-hashing share of each client address, counted across every replica: one row of
//! `hash_slots` per bcrypt job of an address waiting or running anywhere (see the migration
//! `hash_slots` and `auth::password`). Each call is one short statement on a pooled connection that
//! goes back to the pool at once: no connection is held while bcrypt runs.

use std::{net::IpAddr, time::Duration};

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Double, Integer, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl, pooled_connection::deadpool::PoolError};
use uuid::Uuid;

use super::DbPool;

/// The most expired slots one clean-up statement deletes.
const CLEAN_UP_BATCH: i64 = 1000;

/// Why a slot could not be taken or given back.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// No pooled connection in time.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The statement failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

/// The key an address's slots are counted under: its share (`domain::client_share`, an IPv6 /64),
/// as the in-memory share is.
#[must_use]
pub fn client_key(client: IpAddr) -> String {
    crate::domain::client_share(client).to_string()
}

/// Takes one of `client`'s `max` slots for `holder`, held for at most `lease` unless given back;
/// `false` (nothing taken) when `client` already has `max` live slots. One statement, serialised
/// per address across replicas by the function `take_hash_slot`.
///
/// # Errors
/// No connection, or a database error.
pub async fn take(
    pool: &DbPool,
    client: &str,
    holder: Uuid,
    max: usize,
    lease: Duration,
) -> Result<bool, SlotError> {
    let mut conn = pool.get().await?;
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    let lease = lease.as_secs_f64();
    let taken = pool
        .run(&mut conn, async |c: &mut AsyncPgConnection| {
            diesel::sql_query(
                "SELECT take_hash_slot($1, $2, $3, make_interval(secs => $4)) AS taken",
            )
            .bind::<Text, _>(client)
            .bind::<diesel::sql_types::Uuid, _>(holder)
            .bind::<Integer, _>(max)
            .bind::<Double, _>(lease)
            .get_result::<Taken>(c)
            .await
        })
        .await?;
    Ok(taken.taken)
}

/// Gives `holder`'s slot back (nothing when it has expired and been deleted already).
///
/// # Errors
/// No connection, or a database error: the slot then lasts until its lease ends.
pub async fn release(pool: &DbPool, holder: Uuid) -> Result<(), SlotError> {
    let mut conn = pool.get().await?;
    pool.run(&mut conn, async |c: &mut AsyncPgConnection| {
        diesel::sql_query("DELETE FROM hash_slots WHERE holder = $1")
            .bind::<diesel::sql_types::Uuid, _>(holder)
            .execute(c)
            .await
    })
    .await?;
    Ok(())
}

/// Deletes every expired slot (left by a replica that died, or whose release failed), a bounded
/// batch at a time, skipping rows another transaction holds; returns how many.
///
/// # Errors
/// No connection, or a database error; what was deleted before it stays deleted.
pub async fn clean_up(pool: &DbPool) -> Result<usize, SlotError> {
    let mut conn = pool.get().await?;
    let mut deleted = 0;
    loop {
        let batch = pool
            .run(&mut conn, async |c: &mut AsyncPgConnection| {
                diesel::sql_query(
                    "DELETE FROM hash_slots WHERE holder IN (\
                         SELECT holder FROM hash_slots WHERE expires_at <= now() \
                         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
                )
                .bind::<BigInt, _>(CLEAN_UP_BATCH)
                .execute(c)
                .await
            })
            .await?;
        deleted += batch;
        if i64::try_from(batch).unwrap_or(i64::MAX) < CLEAN_UP_BATCH {
            return Ok(deleted);
        }
    }
}
