//! `Config::from_env()`: the one place that reads the environment (and `.env`, through dotenvy).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};

/// The shortest `JWT_SECRET` accepted, in bytes: HS256's key should be at least as long as its output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// A secret of fewer different bytes than this (`aaaa…`, `abababab…`) is refused as not random.
const MIN_JWT_SECRET_DISTINCT_BYTES: usize = 8;

/// bcrypt's cost range (the crate keeps its own constants private).
const MIN_BCRYPT_COST: u32 = 4;
const MAX_BCRYPT_COST: u32 = 31;

/// Everything the server is configured with, read once at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: where PostgreSQL is (a secret: it may carry a password).
    pub database_url: SecretString,
    /// `DATABASE_READ_URL`: a streaming replica of the database, for the news reads (list, count,
    /// get); unset, everything goes to `DATABASE_URL` (a secret: it may carry a password).
    pub database_read_url: Option<SecretString>,
    /// The pool and every wait on the database.
    pub database: DatabaseConfig,
    /// `LISTEN_ADDR`: the address to serve on; port 0 picks a free one.
    pub listen_addr: SocketAddr,
    /// Signing and verification settings for access tokens.
    pub jwt: JwtConfig,
    /// `BCRYPT_COST`: bcrypt's work factor for new password hashes.
    pub bcrypt_cost: u32,
    /// How long sessions and their refresh tokens live.
    pub sessions: SessionConfig,
    /// Limits on failed sign-ins.
    pub throttle: ThrottleConfig,
    /// The limit on sign-ups per client address.
    pub signup: SignupConfig,
    /// `TRUSTED_PROXIES`: comma-separated addresses of the proxies whose `X-Forwarded-For` names the
    /// client; from anyone else the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// Connection deadlines and the per-address connection cap.
    pub connections: ConnectionConfig,
    /// Bounds on the password-hashing queue.
    pub hash_queue: HashQueueConfig,
    /// Log format and metrics address.
    pub observability: ObservabilityConfig,
    /// How mail is sent, and the links in it.
    pub mail: MailConfig,
    /// Account self-service: token lifetimes, the account-mail limits, verified-email policy.
    pub accounts: AccountConfig,
    /// `COUNT_EXACT_LIMIT`: `GET /news/count` counts matches exactly up to this many; beyond it,
    /// it answers PostgreSQL's estimate, marked as such (default 1 000).
    pub count_exact_limit: i64,
    /// `COMPRESSION_MIN_BYTES`: the smallest JSON body sent compressed to a client that accepts
    /// gzip, br or zstd (default 1024; at most [`MAX_COMPRESSION_MIN_BYTES`], which no JSON
    /// answer reaches: compression off).
    pub compression_min_bytes: u64,
}

/// The largest `COMPRESSION_MIN_BYTES`: 64 MiB.
pub const MAX_COMPRESSION_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// How mail leaves the server: every mail is first written to the `mail_outbox` table, in the
/// transaction of the change that causes it, and a worker in every replica sends it.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `SMTP_URL`: the mail server, e.g. `smtp://user:pass@host:587?tls=starttls` (a secret: it may
    /// carry a password). Unset, mails are written as `.eml` files into `outbox_dir`.
    pub smtp_url: Option<SecretString>,
    /// `MAIL_FROM`: the sender of every mail (default `newsapi <no-reply@localhost>`).
    pub from: String,
    /// `MAIL_OUTBOX_DIR`: where mails go as `.eml` files when `SMTP_URL` is unset (default `./mail`).
    pub outbox_dir: PathBuf,
    /// `PUBLIC_BASE_URL`: what links in mails start with, without a trailing slash (default
    /// `http://127.0.0.1:3000`).
    pub public_base_url: String,
    /// `MAIL_RETRY_MAX_SECS`: the longest wait between two attempts at a mail the server could not
    /// take; waits double from one second up to it (default 30, so mail goes out within about
    /// half a minute of the mail server's return).
    pub retry_max: Duration,
}

/// Account self-service: password reset, email verification and change, and their limits.
#[derive(Debug, Clone, Copy)]
pub struct AccountConfig {
    /// `PASSWORD_RESET_TTL_SECS`: how long a password-reset token works (default 1800).
    pub password_reset_ttl: Duration,
    /// `EMAIL_TOKEN_TTL_SECS`: how long an email-verification or email-change token works
    /// (default 86400).
    pub email_token_ttl: Duration,
    /// `REQUIRE_VERIFIED_EMAIL`: when true, a user whose email is not verified may sign in and read
    /// but not create, change or delete news (default false).
    pub require_verified_email: bool,
    /// `ACCOUNT_MAIL_MAX_PER_IP`: requests that send an account mail (forgotten password, resent
    /// verification, email change) per client address per window (default 20).
    pub mail_max_per_ip: i32,
    /// `ACCOUNT_MAIL_MAX_PER_RECIPIENT`: such requests per target account (the email asked for, or
    /// the signed-in user) per window (default 5).
    pub mail_max_per_recipient: i32,
    /// `ACCOUNT_MAIL_WINDOW_SECS`: the window (default 3600).
    pub mail_window: Duration,
}

