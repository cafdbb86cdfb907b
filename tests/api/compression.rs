//! Compressed responses: `Accept-Encoding` gzip, br and zstd on JSON bodies of at least
//! `COMPRESSION_MIN_BYTES` (1024 by default), `Vary: Accept-Encoding` on every JSON answer.

use std::io::Read;

use reqwest::{Method, Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, db_execute, spawn_app, spawn_app_with};

const ADA: &str = "ada@example.com";

/// Twenty news of about 1.9 KB each, in prose that varies from item to item: a page of them is
/// about 40 KB of JSON, like the benchmark's S2 page.
async fn seed_page(app: &TestApp) -> String {
    let (author_id, token) = app.new_user(ADA).await;
    db_execute(
        app,
        &format!(
            "INSERT INTO news (id, title, body, date_created, date_updated, author_id, version) \
             SELECT gen_random_uuid(), 'Item ' || i || ': ' || md5(i::text), \
                    (SELECT string_agg('Paragraph ' || j || ' of item ' || i || ' says ' \
                                       || md5((i * 100 + j)::text) || '.', ' ') \
                     FROM generate_series(1, 25) AS j), \
                    timestamptz '2024-01-01' + i * interval '1 second', now(), '{author_id}', 1 \
             FROM generate_series(1, 20) AS i"
        ),
    )
    .await;
    token
}

async fn page(app: &TestApp, token: &str, accept_encoding: Option<&str>) -> Response {
    let mut request = app.authed(Method::GET, "/news?limit=20", token);
    if let Some(value) = accept_encoding {
        request = request.header(header::ACCEPT_ENCODING, value);
    }
    request.send().await.unwrap()
}

/// `GET path` with `token` and `Accept-Encoding: accept_encoding`.
async fn get(app: &TestApp, token: &str, path: &str, accept_encoding: &str) -> Response {
    app.authed(Method::GET, path, token)
        .header(header::ACCEPT_ENCODING, accept_encoding)
        .send()
        .await
        .unwrap()
}

fn content_encoding(response: &Response) -> Option<&str> {
    response
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap())
}

fn is_json(response: &Response) -> bool {
    response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json")
}

fn varies_on_accept_encoding(response: &Response) -> bool {
    response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|value| {
            value
                .to_str()
                .unwrap()
                .eq_ignore_ascii_case("accept-encoding")
        })
}

