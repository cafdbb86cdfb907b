//! Queries on `account_tokens`: the one-time tokens mailed for a password reset, an email
//! verification or an email change. A user has at most one live token per purpose.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::account_tokens;

/// What a token is for (stored as its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `POST /password/reset`.
    PasswordReset,
    /// `POST /email/verify` for the account's current email.
    EmailVerify,
    /// `POST /email/verify` for a new email, which becomes the account's once confirmed.
    EmailChange,
}

impl Purpose {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerify => "email_verify",
            Self::EmailChange => "email_change",
        }
    }
}

/// A token to store: only its hash, never the token.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// SHA-256 of the token ([`crate::auth::hash_secret_token`]).
    pub hash: &'a [u8],
    /// Whose it is.
    pub user_id: Uuid,
    /// What it is for.
    pub purpose: Purpose,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// For [`Purpose::EmailVerify`]: the canonical email it proves (a later change of email makes
    /// it useless). For [`Purpose::EmailChange`]: the canonical form of the new email.
    pub email_canonical: Option<&'a str>,
    /// For [`Purpose::EmailChange`]: the new email as typed.
    pub new_email: Option<&'a str>,
}

/// A one-time token to issue and the link that carries it, for the mail. No `Debug`: the link
/// carries the token itself.
pub struct MailedToken {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// `PUBLIC_BASE_URL` + path + `?token=…`.
    pub link: String,
}

/// A token that was just used up.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct TakenToken {
    /// Whose it was.
    pub user_id: Uuid,
    /// The canonical email it proves (verification) or, for an email change, of the new email.
    pub email_canonical: Option<String>,
    /// For an email change: the new email as typed.
    pub new_email: Option<String>,
}

/// Stores `token`, superseding the user's older token of the same purpose (which stops working).
///
/// # Errors
/// Database errors.
pub async fn issue(conn: &mut AsyncPgConnection, token: NewToken<'_>) -> QueryResult<()> {
    let (email_canonical, new_email, new_email_canonical) = match token.purpose {
        Purpose::EmailChange => (None, token.new_email, token.email_canonical),
        Purpose::EmailVerify => (token.email_canonical, None, None),
        Purpose::PasswordReset => (None, None, None),
    };
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::token_hash.eq(token.hash),
            account_tokens::user_id.eq(token.user_id),
            account_tokens::purpose.eq(token.purpose.as_str()),
            account_tokens::email_canonical.eq(email_canonical),
            account_tokens::new_email.eq(new_email),
            account_tokens::new_email_canonical.eq(new_email_canonical),
            account_tokens::expires_at.eq(token.expires_at),
        ))
        .on_conflict((account_tokens::user_id, account_tokens::purpose))
        .do_update()
        .set((
            account_tokens::token_hash.eq(excluded(account_tokens::token_hash)),
            account_tokens::email_canonical.eq(excluded(account_tokens::email_canonical)),
            account_tokens::new_email.eq(excluded(account_tokens::new_email)),
            account_tokens::new_email_canonical.eq(excluded(account_tokens::new_email_canonical)),
            account_tokens::created_at.eq(diesel::dsl::now),
            account_tokens::expires_at.eq(excluded(account_tokens::expires_at)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A token's row as [`take`] reads it back: user, email, new email, new email's canonical form,
/// expiry.
type StoredToken = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
);

/// Uses up the token with this hash, if it is one for `purpose`: it is deleted whatever its state,
/// and returned only if it had not expired. `None` for an unknown, used, superseded or expired
/// token — one answer for all of them.
///
/// # Errors
/// Database errors.
pub async fn take(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    purpose: Purpose,
) -> QueryResult<Option<TakenToken>> {
    let taken: Option<StoredToken> = diesel::delete(
        account_tokens::table
            .filter(account_tokens::token_hash.eq(hash))
            .filter(account_tokens::purpose.eq(purpose.as_str())),
    )
    .returning((
        account_tokens::user_id,
        account_tokens::email_canonical,
        account_tokens::new_email,
        account_tokens::new_email_canonical,
        account_tokens::expires_at,
    ))
    .get_result(conn)
    .await
    .optional()?;
    Ok(taken.and_then(
        |(user_id, email_canonical, new_email, new_email_canonical, expires_at)| {
            (expires_at > Utc::now()).then(|| TakenToken {
                user_id,
                email_canonical: new_email_canonical.or(email_canonical),
                new_email,
            })
        },
    ))
}

/// Whose live token for `purpose` this is, without using it up: for checks that must come before
/// the token is spent (a new password that breaks the rules must leave the token working). `None`
/// for an unknown, used, superseded or expired token.
///
/// # Errors
/// Database errors.
pub async fn peek(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    purpose: Purpose,
) -> QueryResult<Option<Uuid>> {
    account_tokens::table
        .find(hash)
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .filter(account_tokens::expires_at.gt(diesel::dsl::now))
        .select(account_tokens::user_id)
        .first(conn)
        .await
        .optional()
}

/// Ends the user's token for `purpose`, if any (a password changed some other way makes a pending
/// reset moot).
///
/// # Errors
/// Database errors.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    purpose: Purpose,
) -> QueryResult<()> {
    diesel::delete(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose.as_str())),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes tokens that expired; run with the periodic clean-up.
///
/// # Errors
/// Database errors.
pub async fn delete_expired(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::delete(account_tokens::table.filter(account_tokens::expires_at.le(diesel::dsl::now)))
        .execute(conn)
        .await
}
