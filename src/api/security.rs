//! The spec's `BearerAuth` scheme and the two extractors that carry it:
//! - [`CurrentUser`]: the signed-in user, whose session was checked live before the handler runs;
//! - [`ClaimedSession`]: only a verified token's claims, for the handlers (`GET /news/{id}`,
//!   `GET /news`) that check the session in the same statement as their read (decision log D5 and
//!   D10 in BENCHMARKS.md).
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
use uuid::Uuid;

use super::{SharedState, conn::ConnectionSlot};
use crate::{
    auth::TokenError,
    db::sessions::{SessionRead, SessionRef, find_session_user},
    domain::Role,
    error::{ApiError, AuthFailure},
    telemetry,
};

/// The scheme's name in the spec.
const SCHEME: &str = "BearerAuth";

/// The signed-in user: the token is valid, its session is live and its user exists, as of this
/// request (so a sign-out, a deleted user or a demotion take effect at once).
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    /// The user's id.
    pub id: Uuid,
    /// The role the database holds now.
    pub role: Role,
    /// Whether the user's current email is verified, as the database holds now.
    pub email_verified: bool,
    /// The session (refresh-token family) of the access token.
    pub session: Uuid,
}

/// A bearer token whose signature and claims check out, before its session is looked at. Whoever
/// takes it must check the session in the statement that reads for it: the `db` functions that
/// take a [`SessionRef`] do, and answer a [`SessionRead`], which [`ClaimedSession::verdict`] turns
/// into the row, a 404 or the same 401 [`CurrentUser`] gives.
#[derive(Debug)]
pub struct ClaimedSession(SessionRef);

impl ClaimedSession {
    /// The session, for the read that checks it.
    #[must_use]
    pub fn session(&self) -> SessionRef {
        self.0
    }

    /// What a read made in the session means for the request.
    ///
    /// # Errors
    /// `missing` when the session is live but there is no such row; 401 when the session has
    /// ended or its user is gone.
    pub fn verdict<T>(read: SessionRead<T>, missing: ApiError) -> Result<T, ApiError> {
        match read {
            SessionRead::Found(row) => Ok(row),
            SessionRead::Missing => Err(missing),
            SessionRead::Ended => Err(session_ended()),
        }
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
        // Signed, so the user is who the token says, whether or not the session is still live.
        telemetry::record_user(claims.sub);
        Ok((state, Self(session)))
    }
}

/// The refusal of a token whose session has ended or whose user is gone (also for a user deleted
/// between the session check and the handler's own statement).
pub fn session_ended() -> ApiError {
    invalid("the token's session has ended or its user no longer exists")
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

impl<'a> ApiExtractor<'a> for ClaimedSession {
    bearer_scheme!();

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self::verify(req)?.1)
    }
}

impl<'a> ApiExtractor<'a> for CurrentUser {
    bearer_scheme!();

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let (state, token) = ClaimedSession::verify(req)?;
        let session = token.session();
        // One query: the user still exists and the session is neither revoked nor expired. The
        // role comes from the same row.
        let mut conn = state.pool.get().await.map_err(ApiError::from)?;
        let user = state
            .pool
            .run(&mut conn, async |c| find_session_user(c, session).await)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(session_ended)?;
        // The handler's `Db` reuses the connection, unless a body is still to be read: a slow
        // upload must not hold a connection the pool could lend to others.
        if !has_body(req) {
            ConnectionSlot::put(req, conn);
        }
        Ok(Self {
            id: user.id,
            role: user.role,
            email_verified: user.email_verified_at.is_some(),
            session: session.family_id,
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
///
/// Two `Authorization` headers are a malformed request (400), whatever their schemes, and before
/// either is looked at: the field is a singleton (RFC 9110 §11.6.2), and believing one of them
/// means some proxy, log or other server may believe the other. So a `Basic` and a `Bearer`
/// header together are 400 too, not the 401 a lone `Basic` one gets.
fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized(AuthFailure::MissingToken));
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "more than one Authorization header; send exactly one".into(),
        ));
    }
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

/// The client's address: the socket's peer, unless the peer is a trusted proxy. Then
/// `X-Forwarded-For` is walked from its right end (the hop the peer added) leftwards, past every
/// hop that is itself a trusted proxy; the first other hop is the client:
///
/// - a hop that parses as an address (`203.0.113.7`, `2001:db8::1`, or with a port,
///   `203.0.113.7:4711` and `[2001:db8::1]:4711`, as some proxies write them) is the client's;
/// - a hop that does not parse (`unknown`, an obfuscated name, garbage) ends the walk too: it is
///   the client, whose address the trusted proxy that wrote it did not know. Everything to its
///   left was written by that client, and is not believed. The client counts as that proxy — the
///   hop to the right of the unparsable one, or the peer when it is the right-most — so every
///   client it could not name shares its limits, and no client can choose its own address.
///
/// A header from anyone but a trusted proxy changes nothing; a header of trusted proxies only
/// leaves the left-most of them.
#[must_use]
pub fn client_ip(req: &Request, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(std::net::SocketAddr::ip)?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let values: Vec<&[u8]> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(poem::http::HeaderValue::as_bytes)
        .collect();
    let hops = values
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(|&byte| byte == b','));
    let mut client = peer;
    for hop in hops {
        match parse_hop(hop) {
            Some(address) if trusted_proxies.contains(&address) => client = address,
            Some(address) => return Some(address),
            None => return Some(client),
        }
    }
    Some(client)
}

/// One hop of `X-Forwarded-For`: an address, alone or with a port.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
}
