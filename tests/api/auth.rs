//! Accounts and access tokens: `POST /signup`, `POST /signin`, `GET /whoami`.

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, assert_no_internals, assert_problem, assert_problem_for, db_count,
    error_fields, json_of, spawn_app, users, www_authenticate,
};

/// Distinct characters of two bytes each in UTF-8 (and unchanged by NFKC): a password made of
/// them is hard to guess, so only its length can be the reason it is refused.
const TWO_BYTE_CHARS: &str = "éñüßøåæçàèìòùâêîôûëïÿáíóúãõäöœšžčřħŋðþ";

async fn whoami_with_header(app: &TestApp, authorization: &str) -> reqwest::Response {
    app.request(Method::GET, "/whoami")
        .header(header::AUTHORIZATION, authorization)
        .send()
        .await
        .unwrap()
}

/// Asserts a 401 problem with a Bearer challenge.
async fn assert_unauthorized(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 401, "status");
    let challenge = www_authenticate(&response).unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
    let mut problem = assert_problem(response, 401).await;
    // The occurrence differs from request to request, by design.
    problem.as_object_mut().unwrap().remove("instance");
    problem
}

/// Asserts a 401 problem with a Bearer challenge; returns the challenge and the body as sent, to
/// compare two answers byte for byte.
async fn unauthorized_as_sent(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), 401, "status");
    let challenge = www_authenticate(&response).unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], 401, "{problem}");
    assert_eq!(problem["instance"], request_id.as_str());
    // The occurrence differs from request to request, by design; the rest must not.
    (challenge, text.replace(&request_id, "<request id>"))
}

// ---------------------------------------------------------------------------------------------
// POST /signup

