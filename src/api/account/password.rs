//! `POST /account/password`, `POST /password/forgot`, `POST /password/reset`,
//! `POST /account/delete`.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query};
use serde::Deserialize;

use super::{
    RESET_PATH, check_current_password, mailed_token,
    pages::{self, PageResponse},
};
use crate::{
    api::{
        ApiTags, CurrentUser, Db, Errors, JsonBody, SharedState, client_ip, errors::error_statuses,
        session_ended, text::Text,
    },
    auth::{PresentedAccountToken, account_mail_budgets, hash_secret_token},
    db::{
        passwords::{self, ResetRequested},
        users::{self, Deletion},
    },
    domain::{
        CurrentPassword, Invalid, MAX_CANONICAL_EMAIL_BYTES, NewPassword, Password, SigninEmail,
        canonical_email,
    },
    error::ApiError,
};

/// The current password, and the new one.
#[derive(Debug, Deserialize, Object)]
pub struct ChangePasswordRequest {
    /// The password the account has now.
    pub current_password: Text<CurrentPassword>,
    /// 8 to 72 characters as sent, and at most 72 bytes in UTF-8 once normalised to NFKC.
    pub new_password: Text<NewPassword>,
}

/// The current password, to confirm the deletion.
#[derive(Debug, Deserialize, Object)]
pub struct DeleteAccountRequest {
    /// The password the account has now.
    pub current_password: Text<CurrentPassword>,
}

/// The email of the account whose password is forgotten.
#[derive(Debug, Deserialize, Object)]
pub struct ForgotPasswordRequest {
    /// The account's email, in any spelling with the same canonical form.
    pub email: Text<SigninEmail>,
}

/// A mailed password-reset token, and the new password.
#[derive(Debug, Deserialize, Object)]
pub struct ResetPasswordRequest {
    /// The `token` parameter of the link mailed by `POST /password/forgot`.
    pub token: Text<PresentedAccountToken>,
    /// 8 to 72 characters as sent, and at most 72 bytes in UTF-8 once normalised to NFKC.
    pub new_password: Text<NewPassword>,
}

