//! Counters that limit attempts (failed sign-ins, sign-ups), in PostgreSQL so that every replica
//! sees the same counts, and taken in a way no burst can race: an attempt *reserves* one count of
//! every key it is limited by before any work is done, in one statement, and is refused when any
//! key would pass its limit. Which keys and limits apply is the callers' policy
//! (`auth::signin`, `auth::signup`); this module only counts.

use std::{net::IpAddr, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, Double, Integer, Text, Timestamptz},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::schema::signin_failures;
use crate::domain::client_share;

/// What attempts are counted against. Accounts are named by their canonical email
/// (`domain::canonical_email`), so every spelling that reaches one account shares its counts. An
/// unknown client address (no socket address: only in-process callers) is one address of its own,
/// `unknown`, which all such callers share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleKey {
    /// Failed sign-ins at one account from one client address.
    AccountFromIp {
        /// The account's canonical email.
        account: String,
        /// The client address.
        client: Option<IpAddr>,
    },
    /// Failed sign-ins at one account from every address together.
    Account(String),
    /// Failed sign-ins from one client address, at any account.
    Ip(Option<IpAddr>),
    /// Sign-ups from one client address.
    SignupFromIp(Option<IpAddr>),
    /// Requests that send an account mail (forgotten password, resent verification, email change)
    /// from one client address.
    MailFromIp(Option<IpAddr>),
    /// Requests that send an account mail about one account: its canonical email (for a forgotten
    /// password, whether or not an account has it) or, signed in, the user's id.
    MailFor(String),
}

impl ThrottleKey {
    /// The key as stored in `signin_failures.key`.
    #[must_use]
    pub fn stored(&self) -> String {
        let address = |client: &Option<IpAddr>| {
            client.map_or_else(|| "unknown".to_string(), |ip| client_share(ip).to_string())
        };
        match self {
            Self::AccountFromIp { account, client } => {
                format!("account-ip:{} {account}", address(client))
            }
            Self::Account(account) => format!("account:{account}"),
            Self::Ip(client) => format!("ip:{}", address(client)),
            Self::SignupFromIp(client) => format!("signup-ip:{}", address(client)),
            Self::MailFromIp(client) => format!("mail-ip:{}", address(client)),
            Self::MailFor(account) => format!("mail-for:{account}"),
        }
    }
}

/// A key and the most counts it may reach in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// What is counted.
    pub key: ThrottleKey,
    /// The most counts per window; the attempt that would pass it is refused.
    pub limit: i32,
}

/// The outcome of [`reserve`].
#[derive(Debug)]
pub enum Reserved {
    /// One count of every key was taken.
    Granted(Reservation),
    /// Some key is at its limit; nothing was taken. Try again after this many seconds (at least 1),
    /// when the last window that is full ends.
    Refused {
        /// Seconds until every key that refused has a new window.
        retry_after: u64,
    },
}

/// The counts an attempt took: one of each key, in the window that was open then.
#[derive(Debug)]
#[must_use = "a reservation is kept (the attempt counts) unless it is given back"]
pub struct Reservation {
    taken: Vec<(String, DateTime<Utc>)>,
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = Timestamptz)]
    window_started_at: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    secs_left: f64,
}

