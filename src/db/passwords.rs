//! The account's password: its change, the mailed reset link and the reset. Each use case is one
//! transaction that makes its change and queues the mail it causes ([`super::mail::enqueue`])
//! together: a mail exists if and only if its change committed. The new hash comes made: bcrypt
//! runs before, with no connection held.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{
    mail::enqueue,
    sessions,
    throttle::{self, Budget, Reserved},
    tokens::{self, MailedToken, NewToken, Purpose},
    users::{self, UserRow},
};
use crate::mail::messages;

/// Sets the user's password hash, and in the same transaction ends every session of theirs but
/// `keep` (the caller's), revokes their password-reset token and queues the notice to `email`.
/// `false` when the user is gone (nothing is changed or queued).
///
/// # Errors
/// Database errors.
pub async fn change_password(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Uuid,
    password_hash: &str,
    email: &str,
) -> QueryResult<bool> {
    conn.transaction(async |conn| {
        if !users::set_password_hash(conn, user_id, password_hash).await? {
            return Ok(false);
        }
        sessions::end_other_sessions(conn, user_id, keep).await?;
        tokens::revoke(conn, user_id, Purpose::PasswordReset).await?;
        enqueue(conn, &messages::password_changed(email)).await?;
        Ok(true)
    })
    .await
}

/// What [`request_reset`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRequested {
    /// The reset token was issued (an older one stops working) and its mail queued.
    Sent,
    /// No account has the email; only the counts were written.
    Unknown,
    /// An account-mail budget is used up; nothing was sent. Retry after this many seconds.
    Refused(u64),
}

/// Mails a password-reset link to the account whose canonical email is `canonical`, if any
/// (`None`: an email no account can have): in one transaction, reserves `budgets` (over `window`;
/// the counts are kept whatever follows, that is the point of them), finds the account, issues
/// `reset` and queues its mail, which says the link works for `minutes`.
///
/// # Errors
/// Database errors.
pub async fn request_reset(
    conn: &mut AsyncPgConnection,
    canonical: Option<&str>,
    budgets: &[Budget],
    window: Duration,
    reset: &MailedToken,
    minutes: u64,
) -> QueryResult<ResetRequested> {
    conn.transaction(async |conn| {
        if let Reserved::Refused { retry_after } = throttle::reserve(conn, budgets, window).await? {
            return Ok(ResetRequested::Refused(retry_after));
        }
        let user = match canonical {
            Some(canonical) => users::find_by_canonical_email(conn, canonical).await?,
            None => None,
        };
        let Some(user) = user else {
            return Ok(ResetRequested::Unknown);
        };
        tokens::issue(
            conn,
            NewToken {
                hash: &reset.hash,
                user_id: user.id,
                purpose: Purpose::PasswordReset,
                expires_at: reset.expires_at,
                email_canonical: None,
                new_email: None,
            },
        )
        .await?;
        enqueue(
            conn,
            &messages::reset_password(&user.email, &reset.link, minutes),
        )
        .await?;
        Ok(ResetRequested::Sent)
    })
    .await
}

/// The account a live password-reset token with this hash belongs to, without using the token up.
///
/// # Errors
/// Database errors.
pub async fn reset_token_owner(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<UserRow>> {
    match tokens::peek(conn, token_hash, Purpose::PasswordReset).await? {
        Some(user_id) => users::find_user(conn, user_id).await,
        None => Ok(None),
    }
}

/// Uses up the password-reset token with this hash, and in the same transaction sets its user's
/// password hash, ends every session of theirs, marks their email verified (the link reached the
/// account's current address: a change of email revokes pending reset tokens) and queues the notice
/// to `email`. Of two resets racing with one token, one wins. `false` when no live token has this
/// hash or its user is gone (nothing is changed or queued).
///
/// # Errors
/// Database errors.
pub async fn reset_password(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    password_hash: &str,
    email: &str,
) -> QueryResult<bool> {
    conn.transaction(async |conn| {
        let Some(taken) = tokens::take(conn, token_hash, Purpose::PasswordReset).await? else {
            return Ok(false);
        };
        if !users::set_password_hash(conn, taken.user_id, password_hash).await? {
            return Ok(false);
        }
        sessions::end_all_sessions(conn, taken.user_id).await?;
        users::mark_email_verified(conn, taken.user_id, None).await?;
        enqueue(conn, &messages::password_changed(email)).await?;
        Ok(true)
    })
    .await
}
