//! Access tokens: HS256 JWTs with `sub`, `sid`, `iat`, `nbf`, `exp`, `iss`, `aud` and `typ`.
//!
//! jsonwebtoken's `Validation::new` alone allows 60 s of leeway, leaves `nbf` unchecked and checks
//! `iss` only when one is configured; here every check is set explicitly.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtConfig;

/// The one algorithm tokens are signed and verified with.
const ALGORITHM: Algorithm = Algorithm::HS256;
/// The `typ` claim of an access token, so that no other kind of token can pass for one.
const ACCESS_TYPE: &str = "access";
/// Clock skew tolerated between replicas, in seconds.
const LEEWAY_SECS: u64 = 5;
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: Uuid,
    /// The session (refresh-token family) the token belongs to; revoking it ends the token too.
    pub sid: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The kind of token: always `access`.
    pub typ: String,
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is too long")]
    TooLong,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Anything else: malformed, forged, wrong algorithm, issuer, audience or kind.
    #[error("the token is not valid")]
    Invalid,
}

/// Signs and verifies access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys and rules from the configuration.
    #[must_use]
    pub fn new(config: &JwtConfig) -> Self {
        let secret = config.secret.expose_secret().as_bytes();
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_token_ttl,
        }
    }

    /// How long an access token lives.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues an access token for `user_id` in session `session_id`, valid from now for the
    /// configured lifetime.
    ///
    /// # Errors
    /// Signing failed (it cannot with an HMAC key, but the library says it may).
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            iat: now,
            nbf: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            typ: ACCESS_TYPE.to_string(),
        };
        jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.encoding)
    }

    /// Verifies an access token: size, algorithm, signature, `exp`, `nbf`, `iss`, `aud`, `typ`.
    ///
    /// # Errors
    /// The first check the token fails.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != ACCESS_TYPE {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&JwtConfig {
            secret: "0123456789abcdef0123456789abcdef".to_string().into(),
            issuer: "newsapi".into(),
            audience: "newsapi".into(),
            access_token_ttl: Duration::from_secs(900),
        })
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = serde_json::json!({
            "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "iat": now, "nbf": now, "exp": now + 60,
            "iss": "newsapi", "aud": "newsapi", "typ": "access",
        });
        for (k, v) in overrides.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    #[test]
    fn an_issued_token_verifies() {
        let keys = keys();
        let user = Uuid::new_v4();
        let session = Uuid::new_v4();
        let claims = keys.verify(&keys.issue(user, session).unwrap()).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
    }

    #[test]
    fn alg_none_is_refused_in_any_case() {
        let body = URL_SAFE_NO_PAD.encode(claims(serde_json::json!({})).to_string());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(
                keys().verify(&format!("{header}.{body}.")),
                Err(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn another_algorithm_with_the_same_key_is_refused() {
        let token = sign(&claims(serde_json::json!({})), Algorithm::HS512);
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn wrong_claims_are_refused() {
        let now = chrono::Utc::now().timestamp();
        for overrides in [
            serde_json::json!({"exp": now - 10}),
            serde_json::json!({"exp": null}),
            serde_json::json!({"nbf": now + 600}),
            serde_json::json!({"iss": "someone-else"}),
            serde_json::json!({"iss": null}),
            serde_json::json!({"aud": "someone-else"}),
            serde_json::json!({"aud": null}),
            serde_json::json!({"typ": "refresh"}),
            serde_json::json!({"sub": "not-a-uuid"}),
            serde_json::json!({"sid": null}),
        ] {
            let token = sign(&claims(overrides.clone()), ALGORITHM);
            assert!(keys().verify(&token).is_err(), "accepted {overrides}");
        }
    }

    #[test]
    fn a_tampered_signature_or_garbage_is_refused() {
        let keys = keys();
        let token = keys.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let (head, _) = token.rsplit_once('.').unwrap();
        assert!(keys.verify(&format!("{head}.AAAA")).is_err());
        assert!(keys.verify(&token[..token.len() - 3]).is_err());
        assert!(keys.verify("garbage").is_err());
        assert_eq!(
            keys.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLong)
        );
    }
}
