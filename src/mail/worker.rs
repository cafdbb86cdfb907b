//! The mail worker: one per replica, sending what the `mail_outbox` table holds.
//!
//! Each round claims up to [`BATCH`] due mails in one statement ([`db::mail::claim`]: `FOR UPDATE
//! SKIP LOCKED`, so replicas share the work and never claim the same mail at once), each for a
//! lease of [`LEASE`]; commits; then sends them, concurrently, holding no transaction and no
//! connection; and records each outcome:
//! - sent: `sent_at`, and the body (which may carry a one-time token) erased;
//! - refused for good (a 5xx reply, an address that is no address): `failed_at`, body erased;
//! - failed for now (no connection, a timeout, a 4xx reply): due again after 1, 2, 4 … seconds,
//!   at most `MAIL_RETRY_MAX_SECS`, with `last_error`; a mail still failing [`GIVE_UP_AFTER`]
//!   after it was queued is given up like a refused one.
//!
//! Delivery is at least once: a replica that dies between the SMTP server's "250" and recording
//! it leaves the row to be sent again when the lease ends (with the same `Message-ID`). An outcome
//! is recorded only if the row is still this claim's (its `attempts` unchanged).
//!
//! The worker has a pool of its own ([`POOL_SIZE`] connections, opened when first needed), so it
//! never waits behind requests for a connection nor holds one a request needs.
//!
//! The worker wakes when a request of this replica queued mail ([`Mailer::wake`]) or every
//! [`POLL_EVERY`] (for other replicas' mail and retries), whichever comes first. A database error
//! is logged and waited out (doubling up to [`DB_BACKOFF_MAX`]); nothing here panics or stops the
//! server. Logs name the outbox row's id and the outcome, never the address, the body or a token.

use std::{path::PathBuf, sync::Arc, time::Duration};

use lettre::message::Mailbox;
use tokio::{sync::watch, task::JoinSet};
use uuid::Uuid;

use super::{
    Mailer, Outgoing,
    transport::{SendError, Transport},
};
use crate::{
    db::{self, DbPool, mail::Claimed},
    metrics::{MAIL_EXPIRED, MAIL_PERMANENT, MAIL_TRANSIENT, Metrics},
};

/// How often the worker looks for due mail when nothing wakes it: one indexed query a second.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a claimed mail is this worker's: longer than a send may take
/// ([`super::transport::SEND_TIMEOUT`]) plus recording it.
pub const LEASE: Duration = Duration::from_secs(60);
/// The most mails claimed (and sent at once) per round.
pub const BATCH: i64 = 20;
/// A mail still failing this long after it was queued is given up: three days, past which a
/// password-reset or confirmation link has long expired anyway.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 24 * 60 * 60);
/// Connections of the worker's own pool (apart from the requests'): one claims, the sends'
/// outcomes are recorded on either.
pub const POOL_SIZE: usize = 2;
/// The longest wait after a database error.
pub const DB_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One replica's mail worker; [`Worker::run`] runs it.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    transport: Transport,
    from: Mailbox,
    retry_max: Duration,
    mailer: Mailer,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

/// The wait before attempt `attempts + 1` after `attempts` failed ones: 1, 2, 4 … seconds, at
/// most `retry_max`.
#[must_use]
pub fn backoff(attempts: i32, retry_max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    Duration::from_secs(1u64 << exponent).min(retry_max)
}

