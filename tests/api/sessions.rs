//! Sessions: refresh tokens with rotation and reuse detection, sign-out, and their lifetimes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, access_token, assert_invalid_token, assert_problem, claims_of, db_count,
    json_of, refresh_token, spawn_app, spawn_app_with,
};

const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";

/// Every reuse of a rotated refresh token is theft: the tests of reuse detection itself.
const NO_REUSE_INTERVAL: &[(&str, &str)] = &[("REFRESH_REUSE_INTERVAL_SECS", "0")];

/// Signs `email` up, without starting a session.
async fn sign_up(app: &TestApp, email: &str) {
    let response = app
        .signup(&json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 201, "signup of {email}");
}

/// Signs `email` up and in, starting one session; returns the token response.
async fn signed_in(app: &TestApp, email: &str) -> Value {
    sign_up(app, email).await;
    app.tokens(email, PASSWORD).await
}

/// Exchanges `refresh` for new tokens, which must succeed.
async fn rotated(app: &TestApp, refresh: &str) -> Value {
    let response = app.refresh(refresh).await;
    assert_eq!(response.status(), 200, "refresh");
    response.json().await.unwrap()
}

/// The session (refresh-token family) an access token names.
fn session_of(tokens: &Value) -> String {
    claims_of(access_token(tokens))["sid"]
        .as_str()
        .expect("an access token names its session")
        .to_string()
}

async fn revoked_sessions(app: &TestApp) -> i64 {
    db_count(
        app,
        "SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL",
    )
    .await
}

async fn signout(app: &TestApp, access: &str, refresh: &str) -> reqwest::Response {
    app.authed(Method::POST, "/signout", access)
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
}

/// The id of the user `GET /whoami` answers for `access`, which must be 200.
async fn whoami_id(app: &TestApp, access: &str) -> String {
    let response = app.whoami(access).await;
    assert_eq!(response.status(), 200, "whoami");
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A refresh token made only of base64url characters, so that it can be written into SQL as is.
fn sql_safe(token: &str) -> &str {
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a refresh token is base64url: {token}"
    );
    token
}

// ---------------------------------------------------------------------------------------------
// POST /signin and POST /token/refresh

