//! The server as a process under faults (issue 12, items 1, 4 and 5): a request that runs past
//! `REQUEST_TIMEOUT_SECS`, `SIGTERM` with a request still running at the end of
//! `SHUTDOWN_GRACE_SECS` or one that finishes within it, and a process out of file descriptors.
//!
//! Each test runs the real binary ([`LoggedServer`]) over a database of its own. A slow request is
//! a `PATCH` waiting for a row lock the test holds (`SELECT … FOR UPDATE` in an open transaction),
//! with the server's own lock and statement timeouts set far out of the way. Whether a cancelled
//! write was kept is read from the database after the lock is released: the row, and that no
//! statement of the server is still waiting to apply it.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{
    LoggedServer, RowLock, TestApp, assert_problem, author_with_news, stored_news, wait_for_db,
};

/// The longest any test waits for something it expects to happen.
const PATIENCE: Duration = Duration::from_secs(15);

/// Settings that keep the database's own limits out of the way: the test's lock is released only
/// when the test says so.
const PATIENT_DATABASE: [(&str, &str); 2] = [
    ("DATABASE_LOCK_TIMEOUT_MS", "600000"),
    ("DATABASE_STATEMENT_TIMEOUT_MS", "600000"),
];

/// The binary on a fresh database with `env`, logging text at `info`.
async fn start(env: &[(&str, &str)], open_files: Option<u32>) -> LoggedServer {
    let mut settings = PATIENT_DATABASE.to_vec();
    settings.extend_from_slice(env);
    LoggedServer::start_with("text", &settings, open_files).await
}

/// Statements of this database waiting for a lock (the server's, blocked by the test's).
const LOCK_WAITERS: &str = "SELECT count(*) FROM pg_stat_activity \
                            WHERE datname = current_database() AND wait_event_type = 'Lock'";

/// Waits until a statement of the server waits for the test's lock.
async fn blocked(app: &TestApp) {
    wait_for_db(
        app,
        LOCK_WAITERS,
        "the PATCH to wait for the row lock",
        PATIENCE,
    )
    .await;
}

/// Waits until no statement waits for the test's lock any more: the one that did was cancelled.
/// (Were it not, it would apply its change as soon as the lock is released.)
async fn no_longer_blocked(app: &TestApp) {
    wait_for_db(
        app,
        &format!("SELECT CASE WHEN ({LOCK_WAITERS}) = 0 THEN 1 ELSE 0 END::bigint"),
        "the cancelled PATCH's statement to be cancelled in PostgreSQL too",
        PATIENCE,
    )
    .await;
}