/// The pool, and the bound on every wait on the database.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseConfig {
    /// `DATABASE_POOL_SIZE`: the most connections the pool opens (default 16).
    pub pool_size: usize,
    /// `DATABASE_READ_POOL_SIZE`: the most connections the pool on `DATABASE_READ_URL` opens
    /// (default `DATABASE_POOL_SIZE`); unused without a replica.
    pub read_pool_size: usize,
    /// `DATABASE_POOL_TIMEOUT_MS`: how long a request waits for a free connection before a 503
    /// (default 1000). The older `DATABASE_POOL_TIMEOUT_SECS` is still read when the new one is
    /// not set.
    pub pool_timeout: Duration,
    /// `DATABASE_CONNECT_TIMEOUT_SECS`: how long opening one new connection may take (default 5).
    pub connect_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS`: PostgreSQL's `statement_timeout` on every connection of
    /// the pool (default 5000).
    pub statement_timeout: Duration,
    /// `DATABASE_LOCK_TIMEOUT_MS`: PostgreSQL's `lock_timeout` on every connection of the pool: how
    /// long a statement waits for a row or table lock (default 2000).
    pub lock_timeout: Duration,
    /// `DATABASE_STARTUP_WAIT_SECS`: how long the server retries an unreachable database at
    /// start-up before it exits (default 30; 0 tries once).
    pub startup_wait: Duration,
}

/// What the operator sees: the log's format and where metrics are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// `LOG_FORMAT`: `json` or `text`; unset, text when stderr is a terminal and JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// `METRICS_ADDR`: a separate address for `/metrics`; unset, it is served on `LISTEN_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
}

/// The log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines (coloured only on a terminal).
    Text,
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(()),
        }
    }
}

/// How many password hashes may wait or run at once (each is a quarter of a second of CPU at cost
/// 12), beyond which sign-up and sign-in are refused at once without hashing.
#[derive(Debug, Clone, Copy)]
pub struct HashQueueConfig {
    /// `HASH_QUEUE_MAX`: in all, on this replica (default 64); beyond it, 503.
    pub max: usize,
    /// `HASH_QUEUE_MAX_PER_IP`: from one client address, counted across all replicas (default 4);
    /// beyond it, 429.
    pub max_per_ip: usize,
}

/// How long a client may take to send a request, how long a connection may sit idle, and how many
/// connections one client address may hold open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionConfig {
    /// `HTTP_HEADER_TIMEOUT_SECS`: a request's headers must have arrived this long after its first
    /// byte (or after the connection opened, for its first request) (default 10).
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_SECS`: a request's body must have arrived this long after its headers
    /// (default 30).
    pub body_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_SECS`: a keep-alive connection with no request in flight and no I/O for
    /// this long is closed (default 60).
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS_PER_IP`: open connections per client address; more are closed at once
    /// (default 256). `TRUSTED_PROXIES` are not limited.
    pub max_per_ip: usize,
    /// `REQUEST_TIMEOUT_SECS`: the longest a request may run once its headers are in, body and
    /// answer included; then it is cancelled (its transaction rolled back) and answered 503
    /// (default 30).
    pub request_timeout: Duration,
    /// `SHUTDOWN_GRACE_SECS`: after SIGTERM or SIGINT, how long requests in flight may finish;
    /// then they are cancelled and logged (default 30; 0 cancels them at once).
    pub shutdown_grace: Duration,
    /// `SHUTDOWN_IDLE_LINGER_SECS`: after SIGTERM or SIGINT, how long an idle HTTP/1.1 keep-alive
    /// connection is kept open rather than closed at once, any request on it answered with
    /// `Connection: close` (default 0: closed at once). Behind a load balancer that keeps
    /// connections to the server alive, set it above the balancer's keep-alive timeout: the
    /// balancer then closes them first and never sends a request on a connection the server is
    /// closing (at most `SHUTDOWN_GRACE_SECS`).
    pub shutdown_idle_linger: Duration,
}

/// Session (refresh-token family) lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// `REFRESH_TOKEN_TTL_SECS`: the lifetime of one refresh token (default 30 days).
    pub refresh_token_ttl: Duration,
    /// `SESSION_MAX_LIFETIME_SECS`: no session outlives its sign-in by more (default 30 days).
    pub max_lifetime: Duration,
    /// `REFRESH_REUSE_INTERVAL_SECS`: a refresh token presented again this soon after its rotation
    /// is a retry and gets a working pair in the same session; later, reuse revokes the session
    /// (default 10; 0 treats every reuse as theft).
    pub reuse_interval: Duration,
}

/// Failed sign-ins allowed per window before 429.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// `SIGNIN_MAX_FAILURES`: per account and client address (default 10).
    pub max_failures: i32,
    /// `SIGNIN_MAX_FAILURES_PER_IP`: per client address, at any account (default 100).
    pub max_failures_per_ip: i32,
    /// `SIGNIN_MAX_FAILURES_PER_ACCOUNT`: per account, from every address together (default 100).
    pub max_failures_per_account: i32,
    /// `SIGNIN_WINDOW_SECS`: the window (default 900).
    pub window: Duration,
}

/// Sign-ups allowed per client address per window before 429.
#[derive(Debug, Clone, Copy)]
pub struct SignupConfig {
    /// `SIGNUP_MAX_PER_IP`: sign-ups per client address per window (default 20).
    pub max_per_ip: i32,
    /// `SIGNUP_WINDOW_SECS`: the window (default 3600).
    pub window: Duration,
}

/// How access tokens are signed and checked.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `JWT_ALGORITHM` and its keys.
    pub signing: SigningKeys,
    /// `JWT_ISSUER`: the `iss` claim issued and required.
    pub issuer: String,
    /// `JWT_AUDIENCE`: the `aud` claim issued and required.
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECS`: the lifetime of an access token.
    pub access_token_ttl: Duration,
}