#[derive(ApiResponse)]
enum ChangePasswordResponse {
    /// The password is changed
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum DeleteAccountResponse {
    /// The account and everything of it are deleted
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum ForgotPasswordResponse {
    /// If an account has this email, a reset link is on its way
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum ResetPasswordResponse {
    /// The password is changed; sign in with it
    #[oai(status = 204)]
    Done,
}

error_statuses! {
    ChangePasswordErrors: 400, 401, 403, 408, 413, 415, 422, 429, 500, 503;
    DeleteAccountErrors: 400, 401, 403, 408, 409, 413, 415, 422, 429, 500, 503;
    ForgotPasswordErrors: 400, 408, 413, 415, 422, 429, 500, 503;
    ResetPasswordErrors: 400, 408, 413, 415, 422, 429, 500, 503;
}

/// Passwords, and deleting the account.
pub struct PasswordApi;

#[OpenApi(tag = "ApiTags::Account")]
impl PasswordApi {
    /// Change the signed-in user's password
    ///
    /// The current password is checked as at sign-in, and a wrong one counts as a failed sign-in
    /// of the account (429 with `Retry-After` once the account is at its limit). The new password
    /// follows the rules of sign-up. Every other session of the user ends at once; the session of
    /// the access token used stays, so the caller stays signed in. A pending password-reset token
    /// stops working, and the account's email is told of the change.
    #[oai(
        path = "/account/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        user: CurrentUser,
        mut db: Db,
        body: JsonBody<ChangePasswordRequest>,
    ) -> Result<ChangePasswordResponse, Errors<ChangePasswordErrors>> {
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = body.0;
        // The lengths first, both named at once: a malformed request counts as no attempt.
        let (current, new) = both(current_password.check(), new_password.check())?;
        let account = check_current_password(&state, req, &user, current).await?;
        let password = NewPassword::parse(new, &account.email, account.name.as_deref())
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        let client = client_ip(req, &state.trusted_proxies);
        // No connection is held while bcrypt runs: `db` has none yet (a request with a body leaves
        // authentication's connection to the pool).
        let hash = state
            .passwords
            .hash(password, client)
            .await
            .map_err(ApiError::from)?;
        let changed = db
            .run(async |c| {
                passwords::change_password(c, user.id, user.session, &hash, &account.email).await
            })
            .await?;
        if !changed {
            return Err(session_ended().into());
        }
        state.mailer.wake();
        Ok(ChangePasswordResponse::Done)
    }

    /// Mail a password-reset link
    ///
    /// If an account has this email (in canonical form), mails it a link with a one-time token for
    /// `POST /password/reset`, valid for `PASSWORD_RESET_TTL_SECS` (30 minutes by default); a newer
    /// link makes the older stop working. The answer is the same 202, with the same body and in
    /// the same time, whether or not an account has the email. Counted per client address and per
    /// email asked for, known or not (`ACCOUNT_MAIL_MAX_PER_IP`, `ACCOUNT_MAIL_MAX_PER_RECIPIENT`
    /// per `ACCOUNT_MAIL_WINDOW_SECS`); beyond them 429 with `Retry-After`.
    #[oai(
        path = "/password/forgot",
        method = "post",
        operation_id = "forgotPassword"
    )]
    async fn forgot_password(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        mut db: Db,
        body: JsonBody<ForgotPasswordRequest>,
    ) -> Result<ForgotPasswordResponse, Errors<ForgotPasswordErrors>> {
        let email = body
            .0
            .email
            .check()
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        // An email no account can have (a NUL, which PostgreSQL cannot store, or a canonical form
        // too long to index) is simply unknown: only the address's count applies to it.
        let recipient = Some(canonical_email(&email)).filter(|canonical| {
            !canonical.contains('\0') && canonical.len() <= MAX_CANONICAL_EMAIL_BYTES
        });
        let mut budgets = account_mail_budgets(
            state.accounts,
            client_ip(req, &state.trusted_proxies),
            recipient.as_deref().unwrap_or_default(),
        );
        if recipient.is_none() {
            budgets.truncate(1);
        }
        // Made whether or not an account has the email, so both paths do the same work before the
        // database is asked.
        let reset = mailed_token(&state, RESET_PATH, state.accounts.password_reset_ttl)?;
        let window = state.accounts.mail_window;
        let reset_ttl_minutes = state.accounts.password_reset_ttl.as_secs().div_ceil(60);
        // Known and unknown emails take the same path in the same time, as far as anyone can
        // measure: no bcrypt on either (nothing here checks a password), the mail is sent later by
        // the worker, not in the request, and both commit one transaction that writes (the throttle
        // rows) after one indexed look-up. A known email adds two small indexed writes to that
        // transaction (the token and the outbox row): a fraction of a millisecond on the
        // database's side, below the jitter of any network, and the per-email budget limits how
        // many samples anyone can take to average it out.
        let outcome = db
            .run(async |c| {
                passwords::request_reset(
                    c,
                    recipient.as_deref(),
                    &budgets,
                    window,
                    &reset,
                    reset_ttl_minutes,
                )
                .await
            })
            .await?;
        match outcome {
            ResetRequested::Sent => {
                state.mailer.wake();
                Ok(ForgotPasswordResponse::Accepted)
            }
            ResetRequested::Unknown => Ok(ForgotPasswordResponse::Accepted),
            ResetRequested::Refused(retry_after) => Err(ApiError::TooManyRequests(
                retry_after,
                "too many account mails asked for from this address or for this email",
            )
            .into()),
        }
    }

