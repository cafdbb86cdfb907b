//! Passwords and the account's deletion: `POST /account/password`, `POST /password/forgot`,
//! `POST /password/reset`, `POST /account/delete` and `newsapi delete-user`, against a real SMTP
//! server ([`SmtpSink`]) whose mails the tests read to follow their links.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::{
    helpers::{
        PASSWORD, TestApp, access_token, assert_problem, assert_problem_for, client_from, db_count,
        db_execute, error_fields, refresh_token, run_cli, spawn_app, spawn_app_with,
    },
    smtp::{ReceivedMail, SmtpSink},
};

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";
const NEW: &str = "another horse, another staple";
const WRONG: &str = "not the password at all";
const RESET_SUBJECT: &str = "Reset your password";
const CHANGED_SUBJECT: &str = "Your password was changed";
/// Hashing-queue bounds no burst here reaches (the queue's own refusals are `hashing.rs`'s).
const HASH_QUEUE_OUT_OF_THE_WAY: [(&str, &str); 2] = [
    ("HASH_QUEUE_MAX", "1000"),
    ("HASH_QUEUE_MAX_PER_IP", "1000"),
];

/// A server that sends its mail to a real SMTP server of the test's own.
async fn app_with_mail(overrides: &[(&str, &str)]) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let mut settings = vec![("SMTP_URL", url.as_str())];
    settings.extend_from_slice(overrides);
    let app = spawn_app_with(&settings).await;
    (app, sink)
}

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> Response {
    app.authed(Method::POST, "/account/password", token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn forgot(app: &TestApp, email: &str) -> Response {
    app.request(Method::POST, "/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
}

async fn reset(app: &TestApp, token: &str, new: &str) -> Response {
    app.request(Method::POST, "/password/reset")
        .json(&json!({"token": token, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn delete_account(app: &TestApp, token: &str, password: &str) -> Response {
    app.authed(Method::POST, "/account/delete", token)
        .json(&json!({ "current_password": password }))
        .send()
        .await
        .unwrap()
}

/// Waits until `address` has `count` mails whose subject has `subject`; returns them in order.
async fn mails_about(
    sink: &SmtpSink,
    address: &str,
    subject: &str,
    count: usize,
) -> Vec<ReceivedMail> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mails: Vec<ReceivedMail> = sink
            .mails_for(address)
            .into_iter()
            .filter(|m| m.subject.contains(subject))
            .collect();
        if mails.len() >= count {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{address} got {} of {count} mails about {subject:?}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The token of the `n`-th (1-based) reset mail to `address`.
async fn reset_token(sink: &SmtpSink, address: &str, n: usize) -> String {
    mails_about(sink, address, RESET_SUBJECT, n).await[n - 1].token("/password/reset")
}

async fn assert_invalid_account_token(response: Response, case: &str) {
    let problem = assert_problem_for(response, 400, case).await;
    assert_eq!(
        problem["type"], "/problems/invalid-token",
        "{case}: {problem}"
    );
    let text = problem.to_string();
    assert!(
        !text.contains("token_hash") && !text.contains("SELECT"),
        "{text}"
    );
}

/// A user with two sessions: `(access token of the first, tokens of the second)`.
async fn user_with_two_sessions(app: &TestApp, email: &str) -> (Value, Value) {
    app.new_user(email).await;
    (
        app.tokens(email, PASSWORD).await,
        app.tokens(email, PASSWORD).await,
    )
}

// ---------------------------------------------------------------------------------------------
// Change password

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_password_ends_every_other_session_and_keeps_the_callers() {
    // Arrange
    let (app, sink) = app_with_mail(&[]).await;
    let (mine, other) = user_with_two_sessions(&app, ADA).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    let pending_reset = reset_token(&sink, ADA, 1).await;

    // Act
    let response = change_password(&app, access_token(&mine), PASSWORD, NEW).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        app.signin(ADA, PASSWORD).await.status(),
        401,
        "old password"
    );
    assert_eq!(app.signin(ADA, NEW).await.status(), 200, "new password");
    assert_eq!(app.whoami(access_token(&other)).await.status(), 401);
    assert_eq!(app.refresh(refresh_token(&other)).await.status(), 401);
    assert_eq!(app.whoami(access_token(&mine)).await.status(), 200);
    assert_eq!(app.refresh(refresh_token(&mine)).await.status(), 200);
    let notice = sink.latest(ADA, CHANGED_SUBJECT).await;
    assert!(notice.body.contains(ADA), "{}", notice.body);
    assert!(
        !notice.body.contains(NEW) && !notice.body.contains(PASSWORD),
        "{}",
        notice.body
    );
    assert_invalid_account_token(
        reset(&app, &pending_reset, "a third horse, a third staple").await,
        "a reset link mailed before the change",
    )
    .await;
    assert_eq!(app.signin(ADA, NEW).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_current_password_is_403_and_counts_as_a_failed_sign_in() {
    // Arrange
    let mut settings = vec![("SIGNIN_MAX_FAILURES", "3")];
    settings.extend_from_slice(&HASH_QUEUE_OUT_OF_THE_WAY);
    let app = spawn_app_with(&settings).await;
    let (_, token) = app.new_user(ADA).await;

    // Act: 8 wrong attempts at once
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let request = app
            .authed(Method::POST, "/account/password", &token)
            .json(&json!({"current_password": WRONG, "new_password": NEW}));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get(header::RETRY_AFTER).is_some();
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        });
    }
    let outcomes = tasks.join_all().await;

    // Assert
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.0).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 403).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        5,
        "{statuses:?}"
    );
    for (status, retry_after, body) in &outcomes {
        assert_eq!(body["status"], *status, "{body}");
        if *status == 429 {
            assert!(retry_after, "{body}");
        }
    }
    // The account is at its limit from this address: even the right password waits, and so does
    // sign-in; the password is unchanged.
    assert_problem(change_password(&app, &token, PASSWORD, NEW).await, 429).await;
    assert_problem(app.signin(ADA, PASSWORD).await, 429).await;
    let elsewhere = client_from(2)
        .post(format!("{}/signin", app.address))
        .json(&json!({"email": ADA, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 200, "the owner, from another address");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_password_that_breaks_the_sign_up_rules_is_422_and_changes_nothing() {
    // Arrange
    let (app, sink) = app_with_mail(&[]).await;
    let (mine, other) = user_with_two_sessions(&app, ADA).await;
    let cases: [(&str, Value, &[&str]); 6] = [
        (
            "too short",
            json!({"current_password": PASSWORD, "new_password": "k9#Vq2!"}),
            &["new_password"],
        ),
        (
            "too long",
            json!({"current_password": PASSWORD, "new_password": "k9#Vq2!xZ".repeat(9)}),
            &["new_password"],
        ),
        (
            "common",
            json!({"current_password": PASSWORD, "new_password": "password1"}),
            &["new_password"],
        ),
        (
            "the user's own email",
            json!({"current_password": PASSWORD, "new_password": ADA}),
            &["new_password"],
        ),
        (
            "current password longer than any",
            json!({"current_password": "p".repeat(1025), "new_password": NEW}),
            &["current_password"],
        ),
        (
            "both",
            json!({"current_password": "p".repeat(1025), "new_password": "short"}),
            &["current_password", "new_password"],
        ),
    ];

    for (case, body, fields) in cases {
        // Act
        let response = app
            .authed(Method::POST, "/account/password", access_token(&mine))
            .json(&body)
            .send()
            .await
            .unwrap();

        // Assert
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(error_fields(&problem), fields, "{case}: {problem}");
    }
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 200);
    assert_eq!(app.whoami(access_token(&other)).await.status(), 200);
    assert_eq!(
        db_count(
            &app,
            &format!("SELECT count(*) FROM mail_outbox WHERE subject = '{CHANGED_SUBJECT}'")
        )
        .await,
        0
    );
    assert!(
        sink.mails_for(ADA)
            .iter()
            .all(|m| !m.subject.contains(CHANGED_SUBJECT))
    );
}

// ---------------------------------------------------------------------------------------------
// Forgotten password

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_password_is_reset_through_the_mailed_link() {
    // Arrange
    let (app, sink) = app_with_mail(&[("PUBLIC_BASE_URL", "https://news.example.org/")]).await;
    let (first, second) = user_with_two_sessions(&app, ADA).await;

    // Act: any spelling of the email reaches the account
    let response = forgot(&app, "  ADA@Example.COM ").await;

    // Assert
    assert_eq!(response.status(), 202);
    assert!(response.bytes().await.unwrap().is_empty());
    let mail = mails_about(&sink, ADA, RESET_SUBJECT, 1).await.remove(0);
    let (link, token) = mail.link("/password/reset").expect("a reset link");
    assert!(
        link.starts_with("https://news.example.org/password/reset?token="),
        "{link}"
    );
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM account_tokens WHERE purpose = 'password_reset'"
        )
        .await,
        1
    );
    assert_eq!(
        db_count(
            &app,
            &format!(
                "SELECT count(*) FROM account_tokens WHERE token_hash = sha256('{token}'::bytea)"
            )
        )
        .await,
        1,
        "only the token's SHA-256 is stored"
    );

    let response = reset(&app, &token, NEW).await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.signin(ADA, NEW).await.status(), 200, "new password");
    assert_eq!(
        app.signin(ADA, PASSWORD).await.status(),
        401,
        "old password"
    );
    for (session, tokens) in [("first", &first), ("second", &second)] {
        assert_eq!(
            app.whoami(access_token(tokens)).await.status(),
            401,
            "{session} session's access token"
        );
        assert_eq!(
            app.refresh(refresh_token(tokens)).await.status(),
            401,
            "{session} session's refresh token"
        );
    }
    sink.latest(ADA, CHANGED_SUBJECT).await;
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL"
        )
        .await,
        1,
        "the reset link reached the account's address: that verifies it"
    );
    assert_invalid_account_token(
        reset(&app, &token, "a third horse, a third staple").await,
        "the token used again",
    )
    .await;
    assert_eq!(app.signin(ADA, NEW).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_weak_new_password_leaves_the_reset_token_working() {
    // Arrange
    let (app, sink) = app_with_mail(&[]).await;
    app.new_user(ADA).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    let token = reset_token(&sink, ADA, 1).await;

    // Act
    let weak = reset(&app, &token, "password1").await;
    let own_email = reset(&app, &token, ADA).await;
    let strong = reset(&app, &token, NEW).await;

    // Assert
    for (case, response) in [("common", weak), ("the user's own email", own_email)] {
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(
            error_fields(&problem),
            ["new_password"],
            "{case}: {problem}"
        );
    }
    assert_eq!(strong.status(), 204);
    assert_eq!(app.signin(ADA, NEW).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_token_stops_working_after_password_reset_ttl_secs() {
    // Arrange: a one-second lifetime, by the setting itself
    let (app, sink) = app_with_mail(&[("PASSWORD_RESET_TTL_SECS", "1")]).await;
    app.new_user(ADA).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    let token = reset_token(&sink, ADA, 1).await;

    // Act
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // Assert
    assert_invalid_account_token(reset(&app, &token, NEW).await, "expired").await;
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 200, "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_superseded_and_unknown_reset_tokens_are_one_invalid_token_problem() {
    // Arrange
    let (app, sink) = app_with_mail(&[("PASSWORD_RESET_TTL_SECS", "60")]).await;
    app.new_user(ADA).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    let first = reset_token(&sink, ADA, 1).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    let second = reset_token(&sink, ADA, 2).await;
    assert_ne!(first, second);

    // Act + Assert
    assert_invalid_account_token(reset(&app, &first, NEW).await, "superseded").await;
    db_execute(
        &app,
        "UPDATE account_tokens SET expires_at = now() - interval '1 second' \
         WHERE purpose = 'password_reset'",
    )
    .await;
    assert_invalid_account_token(reset(&app, &second, NEW).await, "expired").await;
    assert_invalid_account_token(reset(&app, "never-issued", NEW).await, "unknown").await;
    assert_invalid_account_token(reset(&app, "x\u{0}y", NEW).await, "a NUL in the token").await;
    let problem = assert_problem(reset(&app, &"t".repeat(513), NEW).await, 422).await;
    assert_eq!(error_fields(&problem), ["token"]);
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 200, "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn forgot_password_answers_alike_for_unknown_and_impossible_emails() {
    // Arrange
    let (app, sink) = app_with_mail(&[]).await;
    app.new_user(ADA).await;

    // Act + Assert: the same 202 for a stranger, an email with a NUL, and one whose canonical form
    // is too long for any account; a schema violation (too long as sent) is 422.
    for email in [
        "nobody@example.com",
        "ada\u{0}@example.com",
        &format!("{}@example.com", "\u{FDFA}".repeat(60)),
        "not an email at all",
    ] {
        let response = forgot(&app, email).await;
        assert_eq!(response.status(), 202, "{email:?}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let problem = assert_problem(forgot(&app, &"e".repeat(255)).await, 422).await;
    assert_eq!(error_fields(&problem), ["email"]);
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM account_tokens WHERE purpose = 'password_reset'"
        )
        .await,
        0
    );
    assert_eq!(
        db_count(
            &app,
            &format!("SELECT count(*) FROM mail_outbox WHERE subject = '{RESET_SUBJECT}'")
        )
        .await,
        0
    );
    assert!(sink.mails().iter().all(|m| m.subject != RESET_SUBJECT));
}

/// The parts of an answer that must not tell known from unknown: status, headers (but the request
/// id and the date), body.
async fn observable(response: Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "x-request-id" && *name != header::DATE)
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "timed: `make test` runs it alone (cargo test --test api -- --ignored --test-threads=1)"]
async fn forgot_password_takes_as_long_for_a_known_email_as_for_an_unknown_one() {
    // Arrange: a bcrypt cost at which one hash takes far longer than the tolerance, so that a
    // known email that hashed anything would fail this test.
    let (app, _sink) = app_with_mail(&[
        ("BCRYPT_COST", "8"),
        ("ACCOUNT_MAIL_MAX_PER_IP", "1000"),
        ("ACCOUNT_MAIL_MAX_PER_RECIPIENT", "1000"),
    ])
    .await;
    app.new_user(ADA).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let reference = observable(forgot(&app, "warm-up@example.com").await).await;

    // Act: alternating, one at a time
    for i in 0..15 {
        for (email, samples) in [(ADA, &mut known), ("nobody@example.com", &mut unknown)] {
            let email = if i % 2 == 0 {
                email.to_string()
            } else {
                email.to_uppercase()
            };
            let started = Instant::now();
            let response = forgot(&app, &email).await;
            samples.push(started.elapsed());
            assert_eq!(observable(response).await, reference, "{email}");
        }
    }

    // Assert
    let (known, unknown) = (median(known), median(unknown));
    let diff = known.abs_diff(unknown);
    let tolerance = Duration::from_millis(10).max(known.max(unknown) / 2);
    assert!(
        diff < tolerance,
        "median known {known:?}, unknown {unknown:?}: differ by {diff:?} (tolerance {tolerance:?})"
    );
    assert_eq!(
        db_count(
            &app,
            &format!("SELECT count(*) FROM mail_outbox WHERE subject = '{RESET_SUBJECT}'")
        )
        .await,
        15,
        "every known request queued its mail"
    );
}

/// Sends `forgot` for each of `emails` at once through `client`; the statuses, every 429 checked
/// for problem+json and `Retry-After`.
async fn forgot_burst(app: &TestApp, client: &reqwest::Client, emails: Vec<String>) -> Vec<u16> {
    let mut tasks = JoinSet::new();
    for email in emails {
        let request = client
            .post(format!("{}/password/forgot", app.address))
            .json(&json!({ "email": email }));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            if status == 429 {
                let retry_after: u64 = response.headers()[header::RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["status"], 429, "{body}");
            }
            status
        });
    }
    tasks.join_all().await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn forgot_password_is_limited_per_email_alike_for_known_and_unknown() {
    // Arrange
    let (app, sink) = app_with_mail(&[
        ("ACCOUNT_MAIL_MAX_PER_IP", "1000"),
        ("ACCOUNT_MAIL_MAX_PER_RECIPIENT", "3"),
    ])
    .await;
    app.new_user(ADA).await;
    let spellings = |email: &str| -> Vec<String> {
        (0..10)
            .map(|i| {
                if i % 2 == 0 {
                    email.to_string()
                } else {
                    email.to_uppercase()
                }
            })
            .collect()
    };

    // Act
    let known = forgot_burst(&app, &app.client, spellings(ADA)).await;
    let unknown = forgot_burst(&app, &app.client, spellings("nobody@example.com")).await;
    let other = forgot(&app, "somebody@example.com").await;

    // Assert
    for (case, statuses) in [("known", &known), ("unknown", &unknown)] {
        assert_eq!(count(statuses, 202), 3, "{case}: {statuses:?}");
        assert_eq!(count(statuses, 429), 7, "{case}: {statuses:?}");
    }
    assert_eq!(other.status(), 202, "another email has its own count");
    mails_about(&sink, ADA, RESET_SUBJECT, 3).await;
    assert_eq!(
        db_count(
            &app,
            &format!("SELECT count(*) FROM mail_outbox WHERE subject = '{RESET_SUBJECT}'")
        )
        .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forgot_password_is_limited_per_client_address() {
    // Arrange
    let app = spawn_app_with(&[
        ("ACCOUNT_MAIL_MAX_PER_IP", "3"),
        ("ACCOUNT_MAIL_MAX_PER_RECIPIENT", "1000"),
    ])
    .await;
    let emails: Vec<String> = (0..10).map(|i| format!("user{i}@example.com")).collect();

    // Act
    let statuses = forgot_burst(&app, &client_from(2), emails).await;
    let elsewhere = client_from(3)
        .post(format!("{}/password/forgot", app.address))
        .json(&json!({"email": "user0@example.com"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(count(&statuses, 202), 3, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 7, "{statuses:?}");
    assert_eq!(elsewhere.status(), 202, "another address has its own count");
}

// ---------------------------------------------------------------------------------------------
// Deleting the account

async fn user_with_news(app: &TestApp, email: &str, news: usize) -> (String, String) {
    let (id, token) = app.new_user(email).await;
    for i in 0..news {
        app.create_news(
            &token,
            &json!({"title": format!("{email} {i}"), "body": "text"}),
        )
        .await;
    }
    (id, token)
}

async fn rows_of(app: &TestApp, table: &str, column: &str, id: &str) -> i64 {
    db_count(
        app,
        &format!("SELECT count(*) FROM {table} WHERE {column} = '{id}'"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_account_deletes_the_user_their_sessions_and_their_news() {
    // Arrange
    let (app, sink) = app_with_mail(&[]).await;
    let (ada, token) = user_with_news(&app, ADA, 2).await;
    let other_session = app.tokens(ADA, PASSWORD).await;
    let (bob, _) = user_with_news(&app, BOB, 1).await;
    assert_eq!(forgot(&app, ADA).await.status(), 202);
    reset_token(&sink, ADA, 1).await;

    // Act
    let response = delete_account(&app, &token, PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 204);
    for (table, column) in [
        ("users", "id"),
        ("user_credentials", "user_id"),
        ("refresh_families", "user_id"),
        ("news", "author_id"),
        ("account_tokens", "user_id"),
        ("idempotency_keys", "user_id"),
    ] {
        assert_eq!(rows_of(&app, table, column, &ada).await, 0, "{table}");
    }
    assert_eq!(
        rows_of(&app, "news", "author_id", &bob).await,
        1,
        "bob's news"
    );
    assert_eq!(rows_of(&app, "users", "id", &bob).await, 1);
    assert_eq!(app.whoami(&token).await.status(), 401);
    assert_eq!(
        app.refresh(refresh_token(&other_session)).await.status(),
        401
    );
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 401);
    assert_eq!(
        delete_account(&app, &token, PASSWORD).await.status(),
        401,
        "the deleted user's token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_deletes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (ada, token) = user_with_news(&app, ADA, 1).await;

    // Act
    let wrong = delete_account(&app, &token, WRONG).await;
    let too_long = delete_account(&app, &token, &"p".repeat(1025)).await;
    let missing = app
        .authed(Method::POST, "/account/delete", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(wrong, 403).await;
    let problem = assert_problem(too_long, 422).await;
    assert_eq!(error_fields(&problem), ["current_password"]);
    assert_eq!(missing.status(), 422);
    assert_eq!(rows_of(&app, "users", "id", &ada).await, 1);
    assert_eq!(rows_of(&app, "news", "author_id", &ada).await, 1);
    assert_eq!(app.whoami(&token).await.status(), 200);
}

async fn promote(app: &TestApp, email: &str) {
    let output = run_cli(app, &["promote", email], "").await;
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_admin_cannot_delete_their_account_and_of_two_racing_one_can() {
    // Arrange
    let app = spawn_app().await;
    let (_, ada) = app.new_user(ADA).await;
    let (_, bob) = app.new_user(BOB).await;
    promote(&app, ADA).await;

    // Act + Assert: the only admin
    let problem = assert_problem(delete_account(&app, &ada, PASSWORD).await, 409).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("admin"),
        "{problem}"
    );
    assert_eq!(app.whoami(&ada).await.status(), 200);

    // Two admins deleting themselves at once: exactly one goes.
    promote(&app, BOB).await;
    let (first, second) = tokio::join!(
        delete_account(&app, &ada, PASSWORD),
        delete_account(&app, &bob, PASSWORD)
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409]);
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM users WHERE role = 'admin'").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_user_deletes_an_account_by_any_spelling_of_its_email() {
    // Arrange
    let app = spawn_app().await;
    let (ada, token) = user_with_news(&app, ADA, 2).await;
    app.new_user(BOB).await;
    promote(&app, BOB).await;

    // Act
    let deleted = run_cli(&app, &["delete-user", "--email", " ADA@Example.COM "], "").await;
    let unknown = run_cli(&app, &["delete-user", "--email", "nobody@example.com"], "").await;
    let last_admin = run_cli(&app, &["delete-user", "--email", BOB], "").await;

    // Assert
    let stderr = String::from_utf8_lossy(&deleted.stderr);
    assert!(deleted.status.success(), "{stderr}");
    assert!(
        stderr.contains(ADA) && stderr.contains("2 news"),
        "{stderr}"
    );
    assert_eq!(rows_of(&app, "users", "id", &ada).await, 0);
    assert_eq!(rows_of(&app, "news", "author_id", &ada).await, 0);
    assert_eq!(app.whoami(&token).await.status(), 401);

    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert_eq!(
        stderr.trim(),
        "newsapi: no user has the email nobody@example.com"
    );

    let stderr = String::from_utf8_lossy(&last_admin.stderr);
    assert!(!last_admin.status.success());
    assert!(stderr.contains("only admin"), "{stderr}");
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM users WHERE role = 'admin'").await,
        1
    );
}