/// The algorithm access tokens are signed with, and its keys.
#[derive(Debug, Clone)]
pub enum SigningKeys {
    /// `JWT_ALGORITHM=HS256` (the default): `JWT_SECRET`, at least [`MIN_JWT_SECRET_BYTES`] bytes,
    /// signs and verifies; only this service can verify its tokens.
    Hs256(SecretString),
    /// `JWT_ALGORITHM=EdDSA` (Ed25519): the key of `JWT_PRIVATE_KEY_FILE` signs; its public key and
    /// those of `JWT_PREVIOUS_PUBLIC_KEY_FILES` verify, and are published at
    /// `/.well-known/jwks.json` for other services.
    EdDsa {
        /// `JWT_PRIVATE_KEY_FILE`, read and checked at start-up.
        current: Box<ed25519_dalek::SigningKey>,
        /// `JWT_PREVIOUS_PUBLIC_KEY_FILES`, in the order given.
        previous: Vec<ed25519_dalek::VerifyingKey>,
    },
}

impl SigningKeys {
    /// Reads `JWT_ALGORITHM`, `JWT_SECRET`, `JWT_PRIVATE_KEY_FILE` and
    /// `JWT_PREVIOUS_PUBLIC_KEY_FILES` (each once, whatever the algorithm) and the key files.
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let algorithm = get("JWT_ALGORITHM");
        let secret = get("JWT_SECRET");
        let private_key_file = get("JWT_PRIVATE_KEY_FILE");
        let previous_files = get("JWT_PREVIOUS_PUBLIC_KEY_FILES");
        match algorithm.as_deref().map(str::trim) {
            None | Some("HS256") => {
                for (name, value) in [
                    ("JWT_PRIVATE_KEY_FILE", &private_key_file),
                    ("JWT_PREVIOUS_PUBLIC_KEY_FILES", &previous_files),
                ] {
                    if value.is_some() {
                        return Err(ConfigError(format!(
                            "{name} is set but JWT_ALGORITHM is HS256, which signs with \
                             JWT_SECRET; set JWT_ALGORITHM=EdDSA to sign with key files"
                        )));
                    }
                }
                Ok(Self::Hs256(hs256_secret(secret)?.into()))
            }
            Some("EdDSA") => {
                use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
                let path = private_key_file.ok_or_else(|| {
                    ConfigError(
                        "JWT_PRIVATE_KEY_FILE is not set; JWT_ALGORITHM=EdDSA needs an Ed25519 \
                         private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`)"
                            .into(),
                    )
                })?;
                let pem = read_key_file("JWT_PRIVATE_KEY_FILE", path.trim())?;
                let current = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose_secret())
                    .map_err(|_| {
                        ConfigError(format!(
                            "JWT_PRIVATE_KEY_FILE: {} is not an Ed25519 private key in PKCS#8 PEM \
                             (`openssl genpkey -algorithm ed25519`)",
                            path.trim()
                        ))
                    })?;
                let mut previous = Vec::new();
                for path in previous_files
                    .iter()
                    .flat_map(|list| list.split(','))
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                {
                    let pem = read_key_file("JWT_PREVIOUS_PUBLIC_KEY_FILES", path)?;
                    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(
                        pem.expose_secret(),
                    )
                    .map_err(|_| {
                        ConfigError(format!(
                            "JWT_PREVIOUS_PUBLIC_KEY_FILES: {path} is not an Ed25519 public key \
                             in PEM (`openssl pkey -pubout`)"
                        ))
                    })?;
                    previous.push(key);
                }
                Ok(Self::EdDsa {
                    current: Box::new(current),
                    previous,
                })
            }
            Some(other) => Err(ConfigError(format!(
                "JWT_ALGORITHM must be HS256 or EdDSA, not {other:?}"
            ))),
        }
    }
}

/// `JWT_SECRET`, checked for length and variety.
fn hs256_secret(secret: Option<String>) -> Result<String, ConfigError> {
    let secret = secret.ok_or_else(|| {
        ConfigError(format!(
            "JWT_SECRET is not set; set it to at least {MIN_JWT_SECRET_BYTES} random bytes"
        ))
    })?;
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError(format!(
            "JWT_SECRET is too short ({} bytes); it must be at least {MIN_JWT_SECRET_BYTES} bytes",
            secret.len()
        )));
    }
    let distinct = secret
        .bytes()
        .collect::<std::collections::BTreeSet<u8>>()
        .len();
    if distinct < MIN_JWT_SECRET_DISTINCT_BYTES {
        return Err(ConfigError(format!(
            "JWT_SECRET is too weak (only {distinct} different characters); use random bytes, \
             e.g. `openssl rand -hex 32`"
        )));
    }
    Ok(secret)
}

/// The text of a key file named by `name`; the error names the variable and the path, never the
/// content.
fn read_key_file(name: &str, path: &str) -> Result<SecretString, ConfigError> {
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|err| ConfigError(format!("{name}: {path} cannot be read: {err}")))
}

