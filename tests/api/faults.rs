//! Database faults injected for real: a proxy between the server and PostgreSQL that is killed,
//! reset or made silent ([`Proxy`]), a row or table lock held by the test, a pool of two, and
//! start-up against a database that is not there. Each asserts the documented answer (503
//! problem+json with `Retry-After`, "busy" or "unreachable", never a 500) and counts rows
//! afterwards.

use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::{
    helpers::{
        AuthorWithNews, PASSWORD, RowLock, TEST_SECRET, TestApp, TestDatabase, assert_problem_for,
        author_with_news, db_count, db_execute, news_rows, spawn_app_via, spawn_app_with,
        stored_news, wait_for_db,
    },
    proxy::Proxy,
};

/// Small limits, so that each fault is answered in well under a few seconds.
const FAST: &[(&str, &str)] = &[
    ("DATABASE_STATEMENT_TIMEOUT_MS", "500"),
    ("DATABASE_LOCK_TIMEOUT_MS", "300"),
    ("DATABASE_CONNECT_TIMEOUT_SECS", "1"),
    ("DATABASE_POOL_TIMEOUT_MS", "500"),
];

/// A server over a fresh database, reaching it through a proxy the test controls.
async fn app_behind_proxy(extra: &[(&str, &str)]) -> (TestApp, Proxy) {
    let proxy = Proxy::start().await;
    let db = TestDatabase::create().await;
    let url = proxy.url(&db.url);
    let settings: Vec<(&str, &str)> = FAST.iter().chain(extra).copied().collect();
    (spawn_app_via(db, &url, &settings).await, proxy)
}

/// The database's 503 of `kind` ("busy" or "unreachable"): problem+json, the `Retry-After` of
/// its kind, a detail that says which.
async fn assert_unavailable(response: Response, kind: &str, case: &str) -> Value {
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = assert_problem_for(response, 503, case).await;
    let (expected, words) = match kind {
        "busy" => ("1", "is busy"),
        _ => ("5", "cannot be reached"),
    };
    assert_eq!(
        retry_after.as_deref(),
        Some(expected),
        "{case}: Retry-After"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(words),
        "{case}: detail {detail:?} says {kind}"
    );
    body
}

