//! The connection layer: accepts TCP connections, holds each client address to
//! `MAX_CONNECTIONS_PER_IP` open connections, serves every connection with hyper (HTTP/1.1, and
//! HTTP/2 with prior knowledge, as poem's own server does) under the connection deadlines, and on
//! shutdown lets the requests in flight finish.
//!
//! poem's `Server` cannot do this: its idle timeout restarts on every byte received, so a client
//! trickling one byte at a time holds a connection forever; it has no deadline for headers or
//! bodies; and it accepts any number of connections from one address. So the accept loop is here,
//! and each request goes to the poem endpoint just as poem's `Server` hands it over.
//!
//! At any moment a connection is in one of these states, each with its own deadline:
//! - **waiting for headers** — since it opened, or since the first byte after it went idle: the
//!   headers must be complete within `HTTP_HEADER_TIMEOUT_SECS`, however the bytes trickle in;
//! - **idle** — no request in flight and nothing received since the last answer: closed after
//!   `HTTP_IDLE_TIMEOUT_SECS` without I/O;
//! - **busy** — a request's headers have arrived. Its body must arrive within
//!   `HTTP_BODY_TIMEOUT_SECS` of them: [`BodyDeadline`] makes reading it fail after that (`JsonBody`
//!   answers 408), and a body nobody reads is never waited for (hyper closes the connection after
//!   the answer). The whole request — body, handler, up to the start of its answer — must be done
//!   within `REQUEST_TIMEOUT_SECS`, else it is cancelled and answered 503 (a body that is late
//!   still gets its 408 first: that delay is the client's). Once the answer is being written, a
//!   client that takes none of it for `HTTP_IDLE_TIMEOUT_SECS` is cut off.
//!
//! A deadline that passes closes the connection (dropping it: the client reads end-of-file, or a
//! reset when it had sent more). Per connection this costs one task, hyper's buffers, one timer
//! and one small mutex-guarded state.
//!
//! **Cancelling a request** (its deadline, or the end of the shutdown grace) drops its future, after
//! marking its [`Cancellation`] so that what it left running in PostgreSQL is cancelled too; the
//! client gets a 503 problem (with its request id) instead, and the log a warning naming the request.
//!
//! **Shutdown**: the listener closes; idle connections close at once; requests in flight have
//! `SHUTDOWN_GRACE_SECS` to finish; then the rest are cancelled and answered 503 with
//! `Connection: close`; [`serve`] returns only when every connection has ended.

use std::{
    collections::{HashMap, hash_map::Entry},
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    Endpoint,
    endpoint::BoxEndpoint,
    error::ResponseError,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc, watch},
    time::{Instant, Sleep},
};

use crate::{
    api::add_response_headers,
    cancel::Cancellation,
    config::ConnectionConfig,
    error::ApiError,
    telemetry::{RequestId, loggable_uri},
};

/// Where the server is in its life; every connection and every request watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// A shutdown signal came: nothing new is accepted; requests in flight may finish.
    Draining,
    /// The shutdown grace is over: requests still running are cancelled and answered 503.
    Cancelling,
    /// Whatever is still open is closed.
    Closing,
}

/// After the shutdown grace, how long the cancelled requests have to clean up and write their 503
/// before every connection is closed.
const ANSWER_WINDOW: Duration = Duration::from_secs(3);

/// The longest a cancelled request's clean-up may take: cancelling its statement is one new
/// connection to PostgreSQL.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(2);

/// When a request's deadline passes while its body is late, how long after the body's own deadline
/// its 408 may take before the request is cancelled after all.
const BODY_VERDICT_GRACE: Duration = Duration::from_secs(1);

