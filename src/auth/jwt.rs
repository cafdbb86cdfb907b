//! Access tokens: JWTs with `sub`, `sid`, `iat`, `nbf`, `exp`, `iss`, `aud` and `typ`, signed with
//! HS256 (`JWT_SECRET`, the default) or EdDSA (Ed25519 key files), always with a `kid`.
//!
//! jsonwebtoken's `Validation::new` alone allows 60 s of leeway, leaves `nbf` unchecked and checks
//! `iss` only when one is configured; here every check is set explicitly. Verification is pinned to
//! the configured algorithm and picks its key by `kid` among the current key and, with EdDSA, the
//! previous ones still accepted during a rotation: a token with another `alg`, without a `kid` or
//! with a `kid` of no such key is refused before its signature is looked at.
//!
//! A token that verified is remembered, by its exact text, in a bounded cache with the two claims
//! the server uses and its `nbf` and `exp` (decision D9 in BENCHMARKS.md): the same token again
//! skips base64, the signature and JSON parsing, and only its `nbf` and `exp` are checked again,
//! with the same leeway. Everything else a verification checks depends on the token's text and on
//! keys fixed for the life of the process, so its answer cannot change. Refused tokens are never
//! remembered, and revocation does not depend on any of this: the session is checked in the
//! database on every request.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind,
    get_current_timestamp,
};
use quick_cache::sync::Cache;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{JwtConfig, SigningKeys};

/// The `typ` claim of an access token, so that no other kind of token can pass for one.
const ACCESS_TYPE: &str = "access";
/// Clock skew tolerated between replicas, in seconds.
const LEEWAY_SECS: u64 = 5;
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Put before `JWT_SECRET` in the hash an HS256 `kid` is made of, so that the `kid` is no hash
/// of the secret that any other use of SHA-256 would produce.
const HS256_KID_CONTEXT: &[u8] = b"newsapi access-token kid v1\0";
/// How many verified tokens are remembered (about 0.5 KB each with its key: a few MB at most).
const VERIFIED_CAPACITY: usize = 8 * 1024;

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

/// What a verified access token says: the two claims the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user's id.
    pub sub: Uuid,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Uuid,
}

/// A token that verified, as remembered: what it says and when it is valid.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    token: VerifiedToken,
    nbf: u64,
    exp: u64,
}

impl Remembered {
    /// jsonwebtoken's own checks of `exp` and `nbf` (`validation::validate`), with the same leeway.
    fn check(self, now: u64) -> Result<VerifiedToken, TokenError> {
        if self.exp < now.saturating_sub(LEEWAY_SECS) {
            Err(TokenError::Expired)
        } else if self.nbf > now.saturating_add(LEEWAY_SECS) {
            Err(TokenError::Invalid)
        } else {
            Ok(self.token)
        }
    }
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
    /// Anything else: malformed, forged, wrong algorithm, key id, issuer, audience or kind.
    #[error("the token is not valid")]
    Invalid,
}

/// One Ed25519 public key as published in the JWK set (RFC 8037: `kty` `OKP`, `crv` `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// The key's id: its RFC 7638 thumbprint.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
}

/// Signs and verifies access tokens.
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    /// The `kid` of the tokens issued.
    kid: String,
    /// Every key a token may be verified with, by `kid`: the current one first.
    decoding: Vec<(String, DecodingKey)>,
    /// The public keys published at `/.well-known/jwks.json` (none with HS256).
    published: Vec<PublicJwk>,
    /// The entity tag of the published set.
    published_tag: String,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Tokens that verified, by their exact text.
    verified: Cache<Box<str>, Remembered>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key: the hash of its
/// required members in lexicographic order, with no white space (RFC 8037 section 2).
#[must_use]
pub fn ed25519_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The `kid` of an HS256 secret: 96 bits of a hash of it, which tell two secrets apart and give
/// nothing of it away (it is at least 32 bytes, and the tokens' own MACs already depend on it).
#[must_use]
pub fn hs256_kid(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(HS256_KID_CONTEXT)
        .chain_update(secret)
        .finalize();
    format!("hs256-{}", URL_SAFE_NO_PAD.encode(&digest[..12]))
}