/// A configuration value that is missing or unusable; its message names the variable and says why.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads `.env` (if present) and then the environment.
    ///
    /// # Errors
    /// A missing `DATABASE_URL` or `JWT_SECRET` (with HS256), a secret shorter than
    /// [`MIN_JWT_SECRET_BYTES`], a missing, unreadable or invalid key file (with EdDSA), or a value
    /// that does not parse.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal (production sets the environment); a broken one is not.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(err) => return Err(ConfigError(format!(".env could not be read: {err}"))),
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a configuration from any source of variables (the environment, or a map in tests).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let database_url =
            get("DATABASE_URL").ok_or_else(|| ConfigError("DATABASE_URL is not set".into()))?;
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError(
                "DATABASE_URL must be a postgres:// or postgresql:// URL".into(),
            ));
        }
        let signing = SigningKeys::from_lookup(&get)?;
        let bcrypt_cost = parse(&get, "BCRYPT_COST", 12)?;
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&bcrypt_cost) {
            return Err(ConfigError(format!(
                "BCRYPT_COST must be between {} and {}",
                MIN_BCRYPT_COST, MAX_BCRYPT_COST
            )));
        }
        Ok(Self {
            database_url: database_url.into(),
            database_read_url: get("DATABASE_READ_URL")
                .map(|url| url.trim().to_string())
                .filter(|url| !url.is_empty())
                .map(SecretString::from),
            database: DatabaseConfig::from_lookup(&get)?,
            listen_addr: parse(
                &get,
                "LISTEN_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 3000)),
            )?,
            jwt: JwtConfig {
                signing,
                issuer: get("JWT_ISSUER").unwrap_or_else(|| "newsapi".into()),
                audience: get("JWT_AUDIENCE").unwrap_or_else(|| "newsapi".into()),
                access_token_ttl: positive_secs(&get, "ACCESS_TOKEN_TTL_SECS", 900)?,
            },
            bcrypt_cost,
            sessions: SessionConfig {
                refresh_token_ttl: positive_secs(&get, "REFRESH_TOKEN_TTL_SECS", THIRTY_DAYS)?,
                max_lifetime: positive_secs(&get, "SESSION_MAX_LIFETIME_SECS", THIRTY_DAYS)?,
                reuse_interval: bounded(&get, "REFRESH_REUSE_INTERVAL_SECS", 10, 0..=3600)
                    .map(Duration::from_secs)?,
            },
            throttle: ThrottleConfig {
                max_failures: parse(&get, "SIGNIN_MAX_FAILURES", 10)?,
                max_failures_per_ip: parse(&get, "SIGNIN_MAX_FAILURES_PER_IP", 100)?,
                max_failures_per_account: parse(&get, "SIGNIN_MAX_FAILURES_PER_ACCOUNT", 100)?,
                window: positive_secs(&get, "SIGNIN_WINDOW_SECS", 900)?,
            },
            signup: SignupConfig {
                max_per_ip: parse(&get, "SIGNUP_MAX_PER_IP", 20)?,
                window: positive_secs(&get, "SIGNUP_WINDOW_SECS", 3600)?,
            },
            trusted_proxies: get("TRUSTED_PROXIES")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|ip| {
                            ip.parse().map_err(|_| {
                                ConfigError(format!(
                                    "TRUSTED_PROXIES has an invalid address {ip:?}"
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
            connections: ConnectionConfig::from_lookup(&get)?,
            hash_queue: HashQueueConfig {
                max: queue_bound(&get, "HASH_QUEUE_MAX", 64)?,
                max_per_ip: queue_bound(&get, "HASH_QUEUE_MAX_PER_IP", 4)?,
            },
            observability: ObservabilityConfig {
                log_format: get("LOG_FORMAT")
                    .map(|raw| {
                        raw.trim().parse().map_err(|()| {
                            ConfigError(format!("LOG_FORMAT must be json or text, not {raw:?}"))
                        })
                    })
                    .transpose()?,
                metrics_addr: get("METRICS_ADDR")
                    .map(|raw| {
                        raw.trim().parse().map_err(|_| {
                            ConfigError(format!(
                                "METRICS_ADDR must be an address and port such as 127.0.0.1:9100, not {raw:?}"
                            ))
                        })
                    })
                    .transpose()?,
            },
            mail: MailConfig::from_lookup(&get)?,
            accounts: AccountConfig {
                password_reset_ttl: bounded(&get, "PASSWORD_RESET_TTL_SECS", 1800, 1..=86_400)
                    .map(Duration::from_secs)?,
                email_token_ttl: bounded(&get, "EMAIL_TOKEN_TTL_SECS", 86_400, 1..=30 * 86_400)
                    .map(Duration::from_secs)?,
                require_verified_email: get("REQUIRE_VERIFIED_EMAIL")
                    .map(|raw| match raw.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => Ok(true),
                        "false" | "0" | "no" => Ok(false),
                        _ => Err(ConfigError(format!(
                            "REQUIRE_VERIFIED_EMAIL must be true or false, not {raw:?}"
                        ))),
                    })
                    .transpose()?
                    .unwrap_or(false),
                mail_max_per_ip: limit(&get, "ACCOUNT_MAIL_MAX_PER_IP", 20)?,
                mail_max_per_recipient: limit(&get, "ACCOUNT_MAIL_MAX_PER_RECIPIENT", 5)?,
                mail_window: positive_secs(&get, "ACCOUNT_MAIL_WINDOW_SECS", 3600)?,
            },
            count_exact_limit: bounded(&get, "COUNT_EXACT_LIMIT", 1_000, 1..=MAX_COUNT_EXACT_LIMIT)
                .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))?,
            compression_min_bytes: bounded(
                &get,
                "COMPRESSION_MIN_BYTES",
                crate::api::DEFAULT_COMPRESSION_MIN_BYTES,
                0..=MAX_COMPRESSION_MIN_BYTES,
            )?,
        })
    }

    /// The database URL, for the one place that connects.
    #[must_use]
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    /// The read replica's URL, when one is configured.
    #[must_use]
    pub fn database_read_url(&self) -> Option<&str> {
        self.database_read_url
            .as_ref()
            .map(|url| url.expose_secret())
    }
}

