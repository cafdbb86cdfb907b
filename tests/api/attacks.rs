//! The attack suite: forged and broken tokens, password hardening, and hostile input in every
//! string field and query parameter. Every case gets a documented 4xx (or a normal 2xx), never a
//! 500, and changes no data it should not.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use std::time::Duration;

use crate::helpers::{
    PASSWORD, TEST_SECRET, TestApp, access_token, all_news, assert_invalid_token_for,
    assert_no_internals, assert_problem, assert_problem_for, claims_of, db_count, db_execute,
    error_fields, news_rows, refresh_token, sign_token, spawn_app, spawn_app_with, test_kid, users,
    wait_for_db, www_authenticate,
};

const ADA: &str = "ada@example.com";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Signs up and in a user; returns their token response and the claims of their access token.
async fn issued(app: &TestApp) -> (Value, Value) {
    app.new_user(ADA).await;
    let tokens = app.tokens(ADA, PASSWORD).await;
    let claims = claims_of(access_token(&tokens));
    (tokens, claims)
}

/// `claims` with its time claims moved to now, so that only the change a test makes is wrong.
fn fresh(mut claims: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 10);
    claims["nbf"] = json!(now - 10);
    claims["exp"] = json!(now + 600);
    claims
}

/// `claims` without `name`.
fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a header of our choosing plus the server's `kid`, signed (over `header.payload`,
/// as JWS does) with HMAC SHA-256 under the server's secret, whatever the header says.
fn hmac_signed_with_header(header_json: &str, claims: &Value) -> String {
    let mut header: Value = serde_json::from_str(header_json).unwrap();
    header["kid"] = json!(test_kid());
    let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// Signed with `algorithm` under the server's secret, with the server's `kid`.
fn signed_with(algorithm: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(test_kid());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Asserts that `token` is refused with `401` and `Bearer error="invalid_token"` on `GET /whoami`,
/// and that it reaches no handler: `POST /news` with it is refused the same way and writes nothing.
async fn assert_refused(app: &TestApp, token: &str, case: &str) {
    let news_before = news_rows(app).await;
    let response = app.whoami(token).await;
    assert_invalid_token_for(response, &format!("{case}: whoami")).await;

    let response = app
        .authed(Method::POST, "/news", token)
        .json(&json!({"title": "Forged", "body": "Forged"}))
        .send()
        .await
        .unwrap();
    assert_invalid_token_for(response, &format!("{case}: POST /news")).await;
    assert_eq!(news_rows(app).await, news_before, "{case}: nothing written");

    // A read of an id that does not exist is refused too, not answered 404.
    let response = app
        .authed(Method::GET, &format!("/news/{}", uuid::Uuid::nil()), token)
        .send()
        .await
        .unwrap();
    assert_invalid_token_for(response, &format!("{case}: GET /news/{{id}}")).await;
}

// ---------------------------------------------------------------------------------------------
// Token hardening

#[tokio::test(flavor = "multi_thread")]
async fn a_token_re_signed_with_fresh_claims_is_accepted_as_the_control_for_every_forgery() {
    // Arrange
    let app = spawn_app().await;
    let (_, claims) = issued(&app).await;

    // Act
    let response = app.whoami(&sign_token(&fresh(claims.clone()))).await;
    let by_hand = app
        .whoami(&hmac_signed_with_header(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &fresh(claims.clone()),
        ))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], claims["sub"], "the token's user");
    assert_eq!(
        by_hand.status(),
        200,
        "the hand-assembled token is well made"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_signed_with_hs256_under_the_servers_secret_is_refused() {
    // Arrange: each forgery is refused before any handler runs, so the cases can share one app
    let app = spawn_app().await;
    let (victim_id, _) = app.new_user("victim@example.com").await;
    let (tokens, claims) = issued(&app).await;
    let payload = b64(fresh(claims.clone()).to_string());
    let (signed, signature) = access_token(&tokens).rsplit_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let mut victims = claims.clone();
    victims["sub"] = json!(victim_id);
    let parts: Vec<&str> = access_token(&tokens).split('.').collect();
    let mut forgeries: Vec<(String, String)> = ["none", "None", "NONE", "nOnE"]
        .into_iter()
        .map(|alg| {
            let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            (
                format!("alg {alg}, unsigned"),
                format!("{header}.{payload}."),
            )
        })
        .collect();
    forgeries.extend([
        (
            "HS512 under the same secret".to_string(),
            signed_with(Algorithm::HS512, &fresh(claims.clone())),
        ),
        (
            "HS384 under the same secret".to_string(),
            signed_with(Algorithm::HS384, &fresh(claims.clone())),
        ),
        (
            // the key-confusion attack, with the HMAC secret standing in for an RSA key
            "an RS256 header over an HMAC signature".to_string(),
            hmac_signed_with_header(r#"{"alg":"RS256","typ":"JWT"}"#, &fresh(claims.clone())),
        ),
        (
            "HS256 under another secret, with the server's kid".to_string(),
            jsonwebtoken::encode(
                &Header {
                    kid: Some(test_kid()),
                    ..Header::new(Algorithm::HS256)
                },
                &fresh(claims.clone()),
                &EncodingKey::from_secret(b"another-secret-0123456789abcdef0123456789"),
            )
            .unwrap(),
        ),
        (
            "HS256 under the server's secret without a kid".to_string(),
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &fresh(claims.clone()),
                &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "HS256 under the server's secret with another kid".to_string(),
            jsonwebtoken::encode(
                &Header {
                    kid: Some("hs256-someone-else".into()),
                    ..Header::new(Algorithm::HS256)
                },
                &fresh(claims.clone()),
                &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "a signature with one character changed".to_string(),
            format!("{signed}.{}", String::from_utf8(flipped).unwrap()),
        ),
        ("a short signature".to_string(), format!("{signed}.AAAA")),
        (
            "another user's id under the original signature".to_string(),
            format!("{}.{}.{}", parts[0], b64(victims.to_string()), parts[2]),
        ),
    ]);

    for (case, token) in forgeries {
        // Act + Assert
        assert_refused(&app, &token, &case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_garbage_tokens_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let (tokens, _) = issued(&app).await;
    let token = access_token(&tokens);

    for (case, broken) in [
        ("truncated", token[..token.len() - 5].to_string()),
        ("two parts", token.rsplit_once('.').unwrap().0.to_string()),
        ("header only", token.split('.').next().unwrap().to_string()),
        ("garbage", "garbage".to_string()),
        ("garbage in three parts", "garbage.not.ajwt".to_string()),
        ("dots", "..".to_string()),
        ("four parts", format!("{token}.{token}")),
        ("not base64", "!!!.@@@.###".to_string()),
        ("json header", format!("{{}}.{}", b64("{}"))),
    ] {
        // Act + Assert
        assert_refused(&app, &broken, case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validly_signed_token_with_a_missing_or_wrong_claim_is_refused() {
    // Arrange: each token breaks one claim of a fresh copy of a real token's claims, and is
    // refused before any handler runs, so the cases can share one app
    let app = spawn_app().await;
    let (_, claims) = issued(&app).await;
    let claims = fresh(claims);
    let now = chrono::Utc::now().timestamp();
    let with = |name: &str, value: Value| {
        let mut changed = claims.clone();
        changed[name] = value;
        changed
    };
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["nbf"] = json!(now - 7200);
    expired["exp"] = json!(now - 600);
    let mut not_yet_valid = claims.clone();
    not_yet_valid["nbf"] = json!(now + 3600);
    not_yet_valid["exp"] = json!(now + 7200);

    for (case, forged) in [
        ("no exp", without(claims.clone(), "exp")),
        ("expired ten minutes ago", expired),
        ("not valid before an hour from now", not_yet_valid),
        ("another issuer", with("iss", json!("someone-else"))),
        ("no iss", without(claims.clone(), "iss")),
        ("another audience", with("aud", json!("someone-else"))),
        (
            "an aud list without ours",
            with("aud", json!(["someone-else"])),
        ),
        ("no aud", without(claims.clone(), "aud")),
        ("typ refresh", with("typ", json!("refresh"))),
        ("no typ", without(claims.clone(), "typ")),
        ("no sid", without(claims.clone(), "sid")),
        (
            "a sid of no session",
            with("sid", json!(uuid::Uuid::new_v4())),
        ),
        ("no sub", without(claims.clone(), "sub")),
    ] {
        // Act + Assert
        assert_refused(&app, &sign_token(&forged), case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_of_a_deleted_user_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let (tokens, claims) = issued(&app).await;
    let deleted = db_execute(
        &app,
        &format!(
            "DELETE FROM users WHERE id = '{}'",
            claims["sub"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(deleted, 1);

    // Act + Assert
    assert_refused(&app, access_token(&tokens), "deleted user").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_over_8_kib_is_refused_though_a_validly_signed_smaller_one_passes() {
    // Arrange
    let app = spawn_app().await;
    let (_, claims) = issued(&app).await;
    let mut small = fresh(claims.clone());
    small["pad"] = json!("x".repeat(4000));
    let small = sign_token(&small);
    let mut large = fresh(claims);
    large["pad"] = json!("x".repeat(7000));
    let large = sign_token(&large);
    assert!(small.len() < 8 * 1024 && large.len() > 8 * 1024);

    // Act
    let control = app.whoami(&small).await;

    // Assert
    assert_eq!(control.status(), 200, "the padding alone is harmless");
    assert_refused(&app, &large, "over 8 KiB").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_is_refused_as_a_bearer_token() {
    // Arrange
    let app = spawn_app().await;
    let (tokens, _) = issued(&app).await;

    // Act + Assert
    assert_refused(&app, refresh_token(&tokens), "refresh token").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_scheme_or_an_empty_bearer_token_is_401_with_a_bearer_challenge() {
    // Arrange
    let app = spawn_app().await;
    let (tokens, _) = issued(&app).await;

    for authorization in [
        format!("Basic {}", access_token(&tokens)),
        format!("Token {}", access_token(&tokens)),
        "Bearer".to_string(),
        "Bearer    ".to_string(),
        access_token(&tokens).to_string(),
    ] {
        // Act
        let response = app
            .request(Method::GET, "/whoami")
            .header(header::AUTHORIZATION, &authorization)
            .send()
            .await
            .unwrap();

        // Assert
        let case = format!("Authorization: {authorization}");
        let challenge = www_authenticate(&response).unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge:?}");
        assert_problem_for(response, 401, &case).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Password hardening

/// A hard-to-guess ASCII password of exactly `bytes` bytes.
fn strong_password(bytes: usize) -> String {
    "Zq7#mK2!vR9$wL4^xT6&".chars().cycle().take(bytes).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_over_72_bytes_is_refused_at_signup_with_422_naming_password() {
    // Arrange
    let app = spawn_app().await;

    for password in [
        strong_password(73),
        strong_password(200),
        strong_password(10_000),
    ] {
        // Act
        let response = app
            .signup(&json!({"email": ADA, "password": password}))
            .await;

        // Assert
        let case = format!("{} bytes", password.len());
        let problem = assert_problem_for(response, 422, &case).await;
        assert_eq!(error_fields(&problem), ["password"], "{case}");
        assert_eq!(users(&app).await, 0, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_of_exactly_72_bytes_is_never_truncated_at_signin() {
    // Arrange
    let app = spawn_app().await;
    let password = strong_password(72);
    let response = app
        .signup(&json!({"email": ADA, "password": password}))
        .await;
    assert_eq!(response.status(), 201);

    // Act
    let longer = app.signin(ADA, &format!("{password}extra")).await;
    let exact = app.signin(ADA, &password).await;

    // Assert
    assert_problem(longer, 401).await;
    assert_eq!(exact.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_typed_in_another_unicode_form_signs_in_after_nfkc() {
    // Arrange: U+212B ANGSTROM SIGN and full-width digits at signup
    let app = spawn_app().await;
    let typed_at_signup = "\u{212B}ngstr\u{00F6}m-\u{FF11}\u{FF12}\u{FF13}x-Tolkien";
    let response = app
        .signup(&json!({"email": ADA, "password": typed_at_signup}))
        .await;
    assert_eq!(response.status(), 201);

    for typed_now in [
        "\u{00C5}ngstr\u{00F6}m-123x-Tolkien",
        "A\u{030A}ngstro\u{0308}m-123x-Tolkien",
        typed_at_signup,
    ] {
        // Act
        let response = app.signin(ADA, typed_now).await;

        // Assert
        assert_eq!(response.status(), 200, "{typed_now:?}");
    }
    let other = app.signin(ADA, "Angstrom-123x-Tolkien").await;
    assert_problem(other, 401).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn common_passwords_are_refused_at_signup_with_422_naming_password() {
    // Arrange
    let app = spawn_app().await;

    for password in [
        "password1",
        "12345678",
        "qwertyuiop",
        "iloveyou1",
        "password",
        "ada@example.com",
    ] {
        // Act
        let response = app
            .signup(&json!({"email": ADA, "password": password}))
            .await;

        // Assert
        let problem = assert_problem_for(response, 422, password).await;
        assert_eq!(error_fields(&problem), ["password"], "{password}");
    }
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_with_a_nul_character_is_accepted_and_never_cut_at_it() {
    // Arrange: a NUL is a character like any other in a password, which is only ever hashed
    let app = spawn_app().await;
    let password = "Zq7#mK2!vR9$\u{0}wL4^xT6&";
    let response = app
        .signup(&json!({"email": ADA, "password": password}))
        .await;
    assert_eq!(response.status(), 201, "signup");

    // Act
    let prefix = app.signin(ADA, "Zq7#mK2!vR9$").await;
    let whole = app.signin(ADA, password).await;

    // Assert
    assert_problem(prefix, 401).await;
    assert_eq!(whole.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_a_field_a_user_must_not_set_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    for (field, value) in [
        ("role", json!("admin")),
        ("role", json!("user")),
        ("id", json!(uuid::Uuid::new_v4())),
        ("created_at", json!("2020-01-01T00:00:00Z")),
        ("password_hash", json!("$2b$04$abcdefghijklmnopqrstuv")),
    ] {
        let mut body = json!({"email": ADA, "password": PASSWORD});
        body[field] = value;

        // Act
        let response = app.signup(&body).await;

        // Assert
        let problem = assert_problem_for(response, 422, field).await;
        assert_eq!(error_fields(&problem), [field]);
        assert_eq!(users(&app).await, 0, "{field}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input in every string field and query parameter

/// The names of the hostile strings the rules below single out.
const ESCAPED_NUL: &str = "an escaped NUL";
const NUL: &str = "a NUL";
const HUGE: &str = "10 000 a's";
const HUGE_RANDOM: &str = "10 000 random hex digits";
const WILDCARDS: &str = "LIKE wildcards";

/// A string an attacker tries, and its name for assertion messages and expectations.
struct Hostile {
    name: &'static str,
    text: String,
}

/// Strings an attacker tries: SQL, a literal `\x00`, a real NUL, huge strings (compressible and
/// not), bidi controls and emoji, LIKE wildcards, markup.
fn hostile_strings() -> Vec<Hostile> {
    [
        ("SQL tautology", "' OR 1=1 --".to_string()),
        ("SQL DROP TABLE", "\"; DROP TABLE news; --".to_string()),
        ("SQL DELETE", "'; DELETE FROM users; --".to_string()),
        (ESCAPED_NUL, "\\x00".to_string()),
        (NUL, "\u{0}".to_string()),
        (HUGE, "a".repeat(10_000)),
        (HUGE_RANDOM, random_text(10_000)),
        (
            "bidi controls and emoji",
            "\u{202E}gpj.exe\u{202C} 🦀🔥👩‍👩‍👧 שלום".to_string(),
        ),
        (WILDCARDS, "%_\\%".to_string()),
        ("markup", "<script>alert(1)</script>".to_string()),
    ]
    .into_iter()
    .map(|(name, text)| Hostile { name, text })
    .collect()
}

/// `chars` characters that do not compress (random hex), so that no database page or index can
/// squeeze them small.
fn random_text(chars: usize) -> String {
    let mut text = String::new();
    while text.len() < chars {
        text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    text.truncate(chars);
    text
}

/// Asserts the response is a clean answer whatever the input: never a 5xx, problem+json when it
/// is an error, and showing none of the server's insides; then that its status is `expected`.
/// Returns the JSON body (null if none).
async fn assert_clean(response: Response, expected: u16, case: &str) -> Value {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(status < 500, "{case}: never a 5xx, got {status}: {text}");
    assert_no_internals(&text);
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "{case}: an error is problem+json: {text}"
        );
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["status"], status, "{case}: {problem}");
    }
    assert_eq!(status, expected, "{case}: {text:.200}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Asserts the tables are all there and hold `users` users and `news` news.
async fn assert_intact(app: &TestApp, users: i64, news: i64) {
    let tables = db_count(
        app,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name IN ('users', 'news', 'user_credentials', 'refresh_families', \
         'refresh_tokens', 'signin_failures')",
    )
    .await;
    assert_eq!(tables, 6, "every table is still there");
    assert_eq!(db_count(app, "SELECT count(*) FROM users").await, users);
    assert_eq!(news_rows(app).await, news);
}

/// Percent-encodes every byte but ASCII letters and digits, for a path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_in_every_signup_field_get_a_clean_answer_and_are_stored_verbatim() {
    // Arrange
    let app = spawn_app().await;
    let mut created = 0;

    for (i, Hostile { name, text: s }) in hostile_strings().iter().enumerate() {
        for (field, body) in [
            ("email", json!({"email": s, "password": PASSWORD})),
            (
                "name",
                json!({"email": format!("n{i}@example.com"), "password": PASSWORD, "name": s}),
            ),
            (
                "password",
                json!({"email": format!("p{i}@example.com"), "password": s}),
            ),
        ] {
            let case = format!("signup {field} = {name}");
            let expected = match (field, *name) {
                ("email", _) => 422,                                // none of them is an address
                ("name", NUL | HUGE | HUGE_RANDOM) => 422,          // a NUL, or over 100 characters
                ("password", ESCAPED_NUL | NUL | WILDCARDS) => 422, // under 8 characters
                ("password", HUGE | HUGE_RANDOM) => 422,            // over 72 bytes
                _ => 201,
            };

            // Act
            let body = assert_clean(app.signup(&body).await, expected, &case).await;

            // Assert
            if expected == 201 {
                created += 1;
                if field == "name" {
                    assert_eq!(body["name"].as_str(), Some(s.as_str()), "{case}");
                }
            }
        }
    }
    assert_intact(&app, created, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_in_the_signin_fields_are_a_clean_401_and_sign_no_one_in() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "1000"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "1000"),
    ])
    .await;
    app.new_user(ADA).await;
    let sessions_before = db_count(&app, "SELECT count(*) FROM refresh_families").await;

    for Hostile { name, text: s } in hostile_strings() {
        for (field, email, password) in [
            ("email", s.as_str(), PASSWORD),
            ("password", ADA, s.as_str()),
            ("email suffix", &*format!("{ADA}{s}"), PASSWORD),
        ] {
            let case = format!("signin {field} = {name}");
            // Over the longest email or password a sign-in takes, the request is malformed.
            let expected = if matches!(name, HUGE | HUGE_RANDOM) {
                422
            } else {
                401
            };

            // Act + Assert
            assert_clean(app.signin(email, password).await, expected, &case).await;
        }
    }
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_families").await,
        sessions_before,
        "no one was signed in"
    );
    assert_intact(&app, 1, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_in_news_title_and_body_get_a_clean_answer_and_are_stored_verbatim() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let mut created = 0;

    for Hostile { name, text: s } in hostile_strings() {
        for (field, body) in [
            ("title", json!({"title": s, "body": "Body"})),
            ("body", json!({"title": "Title", "body": s})),
        ] {
            let case = format!("POST /news {field} = {name}");
            let expected = match (field, name) {
                (_, NUL) => 422,
                ("title", HUGE | HUGE_RANDOM) => 422, // over 200 characters
                _ => 201,
            };

            // Act
            let response = app
                .authed(Method::POST, "/news", &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let news = assert_clean(response, expected, &case).await;

            // Assert
            if expected == 201 {
                created += 1;
                assert_eq!(news[field].as_str(), Some(s.as_str()), "{case}");
            }
        }
    }
    assert_intact(&app, 1, created).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_in_put_and_patch_fields_get_a_clean_answer_and_change_only_what_they_say()
{
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let news = app
        .create_news(&token, &json!({"title": "Original", "body": "Original"}))
        .await;
    let path = format!("/news/{}", news["id"].as_str().unwrap());

    for Hostile { name, text: s } in hostile_strings() {
        for (what, method, body) in [
            ("title", Method::PATCH, json!({"title": s})),
            ("body", Method::PATCH, json!({"body": s})),
            ("date_created", Method::PATCH, json!({"date_created": s})),
            (
                "title and body",
                Method::PUT,
                json!({"title": s, "body": s}),
            ),
        ] {
            let before = all_news(&app).await;
            let case = format!("{method} {what} = {name}");
            let expected = match (what, name) {
                ("date_created", _) => 422, // none of them is a date
                (_, NUL) => 422,
                ("title" | "title and body", HUGE | HUGE_RANDOM) => 422, // over 200 characters
                _ => 200,
            };

            // Act
            let response = app
                .authed(method.clone(), &path, &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let written = assert_clean(response, expected, &case).await;

            // Assert
            if expected == 200 {
                for (field, value) in body.as_object().unwrap() {
                    assert_eq!(&written[field], value, "{case}");
                }
            } else {
                assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
            }
        }
    }
    assert_intact(&app, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_refresh_tokens_are_a_clean_4xx_and_end_no_session() {
    // Arrange
    let app = spawn_app().await;
    let (_, bob_token) = app.new_user("bob@example.com").await;
    let bob = app.tokens("bob@example.com", PASSWORD).await;
    app.new_user(ADA).await;

    for Hostile { name, text: s } in hostile_strings() {
        // Over the longest refresh token a request takes, the request is malformed.
        let too_long = matches!(name, HUGE | HUGE_RANDOM);

        // Act + Assert
        let case = format!("refresh_token = {name}");
        let expected = if too_long { 422 } else { 401 };
        assert_clean(
            app.refresh(&s).await,
            expected,
            &format!("refresh with {case}"),
        )
        .await;

        // Act: sign-out with it ends at most the caller's own session
        let ada = app.tokens(ADA, PASSWORD).await;
        let response = app
            .authed(Method::POST, "/signout", access_token(&ada))
            .json(&json!({ "refresh_token": s }))
            .send()
            .await
            .unwrap();

        // Assert
        let expected = if too_long { 422 } else { 204 };
        assert_clean(response, expected, &format!("signout with {case}")).await;
    }
    assert_eq!(app.whoami(&bob_token).await.status(), 200);
    assert_eq!(app.refresh(refresh_token(&bob)).await.status(), 200);
    let bobs_revoked = db_count(
        &app,
        "SELECT count(*) FROM refresh_families f JOIN users u ON u.id = f.user_id \
         WHERE u.email = 'bob@example.com' AND f.revoked_at IS NOT NULL",
    )
    .await;
    assert_eq!(bobs_revoked, 0);
    assert_intact(&app, 2, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_query_parameters_on_listing_and_counting_get_a_clean_answer() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    app.create_news(
        &token,
        &json!({"title": "Original title", "body": "Original body"}),
    )
    .await;

    for Hostile { name, text: s } in hostile_strings() {
        for parameter in [
            "q",
            "cursor",
            "author_id",
            "created_after",
            "created_before",
            "order",
            "limit",
        ] {
            for path in ["/news", "/news/count"] {
                let case = format!("GET {path}?{parameter}={name}");
                let expected = match (path, parameter, name) {
                    // A NUL cannot be searched for; a search is at most 200 characters.
                    (_, "q", NUL | HUGE | HUGE_RANDOM) => 400,
                    (_, "q", _) => 200,
                    // A count has no pages, and ignores page parameters like any unknown one.
                    ("/news/count", "cursor" | "order" | "limit", _) => 200,
                    // None of them is a cursor, a UUID, a date, an order or a number.
                    _ => 400,
                };

                // Act
                let response = app
                    .authed(Method::GET, path, &token)
                    .query(&[(parameter, s.as_str())])
                    .send()
                    .await
                    .unwrap();
                let body = assert_clean(response, expected, &case).await;

                // Assert
                if expected == 200 && parameter == "q" {
                    // A search, not a tautology: nothing matches these strings.
                    let found = if path == "/news" {
                        body["items"].as_array().unwrap().len()
                    } else {
                        usize::try_from(body["count"].as_i64().unwrap()).unwrap()
                    };
                    assert_eq!(found, 0, "{case}: {body}");
                }
            }
        }
    }
    assert_intact(&app, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_for_sql_text_is_a_legitimate_search_answered_with_200() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    app.create_news(
        &token,
        &json!({"title": "Unrelated", "body": "Nothing here"}),
    )
    .await;
    let about_sql = app
        .create_news(
            &token,
            &json!({"title": "How to drop a table", "body": "DROP TABLE news removes the table"}),
        )
        .await;

    let about_sql = about_sql["id"].as_str().unwrap();

    // Web-search syntax: `or` and `-` are operators, `1` is a word, and an unclosed quote opens a
    // phrase that runs to the end.
    for (q, found) in [
        ("' OR 1=1 --", vec![]),
        ("\"; DROP TABLE news; --", vec![about_sql]),
        ("drop table", vec![about_sql]),
    ] {
        // Act
        let response = app
            .authed(Method::GET, "/news", &token)
            .query(&[("q", q)])
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(response.status(), 200, "q = {q:?}");
        let page: Value = response.json().await.unwrap();
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, found, "q = {q:?} finds only what it says: {page}");
    }
    assert_intact(&app, 1, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_filters_on_the_bulk_update_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (admin_id, admin) = app.new_user("root@example.com").await;
    db_execute(
        &app,
        &format!("UPDATE users SET role = 'admin' WHERE id = '{admin_id}'"),
    )
    .await;
    let (_, token) = app.new_user(ADA).await;
    for title in ["First", "Second"] {
        app.create_news(&token, &json!({"title": title, "body": "Body"}))
            .await;
    }
    let before = all_news(&app).await;

    for Hostile { name, text: s } in hostile_strings() {
        for parameter in ["q", "author_id", "created_after", "created_before"] {
            let case = format!("PATCH /news?{parameter}={name}");
            let expected = match (parameter, name) {
                // A NUL cannot be searched for; a search is at most 200 characters.
                ("q", NUL | HUGE | HUGE_RANDOM) => 400,
                ("q", _) => 200,
                // None of them is a UUID or a date.
                _ => 400,
            };

            // Act
            let response = app
                .authed(Method::PATCH, "/news", &admin)
                .query(&[(parameter, s.as_str())])
                .json(&json!({"title": "Defaced"}))
                .send()
                .await
                .unwrap();
            let body = assert_clean(response, expected, &case).await;

            // Assert
            if expected == 200 {
                assert_eq!(body, json!({"count": 0, "exact": true}), "{case}");
            }
            assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
        }
    }
    assert_intact(&app, 2, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_news_ids_in_the_path_are_a_clean_400_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    app.create_news(&token, &json!({"title": "Original", "body": "Original"}))
        .await;
    let before = all_news(&app).await;

    for Hostile { name, text: s } in hostile_strings() {
        let path = format!("/news/{}", path_segment(&s));
        for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
            let case = format!("{method} /news/{{{name}}}");
            let mut request = app.authed(method.clone(), &path, &token);
            if method == Method::PUT || method == Method::PATCH {
                request = request.json(&json!({"title": "Defaced", "body": "Defaced"}));
            }

            // Act: none of them is a UUID
            let response = request.send().await.unwrap();

            // Assert
            assert_clean(response, 400, &case).await;
            assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
        }
    }
    assert_intact(&app, 1, 1).await;
}

// ---------------------------------------------------------------------------------------------
// Slow clients

/// How many of the server's connections to the app's database last ran the bearer-token session
/// check (`users` joined to `refresh_families`) and are idle now. The polling connections are left
/// out: their own query text holds the pattern.
const SESSION_CHECKED_AND_IDLE: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle' \
     AND query LIKE '%\"users\" INNER JOIN \"refresh_families\"%' \
     AND query NOT LIKE '%pg_stat_activity%'";

/// A client that uploads a body slowly holds no database connection while it does: with a pool
/// of one, another client's read is answered meanwhile, and the upload still succeeds once done.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upload_holds_no_database_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Arrange: the pool's one connection last ran the insert of this item, not a session check
    let app = spawn_app_with(&[("DATABASE_POOL_SIZE", "1")]).await;
    let (tokens, _) = issued(&app).await;
    let token = access_token(&tokens);
    let news = app
        .create_news(
            token,
            &json!({"title": "Held", "body": "Not by a slow client"}),
        )
        .await;
    assert_eq!(
        db_count(&app, SESSION_CHECKED_AND_IDLE).await,
        0,
        "no session check has run since the insert"
    );

    // Act: send the head and half the body, then wait until the server has checked the upload's
    // token, the one query it makes before it reads the body
    let body = json!({"title": "Slow", "body": "Uploaded one half at a time"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /news HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    wait_for_db(
        &app,
        SESSION_CHECKED_AND_IDLE,
        "the session check of the upload, whose body is half sent",
        Duration::from_secs(10),
    )
    .await;
    let read = app
        .authed(
            Method::GET,
            &format!("/news/{}", news["id"].as_str().unwrap()),
            token,
        )
        .send()
        .await
        .unwrap();

    // Assert: the read got the pool's one connection while the upload was still being sent
    assert_eq!(
        read.status(),
        200,
        "the read waited for the upload's connection"
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(news_rows(&app).await, 2);
}
