//! `ApiError`: one enum, one status per variant, rendered as RFC 9457 `application/problem+json`;
//! and the catch-all that re-renders every error poem itself produces (bad parameter, missing
//! content type, unknown route, wrong method, panic) in the same shape, keeping its status.

use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::deadpool::PoolError;
use poem::{
    Response,
    error::ResponseError,
    http::{StatusCode, header},
};
use poem_openapi::Object;
use serde::Serialize;

use crate::{
    auth::{SigninError, SignupLimitError, password::HashError},
    db::failure::{self, Unavailable},
    domain::Invalid,
    panics::Panicked,
    telemetry::RequestId,
};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The most offending fields a 422 lists; `error_count` says how many there were. A body of 1 MiB
/// can break its schema in a hundred thousand places, and the answer must not be larger than the
/// question.
pub const MAX_LISTED_ERRORS: usize = 20;

/// An RFC 9457 problem detail, the body of every error response.
#[derive(Debug, Clone, Serialize, Object)]
pub struct Problem {
    /// A URI reference naming the kind of problem; `about:blank` when the status says it all.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: i32,
    /// What went wrong with this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// For 422, the offending fields (at most 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldError>>,
    /// For 422, how many offending fields there were, `errors` listing at most 20.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub error_count: Option<i64>,
    /// This occurrence, named by the request's id, as in its `X-Request-Id` header and the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub instance: Option<String>,
}

/// One offending field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Object)]
pub struct FieldError {
    /// The offending field's name (`title`, `date_created`), or `$` for the body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl From<Invalid> for FieldError {
    fn from(invalid: Invalid) -> Self {
        Self {
            field: invalid.field.to_string(),
            message: invalid.message,
        }
    }
}

/// Why a bearer token was not accepted. The detail goes to the client; none of it is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header at all (RFC 6750 §3.1: no error code then).
    MissingToken,
    /// A token that is malformed, forged, expired, of the wrong kind, or whose user is gone.
    InvalidToken(&'static str),
    /// Sign-in with an unknown email or a wrong password: one answer for both.
    BadCredentials,
}

