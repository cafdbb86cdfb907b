//! `BearerAuth`: the spec's bearer scheme, and the extractor that turns an `Authorization` header
//! into the signed-in user — or a 401 before any handler runs.
//!
//! Written by hand rather than derived: the derived scheme matches the `Bearer` prefix by case and
//! answers every failure with the same plain-text 401, where RFC 6750 wants a case-insensitive
//! scheme and an `invalid_token` challenge for a bad token.

use poem::{Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::SharedState;
use crate::{
    db::users::{UserRow, find_user},
    error::{ApiError, AuthFailure},
};

/// The scheme's name in the spec.
const SCHEME: &str = "BearerAuth";

/// The signed-in user, as loaded for this request.
#[derive(Debug)]
pub struct BearerAuth(pub UserRow);

impl<'a> ApiExtractor<'a> for BearerAuth {
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

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<SharedState>()
            .ok_or_else(|| ApiError::internal("application state missing"))?;
        let token = bearer_token(req)?;
        let claims = state.jwt.verify(token).map_err(|err| {
            invalid(if err == crate::auth::TokenError::Expired {
                "the token has expired"
            } else {
                "the token is not valid"
            })
        })?;
        let mut conn = state.pool.get().await.map_err(ApiError::from)?;
        let user = find_user(&mut conn, claims.sub)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| invalid("the token's user no longer exists"))?;
        Ok(Self(user))
    }
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
