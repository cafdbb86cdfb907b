//! The account's email: the verification mailed at sign-up or on request, and the change of email
//! confirmed from the new address. Each use case is one transaction that changes the account, issues
//! its one-time token and queues its mail ([`super::mail::enqueue`]) together: a mail exists if and
//! only if its change committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    mail::enqueue,
    schema::users,
    throttle::{self, Budget, Reserved},
    tokens::{self, MailedToken, NewToken, Purpose},
    users::{EMAIL_TAKEN, UserRow, insert_user, mark_email_verified},
};
use crate::{
    domain::{Email, Role, UserName},
    mail::messages,
};

/// Creates an account with the role `user` (as [`insert_user`]), and in the same transaction
/// issues its email-verification token and queues the mail that carries it. `None` when the email
/// is taken (nothing is queued).
///
/// # Errors
/// Database errors.
pub async fn sign_up(
    conn: &mut AsyncPgConnection,
    email: &Email,
    name: Option<&UserName>,
    password_hash: &str,
    verify: &MailedToken,
) -> QueryResult<Option<UserRow>> {
    let canonical = email.canonical();
    conn.transaction(async |conn| {
        let Some(row) = insert_user(conn, email, name, Role::User, password_hash).await? else {
            return Ok(None);
        };
        tokens::issue(
            conn,
            NewToken {
                hash: &verify.hash,
                user_id: row.id,
                purpose: Purpose::EmailVerify,
                expires_at: verify.expires_at,
                email_canonical: Some(&canonical),
                new_email: None,
            },
        )
        .await?;
        enqueue(conn, &messages::verify_email(&row.email, &verify.link)).await?;
        Ok(Some(row))
    })
    .await
}

/// What [`resend_verification`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    /// A new token was issued (the older stops working) and its mail queued.
    Sent,
    /// The email is verified already; nothing was counted or sent.
    AlreadyVerified,
    /// An account-mail budget is used up; nothing was sent. Retry after this many seconds.
    Refused(u64),
    /// No such user (deleted meanwhile), or one without a canonical email.
    Gone,
}

/// Mails the user a new verification link: in one transaction, reserves `budgets` (over `window`),
/// supersedes the user's verification token with `verify` and queues the mail.
///
/// # Errors
/// Database errors.
pub async fn resend_verification(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    budgets: &[Budget],
    window: Duration,
    verify: &MailedToken,
) -> QueryResult<Resent> {
    conn.transaction(async |conn| {
        // Not locked: `confirm_email` locks a token before the user, and this would lock the user
        // before a token. A change of email committed meanwhile leaves this token bound to the old
        // email, which then verifies nothing.
        let user: Option<(String, Option<String>, Option<DateTime<Utc>>)> = users::table
            .find(user_id)
            .select((
                users::email,
                users::email_canonical,
                users::email_verified_at,
            ))
            .first(conn)
            .await
            .optional()?;
        let Some((email, Some(canonical), verified_at)) = user else {
            return Ok(Resent::Gone);
        };
        if verified_at.is_some() {
            return Ok(Resent::AlreadyVerified);
        }
        if let Reserved::Refused { retry_after } = throttle::reserve(conn, budgets, window).await? {
            return Ok(Resent::Refused(retry_after));
        }
        tokens::issue(
            conn,
            NewToken {
                hash: &verify.hash,
                user_id,
                purpose: Purpose::EmailVerify,
                expires_at: verify.expires_at,
                email_canonical: Some(&canonical),
                new_email: None,
            },
        )
        .await?;
        enqueue(conn, &messages::verify_email(&email, &verify.link)).await?;
        Ok(Resent::Sent)
    })
    .await
}

/// What [`request_email_change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRequested {
    /// The email-change token was issued (an older one stops working) and the confirmation queued
    /// to the new address.
    Sent,
    /// The new email is the account's own already (in canonical form).
    Same,
    /// Another account has the new email.
    Taken,
    /// An account-mail budget is used up; nothing was sent. Retry after this many seconds.
    Refused(u64),
    /// No such user (deleted meanwhile), or one without a canonical email.
    Gone,
}