impl Worker {
    /// A worker sending through `transport` from `from`, woken by `mailer`, counting into
    /// `metrics`.
    #[must_use]
    pub fn new(
        pool: DbPool,
        transport: Transport,
        from: Mailbox,
        retry_max: Duration,
        mailer: Mailer,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                transport,
                from,
                retry_max,
                mailer,
                metrics,
            }),
        }
    }

    /// Runs rounds until `stop` turns true; the round in flight then finishes (its sends are
    /// bounded by the send timeout) before this returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        match &self.inner.transport {
            Transport::Files { dir, .. } => tracing::info!(
                dir = %dir.display(),
                "SMTP_URL is not set: mail is written as .eml files into {}",
                dir.display()
            ),
            Transport::Smtp { server, .. } => {
                tracing::info!(server = %server, "mail is sent to the SMTP server {server}");
            }
        }
        let mut db_backoff = POLL_EVERY;
        loop {
            if *stop.borrow() {
                break;
            }
            let wait = match self.round().await {
                Ok(true) => continue,
                Ok(false) => {
                    db_backoff = POLL_EVERY;
                    POLL_EVERY
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        retry_in_secs = db_backoff.as_secs(),
                        "the mail worker cannot reach the outbox; will retry"
                    );
                    let wait = db_backoff;
                    db_backoff = (db_backoff * 2).min(DB_BACKOFF_MAX);
                    wait
                }
            };
            tokio::select! {
                () = self.inner.mailer.woken() => {}
                () = tokio::time::sleep(wait) => {}
                changed = stop.changed() => {
                    // The server is gone without a word: stop too (rather than spin).
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::debug!("mail worker stopped");
    }

    /// Claims and sends one batch; true when the batch was full (there may be more due now).
    async fn round(&self) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let claimed = {
            let mut conn = self.inner.pool.get().await?;
            // Through the pool's `run`, as a request's calls: a deadline, and a connection whose
            // write a standby refused (a demoted primary) is not lent again.
            let pool = &self.inner.pool;
            let claimed = pool
                .run(&mut conn, async |c| {
                    db::mail::claim(c, BATCH, LEASE, GIVE_UP_AFTER).await
                })
                .await?;
            let pending = pool
                .run(&mut conn, async |c| db::mail::pending(c).await)
                .await?;
            self.inner.metrics.mail_pending(pending);
            claimed
        };
        let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= BATCH;
        let mut sends = JoinSet::new();
        for mail in claimed {
            let worker = self.clone();
            sends.spawn(async move { worker.deliver(mail).await });
        }
        while sends.join_next().await.is_some() {}
        Ok(full)
    }

    /// Sends one claimed mail and records the outcome.
    async fn deliver(&self, mail: Claimed) {
        let inner = &self.inner;
        let (id, attempt) = (mail.id, mail.attempts);
        let Some(body) = mail.body else {
            // Cannot happen (the body is erased only with sent_at or failed_at); give it up.
            self.record(id, attempt, Outcome::Failed("no body".into()))
                .await;
            return;
        };
        let outgoing = Outgoing {
            to: mail.recipient,
            subject: mail.subject,
            body,
        };
        let outcome = match inner.transport.send(id, &inner.from, &outgoing).await {
            Ok(path) => {
                inner.metrics.mail_sent();
                log_sent(id, attempt, path);
                Outcome::Sent
            }
            Err(SendError::Permanent(why)) => {
                inner.metrics.mail_failed(MAIL_PERMANENT);
                tracing::warn!(mail_id = %id, attempt, error = %why, "mail refused; given up");
                Outcome::Failed(why)
            }
            Err(SendError::Transient(why)) if mail.expired => {
                inner.metrics.mail_failed(MAIL_EXPIRED);
                tracing::warn!(
                    mail_id = %id,
                    attempt,
                    error = %why,
                    "mail not sent, and queued too long ago to try again; given up"
                );
                Outcome::Failed(why)
            }
            Err(SendError::Transient(why)) => {
                inner.metrics.mail_failed(MAIL_TRANSIENT);
                let retry_in = backoff(attempt, inner.retry_max);
                tracing::warn!(
                    mail_id = %id,
                    attempt,
                    error = %why,
                    retry_in_secs = retry_in.as_secs(),
                    "mail not sent; will retry"
                );
                Outcome::Retry(retry_in, why)
            }
        };
        self.record(id, attempt, outcome).await;
    }

    /// Writes `outcome` to the row, trying three times; a row left unrecorded is claimed again
    /// when its lease ends.
    async fn record(&self, id: Uuid, attempts: i32, outcome: Outcome) {
        let mut last = String::new();
        for pause in [0, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let result = async {
                let mut conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
                let outcome = &outcome;
                self.inner
                    .pool
                    .run(&mut conn, async |c| match outcome {
                        Outcome::Sent => db::mail::mark_sent(c, id, attempts).await,
                        Outcome::Retry(after, why) => {
                            db::mail::mark_retry(c, id, attempts, *after, why).await
                        }
                        Outcome::Failed(why) => db::mail::mark_failed(c, id, attempts, why).await,
                    })
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        mail_id = %id,
                        attempt = attempts,
                        "the mail's lease ran out before its outcome was recorded; another attempt owns it"
                    );
                    return;
                }
                Err(err) => last = err,
            }
        }
        tracing::warn!(
            mail_id = %id,
            attempt = attempts,
            error = %last,
            "the mail's outcome could not be recorded; it will be tried again when its lease ends"
        );
    }
}

fn log_sent(id: Uuid, attempt: i32, path: Option<PathBuf>) {
    match path {
        Some(path) => {
            tracing::info!(mail_id = %id, attempt, path = %path.display(), "mail written");
        }
        None => tracing::info!(mail_id = %id, attempt, "mail sent"),
    }
}

enum Outcome {
    Sent,
    Retry(Duration, String),
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_one_second_up_to_the_maximum() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(i32::MAX, max), max);
        assert_eq!(backoff(0, max), Duration::from_secs(1));
        assert_eq!(backoff(5, Duration::from_secs(2)), Duration::from_secs(2));
    }
}