/// Sends a `PATCH` of news item `id`'s title with `X-Request-Id: request_id`, in a task of its
/// own: it is going to wait.
fn patch_title(
    app: &TestApp,
    id: &str,
    token: &str,
    request_id: &str,
) -> tokio::task::JoinHandle<reqwest::Result<Response>> {
    let request = app
        .authed(Method::PATCH, &format!("/news/{id}"), token)
        .header("x-request-id", request_id)
        .json(&json!({"title": "Changed by a request that was cancelled"}));
    tokio::spawn(request.send())
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a 503 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_its_deadline_is_answered_503_and_its_write_never_lands() {
    // Arrange: a news item, locked by the test
    let server = start(&[("REQUEST_TIMEOUT_SECS", "1")], None).await;
    let app = &server.app;
    let author = author_with_news(app).await;
    let before = stored_news(app, &author.id).await;
    let lock = RowLock::take(app, &author.id).await;

    // Act: a PATCH that waits for the lock longer than the request may run
    let started = Instant::now();
    let patch = patch_title(app, &author.id, &author.token, "deadline-patch-1");
    blocked(app).await;
    let response = tokio::time::timeout(PATIENCE, patch)
        .await
        .expect("an answer, not a hang")
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();

    // Assert: a 503 problem naming the request, about a second after it began
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}, the deadline being 1 s"
    );
    assert!(retry_after(&response) >= 1);
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["instance"], "deadline-patch-1");
    // ... its statement cancelled in PostgreSQL, so nothing of it lands when the lock goes
    no_longer_blocked(app).await;
    lock.release().await;
    assert_eq!(stored_news(app, &author.id).await, before);
    // ... logged as a warning with its id, method and path
    let line = server
        .wait_for_line(|l| l.contains("deadline-patch-1") && l.contains("WARN"))
        .await;
    assert!(line.contains("WARN") && line.contains("PATCH"), "{line}");
    assert!(line.contains(&format!("/news/{}", author.id)), "{line}");
    // ... and its access line says what the client got
    let access = server
        .wait_for_line(|l| l.contains("newsapi::access") && l.contains("deadline-patch-1"))
        .await;
    assert!(
        access.contains("status=503") && access.contains("cancelled=true"),
        "{access}"
    );
    // ... and so do its metrics
    let (counted, metrics) = app
        .has_metric_line(r#"http_requests_total{method="PATCH",route="/news/{id}",status="503"} 1"#)
        .await;
    assert!(counted, "{metrics}");
    // ... and the server serves on: the same change, asked again, is made once
    let response = app
        .authed(
            Method::PATCH,
            &format!("/news/{}", author.id),
            &author.token,
        )
        .json(&json!({"title": "Changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after = stored_news(app, &author.id).await;
    assert!(after.starts_with("Changed|"), "{after}");
    assert!(after.ends_with("|2"), "one write, version 2: {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_cancels_a_request_still_running_after_the_grace_with_a_503_and_keeps_nothing() {
    // Arrange: a PATCH waiting for the test's lock, with a grace of 1 s
    let server = start(&[("SHUTDOWN_GRACE_SECS", "1")], None).await;
    let app = &server.app;
    let author = author_with_news(app).await;
    let before = stored_news(app, &author.id).await;
    let lock = RowLock::take(app, &author.id).await;
    let patch = patch_title(app, &author.id, &author.token, "shutdown-patch-1");
    blocked(app).await;

    // Act
    server.terminate();
    let response = tokio::time::timeout(PATIENCE, patch)
        .await
        .expect("an answer, not a hang")
        .unwrap()
        .expect("an answer, not a closed connection");
    let status = server.exited(PATIENCE).await;

    // Assert: a 503 problem that closes the connection, and a clean exit
    assert_eq!(
        response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close")
    );
    assert!(retry_after(&response) >= 1);
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["instance"], "shutdown-patch-1");
    let status = status.expect("the server exits after the grace");
    assert!(status.success(), "exit status {status}");
    // ... the request logged as cancelled, by its id
    // (The process has exited; its last lines may still be on their way through the pipe.)
    let line = server
        .wait_for_line(|l| l.contains("shutdown-patch-1") && l.contains("WARN"))
        .await;
    assert!(
        line.contains("WARN") && line.contains("cancelled at shutdown"),
        "{line}"
    );
    // ... and nothing of it lands, even once the lock is gone
    no_longer_blocked(app).await;
    lock.release().await;
    assert_eq!(stored_news(app, &author.id).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_request_in_flight_finish_within_the_grace() {
    // Arrange: a PATCH waiting for the test's lock, with a grace of 30 s
    let server = start(&[("SHUTDOWN_GRACE_SECS", "30")], None).await;
    let app = &server.app;
    let author = author_with_news(app).await;
    let lock = RowLock::take(app, &author.id).await;
    let patch = patch_title(app, &author.id, &author.token, "drained-patch-1");
    blocked(app).await;

    // Act: SIGTERM; once the server no longer accepts connections, the lock goes
    server.terminate();
    let addr = app.address.trim_start_matches("http://").to_string();
    let refusing = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(
            Instant::now() < refusing,
            "the server still accepts after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.release().await;
    let response = tokio::time::timeout(PATIENCE, patch)
        .await
        .expect("an answer, not a hang")
        .unwrap()
        .unwrap();
    let status = server.exited(PATIENCE).await;

    // Assert: the request finished and its write is kept; the server exits cleanly
    assert_eq!(response.status(), 200);
    let stored = stored_news(app, &author.id).await;
    assert!(stored.starts_with("Changed by a request"), "{stored}");
    let status = status.expect("the server exits once its last request is done");
    assert!(status.success(), "exit status {status}");
    assert!(
        !server.log().contains("request cancelled"),
        "{}",
        server.log()
    );
}

/// The CPU time `pid` has used so far, in clock ticks (`/proc/<pid>/stat`: utime + stime).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf runs");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What the server writes when `accept` keeps failing.
const ACCEPT_WARNING: &str = "accepting connections fails";

#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_the_server_backs_off_warns_once_and_recovers() {
    // Arrange: a server allowed 64 open files, and connections that stay open until dropped
    let server = start(
        &[
            ("HTTP_HEADER_TIMEOUT_SECS", "120"),
            ("HTTP_IDLE_TIMEOUT_SECS", "120"),
        ],
        Some(64),
    )
    .await;
    let app = &server.app;
    let healthz = format!("{}/healthz", app.address);
    assert_eq!(reqwest::get(&healthz).await.unwrap().status(), 200);
    let addr = app.address.trim_start_matches("http://").to_string();

    // Act: more connections than it has descriptors for; the rest wait in the listen backlog
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    server.wait_for_line(|l| l.contains(ACCEPT_WARNING)).await;
    let ticks = cpu_ticks(server.pid());
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(server.pid()) - ticks;
    let window = watched.elapsed();

    // Assert: no busy loop (a spinning accept loop uses a whole core)...
    let allowed = ticks_per_second() * u64::try_from(window.as_millis()).unwrap() * 3 / 10 / 1000;
    assert!(
        used <= allowed,
        "{used} ticks of CPU in {window:?} while out of descriptors (at most {allowed})"
    );
    // ... one warning, not one per failure
    let warnings = server.log().matches(ACCEPT_WARNING).count();
    assert!(warnings <= 2, "{warnings} warnings:\n{}", server.log());
    let line = server.wait_for_line(|l| l.contains(ACCEPT_WARNING)).await;
    assert!(
        line.contains("WARN") && line.contains("open_files_limit"),
        "{line}"
    );
    // ... and it serves again soon after descriptors free up
    drop(held);
    let response = tokio::time::timeout(Duration::from_secs(5), reqwest::get(&healthz))
        .await
        .expect("served within 5 s of the descriptors freeing up")
        .unwrap();
    assert_eq!(response.status(), 200);
    server
        .wait_for_line(|l| l.contains("accepting connections again"))
        .await;
}
