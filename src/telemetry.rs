//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as JSON lines or text
//! ([`init`]); [`RequestId`], the id every request carries through its answer, its log lines and
//! its problem body; and [`RequestLog`], the request's span and its one access line (target
//! `newsapi::access`), which never writes a token nor a control character a client sent.

use std::{
    borrow::Cow,
    fmt::{self, Display, Write as _},
    io::IsTerminal,
    sync::{Arc, OnceLock},
    time::Instant,
};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
};
use tracing::{Instrument, Subscriber};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};
use uuid::Uuid;

use crate::{api::Contract, cancel::Cancellation, config::LogFormat};

/// Installs the global subscriber, writing to stderr; a second call does nothing.
///
/// `format` unset means text on a terminal and JSON lines otherwise (a file, a pipe, a log
/// collector). Colour codes are written only to a terminal, in either format: in a file they are
/// noise a grep trips on.
pub fn init(format: Option<LogFormat>) {
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let _ = tracing::subscriber::set_global_default(subscriber(format, terminal, std::io::stderr));
}

/// The subscriber [`init`] installs, writing to `writer` (tests give it a buffer): filtered by
/// `RUST_LOG` (default `info`), `ansi` deciding colour. A JSON line has the event's fields at its
/// top level and the fields of the span it was logged in under `span`, so every line logged while
/// serving a request names its `request_id`.
pub fn subscriber<W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.finish()),
    }
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
        CURRENT_REQUEST.try_with(|context| context.id.clone()).ok()
    }

    /// Runs `f` as part of this request ([`RequestId::current`] answers this id): for an answer
    /// made outside [`RequestIdentity`], as when the connection layer cancels a request.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let context = Arc::new(RequestContext {
            id: self.clone(),
            user: OnceLock::new(),
        });
        CURRENT_REQUEST.sync_scope(context, f)
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

/// What is known about the request a task is serving, beyond the request itself: its id, and the
/// signed-in user once the bearer token has been verified (for the access line).
#[derive(Debug)]
struct RequestContext {
    id: RequestId,
    user: OnceLock<Uuid>,
}

tokio::task_local! {
    /// The request this task is serving (set by [`RequestIdentity`]).
    static CURRENT_REQUEST: Arc<RequestContext>;
}

/// Records that the request being served is signed in as `user` (its bearer token verified), for
/// its access line. Outside a request, or a second time, it does nothing.
pub fn record_user(user: Uuid) {
    let _ = CURRENT_REQUEST.try_with(|context| context.user.set(user));
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
        let context = Arc::new(RequestContext {
            id: id.clone(),
            user: OnceLock::new(),
        });
        let result = CURRENT_REQUEST
            .scope(context, async move { self.0.call(req).await })
            .await;
        let mut response = match result {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        id.stamp(&mut response);
        Ok(response)
    }
}

/// The request's span (`request_id`, `remote_addr`, `method`, `uri`, `version`), so every line
/// logged while serving it names it, and its one access line when it ends.
///
/// The access line is an `info` event with target `newsapi::access` (`RUST_LOG` can silence it
/// alone) and fields `method`, `route` (the contract's template, `/news/{id}`, or `unmatched`:
/// never the path alone, which holds ids: group by this one), `uri` (the target as
/// [`loggable_uri`] writes it), `status`, `latency_ms`, `bytes` (the body's size as sent,
/// compressed or not, when known up front: every answer but a stream; absent otherwise),
/// `request_id`, `user_id` (once the bearer token was verified), `remote_addr`. It is written for
/// every request that reached the application: answered, refused, panicked (the 500 it got), or
/// dropped before its answer (the client hung up, or the server cut it off): then `status` is
/// 499, nginx's "client closed request" (503 when the connection layer cancelled it and answered
/// 503 itself), and `cancelled` is true.
///
/// What must not reach a log does not:
/// - The query string keeps its parameter names and loses every value (`?access_token=…`): a
///   client may put a token there (RFC 6750 §2.3), and this server reads none from it.
/// - A path segment longer than [`MAX_LOGGED_SEGMENT`] bytes (no route has one: the longest is a
///   UUID, 36) is written `…`: a token pasted into a path would be one.
/// - No control character a client sent is written as it is ([`loggable`]).
/// - `remote_addr` is the socket's peer, never what `X-Forwarded-For` or `X-Real-IP` claim (poem's
///   `Tracing` believes them from anyone).
/// - A refused request's message is not written, only its status: poem's messages can quote what
///   the client sent. (Internal errors and an unavailable database are logged where they are
///   rendered, without anything the client sent.)
///
/// No header is written, so neither is `Authorization`.
pub struct RequestLog {
    routes: &'static Contract,
}

impl RequestLog {
    /// The request log, naming routes by `routes`' templates.
    #[must_use]
    pub fn new(routes: &'static Contract) -> Self {
        Self { routes }
    }
}

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint {
            inner: ep,
            routes: self.routes,
        }
    }
}

/// The endpoint [`RequestLog`] wraps.
pub struct RequestLogEndpoint<E> {
    inner: E,
    routes: &'static Contract,
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let context = CURRENT_REQUEST.try_with(Arc::clone).ok();
        let id = context.as_ref().map_or_else(
            || {
                req.extensions()
                    .get::<RequestId>()
                    .cloned()
                    .unwrap_or_default()
            },
            |context| context.id.clone(),
        );
        let remote_addr = req.remote_addr().as_socket_addr().map_or_else(
            || loggable(&req.remote_addr().to_string()).into_owned(),
            ToString::to_string,
        );
        let uri = loggable_uri(req.uri());
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            remote_addr = %remote_addr,
            version = ?req.version(),
            method = %req.method(),
            uri = %uri,
        );
        let mut access = AccessLine {
            method: req.method().clone(),
            route: self
                .routes
                .route_template(req.uri().path())
                .unwrap_or(UNMATCHED),
            uri,
            id,
            context,
            remote_addr,
            cancellation: req.extensions().get::<Cancellation>().cloned(),
            start: Instant::now(),
            written: false,
        };
        match self.inner.call(req).instrument(span).await {
            Ok(response) => {
                let mut response = response.into_response();
                access.write(response.status(), body_size(&mut response));
                Ok(response)
            }
            Err(err) => {
                access.write(err.status(), None);
                Err(err)
            }
        }
    }
}

