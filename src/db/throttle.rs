//! Failed sign-in counters, in PostgreSQL so that every replica sees the same counts.

use std::{net::IpAddr, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Double, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::signin_failures;

/// What failed sign-ins are counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    /// An email as typed at sign-in, lower-cased and trimmed (one counter for every spelling
    /// PostgreSQL's `lower()` matches to one account).
    Email(String),
    /// A client address.
    Ip(IpAddr),
}

impl ThrottleKey {
    /// The key of an email as typed. A NUL (which no stored email can hold) becomes U+FFFD, since
    /// PostgreSQL's `text` cannot store it.
    #[must_use]
    pub fn email(typed: &str) -> Self {
        Self::Email(typed.trim().to_lowercase().replace('\0', "\u{FFFD}"))
    }

    /// The key as stored in `signin_failures.key`.
    #[must_use]
    pub fn stored(&self) -> String {
        match self {
            Self::Email(email) => format!("email:{email}"),
            Self::Ip(ip) => format!("ip:{ip}"),
        }
    }

    fn from_stored(stored: &str) -> Option<Self> {
        match stored.split_once(':')? {
            ("email", email) => Some(Self::Email(email.to_string())),
            ("ip", ip) => ip.parse().ok().map(Self::Ip),
            _ => None,
        }
    }
}

/// Failures counted for one key in its current window.
#[derive(Debug, Clone)]
pub struct FailureCount {
    /// What was counted.
    pub key: ThrottleKey,
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
    keys: &[ThrottleKey],
    window: Duration,
) -> QueryResult<Vec<FailureCount>> {
    let stored: Vec<String> = keys.iter().map(ThrottleKey::stored).collect();
    let rows: Vec<(String, DateTime<Utc>, i32)> = signin_failures::table
        .filter(signin_failures::key.eq_any(stored))
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
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, window_started_at, failures)| {
            Some(FailureCount {
                key: ThrottleKey::from_stored(&key)?,
                window_started_at,
                failures,
            })
        })
        .collect())
}

/// Counts one more failure for each key, starting a new window where the last one has closed.
///
/// # Errors
/// Database errors.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    keys: &[ThrottleKey],
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
        .bind::<Text, _>(key.stored())
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
pub async fn clear(conn: &mut AsyncPgConnection, key: &ThrottleKey) -> QueryResult<usize> {
    diesel::delete(signin_failures::table.find(key.stored()))
        .execute(conn)
        .await
}
