//! Accounts and sessions: `POST /signup`, `POST /signin`, `POST /token/refresh`, `POST /signout`,
//! `POST /signout/all`, `GET /whoami`.

use chrono::{DateTime, Utc};
use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, types::Email};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ApiTags, AppState, BearerAuth, Errors, Json, JsonBody, SharedState,
    body::{email, present},
    client_ip,
    errors::error_statuses,
};
use crate::{
    auth::{NewRefreshToken, hash_refresh_token},
    db::{
        DbConn,
        sessions::{self, Rotation},
        throttle,
        users::{self, UserRow},
    },
    domain::{self, Invalid, NewUser, Role},
    error::{ApiError, AuthFailure},
};

/// A new account.
#[derive(Debug, Deserialize, Object)]
pub struct SignupRequest {
    /// The address to sign in with; compared case-insensitively.
    #[serde(deserialize_with = "email")]
    #[oai(validator(max_length = 254))]
    pub email: Email,
    /// 8 to 72 characters, and at most 72 bytes in UTF-8.
    #[oai(validator(min_length = 8, max_length = 72))]
    pub password: String,
    /// A display name.
    #[serde(default, deserialize_with = "present")]
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<String>,
}

/// Credentials to sign in with.
#[derive(Debug, Deserialize, Object)]
pub struct SigninRequest {
    /// The account's email, in any letter case.
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// The account's password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// A refresh token, to exchange or to end its session with.
#[derive(Debug, Deserialize, Object)]
pub struct RefreshTokenRequest {
    /// A refresh token from `POST /signin` or `POST /token/refresh`
    #[oai(validator(min_length = 1, max_length = 512))]
    pub refresh_token: String,
}

impl RefreshTokenRequest {
    /// The stored form of the token, once its length is checked.
    fn hash(&self) -> Result<Vec<u8>, ApiError> {
        if self.refresh_token.is_empty() || self.refresh_token.len() > 512 {
            return Err(ApiError::invalid(vec![Invalid::new(
                "refresh_token",
                "must be 1 to 512 characters",
            )]));
        }
        Ok(hash_refresh_token(&self.refresh_token))
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
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            name: row.name,
            role: match Role::from_stored(&row.role) {
                Role::User => RoleName::User,
                Role::Admin => RoleName::Admin,
            },
            created_at: row.created_at,
        }
    }
}

#[derive(ApiResponse)]
enum SignupResponse {
    /// The new user
    #[oai(status = 201)]
    Created(Json<User>),
}

#[derive(ApiResponse)]
enum TokensResponse {
    /// An access token and a refresh token
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
}

