//! Mail: what the account operations send, written to the `mail_outbox` table in the transaction
//! of the change that causes it ([`crate::db::mail::enqueue`]) and sent later by a worker in every
//! replica, so that a mail is never lost to a crash or to a mail server that is down.

pub mod messages;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

/// One mail to send: plain text, to one recipient, from `MAIL_FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The address it goes to, as the account spells it.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body; it may carry a one-time link.
    pub body: String,
}

/// Wakes this replica's mail worker after a transaction that queued mail has committed, so the mail
/// goes out at once rather than at the worker's next poll. Cheap to clone; waking is optional (the
/// worker polls as well, and other replicas' mail is found by polling).
#[derive(Debug, Clone, Default)]
pub struct Mailer {
    wake: Arc<Notify>,
}

impl Mailer {
    /// Tells the worker there is mail.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Mailer::wake`] was called (once per call, coalesced).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
