//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`); [`RequestId`], the id
//! every request carries through its answer, its log lines and its problem body; and
//! [`RequestLog`], the one line per request, which never writes a token.

use std::{
    fmt::{self, Display},
    sync::Arc,
    time::Instant,
};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderMap, HeaderValue, Uri},
};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call does nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest `X-Request-Id` taken from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's id: the client's `X-Request-Id` when it is a sane token (1–128 of
/// `A–Z a–z 0–9 - _ . : + / = @`, so it can be logged and echoed as it is), else a new UUIDv7
/// (time-ordered, so ids sort by arrival).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id for a request with these headers: the client's, if sane, else a new one.
    #[must_use]
    pub fn for_headers(headers: &HeaderMap) -> Self {
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| is_sane_request_id(id))
            .map_or_else(Self::new, |id| Self(id.into()))
    }

    /// A new id.
    #[must_use]
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string().into())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request being served by this task, if any.
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT_REQUEST.try_with(Clone::clone).ok()
    }

    /// Runs `f` as part of this request ([`RequestId::current`] answers this id): for an answer
    /// made outside [`RequestIdentity`], as when the connection layer cancels a request.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT_REQUEST.sync_scope(self.clone(), f)
    }

    /// Returns the id on `response` as `X-Request-Id`.
    pub fn stamp(&self, response: &mut Response) {
        if let Ok(value) = HeaderValue::from_str(self.as_str()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_sane_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

tokio::task_local! {
    /// The id of the request this task is serving (set by [`RequestIdentity`]).
    static CURRENT_REQUEST: RequestId;
}

/// The outermost middleware: gives the request its [`RequestId`] (kept from the connection layer,
/// which may have chosen it already, else from the headers), makes it [`RequestId::current`] for
/// everything that serves the request, and returns it as `X-Request-Id` on every answer.
pub struct RequestIdentity;

impl<E: Endpoint> Middleware<E> for RequestIdentity {
    type Output = RequestIdentityEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdentityEndpoint(ep)
    }
}

/// The endpoint [`RequestIdentity`] wraps.
pub struct RequestIdentityEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestIdentityEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let id = match req.extensions().get::<RequestId>() {
            Some(id) => id.clone(),
            None => {
                let id = RequestId::for_headers(req.headers());
                req.extensions_mut().insert(id.clone());
                id
            }
        };
        let result = CURRENT_REQUEST
            .scope(id.clone(), async move { self.0.call(req).await })
            .await;
        let mut response = match result {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        id.stamp(&mut response);
        Ok(response)
    }
}

/// A span per request (`remote_addr`, `method`, `uri`, `version`) and one event when it ends
/// (`status`, `duration`): poem's `Tracing` middleware, less what must not reach a log.
///
/// - The query string keeps its parameter names and loses every value (`?access_token=…`): a
///   client may put a token there (RFC 6750 §2.3), and this server reads none from it.
/// - A path segment longer than [`MAX_LOGGED_SEGMENT`] bytes (no route has one: the longest is a
///   UUID, 36) is written `…`: a token pasted into a path would be one.
/// - `remote_addr` is the socket's peer, never what `X-Forwarded-For` or `X-Real-IP` claim (poem's
///   `Tracing` believes them from anyone).
/// - A refused request's message is not written, only its status: poem's messages can quote what
///   the client sent. (Internal errors and an unavailable database are logged where they are
///   rendered, without anything the client sent.)
///
/// No header is written, so neither is `Authorization`.
pub struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint(ep)
    }
}

/// The endpoint [`RequestLog`] wraps.
pub struct RequestLogEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let span = tracing::info_span!(
            "request",
            request_id = %req.extensions().get::<RequestId>().cloned().unwrap_or_default(),
            remote_addr = %req.remote_addr(),
            version = ?req.version(),
            method = %req.method(),
            uri = %loggable_uri(req.uri()),
        );
        async move {
            let start = Instant::now();
            match self.0.call(req).await {
                Ok(response) => {
                    let response = response.into_response();
                    tracing::info!(status = %response.status(), duration = ?start.elapsed(), "response");
                    Ok(response)
                }
                Err(err) => {
                    tracing::info!(status = %err.status(), duration = ?start.elapsed(), "error");
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// The longest path segment written as it is.
pub const MAX_LOGGED_SEGMENT: usize = 40;
/// The longest query parameter name written as it is.
const MAX_LOGGED_NAME: usize = 32;
/// The most bytes of a request target written.
const MAX_LOGGED_URI: usize = 512;
/// What stands for anything left out.
const REDACTED: &str = "…";

/// The request target as [`RequestLog`] writes it: the path, its over-long segments redacted, and
/// the query string's parameter names without their values.
#[must_use]
pub fn loggable_uri(uri: &Uri) -> String {
    let mut out = String::new();
    for (i, segment) in uri.path().split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if segment.len() > MAX_LOGGED_SEGMENT {
            REDACTED
        } else {
            segment
        });
    }
    if let Some(query) = uri.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = pair
                .split_once('=')
                .map_or((pair, None), |(name, value)| (name, Some(value)));
            let plain = name.len() <= MAX_LOGGED_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            out.push_str(if plain { name } else { REDACTED });
            if value.is_some() {
                out.push('=');
                out.push_str(REDACTED);
            }
        }
    }
    if out.len() > MAX_LOGGED_URI {
        let mut end = MAX_LOGGED_URI;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(REDACTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(target: &str) -> String {
        loggable_uri(&target.parse().unwrap())
    }

    #[test]
    fn a_sane_client_request_id_is_kept_and_anything_else_replaced() {
        let id_for = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
            RequestId::for_headers(&headers).to_string()
        };
        for sane in [
            "abc",
            "0192f0c4-0000-7000-8000-000000000000",
            "a.b_c:d+e/f=@1",
        ] {
            assert_eq!(id_for(sane), sane);
        }
        for insane in ["", "a b", "a\tb", "x\u{7f}", "<script>", &"a".repeat(129)] {
            if let Ok(value) = HeaderValue::from_str(insane) {
                let mut headers = HeaderMap::new();
                headers.insert(REQUEST_ID_HEADER, value);
                let id = RequestId::for_headers(&headers).to_string();
                assert_ne!(id, insane);
                assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
            }
        }
        assert_ne!(RequestId::new(), RequestId::new());
    }

    #[test]
    fn query_values_are_never_written() {
        assert_eq!(
            logged("/news?limit=5&access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc&flag"),
            "/news?limit=…&access_token=…&flag"
        );
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(logged(&format!("/whoami?{token}")), "/whoami?…");
        assert_eq!(logged(&format!("/whoami?{token}=1")), "/whoami?…=…");
    }

    #[test]
    fn long_path_segments_are_redacted_and_uuids_kept() {
        let id = "0192f0c4-0000-7000-8000-000000000000";
        assert_eq!(logged(&format!("/news/{id}")), format!("/news/{id}"));
        let token = "x".repeat(43);
        assert_eq!(logged(&format!("/news/{token}/x")), "/news/…/x");
    }

    #[test]
    fn a_long_target_is_cut() {
        let target = format!("/{}", "a/".repeat(1000));
        assert!(logged(&target).len() <= MAX_LOGGED_URI + REDACTED.len());
    }
}