impl JwtKeys {
    /// Keys and rules from the configuration.
    ///
    /// # Panics
    /// Never: an Ed25519 key read at start-up always encodes as PKCS#8.
    #[must_use]
    pub fn new(config: &JwtConfig) -> Self {
        let (algorithm, encoding, kid, decoding, published) = match &config.signing {
            SigningKeys::Hs256(secret) => {
                let secret = secret.expose_secret().as_bytes();
                let kid = hs256_kid(secret);
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret),
                    kid.clone(),
                    vec![(kid, DecodingKey::from_secret(secret))],
                    Vec::new(),
                )
            }
            SigningKeys::EdDsa { current, previous } => {
                let der = current
                    .to_pkcs8_der()
                    .expect("an Ed25519 key encodes as PKCS#8");
                let mut published: Vec<PublicJwk> = Vec::new();
                let mut decoding = Vec::new();
                for public in
                    std::iter::once(current.verifying_key()).chain(previous.iter().copied())
                {
                    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
                    let kid = ed25519_thumbprint(&x);
                    if published.iter().any(|jwk| jwk.kid == kid) {
                        continue;
                    }
                    decoding.push((kid.clone(), DecodingKey::from_ed_der(public.as_bytes())));
                    published.push(PublicJwk { kid, x });
                }
                (
                    Algorithm::EdDSA,
                    EncodingKey::from_ed_der(der.as_bytes()),
                    published[0].kid.clone(),
                    decoding,
                    published,
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        let published_tag = {
            let mut hash = Sha256::new();
            for jwk in &published {
                hash.update(jwk.kid.as_bytes());
                hash.update(b"\0");
            }
            format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.finalize()[..12]))
        };
        Self {
            algorithm,
            encoding,
            kid,
            decoding,
            published,
            published_tag,
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_token_ttl,
            verified: Cache::new(VERIFIED_CAPACITY),
        }
    }

    /// How long an access token lives.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `kid` of the tokens issued now.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys other services verify tokens with (empty with HS256: a shared secret is
    /// never published), the current one first.
    #[must_use]
    pub fn published(&self) -> &[PublicJwk] {
        &self.published
    }

    /// The entity tag of [`Self::published`], quoted.
    #[must_use]
    pub fn published_tag(&self) -> &str {
        &self.published_tag
    }

    /// Issues an access token for `user_id` in session `session_id`, valid from now for the
    /// configured lifetime.
    ///
    /// # Errors
    /// Signing failed (it cannot with the keys checked at start-up, but the library says it may).
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
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Verifies an access token: size, algorithm, key id, signature, `exp`, `nbf`, `iss`, `aud`,
    /// `typ`. A token that verified before is only checked against its `nbf` and `exp` again.
    ///
    /// # Errors
    /// The first check the token fails.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        if let Some(remembered) = self.verified.get(token) {
            return remembered.check(get_current_timestamp());
        }
        let claims = self.verify_fully(token)?;
        let token_said = VerifiedToken {
            sub: claims.sub,
            sid: claims.sid,
        };
        // jsonwebtoken read `exp` and `nbf` as u64 to check them, so they convert.
        if let (Ok(nbf), Ok(exp)) = (u64::try_from(claims.nbf), u64::try_from(claims.exp)) {
            let remembered = Remembered {
                token: token_said,
                nbf,
                exp,
            };
            self.verified.insert(token.into(), remembered);
        }
        Ok(token_said)
    }

    /// Every check of [`Self::verify`], on the token's text.
    fn verify_fully(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != self.algorithm {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let (_, key) = self
            .decoding
            .iter()
            .find(|(known, _)| *known == kid)
            .ok_or(TokenError::Invalid)?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        if data.claims.typ != ACCESS_TYPE {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ALGORITHM: Algorithm = Algorithm::HS256;

    pub(super) fn config(signing: SigningKeys) -> JwtConfig {
        JwtConfig {
            signing,
            issuer: "newsapi".into(),
            audience: "newsapi".into(),
            access_token_ttl: Duration::from_secs(900),
        }
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(&config(SigningKeys::Hs256(
            String::from_utf8(SECRET.to_vec()).unwrap().into(),
        )))
    }

    /// Signed with the HS256 secret, with the `kid` of that secret.
    fn sign(claims: &serde_json::Value, alg: Algorithm) -> String {
        sign_with(
            claims,
            alg,
            Some(&keys().kid),
            &EncodingKey::from_secret(SECRET),
        )
    }

    fn sign_with(
        claims: &serde_json::Value,
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).unwrap()
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
    fn a_remembered_token_is_checked_against_exp_and_nbf_with_the_same_leeway() {
        let token = VerifiedToken {
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
        };
        let remembered = Remembered {
            token,
            nbf: 1_000,
            exp: 2_000,
        };
        // jsonwebtoken: expired when `exp < now - leeway`, immature when `nbf > now + leeway`.
        assert_eq!(remembered.check(2_000 + LEEWAY_SECS), Ok(token));
        assert_eq!(
            remembered.check(2_001 + LEEWAY_SECS),
            Err(TokenError::Expired)
        );
        assert_eq!(remembered.check(1_000 - LEEWAY_SECS), Ok(token));
        assert_eq!(
            remembered.check(999 - LEEWAY_SECS),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn only_a_token_that_verified_is_remembered_and_it_verifies_the_same_again() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let refused = [
            sign(&claims(serde_json::json!({"exp": now - 10})), ALGORITHM),
            sign(&claims(serde_json::json!({"typ": "refresh"})), ALGORITHM),
            sign(&claims(serde_json::json!({})), Algorithm::HS512),
        ];
        for token in &refused {
            assert!(keys.verify(token).is_err());
            assert!(keys.verify(token).is_err(), "refused twice");
        }
        assert_eq!(keys.verified.len(), 0);

        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(user, session).unwrap();
        let first = keys.verify(&token).unwrap();
        assert_eq!(keys.verified.len(), 1);
        assert_eq!(keys.verify(&token), Ok(first));
        assert_eq!((first.sub, first.sid), (user, session));
        // One character more or less is another token, verified on its own.
        assert!(keys.verify(&format!("{token}A")).is_err());
        assert!(keys.verify(&token[..token.len() - 1]).is_err());
        assert_eq!(keys.verified.len(), 1);
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

#[cfg(test)]
mod signing_keys {
    use ed25519_dalek::SigningKey;

    use super::{tests::config, *};

    fn ed_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn ed_keys(current: u8, previous: &[u8]) -> JwtKeys {
        JwtKeys::new(&config(SigningKeys::EdDsa {
            current: Box::new(ed_key(current)),
            previous: previous
                .iter()
                .map(|s| ed_key(*s).verifying_key())
                .collect(),
        }))
    }

    fn hs_keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&config(SigningKeys::Hs256(secret.to_string().into())))
    }

    fn header_of(token: &str) -> serde_json::Value {
        let head = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
    }

    fn claims() -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "iat": now, "nbf": now, "exp": now + 60,
            "iss": "newsapi", "aud": "newsapi", "typ": "access",
        })
    }

    fn sign_with(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims(), key).unwrap()
    }

    #[test]
    fn the_thumbprint_is_rfc_8037s_example() {
        // RFC 8037 appendix A.3.
        assert_eq!(
            ed25519_thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn an_eddsa_token_carries_the_thumbprint_as_kid_and_verifies() {
        let keys = ed_keys(1, &[]);
        let token = keys.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let header = header_of(&token);
        assert_eq!(header["alg"], "EdDSA");
        let x = URL_SAFE_NO_PAD.encode(ed_key(1).verifying_key().as_bytes());
        assert_eq!(header["kid"], ed25519_thumbprint(&x));
        assert_eq!(
            keys.published(),
            &[PublicJwk {
                kid: ed25519_thumbprint(&x),
                x
            }]
        );
        assert!(keys.verify(&token).is_ok());
    }

    #[test]
    fn a_token_of_a_previous_key_verifies_until_that_key_is_dropped() {
        let old = ed_keys(1, &[])
            .issue(Uuid::new_v4(), Uuid::new_v4())
            .unwrap();
        let rotated = ed_keys(2, &[1]);
        assert!(rotated.verify(&old).is_ok());
        assert_eq!(rotated.published().len(), 2);
        assert_eq!(rotated.published()[0].kid, rotated.kid());
        let new = rotated.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        assert_ne!(header_of(&new)["kid"], header_of(&old)["kid"]);
        let dropped = ed_keys(2, &[]);
        assert!(dropped.verify(&new).is_ok());
        assert_eq!(dropped.verify(&old), Err(TokenError::Invalid));
        assert_ne!(rotated.published_tag(), dropped.published_tag());
    }

    #[test]
    fn the_current_key_listed_as_previous_too_is_published_once() {
        assert_eq!(ed_keys(1, &[1]).published().len(), 1);
    }

    #[test]
    fn no_kid_an_unknown_kid_or_a_kid_of_another_key_is_refused() {
        let keys = ed_keys(1, &[]);
        let own = EncodingKey::from_ed_der(ed_key(1).to_pkcs8_der().unwrap().as_bytes());
        let other = EncodingKey::from_ed_der(ed_key(3).to_pkcs8_der().unwrap().as_bytes());
        let kid = keys.kid().to_string();
        assert!(
            keys.verify(&sign_with(Algorithm::EdDSA, Some(&kid), &own))
                .is_ok()
        );
        for token in [
            sign_with(Algorithm::EdDSA, None, &own),
            sign_with(Algorithm::EdDSA, Some("someone-else"), &own),
            // Signed by another key under our kid.
            sign_with(Algorithm::EdDSA, Some(&kid), &other),
        ] {
            assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn an_hs256_token_made_with_the_public_key_as_secret_is_refused() {
        let keys = ed_keys(1, &[]);
        let public = ed_key(1).verifying_key();
        let kid = keys.kid().to_string();
        let pem = {
            use ed25519_dalek::pkcs8::EncodePublicKey;
            public
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap()
        };
        for secret in [public.as_bytes().as_slice(), pem.as_bytes(), kid.as_bytes()] {
            let token = sign_with(
                Algorithm::HS256,
                Some(&kid),
                &EncodingKey::from_secret(secret),
            );
            assert_eq!(keys.verify(&token), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn an_eddsa_token_is_refused_by_an_hs256_server_and_the_other_way_round() {
        let hs = hs_keys("0123456789abcdef0123456789abcdef");
        let ed = ed_keys(1, &[]);
        let ed_token = ed.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let hs_token = hs.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        assert_eq!(hs.verify(&ed_token), Err(TokenError::Invalid));
        assert_eq!(ed.verify(&hs_token), Err(TokenError::Invalid));
    }

    #[test]
    fn an_hs256_kid_tells_secrets_apart_and_does_not_contain_the_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        let keys = hs_keys(secret);
        let token = keys.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        assert_eq!(header_of(&token)["kid"], keys.kid());
        assert!(!keys.kid().contains("0123456789abcdef"));
        assert_eq!(keys.kid(), hs_keys(secret).kid());
        let other = hs_keys("fedcba9876543210fedcba9876543210");
        assert_ne!(keys.kid(), other.kid());
        // Another secret's token fails on its kid; a token without a kid fails too.
        assert_eq!(
            keys.verify(&other.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap()),
            Err(TokenError::Invalid)
        );
        let no_kid = sign_with(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(secret.as_bytes()),
        );
        assert_eq!(keys.verify(&no_kid), Err(TokenError::Invalid));
        assert!(keys.published().is_empty());
    }
}