#[derive(ApiResponse)]
enum SignoutResponse {
    /// Signed out
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum WhoamiResponse {
    /// The signed-in user
    #[oai(status = 200)]
    Ok(Json<User>),
}

error_statuses! {
    SignupErrors: 400, 409, 413, 415, 422, 500, 503;
    SigninErrors: 400, 401, 413, 415, 422, 429, 500, 503;
    RefreshErrors: 400, 401, 413, 415, 422, 500, 503;
    SignoutErrors: 400, 401, 413, 415, 422, 500, 503;
    SignoutAllErrors: 401, 500, 503;
    WhoamiErrors: 401, 500, 503;
}

/// Accounts and access tokens.
pub struct AuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Creates a user with the role `user`. Emails are compared case-insensitively.
    #[oai(path = "/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        state: Data<&SharedState>,
        body: JsonBody<SignupRequest>,
    ) -> Result<SignupResponse, Errors<SignupErrors>> {
        let SignupRequest {
            email,
            password,
            name,
        } = body.0;
        let new_user = NewUser::parse(&email.0, password, name).map_err(ApiError::invalid)?;
        let hash = state
            .passwords
            .hash(new_user.password)
            .await
            .map_err(ApiError::internal)?;
        let row = UserRow::new_account(&new_user.email, new_user.name, Role::User);
        let mut conn = state.pool.get().await?;
        let user = users::insert_user(&mut conn, &row, &hash).await?;
        Ok(SignupResponse::Created(Json(user.into())))
    }

    /// Exchange email and password for an access token
    ///
    /// An unknown email and a wrong password get the same 401 response. Returns a short-lived
    /// access token and a refresh token that starts a session (see `POST /token/refresh`).
    /// Repeated failures for one email, or from one client address, get 429 with `Retry-After`
    /// until the window ends.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        body: JsonBody<SigninRequest>,
    ) -> Result<TokensResponse, Errors<SigninErrors>> {
        let SigninRequest { email, password } = body.0;
        check_signin_lengths(&email, &password)?;
        // No account can have an email PostgreSQL cannot store (a NUL); such an email is simply
        // unknown, and its throttle key carries a stand-in for the NUL.
        let storable = !email.contains('\0');
        let email_key = format!(
            "email:{}",
            email.trim().to_lowercase().replace('\0', "\u{FFFD}")
        );
        let mut keys = vec![email_key.clone()];
        keys.extend(client_ip(req, &state.trusted_proxies).map(|ip| format!("ip:{ip}")));

        // Throttle before any bcrypt work, and hold no connection while hashing.
        let found = {
            let mut conn = state.pool.get().await?;
            check_throttle(&state, &mut conn, &keys).await?;
            if storable {
                users::find_with_password_hash(&mut conn, email.trim()).await?
            } else {
                None
            }
        };
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
        let verified = state
            .passwords
            .verify(password, hash)
            .await
            .map_err(ApiError::internal)?;

        let mut conn = state.pool.get().await?;
        let Some(user) = user.filter(|_| verified) else {
            throttle::record_failure(&mut conn, &keys, state.throttle.window).await?;
            return Err(ApiError::Unauthorized(AuthFailure::BadCredentials).into());
        };
        // Success forgets this email's failures; the address's count stands, so one good account
        // cannot launder guesses at others.
        throttle::clear(&mut conn, &email_key).await?;
        let refresh = NewRefreshToken::generate().map_err(ApiError::internal)?;
        let now = Utc::now();
        let session_expires_at = now + state.sessions.max_lifetime;
        let refresh_expires_at = (now + state.sessions.refresh_token_ttl).min(session_expires_at);
        let session_id = sessions::start_session(
            &mut conn,
            user.id,
            session_expires_at,
            &refresh.hash,
            refresh_expires_at,
        )
        .await?;
        Ok(TokensResponse::Ok(Json(token_response(
            &state,
            user.id,
            session_id,
            refresh.token,
            refresh_expires_at,
        )?)))
    }

    /// Exchange a refresh token for new tokens
    ///
    /// Rotates the refresh token: the response carries a new access token and a new refresh
    /// token, and the one presented stops working. Presenting a refresh token that was already
    /// rotated revokes its whole session (every token descended from that sign-in) and gets 401.
    #[oai(
        path = "/token/refresh",
        method = "post",
        operation_id = "refreshToken"
    )]
    async fn refresh(
        &self,
        state: Data<&SharedState>,
        body: JsonBody<RefreshTokenRequest>,
    ) -> Result<TokensResponse, Errors<RefreshErrors>> {
        let old_hash = body.0.hash()?;
        let refresh = NewRefreshToken::generate().map_err(ApiError::internal)?;
        let wanted_expiry = Utc::now() + state.sessions.refresh_token_ttl;
        let mut conn = state.pool.get().await?;
        match sessions::rotate(&mut conn, &old_hash, &refresh.hash, wanted_expiry).await? {
            Rotation::Rotated {
                user_id,
                family_id,
                expires_at,
            } => Ok(TokensResponse::Ok(Json(token_response(
                &state,
                user_id,
                family_id,
                refresh.token,
                expires_at,
            )?))),
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
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        body: JsonBody<RefreshTokenRequest>,
    ) -> Result<SignoutResponse, Errors<SignoutErrors>> {
        let hash = body.0.hash()?;
        let mut conn = auth.connection(&state.pool).await?;
        sessions::end_sessions(&mut conn, auth.user.id, auth.session_id, &hash).await?;
        Ok(SignoutResponse::Done)
    }

    /// End every session of the signed-in user
    #[oai(path = "/signout/all", method = "post", operation_id = "signoutAll")]
    async fn signout_all(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
    ) -> Result<SignoutResponse, Errors<SignoutAllErrors>> {
        let mut conn = auth.connection(&state.pool).await?;
        sessions::end_all_sessions(&mut conn, auth.user.id).await?;
        Ok(SignoutResponse::Done)
    }

    /// The user the access token belongs to
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(&self, auth: BearerAuth) -> Result<WhoamiResponse, Errors<WhoamiErrors>> {
        Ok(WhoamiResponse::Ok(Json(auth.user.into())))
    }
}

/// The spec's limits on sign-in fields (no stored email or password can exceed them), checked
/// before anything is looked up or counted.
fn check_signin_lengths(email: &str, password: &str) -> Result<(), ApiError> {
    let too_long = [
        ("email", email, domain::Email::MAX_LEN),
        ("password", password, MAX_SIGNIN_PASSWORD_CHARS),
    ]
    .into_iter()
    .filter(|(_, value, max)| value.chars().count() > *max)
    .map(|(field, _, max)| Invalid::new(field, format!("must be at most {max} characters")))
    .collect::<Vec<_>>();
    if too_long.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(too_long))
    }
}

/// The longest password sign-in reads (`maxLength` of `SigninRequest.password`).
const MAX_SIGNIN_PASSWORD_CHARS: usize = 1024;

/// 429 when the email or the client address has failed too often in the current window.
async fn check_throttle(
    state: &AppState,
    conn: &mut DbConn,
    keys: &[String],
) -> Result<(), ApiError> {
    let limits = state.throttle;
    let counts = throttle::current_failures(conn, keys, limits.window).await?;
    let now = Utc::now();
    let blocked_until = counts
        .iter()
        .filter(|count| {
            let limit = if count.key.starts_with("ip:") {
                limits.max_failures_per_ip
            } else {
                limits.max_failures_per_email
            };
            count.failures >= limit
        })
        .map(|count| count.window_started_at + limits.window)
        .max();
    match blocked_until {
        Some(until) => {
            let secs = (until - now).num_seconds().max(1);
            Err(ApiError::TooManyRequests(u64::try_from(secs).unwrap_or(1)))
        }
        None => Ok(()),
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
