//! `BearerAuth`: the spec's bearer scheme, and the extractor that turns an `Authorization` header
//! into the signed-in user — or a 401 before any handler runs.
//!
//! Written by hand rather than derived: the derived scheme matches the `Bearer` prefix by case and
//! answers every failure with the same plain-text 401, where RFC 6750 wants a case-insensitive
//! scheme and an `invalid_token` challenge for a bad token.

use std::net::IpAddr;

use poem::{Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::SharedState;
use crate::{
    auth::TokenError,
    db::{
        DbConn, DbPool,
        sessions::{SessionRef, find_session_user},
        users::UserRow,
    },
    error::{ApiError, AuthFailure},
};

/// The scheme's name in the spec.
const SCHEME: &str = "BearerAuth";

/// The signed-in user, as loaded for this request, and the session the token belongs to.
pub struct BearerAuth {
    /// The user, with the role the database holds now.
    pub user: UserRow,
    /// The session (refresh-token family) of the access token.
    pub session_id: uuid::Uuid,
    /// The connection the session check used, kept for the handler when the request has no body.
    conn: Option<DbConn>,
}

impl BearerAuth {
    /// A connection for the handler: the one the session check used if it was kept (one pool
    /// checkout per request), else a fresh one.
    ///
    /// # Errors
    /// No connection became free in time, or none could be opened (503).
    pub async fn connection(&mut self, pool: &DbPool) -> Result<DbConn, ApiError> {
        match self.conn.take() {
            Some(conn) => Ok(conn),
            None => Ok(pool.get().await?),
        }
    }
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("user", &self.user)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// A bearer token whose signature and claims check out, before its session is looked at: for a
/// handler that checks the session in the same statement as its read (one round trip instead of
/// two). Its only content is the session, which the `db` functions that read for it take and check
/// (`db::sessions::SessionRead`); any other handler takes [`BearerAuth`].
#[derive(Debug)]
pub struct BearerToken {
    /// The session the token names, not yet known to be live.
    pub session: SessionRef,
}

impl BearerToken {
    /// The refusal of a token whose session has ended or whose user is gone.
    #[must_use]
    pub fn ended() -> ApiError {
        invalid("the token's session has ended or its user no longer exists")
    }

    fn verify(req: &Request) -> Result<(&SharedState, Self), ApiError> {
        let state = req
            .data::<SharedState>()
            .ok_or_else(|| ApiError::internal("application state missing"))?;
        let token = bearer_token(req)?;
        let claims = state.jwt.verify(token).map_err(|err| {
            invalid(match err {
                TokenError::Expired => "the token has expired",
                TokenError::TooLong => "the token is too long",
                TokenError::Invalid => "the token is not valid",
            })
        })?;
        let session = SessionRef {
            user_id: claims.sub,
            family_id: claims.sid,
        };
        Ok((state, Self { session }))
    }
}

/// Both extractors are the spec's one `BearerAuth` scheme.
macro_rules! bearer_scheme {
    () => {
        const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

        type ParamType = ();
        type ParamRawType = ();

        fn register(registry: &mut Registry) {
            registry.create_security_scheme(
                SCHEME,
                MetaSecurityScheme {
                    ty: "http",
                    description: Some("An access token from `POST /signin`."),
                    name: None,
                    key_in: None,
                    scheme: Some("bearer"),
                    bearer_format: Some("JWT"),
                    flows: None,
                    openid_connect_url: None,
                },
            );
        }

        fn security_schemes() -> Vec<&'static str> {
            vec![SCHEME]
        }
    };
}

impl<'a> ApiExtractor<'a> for BearerToken {
    bearer_scheme!();

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self::verify(req)?.1)
    }
}

impl<'a> ApiExtractor<'a> for BearerAuth {
    bearer_scheme!();

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let (state, token) = BearerToken::verify(req)?;
        // One query: the user still exists and the session is neither revoked nor expired, so that
        // deleting a user or signing out takes effect at once. The role comes from the same row, so
        // a demotion does too.
        let mut conn = state.pool.get().await.map_err(ApiError::from)?;
        let user = find_session_user(&mut conn, token.session)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(BearerToken::ended)?;
        // The handler reuses the connection, unless a body is still to be read: a slow upload
        // must not hold a connection the pool could lend to others.
        Ok(Self {
            user,
            session_id: token.session.family_id,
            conn: (!has_body(req)).then_some(conn),
        })
    }
}

/// Whether the request announces a body (HTTP/1.1 has one only with `Content-Length` or
/// `Transfer-Encoding`; HTTP/2 sends `Content-Length` when it has one).
fn has_body(req: &Request) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0")
}

fn invalid(why: &'static str) -> ApiError {
    ApiError::Unauthorized(AuthFailure::InvalidToken(why))
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(AuthFailure::MissingToken));
    };
    let value = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not valid"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(AuthFailure::MissingToken));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid("the bearer token is empty"));
    }
    Ok(token)
}

/// The client's address: the socket's peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy. A header from anyone
/// else changes nothing.
#[must_use]
pub fn client_ip(req: &Request, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(std::net::SocketAddr::ip)?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|hop| !trusted_proxies.contains(hop))
            .unwrap_or(peer),
    )
}
