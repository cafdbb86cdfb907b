//! The HTTP API: one `#[OpenApi]` impl per area, the bearer-token scheme, wire types, and the two
//! pieces poem-openapi lacks — a JSON body that tells malformed JSON (400) from JSON that breaks the
//! schema (422), and error responses declared in the spec as problem+json.

mod account;
mod auth;
mod body;
mod compression;
mod conn;
mod errors;
mod headers;
mod idempotency;
mod json;
mod news;
mod security;
mod service;
mod spec;
mod text;

use std::{net::IpAddr, sync::Arc};

use poem_openapi::Tags;

pub use self::{
    account::{EmailApi, PasswordApi},
    auth::AuthApi,
    body::{JsonBody, MAX_BODY_BYTES},
    compression::{DEFAULT_MIN_BYTES as DEFAULT_COMPRESSION_MIN_BYTES, ResponseCompression},
    conn::{ConnectionSlot, Db, ReadDb, with_connection_slot},
    errors::Errors,
    headers::{NO_STORE, NO_STORE_PATHS, add_response_headers, response_headers},
    json::{Json, JsonBytes},
    news::NewsApi,
    security::{ClaimedSession, CurrentUser, client_ip, session_ended},
    service::ServiceApi,
    spec::{Contract, OPENAPI_YAML},
    text::{NOT_BLANK_PATTERN, Text},
};
use crate::{
    auth::{JwtKeys, PasswordHasher},
    config::{AccountConfig, MailConfig, SessionConfig, SignupConfig, ThrottleConfig},
    db::DbPool,
    mail::Mailer,
    metrics::Metrics,
};

/// What every handler shares.
pub struct AppState {
    /// Connections to PostgreSQL.
    pub pool: DbPool,
    /// Connections to the read replica (`DATABASE_READ_URL`), when one is configured.
    pub read_pool: Option<DbPool>,
    /// Access-token signing and verification.
    pub jwt: JwtKeys,
    /// bcrypt at the configured cost.
    pub passwords: PasswordHasher,
    /// Session and refresh-token lifetimes.
    pub sessions: SessionConfig,
    /// Sign-in failure limits.
    pub throttle: ThrottleConfig,
    /// The sign-up limit per client address.
    pub signup: SignupConfig,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// This application's metrics (one registry per application, so servers in one process,
    /// as in the tests, count apart).
    pub metrics: Arc<Metrics>,
    /// Token lifetimes, the account-mail limits and the verified-email policy.
    pub accounts: AccountConfig,
    /// The links in mails and how mail is sent.
    pub mail: MailConfig,
    /// Wakes this replica's mail worker once a transaction that queued mail has committed.
    pub mailer: Mailer,
    /// Whether the main listener answers `GET /metrics`: false when `METRICS_ADDR` names another
    /// listener for it.
    pub metrics_on_main_listener: bool,
    /// Up to how many matches `GET /news/count` counts exactly (`COUNT_EXACT_LIMIT`).
    pub count_exact_limit: i64,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

/// The spec's tags, one per area.
#[derive(Tags)]
pub enum ApiTags {
    /// Accounts and access tokens
    #[oai(rename = "auth")]
    Auth,
    /// The signed-in user's own account: profile, password, email, deletion; and recovery by mail
    #[oai(rename = "account")]
    Account,
    /// News items; only their author may change or delete them
    #[oai(rename = "news")]
    News,
    /// Liveness and readiness probes, metrics, and the public keys that verify access tokens
    #[oai(rename = "service")]
    Service,
}
