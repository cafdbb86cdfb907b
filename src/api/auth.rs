//! Accounts and access tokens: `POST /signup`, `POST /signin`, `GET /whoami`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json, types::Email};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ApiTags, BearerAuth, Errors, JsonBody, SharedState,
    body::{email, present},
    errors::error_statuses,
};
use crate::{
    db::users::{self, UserRow},
    domain::{NewUser, Role, Timestamp, UserName},
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

/// The kind of token issued (RFC 6750).
#[derive(Debug, Enum)]
pub enum TokenType {
    /// Send as `Authorization: Bearer <token>`.
    Bearer,
}

/// An access token.
#[derive(Debug, Object)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <access_token>`
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// Seconds until the access token expires
    pub expires_in: i64,
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
    /// What the user may do.
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
enum SigninResponse {
    /// An access token
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
}

#[derive(ApiResponse)]
enum WhoamiResponse {
    /// The signed-in user
    #[oai(status = 200)]
    Ok(Json<User>),
}

error_statuses! {
    SignupErrors: 400, 409, 413, 415, 422, 500, 503;
    SigninErrors: 400, 401, 413, 415, 422, 500, 503;
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
        let row = UserRow {
            id: Uuid::now_v7(),
            email: new_user.email.as_str().to_string(),
            name: new_user.name.map(UserName::into_inner),
            role: Role::User.as_str().to_string(),
            created_at: Timestamp::now().get(),
        };
        let mut conn = state.pool.get().await?;
        let user = users::insert_user(&mut conn, &row, &hash).await?;
        Ok(SignupResponse::Created(Json(user.into())))
    }

    /// Exchange email and password for an access token
    ///
    /// An unknown email and a wrong password get the same 401 response.
    #[oai(path = "/signin", method = "post", operation_id = "signin")]
    async fn signin(
        &self,
        state: Data<&SharedState>,
        body: JsonBody<SigninRequest>,
    ) -> Result<SigninResponse, Errors<SigninErrors>> {
        let SigninRequest { email, password } = body.0;
        let found = {
            let mut conn = state.pool.get().await?;
            users::find_with_password_hash(&mut conn, email.trim()).await?
        };
        let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
        let verified = state
            .passwords
            .verify(password, hash)
            .await
            .map_err(ApiError::internal)?;
        let Some(user) = user.filter(|_| verified) else {
            return Err(ApiError::Unauthorized(AuthFailure::BadCredentials).into());
        };
        let access_token = state.jwt.issue(user.id).map_err(ApiError::internal)?;
        Ok(SigninResponse::Ok(Json(TokenResponse {
            access_token,
            token_type: TokenType::Bearer,
            expires_in: i64::try_from(state.jwt.ttl().as_secs()).unwrap_or(i64::MAX),
        })))
    }

    /// The user the access token belongs to
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(&self, auth: BearerAuth) -> Result<WhoamiResponse, Errors<WhoamiErrors>> {
        Ok(WhoamiResponse::Ok(Json(auth.0.into())))
    }
}
