//! Opening one connection: with a deadline, TCP keep-alives, and (for the pool) PostgreSQL's
//! `statement_timeout` and `lock_timeout` sent as startup options, so they cost no round trip of
//! their own; and waiting at start-up for a database that is not there yet.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use super::DbSetupError;
use crate::config::DatabaseConfig;

/// Keep-alive probes start after this long without traffic: a peer that vanished (a host that
/// died, a dropped NAT entry) is noticed on an idle pooled connection instead of by the next request.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Between two unanswered probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the kernel gives the socket up: about 45 s in all.
const KEEPALIVE_RETRIES: u32 = 3;

/// How one connection is opened.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// The whole of opening one connection: TCP, start-up, authentication and the session setup.
    pub timeout: Duration,
    /// `statement_timeout` and `lock_timeout` for the session; `None` for the migrations, whose
    /// statements may take as long as they need.
    pub limits: Option<(Duration, Duration)>,
}

impl ConnectOptions {
    /// A pooled connection: every statement limited.
    #[must_use]
    pub fn pooled(config: &DatabaseConfig) -> Self {
        Self {
            timeout: config.connect_timeout,
            limits: Some((config.statement_timeout, config.lock_timeout)),
        }
    }

    /// The migrations' connection: the connect deadline, no statement limit.
    #[must_use]
    pub fn unlimited(config: &DatabaseConfig) -> Self {
        Self {
            timeout: config.connect_timeout,
            limits: None,
        }
    }
}

/// Opens one connection to `url`.
///
/// # Errors
/// The URL does not parse, the database refused or did not answer within the deadline.
pub async fn connect(
    url: &str,
    options: ConnectOptions,
) -> Result<AsyncPgConnection, ConnectionError> {
    open(url, options).await.map_err(|refused| refused.error)
}

/// Why a connection could not be opened, and whether waiting could change it.
struct Refused {
    error: ConnectionError,
    /// The database answered and refused us: a wrong password, no such role or database, a URL
    /// that does not parse.
    permanent: bool,
}

async fn open(url: &str, options: ConnectOptions) -> Result<AsyncPgConnection, Refused> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| Refused {
        error: ConnectionError::InvalidConnectionUrl(describe(&e)),
        permanent: true,
    })?;
    config
        .connect_timeout(options.timeout)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    if let Some((statement, lock)) = options.limits {
        let limits = format!(
            "-c statement_timeout={} -c lock_timeout={}",
            statement.as_millis(),
            lock.as_millis()
        );
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {limits}"),
            _ => limits,
        };
        config.options(options);
    }
    // `connect_timeout` covers the TCP connect only; the deadline covers the start-up and the
    // session setup diesel-async sends too, which a silent server would never answer.
    let opening = async {
        let (client, connection) =
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Refused {
                    permanent: e.code().is_some_and(|code| PERMANENT.contains(code)),
                    error: ConnectionError::BadConnection(describe(&e)),
                })?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|error| Refused {
                error,
                permanent: false,
            })
    };
    tokio::time::timeout(options.timeout, opening)
        .await
        .unwrap_or_else(|_| {
            Err(Refused {
                error: ConnectionError::BadConnection(format!(
                    "no answer within {} s (DATABASE_CONNECT_TIMEOUT_SECS)",
                    options.timeout.as_secs_f64()
                )),
                permanent: false,
            })
        })
}

/// Refusals that waiting does not change: a wrong password, a role that may not log in or does
/// not exist, no such database.
const PERMANENT: [SqlState; 3] = [
    SqlState::INVALID_PASSWORD,
    SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    SqlState::INVALID_CATALOG_NAME,
];

/// The driver's message with its cause: tokio-postgres says only "db error" or "error connecting
/// to server" and keeps the reason (the server's message, "Connection refused") in its source.
/// Neither carries the password.
fn describe(err: &tokio_postgres::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The first wait between two attempts at start-up; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Connects at start-up, retrying with backoff for up to `config.startup_wait` while the database
/// cannot be reached (refused, no answer, starting up), and logging each failed attempt with the
/// driver's reason. A database that answers but refuses us (a wrong password, no such database or
/// role) is not retried: waiting would not change it.
///
/// # Errors
/// The last failure, naming where (without credentials) and why.
pub async fn wait_for_database(
    url: &str,
    options: ConnectOptions,
    startup_wait: Duration,
) -> Result<AsyncPgConnection, DbSetupError> {
    let deadline = Instant::now() + startup_wait;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1u32.. {
        // An attempt ends by the deadline too (the first one, when there is no wait, has its own).
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt_options = ConnectOptions {
            timeout: if left.is_zero() {
                options.timeout
            } else {
                options.timeout.min(left)
            },
            ..options
        };
        let Refused {
            error: err,
            permanent,
        } = match open(url, attempt_options).await {
            Ok(conn) => {
                if attempt > 1 {
                    tracing::info!(attempt, "database reachable");
                }
                return Ok(conn);
            }
            Err(refused) => refused,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if permanent || left.is_zero() {
            return Err(DbSetupError::connect(
                url,
                &format!("{err} (after {attempt} attempts)"),
            ));
        }
        let pause = backoff.min(left);
        tracing::warn!(
            attempt,
            error = %err,
            retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "database not reachable yet"
        );
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    unreachable!("the attempts end with a connection or an error")
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::{Host, TargetSessionAttrs};

    use super::*;

    #[test]
    fn a_multi_host_url_names_every_node_and_asks_for_the_writable_one() {
        // The URL of a failover pair (docs/deploy.md): the driver tries the hosts in turn and keeps
        // the first that accepts writes.
        let config: tokio_postgres::Config =
            "postgres://app@127.0.0.1:6001,127.0.0.1:6002/newsapi?target_session_attrs=read-write"
                .parse()
                .unwrap();
        assert_eq!(
            config.get_hosts(),
            [Host::Tcp("127.0.0.1".into()), Host::Tcp("127.0.0.1".into())]
        );
        assert_eq!(config.get_ports(), [6001, 6002]);
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_dbname(), Some("newsapi"));
    }

    #[test]
    fn a_multi_host_url_names_no_password_in_a_connection_error() {
        let err = DbSetupError::connect(
            "postgres://app:s3cret@127.0.0.1:6001,127.0.0.1:6002/newsapi",
            &"refused",
        );
        let text = err.to_string();
        assert!(text.contains("127.0.0.1:6001,127.0.0.1:6002"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
