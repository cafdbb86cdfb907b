//! Tokens other services verify by themselves: `JWT_ALGORITHM=EdDSA`, a `kid` in every token,
//! `GET /.well-known/jwks.json`, and a key rotation through `JWT_PREVIOUS_PUBLIC_KEY_FILES`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Method, header};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

const JWKS: &str = "/.well-known/jwks.json";

/// Key files in a directory of their own, removed on drop.
struct KeyFiles(std::path::PathBuf);

impl KeyFiles {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("newsapi-jwks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes key `seed`'s private (PKCS#8) and public (SPKI) PEM files; their paths.
    fn pair(&self, seed: u8) -> (String, String) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let private = self.0.join(format!("{seed}.key"));
        let public = self.0.join(format!("{seed}.pub"));
        std::fs::write(&private, key.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
        std::fs::write(
            &public,
            key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
        .unwrap();
        (
            private.to_string_lossy().into_owned(),
            public.to_string_lossy().into_owned(),
        )
    }
}

impl Drop for KeyFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server signing with key `current` and accepting the keys `previous` too.
async fn eddsa_app(files: &KeyFiles, current: u8, previous: &[u8]) -> TestApp {
    let (private, _) = files.pair(current);
    let previous = previous
        .iter()
        .map(|seed| files.pair(*seed).1)
        .collect::<Vec<_>>()
        .join(",");
    spawn_app_with(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", &private),
        ("JWT_PREVIOUS_PUBLIC_KEY_FILES", &previous),
        // Not needed with EdDSA: an empty value is unset.
        ("JWT_SECRET", ""),
    ])
    .await
}

fn header_of(token: &str) -> Value {
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Value {
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

fn sign(claims: &Value, alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn ed_encoding(seed: u8) -> EncodingKey {
    let key = SigningKey::from_bytes(&[seed; 32]);
    EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes())
}

/// The `kid` key `seed` has in a JWK set.
fn kid_of(seed: u8) -> String {
    let x = URL_SAFE_NO_PAD.encode(
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .as_bytes(),
    );
    newsapi::auth::jwt::ed25519_thumbprint(&x)
}

async fn whoami_status(app: &TestApp, token: &str) -> u16 {
    app.authed(Method::GET, "/whoami", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The status, headers and body of `GET /.well-known/jwks.json`.
async fn jwks(app: &TestApp) -> (Answer, Value) {
    let response = app.request(Method::GET, JWKS).send().await.unwrap();
    let answer = Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
    };
    (answer, response.json().await.unwrap())
}

struct Answer {
    status: u16,
    headers: header::HeaderMap,
}

trait Headers {
    fn headers(&self) -> &header::HeaderMap;
}

impl Headers for Answer {
    fn headers(&self) -> &header::HeaderMap {
        &self.headers
    }
}

impl Headers for reqwest::Response {
    fn headers(&self) -> &header::HeaderMap {
        reqwest::Response::headers(self)
    }
}

fn header_value(response: &impl Headers, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_hs256_the_set_is_empty_and_tokens_still_carry_a_kid() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("hs-kid@example.com").await;

    // Act
    let (response, body) = jwks(&app).await;

    // Assert
    assert_eq!(body, serde_json::json!({"keys": []}));
    assert_eq!(
        header_value(&response, header::CACHE_CONTROL),
        "public, max-age=300"
    );
    let header = header_of(&token);
    assert_eq!(header["alg"], "HS256");
    let kid = header["kid"].as_str().unwrap();
    assert!(!kid.is_empty());
    assert!(!kid.contains(crate::helpers::TEST_SECRET), "{kid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eddsa_token_verifies_with_the_published_key_alone() {
    // Arrange
    let files = KeyFiles::new();
    let app = eddsa_app(&files, 1, &[]).await;
    let (_, token) = app.new_user("eddsa@example.com").await;

    // Act
    let (response, body) = jwks(&app).await;

    // Assert: the key as RFC 8037 writes it, and a verifier holding only it accepts the token
    assert_eq!(response.status, 200);
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{body}");
    let jwk = &keys[0];
    for (name, value) in [
        ("kty", "OKP"),
        ("crv", "Ed25519"),
        ("use", "sig"),
        ("alg", "EdDSA"),
    ] {
        assert_eq!(jwk[name], value, "{jwk}");
    }
    assert_eq!(jwk["kid"], kid_of(1));
    assert!(jwk.get("d").is_none(), "a private part is published: {jwk}");
    let header = header_of(&token);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("EdDSA"), jwk["kid"].as_str())
    );
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["newsapi"]);
    validation.set_issuer(&["newsapi"]);
    let verified = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(verified.claims["typ"], "access");
    assert_eq!(whoami_status(&app, &token).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_set_has_an_etag_and_a_matching_if_none_match_is_304() {
    // Arrange
    let files = KeyFiles::new();
    let app = eddsa_app(&files, 1, &[2]).await;
    let (first, body) = jwks(&app).await;
    let tag = header_value(&first, header::ETAG);
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    assert_eq!(body["keys"].as_array().unwrap().len(), 2);

    // Act
    let same = app
        .request(Method::GET, JWKS)
        .header(header::IF_NONE_MATCH, format!("\"other\", W/{tag}"))
        .send()
        .await
        .unwrap();
    let changed = app
        .request(Method::GET, JWKS)
        .header(header::IF_NONE_MATCH, "\"other\"")
        .send()
        .await
        .unwrap();
    let not_utf8 = app
        .request(Method::GET, JWKS)
        .header(
            header::IF_NONE_MATCH,
            header::HeaderValue::from_bytes(b"\"\xff\xfe\"").unwrap(),
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(same.status(), 304);
    assert_eq!(header_value(&same, header::ETAG), tag);
    assert_eq!(
        header_value(&same, header::CACHE_CONTROL),
        "public, max-age=300"
    );
    assert_eq!(changed.status(), 200);
    assert_eq!(not_utf8.status(), 200, "no tag of ours: the set");
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rotation_a_token_of_the_previous_key_works_and_an_unknown_kid_does_not() {
    // Arrange: key 2 signs, key 1 is the previous one; a session of this server's database
    let files = KeyFiles::new();
    let app = eddsa_app(&files, 2, &[1]).await;
    let (_, token) = app.new_user("rotation@example.com").await;
    let claims = claims_of(&token);
    let (_, body) = jwks(&app).await;
    let kids: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [kid_of(2), kid_of(1)]);

    // Act
    let old = sign(&claims, Algorithm::EdDSA, Some(&kid_of(1)), &ed_encoding(1));
    let unknown = sign(&claims, Algorithm::EdDSA, Some(&kid_of(3)), &ed_encoding(3));
    let no_kid = sign(&claims, Algorithm::EdDSA, None, &ed_encoding(2));
    let wrong_key = sign(&claims, Algorithm::EdDSA, Some(&kid_of(2)), &ed_encoding(1));

    // Assert
    assert_eq!(header_of(&token)["kid"], kid_of(2));
    assert_eq!(whoami_status(&app, &token).await, 200);
    assert_eq!(whoami_status(&app, &old).await, 200);
    for (what, token) in [
        ("unknown kid", unknown),
        ("no kid", no_kid),
        ("kid of another key", wrong_key),
    ] {
        let response = app
            .authed(Method::GET, "/whoami", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_problem(response, 401).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_the_previous_key_is_dropped_its_tokens_are_401() {
    // Arrange: key 2 alone
    let files = KeyFiles::new();
    let app = eddsa_app(&files, 2, &[]).await;
    let (_, token) = app.new_user("dropped@example.com").await;

    // Act
    let old = sign(
        &claims_of(&token),
        Algorithm::EdDSA,
        Some(&kid_of(1)),
        &ed_encoding(1),
    );

    // Assert
    assert_eq!(whoami_status(&app, &token).await, 200);
    assert_problem(
        app.authed(Method::GET, "/whoami", &old)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hs256_token_made_with_the_public_key_as_its_secret_is_401() {
    // Arrange
    let files = KeyFiles::new();
    let app = eddsa_app(&files, 1, &[]).await;
    let (_, token) = app.new_user("confusion@example.com").await;
    let claims = claims_of(&token);
    let (_, public_pem) = files.pair(1);
    let public_pem = std::fs::read(public_pem).unwrap();
    let (_, body) = jwks(&app).await;
    let x = body["keys"][0]["x"].as_str().unwrap().to_string();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();

    // Act + Assert: whatever form of the public key is used as the HMAC secret
    for secret in [raw.as_slice(), public_pem.as_slice(), x.as_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS512] {
            let forged = sign(
                &claims,
                alg,
                Some(&kid_of(1)),
                &EncodingKey::from_secret(secret),
            );
            let response = app
                .authed(Method::GET, "/whoami", &forged)
                .send()
                .await
                .unwrap();
            assert_problem(response, 401).await;
        }
    }
    assert_eq!(whoami_status(&app, &token).await, 200);
}