/// The body type poem's requests and responses carry.
type PoemBody = BoxBody<Bytes, io::Error>;

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the requests
/// in flight finish (closing idle connections at once) for up to `limits.shutdown_grace`, cancels
/// the rest, and returns once every connection has ended (so nothing a request started outlives
/// the server, and `app`, with the database pool, is dropped here).
pub async fn serve(
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    limits: ConnectionConfig,
    trusted_proxies: &[IpAddr],
    shutdown: impl Future<Output = ()>,
) {
    let app = Arc::new(app);
    let slots = Slots::new(limits.max_per_ip, trusted_proxies);
    let (phase, phases) = watch::channel(Phase::Serving);
    // Every connection and every request (an HTTP/2 stream runs in a task of its own) holds a
    // sender; `recv` answers `None` once all of them are gone.
    let (running, mut all_closed) = mpsc::channel::<Infallible>(1);
    let mut pacing = AcceptPacing::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                pacing.succeeded();
                accepted
            }
            Err(err) => {
                if let Some(pause) = pacing.failed(&err) {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip()) else {
            tracing::debug!(%peer, "connection closed at once: too many from this address");
            drop(stream);
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        tokio::spawn(serve_connection(Connection {
            stream,
            peer,
            local,
            app: Arc::clone(&app),
            limits,
            phases: phases.clone(),
            running: running.clone(),
            _slot: slot,
        }));
    }
    drop(listener);
    phase.send_replace(Phase::Draining);
    drop(running);
    wind_down(&phase, &mut all_closed, limits.shutdown_grace).await;
    tracing::info!("server stopped");
}

/// Lets the requests in flight finish within `grace`, then cancels the rest and gives them
/// [`ANSWER_WINDOW`] to clean up and answer, then closes every connection still open; returns when
/// all have ended.
async fn wind_down(
    phase: &watch::Sender<Phase>,
    all_closed: &mut mpsc::Receiver<Infallible>,
    grace: Duration,
) {
    if tokio::time::timeout(grace, all_closed.recv()).await.is_ok() {
        return;
    }
    tracing::warn!(
        grace_secs = grace.as_secs(),
        "requests still in flight at the end of the shutdown grace are cancelled"
    );
    phase.send_replace(Phase::Cancelling);
    if tokio::time::timeout(ANSWER_WINDOW, all_closed.recv())
        .await
        .is_ok()
    {
        return;
    }
    phase.send_replace(Phase::Closing);
    all_closed.recv().await;
}

/// The first pause after a failed `accept`.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause: the server accepts again within this of descriptors freeing up.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning about failing `accept`s per this long.
const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// How the accept loop meets a failing `accept`. One that concerns a single client (it hung up
/// before it was accepted) is forgotten. Anything else — most often running out of file
/// descriptors (EMFILE, ENFILE) — fails again at once while the connection waits in the backlog,
/// so the loop pauses: [`FIRST_ACCEPT_PAUSE`], doubling with each failure in a row up to
/// [`MAX_ACCEPT_PAUSE`]. It warns at most once per [`ACCEPT_WARNING_EVERY`], with the failures since
/// its last warning and the limit on open files, and says so when accepting works again.
#[derive(Debug)]
struct AcceptPacing {
    pause: Duration,
    /// Failures not yet reported.
    failures: u64,
    last_warning: Option<Instant>,
    /// A warning was written since accepting last worked.
    warned: bool,
}

impl Default for AcceptPacing {
    fn default() -> Self {
        Self {
            pause: FIRST_ACCEPT_PAUSE,
            failures: 0,
            last_warning: None,
            warned: false,
        }
    }
}

