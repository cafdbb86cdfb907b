//! `Idempotency-Key` on `POST /news`: a retry replays the first response and creates nothing; the
//! same key with another body is 422, a retry while the first runs is 409, keys are per user,
//! malformed keys are 400, and keys expire after 24 hours.

use std::time::Duration;

use diesel_async::{AsyncConnection, RunQueryDsl};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_problem, assert_problem_for, db_count, db_execute, news_rows, spawn_app,
    wait_for_db,
};

const KEY: &str = "8e03978e-40d5-43e8-bc93-6894a57f9324";

/// `POST /news` with `body` (sent as these exact bytes) and, if given, an `Idempotency-Key`.
async fn post_news(app: &TestApp, token: &str, key: Option<&str>, body: &str) -> Response {
    let mut request = app
        .authed(Method::POST, "/news", token)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

/// A response as a client sees it: status, the headers that matter, and the body's bytes.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    location: Option<String>,
    etag: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Reads a response; returns it and its `Idempotent-Replayed` header.
async fn seen(response: Response) -> (Seen, Option<String>) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let replayed = header("idempotent-replayed");
    let seen = Seen {
        status: response.status().as_u16(),
        location: header("location"),
        etag: header("etag"),
        content_type: header("content-type"),
        body: Vec::new(),
    };
    let body = response.bytes().await.unwrap().to_vec();
    (Seen { body, ..seen }, replayed)
}