/// The `route` of a request no route of the contract matches: one value, so unknown paths cannot
/// flood a log query or a metric with values of their own.
pub const UNMATCHED: &str = "unmatched";

/// The target of the access lines.
pub const ACCESS_TARGET: &str = "newsapi::access";

/// A request's access line, written once: when the answer is ready, or when the request's future
/// is dropped before it (then as cancelled).
struct AccessLine {
    method: Method,
    route: &'static str,
    uri: String,
    id: RequestId,
    context: Option<Arc<RequestContext>>,
    remote_addr: String,
    /// Set when the connection layer serves the request: it tells a request it cancels (and
    /// answers 503 for) from one whose client went away.
    cancellation: Option<Cancellation>,
    start: Instant,
    written: bool,
}

/// nginx's status for a request whose client went away before its answer; no answer carries it.
const CLIENT_CLOSED_REQUEST: u16 = 499;

impl AccessLine {
    fn write(&mut self, status: StatusCode, bytes: Option<u64>) {
        self.emit(status.as_u16(), bytes, false);
    }

    fn emit(&mut self, status: u16, bytes: Option<u64>, cancelled: bool) {
        self.written = true;
        // Microseconds, as milliseconds with three decimals.
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        #[allow(clippy::cast_precision_loss)]
        let latency_ms = micros as f64 / 1000.0;
        let user = self.context.as_ref().and_then(|c| c.user.get().copied());
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            route = self.route,
            uri = %self.uri,
            status,
            latency_ms,
            bytes,
            request_id = %self.id,
            user_id = user.map(tracing::field::display),
            remote_addr = %self.remote_addr,
            cancelled,
            "request"
        );
    }
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        if !self.written {
            // The connection layer answers a request it cancels (past REQUEST_TIMEOUT_SECS, or at
            // the end of the shutdown grace) with a 503 of its own; anything else dropped is a
            // client that went away.
            let status = Cancellation::dropped_answer(self.cancellation.as_ref())
                .map_or(CLIENT_CLOSED_REQUEST, |status| status.as_u16());
            self.emit(status, None, true);
        }
    }
}

/// The size of `response`'s body when it is known before it is sent (poem's bodies from bytes,
/// strings and JSON know it; a stream does not).
pub(crate) fn body_size(response: &mut Response) -> Option<u64> {
    let body = http_body_util::combinators::BoxBody::from(response.take_body());
    let size = http_body::Body::size_hint(&body).exact();
    response.set_body(body);
    size
}

/// The longest path segment written as it is.
pub const MAX_LOGGED_SEGMENT: usize = 40;
/// The longest query parameter name written as it is.
const MAX_LOGGED_NAME: usize = 32;
/// The most bytes of a request target written.
const MAX_LOGGED_URI: usize = 512;
/// What stands for anything left out.
const REDACTED: &str = "…";

/// The request target as [`RequestLog`] writes it: the path, its over-long segments redacted and
/// its control characters escaped ([`loggable`]), and the query string's parameter names without
/// their values (a name of anything but letters, digits, `_`, `-` and `.` is written `…`).
#[must_use]
pub fn loggable_uri(uri: &Uri) -> String {
    let mut out = String::new();
    for (i, segment) in uri.path().split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if segment.len() > MAX_LOGGED_SEGMENT {
            out.push_str(REDACTED);
        } else {
            out.push_str(&loggable(segment));
        }
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

/// `text` with every character that could rewrite a log line as `\u{…}`: control characters (C0
/// with CR, LF and ESC, DEL, C1) and the invisible formatting ones (bidirectional overrides, line
/// and paragraph separators, zero-width characters, the byte-order mark). Whatever a client
/// sends then stays on its own line and shows as what it is, in text logs as in JSON.
#[must_use]
pub fn loggable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(rewrites_lines) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if rewrites_lines(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn rewrites_lines(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
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
    fn control_characters_are_escaped() {
        // What the http crate lets through: raw UTF-8, C1 controls (U+009B is a terminal's CSI)
        // and bidirectional overrides included.
        assert_eq!(logged("/news/a\u{9b}31m"), "/news/a\\u{9b}31m");
        assert_eq!(logged("/x\u{202e}y"), "/x\\u{202e}y");
        assert_eq!(logged("/caf\u{e9}"), "/caf\u{e9}");
        // Percent-encoded ones are written encoded, as sent.
        assert_eq!(logged("/news/%00%0d%0a%1b[31m"), "/news/%00%0d%0a%1b[31m");
        assert_eq!(logged("/news?a%0ab=1"), "/news?…=…");
        assert_eq!(
            loggable("a\0b\r\n\u{1b}\u{7f}"),
            "a\\u{0}b\\u{d}\\u{a}\\u{1b}\\u{7f}"
        );
        assert!(matches!(loggable("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn a_long_target_is_cut() {
        let target = format!("/{}", "a/".repeat(1000));
        assert!(logged(&target).len() <= MAX_LOGGED_URI + REDACTED.len());
    }
}
