//! Liveness and readiness probes for load balancers and orchestrators, `/metrics` for
//! Prometheus (on the main listener unless `METRICS_ADDR` names another; see [`crate::metrics`]),
//! and the public keys other services verify access tokens with (`/.well-known/jwks.json`).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::PlainText};

use super::{ApiTags, Errors, Json, SharedState, errors::error_statuses};
use crate::{db::failure::Unavailable, error::ApiError};

/// A probe's answer.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

#[derive(ApiResponse)]
enum LiveResponse {
    /// The process is alive
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database answers
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
enum MetricsResponse {
    /// The metrics
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

/// One public key (RFC 7517, RFC 8037): an Ed25519 key that verifies access tokens.
#[derive(Debug, Object)]
pub struct JsonWebKey {
    /// The key type: `OKP` (an octet key pair).
    pub kty: String,
    /// The curve: `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key's id (its RFC 7638 thumbprint): the `kid` in the header of the tokens it verifies.
    pub kid: String,
    /// What the key is for: `sig` (signatures).
    #[oai(rename = "use")]
    pub use_: String,
    /// The algorithm it verifies: `EdDSA`.
    pub alg: String,
}

/// The public keys that verify access tokens (RFC 7517 JWK set).
#[derive(Debug, Object)]
pub struct JsonWebKeySet {
    /// The key tokens are signed with now first, then the previous keys still accepted during a
    /// rotation; empty when tokens are signed with a shared secret (HS256), which is never
    /// published.
    pub keys: Vec<JsonWebKey>,
}

/// How long a JWK set may be cached: a key added by a rotation is in use only after replicas
/// restart with it, and a verifier that meets an unknown `kid` fetches the set again.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

#[derive(ApiResponse)]
enum JwksResponse {
    /// The public keys
    #[oai(status = 200)]
    Ok(
        Json<JsonWebKeySet>,
        /// `public, max-age=300`: verifiers may cache the set for five minutes
        #[oai(header = "Cache-Control")]
        String,
        /// The set's entity tag, for `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
    /// The set has not changed since the tag given in `If-None-Match`
    #[oai(status = 304)]
    NotModified(
        /// `public, max-age=300`: verifiers may cache the set for five minutes
        #[oai(header = "Cache-Control")]
        String,
        /// The set's entity tag, for `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

/// Whether an `If-None-Match` value names `tag` (weak comparison, RFC 9110 section 13.1.2) or is
/// `*`.
fn none_match_names(header: &str, tag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

error_statuses! {
    ReadyErrors: 503;
    MetricsErrors: 404;
}

/// Probes.
pub struct ServiceApi;

#[OpenApi(tag = "ApiTags::Service")]
impl ServiceApi {
    /// Liveness probe
    ///
    /// 200 while the process runs; it does not touch the database.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> LiveResponse {
        LiveResponse::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Readiness probe
    ///
    /// 200 when the database can be reached, 503 when it cannot; answered within a second,
    /// whatever the database does. A busy database (every pooled connection in use) is ready.
    /// A read replica (`DATABASE_READ_URL`) is not probed: without it only the news reads fail.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(
        &self,
        state: Data<&SharedState>,
    ) -> Result<ReadyResponse, Errors<ReadyErrors>> {
        match state.pool.readiness().await {
            Ok(()) => Ok(ReadyResponse::Ok(Json(Health {
                status: "ready".into(),
            }))),
            Err(why) => Err(ApiError::Unavailable(
                Unavailable::Unreachable,
                format!("readiness probe: {why}"),
            )
            .into()),
        }
    }

    /// Public keys for verifying access tokens
    ///
    /// The JWK set (RFC 7517, RFC 8037) other services verify our access tokens with, without
    /// holding any secret of ours: with `JWT_ALGORITHM=EdDSA`, the Ed25519 public key tokens are
    /// signed with now, then those of `JWT_PREVIOUS_PUBLIC_KEY_FILES` still accepted during a key
    /// rotation. Each key's `kid` is the `kid` in the header of the tokens it verifies. With HS256
    /// (the default) the set is empty: a shared secret is never published. Cacheable for five
    /// minutes; 304 for an `If-None-Match` naming the current tag.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(
        &self,
        state: Data<&SharedState>,
        /// Answer 304 if the set still has one of these entity tags (RFC 9110)
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> JwksResponse {
        let tag = state.jwt.published_tag().to_string();
        let cache = JWKS_CACHE_CONTROL.to_string();
        if if_none_match
            .0
            .as_deref()
            .is_some_and(|header| none_match_names(header, &tag))
        {
            return JwksResponse::NotModified(cache, tag);
        }
        let keys = state
            .jwt
            .published()
            .iter()
            .map(|jwk| JsonWebKey {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: jwk.x.clone(),
                kid: jwk.kid.clone(),
                use_: "sig".into(),
                alg: "EdDSA".into(),
            })
            .collect();
        JwksResponse::Ok(Json(JsonWebKeySet { keys }), cache, tag)
    }

    /// Metrics for Prometheus
    ///
    /// Requests by route template, method and status, latency histograms, requests in flight,
    /// the database pool (and the read replica's pool and lag), the password-hashing queue,
    /// sign-in and idempotency counts, the process's memory and CPU, and the build, in the
    /// Prometheus text format. No user data and no secret. 404 when `METRICS_ADDR` is set: the
    /// metrics are then served on that address only.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(
        &self,
        state: Data<&SharedState>,
    ) -> Result<MetricsResponse, Errors<MetricsErrors>> {
        if !state.metrics_on_main_listener {
            // The same answer as for any path the server does not have.
            return Err(ApiError::NotFound("no such resource").into());
        }
        Ok(MetricsResponse::Ok(PlainText(state.metrics.render(
            &state.pool,
            state.read_pool.as_ref(),
            &state.passwords,
        ))))
    }
}