async fn key_rows(app: &TestApp) -> i64 {
    db_count(app, "SELECT count(*) FROM idempotency_keys").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_the_same_key_and_body_replays_the_first_response_byte_for_byte() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let first_body = r#"{"title": "Rust 2.0", "body": "Released."}"#;
    let (first, replayed) = seen(post_news(&app, &token, Some(KEY), first_body).await).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(replayed, None, "the first response is no replay");
    // The item changes after it was created: a replay is still the first response.
    let id = first
        .location
        .as_deref()
        .unwrap()
        .trim_start_matches("/news/");
    let patched = app
        .authed(Method::PATCH, &format!("/news/{id}"), &token)
        .json(&json!({"title": "Rust 2.0 is out"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);

    // Act: the same request again, as the draft's quoted string, and with other JSON spacing and
    // key order (the same draft).
    for (key, body) in [
        (KEY.to_string(), first_body),
        (format!("\"{KEY}\""), first_body),
        (
            KEY.to_string(),
            r#"{"body":"Released.","title":"Rust 2.0"}"#,
        ),
    ] {
        let (again, replayed) = seen(post_news(&app, &token, Some(&key), body).await).await;

        // Assert
        assert_eq!(again, first, "{key} {body}");
        assert_eq!(replayed.as_deref(), Some("true"), "{key} {body}");
    }
    assert_eq!(news_rows(&app).await, 1, "nothing created by the retries");
    assert_eq!(key_rows(&app).await, 1);
    let (counted, metrics) = app.has_metric_line("idempotent_replays_total 3").await;
    assert!(counted, "three replays counted: {metrics}");
    let news: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(news["title"], "Rust 2.0", "{news}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_with_another_body_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let created = post_news(&app, &token, Some(KEY), r#"{"title": "A", "body": "B"}"#).await;
    assert_eq!(created.status(), 201);

    // Act
    for body in [
        r#"{"title": "A", "body": "another body"}"#,
        r#"{"title": "A", "body": "B", "date_created": "2024-01-01T00:00:00Z"}"#,
    ] {
        let response = post_news(&app, &token, Some(KEY), body).await;

        // Assert
        assert!(
            response.headers().get("idempotent-replayed").is_none(),
            "{body}"
        );
        let problem = assert_problem_for(response, 422, body).await;
        assert_eq!(problem["type"], "about:blank", "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{problem}"
        );
    }
    assert_eq!(news_rows(&app).await, 1);
    assert_eq!(key_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_identical_requests_with_one_key_creates_exactly_one_item() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let body = r#"{"title": "Burst", "body": "Once only."}"#;

    // Act: 16 requests at once, each on a connection of its own.
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let request = app
                .client
                .post(format!("{}/news", app.address))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("idempotency-key", KEY)
                .body(body);
            tokio::spawn(async move { seen(request.send().await.unwrap()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }

    // Assert: one 201 that made the item; every other is a replay of it or a 409.
    let originals: Vec<&Seen> = answers
        .iter()
        .filter(|(seen, replayed)| seen.status == 201 && replayed.is_none())
        .map(|(seen, _)| seen)
        .collect();
    assert_eq!(originals.len(), 1, "{answers:?}");
    for (seen, replayed) in &answers {
        match seen.status {
            201 => assert_eq!(seen, originals[0], "a replay is the first response"),
            409 => {
                assert_eq!(replayed, &None);
                let problem: Value = serde_json::from_slice(&seen.body).unwrap();
                assert_eq!(problem["status"], 409, "{problem}");
                assert_eq!(
                    seen.content_type.as_deref(),
                    Some("application/problem+json")
                );
            }
            other => panic!("unexpected {other}: {seen:?}"),
        }
    }
    assert_eq!(news_rows(&app).await, 1);
    assert_eq!(key_rows(&app).await, 1);

    // A retry after the burst is a replay.
    let (after, replayed) = seen(post_news(&app, &token, Some(KEY), body).await).await;
    assert_eq!(&after, originals[0]);
    assert_eq!(replayed.as_deref(), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_while_the_first_request_runs_is_409_and_then_a_replay() {
    // Arrange: the test holds a lock on `news`, so the first request, once it has claimed its key,
    // waits to insert its item.
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let body = r#"{"title": "Slow", "body": "Held up."}"#;
    let mut holder = app.db.connect().await;
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query("LOCK TABLE news IN EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let first = {
        let request = app
            .client
            .post(format!("{}/news", app.address))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("idempotency-key", KEY)
            .body(body);
        tokio::spawn(async move { seen(request.send().await.unwrap()).await })
    };
    wait_for_db(
        &app,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        "the first request to hold its key",
        Duration::from_secs(5),
    )
    .await;

    // Act
    let during = post_news(&app, &token, Some(KEY), body).await;
    let other_body = post_news(&app, &token, Some(KEY), r#"{"title": "X", "body": "Y"}"#).await;
    diesel::sql_query("COMMIT")
        .execute(&mut holder)
        .await
        .unwrap();
    let (first, _) = first.await.unwrap();
    let (after, replayed) = seen(post_news(&app, &token, Some(KEY), body).await).await;

    // Assert
    let problem = assert_problem(during, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("still being processed"),
        "{problem}"
    );
    // While the first runs, its body is unknown: any retry with the key waits its turn.
    assert_problem(other_body, 409).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(after, first);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(news_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_per_user() {
    // Arrange
    let app = spawn_app().await;
    let (_, ada) = app.new_user("ada@example.com").await;
    let (_, bob) = app.new_user("bob@example.com").await;
    let body = r#"{"title": "Same", "body": "Same."}"#;

    // Act
    let (for_ada, ada_replayed) = seen(post_news(&app, &ada, Some(KEY), body).await).await;
    let (for_bob, bob_replayed) = seen(post_news(&app, &bob, Some(KEY), body).await).await;

    // Assert
    assert_eq!((for_ada.status, for_bob.status), (201, 201));
    assert_eq!((ada_replayed, bob_replayed), (None, None));
    assert_ne!(for_ada.location, for_bob.location);
    assert_eq!(news_rows(&app).await, 2);
    assert_eq!(key_rows(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_or_repeated_key_is_400_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let body = r#"{"title": "T", "body": "B"}"#;
    let too_long = "k".repeat(256);
    let cases: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("empty quoted", b"\"\""),
        ("256 characters", too_long.as_bytes()),
        ("a space", b"a b"),
        ("an open quote", b"\"abc"),
        ("a backslash", b"a\\b"),
        ("not ASCII", "cl\u{e9}".as_bytes()),
    ];

    for (case, key) in cases {
        // Act
        let response = app
            .authed(Method::POST, "/news", &token)
            .header("content-type", "application/json")
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .body(body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem_for(response, 400, case).await;
    }
    let twice = app
        .authed(Method::POST, "/news", &token)
        .header("content-type", "application/json")
        .header("idempotency-key", "one")
        .header("idempotency-key", "two")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem_for(twice, 400, "two headers").await;
    assert_eq!(news_rows(&app).await, 0);
    assert_eq!(key_rows(&app).await, 0);
    let longest = post_news(&app, &token, Some(&"k".repeat(255)), body).await;
    assert_eq!(longest.status(), 201, "255 characters is a key");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_fails_leaves_its_key_free() {
    // Arrange: the first request with the key breaks the schema.
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let refused = post_news(&app, &token, Some(KEY), r#"{"title": "", "body": "B"}"#).await;
    assert_problem(refused, 422).await;

    // Act
    let (fixed, replayed) =
        seen(post_news(&app, &token, Some(KEY), r#"{"title": "T", "body": "B"}"#).await).await;

    // Assert
    assert_eq!(fixed.status, 201);
    assert_eq!(replayed, None);
    assert_eq!(news_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_expire_after_24_hours_and_the_clean_up_deletes_them() {
    // Arrange: three keys, two of them aged past 24 hours.
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let body = r#"{"title": "T", "body": "B"}"#;
    for key in ["expired-then-reused", "expired", "fresh"] {
        let response = post_news(&app, &token, Some(key), body).await;
        assert_eq!(response.status(), 201, "{key}");
    }
    db_execute(
        &app,
        "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second' \
         WHERE key <> 'fresh'",
    )
    .await;

    // Act: an expired key is a new request even before the clean-up runs; then the clean-up.
    let (reused, replayed) =
        seen(post_news(&app, &token, Some("expired-then-reused"), body).await).await;
    let mut conn = diesel_async::AsyncPgConnection::establish(&app.db.url)
        .await
        .unwrap();
    let deleted = newsapi::db::idempotency::delete_expired(&mut conn, 1000)
        .await
        .unwrap();

    // Assert
    assert_eq!(reused.status, 201);
    assert_eq!(replayed, None, "an expired key is not replayed");
    assert_eq!(news_rows(&app).await, 4);
    assert_eq!(deleted, 1, "only the expired key left");
    let left = db_count(
        &app,
        "SELECT count(*) FROM idempotency_keys WHERE key IN ('fresh', 'expired-then-reused')",
    )
    .await;
    assert_eq!((left, key_rows(&app).await), (2, 2));
    let (fresh, replayed) = seen(post_news(&app, &token, Some("fresh"), body).await).await;
    assert_eq!(
        (fresh.status, replayed.as_deref()),
        (201, Some("true")),
        "a fresh key is kept"
    );
}