/// Polls `GET /news` until it is 200 again, for at most `within`.
async fn until_served(app: &TestApp, token: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let response = app
            .authed(Method::GET, "/news", token)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return;
        }
        assert!(
            response.status() == 503,
            "while recovering: {}",
            response.status()
        );
        assert!(
            Instant::now() < deadline,
            "not served again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_database_answers_a_burst_with_503_only_and_serves_again_once_restored() {
    // Arrange
    let (app, proxy) = app_behind_proxy(&[]).await;
    let author = author_with_news(&app).await;

    // Act: the database goes away under a burst of reads and writes
    proxy.kill();
    let burst = (0..16).map(|i| {
        let request = if i % 2 == 0 {
            app.authed(Method::GET, "/news", &author.token)
        } else {
            app.authed(Method::POST, "/news", &author.token)
                .json(&json!({"title": format!("During the outage {i}"), "body": "B"}))
        };
        async move { request.send().await.unwrap() }
    });
    let responses = futures_join_all(burst).await;

    // Assert: every one a 503 saying the database cannot be reached
    for (i, response) in responses.into_iter().enumerate() {
        assert_unavailable(response, "unreachable", &format!("request {i}")).await;
    }
    proxy.restore();
    until_served(&app, &author.token, Duration::from_secs(5)).await;
    assert_eq!(
        news_rows(&app).await,
        1,
        "nothing written during the outage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_reset_mid_query_under_load_are_503_never_500() {
    // Arrange: two writes blocked in the database on a row the test holds, and writers running
    let (app, proxy) = app_behind_proxy(&[
        ("DATABASE_LOCK_TIMEOUT_MS", "5000"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "6000"),
        ("DATABASE_POOL_SIZE", "6"),
    ])
    .await;
    let author = author_with_news(&app).await;
    let lock = RowLock::take(&app, &author.id).await;
    let blocked = two_patches_waiting_on_the_row(&app, &author, "Blocked").await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (app_client, address, token) = (
                app.client.clone(),
                app.address.clone(),
                author.token.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..15 {
                    let response = app_client
                        .post(format!("{address}/news"))
                        .bearer_auth(&token)
                        .json(&json!({"title": format!("Under load {w}-{i}"), "body": "B"}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    if status == 503 {
                        assert_unavailable(response, "unreachable", "a write under resets").await;
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();

    // Act: reset every connection, three times, while all this runs
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        proxy.reset();
    }

    // Assert: the blocked writes lost their connection mid-query: 503, not 500
    for blocked in blocked {
        let response = blocked.await.unwrap();
        assert_unavailable(response, "unreachable", "a write reset mid-query").await;
    }
    let mut created = 0;
    let mut refused = 0;
    for writer in writers {
        for status in writer.await.unwrap() {
            match status {
                201 => created += 1,
                503 => refused += 1,
                other => panic!("a write under resets answered {other}"),
            }
        }
    }
    lock.release().await;
    // A write reset while its COMMIT was under way (or while it waited for a lock: PostgreSQL
    // notices a vanished client only when it next writes to it) may have committed
    // unacknowledged; none is lost, none is doubled.
    let rows = news_rows(&app).await - 1;
    assert!(
        (created..=created + refused).contains(&rows),
        "{rows} rows for {created} created and {refused} refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_database_ends_requests_with_503_in_time_and_readyz_says_so_within_a_second() {
    // Arrange
    let (app, proxy) = app_behind_proxy(&[]).await;
    let author = author_with_news(&app).await;

    // Act: the network goes silent, sockets open
    proxy.silent();
    let started = Instant::now();
    let requests = (0..3).map(|_| {
        let request = app.authed(Method::GET, &format!("/news/{}", author.id), &author.token);
        async move { request.send().await.unwrap() }
    });
    let responses = futures_join_all(requests).await;
    let took = started.elapsed();

    // Assert: statement_timeout (0.5 s) and the client's margin (1 s), not the partition's length
    for response in responses {
        assert_unavailable(response, "unreachable", "a read on a silent database").await;
    }
    assert!(took < Duration::from_secs(4), "the reads took {took:?}");
    let started = Instant::now();
    let ready = app.request(Method::GET, "/readyz").send().await.unwrap();
    let took = started.elapsed();
    assert_unavailable(ready, "unreachable", "readyz on a silent database").await;
    assert!(took < Duration::from_millis(1500), "/readyz took {took:?}");
    let live = app.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(live.status(), 200);

    proxy.restore();
    until_served(&app, &author.token, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_lock_makes_a_patch_503_busy_after_the_lock_timeout_and_changes_nothing() {
    // Arrange
    let app = spawn_app_with(FAST).await;
    let author = author_with_news(&app).await;
    let before = stored_news(&app, &author.id).await;
    let lock = RowLock::take(&app, &author.id).await;
    let patch = || {
        app.authed(
            Method::PATCH,
            &format!("/news/{}", author.id),
            &author.token,
        )
        .json(&json!({"title": "Changed"}))
    };

    // Act
    let started = Instant::now();
    let response = patch().send().await.unwrap();
    let took = started.elapsed();

    // Assert
    assert_unavailable(response, "busy", "a PATCH on a locked row").await;
    assert!(took < Duration::from_secs(3), "the PATCH took {took:?}");
    assert_eq!(stored_news(&app, &author.id).await, before);
    lock.release().await;
    let response = patch().send().await.unwrap();
    assert_eq!(response.status(), 200, "once the lock is released");
    assert!(stored_news(&app, &author.id).await.starts_with("Changed|"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_cut_off_by_the_lock_timeout_is_rolled_back_and_its_connection_serves_on() {
    // Arrange: one connection in the pool; the sign-up's second insert waits on a table lock
    let app = spawn_app_with(&[FAST, &[("DATABASE_POOL_SIZE", "1")]].concat()).await;
    let mut holder = app.db.connect().await;
    execute(&mut holder, "BEGIN").await;
    execute(&mut holder, "LOCK TABLE user_credentials IN EXCLUSIVE MODE").await;
    let signup = json!({"email": "late@example.com", "password": PASSWORD});

    // Act
    let response = app.signup(&signup).await;

    // Assert: 503 busy, and the user row the transaction had inserted is gone
    assert_unavailable(response, "busy", "a sign-up behind a table lock").await;
    execute(&mut holder, "ROLLBACK").await;
    let users = "SELECT count(*) FROM users WHERE email = 'late@example.com'";
    assert_eq!(
        db_count(&app, users).await,
        0,
        "the user row was rolled back"
    );
    let response = app.signup(&signup).await;
    assert_eq!(
        response.status(),
        201,
        "the pool's one connection serves on"
    );
    assert_eq!(db_count(&app, users).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_of_two_held_busy_answers_a_third_request_503_busy_and_stays_ready() {
    // Arrange: both connections held by PATCHes waiting on a row the test locks
    let app = spawn_app_with(&[
        ("DATABASE_POOL_SIZE", "2"),
        ("DATABASE_POOL_TIMEOUT_MS", "300"),
        ("DATABASE_LOCK_TIMEOUT_MS", "5000"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "6000"),
    ])
    .await;
    let author = author_with_news(&app).await;
    let lock = RowLock::take(&app, &author.id).await;
    let held = two_patches_waiting_on_the_row(&app, &author, "Held").await;

    // Act
    let third = app
        .authed(Method::GET, "/news", &author.token)
        .send()
        .await
        .unwrap();
    let ready = app.request(Method::GET, "/readyz").send().await.unwrap();

    // Assert
    assert_unavailable(third, "busy", "a third request with both connections held").await;
    assert_eq!(ready.status(), 200, "a busy pool is not a database down");
    lock.release().await;
    for held in held {
        assert_eq!(held.await.unwrap().status(), 200, "a held PATCH, released");
    }
    let version = "SELECT version FROM news";
    assert_eq!(db_count(&app, version).await, 3, "two writes, each once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_started_without_its_database_exits_within_the_wait_naming_the_cause() {
    // Arrange: a closed port, and a database that accepts connections and never answers
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let proxy = Proxy::start().await;
    proxy.silent();
    let silent = proxy.url("postgres://postgres:s3cret-pw@127.0.0.1:5432/postgres");
    let cases = [
        (
            format!("postgres://postgres:s3cret-pw@127.0.0.1:{closed}/postgres"),
            "refused",
        ),
        (silent, "no answer within"),
    ];

    // Act
    let runs = cases.iter().map(|(url, _)| start_binary(url.clone()));
    let outcomes = futures_join_all(runs).await;

    // Assert: exit 1 within the wait, each attempt logged, one last line with the cause
    for ((_, cause), (output, took)) in cases.iter().zip(outcomes) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{cause}: {stderr}");
        assert!(
            took < Duration::from_secs(6),
            "{cause}: exited after {took:?}"
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("newsapi: cannot connect to the database 127.0.0.1:")
                && last.contains(cause),
            "{cause}: the last line names the cause: {last}"
        );
        assert!(
            stderr.contains("database not reachable yet") && last.contains(" attempts)"),
            "{cause}: each attempt is logged: {stderr}"
        );
        assert!(!stderr.contains("s3cret-pw"), "{cause}: leaks the password");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_comes_up_during_the_startup_wait_is_served() {
    // Arrange: the database is unreachable when the server starts
    let proxy = Proxy::start().await;
    proxy.kill();
    let db = TestDatabase::create().await;
    let url = proxy.url(&db.url);
    let starting = tokio::spawn(async move {
        spawn_app_via(db, &url, &[("DATABASE_STARTUP_WAIT_SECS", "10")]).await
    });

    // Act
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!starting.is_finished(), "started without a database");
    proxy.restore();

    // Assert
    let app = tokio::time::timeout(Duration::from_secs(8), starting)
        .await
        .expect("started once the database came up")
        .unwrap();
    let ready = app.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (_, token) = app.new_user("first@example.com").await;
    until_served(&app, &token, Duration::from_secs(1)).await;
}

/// Runs the real binary against `url` with a start-up wait of 2 s; its output and how long it ran.
async fn start_binary(url: String) -> (std::process::Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_newsapi"))
            .env_clear()
            .env("DATABASE_URL", url)
            .env("JWT_SECRET", TEST_SECRET)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("DATABASE_STARTUP_WAIT_SECS", "2")
            .env("DATABASE_CONNECT_TIMEOUT_SECS", "1")
            .env("LOG_FORMAT", "text")
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the newsapi binary runs");
        (output, started.elapsed())
    })
    .await
    .unwrap()
}

/// Every future of `futures`, run concurrently, in order.
async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn execute(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Two PATCHes of `author`'s news item (titled `label 0` and `label 1`), sent at once; returns once
/// PostgreSQL shows both waiting for the row lock the test holds.
async fn two_patches_waiting_on_the_row(
    app: &TestApp,
    author: &AuthorWithNews,
    label: &str,
) -> Vec<tokio::task::JoinHandle<Response>> {
    let patches = (0..2)
        .map(|i| {
            let request = app
                .authed(
                    Method::PATCH,
                    &format!("/news/{}", author.id),
                    &author.token,
                )
                .json(&json!({"title": format!("{label} {i}")}));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    wait_for_db(
        app,
        "SELECT count(*) / 2 FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        "both PATCHes to wait for the row lock",
        Duration::from_secs(5),
    )
    .await;
    patches
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_to_a_node_turned_read_only_answers_503_and_is_not_lent_again() {
    // Arrange: a server whose connections, from now on, open read-only, as they would on a
    // standby; its pooled connections are cut so that the next ones are opened so. This is what a
    // demoted primary looks like to a pool (SQLSTATE 25006 on every write).
    let app = spawn_app_with(&[
        ("DATABASE_POOL_SIZE", "2"),
        ("DATABASE_CONNECT_TIMEOUT_SECS", "1"),
    ])
    .await;
    let author = author_with_news(&app).await;
    let read_only = |on: bool| {
        format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {}', current_database()); END $$",
            if on {
                "SET default_transaction_read_only = on"
            } else {
                "RESET default_transaction_read_only"
            }
        )
    };
    db_execute(&app, &read_only(true)).await;
    db_count(
        &app,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;

    // Act: writes against the read-only node, concurrently, more than the pool holds
    let writes = (0..6).map(|i| {
        let request = app
            .authed(Method::POST, "/news", &author.token)
            .json(&json!({"title": format!("On a standby {i}"), "body": "B"}));
        async move { request.send().await.unwrap() }
    });
    let responses = futures_join_all(writes).await;

    // Assert: each a 503 "cannot be reached" with Retry-After, never a 500
    for (i, response) in responses.into_iter().enumerate() {
        assert_unavailable(response, "unreachable", &format!("write {i} on a standby")).await;
    }
    // The node is writable again (the primary is back, in a failover: elsewhere). No connection
    // opened read-only is lent for a write twice: within the pool's size of failed writes, one
    // succeeds, on a connection opened anew.
    let mut conn = app.db.connect().await;
    execute(
        &mut conn,
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    )
    .await;
    execute(&mut conn, &read_only(false)).await;
    let mut statuses = Vec::new();
    for i in 0..=2 {
        let response = app
            .authed(Method::POST, "/news", &author.token)
            .json(&json!({"title": format!("After the switch {i}"), "body": "B"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        statuses.push(status);
        if status == 201 {
            break;
        }
        assert_unavailable(response, "unreachable", &format!("write {i} after")).await;
    }
    assert_eq!(statuses.last(), Some(&201), "writes after: {statuses:?}");
    assert_eq!(news_rows(&app).await, 2, "the first news and the one after");
}