const THIRTY_DAYS: u64 = 30 * 24 * 60 * 60;

/// The most `COUNT_EXACT_LIMIT` may be set to: a billion (an exact count of that many is minutes).
const MAX_COUNT_EXACT_LIMIT: u64 = 1_000_000_000;

/// The longest a database wait in milliseconds may be set to: an hour.
const MAX_DATABASE_WAIT_MS: u64 = 60 * 60 * 1000;

impl DatabaseConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let millis = |name: &str, default: u64| {
            bounded(get, name, default, 1..=MAX_DATABASE_WAIT_MS).map(Duration::from_millis)
        };
        // `DATABASE_POOL_TIMEOUT_SECS` is the setting of earlier versions; the new one wins.
        let legacy_secs = get("DATABASE_POOL_TIMEOUT_SECS");
        let pool_timeout = match (get("DATABASE_POOL_TIMEOUT_MS"), legacy_secs) {
            (None, Some(secs)) => bounded(
                &|_: &str| Some(secs.clone()),
                "DATABASE_POOL_TIMEOUT_SECS",
                1,
                1..=MAX_DATABASE_WAIT_MS / 1000,
            )
            .map(Duration::from_secs)?,
            (ms, _) => bounded(
                &|_: &str| ms.clone(),
                "DATABASE_POOL_TIMEOUT_MS",
                1000,
                1..=MAX_DATABASE_WAIT_MS,
            )
            .map(Duration::from_millis)?,
        };
        let pool_size = queue_bound(get, "DATABASE_POOL_SIZE", 16)?;
        Ok(Self {
            pool_size,
            read_pool_size: queue_bound(get, "DATABASE_READ_POOL_SIZE", pool_size)?,
            pool_timeout,
            connect_timeout: bounded(get, "DATABASE_CONNECT_TIMEOUT_SECS", 5, 1..=3600)
                .map(Duration::from_secs)?,
            statement_timeout: millis("DATABASE_STATEMENT_TIMEOUT_MS", 5000)?,
            lock_timeout: millis("DATABASE_LOCK_TIMEOUT_MS", 2000)?,
            startup_wait: bounded(get, "DATABASE_STARTUP_WAIT_SECS", 30, 0..=3600)
                .map(Duration::from_secs)?,
        })
    }
}

impl MailConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let public_base_url = get("PUBLIC_BASE_URL").map_or_else(
            || "http://127.0.0.1:3000".to_string(),
            |url| url.trim().to_string(),
        );
        if !public_base_url.starts_with("http://") && !public_base_url.starts_with("https://") {
            return Err(ConfigError(format!(
                "PUBLIC_BASE_URL must be an http:// or https:// URL, not {public_base_url:?}"
            )));
        }
        let smtp_url = get("SMTP_URL").map(|url| url.trim().to_string());
        if let Some(url) = &smtp_url {
            if !url.starts_with("smtp://") && !url.starts_with("smtps://") {
                return Err(ConfigError(
                    "SMTP_URL must be an smtp:// or smtps:// URL".into(),
                ));
            }
            // lettre reads it when the server starts; refuse now what it would refuse then. The
            // message never repeats the URL: it may carry a password.
            crate::mail::transport::smtp_builder(url)
                .map_err(|why| ConfigError(format!("SMTP_URL is not usable: {why}")))?;
        }
        let from = get("MAIL_FROM").map_or_else(
            || "newsapi <no-reply@localhost>".to_string(),
            |from| from.trim().to_string(),
        );
        if let Err(err) = from.parse::<lettre::message::Mailbox>() {
            return Err(ConfigError(format!(
                "MAIL_FROM must be an address, optionally with a name (`newsapi <no-reply@example.com>`), not {from:?}: {err}"
            )));
        }
        Ok(Self {
            smtp_url: smtp_url.map(SecretString::from),
            from,
            outbox_dir: get("MAIL_OUTBOX_DIR")
                .map_or_else(|| PathBuf::from("./mail"), PathBuf::from),
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            retry_max: bounded(get, "MAIL_RETRY_MAX_SECS", 30, 1..=86_400)
                .map(Duration::from_secs)?,
        })
    }

    /// A link for a mail: `PUBLIC_BASE_URL` + `path` + `?token=<token>` (the token is URL-safe
    /// base64, so it needs no escaping).
    #[must_use]
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.public_base_url)
    }
}

