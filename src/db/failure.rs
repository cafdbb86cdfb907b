//! Which database failures mean "try again": the database is busy (a lock or statement timeout, the
//! pool exhausted) or cannot be reached (refused, reset, closed, silent, or no longer the primary).
//! Everything else a query can fail with is a bug, not an outage.

use deadpool::managed::TimeoutType;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::{PoolError as BackendError, deadpool::PoolError};

/// Why the database could not serve a request that may simply be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The database answers but is saturated: every pooled connection is in use, or a statement
    /// ran into `statement_timeout` or `lock_timeout`. Its transaction was rolled back.
    Busy,
    /// The database cannot be reached: refused, reset, closed, or silent past the deadlines.
    Unreachable,
}

/// PostgreSQL's words for the failures that mean [`Unavailable`], by SQLSTATE. diesel-async keeps
/// only the message of a SQLSTATE it has no kind for, so these are matched by message; they are
/// the server's own (`lc_messages` English, PostgreSQL's default).
const BY_MESSAGE: [(&str, Unavailable); 10] = [
    // 57014 query_canceled, by statement_timeout or by a cancel request
    (
        "canceling statement due to statement timeout",
        Unavailable::Busy,
    ),
    // 40001 on a read replica: its replay needed what the statement held, for longer than
    // `max_standby_streaming_delay` (a retry runs on a newer snapshot)
    (
        "canceling statement due to conflict with recovery",
        Unavailable::Busy,
    ),
    ("canceling statement due to user request", Unavailable::Busy),
    // 55P03 lock_not_available, by lock_timeout
    ("canceling statement due to lock timeout", Unavailable::Busy),
    ("could not obtain lock", Unavailable::Busy),
    // 53300 too_many_connections (also "remaining connection slots are reserved")
    ("too many clients already", Unavailable::Busy),
    ("remaining connection slots are reserved", Unavailable::Busy),
    // 57P01 admin_shutdown, 57P02 crash_shutdown
    ("terminating connection due to", Unavailable::Unreachable),
    // 57P03 cannot_connect_now
    ("the database system is", Unavailable::Unreachable),
    // class 08, connection exception, as the driver words a lost socket
    ("connection closed", Unavailable::Unreachable),
];

/// The kind of a query's failure, when it is an outage rather than a bug.
#[must_use]
pub fn of_query(err: &DieselError) -> Option<Unavailable> {
    match err {
        // The socket closed or broke (reset, refused, timed out): the driver's own errors.
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        // A connection whose transaction was cut off half-way; it is discarded.
        | DieselError::BrokenTransactionManager => Some(Unavailable::Unreachable),
        // 25006 read_only_sql_transaction: the connection is to a standby, a primary demoted under
        // it by a failover; the primary is elsewhere now (see [`on_standby`]).
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
            Some(Unavailable::Unreachable)
        }
        DieselError::DatabaseError(_, info) => BY_MESSAGE
            .iter()
            .find(|(words, _)| info.message().contains(words))
            .map(|(_, kind)| *kind),
        DieselError::RollbackErrorOnCommit { commit_error, .. } => of_query(commit_error),
        _ => None,
    }
}

/// Whether a query failed because its connection is to a read-only node (SQLSTATE 25006): a
/// primary that a failover demoted to a standby while the connection stayed open. Such a connection
/// must not be lent again: a new one, opened with `target_session_attrs=read-write`, finds the new
/// primary among the hosts of `DATABASE_URL`.
#[must_use]
pub fn on_standby(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => true,
        DieselError::RollbackErrorOnCommit { commit_error, .. } => on_standby(commit_error),
        _ => false,
    }
}

/// The kind of a failure to get a pooled connection, when it is an outage rather than a bug.
#[must_use]
pub fn of_pool(err: &PoolError) -> Option<Unavailable> {
    match err {
        PoolError::Timeout(TimeoutType::Wait) => Some(Unavailable::Busy),
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
            Some(Unavailable::Unreachable)
        }
        PoolError::Backend(BackendError::ConnectionError(err)) => {
            Some(if err.to_string().contains("too many clients already") {
                Unavailable::Busy
            } else {
                Unavailable::Unreachable
            })
        }
        PoolError::Backend(BackendError::QueryError(err)) => {
            Some(of_query(err).unwrap_or(Unavailable::Unreachable))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> DieselError {
        DieselError::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new(message.to_string()),
        )
    }

    #[test]
    fn a_read_replicas_recovery_conflicts_are_outages_not_bugs() {
        // The replica cancels a statement in the way of its replay, or ends its connection.
        assert_eq!(
            of_query(&failure(
                "canceling statement due to conflict with recovery"
            )),
            Some(Unavailable::Busy)
        );
        assert_eq!(
            of_query(&failure(
                "terminating connection due to conflict with recovery"
            )),
            Some(Unavailable::Unreachable)
        );
        assert_eq!(of_query(&failure("syntax error at or near")), None);
    }
}
