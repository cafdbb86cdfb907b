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
/// `header` is the first value, as the operation's parameter read it; its declared `pattern` says
/// what [`IdempotencyKey::parse`] enforces.
pub(super) fn key_of(
    req: &Request,
    header: Option<&str>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    if req.headers().get_all(HEADER).iter().nth(1).is_some() {
        return Err(ApiError::BadRequest(
            "more than one Idempotency-Key header".into(),
        ));
    }
    header
        .map(|value| IdempotencyKey::parse(value).map_err(|why| ApiError::BadRequest(why.into())))
        .transpose()
}

/// The response a request with a key gets, and whether it is a replay; or the 409 or 422 it gets
/// instead. Every replay passes here, so this is where one is counted (today the event
/// `newsapi::idempotency` with `replayed = true`).
pub(super) fn answer<T>(outcome: Once<T>) -> Result<(StoredResponse, bool), ApiError> {
    match outcome {
        Once::Done(_, stored) => Ok((stored, false)),
        Once::Replay(stored) => {
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