/// A per-window limit of at least 1.
fn limit(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<i32, ConfigError> {
    bounded(get, name, default, 1..=1_000_000).map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

impl ConnectionConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let max_per_ip = parse(get, "MAX_CONNECTIONS_PER_IP", 256)?;
        if max_per_ip == 0 {
            return Err(ConfigError(
                "MAX_CONNECTIONS_PER_IP must be at least 1".into(),
            ));
        }
        let shutdown_grace = bounded(get, "SHUTDOWN_GRACE_SECS", 30, 0..=3600)?;
        let shutdown_idle_linger =
            bounded(get, "SHUTDOWN_IDLE_LINGER_SECS", 0, 0..=shutdown_grace)?;
        let (shutdown_grace, shutdown_idle_linger) = (
            Duration::from_secs(shutdown_grace),
            Duration::from_secs(shutdown_idle_linger),
        );
        Ok(Self {
            header_timeout: positive_secs(get, "HTTP_HEADER_TIMEOUT_SECS", 10)?,
            body_timeout: positive_secs(get, "HTTP_BODY_TIMEOUT_SECS", 30)?,
            idle_timeout: positive_secs(get, "HTTP_IDLE_TIMEOUT_SECS", 60)?,
            max_per_ip,
            request_timeout: bounded(get, "REQUEST_TIMEOUT_SECS", 30, 1..=3600)
                .map(Duration::from_secs)?,
            shutdown_grace,
            shutdown_idle_linger,
        })
    }
}

fn positive_secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match parse(get, name, default)? {
        0 => Err(ConfigError(format!("{name} must be at least 1"))),
        secs if secs > MAX_SECS => Err(ConfigError(format!(
            "{name} must be at most {MAX_SECS} (ten years); it is added to the current time"
        ))),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// The longest duration a `*_SECS` setting may name: a session, token or window of more than ten
/// years means a typo, and an instant that far out could overflow the arithmetic on it.
const MAX_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// A whole number setting within `range`, or a line naming the variable and the range.
fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = parse(get, name, default)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!(
            "{name} must be between {} and {}, not {value}",
            range.start(),
            range.end()
        )))
    }
}