/// Every error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a bad parameter or cursor.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A missing or invalid token, or failed sign-in.
    #[error("unauthorized: {0:?}")]
    Unauthorized(AuthFailure),
    /// Signed in, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A one-time token mailed for a password reset or an email confirmation that is unknown,
    /// used, expired or superseded by a newer one: one answer for all (400,
    /// `/problems/invalid-token`).
    #[error("the token is not valid")]
    InvalidAccountToken,
    /// `REQUIRE_VERIFIED_EMAIL` is on and the user's email is not verified (403,
    /// `/problems/email-not-verified`).
    #[error("the email is not verified")]
    EmailNotVerified,
    /// No such resource.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The resource already exists.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The resource no longer has the entity tag the client named in `If-Match`.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Too many attempts (failed sign-ins, sign-ups from one address, password checks waiting for
    /// one address); the client may try again after this many seconds. The text says which.
    #[error("too many requests; retry after {0} s")]
    TooManyRequests(u64, &'static str),
    /// The request body did not arrive within the connection's body deadline
    /// (`HTTP_BODY_TIMEOUT_SECS`); the connection is closed after the answer.
    #[error("request timeout: the body did not arrive in time")]
    RequestTimeout,
    /// The body is larger than the server accepts (`limit` bytes).
    #[error("payload too large")]
    PayloadTooLarge {
        /// The most bytes accepted.
        limit: usize,
    },
    /// Well-formed JSON that breaks the schema.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// A request the server understood but will not carry out as asked, for a reason other than
    /// the body's schema (an `Idempotency-Key` already used with another request).
    #[error("unprocessable: {0}")]
    Unprocessable(&'static str),
    /// The database is busy or cannot be reached; the text is the cause, for the log only.
    #[error("service unavailable ({0:?}): {1}")]
    Unavailable(Unavailable, String),
    /// The password-hashing queue is full; try again after this many seconds.
    #[error("the hashing queue is full; retry after {0} s")]
    HashQueueFull(u64),
    /// The request ran past `REQUEST_TIMEOUT_SECS` and was cancelled (503; not the 408 of a body
    /// that is late, [`ApiError::RequestTimeout`]).
    #[error("the request ran too long and was cancelled")]
    RanTooLong,
    /// The server is shutting down and cancelled the request at the end of `SHUTDOWN_GRACE_SECS`;
    /// the connection is closed after the answer.
    #[error("the request was cancelled at shutdown")]
    ShuttingDown,
    /// Anything else: logged with its whole chain (a panic with its backtrace), never shown to the
    /// client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A client error poem or poem-openapi raised itself (an unknown route, a wrong method, a
    /// parameter that did not parse, a missing content type), re-rendered with its status.
    #[error("{status}: {detail}")]
    Request {
        /// Its status, a 4xx.
        status: StatusCode,
        /// What the framework said, which describes only the request.
        detail: String,
    },
}

impl ApiError {
    /// A 422 for fields that failed the domain's checks.
    #[must_use]
    pub fn invalid(errors: Vec<Invalid>) -> Self {
        Self::Validation(errors.into_iter().map(FieldError::from).collect())
    }

    /// An internal error from anything that can be an error.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        let (kind, detail, errors) = match self {
            Self::BadRequest(detail) => ("about:blank", Some(detail.clone()), None),
            Self::Unauthorized(failure) => {
                let detail = match failure {
                    AuthFailure::MissingToken => {
                        "an `Authorization: Bearer <token>` header is required"
                    }
                    AuthFailure::InvalidToken(why) => why,
                    AuthFailure::BadCredentials => "the email or the password is wrong",
                };
                ("about:blank", Some(detail.to_string()), None)
            }
            Self::Forbidden(detail)
            | Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::Unprocessable(detail) => {
                ("about:blank", Some((*detail).to_string()), None)
            }
            Self::InvalidAccountToken => (
                "/problems/invalid-token",
                Some(
                    "the token is not valid: it is unknown, was used already, has expired, or a \
                     newer one was sent since; ask for a new one"
                        .to_string(),
                ),
                None,
            ),
            Self::EmailNotVerified => (
                "/problems/email-not-verified",
                Some(
                    "verify your email first: follow the link mailed to you (POST \
                     /email/verify/resend sends another)"
                        .to_string(),
                ),
                None,
            ),
            Self::PreconditionFailed => (
                "about:blank",
                Some("the news item has changed since the entity tag in If-Match; nothing was changed".to_string()),
                None,
            ),
            Self::TooManyRequests(secs, what) => (
                "about:blank",
                Some(format!("{what}; try again in {secs} seconds")),
                None,
            ),
            Self::RequestTimeout => (
                "about:blank",
                Some("the request body did not arrive in time; the connection is closed".to_string()),
                None,
            ),
            Self::PayloadTooLarge { limit } => (
                "about:blank",
                Some(format!("the body may be at most {limit} bytes")),
                None,
            ),
            Self::Validation(errors) => (
                "/problems/validation",
                Some(if errors.len() > MAX_LISTED_ERRORS {
                    format!(
                        "the request body breaks the schema in {} places; `errors` lists the first {MAX_LISTED_ERRORS}",
                        errors.len()
                    )
                } else {
                    "the request body breaks the schema; see `errors`".to_string()
                }),
                Some(errors.iter().take(MAX_LISTED_ERRORS).cloned().collect()),
            ),
            Self::Unavailable(Unavailable::Busy, _) => (
                "about:blank",
                Some(
                    "the database is busy (every connection in use, or a lock or statement \
                     timeout); nothing was changed; try again in a second"
                        .to_string(),
                ),
                None,
            ),
            Self::Unavailable(Unavailable::Unreachable, _) => (
                "about:blank",
                Some(
                    "the database cannot be reached; try again in a few seconds"
                        .to_string(),
                ),
                None,
            ),
            Self::HashQueueFull(secs) => (
                "about:blank",
                Some(format!(
                    "too many passwords are being checked; try again in {secs} seconds"
                )),
                None,
            ),
            Self::RanTooLong => (
                "about:blank",
                Some("the request took longer than the server allows; it was cancelled and nothing of it was kept".to_string()),
                None,
            ),
            Self::ShuttingDown => (
                "about:blank",
                Some("the server is shutting down; the request was cancelled and nothing of it was kept".to_string()),
                None,
            ),
            Self::Internal(_) => ("about:blank", Some("internal error".to_string()), None),
            Self::Request { detail, .. } => ("about:blank", Some(detail.clone()), None),
        };
        Problem {
            kind: kind.to_string(),
            title: if matches!(self, Self::Validation(_)) {
                "Validation failed".to_string()
            } else if matches!(self, Self::InvalidAccountToken) {
                "Invalid token".to_string()
            } else if matches!(self, Self::EmailNotVerified) {
                "Email not verified".to_string()
            } else {
                reason(status).to_string()
            },
            status: i32::from(status.as_u16()),
            detail,
            error_count: match self {
                Self::Validation(errors) => Some(i64::try_from(errors.len()).unwrap_or(i64::MAX)),
                _ => None,
            },
            errors,
            instance: RequestId::current().map(|id| id.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidAccountToken => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::EmailNotVerified => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) | Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::HashQueueFull(_) | Self::RanTooLong | Self::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Request { status, .. } => *status,
        }
    }

    fn as_response(&self) -> Response {
        match self {
            Self::Internal(err) => match err.downcast_ref::<Panicked>() {
                Some(panic) => tracing::error!(
                    panic = %panic.message,
                    location = panic.location,
                    backtrace = panic.backtrace,
                    "request panicked"
                ),
                None => tracing::error!(error = %chain(err.as_ref()), "internal error"),
            },
            Self::Unavailable(kind, why) => {
                tracing::warn!(kind = ?kind, error = %why, "database unavailable");
            }
            _ => {}
        }
        let mut response = problem_response(&self.problem());
        if let Self::TooManyRequests(secs, _) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(*secs));
        }
        if let Self::RequestTimeout | Self::ShuttingDown = self {
            // RFC 9110 §15.5.9 (408): the server is closing the connection rather than wait on; at
            // shutdown it closes every connection after its answer.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        // Every 503 says when to come back, as every 429 does.
        let retry_after = match self {
            Self::HashQueueFull(secs) => Some(*secs),
            Self::Unavailable(Unavailable::Busy, _) => Some(BUSY_RETRY_AFTER_SECS),
            Self::Unavailable(Unavailable::Unreachable, _) | Self::RanTooLong => {
                Some(UNREACHABLE_RETRY_AFTER_SECS)
            }
            Self::ShuttingDown => Some(SHUTTING_DOWN_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let Self::Unauthorized(failure) = self {
            // RFC 6750 §3: a request without a token gets the bare challenge.
            let challenge = match failure {
                AuthFailure::InvalidToken(_) => r#"Bearer error="invalid_token""#,
                AuthFailure::MissingToken | AuthFailure::BadCredentials => "Bearer",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// `Retry-After` on a 503 for a busy database: a lock or a full pool clears as soon as the
/// requests ahead finish.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// `Retry-After` on a 503 for an unreachable database: an outage, a restart or a failover takes
/// seconds, and sooner retries would only add to the load when it returns. The same after a request
/// ran past `REQUEST_TIMEOUT_SECS`: what held it up does not clear at once either.
const UNREACHABLE_RETRY_AFTER_SECS: u64 = 5;

/// `Retry-After` on a 503 at shutdown: another replica (or this one, restarted) can take the
/// request at once.
const SHUTTING_DOWN_RETRY_AFTER_SECS: u64 = 1;

/// Renders a problem with its media type and status.
fn problem_response(problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    Response::builder()
        .status(
            u16::try_from(problem.status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .content_type(PROBLEM_JSON)
        .body(body)
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match failure::of_query(&err) {
            Some(kind) => Self::Unavailable(kind, err.to_string()),
            None => Self::internal(err),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        match failure::of_pool(&err) {
            Some(kind) => Self::Unavailable(kind, err.to_string()),
            None => Self::internal(err),
        }
    }
}

impl From<SigninError> for ApiError {
    fn from(err: SigninError) -> Self {
        match err {
            SigninError::Throttled(secs) => Self::TooManyRequests(secs, "too many failed sign-ins"),
            SigninError::BadCredentials => Self::Unauthorized(AuthFailure::BadCredentials),
            SigninError::Pool(err) => err.into(),
            SigninError::Database(err) => err.into(),
            SigninError::Hash(err) => err.into(),
            err @ SigninError::Random(_) => Self::internal(err),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::ClientBusy { retry_after } => Self::TooManyRequests(
                retry_after,
                "this client address already has its share of passwords being checked",
            ),
            HashError::QueueFull { retry_after } => Self::HashQueueFull(retry_after),
            err @ HashError::Failed(_) => Self::internal(err),
            HashError::Share(crate::db::hash_slots::SlotError::Pool(err)) => err.into(),
            HashError::Share(crate::db::hash_slots::SlotError::Database(err)) => err.into(),
        }
    }
}

impl From<SignupLimitError> for ApiError {
    fn from(err: SignupLimitError) -> Self {
        match err {
            SignupLimitError::Throttled(secs) => {
                Self::TooManyRequests(secs, "too many sign-ups from this address")
            }
            SignupLimitError::Pool(err) => err.into(),
            SignupLimitError::Database(err) => err.into(),
        }
    }
}

/// The catch-all for the whole application: every error becomes problem+json with its own status.
///
/// Errors the application raised itself (`ApiError`) render as they are; poem's and
/// poem-openapi's own errors (plain text by default) are re-rendered from their status. Their
/// messages describe only the request (a parameter that did not parse, a missing content type),
/// so 4xx keep them as `detail`; 5xx never show theirs.
pub async fn render_any_error(err: poem::Error) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let status = err.status();
    let api_error = match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized(AuthFailure::MissingToken),
        s if s.is_server_error() => ApiError::Internal(err.to_string().into()),
        StatusCode::NOT_FOUND => ApiError::Request {
            status,
            detail: "no such resource".to_string(),
        },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::Request {
            status,
            detail: "this resource does not support this method".to_string(),
        },
        _ => ApiError::Request {
            status,
            detail: err.to_string(),
        },
    };
    api_error.as_response()
}
