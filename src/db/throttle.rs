//! Failed sign-in counters, in PostgreSQL so that every replica sees the same counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Double, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::signin_failures;

/// Failures counted for one key in its current window.
#[derive(Debug, Clone, Queryable)]
pub struct FailureCount {
    /// `email:…` or `ip:…`.
    pub key: String,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// Failures so far.
    pub failures: i32,
}

fn window_secs(window: Duration) -> f64 {
    window.as_secs_f64()
}

/// The counts of `keys` whose window is still open.
///
/// # Errors
/// Database errors.
pub async fn current_failures(
    conn: &mut AsyncPgConnection,
    keys: &[String],
    window: Duration,
) -> QueryResult<Vec<FailureCount>> {
    signin_failures::table
        .filter(signin_failures::key.eq_any(keys))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "window_started_at > now() - make_interval(secs => ",
            )
            .bind::<Double, _>(window_secs(window))
            .sql(")"),
        )
        .select((
            signin_failures::key,
            signin_failures::window_started_at,
            signin_failures::failures,
        ))
        .load(conn)
        .await
}

/// Counts one more failure for each key, starting a new window where the last one has closed.
///
/// # Errors
/// Database errors.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    keys: &[String],
    window: Duration,
) -> QueryResult<()> {
    for key in keys {
        diesel::sql_query(
            "INSERT INTO signin_failures (key, window_started_at, failures) VALUES ($1, now(), 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN signin_failures.window_started_at <= now() - make_interval(secs => $2) \
                          THEN 1 ELSE signin_failures.failures + 1 END, \
               window_started_at = CASE WHEN signin_failures.window_started_at <= now() - make_interval(secs => $2) \
                          THEN now() ELSE signin_failures.window_started_at END",
        )
        .bind::<Text, _>(key)
        .bind::<Double, _>(window_secs(window))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Forgets the failures of `key` (after a successful sign-in).
///
/// # Errors
/// Database errors.
pub async fn clear(conn: &mut AsyncPgConnection, key: &str) -> QueryResult<usize> {
    diesel::delete(signin_failures::table.find(key))
        .execute(conn)
        .await
}