impl AcceptPacing {
    /// How long to pause after `err`, if at all.
    fn failed(&mut self, err: &io::Error) -> Option<Duration> {
        use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
        if matches!(
            err.kind(),
            ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
        ) {
            return None;
        }
        self.failures += 1;
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_WARNING_EVERY)
        {
            tracing::warn!(
                error = %err,
                failures = self.failures,
                open_files_limit = open_files_limit(),
                "accepting connections fails (out of file descriptors?); retrying with backoff"
            );
            self.failures = 0;
            self.last_warning = Some(now);
            self.warned = true;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_ACCEPT_PAUSE);
        Some(pause)
    }

    /// A connection was accepted.
    fn succeeded(&mut self) {
        self.pause = FIRST_ACCEPT_PAUSE;
        if self.warned {
            self.warned = false;
            tracing::info!(failures = self.failures, "accepting connections again");
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and returns the limit in
/// force. Every connection is a file descriptor; a soft limit of 1024, common by default, would
/// otherwise let a few hundred slow clients keep everyone else from connecting.
#[cfg(unix)]
#[must_use]
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// See the unix version; elsewhere the limit is left as it is.
#[cfg(not(unix))]
#[must_use]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// The limit on open files in force (the soft limit), for the log.
#[cfg(unix)]
fn open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// See the unix version.
#[cfg(not(unix))]
fn open_files_limit() -> Option<u64> {
    None
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state behind these locks is a few counters, consistent after every statement.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The per-address cap

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Open connections per client address.
struct Slots {
    counts: Counts,
    max: usize,
    /// The trusted proxies: every client behind them shares their address, so they are not capped.
    exempt: Vec<IpAddr>,
}

impl Slots {
    fn new(max: usize, trusted_proxies: &[IpAddr]) -> Self {
        Self {
            counts: Counts::default(),
            max,
            exempt: trusted_proxies.iter().map(IpAddr::to_canonical).collect(),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when that address has all it may have.
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        if self.exempt.contains(&ip) {
            return Some(Slot {
                counts: Arc::clone(&self.counts),
                ip: None,
            });
        }
        let mut counts = lock(&self.counts);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: Arc::clone(&self.counts),
            ip: Some(ip),
        })
    }
}

/// One connection's place in its address's count, given back when the connection ends.
struct Slot {
    counts: Counts,
    /// `None` for an exempt address.
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        if let Entry::Occupied(mut entry) = lock(&self.counts).entry(ip) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One connection

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    app: Arc<BoxEndpoint<'static>>,
    limits: ConnectionConfig,
    phases: watch::Receiver<Phase>,
    /// Held while the connection lives (and cloned into each of its requests).
    running: mpsc::Sender<Infallible>,
    _slot: Slot,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        stream,
        peer,
        local,
        app,
        limits,
        mut phases,
        running,
        _slot,
    } = connection;
    let activity = Arc::new(Activity::new());
    let service = service_fn({
        let activity = Arc::clone(&activity);
        let phases = phases.clone();
        let running = running.clone();
        move |request| {
            let now = Instant::now();
            respond(
                request,
                Arc::clone(&app),
                (local, peer),
                Watch {
                    in_flight: InFlight::start(Arc::clone(&activity)),
                    body_deadline: now + limits.body_timeout,
                    deadline: now + limits.request_timeout,
                    phases: phases.clone(),
                    running: running.clone(),
                },
            )
        }
    });
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // poem's server's HTTP/2 settings.
    builder
        .http2()
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    // Idle at shutdown and kept open (`SHUTDOWN_IDLE_LINGER_SECS`) until then.
    let mut lingering: Option<Instant> = None;
    loop {
        tokio::select! {
            () = sleep_until_some(lingering), if !draining => {
                if activity.between_requests() {
                    return;
                }
                // A request arrived meanwhile: it finishes (answered `Connection: close`).
                draining = true;
                served.as_mut().graceful_shutdown();
            }
            result = served.as_mut() => {
                // A failed connection (the client hung up mid-request) is dropped here, never
                // polled again: that drops the request's future too, and with it any password hash
                // it has queued (`auth::password`). poem's own server polled it again to shut it
                // down, and hyper then ran the abandoned request to its end.
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            why = activity.overdue(&limits) => {
                tracing::debug!(%peer, why, "connection closed");
                return;
            }
            changed = phases.changed() => {
                if changed.is_err() || *phases.borrow_and_update() == Phase::Closing {
                    // The server is stopping; whatever is left is cut off.
                    return;
                }
                if draining {
                    // Cancelling: each request in flight answers 503 itself.
                    continue;
                }
                if activity.between_requests() {
                    if limits.shutdown_idle_linger.is_zero() {
                        // Idle, or headers still on their way: nothing to finish.
                        return;
                    }
                    // Kept open a while: a client that sends on it now is answered (with
                    // `Connection: close`) rather than have its request lost on a closing socket.
                    lingering = Some(Instant::now() + limits.shutdown_idle_linger);
                    continue;
                }
                // Finish the requests in flight, then close.
                draining = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Completes at `deadline`, or never without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What watches over one request while it is served.
struct Watch {
    in_flight: InFlight,
    /// The body must have arrived by then (`HTTP_BODY_TIMEOUT_SECS` after the headers).
    body_deadline: Instant,
    /// The answer must have begun by then (`REQUEST_TIMEOUT_SECS` after the headers).
    deadline: Instant,
    phases: watch::Receiver<Phase>,
    running: mpsc::Sender<Infallible>,
}

/// Hands one request to the poem endpoint, as poem's own server does, with a deadline on its body
/// and one on the whole request; cancels it when that passes or when the shutdown grace ends, and
/// answers 503 in its place. The answer's body carries `in_flight` until hyper has written it.
async fn respond(
    request: hyper::Request<Incoming>,
    app: Arc<BoxEndpoint<'static>>,
    (local, peer): (SocketAddr, SocketAddr),
    watch: Watch,
) -> Result<hyper::Response<Answer>, Infallible> {
    let Watch {
        mut in_flight,
        body_deadline,
        deadline,
        phases,
        running,
    } = watch;
    let mut request = poem::Request::from((
        request,
        LocalAddr(local.into()),
        RemoteAddr(peer.into()),
        Scheme::HTTP,
    ));
    // Chosen here, not by the middleware, so that a cancelled request is answered and logged with it.
    let id = RequestId::for_headers(request.headers());
    let cancellation = Cancellation::default();
    request.extensions_mut().insert(id.clone());
    request.extensions_mut().insert(cancellation.clone());
    let late_body = Arc::new(AtomicBool::new(false));
    let body = PoemBody::from(request.take_body());
    request.set_body(poem::Body::from(PoemBody::new(BodyDeadline {
        body,
        deadline: body_deadline,
        timer: None,
        late: Arc::clone(&late_body),
    })));
    let (method, uri) = (request.method().clone(), request.uri().clone());
    // An HTTP/1 answer given once the server is stopping says the connection closes after it, so
    // the client sends its next request elsewhere instead of on a socket about to close.
    let http1 = request.version() < poem::http::Version::HTTP_2;
    let stopping = phases.clone();
    let mut answer = Box::pin(app.get_response(request));
    let outcome = tokio::select! {
        biased;
        response = answer.as_mut() => Ok(response),
        () = overrun(deadline, body_deadline, &late_body) => Err(ApiError::RanTooLong),
        () = grace_over(phases) => Err(ApiError::ShuttingDown),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(why) => {
            cancellation.cancel();
            drop(answer);
            // `false` when cancelling its statement did not finish in time: then the log says so.
            let cleaned_up = cancellation.clean_up(CLEAN_UP_LIMIT).await;
            let mut response = id.in_scope(|| why.as_response());
            id.stamp(&mut response);
            add_response_headers(uri.path(), &mut response);
            let uri = loggable_uri(&uri);
            if matches!(why, ApiError::ShuttingDown) {
                tracing::warn!(request_id = %id, %method, %uri, cleaned_up, "request cancelled at shutdown");
            } else {
                tracing::warn!(request_id = %id, %method, %uri, cleaned_up, "request cancelled: it ran past REQUEST_TIMEOUT_SECS");
            }
            response
        }
    };
    in_flight.answering();
    let mut response: hyper::Response<PoemBody> = response.into();
    if http1 && *stopping.borrow() >= Phase::Draining {
        response.headers_mut().insert(
            poem::http::header::CONNECTION,
            poem::http::HeaderValue::from_static("close"),
        );
    }
    Ok(response.map(|body| Answer {
        body,
        _in_flight: in_flight,
        _running: running,
    }))
}

/// Completes when the request has run past `deadline` — unless its body is late then: that delay
/// is the client's, answered 408 by the body's own deadline; only if that answer does not come
/// either is the request cut.
async fn overrun(deadline: Instant, body_deadline: Instant, late_body: &AtomicBool) {
    tokio::time::sleep_until(deadline).await;
    if late_body.load(Ordering::Acquire) {
        tokio::time::sleep_until(body_deadline.max(deadline) + BODY_VERDICT_GRACE).await;
    }
}

/// Completes when the shutdown grace is over (or the server is gone).
async fn grace_over(mut phases: watch::Receiver<Phase>) {
    let _ = phases.wait_for(|phase| *phase >= Phase::Cancelling).await;
}

/// What a connection is doing, as far as its deadlines are concerned.
struct Activity {
    state: Mutex<State>,
    /// Told when a deadline may have moved earlier or appeared.
    changed: Notify,
}

struct State {
    /// Requests whose headers have arrived and whose answer is not yet written.
    requests: usize,
    /// Of these, the ones whose answer is being written.
    answering: usize,
    /// With no request in flight: bytes have arrived, so a request's headers are on their way (a
    /// new connection starts so).
    receiving: bool,
    /// When the current wait began: the connection opened or went idle, the first byte of a
    /// request arrived, or an answer began.
    since: Instant,
    /// When bytes were last written to the client.
    last_write: Instant,
}

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                requests: 0,
                answering: 0,
                receiving: true,
                since: now,
                last_write: now,
            }),
            changed: Notify::new(),
        }
    }

    /// When the connection must be closed unless something happens first, and why.
    fn deadline(&self, limits: &ConnectionConfig) -> Option<(Instant, &'static str)> {
        let state = lock(&self.state);
        if state.requests == 0 {
            if state.receiving {
                Some((
                    state.since + limits.header_timeout,
                    "request headers not received in time",
                ))
            } else {
                Some((
                    state.since.max(state.last_write) + limits.idle_timeout,
                    "idle for too long",
                ))
            }
        } else if state.answering > 0 {
            Some((
                state.since.max(state.last_write) + limits.idle_timeout,
                "the client does not read its answer",
            ))
        } else {
            None
        }
    }

    /// Completes when a deadline has passed, with the reason.
    async fn overdue(&self, limits: &ConnectionConfig) -> &'static str {
        loop {
            match self.deadline(limits) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    /// No request is in flight: the connection is idle or still receiving headers.
    fn between_requests(&self) -> bool {
        lock(&self.state).requests == 0
    }

    fn received(&self) {
        let mut state = lock(&self.state);
        if state.requests == 0 && !state.receiving {
            state.receiving = true;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    fn sent(&self) {
        lock(&self.state).last_write = Instant::now();
    }
}

/// One request from the end of its headers until hyper has written its answer (or dropped it).
struct InFlight {
    activity: Arc<Activity>,
    answering: bool,
}

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        let mut state = lock(&activity.state);
        state.requests += 1;
        state.receiving = false;
        drop(state);
        Self {
            activity,
            answering: false,
        }
    }

    /// The handler has answered; hyper writes the answer from now on.
    fn answering(&mut self) {
        let mut state = lock(&self.activity.state);
        state.answering += 1;
        state.since = Instant::now();
        drop(state);
        self.answering = true;
        self.activity.changed.notify_one();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = lock(&self.activity.state);
        if self.answering {
            state.answering -= 1;
        }
        state.requests -= 1;
        if state.requests == 0 {
            state.receiving = false;
            state.since = Instant::now();
            drop(state);
            self.activity.changed.notify_one();
        }
    }
}

/// An answer's body, holding its request's [`InFlight`] (and its place among the running) until
/// hyper has written it.
struct Answer {
    body: PoemBody,
    _in_flight: InFlight,
    _running: mpsc::Sender<Infallible>,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails with [`io::ErrorKind::TimedOut`] when it is still incomplete at its
/// deadline (`HTTP_BODY_TIMEOUT_SECS` after the headers). Data that has arrived is always handed
/// over; only waiting is refused.
pub struct BodyDeadline {
    body: PoemBody,
    deadline: Instant,
    /// Made the first time the body has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Set while the body is awaited and once it missed its deadline: the request is held up by
    /// its client.
    late: Arc<AtomicBool>,
}

impl HttpBody for BodyDeadline {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.late.store(false, Ordering::Release);
            return Poll::Ready(frame);
        }
        this.late.store(true, Ordering::Release);
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive before its deadline",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the connection's [`Activity`] when bytes come in and go out.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.sent();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.sent();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_accepts_back_off_doubling_to_a_second_and_a_success_starts_over() {
        let mut pacing = AcceptPacing::default();
        let out_of_files = io::Error::from_raw_os_error(24); // EMFILE
        let pauses: Vec<_> = (0..10)
            .filter_map(|_| pacing.failed(&out_of_files))
            .collect();
        let millis: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        pacing.succeeded();
        assert_eq!(pacing.failed(&out_of_files), Some(FIRST_ACCEPT_PAUSE));
        // A client that hung up before it was accepted is no reason to pause.
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(pacing.failed(&aborted), None);
    }
}
