//! `PATCH /account`, `POST /account/email`, `POST /email/verify`, `POST /email/verify/resend`.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, types::MaybeUndefined};
use serde::Deserialize;

use super::{
    VERIFY_PATH, check_current_password, mailed_token,
    pages::{self, PageResponse},
};
use crate::{
    api::{
        ApiTags, AppState, CurrentUser, Db, Errors, Json, JsonBody, NO_STORE, SharedState,
        auth::User, client_ip, errors::error_statuses, session_ended, text::Text,
    },
    auth::{PresentedAccountToken, account_mail_budgets, hash_secret_token},
    db::{
        emails::{self, ChangeRequested, Confirmed, Resent},
        users,
    },
    domain::{CurrentPassword, Email, Invalid, TextRule, UserName},
    error::ApiError,
};

/// Profile fields to change; those absent stay as they are.
#[derive(Debug, Deserialize, Object)]
pub struct AccountPatch {
    /// The new display name; `null` clears it.
    #[oai(nullable)]
    #[serde(default)]
    pub name: MaybeUndefined<Text<UserName>>,
}

/// The email to switch to, and the current password.
#[derive(Debug, Deserialize, Object)]
pub struct ChangeEmailRequest {
    /// The address to sign in with once confirmed; compared in canonical form (trimmed, NFKC, case-folded).
    pub new_email: Text<NewEmail>,
    /// The password the account has now.
    pub current_password: Text<CurrentPassword>,
}

/// A mailed email-confirmation token.
#[derive(Debug, Deserialize, Object)]
pub struct EmailTokenRequest {
    /// The `token` parameter of the link mailed at sign-up, by `POST /email/verify/resend` or by `POST /account/email`.
    pub token: Text<PresentedAccountToken>,
}

/// `new_email`: an [`Email`] under its own field name.
pub struct NewEmail;

impl TextRule for NewEmail {
    const FIELD: &'static str = "new_email";
    const MAX_CHARS: usize = Email::MAX_CHARS;
    const FORMAT: Option<&'static str> = Email::FORMAT;
}

