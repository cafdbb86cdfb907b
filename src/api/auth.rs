//! Accounts and sessions: `POST /signup`, `POST /signin`, `POST /token/refresh`, `POST /signout`,
//! `POST /signout/all`, `GET /whoami`.

use chrono::{DateTime, Utc};
use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ApiTags, AppState, CurrentUser, Db, Errors, Json, JsonBody, NO_STORE, SharedState, account,
    body::present, client_ip, errors::error_statuses, session_ended, text::Text,
};
use crate::{
    auth::{
        Credentials, PresentedRefreshToken, SecretToken, Signin, hash_secret_token, reserve_signup,
    },
    db::{
        emails,
        sessions::{self, Rotation},
        users::{self, UserRow},
    },
    domain::{Email, NewUser, Password, Role, SigninEmail, SigninPassword, UserName},
    error::{ApiError, AuthFailure},
    metrics,
};

/// A new account.
#[derive(Debug, Deserialize, Object)]
pub struct SignupRequest {
    /// The address to sign in with; compared in canonical form (trimmed, NFKC, case-folded).
    pub email: Text<Email>,
    /// 8 to 72 characters as sent, and at most 72 bytes in UTF-8 once normalised to NFKC.
    pub password: Text<Password>,
    /// A display name.
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Text<UserName>>,
}

/// Credentials to sign in with.
#[derive(Debug, Deserialize, Object)]
pub struct SigninRequest {
    /// The account's email, in any spelling with the same canonical form (letter case, Unicode compatibility forms, surrounding space).
    pub email: Text<SigninEmail>,
    /// The account's password.
    pub password: Text<SigninPassword>,
}

/// A refresh token, to exchange or to end its session with.
#[derive(Debug, Deserialize, Object)]
pub struct RefreshTokenRequest {
    /// A refresh token from `POST /signin` or `POST /token/refresh`
    pub refresh_token: Text<PresentedRefreshToken>,
}

impl RefreshTokenRequest {
    /// The stored form of the token, once its length is checked.
    fn hash(self) -> Result<Vec<u8>, ApiError> {
        let token = self
            .refresh_token
            .check()
            .map_err(|invalid| ApiError::invalid(vec![invalid]))?;
        Ok(hash_secret_token(&token))
    }
}

/// The kind of token issued (RFC 6750).
#[derive(Debug, Enum)]
pub enum TokenType {
    /// Send as `Authorization: Bearer <token>`.
    Bearer,
}

/// An access token and a refresh token.
#[derive(Debug, Object)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <access_token>`
    pub access_token: String,
    // Always `Bearer`. No doc comment: the spec would wrap the `$ref` in an `allOf` to hold it.
    pub token_type: TokenType,
    /// Seconds until the access token expires
    pub expires_in: i64,
    /// Exchange at `POST /token/refresh` for new tokens; it works once
    pub refresh_token: String,
    /// Seconds until the refresh token expires
    pub refresh_expires_in: i64,
}

/// What a user may do.
#[derive(Debug, Enum)]
#[oai(rename = "Role", rename_all = "lowercase")]
pub enum RoleName {
    /// May change only their own news.
    User,
    /// May change any news.
    Admin,
}

/// An account, as anyone may see it: never a password or a hash.
#[derive(Debug, Object)]
#[oai(rename = "User")]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// The email the account signs in with.
    pub email: String,
    /// The display name, if one was given.
    #[oai(nullable)]
    pub name: Option<String>,
    // No doc comment: `Role` describes itself, and the spec would wrap the `$ref` in an `allOf`.
    pub role: RoleName,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Whether the owner has proved, by a link mailed to it, that they read mail at `email`.
    pub email_verified: bool,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            name: row.name,
            role: row.role.into(),
            created_at: row.created_at,
            email_verified: row.email_verified_at.is_some(),
        }
    }
}