/// Starts a change of the user's email to `new_email`: in one transaction, checks it is neither
/// theirs nor another account's, reserves `budgets` (over `window`), issues the email-change
/// token and queues the confirmation mail to the new address. The account is not changed.
///
/// # Errors
/// Database errors.
pub async fn request_email_change(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    new_email: &Email,
    budgets: &[Budget],
    window: Duration,
    confirm: &MailedToken,
) -> QueryResult<ChangeRequested> {
    let canonical = new_email.canonical();
    conn.transaction(async |conn| {
        // Not locked (see `resend_verification`): these checks spare a mail that could not be
        // confirmed; the unique index decides at the confirmation.
        let current: Option<Option<String>> = users::table
            .find(user_id)
            .select(users::email_canonical)
            .first(conn)
            .await
            .optional()?;
        let Some(Some(current)) = current else {
            return Ok(ChangeRequested::Gone);
        };
        if current == canonical {
            return Ok(ChangeRequested::Same);
        }
        let taken: bool = diesel::select(diesel::dsl::exists(
            users::table.filter(users::email_canonical.eq(&canonical)),
        ))
        .get_result(conn)
        .await?;
        if taken {
            return Ok(ChangeRequested::Taken);
        }
        if let Reserved::Refused { retry_after } = throttle::reserve(conn, budgets, window).await? {
            return Ok(ChangeRequested::Refused(retry_after));
        }
        tokens::issue(
            conn,
            NewToken {
                hash: &confirm.hash,
                user_id,
                purpose: Purpose::EmailChange,
                expires_at: confirm.expires_at,
                email_canonical: Some(&canonical),
                new_email: Some(new_email.as_str()),
            },
        )
        .await?;
        enqueue(
            conn,
            &messages::confirm_new_email(new_email.as_str(), &confirm.link),
        )
        .await?;
        Ok(ChangeRequested::Sent)
    })
    .await
}

/// What [`confirm_email`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// A verification token: the account's email is verified.
    Verified,
    /// An email-change token: the account has its new email, verified, and the old address is told.
    Changed,
    /// An email-change token whose email another account took meanwhile: nothing changed, and the
    /// token still works (until it expires) should that address become free.
    Taken,
    /// No live token has this hash, or a verification token for an email the account no longer has.
    Invalid,
}

/// Why the confirmation's transaction is rolled back.
enum Abort {
    Taken,
    Database(DieselError),
}

impl From<DieselError> for Abort {
    fn from(err: DieselError) -> Self {
        Self::Database(err)
    }
}

/// Uses up the verification or email-change token with this hash (see [`Confirmed`]). For a
/// change, in one transaction: the account's email, its canonical form and `email_verified_at`
/// are set, its pending verification and password-reset tokens (mailed to the old address) are
/// revoked, and the notice to the old address is queued. Sessions are kept: the change was asked
/// for with the password and confirmed from the new address.
///
/// # Errors
/// Database errors.
pub async fn confirm_email(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Confirmed> {
    let outcome = conn
        .transaction::<_, Abort, _>(async |conn| {
            if let Some(token) = tokens::take(conn, hash, Purpose::EmailVerify).await? {
                // Only for the email it was mailed to; a verified email keeps its first date.
                let verified =
                    mark_email_verified(conn, token.user_id, token.email_canonical.as_deref())
                        .await?;
                return Ok(if verified {
                    Confirmed::Verified
                } else {
                    Confirmed::Invalid
                });
            }
            let Some(token) = tokens::take(conn, hash, Purpose::EmailChange).await? else {
                return Ok(Confirmed::Invalid);
            };
            let (Some(new_email), Some(new_canonical)) = (token.new_email, token.email_canonical)
            else {
                return Ok(Confirmed::Invalid);
            };
            let old_email: Option<String> = users::table
                .find(token.user_id)
                .select(users::email)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(old_email) = old_email else {
                return Ok(Confirmed::Invalid);
            };
            let changed = diesel::update(users::table.find(token.user_id))
                .set((
                    users::email.eq(&new_email),
                    users::email_canonical.eq(&new_canonical),
                    users::email_verified_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await;
            match changed {
                Ok(_) => {}
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                    if info.constraint_name() == Some(EMAIL_TAKEN) =>
                {
                    return Err(Abort::Taken);
                }
                Err(err) => return Err(err.into()),
            }
            tokens::revoke(conn, token.user_id, Purpose::EmailVerify).await?;
            tokens::revoke(conn, token.user_id, Purpose::PasswordReset).await?;
            enqueue(conn, &messages::email_changed(&old_email, &new_email)).await?;
            Ok(Confirmed::Changed)
        })
        .await;
    match outcome {
        Ok(confirmed) => Ok(confirmed),
        Err(Abort::Taken) => Ok(Confirmed::Taken),
        Err(Abort::Database(err)) => Err(err),
    }
}
