//! The pool every request borrows its connection from, the client-side deadline on every call a
//! request makes with it, and the readiness probe.

use std::{sync::Arc, time::Duration};

use deadpool::managed::{TimeoutType, Timeouts};
use diesel::{
    QueryResult,
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager as _,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
        deadpool::{Object, Pool, PoolError},
    },
};
use tokio::time::Instant;

use super::{
    DbSetupError,
    connect::{ConnectOptions, connect},
    failure,
};
use crate::config::DatabaseConfig;

/// A connection borrowed from the pool.
pub type DbConn = Object<AsyncPgConnection>;

/// How much longer than `statement_timeout` a call may go without an answer before the client
/// gives up on the connection: the server cancels a statement itself at `statement_timeout`, so an
/// answer later than this means the server or the network between is gone (a silent partition).
const CALL_MARGIN: Duration = Duration::from_secs(1);

/// `/readyz` answers within this, whatever the database does.
const READY_WITHIN: Duration = Duration::from_millis(900);
/// How long the probe waits for a pooled connection before it concludes that the pool is merely
/// busy and probes on a connection of its own.
const READY_POOL_WAIT: Duration = Duration::from_millis(200);

/// The pool, with the deadline of every call made on its connections.
#[derive(Clone)]
pub struct DbPool {
    inner: Pool<AsyncPgConnection>,
    call_timeout: Duration,
    /// How the readiness probe opens a connection of its own when the pool is exhausted.
    probe: Arc<(String, ConnectOptions)>,
}

/// Builds the pool (connections open lazily, each with [`ConnectOptions::pooled`]) with a bounded
/// wait for a free connection.
///
/// A connection goes back into use without the default test query (`SELECT 1` before every
/// checkout; decision log D2 in BENCHMARKS.md). A connection whose socket has closed, whose
/// transaction broke, or whose call missed its deadline ([`DbPool::run`]) is dropped at checkout
/// (diesel-async's `is_broken` looks at all three); one that dies while idle fails its next query,
/// which answers 503.
///
/// # Errors
/// The pool settings are unusable.
pub fn pool(url: &str, config: &DatabaseConfig) -> Result<DbPool, DbSetupError> {
    let options = ConnectOptions::pooled(config);
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |url| Box::pin(connect(url, options)));
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, manager_config);
    let inner = Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.pool_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))?;
    Ok(DbPool {
        inner,
        call_timeout: config.statement_timeout + CALL_MARGIN,
        probe: Arc::new((url.to_string(), options)),
    })
}

/// A call on a connection: an async closure whose future is `Send`, as a handler's must be (the
/// shape of diesel-async's `transaction` callback).
pub trait Call<C, R>: AsyncFnOnce(C) -> R + FnOnce(C) -> <Self as Call<C, R>>::Fut {
    /// The closure's future.
    type Fut: Future<Output = R>;
}

impl<F, C, Fut, R> Call<C, R> for F
where
    F: AsyncFnOnce(C) -> R + FnOnce(C) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl DbPool {
    /// The pool's size, idle connections and waiters, for the metrics.
    #[must_use]
    pub fn status(&self) -> deadpool::Status {
        self.inner.status()
    }

    /// A connection, after waiting at most `DATABASE_POOL_TIMEOUT_MS` for a free one (and
    /// `DATABASE_CONNECT_TIMEOUT_SECS` for a new one).
    ///
    /// # Errors
    /// None free in time, or none could be opened.
    pub async fn get(&self) -> Result<DbConn, PoolError> {
        self.inner.get().await
    }

    /// Runs `call` on `conn`, giving up after `statement_timeout` and a margin: a database that has
    /// not answered by then is not going to (the server cancels a statement at
    /// `statement_timeout`), so the call fails as a closed connection and the connection is
    /// marked broken, never to be lent again. A transaction cut off this way is rolled back by the
    /// server when the connection closes.
    ///
    /// # Errors
    /// The call's own error, or no answer in time. A call refused because the connection is to a
    /// standby (a demoted primary, [`failure::on_standby`]) discards the connection too.
    pub async fn run<T, F>(&self, conn: &mut AsyncPgConnection, call: F) -> QueryResult<T>
    where
        for<'c> F: AsyncFnOnce(&'c mut AsyncPgConnection) -> QueryResult<T>
            + Call<&'c mut AsyncPgConnection, QueryResult<T>, Fut: Send>
            + Send,
        T: Send,
    {
        let outcome = tokio::time::timeout(self.call_timeout, call(&mut *conn)).await;
        if let Ok(Err(err)) = &outcome {
            if failure::on_standby(err) {
                discard(conn);
            }
        }
        outcome.unwrap_or_else(|_| {
            discard(conn);
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new(format!(
                    "no answer from the database within {} ms; the connection is discarded",
                    self.call_timeout.as_millis()
                )),
            ))
        })
    }

    /// Whether the database can be reached, decided within [`READY_WITHIN`]: a trivial query on a
    /// pooled connection, or, when every pooled connection is in use (busy is not down), on a
    /// connection of the probe's own. A database that answers "too many clients" is reachable.
    ///
    /// # Errors
    /// Why the database cannot be reached.
    pub async fn readiness(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let timeouts = Timeouts {
            wait: Some(READY_POOL_WAIT),
            create: Some(READY_WITHIN),
            recycle: Some(READY_WITHIN),
        };
        let got = tokio::time::timeout_at(deadline, self.inner.timeout_get(&timeouts)).await;
        let mut conn = match got {
            Ok(Ok(conn)) => conn,
            Ok(Err(PoolError::Timeout(TimeoutType::Wait))) => return self.probe(deadline).await,
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err("no connection within the probe's time".into()),
        };
        match tokio::time::timeout_at(deadline, ping(&mut conn)).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => {
                discard(&mut conn);
                Err("no answer within the probe's time".into())
            }
        }
    }

    /// Readiness on a connection of its own, for when the pool is exhausted.
    async fn probe(&self, deadline: Instant) -> Result<(), String> {
        let (url, options) = &*self.probe;
        let options = ConnectOptions {
            timeout: deadline.saturating_duration_since(Instant::now()),
            ..*options
        };
        let probing = async {
            match connect(url, options).await {
                Ok(mut conn) => ping(&mut conn).await.map_err(|e| e.to_string()),
                Err(err) if err.to_string().contains("too many clients already") => Ok(()),
                Err(err) => Err(err.to_string()),
            }
        };
        tokio::time::timeout_at(deadline, probing)
            .await
            .unwrap_or_else(|_| Err("no answer within the probe's time".into()))
    }
}

async fn ping(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).await.map(drop)
}

/// Marks `conn` broken, so the pool drops it at its next checkout instead of lending it: it may
/// still owe the answer to a call given up on.
fn discard(conn: &mut AsyncPgConnection) {
    <AsyncPgConnection as AsyncConnection>::TransactionManager::transaction_manager_status_mut(
        conn,
    )
    .set_in_error();
}
