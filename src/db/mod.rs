//! PostgreSQL: the connection pool, embedded migrations, the schema, rows, and one module of async
//! queries per table. Queries return diesel's `QueryResult`; deciding what an outcome means for a
//! request is the API's job.

pub mod idempotency;
pub mod news;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::time::Duration;

use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
        deadpool::{Object, Pool},
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The pool every request borrows a connection from.
pub type DbPool = Pool<AsyncPgConnection>;
/// A connection borrowed from the pool.
pub type DbConn = Object<AsyncPgConnection>;

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

/// Builds the pool (connections open lazily) with a bounded wait for a free connection.
///
/// A connection goes back into use without the default test query (`SELECT 1` before every
/// checkout; decision log D2 in BENCHMARKS.md). A connection whose
/// socket has closed or whose transaction broke is still dropped at checkout (diesel-async's
/// `is_broken` looks at both); one that dies while idle fails its next query, which answers 503.
///
/// # Errors
/// The pool settings are unusable.
pub fn pool(url: &str, max_size: usize, wait_timeout: Duration) -> Result<DbPool, DbSetupError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(wait_timeout))
        .create_timeout(Some(wait_timeout))
        .recycle_timeout(Some(wait_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))
}

/// Applies every pending migration, on a connection of its own; then gives accounts made before
/// `users.email_canonical` existed their canonical email (computed in Rust, see
/// [`users::fill_missing_canonical_emails`]).
///
/// # Errors
/// The database cannot be reached or a migration fails.
pub async fn migrate(url: &str) -> Result<(), DbSetupError> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbSetupError::connect(url, &e))?;
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

/// Answers whether the database responds to a trivial query.
pub async fn ping(pool: &DbPool) -> bool {
    use diesel_async::RunQueryDsl;
    let Ok(mut conn) = pool.get().await else {
        return false;
    };
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .is_ok()
}
