//! Throttled sign-in: 429 with `Retry-After` after too many failures per email or per client
//! address, counted in PostgreSQL; recovery after the window; `X-Forwarded-For` only from a
//! trusted proxy.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, header};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem, db_count, spawn_app_with};

const ADA: &str = "ada@example.com";
const WRONG: &str = "not the password at all";

async fn signin_from(app: &TestApp, email: &str, password: &str, forwarded_for: &str) -> Response {
    app.request(Method::POST, "/signin")
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Fails to sign in `times` times as `email`; each must be a plain 401.
async fn fail(app: &TestApp, email: &str, times: usize) {
    for attempt in 1..=times {
        let response = app.signin(email, WRONG).await;
        assert_eq!(response.status(), 401, "failure {attempt} for {email}");
    }
}

/// Asserts a 429 problem with a `Retry-After` of a whole number of seconds between 1 and
/// `window_secs`.
async fn assert_throttled(response: Response, window_secs: u64) {
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string())
        .expect("a 429 carries Retry-After");
    let secs: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is whole seconds: {retry_after:?}"));
    assert!(
        (1..=window_secs).contains(&secs),
        "Retry-After {secs} within the window of {window_secs} s"
    );
    let body = assert_problem(response, 429).await;
    crate::helpers::assert_no_internals(&body.to_string());
}

async fn failures_of(app: &TestApp, key: &str) -> i64 {
    db_count(
        app,
        &format!(
            "SELECT coalesce(sum(failures), 0)::bigint FROM signin_failures WHERE key = '{key}'"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn after_three_failures_even_the_right_password_gets_429_with_retry_after() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;

    // Act
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_families").await,
        1,
        "no session was started besides the one of new_user"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failure_counters_are_kept_in_postgresql() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;

    // Act
    fail(&app, ADA, 2).await;

    // Assert
    assert!(db_count(&app, "SELECT count(*) FROM signin_failures").await > 0);
    assert_eq!(failures_of(&app, &format!("email:{ADA}")).await, 2);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_attempt_does_not_count_as_another_failure() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;

    // Act
    for _ in 0..3 {
        assert_throttled(app.signin(ADA, WRONG).await, 60).await;
    }

    // Assert
    assert_eq!(failures_of(&app, &format!("email:{ADA}")).await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_email_is_throttled_in_any_letter_case() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, "Ada@Example.com", 1).await;
    fail(&app, "ADA@EXAMPLE.COM", 1).await;
    fail(&app, " ada@example.com ", 1).await;

    // Act
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_email_is_throttled_like_a_known_one() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    fail(&app, "nobody@example.com", 3).await;

    // Act
    let response = app.signin("nobody@example.com", WRONG).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_one_email_does_not_lock_out_another() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    app.new_user("bob@example.com").await;
    fail(&app, ADA, 3).await;

    // Act
    let response = app.signin("bob@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_window_passes_the_right_password_signs_in_again() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "2")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;
    assert_throttled(app.signin(ADA, PASSWORD).await, 2).await;

    // Act: a throttled attempt is refused before it is checked, so polling does not extend it
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = loop {
        let response = app.signin(ADA, PASSWORD).await;
        if response.status() != 429 {
            break response;
        }
        assert!(Instant::now() < deadline, "still 429 after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(failures_of(&app, &format!("email:{ADA}")).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successful_signin_resets_the_count_for_the_email() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 2).await;
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 200);

    // Act: three more failures are needed to reach the limit again
    fail(&app, ADA, 3).await;
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_for_different_emails_from_one_address_add_up_to_the_per_ip_limit() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
    ])
    .await;
    app.new_user(ADA).await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        fail(&app, email, 1).await;
    }

    // Act: a fourth email, even with its right password
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_per_ip_limit() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
    ])
    .await;
    for (i, forwarded) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let response = signin_from(&app, &format!("user{i}@example.com"), WRONG, forwarded).await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let response = signin_from(&app, "user9@example.com", WRONG, "198.51.100.99").await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 3);
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM signin_failures WHERE key LIKE 'ip:%' AND key <> 'ip:127.0.0.1'"
        )
        .await,
        0,
        "the forwarded addresses were ignored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_trusted_proxy_each_forwarded_address_is_counted_separately() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for i in 0..3 {
        let response =
            signin_from(&app, &format!("user{i}@example.com"), WRONG, "203.0.113.7").await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let same_client = signin_from(&app, "user8@example.com", WRONG, "203.0.113.7").await;
    let other_client = signin_from(&app, "user9@example.com", WRONG, "198.51.100.9").await;

    // Assert
    assert_throttled(same_client, 60).await;
    assert_eq!(other_client.status(), 401, "a new address is not throttled");
    assert_eq!(failures_of(&app, "ip:203.0.113.7").await, 3);
    assert_eq!(failures_of(&app, "ip:198.51.100.9").await, 1);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_trusted_proxy_a_client_cannot_prepend_addresses_to_escape_the_limit() {
    // Arrange: the proxy appends the real client address; what the client sent comes first
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for i in 0..3 {
        let forwarded = format!("10.0.0.{i}, 203.0.113.7");
        let response = signin_from(&app, &format!("user{i}@example.com"), WRONG, &forwarded).await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let response = signin_from(&app, "user9@example.com", WRONG, "10.9.9.9, 203.0.113.7").await;

    // Assert
    assert_throttled(response, 60).await;
}
