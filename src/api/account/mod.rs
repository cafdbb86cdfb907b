//! The signed-in user's own account (`/account…`) and recovery by mail (`/password/…`,
//! `/email/…`): [`PasswordApi`] for the password and the account's deletion, [`EmailApi`] for the
//! profile, the email and its verification.

mod email;
mod pages;
mod password;

use poem::Request;

pub(super) use self::email::expiry as email_token_expiry;
pub use self::{email::EmailApi, password::PasswordApi};
use super::{AppState, CurrentUser, client_ip};
use crate::{
    auth::{Signin, SigninError},
    db::users::UserRow,
    error::ApiError,
    metrics,
};

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
