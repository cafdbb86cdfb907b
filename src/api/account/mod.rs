//! The signed-in user's own account (`/account…`) and recovery by mail (`/password/…`,
//! `/email/…`): [`PasswordApi`] for the password and the account's deletion, [`EmailApi`] for the
//! profile, the email and its verification.

mod email;
mod pages;
mod password;

use std::time::Duration;

use chrono::Utc;
use poem::Request;

pub use self::{email::EmailApi, password::PasswordApi};
use super::{AppState, CurrentUser, client_ip};
use crate::{
    auth::{SecretToken, Signin, SigninError},
    db::{tokens::MailedToken, users::UserRow},
    error::ApiError,
    metrics,
};

/// The path of the link in every mail about the account's email.
pub(super) const VERIFY_PATH: &str = "/email/verify";

/// The path of the link in a password-reset mail.
const RESET_PATH: &str = "/password/reset";

/// A new one-time token for a mail, with its link to `path` (`PUBLIC_BASE_URL` + `path` +
/// `?token=…`); it stops working `ttl` from now.
pub(super) fn mailed_token(
    state: &AppState,
    path: &str,
    ttl: Duration,
) -> Result<MailedToken, ApiError> {
    let token = SecretToken::generate().map_err(ApiError::internal)?;
    Ok(MailedToken {
        link: state.mail.link(path, &token.token),
        hash: token.hash,
        expires_at: Utc::now() + ttl,
    })
}

/// Checks the signed-in user's current password before a change to the account, as sign-in
/// checks a password: same throttle (a wrong one counts as a failed sign-in of the account; at the
/// limit 429), same hashing queue. A wrong password is 403, not 401: the access token is fine.
pub(super) async fn check_current_password(
    state: &AppState,
    req: &Request,
    user: &CurrentUser,
    password: String,
) -> Result<UserRow, ApiError> {
    let signin = Signin {
        pool: &state.pool,
        passwords: &state.passwords,
        limits: state.throttle,
        sessions: state.sessions,
    };
    signin
        .check_password(user.id, password, client_ip(req, &state.trusted_proxies))
        .await
        .map_err(|err| {
            metrics::signin_refused(&err);
            match err {
                SigninError::BadCredentials => ApiError::Forbidden("the current password is wrong"),
                err => err.into(),
            }
        })
}