#[tokio::test(flavor = "multi_thread")]
async fn signin_returns_an_access_token_and_a_refresh_token_with_their_lifetimes() {
    // Arrange
    let app = spawn_app().await;
    sign_up(&app, ADA).await;

    // Act
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert_eq!(tokens["expires_in"], 900, "{tokens}");
    assert_eq!(
        access_token(&tokens).split('.').count(),
        3,
        "a JWT: {tokens}"
    );
    let refresh = refresh_token(&tokens);
    assert!(
        refresh.len() >= 43,
        "at least 256 bits in base64url: {refresh}"
    );
    assert_ne!(refresh, access_token(&tokens));
    let thirty_days = 30 * 24 * 60 * 60;
    let refresh_expires_in = tokens["refresh_expires_in"].as_i64().unwrap();
    assert!(
        (thirty_days - 60..=thirty_days).contains(&refresh_expires_in),
        "refresh_expires_in defaults to 30 days: {tokens}"
    );
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_families").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshing_returns_a_new_pair_that_works_and_the_old_refresh_token_then_gets_401() {
    // Arrange
    let app = spawn_app_with(NO_REUSE_INTERVAL).await;
    let first = signed_in(&app, ADA).await;
    let user_id = whoami_id(&app, access_token(&first)).await;

    // Act
    let response = app.refresh(refresh_token(&first)).await;

    // Assert
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["token_type"], "Bearer", "{second}");
    assert_eq!(second["expires_in"], 900, "{second}");
    assert!(
        second["refresh_expires_in"].as_i64().unwrap() > 0,
        "{second}"
    );
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(session_of(&second), session_of(&first), "same session");
    assert_eq!(whoami_id(&app, access_token(&second)).await, user_id);

    let replayed = app.refresh(refresh_token(&first)).await;
    assert_invalid_token(replayed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn presenting_a_rotated_refresh_token_revokes_its_whole_family() {
    // Arrange: sign in, then rotate twice
    let app = spawn_app_with(NO_REUSE_INTERVAL).await;
    let first = signed_in(&app, ADA).await;
    let second = rotated(&app, refresh_token(&first)).await;
    let third = rotated(&app, refresh_token(&second)).await;
    assert_eq!(revoked_sessions(&app).await, 0);

    // Act: an attacker replays the first, long-rotated refresh token
    let reuse = app.refresh(refresh_token(&first)).await;

    // Assert
    assert_invalid_token(reuse).await;
    assert_invalid_token(app.refresh(refresh_token(&third)).await).await;
    for tokens in [&first, &second, &third] {
        assert_invalid_token(app.whoami(access_token(tokens)).await).await;
    }
    assert_eq!(revoked_sessions(&app).await, 1);
    let revoked = db_count(
        &app,
        &format!(
            "SELECT count(*) FROM refresh_families WHERE id = '{}' AND revoked_at IS NOT NULL",
            session_of(&first)
        ),
    )
    .await;
    assert_eq!(revoked, 1, "the family of the reused token is revoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_of_a_refresh_token_leaves_the_users_other_sessions_alone() {
    // Arrange: two sign-ins of one user, and a rotation in the first
    let app = spawn_app_with(NO_REUSE_INTERVAL).await;
    let laptop = signed_in(&app, ADA).await;
    let phone = app.tokens(ADA, PASSWORD).await;
    rotated(&app, refresh_token(&laptop)).await;

    // Act
    let reuse = app.refresh(refresh_token(&laptop)).await;

    // Assert
    assert_invalid_token(reuse).await;
    whoami_id(&app, access_token(&phone)).await;
    let phone_refreshed = app.refresh(refresh_token(&phone)).await;
    assert_eq!(phone_refreshed.status(), 200);
    assert_eq!(revoked_sessions(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_concurrent_refreshes_with_the_same_token_exactly_one_succeeds() {
    // Arrange
    let app = spawn_app_with(NO_REUSE_INTERVAL).await;
    sign_up(&app, ADA).await;

    for round in 0..5 {
        let tokens = app.tokens(ADA, PASSWORD).await;
        let refresh = refresh_token(&tokens);

        // Act
        let (a, b) = tokio::join!(app.refresh(refresh), app.refresh(refresh));

        // Assert
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "round {round}");
        let issued = db_count(
            &app,
            &format!(
                "SELECT count(*) FROM refresh_tokens WHERE family_id = '{}'",
                session_of(&tokens)
            ),
        )
        .await;
        assert_eq!(
            issued, 2,
            "round {round}: one new refresh token besides the first"
        );
    }
}

/// How many refresh tokens of the session `tokens` belongs to still work (are not spent).
async fn working_refresh_tokens(app: &TestApp, tokens: &Value) -> i64 {
    db_count(
        app,
        &format!(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = '{}' AND rotated_at IS NULL",
            session_of(tokens)
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_retried_within_the_reuse_interval_gets_a_working_pair_in_the_same_session() {
    // Arrange: the default interval (10 s); the answer to the first refresh is "lost".
    let app = spawn_app().await;
    let first = signed_in(&app, ADA).await;
    let user_id = whoami_id(&app, access_token(&first)).await;
    let lost = rotated(&app, refresh_token(&first)).await;

    // Act: the client retries with the token it still has.
    let retried = rotated(&app, refresh_token(&first)).await;

    // Assert
    assert_eq!(session_of(&retried), session_of(&first), "same session");
    assert_ne!(refresh_token(&retried), refresh_token(&lost));
    assert_eq!(whoami_id(&app, access_token(&retried)).await, user_id);
    assert_eq!(whoami_id(&app, access_token(&lost)).await, user_id);
    assert_eq!(revoked_sessions(&app).await, 0);
    assert_eq!(
        working_refresh_tokens(&app, &first).await,
        1,
        "only the newest refresh token works"
    );
    let next = rotated(&app, refresh_token(&retried)).await;
    assert_eq!(whoami_id(&app, access_token(&next)).await, user_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_racing_refreshes_within_the_reuse_interval_both_get_working_pairs() {
    // Arrange
    let app = spawn_app().await;
    sign_up(&app, ADA).await;

    for round in 0..5 {
        let tokens = app.tokens(ADA, PASSWORD).await;
        let refresh = refresh_token(&tokens);

        // Act
        let (a, b) = tokio::join!(app.refresh(refresh), app.refresh(refresh));

        // Assert
        assert_eq!(
            (a.status().as_u16(), b.status().as_u16()),
            (200, 200),
            "round {round}"
        );
        let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
        for pair in [&a, &b] {
            assert_eq!(session_of(pair), session_of(&tokens), "round {round}");
            assert_eq!(app.whoami(access_token(pair)).await.status(), 200);
        }
        assert_eq!(
            working_refresh_tokens(&app, &tokens).await,
            1,
            "round {round}: one working refresh token per session"
        );
    }
    assert_eq!(revoked_sessions(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_reuse_interval_a_replaced_refresh_token_revokes_the_session() {
    // Arrange: a 1 s interval; a retry replaces the token the first refresh issued.
    let app = spawn_app_with(&[("REFRESH_REUSE_INTERVAL_SECS", "1")]).await;
    let first = signed_in(&app, ADA).await;
    let lost = rotated(&app, refresh_token(&first)).await;
    let retried = rotated(&app, refresh_token(&first)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The newest token works past the interval.
    let newest = rotated(&app, refresh_token(&retried)).await;

    // Act: the token the lost answer carried, presented after the interval.
    let reuse = app.refresh(refresh_token(&lost)).await;

    // Assert
    assert_invalid_token(reuse).await;
    assert_eq!(revoked_sessions(&app).await, 1);
    assert_invalid_token(app.refresh(refresh_token(&newest)).await).await;
    assert_invalid_token(app.whoami(access_token(&newest)).await).await;
    assert_invalid_token(app.refresh(refresh_token(&first)).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_is_never_accepted_as_a_refresh_token() {
    // Arrange
    let app = spawn_app().await;
    let tokens = signed_in(&app, ADA).await;

    // Act
    let response = app.refresh(access_token(&tokens)).await;

    // Assert
    assert_problem(response, 401).await;
    assert_eq!(revoked_sessions(&app).await, 0);
    assert_eq!(
        app.refresh(refresh_token(&tokens)).await.status(),
        200,
        "the real refresh token still works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_refresh_token_is_401() {
    // Arrange
    let app = spawn_app().await;
    signed_in(&app, ADA).await;

    // Act
    let response = app
        .refresh("bm90LWEtcmVmcmVzaC10b2tlbi1hdC1hbGwtMDEyMzQ1Njc4OQ")
        .await;

    // Assert
    assert_problem(response, 401).await;
    assert_eq!(revoked_sessions(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_refresh_token_is_422_naming_refresh_token() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.refresh("").await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(problem["errors"][0]["field"], "refresh_token", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_request_with_an_unknown_field_is_422_and_rotates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let tokens = signed_in(&app, ADA).await;

    // Act
    let response = app
        .request(Method::POST, "/token/refresh")
        .json(&json!({"refresh_token": refresh_token(&tokens), "user_id": "someone"}))
        .send()
        .await
        .unwrap();

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(problem["errors"][0]["field"], "user_id", "{problem}");
    let rotated = db_count(
        &app,
        "SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL",
    )
    .await;
    assert_eq!(rotated, 0);
    assert_eq!(app.refresh(refresh_token(&tokens)).await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// POST /signout and POST /signout/all

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_ends_that_session_at_once_and_leaves_the_others_working() {
    // Arrange: one user signed in twice
    let app = spawn_app().await;
    let laptop = signed_in(&app, ADA).await;
    let phone = app.tokens(ADA, PASSWORD).await;

    // Act
    let response = signout(&app, access_token(&laptop), refresh_token(&laptop)).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_invalid_token(app.whoami(access_token(&laptop)).await).await;
    assert_invalid_token(app.refresh(refresh_token(&laptop)).await).await;
    whoami_id(&app, access_token(&phone)).await;
    assert_eq!(app.refresh(refresh_token(&phone)).await.status(), 200);
    assert_eq!(revoked_sessions(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_signing_out_no_news_can_be_read_whether_or_not_any_match() {
    // Arrange: the item is another session's, which stays live
    let app = spawn_app().await;
    let laptop = signed_in(&app, ADA).await;
    let phone = app.tokens(ADA, PASSWORD).await;
    let news = app
        .create_news(
            access_token(&phone),
            &json!({"title": "Kept", "body": "Still here"}),
        )
        .await;
    let item = format!("/news/{}", news["id"].as_str().unwrap());
    let missing = format!("/news/{}", uuid::Uuid::nil());
    let page = "/news?limit=5";
    let empty_page = format!("/news?author_id={}", uuid::Uuid::nil());
    // A search checks the session by a statement of its own; the other pages in their own (D10).
    let search = "/news?q=kept";
    let read = |path: &str, tokens: &Value| app.authed(Method::GET, path, access_token(tokens));
    assert_eq!(read(&item, &laptop).send().await.unwrap().status(), 200);
    assert_eq!(read(&missing, &laptop).send().await.unwrap().status(), 404);
    assert_eq!(read(page, &laptop).send().await.unwrap().status(), 200);
    assert_eq!(
        read(&empty_page, &laptop).send().await.unwrap().status(),
        200
    );
    assert_eq!(read(search, &laptop).send().await.unwrap().status(), 200);

    // Act
    assert_eq!(
        signout(&app, access_token(&laptop), refresh_token(&laptop))
            .await
            .status(),
        204
    );

    // Assert
    assert_invalid_token(read(&item, &laptop).send().await.unwrap()).await;
    assert_invalid_token(read(&missing, &laptop).send().await.unwrap()).await;
    assert_invalid_token(read(page, &laptop).send().await.unwrap()).await;
    assert_invalid_token(read(&empty_page, &laptop).send().await.unwrap()).await;
    assert_invalid_token(read(search, &laptop).send().await.unwrap()).await;
    assert_eq!(read(&item, &phone).send().await.unwrap().status(), 200);
    assert_eq!(read(&missing, &phone).send().await.unwrap().status(), 404);
    let listed: Value = json_of(read(page, &phone)).await;
    assert_eq!(listed["items"][0]["id"], news["id"]);
    let listed: Value = json_of(read(&empty_page, &phone)).await;
    assert_eq!(listed["items"], json!([]));
    let listed: Value = json_of(read(search, &phone)).await;
    assert_eq!(listed["items"][0]["id"], news["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_with_another_users_refresh_token_does_not_end_their_session() {
    // Arrange
    let app = spawn_app().await;
    let ada = signed_in(&app, ADA).await;
    let mallory = signed_in(&app, "mallory@example.com").await;

    // Act
    let response = signout(&app, access_token(&mallory), refresh_token(&ada)).await;

    // Assert: mallory ends only her own session
    assert_eq!(response.status(), 204);
    assert_invalid_token(app.whoami(access_token(&mallory)).await).await;
    whoami_id(&app, access_token(&ada)).await;
    assert_eq!(app.refresh(refresh_token(&ada)).await.status(), 200);
    assert_eq!(revoked_sessions(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_without_an_access_token_is_401_and_ends_nothing() {
    // Arrange
    let app = spawn_app().await;
    let tokens = signed_in(&app, ADA).await;

    // Act
    let response = app
        .request(Method::POST, "/signout")
        .json(&json!({ "refresh_token": refresh_token(&tokens) }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401).await;
    assert_eq!(revoked_sessions(&app).await, 0);
    whoami_id(&app, access_token(&tokens)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_everywhere_ends_every_session_of_the_user_and_no_one_elses() {
    // Arrange
    let app = spawn_app().await;
    let laptop = signed_in(&app, ADA).await;
    let phone = app.tokens(ADA, PASSWORD).await;
    let bob = signed_in(&app, BOB).await;

    // Act
    let response = app
        .authed(Method::POST, "/signout/all", access_token(&phone))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 204);
    for tokens in [&laptop, &phone] {
        assert_invalid_token(app.whoami(access_token(tokens)).await).await;
        assert_invalid_token(app.refresh(refresh_token(tokens)).await).await;
    }
    whoami_id(&app, access_token(&bob)).await;
    assert_eq!(app.refresh(refresh_token(&bob)).await.status(), 200);
    assert_eq!(revoked_sessions(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_may_sign_in_again_after_signing_out_everywhere() {
    // Arrange
    let app = spawn_app().await;
    let tokens = signed_in(&app, ADA).await;
    let response = app
        .authed(Method::POST, "/signout/all", access_token(&tokens))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Act
    let again = app.tokens(ADA, PASSWORD).await;

    // Assert
    whoami_id(&app, access_token(&again)).await;
    assert_eq!(app.refresh(refresh_token(&again)).await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Storage and lifetimes

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_are_stored_only_as_their_sha256() {
    // Arrange
    let app = spawn_app().await;
    let first = signed_in(&app, ADA).await;

    // Act
    let second = rotated(&app, refresh_token(&first)).await;

    // Assert
    for tokens in [&first, &second] {
        let token = sql_safe(refresh_token(tokens));
        let by_hash = db_count(
            &app,
            &format!(
                "SELECT count(*) FROM refresh_tokens \
                 WHERE token_hash = sha256(convert_to('{token}', 'UTF8'))"
            ),
        )
        .await;
        assert_eq!(by_hash, 1, "the token is stored as its SHA-256");
        let in_clear = db_count(
            &app,
            &format!(
                "SELECT count(*) FROM refresh_tokens t \
                 WHERE strpos(t::text, '{token}') > 0 \
                    OR encode(t.token_hash, 'escape') = '{token}' \
                    OR strpos(encode(t.token_hash, 'escape'), '{token}') > 0"
            ),
        )
        .await;
        assert_eq!(in_clear, 0, "no column holds the token itself");
        let in_families = db_count(
            &app,
            &format!(
                "SELECT count(*) FROM refresh_families f WHERE strpos(f::text, '{token}') > 0"
            ),
        )
        .await;
        assert_eq!(in_families, 0);
    }
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_tokens").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_stops_working_when_refresh_token_ttl_secs_have_passed() {
    // Arrange
    let app = spawn_app_with(&[("REFRESH_TOKEN_TTL_SECS", "1")]).await;
    let tokens = signed_in(&app, ADA).await;
    assert!(
        tokens["refresh_expires_in"].as_i64().unwrap() <= 1,
        "{tokens}"
    );
    let token = sql_safe(refresh_token(&tokens)).to_string();
    // Wait, without spending the token, until the database's clock has passed its expiry.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let expired = db_count(
            &app,
            &format!(
                "SELECT count(*) FROM refresh_tokens \
                 WHERE token_hash = sha256(convert_to('{token}', 'UTF8')) AND expires_at <= now()"
            ),
        )
        .await;
        if expired == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act
    let response = app.refresh(&token).await;

    // Assert: refused as expired, not as reused (the session itself is not revoked)
    assert_invalid_token(response).await;
    assert_eq!(revoked_sessions(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_and_its_access_tokens_end_after_session_max_lifetime_secs() {
    // Arrange
    let app = spawn_app_with(&[("SESSION_MAX_LIFETIME_SECS", "1")]).await;
    let tokens = signed_in(&app, ADA).await;
    assert!(
        tokens["refresh_expires_in"].as_i64().unwrap() <= 1,
        "a refresh token never outlives its session: {tokens}"
    );

    // Act: the access token itself is good for 900 s; its session is not
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended = loop {
        let response = app.whoami(access_token(&tokens)).await;
        if response.status() != 200 {
            break response;
        }
        assert!(Instant::now() < deadline, "the session never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    assert_invalid_token(ended).await;
    assert_invalid_token(app.refresh(refresh_token(&tokens)).await).await;
}