/// The body `encoded` in `coding`, decoded by the coding's own crate.
fn decode(coding: &str, encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(encoded)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(encoded, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        "zstd" => zstd::stream::read::Decoder::new(encoded)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("unexpected coding {other}"),
    };
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_br_and_zstd_each_decode_to_the_identity_json_of_a_20_item_page() {
    let app = spawn_app().await;
    let token = seed_page(&app).await;
    let identity = page(&app, &token, None).await;
    assert_eq!(identity.status(), StatusCode::OK);
    assert_eq!(content_encoding(&identity), None);
    assert!(varies_on_accept_encoding(&identity));
    let identity = identity.bytes().await.unwrap();
    let items = serde_json::from_slice::<Value>(&identity).unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items, 20);
    assert!(identity.len() > 30_000, "{} bytes", identity.len());

    for coding in ["gzip", "br", "zstd"] {
        let response = page(&app, &token, Some(coding)).await;
        assert_eq!(response.status(), StatusCode::OK, "{coding}");
        assert_eq!(content_encoding(&response), Some(coding));
        assert!(varies_on_accept_encoding(&response), "{coding}");
        let length: usize = response.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let encoded = response.bytes().await.unwrap();
        assert_eq!(length, encoded.len(), "{coding}");
        assert!(
            encoded.len() < identity.len() / 2,
            "{coding}: {} of {} bytes",
            encoded.len(),
            identity.len()
        );
        assert_eq!(decode(coding, &encoded), identity, "{coding}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_absent_or_only_unsupported_codings_get_the_body_as_it_is() {
    let app = spawn_app().await;
    let token = seed_page(&app).await;
    for accept in [
        None,
        Some("identity"),
        Some("identity;q=0"),
        Some("compress, deflate"),
        Some("gzip;q=0, br;q=0, zstd;q=0"),
        Some("*;q=0"),
        Some("identity, gzip;q=0.5"),
    ] {
        let response = page(&app, &token, accept).await;
        assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(content_encoding(&response), None, "{accept:?}");
        assert!(varies_on_accept_encoding(&response), "{accept:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 20, "{accept:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_choose_the_coding_and_zstd_br_gzip_break_ties() {
    let app = spawn_app().await;
    let token = seed_page(&app).await;
    for (accept, chosen) in [
        ("gzip;q=0, br", "br"),
        ("gzip, zstd;q=0.5", "gzip"),
        ("br;q=0.2, gzip; q=0.9", "gzip"),
        ("gzip, deflate, br", "br"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("*", "zstd"),
        ("*;q=0.5, zstd;q=0, br;q=0", "gzip"),
        ("identity;q=0.5, gzip", "gzip"),
    ] {
        let response = page(&app, &token, Some(accept)).await;
        assert_eq!(content_encoding(&response), Some(chosen), "{accept}");
        let encoded = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&decode(chosen, &encoded)).unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 20, "{accept}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_under_the_threshold_is_sent_as_it_is() {
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let news = app
        .create_news(
            &token,
            &serde_json::json!({"title": "Short", "body": "A short item."}),
        )
        .await;
    let id = news["id"].as_str().unwrap();
    let response = get(&app, &token, &format!("/news/{id}"), "gzip, br, zstd").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_encoding(&response), None);
    assert!(varies_on_accept_encoding(&response));
    assert_eq!(response.json::<Value>().await.unwrap()["id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn problem_json_over_the_threshold_is_compressed_too() {
    // A 422 that lists fifty unknown fields: about 2.5 KB of problem+json.
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let mut body = serde_json::json!({"title": "Title", "body": "Body"});
    for i in 0..50 {
        body[format!("unknown_field_{i}")] = i.into();
    }
    let response = app
        .authed(Method::POST, "/news", &token)
        .header(header::ACCEPT_ENCODING, "gzip")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(content_encoding(&response), Some("gzip"));
    assert!(varies_on_accept_encoding(&response));
    let encoded = response.bytes().await.unwrap();
    let problem: Value = serde_json::from_slice(&decode("gzip", &encoded)).unwrap();
    assert_eq!(problem["error_count"], 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_threshold_is_a_setting_and_a_body_compression_would_grow_is_sent_as_it_is() {
    // At 0 every JSON body is over the threshold, but `/healthz`'s few bytes would grow under gzip.
    let app = spawn_app_with(&[("COMPRESSION_MIN_BYTES", "0")]).await;
    let (_, token) = app.new_user(ADA).await;
    let news = app
        .create_news(
            &token,
            &serde_json::json!({"title": "Short", "body": "A short item, repeated. ".repeat(20)}),
        )
        .await;
    let id = news["id"].as_str().unwrap();
    let small_but_compressible = get(&app, &token, &format!("/news/{id}"), "gzip").await;
    assert_eq!(content_encoding(&small_but_compressible), Some("gzip"));
    let tiny = app
        .request(Method::GET, "/healthz")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(tiny.status(), StatusCode::OK);
    assert!(is_json(&tiny));
    assert_eq!(content_encoding(&tiny), None);
    assert!(varies_on_accept_encoding(&tiny));
    assert_eq!(tiny.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_that_carry_a_token_or_account_data_are_never_compressed() {
    // BREACH: a secret compressed beside text the client chose leaks through the length.
    let app = spawn_app_with(&[("COMPRESSION_MIN_BYTES", "0")]).await;
    let (_, token) = app.new_user(ADA).await;
    // A name that compresses to nothing: without the rule, whoami's body would shrink under gzip.
    let renamed = app
        .authed(Method::PATCH, "/account", &token)
        .json(&serde_json::json!({"name": "a".repeat(100)}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    let response = get(&app, &token, "/whoami", "gzip").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_encoding(&response), None);
    // Nor does it vary: a `no-store` answer is never cached.
    assert!(!varies_on_accept_encoding(&response));
    assert_eq!(response.json::<Value>().await.unwrap()["email"], ADA);
}

#[tokio::test(flavor = "multi_thread")]
async fn head_and_304_send_no_body_and_the_etag_stays_the_same() {
    let app = spawn_app().await;
    let token = seed_page(&app).await;
    let head = app
        .authed(Method::HEAD, "/news?limit=20", &token)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    // poem answers HEAD with no body at all, so there is nothing to encode (RFC 9110 §9.3.2 lets
    // HEAD leave out what only the content determines, as it leaves out `Content-Length`).
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(content_encoding(&head), None);
    assert!(varies_on_accept_encoding(&head));
    assert!(head.bytes().await.unwrap().is_empty());

    // An item over the threshold: its compressed answer keeps the identity answer's ETag, and that
    // ETag still gets a 304, with no body to encode.
    let first = page(&app, &token, None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = first["items"][0]["id"].as_str().unwrap();
    let get = |accept: &'static str, if_none_match: Option<String>| {
        let mut request = app
            .authed(Method::GET, &format!("/news/{id}"), &token)
            .header(header::ACCEPT_ENCODING, accept);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        request.send()
    };
    let plain = get("identity", None).await.unwrap();
    let gzipped = get("gzip", None).await.unwrap();
    assert_eq!(content_encoding(&gzipped), Some("gzip"));
    let tag = plain.headers()[header::ETAG].clone();
    assert_eq!(gzipped.headers()[header::ETAG], tag);
    let not_modified = get("gzip", Some(tag.to_str().unwrap().to_string()))
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(content_encoding(&not_modified), None);
    assert_eq!(not_modified.headers()[header::ETAG], tag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
}
