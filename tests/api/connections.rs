//! Connection deadlines and the per-address cap, attacked with real sockets: partial headers, a
//! trickled body, idle keep-alive connections, a client that never reads its answers, more
//! connections from one address than it may have, and 500 slow-header connections held open while
//! others use the API. Client sockets are bound to 127.0.0.2, 127.0.0.3, … (all of 127.0.0.0/8 is
//! loopback) to come from several addresses.
//!
//! Every wait is for an observed condition (an answer, the connection closing) with a bounded
//! timeout; the deadlines are set short (1 s) to keep the tests fast.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use newsapi::{config::Config, startup::Application};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpSocket,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::Instant,
};

use crate::helpers::{PASSWORD, TEST_SECRET, TestDatabase, server_addr, spawn_app_with, users};

/// The longest any test waits for something it expects to happen.
const PATIENCE: Duration = Duration::from_secs(15);

/// One HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A raw HTTP/1.1 connection from `127.0.0.<host>`: what a test writes is exactly what the server
/// gets, when the test chooses.
struct Raw {
    read: OwnedReadHalf,
    /// `None` once handed to [`Raw::trickle`].
    write: Option<OwnedWriteHalf>,
    /// Bytes read but not yet consumed.
    buffer: Vec<u8>,
}

impl Raw {
    async fn from(server: SocketAddr, host: u8) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))
            .unwrap();
        let (read, write) = socket.connect(server).await.unwrap().into_split();
        Self {
            read,
            write: Some(write),
            buffer: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let write = self.write.as_mut().expect("not trickling");
        write.write_all(bytes).await.unwrap();
    }

    /// From now on writes `bytes` one at a time, every `every`, until done or the server hangs
    /// up.
    fn trickle(&mut self, bytes: Vec<u8>, every: Duration) {
        let mut write = self.write.take().expect("not trickling already");
        tokio::spawn(async move {
            for byte in bytes {
                tokio::time::sleep(every).await;
                if write.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Reads more bytes; `false` when the server closed the connection (or reset it).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(PATIENCE, self.read.read(&mut chunk)).await {
            Err(_) => panic!("neither data nor end-of-file from the server within {PATIENCE:?}"),
            Ok(Ok(0) | Err(_)) => false,
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next answer, or `None` if the server closes the connection first.
    async fn try_answer(&mut self) -> Option<Answer> {
        let head_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await {
                assert!(
                    self.buffer.is_empty(),
                    "the connection closed inside an answer's head: {:?}",
                    String::from_utf8_lossy(&self.buffer)
                );
                return None;
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_start = head_end + 4;
        while self.buffer.len() < body_start + length {
            assert!(self.fill().await, "the connection closed inside an answer");
        }
        let body = self.buffer[body_start..body_start + length].to_vec();
        self.buffer.drain(..body_start + length);
        Some(Answer {
            status: status.unwrap(),
            headers,
            body,
        })
    }

    /// The next answer; fails the test if the connection closes first.
    async fn answer(&mut self) -> Answer {
        self.try_answer()
            .await
            .expect("the connection closed before an answer")
    }

    /// Waits for the server to close the connection, and returns what it sent before (besides
    /// answers already read).
    async fn closed(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buffer)
    }

    /// Whether the connection is open right now: nothing to read, and no end-of-file.
    fn still_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.read.try_read(&mut byte), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: newsapi\r\n\r\n").into_bytes()
}

/// The head of a JSON `POST` whose body is `length` bytes.
fn post_head(path: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: newsapi\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

fn post_json(path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let mut request = post_head(path, body.len());
    request.extend_from_slice(body.as_bytes());
    request
}

/// Asserts `elapsed` is at least about `deadline`: the server did not cut in early. (Only a lower
/// bound: a slow machine makes everything later, never earlier.)
fn not_before(elapsed: Duration, deadline: Duration, what: &str) {
    assert!(
        elapsed + Duration::from_millis(100) >= deadline,
        "{what} after {elapsed:?}, before its deadline of {deadline:?}"
    );
}

/// A server on its own database with `extra` settings, stopped by sending on the channel; its task
/// ends when it has stopped.
async fn stoppable_server(
    extra: &[(&str, &str)],
) -> (
    TestDatabase,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let db = TestDatabase::create().await;
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", TEST_SECRET.to_string()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_string()),
        ("BCRYPT_COST", "4".to_string()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_string())));
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let app = Application::build(&config).await.unwrap();
    let server = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    (db, server, stop, running)
}

/// Whether a new connection from `127.0.0.<host>` is served (`GET /healthz` answered), rather than
/// closed at once.
async fn served_from(server: SocketAddr, host: u8) -> bool {
    let mut raw = Raw::from(server, host).await;
    // A connection closed at once may refuse even the request.
    let write = raw.write.as_mut().expect("not trickling");
    if write.write_all(&get("/healthz")).await.is_err() {
        return false;
    }
    match raw.try_answer().await {
        Some(answer) => {
            assert_eq!(answer.status, 200);
            true
        }
        None => false,
    }
}

/// Polls [`served_from`] until it holds, failing the test after [`PATIENCE`].
async fn wait_until_served_from(server: SocketAddr, host: u8, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !served_from(server, host).await {
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} in vain for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_that_do_not_arrive_in_time_close_the_connection_however_they_trickle() {
    let app = spawn_app_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let server = server_addr(&app);

    // Partial headers, then more header lines, one byte every 200 ms, for minutes: the trickle
    // does not extend the deadline, which counts from the first byte.
    let mut slow = Raw::from(server, 2).await;
    let started = Instant::now();
    slow.send(b"GET /healthz HTTP/1.1\r\nHost: newsapi\r\n")
        .await;
    slow.trickle(b"X-Slow: 1\r\n".repeat(100), Duration::from_millis(200));
    assert_eq!(slow.closed().await, b"", "an answer to partial headers");
    not_before(
        started.elapsed(),
        Duration::from_secs(1),
        "partial headers closed",
    );

    // A connection that sends nothing at all is closed the same way.
    let mut silent = Raw::from(server, 3).await;
    let started = Instant::now();
    assert_eq!(silent.closed().await, b"");
    not_before(
        started.elapsed(),
        Duration::from_secs(1),
        "a silent connection closed",
    );

    // A second request whose headers trickle on a kept-alive connection: the same deadline.
    let mut kept = Raw::from(server, 4).await;
    kept.send(&get("/healthz")).await;
    assert_eq!(kept.answer().await.status, 200);
    kept.send(b"GET /healthz HTTP/1.1\r\n").await;
    let started = Instant::now();
    kept.trickle(b"X-Slow: 1\r\n".repeat(100), Duration::from_millis(200));
    assert_eq!(kept.closed().await, b"", "an answer to partial headers");
    not_before(
        started.elapsed(),
        Duration::from_secs(1),
        "partial headers of a second request closed",
    );

    // Other clients are served throughout.
    assert!(served_from(server, 5).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_body_gets_408_and_the_connection_closes_at_the_body_deadline() {
    let app = spawn_app_with(&[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let server = server_addr(&app);
    let body = json!({"email": "slow@example.com", "password": PASSWORD}).to_string();

    // The headers at once, then the body one byte every 200 ms: it would take 14 s.
    let mut raw = Raw::from(server, 2).await;
    raw.send(&post_head("/signup", body.len())).await;
    let started = Instant::now();
    raw.trickle(body.into_bytes(), Duration::from_millis(200));
    let answer = raw.answer().await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["status"], 408);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(raw.closed().await, b"", "anything after the 408");
    not_before(started.elapsed(), Duration::from_secs(1), "the 408");
    assert_eq!(users(&app).await, 0, "a body cut off creates nothing");

    // Operations that never read a body answer, and the trickle cannot hold the connection open
    // after that (the body would take 40 s).
    for head in [
        "GET /healthz HTTP/1.1\r\nHost: newsapi\r\nContent-Length: 200\r\n\r\n",
        "POST /nowhere HTTP/1.1\r\nHost: newsapi\r\nContent-Length: 200\r\n\r\n",
        "POST /signout/all HTTP/1.1\r\nHost: newsapi\r\nContent-Length: 200\r\n\r\n",
    ] {
        let mut raw = Raw::from(server, 3).await;
        raw.send(head.as_bytes()).await;
        raw.trickle(vec![b' '; 200], Duration::from_millis(200));
        let answer = raw.answer().await;
        assert!(
            [200, 401, 404].contains(&answer.status),
            "{head}: {answer:?}"
        );
        raw.closed().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_body_gets_its_408_even_past_the_request_deadline() {
    // A request deadline (1 s) before the body's (2 s): the body is late, the client's delay, so
    // the answer is the body's 408, not the 503 of a request the server took too long over.
    let app = spawn_app_with(&[
        ("REQUEST_TIMEOUT_SECS", "1"),
        ("HTTP_BODY_TIMEOUT_SECS", "2"),
    ])
    .await;
    let body = json!({"email": "slow@example.com", "password": PASSWORD}).to_string();
    let mut raw = Raw::from(server_addr(&app), 2).await;
    raw.send(&post_head("/signup", body.len())).await;
    let started = Instant::now();
    raw.trickle(body.into_bytes(), Duration::from_millis(200));
    let answer = raw.answer().await;
    assert_eq!(answer.status, 408, "{answer:?}");
    not_before(started.elapsed(), Duration::from_secs(2), "the 408");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(&[("HTTP_IDLE_TIMEOUT_SECS", "1")]).await;
    let server = server_addr(&app);

    let mut raw = Raw::from(server, 2).await;
    raw.send(&get("/healthz")).await;
    let answer = raw.answer().await;
    assert_eq!(answer.status, 200);
    assert_ne!(answer.header("connection"), Some("close"), "kept alive");
    let idle_since = Instant::now();
    assert_eq!(raw.closed().await, b"");
    not_before(
        idle_since.elapsed(),
        Duration::from_secs(1),
        "an idle connection closed",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_within_the_deadlines_is_unaffected_and_keep_alive_reuse_works() {
    let app = spawn_app_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("HTTP_BODY_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "30"),
    ])
    .await;
    let server = server_addr(&app);

    // Several requests, one after the other, on one connection.
    let mut raw = Raw::from(server, 2).await;
    raw.send(&get("/healthz")).await;
    assert_eq!(raw.answer().await.status, 200);
    raw.send(&post_json(
        "/signup",
        &json!({"email": "ada@example.com", "password": PASSWORD}),
    ))
    .await;
    assert_eq!(raw.answer().await.status, 201);
    // A body in two parts, well within its deadline.
    let body = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    raw.send(&post_head("/signin", body.len())).await;
    let (first, second) = body.as_bytes().split_at(10);
    raw.send(first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.send(second).await;
    let answer = raw.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let token = answer.json()["access_token"].as_str().unwrap().to_string();

    // Idle for longer than the header and body deadlines, less than the idle timeout: the
    // connection is still there, and serves the next request.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        raw.still_open(),
        "closed while idle within the idle timeout"
    );
    raw.send(
        format!("GET /whoami HTTP/1.1\r\nHost: newsapi\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let answer = raw.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["email"], "ada@example.com");

    // And an ordinary client reuses its pooled connection for request after request.
    for _ in 0..5 {
        let response = app.request(Method::GET, "/healthz").send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_over_the_per_address_cap_is_closed_at_once_while_other_addresses_connect() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS_PER_IP", "3")]).await;
    let server = server_addr(&app);

    // Three kept-alive connections from 127.0.0.2, each seen to be served.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut raw = Raw::from(server, 2).await;
        raw.send(&get("/healthz")).await;
        assert_eq!(raw.answer().await.status, 200);
        held.push(raw);
    }

    // The fourth is closed without an answer, however complete its request.
    assert!(
        !served_from(server, 2).await,
        "a fourth connection from 127.0.0.2 was served"
    );
    // Another address connects as usual, and so does the test's ordinary client (127.0.0.1).
    assert!(served_from(server, 3).await);
    let response = app.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(response.status(), 200);
    // The three are still there.
    for raw in &mut held {
        raw.send(&get("/healthz")).await;
        assert_eq!(raw.answer().await.status, 200);
    }

    // One closes: its place is free again.
    drop(held.pop());
    wait_until_served_from(server, 2, "a place freed by a closed connection").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_its_answers_is_cut_off_after_the_idle_timeout() {
    // One connection per address, so that whether the stalled one is still open shows in whether
    // a second from the same address is served.
    let app = spawn_app_with(&[
        ("HTTP_IDLE_TIMEOUT_SECS", "1"),
        ("MAX_CONNECTIONS_PER_IP", "1"),
    ])
    .await;
    let server = server_addr(&app);

    // 500 pipelined requests for the 34 KB spec, 17 MB of answers: far more than the socket
    // buffers hold. The client reads none of it.
    let mut stalled = Raw::from(server, 2).await;
    stalled.send(&get("/openapi.yaml").repeat(500)).await;
    assert!(
        !served_from(server, 2).await,
        "the stalled connection does not hold its place"
    );
    wait_until_served_from(server, 2, "the stalled connection to be cut off").await;
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn ordinary_requests_are_served_while_500_slow_header_connections_are_open() {
    // 125 slow connections from each of four addresses: as many as each may have, so that one more
    // being refused shows the server holds them all. The header deadline is long enough that none
    // runs out during the test.
    const PER_ADDRESS: usize = 125;
    const HOSTS: [u8; 4] = [2, 3, 4, 5];
    let app = spawn_app_with(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "120"),
        ("MAX_CONNECTIONS_PER_IP", &PER_ADDRESS.to_string()),
    ])
    .await;
    let server = server_addr(&app);
    let mut slow = Vec::new();
    for host in HOSTS {
        for _ in 0..PER_ADDRESS {
            let mut raw = Raw::from(server, host).await;
            raw.send(b"GET /healthz HTTP/1.1\r\nHost: newsapi\r\nX-Slow: ")
                .await;
            slow.push(raw);
        }
    }
    // All 500 are held: one more from each address is refused.
    for host in HOSTS {
        assert!(
            !served_from(server, host).await,
            "a connection over the cap from 127.0.0.{host} was served"
        );
    }

    // Ordinary requests, from 127.0.0.1, are served normally.
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", app.address);
    let response = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .post(url("/signup"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = client
        .post(url("/signin"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // And the slow connections are still open, none of them answered.
    let open = slow.iter().filter(|raw| raw.still_open()).count();
    assert_eq!(
        open,
        slow.len(),
        "slow connections closed before their deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_idle_and_slow_connections_at_once_and_lets_requests_in_flight_finish() {
    let (_db, server, stop, running) = stoppable_server(&[]).await;

    let mut idle = Raw::from(server, 2).await;
    idle.send(&get("/healthz")).await;
    assert_eq!(idle.answer().await.status, 200);
    let mut partial = Raw::from(server, 3).await;
    partial.send(b"GET /healthz HTTP/1.1\r\nHost: ").await;
    // A sign-up whose body is half sent when the server is told to stop.
    let body = json!({"email": "ada@example.com", "password": PASSWORD}).to_string();
    let (first, second) = body.as_bytes().split_at(10);
    let mut in_flight = Raw::from(server, 4).await;
    let head = String::from_utf8(post_head("/signup", body.len())).unwrap();
    let head = head.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    in_flight.send(head.as_bytes()).await;
    // `100 Continue` shows the handler has begun to read the body: the request is in flight.
    assert_eq!(in_flight.answer().await.status, 100);
    in_flight.send(first).await;

    stop.send(()).unwrap();
    assert_eq!(idle.closed().await, b"", "the idle connection");
    assert_eq!(partial.closed().await, b"", "the slow-header connection");
    in_flight.send(second).await;
    let answer = in_flight.answer().await;
    assert_eq!(answer.status, 201, "the request in flight: {answer:?}");
    in_flight.closed().await;
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("the server stops once its requests are done")
        .unwrap()
        .unwrap();
    // The listener is gone.
    assert!(
        tokio::net::TcpStream::connect(server).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_shutdown_linger_an_idle_connection_stays_open_and_its_next_request_is_answered_connection_close()
 {
    let (_db, server, stop, running) =
        stoppable_server(&[("SHUTDOWN_IDLE_LINGER_SECS", "2")]).await;
    // Two keep-alive connections, idle when the server is told to stop.
    let mut used = Raw::from(server, 2).await;
    let mut unused = Raw::from(server, 3).await;
    for raw in [&mut used, &mut unused] {
        raw.send(&get("/healthz")).await;
        let answer = raw.answer().await;
        assert_eq!(answer.status, 200);
        assert!(
            !answer
                .headers
                .iter()
                .any(|(name, value)| name == "connection" && value == "close"),
            "kept alive while serving: {answer:?}"
        );
    }
    let stopping = Instant::now();
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A request on one of them within the linger is answered, and says the connection closes.
    assert!(used.still_open(), "closed at once despite the linger");
    used.send(&get("/healthz")).await;
    let answer = used.answer().await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .headers
            .iter()
            .any(|(name, value)| name == "connection" && value == "close"),
        "no Connection: close while stopping: {answer:?}"
    );
    assert_eq!(used.closed().await, b"", "closed after that answer");
    // The other one, never used again, is closed when the linger ends, not before.
    assert_eq!(unused.closed().await, b"");
    not_before(
        stopping.elapsed(),
        Duration::from_secs(2),
        "the unused connection's close",
    );
    tokio::time::timeout(PATIENCE, running)
        .await
        .expect("the server stops once the linger is over")
        .unwrap()
        .unwrap();
}
