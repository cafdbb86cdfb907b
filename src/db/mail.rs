//! Queries on `mail_outbox`.

use std::time::Duration;

use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Double, Integer, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::mail_outbox;
use crate::mail::Outgoing;

/// Queues `mail`, due at once. Call it inside the transaction of the change that causes the mail:
/// the mail exists if and only if the change committed.
///
/// # Errors
/// Database errors.
pub async fn enqueue(conn: &mut AsyncPgConnection, mail: &Outgoing) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::id.eq(id),
            mail_outbox::recipient.eq(&mail.to),
            mail_outbox::subject.eq(&mail.subject),
            mail_outbox::body.eq(&mail.body),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// A mail a worker has claimed: due, not sent, not given up. `attempts` is the count after this
/// claim; the outcome is recorded only while it is unchanged (a worker whose lease ran out and
/// whose row another worker claimed since records nothing).
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    /// The row.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// To whom.
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// The subject.
    #[diesel(sql_type = Text)]
    pub subject: String,
    /// The body (never NULL for a row that is neither sent nor given up).
    #[diesel(sql_type = Nullable<Text>)]
    pub body: Option<String>,
    /// Attempts so far, this one included.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// Whether the mail is older than the give-up age: a failure now is the last.
    #[diesel(sql_type = Bool)]
    pub expired: bool,
}

/// Claims up to `batch` due mails, oldest due first, in one statement: each gets one more attempt
/// and is due again only after `lease` (so if this worker dies mid-send, another sends it then).
/// Rows another worker is claiming are skipped (`FOR UPDATE SKIP LOCKED`), so replicas share the
/// work without waiting on each other. `give_up_after`: the age past which a failure is final.
///
/// # Errors
/// Database errors.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    batch: i64,
    lease: Duration,
    give_up_after: Duration,
) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "UPDATE mail_outbox SET attempts = attempts + 1, \
             next_attempt_at = now() + make_interval(secs => $2) \
         WHERE id IN (\
             SELECT id FROM mail_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now() \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, recipient, subject, body, attempts, \
             created_at < now() - make_interval(secs => $3) AS expired",
    )
    .bind::<BigInt, _>(batch)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<Double, _>(give_up_after.as_secs_f64())
    .load(conn)
    .await
}

/// Records that the claimed mail was sent: its body (which may carry a one-time token) is erased.
/// Returns whether the row was still this claim's.
///
/// # Errors
/// Database errors.
pub async fn mark_sent(conn: &mut AsyncPgConnection, id: Uuid, attempts: i32) -> QueryResult<bool> {
    let rows = diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq(id))
            .filter(mail_outbox::attempts.eq(attempts))
            .filter(mail_outbox::sent_at.is_null()),
    )
    .set((
        mail_outbox::sent_at.eq(diesel::dsl::now),
        mail_outbox::body.eq(None::<String>),
        mail_outbox::last_error.eq(None::<String>),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// Records a failed attempt that may work later: due again after `retry_in`, with `error`.
///
/// # Errors
/// Database errors.
pub async fn mark_retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempts: i32,
    retry_in: Duration,
    error: &str,
) -> QueryResult<bool> {
    let rows = diesel::sql_query(
        "UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => $3), \
             last_error = $4 \
         WHERE id = $1 AND attempts = $2 AND sent_at IS NULL AND failed_at IS NULL",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Integer, _>(attempts)
    .bind::<Double, _>(retry_in.as_secs_f64())
    .bind::<Text, _>(error)
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// Records that the mail is given up: never retried, its body erased.
///
/// # Errors
/// Database errors.
pub async fn mark_failed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempts: i32,
    error: &str,
) -> QueryResult<bool> {
    let rows = diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq(id))
            .filter(mail_outbox::attempts.eq(attempts))
            .filter(mail_outbox::sent_at.is_null())
            .filter(mail_outbox::failed_at.is_null()),
    )
    .set((
        mail_outbox::failed_at.eq(diesel::dsl::now),
        mail_outbox::body.eq(None::<String>),
        mail_outbox::last_error.eq(error),
    ))
    .execute(conn)
    .await?;
    Ok(rows == 1)
}

/// Mails neither sent nor given up, due or not.
///
/// # Errors
/// Database errors.
pub async fn pending(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    mail_outbox::table
        .filter(mail_outbox::sent_at.is_null())
        .filter(mail_outbox::failed_at.is_null())
        .count()
        .get_result(conn)
        .await
}