#[tokio::test(flavor = "multi_thread")]
async fn signup_creates_a_user_with_the_role_user_and_returns_it_without_any_password() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada Lovelace"}))
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains("$2"), "a bcrypt hash leaked: {text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    let user: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    for key in &keys {
        let key = key.to_ascii_lowercase();
        assert!(
            !key.contains("password") && !key.contains("hash"),
            "key {key}: {user}"
        );
    }
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["role"], "user");
    assert!(chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().unwrap()).is_ok());
    assert_eq!(users(&app).await, 1);
    let stored_id = db_count(
        &app,
        &format!(
            "SELECT count(*) FROM users WHERE id = '{}' AND role = 'user'",
            user["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(stored_id, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_without_a_name_returns_a_null_name() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .await;

    // Assert
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();
    assert!(user["name"].is_null(), "{user}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_registered_email_in_any_letter_case_is_409_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("Ada@Example.com").await;

    for (case, email) in [
        ("the same email", "Ada@Example.com"),
        ("the email in another letter case", "ada@example.com"),
    ] {
        // Act
        let response = app
            .signup(&json!({"email": email, "password": "another password"}))
            .await;

        // Assert
        assert_problem_for(response, 409, case).await;
        assert_eq!(users(&app).await, 1, "{case}: no second account");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_field_that_breaks_its_rule_is_422_naming_it_and_creates_nothing() {
    // Arrange: each case is refused before anything is stored, so the cases can share one app
    let app = spawn_app().await;
    let email = "ada@example.com";
    let two_byte_password: String = TWO_BYTE_CHARS.chars().take(37).collect();
    assert_eq!(
        (two_byte_password.chars().count(), two_byte_password.len()),
        (37, 74)
    );

    for (case, body, field) in [
        (
            "an invalid email",
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            "a password of seven characters",
            json!({"email": email, "password": "1234567"}),
            "password",
        ),
        // Lengths hold for the string as sent: U+FB00 LATIN SMALL LIGATURE FF is one character
        // as sent and two in NFKC, the form that is hashed.
        (
            "a password of seven characters whose NFKC form has eight",
            json!({"email": email, "password": "k9#Vq2\u{FB00}"}),
            "password",
        ),
        (
            "a password of 37 characters but 74 bytes",
            json!({"email": email, "password": two_byte_password}),
            "password",
        ),
        ("no password", json!({"email": email}), "password"),
        (
            "a null name",
            json!({"email": email, "password": PASSWORD, "name": null}),
            "name",
        ),
        // JSON allows U+0000 in a string; PostgreSQL's text does not: a 422, not a 500
        (
            "a NUL character in the name",
            json!({"email": email, "password": PASSWORD, "name": "Ada\u{0}"}),
            "name",
        ),
    ] {
        // Act
        let response = app.signup(&body).await;

        // Assert
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(error_fields(&problem), [field], "{case}");
        assert_eq!(users(&app).await, 0, "{case}: no account");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_password_of_exactly_72_bytes_is_accepted_and_signs_in() {
    // Arrange
    let app = spawn_app().await;
    let password: String = TWO_BYTE_CHARS.chars().take(36).collect();
    assert_eq!(password.len(), 72);

    // Act
    let signup = app
        .signup(&json!({"email": "ada@example.com", "password": password}))
        .await;
    let signin = app.signin("ada@example.com", &password).await;

    // Assert
    assert_eq!(signup.status(), 201);
    assert_eq!(signin.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// POST /signin

#[tokio::test(flavor = "multi_thread")]
async fn signin_returns_a_bearer_token_that_lasts_900_seconds() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("ada@example.com").await;

    // Act
    let response = app.signin("ada@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 900);
    let access_token = token["access_token"].as_str().unwrap();
    assert_eq!(access_token.split('.').count(), 3, "a JWT: {access_token}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signin_compares_the_email_case_insensitively() {
    // Arrange
    let app = spawn_app().await;
    let (id, _) = app.new_user("Ada@Example.com").await;

    // Act
    let response = app.signin("ada@EXAMPLE.COM", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let me: Value = json_of(app.authed(
        Method::GET,
        "/whoami",
        token["access_token"].as_str().unwrap(),
    ))
    .await;
    assert_eq!(me["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn signin_with_wrong_password_is_401_and_looks_like_unknown_email() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("ada@example.com").await;

    // Act
    let wrong_password = app.signin("ada@example.com", "not the password").await;
    let unknown_email = app.signin("nobody@example.com", PASSWORD).await;

    // Assert
    let wrong_password = unauthorized_as_sent(wrong_password).await;
    let unknown_email = unauthorized_as_sent(unknown_email).await;
    assert_eq!(
        wrong_password, unknown_email,
        "the same challenge and the same body, byte for byte"
    );
    assert_no_internals(&wrong_password.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signin_with_a_nul_character_in_the_email_is_401_like_any_unknown_email() {
    // Arrange: no account can have such an email
    let app = spawn_app().await;
    app.new_user("ada@example.com").await;
    let unknown_email = assert_unauthorized(app.signin("nobody@example.com", PASSWORD).await).await;

    // Act
    let response = app.signin("ada\u{0}@example.com", PASSWORD).await;

    // Assert
    let problem = assert_unauthorized(response).await;
    assert_eq!(problem, unknown_email);
}

// ---------------------------------------------------------------------------------------------
// GET /whoami

#[tokio::test(flavor = "multi_thread")]
async fn whoami_returns_the_user_the_token_belongs_to() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("someone-else@example.com").await;
    let (id, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["role"], "user");
    assert!(me.get("password").is_none() && me.get("password_hash").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_without_a_token_is_401_with_a_bare_bearer_challenge() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/whoami").send().await.unwrap();

    // Assert: no error code, since the request had no credentials (RFC 6750 §3.1)
    assert_eq!(www_authenticate(&response).as_deref(), Some("Bearer"));
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_accepts_the_bearer_scheme_in_any_letter_case() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_user("ada@example.com").await;

    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        // Act
        let response = whoami_with_header(&app, &format!("{scheme} {token}")).await;

        // Assert
        assert_eq!(response.status(), 200, "scheme {scheme}");
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["id"], id.as_str(), "scheme {scheme}");
    }
}
