//! `Db`: a handler's database connection, and the only way a handler gets one.
//!
//! Authentication ([`CurrentUser`](super::CurrentUser)) needs a connection for the session check;
//! it leaves that connection in the request's [`ConnectionSlot`], and `Db` lends it on, so that an
//! authenticated request checks out one connection, not two (decision log D2 in BENCHMARKS.md).
//! Requests that did not authenticate, or whose authentication gave its connection back (a body was
//! still to be read, and a slow upload must not hold one), check out a fresh connection when the
//! handler first asks.
//!
//! A `Db` dropped because the connection layer cancelled its request (the request ran too long, or
//! the server is shutting down) may be dropped in the middle of a statement, which PostgreSQL would
//! run to its end — and commit. So it cancels that statement and discards the connection
//! ([`crate::cancel`]): a cancelled request changes nothing.

use std::sync::{Arc, Mutex};

use diesel_async::pooled_connection::deadpool::Object;
use poem::{Endpoint, EndpointExt, FromRequest, Request, RequestBody};

use super::SharedState;
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use crate::{
    cancel::Cancellation,
    db::{Call, DbConn, DbPool},
    error::ApiError,
};

/// Where authentication leaves its connection for the handler; one per request.
#[derive(Clone, Default)]
pub struct ConnectionSlot(Arc<Mutex<Option<DbConn>>>);

impl ConnectionSlot {
    /// Leaves `conn` for the handler.
    pub(super) fn put(req: &Request, conn: DbConn) {
        if let Some(slot) = req.extensions().get::<Self>() {
            *slot
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
        }
    }

    fn take(&self) -> Option<DbConn> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Gives every request an empty [`ConnectionSlot`].
pub fn with_connection_slot(endpoint: impl Endpoint) -> impl Endpoint {
    endpoint.before(|mut req| async move {
        req.extensions_mut().insert(ConnectionSlot::default());
        Ok(req)
    })
}

/// The handler's database connection: the one authentication used, or a new one, checked out on
/// first use.
pub struct Db {
    slot: ConnectionSlot,
    pool: DbPool,
    conn: Option<DbConn>,
    /// The request's, when the connection layer can cancel it.
    cancellation: Option<Cancellation>,
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(cancellation) = self.cancellation.as_ref().filter(|c| c.is_cancelled()) else {
            return;
        };
        let Some(conn) = self.conn.take() else { return };
        // The connection may be in the middle of a statement: cancel it (a no-op if none runs) and
        // close the connection rather than give it back, so no later statement can be the one
        // cancelled, and an open transaction is rolled back when the socket closes.
        let token = conn.cancel_token();
        let conn = Object::take(conn);
        cancellation.leave(async move {
            if let Err(err) = token.cancel_query(tokio_postgres::NoTls).await {
                tracing::warn!(error = %err, "cancelling the statement of a cancelled request failed");
            }
            drop(conn);
        });
    }
}

impl Db {
    /// Runs `call` on the request's connection (checked out on first use) under the client-side deadline of every
    /// database call ([`DbPool::run`]): a database that stops answering ends the request with a
    /// 503, and the connection is never lent again.
    ///
    /// # Errors
    /// No connection (503), the call's own failure, or no answer in time (503).
    pub async fn run<T, F>(&mut self, call: F) -> Result<T, ApiError>
    where
        for<'c> F: AsyncFnOnce(&'c mut AsyncPgConnection) -> QueryResult<T>
            + Call<&'c mut AsyncPgConnection, QueryResult<T>, Fut: Send>
            + Send,
        T: Send,
    {
        if self.conn.is_none() {
            self.conn = Some(match self.slot.take() {
                Some(conn) => conn,
                None => self.pool.get().await?,
            });
        }
        let conn = self.conn.as_mut().expect("set just above");
        Ok(self.pool.run(conn, call).await?)
    }

    /// The pool itself, for work that must hold no connection across a slow step (sign-in holds
    /// none while bcrypt runs).
    #[must_use]
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }
}

impl<'a> FromRequest<'a> for Db {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req
            .data::<SharedState>()
            .ok_or_else(|| ApiError::internal("application state missing"))?;
        Ok(Self {
            slot: req
                .extensions()
                .get::<ConnectionSlot>()
                .cloned()
                .unwrap_or_default(),
            pool: state.pool.clone(),
            conn: None,
            cancellation: req.extensions().get::<Cancellation>().cloned(),
        })
    }
}

/// The connections of a read that a replica may serve (`GET /news`, `/news/count`,
/// `/news/{id}`): [`ReadDb::run`] runs on `DATABASE_READ_URL`'s pool when one is configured, and
/// on the primary's (as [`Db`]) when not; [`ReadDb::primary`] always runs on the primary, for what
/// must not lag (the session check: a sign-out takes effect at once, whatever the replica's lag).
///
/// With a replica, the connection authentication left in the request's slot goes back to the
/// primary's pool at once: the read does not need it.
pub struct ReadDb {
    /// On the replica; `None` without one.
    replica: Option<Db>,
    primary: Db,
}

impl ReadDb {
    /// Whether [`ReadDb::run`] reads from a replica.
    #[must_use]
    pub fn on_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Runs `call` on the replica when one is configured, else on the primary (as [`Db::run`]).
    /// A replica that cannot be reached answers 503 with `Retry-After`, like the primary.
    ///
    /// # Errors
    /// As [`Db::run`].
    pub async fn run<T, F>(&mut self, call: F) -> Result<T, ApiError>
    where
        for<'c> F: AsyncFnOnce(&'c mut AsyncPgConnection) -> QueryResult<T>
            + Call<&'c mut AsyncPgConnection, QueryResult<T>, Fut: Send>
            + Send,
        T: Send,
    {
        match &mut self.replica {
            Some(replica) => replica.run(call).await,
            None => self.primary.run(call).await,
        }
    }

    /// Runs `call` on the primary, whatever the configuration.
    ///
    /// # Errors
    /// As [`Db::run`].
    pub async fn primary<T, F>(&mut self, call: F) -> Result<T, ApiError>
    where
        for<'c> F: AsyncFnOnce(&'c mut AsyncPgConnection) -> QueryResult<T>
            + Call<&'c mut AsyncPgConnection, QueryResult<T>, Fut: Send>
            + Send,
        T: Send,
    {
        self.primary.run(call).await
    }
}

impl<'a> FromRequest<'a> for ReadDb {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = req
            .data::<SharedState>()
            .ok_or_else(|| ApiError::internal("application state missing"))?;
        let primary = Db::from_request(req, body).await?;
        let replica = state.read_pool.as_ref().map(|pool| {
            // Back to the primary's pool: the session was checked, the read goes elsewhere.
            drop(primary.slot.take());
            Db {
                slot: ConnectionSlot::default(),
                pool: pool.clone(),
                conn: None,
                cancellation: primary.cancellation.clone(),
            }
        });
        Ok(Self { replica, primary })
    }
}
