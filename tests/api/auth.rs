//! Accounts and access tokens: `POST /signup`, `POST /signin`, `GET /whoami`.

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, assert_no_internals, assert_problem, claims_of, db_count, db_execute,
    error_fields, json_of, sign_token, spawn_app, users,
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
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
    assert_problem(response, 401).await
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
async fn signup_with_a_registered_email_is_409_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("ada@example.com").await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": "another password"}))
        .await;

    // Assert
    assert_problem(response, 409).await;
    assert_eq!(users(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_registered_email_in_another_letter_case_is_409() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("Ada@X.com").await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@x.com", "password": PASSWORD}))
        .await;

    // Assert
    assert_problem(response, 409).await;
    assert_eq!(users(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_an_invalid_email_is_422_naming_email() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "not-an-email", "password": PASSWORD}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["email"]);
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_password_of_seven_characters_is_422_naming_password() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": "1234567"}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["password"]);
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_password_of_37_characters_but_74_bytes_is_422() {
    // Arrange
    let app = spawn_app().await;
    let password: String = TWO_BYTE_CHARS.chars().take(37).collect();
    assert_eq!((password.chars().count(), password.len()), (37, 74));

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": password}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["password"]);
    assert_eq!(users(&app).await, 0);
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

#[tokio::test(flavor = "multi_thread")]
async fn signup_asking_for_the_admin_role_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "eve@example.com", "password": PASSWORD, "role": "admin"}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["role"]);
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_null_name_is_422_naming_name() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": PASSWORD, "name": null}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["name"]);
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_nul_character_in_the_name_is_422_not_a_500() {
    // Arrange: JSON allows U+0000 in a string; PostgreSQL's text does not
    let app = spawn_app().await;

    // Act
    let response = app
        .signup(&json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada\u{0}"}))
        .await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["name"]);
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_without_a_password_is_422_naming_password() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.signup(&json!({"email": "ada@example.com"})).await;

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["password"]);
    assert_eq!(users(&app).await, 0);
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
    let wrong_password_headers = wrong_password.headers().clone();
    let unknown_email_headers = unknown_email.headers().clone();
    let wrong_password = assert_unauthorized(wrong_password).await;
    let unknown_email = assert_unauthorized(unknown_email).await;
    assert_eq!(wrong_password, unknown_email);
    assert_eq!(
        wrong_password_headers.get(header::WWW_AUTHENTICATE),
        unknown_email_headers.get(header::WWW_AUTHENTICATE)
    );
    assert_no_internals(&wrong_password.to_string());
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
async fn whoami_without_a_token_is_401_with_a_bearer_challenge() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/whoami").send().await.unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_a_garbage_token_is_401() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .authed(Method::GET, "/whoami", "garbage.not.ajwt")
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_the_token_of_a_deleted_user_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_user("ada@example.com").await;
    let deleted = db_execute(&app, &format!("DELETE FROM users WHERE id = '{id}'")).await;
    assert_eq!(deleted, 1);

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

/// Signs in a new user and returns their id and the claims of their access token, to re-sign
/// with one claim changed.
async fn issued_claims(app: &TestApp) -> (String, Value) {
    let (id, token) = app.new_user("ada@example.com").await;
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], id.as_str(), "{claims}");
    (id, claims)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_signed_token_with_valid_claims_is_accepted() {
    // Arrange: the control for the tests below, which each break one claim
    let app = spawn_app().await;
    let (id, mut claims) = issued_claims(&app).await;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 60);
    claims["nbf"] = json!(now - 60);
    claims["exp"] = json!(now + 300);

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &sign_token(&claims))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_an_expired_token_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, mut claims) = issued_claims(&app).await;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["nbf"] = json!(now - 3600);
    claims["exp"] = json!(now - 600);

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &sign_token(&claims))
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_a_token_from_another_issuer_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, mut claims) = issued_claims(&app).await;
    claims["iss"] = json!("someone-else");

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &sign_token(&claims))
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_a_token_for_another_audience_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, mut claims) = issued_claims(&app).await;
    claims["aud"] = json!("someone-else");

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &sign_token(&claims))
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_with_a_token_signed_with_another_secret_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, claims) = issued_claims(&app).await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-0123456789abcdef0123456789"),
    )
    .unwrap();

    // Act
    let response = app
        .authed(Method::GET, "/whoami", &forged)
        .send()
        .await
        .unwrap();

    // Assert
    assert_unauthorized(response).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_accepts_the_bearer_scheme_in_any_letter_case() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_user("ada@example.com").await;

    for scheme in ["bearer", "BEARER", "Bearer"] {
        // Act
        let response = whoami_with_header(&app, &format!("{scheme} {token}")).await;

        // Assert
        assert_eq!(response.status(), 200, "scheme {scheme}");
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["id"], id.as_str(), "scheme {scheme}");
    }
}