fn queue_bound(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match parse(get, name, default)? {
        0 => Err(ConfigError(format!("{name} must be at least 1"))),
        n => Ok(n),
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} has an invalid value {raw:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        })
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://postgres@127.0.0.1/newsapi");
    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults_apply_when_only_the_required_values_are_set() {
        let config = config_with(&[URL, SECRET]).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.jwt.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.jwt.issuer, "newsapi");
    }

    #[test]
    fn a_multi_host_database_url_for_failover_is_accepted_as_given() {
        let url =
            "postgres://app@127.0.0.1:6001,127.0.0.1:6002/newsapi?target_session_attrs=read-write";
        let config = config_with(&[("DATABASE_URL", url), SECRET]).unwrap();
        assert_eq!(config.database_url(), url);
    }

    #[test]
    fn a_missing_secret_is_refused_with_its_name() {
        let err = config_with(&[URL]).unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET is not set"), "{err}");
    }

    #[test]
    fn a_short_secret_is_refused() {
        let err = config_with(&[URL, ("JWT_SECRET", "short")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn a_long_but_repetitive_secret_is_refused() {
        let err = config_with(&[URL, ("JWT_SECRET", &"ab".repeat(32))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("too weak"), "{err}");
    }

    #[test]
    fn a_bad_number_names_the_variable() {
        let err = config_with(&[URL, SECRET, ("BCRYPT_COST", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("BCRYPT_COST"), "{err}");
    }

    #[test]
    fn a_zero_lifetime_is_refused_with_its_name() {
        for name in [
            "ACCESS_TOKEN_TTL_SECS",
            "REFRESH_TOKEN_TTL_SECS",
            "SESSION_MAX_LIFETIME_SECS",
            "SIGNIN_WINDOW_SECS",
            "SIGNUP_WINDOW_SECS",
        ] {
            let err = config_with(&[URL, SECRET, (name, "0")])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name} must be at least 1")), "{err}");
        }
    }

    #[test]
    fn a_duration_beyond_ten_years_is_refused_with_its_name() {
        for name in [
            "ACCESS_TOKEN_TTL_SECS",
            "REFRESH_TOKEN_TTL_SECS",
            "SESSION_MAX_LIFETIME_SECS",
            "SIGNIN_WINDOW_SECS",
            "HTTP_IDLE_TIMEOUT_SECS",
        ] {
            let err = config_with(&[URL, SECRET, (name, "1000000000000000")])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name} must be at most")), "{err}");
            assert!(config_with(&[URL, SECRET, (name, &MAX_SECS.to_string())]).is_ok());
        }
    }

    #[test]
    fn connection_settings_default_and_refuse_zero() {
        let config = config_with(&[URL, SECRET]).unwrap().connections;
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.body_timeout, Duration::from_secs(30));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_per_ip, 256);
        for name in [
            "HTTP_HEADER_TIMEOUT_SECS",
            "HTTP_BODY_TIMEOUT_SECS",
            "HTTP_IDLE_TIMEOUT_SECS",
            "MAX_CONNECTIONS_PER_IP",
        ] {
            let err = config_with(&[URL, SECRET, (name, "0")])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name} must be at least 1")), "{err}");
        }
    }

    /// The names `from_lookup` asks for, in order.
    #[test]
    fn settings_out_of_their_range_are_refused_with_their_name_and_range() {
        for (name, bad) in [
            ("DATABASE_POOL_TIMEOUT_MS", "0"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "3600001"),
            ("DATABASE_LOCK_TIMEOUT_MS", "0"),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "0"),
            ("DATABASE_STARTUP_WAIT_SECS", "3601"),
            ("REQUEST_TIMEOUT_SECS", "0"),
            ("SHUTDOWN_GRACE_SECS", "1000000000000000"),
            ("REFRESH_REUSE_INTERVAL_SECS", "3601"),
            ("DATABASE_POOL_SIZE", "0"),
            ("COUNT_EXACT_LIMIT", "0"),
        ] {
            let err = config_with(&[URL, SECRET, (name, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={bad}: {err}");
        }
        for (name, bad) in [("LOG_FORMAT", "yaml"), ("METRICS_ADDR", "localhost")] {
            let err = config_with(&[URL, SECRET, (name, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn the_pool_timeout_is_read_in_milliseconds_and_the_old_seconds_setting_still_works() {
        let wait = |vars: &[(&str, &str)]| {
            let mut all = vec![URL, SECRET];
            all.extend_from_slice(vars);
            config_with(&all).unwrap().database.pool_timeout
        };
        assert_eq!(wait(&[]), Duration::from_millis(1000));
        assert_eq!(
            wait(&[("DATABASE_POOL_TIMEOUT_MS", "250")]),
            Duration::from_millis(250)
        );
        assert_eq!(
            wait(&[("DATABASE_POOL_TIMEOUT_SECS", "3")]),
            Duration::from_secs(3)
        );
        assert_eq!(
            wait(&[
                ("DATABASE_POOL_TIMEOUT_SECS", "3"),
                ("DATABASE_POOL_TIMEOUT_MS", "40")
            ]),
            Duration::from_millis(40)
        );
    }

    #[test]
    fn zero_turns_off_the_refresh_grace_and_the_shutdown_grace() {
        let config = config_with(&[
            URL,
            SECRET,
            ("REFRESH_REUSE_INTERVAL_SECS", "0"),
            ("SHUTDOWN_GRACE_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(config.sessions.reuse_interval, Duration::ZERO);
        assert_eq!(config.connections.shutdown_grace, Duration::ZERO);
    }

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct KeyDir(PathBuf);

    impl KeyDir {
        fn new() -> Self {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap();
            let dir = std::env::temp_dir().join(format!(
                "newsapi-keys-{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        }

        /// Writes the PKCS#8 PEM private key and the SPKI PEM public key of `seed`.
        fn key_pair(&self, seed: u8) -> (String, String) {
            use ed25519_dalek::pkcs8::{
                EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding,
            };
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
            let public = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            (
                self.write(&format!("{seed}.key"), &private),
                self.write(&format!("{seed}.pub"), &public),
            )
        }
    }

    impl Drop for KeyDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn eddsa_reads_the_private_key_and_the_previous_public_keys() {
        let dir = KeyDir::new();
        let (private, _) = dir.key_pair(1);
        let (_, old_a) = dir.key_pair(2);
        let (_, old_b) = dir.key_pair(3);
        let config = config_with(&[
            URL,
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_PRIVATE_KEY_FILE", &private),
            (
                "JWT_PREVIOUS_PUBLIC_KEY_FILES",
                &format!(" {old_a} , {old_b},"),
            ),
        ])
        .unwrap();
        let SigningKeys::EdDsa { current, previous } = &config.jwt.signing else {
            panic!("not EdDSA: {:?}", config.jwt.signing);
        };
        assert_eq!(current.to_bytes(), [1; 32]);
        let seeds: Vec<_> = [2u8, 3]
            .iter()
            .map(|s| ed25519_dalek::SigningKey::from_bytes(&[*s; 32]).verifying_key())
            .collect();
        assert_eq!(previous, &seeds);
        let debug = format!("{config:?}");
        assert!(!debug.contains(&format!("{:?}", [1u8; 32])), "{debug}");
    }

    #[test]
    fn eddsa_does_not_need_jwt_secret_and_hs256_is_the_default() {
        let dir = KeyDir::new();
        let (private, _) = dir.key_pair(1);
        assert!(
            config_with(&[
                URL,
                ("JWT_ALGORITHM", "EdDSA"),
                ("JWT_PRIVATE_KEY_FILE", &private)
            ])
            .is_ok()
        );
        let config = config_with(&[URL, SECRET]).unwrap();
        assert!(matches!(config.jwt.signing, SigningKeys::Hs256(_)));
    }

    #[test]
    fn a_bad_key_setting_is_refused_in_one_line_naming_its_variable() {
        let dir = KeyDir::new();
        let (private, public) = dir.key_pair(1);
        let garbage = dir.write(
            "garbage.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let missing = dir.0.join("missing.pem").to_string_lossy().into_owned();
        let eddsa = ("JWT_ALGORITHM", "EdDSA");
        for (vars, name) in [
            (vec![eddsa], "JWT_PRIVATE_KEY_FILE"),
            (
                vec![eddsa, ("JWT_PRIVATE_KEY_FILE", missing.as_str())],
                "JWT_PRIVATE_KEY_FILE",
            ),
            (
                vec![eddsa, ("JWT_PRIVATE_KEY_FILE", garbage.as_str())],
                "JWT_PRIVATE_KEY_FILE",
            ),
            // A public key where the private one belongs, and the other way round.
            (
                vec![eddsa, ("JWT_PRIVATE_KEY_FILE", public.as_str())],
                "JWT_PRIVATE_KEY_FILE",
            ),
            (
                vec![
                    eddsa,
                    ("JWT_PRIVATE_KEY_FILE", private.as_str()),
                    ("JWT_PREVIOUS_PUBLIC_KEY_FILES", private.as_str()),
                ],
                "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            ),
            (
                vec![
                    eddsa,
                    ("JWT_PRIVATE_KEY_FILE", private.as_str()),
                    ("JWT_PREVIOUS_PUBLIC_KEY_FILES", missing.as_str()),
                ],
                "JWT_PREVIOUS_PUBLIC_KEY_FILES",
            ),
            (
                vec![SECRET, ("JWT_PRIVATE_KEY_FILE", private.as_str())],
                "JWT_PRIVATE_KEY_FILE",
            ),
            (vec![SECRET, ("JWT_ALGORITHM", "RS256")], "JWT_ALGORITHM"),
            (vec![("JWT_ALGORITHM", "HS256")], "JWT_SECRET"),
        ] {
            let mut all = vec![URL];
            all.extend(vars.iter().copied());
            let err = config_with(&all).unwrap_err().to_string();
            assert!(err.contains(name), "{vars:?}: {err}");
            assert!(!err.contains('\n'), "{vars:?}: {err}");
            assert!(!err.contains("BEGIN"), "{vars:?}: {err}");
        }
    }

    fn names_read() -> Vec<String> {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_string());
            [URL, SECRET]
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        })
        .unwrap();
        asked.into_inner()
    }

    #[test]
    fn every_variable_is_read_exactly_once() {
        let asked = names_read();
        let twice: Vec<&String> = asked
            .iter()
            .enumerate()
            .filter(|(i, name)| asked[..*i].contains(name))
            .map(|(_, name)| name)
            .collect();
        assert!(twice.is_empty(), "read more than once: {twice:?}");
    }

    const ENV_EXAMPLE: &str = include_str!("../.env.example");

    #[test]
    fn env_example_and_readme_list_every_variable() {
        let readme = include_str!("../README.md");
        for name in names_read().iter().map(String::as_str).chain(["RUST_LOG"]) {
            assert!(
                ENV_EXAMPLE.contains(&format!("{name}=")),
                ".env.example lacks {name}"
            );
            assert!(
                readme.contains(&format!("| `{name}`")) || readme.contains(&format!("/ `{name}`")),
                "README's configuration table lacks {name}"
            );
        }
    }

    #[test]
    fn env_example_sets_the_defaults() {
        let mut vars: Vec<(String, String)> = dotenvy::from_read_iter(ENV_EXAMPLE.as_bytes())
            .collect::<Result<_, _>>()
            .expect(".env.example parses");
        for (name, value) in &mut vars {
            if name == "JWT_SECRET" {
                *value = SECRET.1.to_string();
            }
        }
        let example = Config::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .expect(".env.example, with a JWT_SECRET, is a working configuration");
        let defaults = config_with(&[URL, SECRET]).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn the_hash_queue_defaults_to_64_in_all_and_4_per_address_and_refuses_zero() {
        let config = config_with(&[URL, SECRET]).unwrap();
        assert_eq!(config.hash_queue.max, 64);
        assert_eq!(config.hash_queue.max_per_ip, 4);
        for name in ["HASH_QUEUE_MAX", "HASH_QUEUE_MAX_PER_IP"] {
            let err = config_with(&[URL, SECRET, (name, "0")])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{name} must be at least 1")), "{err}");
        }
    }

    #[test]
    fn a_garbage_smtp_url_or_mail_from_is_refused_with_its_name_and_no_password() {
        for (name, bad) in [
            ("SMTP_URL", "mail.example.com:25"),
            (
                "SMTP_URL",
                "smtp://user:s3cr3t@mail.example.com?tls=sometimes",
            ),
            ("SMTP_URL", "smtp://user:s3cr3t@"),
            ("MAIL_FROM", "not an address"),
            ("MAIL_FROM", "newsapi <no-reply@>"),
        ] {
            let err = config_with(&[URL, SECRET, (name, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={bad}: {err}");
            assert!(!err.contains("s3cr3t"), "{name}={bad}: {err}");
        }
        for (name, good) in [
            (
                "SMTP_URL",
                "smtp://user:pass@mail.example.com:587?tls=starttls",
            ),
            ("SMTP_URL", "smtps://user:pass@mail.example.com"),
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("MAIL_FROM", "News <news@example.com>"),
            ("MAIL_FROM", "news@example.com"),
        ] {
            assert!(
                config_with(&[URL, SECRET, (name, good)]).is_ok(),
                "{name}={good}"
            );
        }
    }

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let config = config_with(&[URL, SECRET]).unwrap();
        assert!(!format!("{config:?}").contains(SECRET.1));
    }
}