/// Why the reservation's transaction ends: a refusal rolls it back like an error.
enum Abort {
    Refused(u64),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Abort {
    fn from(err: diesel::result::Error) -> Self {
        Self::Database(err)
    }
}

/// Takes one count of every budget's key, or none: in one transaction, one statement adds one to
/// each key (starting a new window for a key whose window of `window` has closed) and returns the
/// new counts; if any passes its limit the transaction is rolled back, so a refused attempt takes
/// nothing and does not count. Rows are locked until the end of the transaction, so concurrent
/// attempts at one key are counted one after the other: with a limit of L, at most L of any number
/// of concurrent attempts are granted, on any number of replicas. Keys are locked in one order
/// (sorted), so two attempts never wait for each other in a cycle.
///
/// # Errors
/// Database errors.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    budgets: &[Budget],
    window: Duration,
) -> QueryResult<Reserved> {
    let mut limits: Vec<(String, i32)> = budgets
        .iter()
        .map(|budget| (budget.key.stored(), budget.limit))
        .collect();
    limits.sort();
    // One key twice would make `ON CONFLICT DO UPDATE` touch a row twice, an error; the smaller
    // limit (first after sorting) is the one that holds.
    limits.dedup_by(|later, earlier| later.0 == earlier.0);
    let keys: Vec<String> = limits.iter().map(|(key, _)| key.clone()).collect();
    let outcome = conn
        .transaction::<_, Abort, _>(async |conn| {
            let counted: Vec<Counted> = diesel::sql_query(
                "INSERT INTO signin_failures AS f (key, window_started_at, failures) \
                 SELECT key, now(), 1 FROM unnest($1::text[]) WITH ORDINALITY AS k (key, n) \
                 ORDER BY n \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN f.window_started_at <= now() - make_interval(secs => $2) \
                              THEN 1 ELSE f.failures + 1 END, \
                   window_started_at = CASE WHEN f.window_started_at <= now() - make_interval(secs => $2) \
                              THEN now() ELSE f.window_started_at END \
                 RETURNING key, failures, window_started_at, \
                   extract(epoch FROM window_started_at + make_interval(secs => $2) - now())::float8 \
                     AS secs_left",
            )
            .bind::<Array<Text>, _>(&keys)
            .bind::<Double, _>(window.as_secs_f64())
            .load(conn)
            .await?;
            let refused_for = counted
                .iter()
                .filter(|row| {
                    limits
                        .iter()
                        .any(|(key, limit)| *key == row.key && row.failures > *limit)
                })
                .map(|row| row.secs_left)
                .fold(None, |longest: Option<f64>, secs| {
                    Some(longest.map_or(secs, |longest| longest.max(secs)))
                });
            if let Some(secs) = refused_for {
                return Err(Abort::Refused(whole_secs(secs)));
            }
            Ok(Reservation {
                taken: counted
                    .into_iter()
                    .map(|row| (row.key, row.window_started_at))
                    .collect(),
            })
        })
        .await;
    match outcome {
        Ok(reservation) => Ok(Reserved::Granted(reservation)),
        Err(Abort::Refused(retry_after)) => Ok(Reserved::Refused { retry_after }),
        Err(Abort::Database(err)) => Err(err),
    }
}

/// Seconds to announce in `Retry-After`: whole, rounded up, at least 1.
fn whole_secs(secs: f64) -> u64 {
    let secs = secs.ceil();
    if secs >= 1.0 {
        // A window is at most u64::MAX seconds (a `Duration` of whole seconds from the settings).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = secs as u64;
        whole
    } else {
        1
    }
}

impl Reservation {
    /// Gives the counts back: each key loses the count this reservation took (if its window is
    /// still the one it was taken in), and the keys in `forget` lose every count. Done key by key,
    /// one row per statement, so that it never holds one row while waiting for another.
    ///
    /// # Errors
    /// Database errors.
    pub async fn give_back(
        self,
        conn: &mut AsyncPgConnection,
        forget: &[ThrottleKey],
    ) -> QueryResult<()> {
        let forget: Vec<String> = forget.iter().map(ThrottleKey::stored).collect();
        for (key, window_started_at) in self.taken {
            if forget.contains(&key) {
                diesel::delete(signin_failures::table.find(&key))
                    .execute(conn)
                    .await?;
            } else {
                diesel::update(
                    signin_failures::table
                        .find(&key)
                        .filter(signin_failures::window_started_at.eq(window_started_at))
                        .filter(signin_failures::failures.gt(0)),
                )
                .set(signin_failures::failures.eq(signin_failures::failures - 1))
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_key_is_stored_under_its_own_prefix() {
        let ip: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let v6: Option<IpAddr> = Some("2001:db8::1".parse().unwrap());
        let account = "ada@example.com".to_string();
        let cases = [
            (ThrottleKey::Ip(ip), "ip:192.0.2.1"),
            (ThrottleKey::Ip(v6), "ip:2001:db8::"),
            (ThrottleKey::Ip(None), "ip:unknown"),
            (
                ThrottleKey::Account(account.clone()),
                "account:ada@example.com",
            ),
            (
                ThrottleKey::AccountFromIp {
                    account: account.clone(),
                    client: ip,
                },
                "account-ip:192.0.2.1 ada@example.com",
            ),
            (
                ThrottleKey::AccountFromIp {
                    account,
                    client: None,
                },
                "account-ip:unknown ada@example.com",
            ),
            (ThrottleKey::SignupFromIp(ip), "signup-ip:192.0.2.1"),
        ];
        for (key, stored) in cases {
            assert_eq!(key.stored(), stored);
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (secs, whole) in [(899.2, 900), (1.0, 1), (0.3, 1), (0.0, 1), (-2.5, 1)] {
            assert_eq!(whole_secs(secs), whole, "{secs}");
        }
    }
}
