//! Cancelling a request: what the connection layer ([`crate::server`]) tells the parts of a
//! request it is about to drop, and the clean-up they leave it to finish.
//!
//! Dropping a request's future stops it, but not what it asked PostgreSQL to do: a statement
//! already sent runs on in its backend — an `UPDATE` waiting for a row lock commits when the lock
//! is released, after the client was told it failed, even after the process has exited. So a part
//! that holds such work ([`crate::api::Db`]) checks, when it is dropped, whether its request was
//! cancelled and, if so, leaves a clean-up here (cancel the statement, discard the connection);
//! the connection layer runs them before it answers.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use poem::http::StatusCode;

/// One clean-up left by a dropped part of a cancelled request.
type CleanUp = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A request's cancellation, shared by the connection layer (which cancels) and the parts of the
/// request that must undo something when it does; in the request's extensions.
#[derive(Clone, Default)]
pub struct Cancellation(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    clean_ups: Mutex<Vec<CleanUp>>,
}

impl Cancellation {
    /// Whether the request has been cancelled: a part dropped now is dropped because of it.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// What a request whose future was dropped before its answer was answered: the 503 the
    /// connection layer sends for a request it cancelled (`ApiError::RanTooLong` or
    /// `ApiError::ShuttingDown`), or nothing when it was not cancelled (its client went away).
    #[must_use]
    pub fn dropped_answer(cancellation: Option<&Self>) -> Option<StatusCode> {
        cancellation
            .is_some_and(Self::is_cancelled)
            .then_some(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// Leaves `clean_up` to be finished by whoever cancelled the request (called from `Drop`).
    pub fn leave(&self, clean_up: impl Future<Output = ()> + Send + 'static) {
        self.0
            .clean_ups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(clean_up));
    }

    /// Marks the request cancelled; call before dropping its future.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
    }

    /// Finishes every clean-up left so far, waiting at most `within` (each is one round trip to
    /// the database; one that cannot finish must not hold up the answer or the shutdown).
    /// Answers whether all finished.
    pub async fn clean_up(&self, within: Duration) -> bool {
        let clean_ups = std::mem::take(
            &mut *self
                .0
                .clean_ups
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let all = async {
            for clean_up in clean_ups {
                clean_up.await;
            }
        };
        tokio::time::timeout(within, all).await.is_ok()
    }
}
