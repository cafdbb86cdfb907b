//! `Idempotency-Key` at the HTTP edge: reading the header, and the one place a recorded response
//! is given again ([`answer`]).

use poem::Request;

use crate::{
    db::idempotency::{Once, StoredResponse},
    domain::IdempotencyKey,
    error::ApiError,
};

/// The request header (IETF httpapi idempotency-key draft).
const HEADER: &str = "Idempotency-Key";

/// The key the request carries, if any; 400 for a malformed key or more than one.
///
/// Read from the request itself rather than from the operation's parameter (which declares the
/// header and its pattern in the spec): poem reads a value that is not visible ASCII as no header
/// at all, and such a request must not go through unguarded.
pub(super) fn key_of(req: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = req.headers().get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "more than one Idempotency-Key header".into(),
        ));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::BadRequest("the Idempotency-Key may hold only visible ASCII characters".into())
    })?;
    IdempotencyKey::parse(value)
        .map(Some)
        .map_err(|why| ApiError::BadRequest(why.into()))
}

/// The response a request with a key gets, and whether it is a replay; or the 409 or 422 it gets
/// instead. Every replay passes here, so this is where one is counted (today the event
/// `newsapi::idempotency` with `replayed = true`).
pub(super) fn answer<T>(outcome: Once<T>) -> Result<(StoredResponse, bool), ApiError> {
    match outcome {
        Once::Done(_, stored) => Ok((stored, false)),
        Once::Replay(stored) => {
            crate::metrics::idempotent_replay();
            tracing::info!(
                target: "newsapi::idempotency",
                replayed = true,
                status = stored.status,
                "the first response to this idempotency key is sent again"
            );
            Ok((stored, true))
        }
        Once::Mismatch => Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with another request; nothing was created",
        )),
        Once::InFlight => Err(ApiError::Conflict(
            "the first request with this Idempotency-Key is still being processed; retry once it has been answered",
        )),
    }
}
