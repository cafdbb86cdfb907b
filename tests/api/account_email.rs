//! The account's email and profile against a real SMTP server: the verification mailed at sign-up,
//! `POST /email/verify` (a verification or an email-change token), `POST /email/verify/resend`,
//! `POST /account/email`, `PATCH /account`, and `REQUIRE_VERIFIED_EMAIL`.

use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use crate::{
    helpers::{
        PASSWORD, TestApp, access_token, assert_problem, assert_problem_for, db_count, db_execute,
        db_text, error_fields, spawn_app_with,
    },
    smtp::SmtpSink,
};

/// The subject of the verification mail (sign-up and resend).
const VERIFY: &str = "Verify your email";
/// The subject of the confirmation mailed to a new address.
const CONFIRM: &str = "Confirm your new email";
/// The subject of the notice to the old address.
const CHANGED: &str = "email was changed";

/// A server that sends its mail to `sink`, with extra settings.
async fn app_mailing_to(sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut settings = vec![("SMTP_URL", url.as_str())];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

/// Signs up `email` with `PASSWORD` (201), signs in, and returns an access token.
async fn signed_up(app: &TestApp, email: &str) -> String {
    let response = app
        .signup(&json!({"email": email, "password": PASSWORD, "name": "Ada"}))
        .await;
    assert_eq!(response.status(), 201, "sign-up of {email}");
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email_verified"], false, "a new account: {user}");
    access_token(&app.tokens(email, PASSWORD).await).to_string()
}

async fn verify(app: &TestApp, token: &str) -> Response {
    app.request(Method::POST, "/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn resend(app: &TestApp, access: &str) -> Response {
    app.authed(Method::POST, "/email/verify/resend", access)
        .send()
        .await
        .unwrap()
}

async fn change_email(app: &TestApp, access: &str, new_email: &str, password: &str) -> Response {
    app.authed(Method::POST, "/account/email", access)
        .json(&json!({"new_email": new_email, "current_password": password}))
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, access: &str) -> Value {
    let response = app.whoami(access).await;
    assert_eq!(response.status(), 200, "whoami");
    response.json().await.unwrap()
}

async fn assert_invalid_account_token(response: Response, case: &str) {
    let problem = assert_problem_for(response, 400, case).await;
    assert_eq!(
        problem["type"], "/problems/invalid-token",
        "{case}: {problem}"
    );
}

/// Mails queued for `address` (in the outbox, sent or not).
async fn queued_for(app: &TestApp, address: &str) -> i64 {
    db_count(
        app,
        &format!("SELECT count(*) FROM mail_outbox WHERE recipient = '{address}'"),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Verification

#[tokio::test(flavor = "multi_thread")]
async fn sign_up_mails_a_link_whose_token_verifies_the_email_once() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    assert_eq!(me(&app, &access).await["email_verified"], false);

    // Act
    let mail = sink.latest("ada@example.com", VERIFY).await;
    let (link, token) = mail.link("/email/verify").expect("a link in the mail");
    let first = verify(&app, &token).await;
    let again = verify(&app, &token).await;

    // Assert
    assert!(
        link.starts_with("http://127.0.0.1:3000/email/verify?token="),
        "PUBLIC_BASE_URL + path + ?token=: {link}"
    );
    assert_eq!(first.status(), 204);
    assert_eq!(me(&app, &access).await["email_verified"], true);
    assert_invalid_account_token(again, "the same token again").await;
    // A sign-up refused for a taken email queues nothing.
    let taken = app
        .signup(&json!({"email": "ADA@example.com", "password": PASSWORD}))
        .await;
    assert_problem(taken, 409).await;
    assert_eq!(queued_for(&app, "ADA@example.com").await, 0);
    assert_eq!(queued_for(&app, "ada@example.com").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_unknown_or_malformed_token_verifies_nothing() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    let token = sink
        .latest("ada@example.com", VERIFY)
        .await
        .token("/email/verify");
    db_execute(
        &app,
        "UPDATE account_tokens SET expires_at = now() - interval '1 second'",
    )
    .await;

    // Act
    let expired = verify(&app, &token).await;
    let unknown = verify(&app, "A".repeat(43).as_str()).await;

    // Assert
    assert_invalid_account_token(expired, "an expired token").await;
    assert_invalid_account_token(unknown, "an unknown token").await;
    for (case, body) in [
        ("empty token", json!({"token": ""})),
        ("too long", json!({"token": "A".repeat(513)})),
        ("no token", json!({})),
        ("not a string", json!({"token": 43})),
        (
            "unknown field",
            json!({"token": token, "email": "ada@example.com"}),
        ),
    ] {
        let response = app
            .request(Method::POST, "/email/verify")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem_for(response, 422, case).await;
    }
    assert_eq!(me(&app, &access).await["email_verified"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resent_link_supersedes_the_first_and_a_verified_email_gets_409() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    let first = sink
        .latest("ada@example.com", VERIFY)
        .await
        .token("/email/verify");

    // Act
    let resent = resend(&app, &access).await;
    let mails = sink
        .wait_for("ada@example.com", 2, std::time::Duration::from_secs(10))
        .await;
    let second = mails[1].token("/email/verify");

    // Assert
    assert_eq!(resent.status(), 202);
    assert_ne!(first, second);
    assert_invalid_account_token(verify(&app, &first).await, "the superseded link").await;
    assert_eq!(verify(&app, &second).await.status(), 204);
    assert_eq!(me(&app, &access).await["email_verified"], true);
    let problem = assert_problem(resend(&app, &access).await, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("verified"));
    assert_eq!(
        queued_for(&app, "ada@example.com").await,
        2,
        "no mail for the 409"
    );
    assert_problem(
        app.request(Method::POST, "/email/verify/resend")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_resends_gets_exactly_the_per_account_limit_and_then_429() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(
        &sink,
        &[
            ("ACCOUNT_MAIL_MAX_PER_RECIPIENT", "3"),
            ("ACCOUNT_MAIL_MAX_PER_IP", "100"),
        ],
    )
    .await;
    let access = signed_up(&app, "ada@example.com").await;

    // Act: ten at once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = app.authed(Method::POST, "/email/verify/resend", &access);
        tasks.spawn(async move { request.send().await.unwrap() });
    }
    let responses = tasks.join_all().await;

    // Assert
    let mut accepted = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => {
                let retry_after: u64 = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .expect("a 429 says when to come back")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                assert_problem(response, 429).await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, refused), (3, 7));
    // The sign-up's mail and one per accepted resend, no more.
    assert_eq!(queued_for(&app, "ada@example.com").await, 4);
    // The last link sent is the one that works.
    let mails = sink
        .wait_for("ada@example.com", 4, std::time::Duration::from_secs(20))
        .await;
    let mut working = 0;
    for mail in &mails {
        if verify(&app, &mail.token("/email/verify")).await.status() == 204 {
            working += 1;
        }
    }
    assert_eq!(working, 1, "exactly one live verification link");
}

// ---------------------------------------------------------------------------------------------
// Change of email

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_email_needs_the_password_and_an_address_no_account_has() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    signed_up(&app, "grace@example.com").await;

    // Act
    let wrong_password = change_email(&app, &access, "new@example.com", "not the password").await;
    let taken = change_email(&app, &access, " GRACE@Example.com", PASSWORD).await;
    let own = change_email(&app, &access, "ADA@example.com", PASSWORD).await;
    let invalid = change_email(&app, &access, "not an email", PASSWORD).await;
    let anonymous = app
        .request(Method::POST, "/account/email")
        .json(&json!({"new_email": "new@example.com", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(wrong_password, 403).await;
    assert_problem(taken, 409).await;
    assert_problem(own, 409).await;
    let problem = assert_problem(invalid, 422).await;
    assert_eq!(error_fields(&problem), ["new_email"]);
    assert_problem(anonymous, 401).await;
    assert_eq!(
        queued_for(&app, "new@example.com").await,
        0,
        "no mail went out"
    );
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM account_tokens WHERE purpose = 'email_change'"
        )
        .await,
        0
    );
    assert_eq!(me(&app, &access).await["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_change_moves_the_account_to_the_new_email_and_tells_the_old_one() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    let old_verification = sink
        .latest("ada@example.com", VERIFY)
        .await
        .token("/email/verify");

    // Act
    let requested = change_email(&app, &access, "Ada.King@example.com", PASSWORD).await;
    let confirmation = sink.latest("Ada.King@example.com", CONFIRM).await;
    let unchanged_before = me(&app, &access).await;
    let confirmed = verify(&app, &confirmation.token("/email/verify")).await;

    // Assert
    assert_eq!(requested.status(), 202);
    assert_eq!(
        unchanged_before["email"], "ada@example.com",
        "nothing changes until confirmed"
    );
    assert_eq!(confirmed.status(), 204);
    let user = me(&app, &access).await;
    assert_eq!(
        user["email"], "Ada.King@example.com",
        "the caller's session stays: {user}"
    );
    assert_eq!(user["email_verified"], true);
    assert_eq!(
        app.signin("ada.king@example.com", PASSWORD).await.status(),
        200
    );
    assert_problem(app.signin("ada@example.com", PASSWORD).await, 401).await;
    let notice = sink.latest("ada@example.com", CHANGED).await;
    assert!(
        notice.body.contains("Ada.King@example.com"),
        "{}",
        notice.body
    );
    assert!(
        notice.link("/email/verify").is_none(),
        "the notice carries no token"
    );
    assert_invalid_account_token(
        verify(&app, &old_verification).await,
        "a verification token for the old email",
    )
    .await;
    assert_invalid_account_token(
        verify(&app, &confirmation.token("/email/verify")).await,
        "the confirmation again",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_to_an_email_taken_before_it_is_confirmed_is_409_and_changes_nothing() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    assert_eq!(
        change_email(&app, &access, "wanted@example.com", PASSWORD)
            .await
            .status(),
        202
    );
    let token = sink
        .latest("wanted@example.com", CONFIRM)
        .await
        .token("/email/verify");
    signed_up(&app, "Wanted@Example.com").await;

    // Act
    let confirmed = verify(&app, &token).await;

    // Assert
    assert_problem(confirmed, 409).await;
    assert_eq!(me(&app, &access).await["email"], "ada@example.com");
    assert_eq!(
        queued_for(&app, "ada@example.com").await,
        1,
        "no notice, only the sign-up mail"
    );
}

// ---------------------------------------------------------------------------------------------
// Profile

#[tokio::test(flavor = "multi_thread")]
async fn patch_account_sets_clears_or_keeps_the_name() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    let patch = |body: Value| {
        app.authed(Method::PATCH, "/account", &access)
            .json(&body)
            .send()
    };

    // Act and assert: absent keeps, a string sets, null clears.
    let kept = patch(json!({})).await.unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.headers()[header::CACHE_CONTROL], "no-store");
    let kept: Value = kept.json().await.unwrap();
    assert_eq!(kept["name"], "Ada");
    assert_eq!(kept["email"], "ada@example.com");
    assert_eq!(kept["email_verified"], false);

    let set: Value = patch(json!({"name": "Ada King"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["name"], "Ada King");
    assert_eq!(me(&app, &access).await["name"], "Ada King");

    for (case, body, field) in [
        ("blank", json!({"name": "   "}), "name"),
        ("too long", json!({"name": "x".repeat(101)}), "name"),
        ("not a string", json!({"name": 5}), "name"),
        (
            "unknown field",
            json!({"email": "eve@example.com"}),
            "email",
        ),
        ("the role", json!({"role": "admin"}), "role"),
    ] {
        let response = patch(body).await.unwrap();
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "{case}"
        );
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(error_fields(&problem), [field], "{case}");
    }
    let unchanged = me(&app, &access).await;
    assert_eq!(unchanged["name"], "Ada King");
    assert_eq!(unchanged["role"], "user");
    assert_eq!(unchanged["email"], "ada@example.com");

    let cleared: Value = patch(json!({"name": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(cleared["name"].is_null(), "{cleared}");
    assert!(me(&app, &access).await["name"].is_null());

    assert_problem(
        app.request(Method::PATCH, "/account")
            .json(&json!({"name": "Eve"}))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// REQUIRE_VERIFIED_EMAIL

async fn assert_not_verified(response: Response, case: &str) {
    let problem = assert_problem_for(response, 403, case).await;
    assert_eq!(
        problem["type"], "/problems/email-not-verified",
        "{case}: {problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_require_verified_email_an_unverified_user_reads_but_writes_only_once_verified() {
    // Arrange
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let author = signed_up(&app, "grace@example.com").await;
    let token = sink
        .latest("grace@example.com", VERIFY)
        .await
        .token("/email/verify");
    assert_eq!(verify(&app, &token).await.status(), 204);
    let news = app
        .create_news(&author, &json!({"title": "T", "body": "B"}))
        .await;
    let path = format!("/news/{}", news["id"].as_str().unwrap());
    let access = signed_up(&app, "ada@example.com").await;
    let stored_before = db_text(&app, "SELECT string_agg(title || body, ',') FROM news").await;

    // Act and assert: every write is 403 with its own problem type, before ownership is looked at.
    let item = json!({"title": "Mine", "body": "B"});
    let writes = [
        (
            "create",
            app.authed(Method::POST, "/news", &access).json(&item),
        ),
        (
            "replace",
            app.authed(Method::PUT, &path, &access).json(&item),
        ),
        (
            "update",
            app.authed(Method::PATCH, &path, &access)
                .json(&json!({"title": "X"})),
        ),
        ("delete", app.authed(Method::DELETE, &path, &access)),
        (
            "bulk update",
            app.authed(Method::PATCH, "/news", &access)
                .json(&json!({"title": "X"})),
        ),
    ];
    for (case, request) in writes {
        assert_not_verified(request.send().await.unwrap(), case).await;
    }
    assert_eq!(
        db_text(&app, "SELECT string_agg(title || body, ',') FROM news").await,
        stored_before
    );
    for read in ["/news", "/news/count", path.as_str(), "/whoami"] {
        let response = app.authed(Method::GET, read, &access).send().await.unwrap();
        assert_eq!(response.status(), 200, "{read}");
    }

    let token = sink
        .latest("ada@example.com", VERIFY)
        .await
        .token("/email/verify");
    assert_eq!(verify(&app, &token).await.status(), 204);
    let created = app
        .authed(Method::POST, "/news", &access)
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "the same token, once verified");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_require_verified_email_an_unverified_user_writes() {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    app.create_news(&access, &json!({"title": "T", "body": "B"}))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verification_token_proves_only_the_email_it_was_mailed_to() {
    // Arrange: the account's email changes behind the token's back (no revocation).
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink, &[]).await;
    let access = signed_up(&app, "ada@example.com").await;
    let token = sink
        .latest("ada@example.com", VERIFY)
        .await
        .token("/email/verify");
    db_execute(
        &app,
        "UPDATE users SET email = 'eve@example.com', email_canonical = 'eve@example.com'",
    )
    .await;

    // Act
    let verified = verify(&app, &token).await;

    // Assert
    assert_invalid_account_token(verified, "a token for another email").await;
    assert_eq!(me(&app, &access).await["email_verified"], false);
}
