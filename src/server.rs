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
//!   the answer). The handler's own time is bounded by its own limits (pool and queue timeouts),
//!   not here; but once the answer is being written, a client that takes none of it for
//!   `HTTP_IDLE_TIMEOUT_SECS` is cut off.
//!
//! A deadline that passes closes the connection (dropping it: the client reads end-of-file, or a
//! reset when it had sent more). Per connection this costs one task, hyper's buffers, one timer
//! and one small mutex-guarded state.

use std::{
    collections::{HashMap, hash_map::Entry},
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
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
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc, watch},
    time::{Instant, Sleep},
};

use crate::config::ConnectionConfig;

/// How long the requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The body type poem's requests and responses carry.
type PoemBody = BoxBody<Bytes, io::Error>;

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the requests
/// in flight finish (closing idle connections at once) for up to [`SHUTDOWN_GRACE`], and closes
/// whatever is left.
pub async fn serve(
    listener: TcpListener,
    app: BoxEndpoint<'static>,
    limits: ConnectionConfig,
    trusted_proxies: &[IpAddr],
    shutdown: impl Future<Output = ()>,
) {
    let app = Arc::new(app);
    let slots = Slots::new(limits.max_per_ip, trusted_proxies);
    // `true` once the server drains; dropped (which every connection sees) when it stops.
    let (stop, stopping) = watch::channel(false);
    // Every connection holds a sender; `recv` answers `None` once all of them are gone.
    let (running, mut all_closed) = mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
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
            stopping: stopping.clone(),
            _slot: slot,
            _running: running.clone(),
        }));
    }
    drop(listener);
    let _ = stop.send(true);
    drop(running);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight after the grace period are cut off"
        );
    }
    tracing::info!("server stopped");
}

/// A failed `accept`. One that concerns a single client is forgotten; anything else (most often
/// running out of file descriptors) would fail again at once, so the loop pauses briefly rather
/// than spin.
async fn accept_failed(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
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
    stopping: watch::Receiver<bool>,
    _slot: Slot,
    _running: mpsc::Sender<Infallible>,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        stream,
        peer,
        local,
        app,
        limits,
        mut stopping,
        _slot,
        _running,
    } = connection;
    let activity = Arc::new(Activity::new());
    let service = service_fn({
        let activity = Arc::clone(&activity);
        move |request| {
            respond(
                request,
                Arc::clone(&app),
                (local, peer),
                InFlight::start(Arc::clone(&activity)),
                Instant::now() + limits.body_timeout,
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
    loop {
        tokio::select! {
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
            changed = stopping.changed() => {
                if changed.is_err() {
                    // The server has stopped; whatever is left is cut off.
                    return;
                }
                if activity.between_requests() {
                    // Idle, or headers still on their way: nothing to finish.
                    return;
                }
                // Finish the requests in flight, then close.
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Hands one request to the poem endpoint, as poem's own server does, with a deadline on its body;
/// the answer's body carries `in_flight` until hyper has written it.
async fn respond(
    request: hyper::Request<Incoming>,
    app: Arc<BoxEndpoint<'static>>,
    (local, peer): (SocketAddr, SocketAddr),
    mut in_flight: InFlight,
    body_deadline: Instant,
) -> Result<hyper::Response<Answer>, Infallible> {
    let mut request = poem::Request::from((
        request,
        LocalAddr(local.into()),
        RemoteAddr(peer.into()),
        Scheme::HTTP,
    ));
    let body = PoemBody::from(request.take_body());
    request.set_body(poem::Body::from(PoemBody::new(BodyDeadline {
        body,
        deadline: body_deadline,
        timer: None,
    })));
    let response = app.get_response(request).await;
    in_flight.answering();
    let response: hyper::Response<PoemBody> = response.into();
    Ok(response.map(|body| Answer {
        body,
        _in_flight: in_flight,
    }))
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

/// An answer's body, holding its request's [`InFlight`] until hyper has written it.
struct Answer {
    body: PoemBody,
    _in_flight: InFlight,
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
            return Poll::Ready(frame);
        }
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