// Their `Cache-Control` is set again, with the same value, on every response of these paths,
// errors included (`super::headers`); here it is declared in the spec.
#[derive(ApiResponse)]
enum SignupResponse {
    /// The new user
    #[oai(status = 201)]
    Created(
        Json<User>,
        /// `no-store`: the response carries a token or account data. Every response of this
        /// operation, errors included, says so.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
enum TokensResponse {
    /// An access token and a refresh token
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `no-store`: the response carries a token or account data. Every response of this
        /// operation, errors included, says so.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
enum SignoutResponse {
    /// Signed out
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum SignoutAllResponse {
    /// Every session ended
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum WhoamiResponse {
    /// The signed-in user
    #[oai(status = 200)]
    Ok(
        Json<User>,
        /// `no-store`: the response carries a token or account data. Every response of this
        /// operation, errors included, says so.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

error_statuses! {
    SignupErrors: 400, 408, 409, 413, 415, 422, 429, 500, 503;
    SigninErrors: 400, 401, 408, 413, 415, 422, 429, 500, 503;
    RefreshErrors: 400, 401, 408, 413, 415, 422, 500, 503;
    SignoutErrors: 400, 401, 408, 413, 415, 422, 500, 503;
    SignoutAllErrors: 400, 401, 500, 503;
    WhoamiErrors: 400, 401, 500, 503;
}

/// Accounts and access tokens.
pub struct AuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Creates a user with the role `user`. Emails are compared in one canonical form (trimmed,
    /// Unicode NFKC, case-folded), so an address taken in any spelling of it is 409. Each client
    /// address may attempt a limited number of sign-ups per window (`SIGNUP_MAX_PER_IP` per
    /// `SIGNUP_WINDOW_SECS`); beyond that, 429 with `Retry-After`, before any password is hashed.
    ///
    /// The password is hashed in a bounded queue: when this client address already has its share
    /// of the queue in use the answer is 429, when the whole queue is full 503, both at once and
    /// with `Retry-After`.
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        mut db: Db,
        body: JsonBody<SignupRequest>,
    ) -> Result<SignupResponse, Errors<SignupErrors>> {
        let SignupRequest {
            email,
            password,
            name,
        } = body.0;
        let NewUser {
            email,
            password,
            name,
        } = NewUser::parse(
            &email.into_inner(),
            password.into_inner(),
            name.map(Text::into_inner),
        )
        .map_err(ApiError::invalid)?;
        let client = client_ip(req, &state.trusted_proxies);
        // Counted before any hashing, on a connection of its own (none is held while hashing).
        reserve_signup(db.pool(), state.signup, client)
            .await
            .map_err(ApiError::from)?;
        let hash = state
            .passwords
            .hash(password, client)
            .await
            .map_err(ApiError::from)?;
        // Its verification link is mailed from the same transaction (`db::emails::sign_up`).
        let verify =
            account::mailed_token(&state, account::VERIFY_PATH, state.accounts.email_token_ttl)?;
        let user = db
            .run(async |c| emails::sign_up(c, &email, name.as_ref(), &hash, &verify).await)
            .await?
            .ok_or(ApiError::Conflict(
                "an account with this email already exists",
            ))?;
        state.mailer.wake();
        Ok(SignupResponse::Created(
            Json(user.into()),
            NO_STORE.to_string(),
        ))
    }

    /// Exchange email and password for an access token
    ///
    /// An unknown email and a wrong password get the same 401 response. Returns a short-lived
    /// access token and a refresh token that starts a session (see `POST /token/refresh`).
    /// Failed sign-ins are counted per account and client address, per account, and per client
    /// address (an account is its email in canonical form: any spelling that reaches it shares
    /// its counts). Each attempt reserves one failure of every count before the password is
    /// checked, and a success gives it back; an attempt that would pass a limit gets 429 with
    /// `Retry-After` until that window ends, without any password being checked.
    ///
    /// The password is checked in a bounded queue: when this client address already has its share
    /// of the queue in use the answer is 429, when the whole queue is full 503, both at once and
    /// with `Retry-After`.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        db: Db,
        body: JsonBody<SigninRequest>,
    ) -> Result<TokensResponse, Errors<SigninErrors>> {
        let SigninRequest { email, password } = body.0;
        let credentials = Credentials::parse(email.into_inner(), password.into_inner())
            .map_err(ApiError::invalid)?;
        let signin = Signin {
            pool: db.pool(),
            passwords: &state.passwords,
            limits: state.throttle,
            sessions: state.sessions,
        };
        let session = signin
            .sign_in(credentials, client_ip(req, &state.trusted_proxies))
            .await
            .map_err(|err| {
                metrics::signin_refused(&err);
                ApiError::from(err)
            })?;
        Ok(TokensResponse::Ok(
            Json(token_response(
                &state,
                session.user_id,
                session.session_id,
                session.refresh_token,
                session.refresh_expires_at,
            )?),
            NO_STORE.to_string(),
        ))
    }

    /// Exchange a refresh token for new tokens
    ///
    /// Rotates the refresh token: the response carries a new access token and a new refresh
    /// token, and the one presented stops working. A session has one working refresh token at a
    /// time.
    ///
    /// A refresh token presented again within `REFRESH_REUSE_INTERVAL_SECS` (10 s by default) of
    /// its rotation is taken as a retry whose answer was lost: it gets a new pair in the same
    /// session, and the refresh token issued before it stops working (RFC 9700 §4.14.2). Presented
    /// again later, it is taken as stolen: its whole session (every token descended from that
    /// sign-in) is revoked and the answer is 401.
    #[oai(
        path = "/token/refresh",
        method = "post",
        operation_id = "refreshToken"
    )]
    async fn refresh(
        &self,
        state: Data<&SharedState>,
        mut db: Db,
        body: JsonBody<RefreshTokenRequest>,
    ) -> Result<TokensResponse, Errors<RefreshErrors>> {
        let old_hash = body.0.hash()?;
        let refresh = SecretToken::generate().map_err(ApiError::internal)?;
        let wanted_expiry = Utc::now() + state.sessions.refresh_token_ttl;
        let reuse_interval = state.sessions.reuse_interval;
        match db
            .run(async |c| {
                sessions::rotate(c, &old_hash, &refresh.hash, wanted_expiry, reuse_interval).await
            })
            .await?
        {
            Rotation::Rotated {
                user_id,
                family_id,
                expires_at,
                retry,
            } => {
                if retry {
                    tracing::info!(
                        "refresh token presented again within the reuse interval; answered as a retry"
                    );
                }
                Ok(TokensResponse::Ok(
                    Json(token_response(
                        &state,
                        user_id,
                        family_id,
                        refresh.token,
                        expires_at,
                    )?),
                    NO_STORE.to_string(),
                ))
            }
            Rotation::Reused => {
                tracing::warn!("refresh token reused; its session is revoked");
                Err(ApiError::Unauthorized(AuthFailure::InvalidToken(
                    "the refresh token was already used; its session has been revoked",
                ))
                .into())
            }
            Rotation::Invalid => Err(ApiError::Unauthorized(AuthFailure::InvalidToken(
                "the refresh token is not valid, has expired, or its session has ended",
            ))
            .into()),
        }
    }

    /// End a session
    ///
    /// Revokes the session of the refresh token given (if it is the caller's) and the session of
    /// the access token used, at once: neither token works afterwards.
    #[oai(path = "/signout", method = "post", operation_id = "signout")]
    async fn signout(
        &self,
        user: CurrentUser,
        mut db: Db,
        body: JsonBody<RefreshTokenRequest>,
    ) -> Result<SignoutResponse, Errors<SignoutErrors>> {
        let hash = body.0.hash()?;
        db.run(async |c| sessions::end_sessions(c, user.id, user.session, &hash).await)
            .await?;
        Ok(SignoutResponse::Done)
    }

    /// End every session of the signed-in user
    #[oai(path = "/signout/all", method = "post", operation_id = "signoutAll")]
    async fn signout_all(
        &self,
        user: CurrentUser,
        mut db: Db,
    ) -> Result<SignoutAllResponse, Errors<SignoutAllErrors>> {
        db.run(async |c| sessions::end_all_sessions(c, user.id).await)
            .await?;
        Ok(SignoutAllResponse::Done)
    }

    /// The user the access token belongs to
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(
        &self,
        user: CurrentUser,
        mut db: Db,
    ) -> Result<WhoamiResponse, Errors<WhoamiErrors>> {
        // The session check just found the user; only a deletion in between makes this `None`.
        let row = db
            .run(async |c| users::find_user(c, user.id).await)
            .await?
            .ok_or_else(session_ended)?;
        Ok(WhoamiResponse::Ok(Json(row.into()), NO_STORE.to_string()))
    }
}

/// The body of a successful sign-in or refresh.
fn token_response(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    refresh_token: String,
    refresh_expires_at: DateTime<Utc>,
) -> Result<TokenResponse, ApiError> {
    let access_token = state
        .jwt
        .issue(user_id, session_id)
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: TokenType::Bearer,
        expires_in: i64::try_from(state.jwt.ttl().as_secs()).unwrap_or(i64::MAX),
        refresh_token,
        refresh_expires_in: (refresh_expires_at - Utc::now()).num_seconds().max(0),
    })
}
