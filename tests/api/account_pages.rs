//! The pages the mailed links open: `GET /password/reset` and `GET /email/verify` answer a
//! self-contained HTML page (its script does the POST; `tests/browser` drives it in Chromium),
//! never a 405, with a strict policy, and without ever reflecting the token of the address.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with},
    smtp::SmtpSink,
};

const ADA: &str = "ada@example.com";
const PAGES: [&str; 2] = ["/password/reset", "/email/verify"];
/// The default `PUBLIC_BASE_URL`: the links of the mails lead to the API itself.
const DEFAULT_BASE: &str = "http://127.0.0.1:3000";

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

/// The text of every inline `<tag>` element of `html`, as the browser hashes it.
fn inline(html: &str, tag: &str) -> Vec<String> {
    html.split(&format!("<{tag}"))
        .skip(1)
        .map(|rest| {
            let body = &rest[rest.find('>').unwrap() + 1..];
            body[..body.find(&format!("</{tag}")).unwrap()].to_string()
        })
        .collect()
}

/// Follows a mailed link (to the default `PUBLIC_BASE_URL`) on the test's server, as a person
/// who clicks it would: a plain GET. Answers the page, after checking what every page answer must
/// be.
async fn open(app: &TestApp, link: &str) -> String {
    let path = link.strip_prefix(DEFAULT_BASE).expect("a link to the API");
    let response = app.request(Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_page_headers(&response, path);
    response.text().await.unwrap()
}

fn assert_page_headers(response: &Response, path: &str) -> String {
    assert_eq!(
        header(response, "content-type"),
        "text/html; charset=utf-8",
        "{path}"
    );
    assert_eq!(header(response, "cache-control"), "no-store", "{path}");
    assert_eq!(header(response, "referrer-policy"), "no-referrer", "{path}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    let policy = header(response, "content-security-policy");
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for wanted in [
        "default-src 'none'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(directives.contains(&wanted), "{path}: {wanted} in {policy}");
    }
    for directive in ["script-src ", "style-src "] {
        let sources = directives
            .iter()
            .find_map(|d| d.strip_prefix(directive))
            .unwrap_or_else(|| panic!("{path}: no {directive}in {policy}"));
        assert!(
            sources
                .split_whitespace()
                .all(|source| source.starts_with("'sha256-")),
            "{path}: only hashes in {directive}: {policy}"
        );
    }
    policy
}

async fn signed_up_with_mail(app: &TestApp, sink: &SmtpSink) -> (String, String) {
    let response = app
        .signup(&json!({"email": ADA, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), 201);
    let verify = sink.latest(ADA, "Verify your email").await;
    let response = app
        .request(Method::POST, "/password/forgot")
        .json(&json!({ "email": ADA }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let reset = sink.latest(ADA, "Reset your password").await;
    (
        verify.link("/email/verify").expect("a verification link").0,
        reset.link("/password/reset").expect("a reset link").0,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mailed_links_open_a_page_that_uses_up_nothing_and_the_posts_still_work() {
    // Arrange
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(&[("SMTP_URL", url.as_str())]).await;
    let (verify_link, reset_link) = signed_up_with_mail(&app, &sink).await;

    // Act: a person (or a mail scanner) opens both links.
    let verify_page = open(&app, &verify_link).await;
    let reset_page = open(&app, &reset_link).await;

    // Assert: the pages hold their forms, not the tokens; opening them used nothing up.
    let verify_token = verify_link.rsplit('=').next().unwrap();
    let reset_token = reset_link.rsplit('=').next().unwrap();
    for (page, token) in [(&verify_page, verify_token), (&reset_page, reset_token)] {
        assert!(!page.contains(token), "the page repeats the token");
        assert!(page.contains("history.replaceState"));
    }
    assert!(verify_page.contains("Confirm my email"));
    assert!(reset_page.contains("type=\"password\""));
    let access = crate::helpers::access_token(&app.tokens(ADA, PASSWORD).await).to_string();
    let me: serde_json::Value = app.whoami(&access).await.json().await.unwrap();
    assert_eq!(
        me["email_verified"], false,
        "opening the page verified nothing"
    );

    let verified = app
        .request(Method::POST, "/email/verify")
        .json(&json!({ "token": verify_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 204);
    let new_password = "a page-set horse, a page-set staple";
    let reset = app
        .request(Method::POST, "/password/reset")
        .json(&json!({"token": reset_token, "new_password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(app.signin(ADA, new_password).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_never_reflects_the_address_whatever_the_token() {
    // Arrange
    let app = spawn_app().await;
    let queries = [
        "?token=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "?token=<script>alert(2)</script>",
        "?token=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(3)%3E",
        "?token=%FF%FE",
        "?token=a&token=b",
        "?token",
        "?token=%",
        "?%zz=1&token=x",
    ];

    for path in PAGES {
        let plain = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        let plain = plain.text().await.unwrap();
        for query in queries {
            // Act
            let response = app
                .request(Method::GET, &format!("{path}{query}"))
                .send()
                .await
                .unwrap();

            // Assert: the same page, byte for byte, as without a query.
            assert_eq!(response.status(), 200, "{path}{query}");
            assert_page_headers(&response, path);
            let page = response.text().await.unwrap();
            assert!(!page.contains("alert("), "{path}{query}");
            assert_eq!(page, plain, "{path}{query}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_allows_exactly_the_pages_inline_script_and_style() {
    let app = spawn_app().await;
    for path in PAGES {
        let response = app.request(Method::GET, path).send().await.unwrap();
        let policy = assert_page_headers(&response, path);
        let page = response.text().await.unwrap();
        for tag in ["script", "style"] {
            let elements = inline(&page, tag);
            assert_eq!(elements.len(), 1, "{path}: one inline {tag}");
            let hash = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(&elements[0])));
            let directive = format!("{tag}-src {hash}");
            assert!(
                policy.contains(&directive),
                "{path}: {directive} in {policy}"
            );
        }
        for loads in ["src=", "href=", "<link", "@import", "url(", "action="] {
            assert!(!page.contains(loads), "{path} loads something: {loads}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_method_on_a_page_path_is_405_allowing_get_and_post() {
    let app = spawn_app().await;
    for path in PAGES {
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            let response = app.request(method.clone(), path).send().await.unwrap();
            assert_eq!(response.status(), 405, "{method} {path}");
            assert_eq!(header(&response, "allow"), "GET, POST, HEAD", "{path}");
            assert_eq!(
                header(&response, "content-type"),
                "application/problem+json"
            );
        }
        let head = app.request(Method::HEAD, path).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(header(&head, "cache-control"), "no-store");
    }
}