    /// The page a password-reset link opens
    ///
    /// An HTML page for a person who follows the link mailed by `POST /password/forgot`, when
    /// `PUBLIC_BASE_URL` is this server: its script takes the token from the address and removes
    /// it from the address bar, asks for the new password twice, sends it with
    /// `POST /password/reset`, and says in words what happened. The page loads nothing, and its
    /// `Content-Security-Policy` lets only its own script and style run. It is the same page for
    /// every request: the server does not read the token.
    #[oai(
        path = "/password/reset",
        method = "get",
        operation_id = "passwordResetPage"
    )]
    async fn password_reset_page(
        &self,
        /// The token of the mailed link, read by the page's script; the server ignores it
        #[oai(name = "token")]
        _token: Query<Option<String>>,
    ) -> PageResponse {
        pages::RESET_PASSWORD.response()
    }

    /// Set a new password with a mailed token
    ///
    /// Takes the token from the link mailed by `POST /password/forgot` and a new password, which
    /// follows the rules of sign-up. The token works once; a used, expired or superseded token is
    /// 400 with the problem type `/problems/invalid-token`. Every session of the user ends, and
    /// the account's email is told of the change; it also counts as verified, since the link
    /// reached it.
    #[oai(
        path = "/password/reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        mut db: Db,
        body: JsonBody<ResetPasswordRequest>,
    ) -> Result<ResetPasswordResponse, Errors<ResetPasswordErrors>> {
        let ResetPasswordRequest {
            token,
            new_password,
        } = body.0;
        let (token, new) = both(token.check(), new_password.check())?;
        let token_hash = hash_secret_token(&token);
        // Whose token it is, without using it up: a new password that breaks the rules is 422 and
        // leaves the token working. On a connection of its own, given back before bcrypt runs.
        let account = {
            let mut conn = state.pool.get().await.map_err(ApiError::from)?;
            state
                .pool
                .run(&mut conn, async |c| {
                    passwords::reset_token_owner(c, &token_hash).await
                })
                .await
                .map_err(ApiError::from)?
                .ok_or(ApiError::InvalidAccountToken)?
        };
        let password: Password = NewPassword::parse(new, &account.email, account.name.as_deref())
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        let hash = state
            .passwords
            .hash(password, client_ip(req, &state.trusted_proxies))
            .await
            .map_err(ApiError::from)?;
        // Taken now, in the transaction that uses it: of two resets racing with one token, one
        // wins and the other is 400.
        let reset = db
            .run(async |c| passwords::reset_password(c, &token_hash, &hash, &account.email).await)
            .await?;
        if !reset {
            return Err(ApiError::InvalidAccountToken.into());
        }
        state.mailer.wake();
        Ok(ResetPasswordResponse::Done)
    }

    /// Delete the signed-in user's account
    ///
    /// Checks the current password as `POST /account/password` does, then deletes the user, every
    /// session of theirs and every news item they wrote, at once and for good: their tokens stop
    /// working. A POST rather than a DELETE, since many clients and proxies drop a DELETE's body.
    /// The last admin cannot delete their account (409): promote another user first.
    #[oai(
        path = "/account/delete",
        method = "post",
        operation_id = "deleteAccount"
    )]
    async fn delete_account(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        user: CurrentUser,
        mut db: Db,
        body: JsonBody<DeleteAccountRequest>,
    ) -> Result<DeleteAccountResponse, Errors<DeleteAccountErrors>> {
        let current = body
            .0
            .current_password
            .check()
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        check_current_password(&state, req, &user, current).await?;
        match db
            .run(async |c| users::delete_user(c, user.id).await)
            .await?
        {
            Deletion::Deleted { news } => {
                tracing::info!(user_id = %user.id, news, "account deleted by its owner");
                Ok(DeleteAccountResponse::Done)
            }
            Deletion::LastAdmin => Err(ApiError::Conflict(
                "you are the only admin; promote another user before deleting your account",
            )
            .into()),
            Deletion::Missing => Err(session_ended().into()),
        }
    }
}

/// Two independently checked fields: both values, or one 422 naming every field that failed.
fn both(
    a: Result<String, Invalid>,
    b: Result<String, Invalid>,
) -> Result<(String, String), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(ApiError::invalid(
            [a.err(), b.err()].into_iter().flatten().collect(),
        )),
    }
}