#[derive(ApiResponse)]
enum UpdateAccountResponse {
    /// The user as changed
    #[oai(status = 200)]
    Ok(
        Json<User>,
        /// `no-store`: the response carries a token or account data. Every response of this
        /// operation, errors included, says so.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
enum ChangeEmailResponse {
    /// A confirmation link was mailed to the new address
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum VerifyEmailResponse {
    /// The email is confirmed
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum ResendResponse {
    /// A new verification link is on its way
    #[oai(status = 202)]
    Accepted,
}

error_statuses! {
    UpdateAccountErrors: 400, 401, 408, 413, 415, 422, 500, 503;
    ChangeEmailErrors: 400, 401, 403, 408, 409, 413, 415, 422, 429, 500, 503;
    VerifyEmailErrors: 400, 408, 409, 413, 415, 422, 500, 503;
    ResendErrors: 400, 401, 409, 429, 500, 503;
}

/// The profile and the email.
pub struct EmailApi;

#[OpenApi(tag = "ApiTags::Account")]
impl EmailApi {
    /// Change the signed-in user's profile
    ///
    /// Sets the fields given and leaves the others: `name` sets the display name, and `name: null`
    /// clears it. An empty object changes nothing. The email is changed with `POST /account/email`.
    #[oai(path = "/account", method = "patch", operation_id = "updateAccount")]
    async fn update_account(
        &self,
        user: CurrentUser,
        mut db: Db,
        body: JsonBody<AccountPatch>,
    ) -> Result<UpdateAccountResponse, Errors<UpdateAccountErrors>> {
        let name = match body.0.name {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(name) => Some(Some(
                UserName::parse(name.into_inner())
                    .map_err(|invalid| ApiError::invalid(vec![invalid]))?,
            )),
        };
        let row = match name {
            None => db.run(async |c| users::find_user(c, user.id).await).await?,
            Some(name) => {
                db.run(async |c| users::set_name(c, user.id, name.as_ref()).await)
                    .await?
            }
        }
        .ok_or_else(session_ended)?;
        Ok(UpdateAccountResponse::Ok(
            Json(row.into()),
            NO_STORE.to_string(),
        ))
    }

    /// Change the signed-in user's email
    ///
    /// Checks the current password as `POST /account/password` does, then mails a confirmation
    /// link to `new_email`. Nothing changes until the link's token is sent to
    /// `POST /email/verify`: then the account signs in with the new email, which counts as
    /// verified, and the old address is told. An email another account has is 409. Counted
    /// against the account-mail limits (`ACCOUNT_MAIL_MAX_PER_IP`,
    /// `ACCOUNT_MAIL_MAX_PER_RECIPIENT` per `ACCOUNT_MAIL_WINDOW_SECS`; beyond them 429).
    #[oai(path = "/account/email", method = "post", operation_id = "changeEmail")]
    async fn change_email(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        user: CurrentUser,
        mut db: Db,
        body: JsonBody<ChangeEmailRequest>,
    ) -> Result<ChangeEmailResponse, Errors<ChangeEmailErrors>> {
        let ChangeEmailRequest {
            new_email,
            current_password,
        } = body.0;
        let new_email = new_email
            .check()
            .and_then(|typed| Email::parse(&typed))
            .map_err(|invalid| {
                ApiError::invalid(vec![Invalid {
                    field: NewEmail::FIELD,
                    ..invalid
                }])
            })?;
        let current_password = current_password
            .check()
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        check_current_password(&state, req, &user, current_password).await?;
        let confirm = mailed_token(&state, VERIFY_PATH, state.accounts.email_token_ttl)?;
        let budgets = mail_budgets(&state, req, &user);
        let window = state.accounts.mail_window;
        let outcome = db
            .run(async |c| {
                emails::request_email_change(c, user.id, &new_email, &budgets, window, &confirm)
                    .await
            })
            .await?;
        match outcome {
            ChangeRequested::Sent => {
                state.mailer.wake();
                Ok(ChangeEmailResponse::Accepted)
            }
            ChangeRequested::Same => {
                Err(ApiError::Conflict("this is the account's email already").into())
            }
            ChangeRequested::Taken => {
                Err(ApiError::Conflict("an account with this email already exists").into())
            }
            ChangeRequested::Refused(secs) => Err(too_many_mails(secs).into()),
            ChangeRequested::Gone => Err(session_ended().into()),
        }
    }

    /// The page an email-confirmation link opens
    ///
    /// An HTML page for a person who follows a link mailed at sign-up, by
    /// `POST /email/verify/resend` or by `POST /account/email`, when `PUBLIC_BASE_URL` is this
    /// server: its script takes the token from the address and removes it from the address bar;
    /// a "Confirm my email" button (never the page's loading: mail scanners open links) sends it
    /// with `POST /email/verify`, and the page says in words what happened. The page loads
    /// nothing, and its `Content-Security-Policy` lets only its own script and style run. It is
    /// the same page for every request: the server does not read the token.
    #[oai(
        path = "/email/verify",
        method = "get",
        operation_id = "emailVerifyPage"
    )]
    async fn email_verify_page(
        &self,
        /// The token of the mailed link, read by the page's script; the server ignores it
        #[oai(name = "token")]
        _token: Query<Option<String>>,
    ) -> PageResponse {
        pages::VERIFY_EMAIL.response()
    }

    /// Confirm an email with a mailed token
    ///
    /// Takes the token from a link mailed at sign-up, by `POST /email/verify/resend` or by
    /// `POST /account/email`. A sign-up or resend token marks the account's email verified. An
    /// email-change token makes the new email the account's (verified), and tells the old address;
    /// 409 if another account took that email meanwhile. The token works once; a used, expired or
    /// superseded token is 400 with the problem type `/problems/invalid-token`.
    #[oai(path = "/email/verify", method = "post", operation_id = "verifyEmail")]
    async fn verify_email(
        &self,
        state: Data<&SharedState>,
        mut db: Db,
        body: JsonBody<EmailTokenRequest>,
    ) -> Result<VerifyEmailResponse, Errors<VerifyEmailErrors>> {
        let token = body
            .0
            .token
            .check()
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        let hash = hash_secret_token(&token);
        match db
            .run(async |c| emails::confirm_email(c, &hash).await)
            .await?
        {
            Confirmed::Verified => Ok(VerifyEmailResponse::Done),
            Confirmed::Changed => {
                state.mailer.wake();
                Ok(VerifyEmailResponse::Done)
            }
            Confirmed::Taken => Err(ApiError::Conflict(
                "another account has taken this email since the link was sent",
            )
            .into()),
            Confirmed::Invalid => Err(ApiError::InvalidAccountToken.into()),
        }
    }

    /// Mail the verification link again
    ///
    /// Mails a new verification link to the signed-in user's email; the link sent before stops
    /// working. 409 if the email is verified already. Counted against the account-mail limits
    /// (`ACCOUNT_MAIL_MAX_PER_IP`, `ACCOUNT_MAIL_MAX_PER_RECIPIENT` per
    /// `ACCOUNT_MAIL_WINDOW_SECS`); beyond them 429 with `Retry-After`.
    #[oai(
        path = "/email/verify/resend",
        method = "post",
        operation_id = "resendVerification"
    )]
    async fn resend_verification(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        user: CurrentUser,
        mut db: Db,
    ) -> Result<ResendResponse, Errors<ResendErrors>> {
        if user.email_verified {
            return Err(already_verified().into());
        }
        let verify = mailed_token(&state, VERIFY_PATH, state.accounts.email_token_ttl)?;
        let budgets = mail_budgets(&state, req, &user);
        let window = state.accounts.mail_window;
        let outcome = db
            .run(async |c| emails::resend_verification(c, user.id, &budgets, window, &verify).await)
            .await?;
        match outcome {
            Resent::Sent => {
                state.mailer.wake();
                Ok(ResendResponse::Accepted)
            }
            Resent::AlreadyVerified => Err(already_verified().into()),
            Resent::Refused(secs) => Err(too_many_mails(secs).into()),
            Resent::Gone => Err(session_ended().into()),
        }
    }
}

/// The account-mail budgets of a signed-in user's request.
fn mail_budgets(
    state: &AppState,
    req: &Request,
    user: &CurrentUser,
) -> Vec<crate::db::throttle::Budget> {
    account_mail_budgets(
        state.accounts,
        client_ip(req, &state.trusted_proxies),
        &format!("user:{}", user.id),
    )
}

fn too_many_mails(secs: u64) -> ApiError {
    ApiError::TooManyRequests(secs, "too many account mails were asked for")
}

fn already_verified() -> ApiError {
    ApiError::Conflict("the email is verified already")
}
