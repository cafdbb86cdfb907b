//! PostgreSQL: the connection pool, embedded migrations, the schema, rows, and one module of async
//! queries per table. Queries return diesel's `QueryResult`; deciding what an outcome means for a
//! request is the API's job.

pub mod connect;
pub mod emails;
pub mod failure;
pub mod hash_slots;
pub mod idempotency;
pub mod mail;
pub mod news;
pub mod passwords;
mod pool;
pub mod replica;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use pool::{Call, DbConn, DbPool, pool};

use crate::config::DatabaseConfig;

/// The migrations under `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Why the database could not be reached or prepared; one line each, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The pool could not be built from the settings.
    #[error("the database pool could not be built: {0}")]
    Pool(String),
    /// Nothing answered, or it refused us.
    #[error("cannot connect to the database {where_}: {why}")]
    Connect {
        /// Host, port and database, without credentials.
        where_: String,
        /// What the driver said.
        why: String,
    },
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migrate(String),
}

impl DbSetupError {
    /// A connection failure, naming where without the password.
    pub fn connect(url: &str, err: &dyn std::fmt::Display) -> Self {
        let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let where_ = without_scheme
            .rsplit_once('@')
            .map_or(without_scheme, |(_, host)| host)
            .to_string();
        Self::Connect {
            where_,
            why: err.to_string(),
        }
    }
}

/// Waits for the database (up to `DATABASE_STARTUP_WAIT_SECS`, see
/// [`connect::wait_for_database`]), then applies every pending migration.
///
/// # Errors
/// The database could not be reached in time or refused us, or a migration fails.
pub async fn prepare(url: &str, config: &DatabaseConfig) -> Result<(), DbSetupError> {
    let options = connect::ConnectOptions::unlimited(config);
    migrate(connect::wait_for_database(url, options, config.startup_wait).await?).await
}

/// Applies every pending migration on `conn` (a connection without a statement limit, see
/// [`connect::ConnectOptions::unlimited`]); then gives accounts made before
/// `users.email_canonical` existed their canonical email (computed in Rust, see
/// [`users::fill_missing_canonical_emails`]).
///
/// # Errors
/// A migration fails.
pub async fn migrate(conn: AsyncPgConnection) -> Result<(), DbSetupError> {
    // The harness blocks in place on the runtime's worker: fine on the multi-threaded runtime,
    // a panic on the current-thread one.
    let mut harness = AsyncMigrationHarness::new(conn);
    harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbSetupError::Migrate(e.to_string()))?;
    let mut conn = harness.into_inner();
    let backfill = users::fill_missing_canonical_emails(&mut conn)
        .await
        .map_err(|e| DbSetupError::Migrate(format!("canonical emails: {e}")))?;
    if backfill != users::CanonicalBackfill::default() {
        tracing::info!(
            filled = backfill.filled,
            collisions = backfill.collisions,
            "canonical emails filled in"
        );
    }
    Ok(())
}
