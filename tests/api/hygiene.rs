//! Strict input, bounded answers and response hygiene (issue 11, items 6 to 8), each attacked the
//! way it was found: a repeated key that signed in as the victim, forged cursors, news dated in
//! year 9999, two `Authorization` headers, a mebibyte of unknown keys, a page of long bodies, the
//! headers of token-bearing and other responses, the explorer's pages, an unparsable
//! `X-Forwarded-For` hop behind a trusted proxy, and a token in the query string and the logs.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{NaiveDate, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    LoggedServer, PASSWORD, access_token, assert_problem, assert_problem_for, client_from,
    db_count, db_execute, error_fields, refresh_token, spawn_app, spawn_app_with,
};

const ADA: &str = "ada@example.com";
const ONE_MIB: usize = 1024 * 1024;

/// A header's value, if the response has it.
fn header_of(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

// ---------------------------------------------------------------------------------------------
// Item 6: strict input

#[tokio::test(flavor = "multi_thread")]
async fn a_key_repeated_in_a_signin_body_is_400_and_signs_nobody_in() {
    // Arrange: the attacker's own account and the victim's, whose password the attacker knows
    // only in this test (it is the same, so the last `email` would sign in as the victim).
    let app = spawn_app().await;
    app.new_user("me@example.com").await;
    app.new_user("victim@example.com").await;
    let sessions_before = db_count(&app, "SELECT count(*) FROM refresh_families").await;

    // Act
    let mut answers = Vec::new();
    for body in [
        format!(
            r#"{{"email":"me@example.com","email":"victim@example.com","password":"{PASSWORD}"}}"#
        ),
        format!(r#"{{"email":"victim@example.com","password":"x","password":"{PASSWORD}"}}"#),
        // The same key, once spelt with an escape.
        format!(
            r#"{{"email":"me@example.com","\u0065mail":"victim@example.com","password":"{PASSWORD}"}}"#
        ),
    ] {
        let response = app
            .request(Method::POST, "/signin")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        answers.push((body, response));
    }

    // Assert
    for (body, response) in answers {
        let problem = assert_problem_for(response, 400, &body).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("twice"),
            "{body}: {problem}"
        );
    }
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_families").await,
        sessions_before,
        "nobody was signed in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_repeated_at_any_depth_of_any_body_is_400_and_writes_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/news",
            r#"{"title":"T","body":"B","title":"U"}"#,
        ),
        (
            Method::POST,
            "/news",
            r#"{"title":"T","body":"B","x":{"a":[{"k":1,"k":2}]}}"#,
        ),
        (Method::PATCH, "/news", r#"{"title":"T","title":"T"}"#),
        (
            Method::POST,
            "/signup",
            r#"{"email":"eve@example.com","email":"eve2@example.com","password":"a long enough passphrase"}"#,
        ),
    ] {
        let response = app
            .authed(method.clone(), path, &token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem_for(response, 400, &format!("{method} {path} {body}")).await;
    }
    assert_eq!(db_count(&app, "SELECT count(*) FROM news").await, 0);
    assert_eq!(db_count(&app, "SELECT count(*) FROM users").await, 1);
}

/// A cursor as the server writes one, for any instant in microseconds since 1970.
fn forged_cursor(micros: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "v1|d|{micros}|00000000-0000-0000-0000-000000000000"
    ))
}

fn micros_of_year(year: i32) -> i64 {
    NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_cursor_outside_years_0000_to_9999_is_400_never_500() {
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    app.create_news(&token, &json!({"title": "T", "body": "B"}))
        .await;
    let cases = [
        // Past what an i64 of microseconds holds, and past chrono and PostgreSQL.
        ("year 300000", "9404945107200000000".to_string()),
        ("year -99999", micros_of_year(-99_999).to_string()),
        (
            "year -4714 (before PostgreSQL)",
            micros_of_year(-4714).to_string(),
        ),
        ("year -1", micros_of_year(-1).to_string()),
        ("year 10000", micros_of_year(10_000).to_string()),
        (
            "year 262142 (chrono's last)",
            micros_of_year(262_142).to_string(),
        ),
        ("i64::MIN", i64::MIN.to_string()),
        ("i64::MAX", i64::MAX.to_string()),
    ];
    for (case, micros) in cases {
        let cursor = forged_cursor(micros);
        let response = app
            .authed(Method::GET, "/news", &token)
            .query(&[("cursor", cursor.as_str())])
            .send()
            .await
            .unwrap();
        assert_problem_for(response, 400, case).await;
    }
    // Years 0000 and 9999 are a row's own, and a cursor in them is usable.
    for year in [0, 9999] {
        let response = app
            .authed(Method::GET, "/news", &token)
            .query(&[("cursor", forged_cursor(micros_of_year(year)).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "year {year}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn date_created_more_than_5_minutes_ahead_is_422_on_create_replace_and_patch() {
    // Arrange
    let app = spawn_app().await;
    let (author_id, token) = app.new_user(ADA).await;
    db_execute(
        &app,
        &format!("UPDATE users SET role = 'admin' WHERE id = '{author_id}'"),
    )
    .await;
    let news = app
        .create_news(&token, &json!({"title": "T", "body": "B"}))
        .await;
    let path = format!("/news/{}", news["id"].as_str().unwrap());
    let stored = || {
        db_count(
            &app,
            "SELECT count(*) FROM news WHERE date_created > now() + interval '5 minutes'",
        )
    };
    let at = |delta: TimeDelta| (Utc::now() + delta).to_rfc3339_opts(SecondsFormat::Micros, true);

    // Act and assert: the pinned-to-the-top attack and just past the margin, everywhere.
    for date in [
        "9999-12-31T23:59:59Z".to_string(),
        at(TimeDelta::minutes(6)),
    ] {
        for (method, path, body) in [
            (
                Method::POST,
                "/news",
                json!({"title": "T", "body": "B", "date_created": date}),
            ),
            (
                Method::PUT,
                path.as_str(),
                json!({"title": "T", "body": "B", "date_created": date}),
            ),
            (Method::PATCH, path.as_str(), json!({"date_created": date})),
            (Method::PATCH, "/news", json!({"date_created": date})),
        ] {
            let case = format!("{method} {path} {date}");
            let response = app
                .authed(method, path, &token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let problem = assert_problem_for(response, 422, &case).await;
            assert_eq!(error_fields(&problem), ["date_created"], "{case}");
        }
    }
    assert_eq!(stored().await, 0, "nothing was dated ahead");

    // Within the margin (a client whose clock runs 4 minutes fast) is accepted.
    let soon = at(TimeDelta::minutes(4));
    app.create_news(
        &token,
        &json!({"title": "T", "body": "B", "date_created": soon}),
    )
    .await;
    let response = app
        .authed(Method::PATCH, &path, &token)
        .json(&json!({"date_created": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_authorization_headers_are_400_whatever_their_schemes() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let bearer = format!("Bearer {token}");
    let (_, other) = app.new_user("bob@example.com").await;
    let other = format!("Bearer {other}");
    let cases = [
        ("the same token twice", bearer.as_str(), bearer.as_str()),
        ("two users' tokens", bearer.as_str(), other.as_str()),
        (
            "Basic, then Bearer",
            "Basic YWRhOnNlY3JldA==",
            bearer.as_str(),
        ),
        (
            "Bearer, then Basic",
            bearer.as_str(),
            "Basic YWRhOnNlY3JldA==",
        ),
        ("garbage, then Bearer", "Bearer garbage", bearer.as_str()),
        ("two Basic", "Basic YQ==", "Basic Yg=="),
    ];

    // Act and assert
    for (case, first, second) in cases {
        for (method, path) in [
            (Method::GET, "/whoami"),
            (Method::GET, "/news"),
            (Method::POST, "/signout/all"),
        ] {
            let response = app
                .request(method.clone(), path)
                .header(header::AUTHORIZATION, first)
                .header(header::AUTHORIZATION, second)
                .send()
                .await
                .unwrap();
            assert_problem_for(response, 400, &format!("{case}: {method} {path}")).await;
        }
    }
    // One header still works: no session was ended by the refused sign-outs.
    let response = app.whoami(&token).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mebibyte_of_unknown_keys_gets_20_errors_and_their_count() {
    // Arrange: a body just under the 1 MiB limit, almost all of it unknown keys.
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let mut body = String::from(r#"{"title":"T","body":"B""#);
    let mut unknown = 0_usize;
    while body.len() < ONE_MIB - 64 {
        body.push_str(&format!(r#","k{unknown:07}":0"#));
        unknown += 1;
    }
    body.push('}');

    // Act
    let response = app
        .authed(Method::POST, "/news", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    // Assert
    let length = response.content_length();
    let problem = assert_problem(response, 422).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 20, "{problem}");
    assert_eq!(problem["error_count"], unknown, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string()),
        "{problem}"
    );
    assert!(length.is_some_and(|l| l < 4096), "{length:?} bytes");
    assert_eq!(db_count(&app, "SELECT count(*) FROM news").await, 0);

    // A short list is whole, and counted too.
    let response = app
        .authed(Method::POST, "/news", &token)
        .json(&json!({"title": "", "body": "", "extra": 1}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{problem}");
    assert_eq!(problem["error_count"], 1, "{problem}");
}

// ---------------------------------------------------------------------------------------------
// Item 7: bounded answers

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_long_bodies_stays_under_1_mib_and_the_cursors_visit_every_item_once() {
    // Arrange: 100 news of 50 000 characters (5 MB of text): every third is control characters,
    // which JSON writes six bytes each (`\u0001`), and every third quotes, two bytes each.
    let app = spawn_app().await;
    let (author_id, token) = app.new_user(ADA).await;
    db_execute(
        &app,
        &format!(
            "INSERT INTO news (id, title, body, date_created, date_updated, author_id, version) \
             SELECT gen_random_uuid(), 'Item ' || i, \
                    CASE i % 3 WHEN 0 THEN repeat(chr(1), 50000) \
                               WHEN 1 THEN repeat('\"', 50000) \
                               ELSE repeat('x', 50000) END, \
                    timestamptz '2024-01-01' + (i / 2) * interval '1 second', now(), \
                    '{author_id}', 1 \
             FROM generate_series(1, 100) AS i"
        ),
    )
    .await;
    let expected: Vec<String> = {
        let text = crate::helpers::db_text(
            &app,
            "SELECT string_agg(id::text, ',' ORDER BY date_created DESC, id DESC) FROM news",
        )
        .await;
        text.split(',').map(str::to_string).collect()
    };
    assert_eq!(expected.len(), 100);

    // Act: walk the list, 100 at a time.
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let response = app
            .authed(Method::GET, "/news", &token)
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let items = page["items"].as_array().unwrap();
        pages.push((bytes.len(), items.len()));
        assert!(
            bytes.len() <= ONE_MIB,
            "page {}: {} bytes",
            pages.len(),
            bytes.len()
        );
        assert!(!items.is_empty(), "page {} is empty", pages.len());
        seen.extend(items.iter().map(|n| n["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages.len() <= 100, "the cursor never ends");
    }

    // Assert: several pages, each cut short, and every item exactly once, in order.
    assert!(pages.len() > 1, "{pages:?}");
    assert!(pages[0].1 < 100, "{pages:?}");
    assert_eq!(seen, expected, "{pages:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_short_items_is_not_cut() {
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    for i in 0..5 {
        app.create_news(&token, &json!({"title": format!("T{i}"), "body": "B"}))
            .await;
    }
    let page: Value = app
        .authed(Method::GET, "/news", &token)
        .query(&[("limit", "4")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert!(page["next_cursor"].is_string());
}

// ---------------------------------------------------------------------------------------------
// Item 8: response hygiene

#[tokio::test(flavor = "multi_thread")]
async fn every_response_that_carries_a_token_or_account_data_says_no_store() {
    // Arrange
    let app = spawn_app().await;
    let signup = app
        .signup(&json!({"email": ADA, "password": PASSWORD}))
        .await;
    let tokens = app.tokens(ADA, PASSWORD).await;
    let token = access_token(&tokens).to_string();

    // Act: successes and errors of the four operations.
    let mut responses = vec![("signup 201", signup)];
    responses.push((
        "signup 409",
        app.signup(&json!({"email": ADA, "password": PASSWORD}))
            .await,
    ));
    responses.push(("signup 422", app.signup(&json!({"email": "x"})).await));
    responses.push(("signin 200", app.signin(ADA, PASSWORD).await));
    responses.push(("signin 401", app.signin(ADA, "wrong password!").await));
    responses.push(("refresh 200", app.refresh(refresh_token(&tokens)).await));
    responses.push(("refresh 401", app.refresh("not a refresh token").await));
    responses.push(("whoami 200", app.whoami(&token).await));
    responses.push(("whoami 401", app.whoami("not a token").await));

    // Assert
    for (case, response) in responses {
        assert_eq!(
            header_of(&response, "cache-control").as_deref(),
            Some("no-store"),
            "{case}: {}",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_says_nosniff_errors_and_pages_included() {
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    let cases = [
        ("healthz", app.request(Method::GET, "/healthz")),
        ("home", app.request(Method::GET, "/")),
        ("openapi.json", app.request(Method::GET, "/openapi.json")),
        ("openapi.yaml", app.request(Method::GET, "/openapi.yaml")),
        ("explorer", app.request(Method::GET, "/explorer")),
        ("redoc", app.request(Method::GET, "/redoc")),
        ("news 200", app.authed(Method::GET, "/news", &token)),
        ("news 401", app.request(Method::GET, "/news")),
        ("404", app.request(Method::GET, "/no/such/thing")),
        ("405", app.request(Method::DELETE, "/healthz")),
        (
            "400 malformed",
            app.authed(Method::POST, "/news", &token)
                .header(header::CONTENT_TYPE, "application/json")
                .body("{"),
        ),
        (
            "413",
            app.authed(Method::POST, "/news", &token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(vec![b' '; ONE_MIB + 1]),
        ),
        (
            "415",
            app.authed(Method::POST, "/news", &token)
                .header(header::CONTENT_TYPE, "text/plain")
                .body("x"),
        ),
    ];
    for (case, request) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(
            header_of(&response, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{case}: {}",
            response.status()
        );
    }
}

/// `html` without the text of its inline scripts (the bundles and the embedded spec, whose
/// strings name many hosts that nothing loads).
fn outside_scripts(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let body = open + rest[open..].find('>').unwrap() + 1;
        let close = body + rest[body..].find("</script").unwrap();
        out.push_str(&rest[..body]);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_and_redoc_send_a_policy_and_load_nothing_from_other_hosts() {
    let app = spawn_app().await;
    for path in ["/explorer", "/redoc", "/explorer/", "/redoc/"] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = header_of(&response, "content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        let html = response.text().await.unwrap();

        // The policy: nothing by default, scripts only by hash, no host anywhere.
        assert!(policy.starts_with("default-src 'none'"), "{path}: {policy}");
        let script_src = policy
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src "))
            .unwrap_or_else(|| panic!("{path}: no script-src in {policy}"));
        assert!(
            script_src
                .split_whitespace()
                .skip(1)
                .all(|source| source.starts_with("'sha256-")),
            "{path}: {script_src}"
        );
        for word in ["http", "*", "unsafe-eval"] {
            assert!(!policy.contains(word), "{path}: {word} in {policy}");
        }

        // The page: the Google Fonts link is gone, and nothing outside the scripts loads from
        // another host.
        assert!(!html.contains("fonts.googleapis"), "{path}");
        let markup = outside_scripts(&html);
        assert!(!markup.contains("<link"), "{path}");
        for attribute in [
            "src=\"http",
            "src='http",
            "src=\"//",
            "href=\"http",
            "@import",
        ] {
            assert!(!markup.contains(attribute), "{path}: {attribute}");
        }
        for (at, _) in markup.match_indices("url(") {
            let target = markup[at + 4..].trim_start_matches(['"', '\'']);
            assert!(
                target.starts_with("data:"),
                "{path}: url({})",
                &target[..40]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_an_unparsable_forwarded_hop_is_the_client_and_ends_the_walk() {
    // Arrange: the peer 127.0.0.1 is the trusted proxy, which appends each client's address to
    // `X-Forwarded-For`, or, when it cannot tell it, something that is no address. The attacker
    // puts a fresh address of their choosing in front of it on every attempt.
    let app = spawn_app_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
    ])
    .await;
    let attempt = |i: usize, forwarded: String| {
        app.request(Method::POST, "/signin")
            .header("x-forwarded-for", forwarded)
            .json(&json!({"email": format!("user{i}@example.com"), "password": "wrong password!"}))
            .send()
    };

    // Act: the attack, one address of the attacker's choosing per attempt.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = attempt(i, format!("203.0.113.{i}, garbage")).await.unwrap();
        statuses.push(response.status().as_u16());
    }

    // Assert: the chosen addresses were not believed; every attempt counted against one client
    // (the proxy that could not name it), so the per-address limit held.
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "{statuses:?}");

    // A hop the proxy wrote with a port still names its client, who has a budget of their own;
    // so does an unparsable hop further left, past a good one.
    for (i, forwarded) in [
        "203.0.113.77:4711",
        "[2001:db8::7]:4711",
        "garbage, 198.51.100.7",
    ]
    .into_iter()
    .enumerate()
    {
        let response = attempt(100 + i, forwarded.to_string()).await.unwrap();
        assert_eq!(response.status(), 401, "{forwarded}");
    }
    // And another peer, not a proxy, is itself, whatever it claims.
    let other = client_from(2);
    let response = other
        .post(format!("{}/signin", app.address))
        .header("x-forwarded-for", "garbage")
        .json(&json!({"email": "x@example.com", "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

// ---------------------------------------------------------------------------------------------
// Logs

#[tokio::test(flavor = "multi_thread")]
async fn no_token_reaches_the_log_even_in_the_query_string() {
    // Arrange
    let server = LoggedServer::start("text", &[("RUST_LOG", "trace")]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.app.address);
    let response = client
        .post(url("/signup"))
        .json(&json!({"email": ADA, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let tokens: Value = client
        .post(url("/signin"))
        .json(&json!({"email": ADA, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = access_token(&tokens).to_string();
    let refresh = refresh_token(&tokens).to_string();

    // Act: the token everywhere a client might put it.
    let requests = [
        client
            .get(url(&format!("/whoami?access_token={token}")))
            .bearer_auth(&token),
        client.get(url(&format!("/news?limit=1&access_token={token}&x=1"))),
        client
            .get(url(&format!("/news?{token}")))
            .bearer_auth(&token),
        client.get(url(&format!("/{token}"))),
        client
            .get(url(&format!("/news/{token}")))
            .bearer_auth(&token),
        client
            .get(url(&format!("/news?order={token}")))
            .bearer_auth(&token),
        client
            .get(url(&format!("/news?cursor={refresh}")))
            .bearer_auth(&token),
        client.get(url("/whoami")).bearer_auth(format!("{token}x")),
        client
            .get(url("/whoami"))
            .header(header::AUTHORIZATION, format!("Basic {token}")),
        client
            .post(url("/token/refresh"))
            .json(&json!({"refresh_token": refresh})),
        client
            .post(url("/token/refresh"))
            .json(&json!({"refresh_token": refresh})),
        client
            .post(url("/signin"))
            .json(&json!({"email": ADA, "password": refresh})),
        client.get(url("/healthz?last=1")),
    ];
    for request in requests {
        let status = request.send().await.unwrap().status();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    server
        .wait_for_line(|line| line.contains("/healthz?last=") && line.contains("status=200"))
        .await;

    // Assert: the requests were logged, their secrets were not.
    let log = server.lines().join("\n");
    let signature = token.rsplit('.').next().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    for (what, secret) in [
        ("the access token's signature", signature),
        ("the access token's claims", payload),
        ("the refresh token", refresh.as_str()),
        ("the password", PASSWORD),
    ] {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
    }
    assert!(log.contains("/whoami?access_token=…"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_instant_outside_what_postgresql_stores_is_a_bound_like_any_other_never_500() {
    // Arrange: one news item
    let app = spawn_app().await;
    let (_, token) = app.new_user(ADA).await;
    app.create_news(&token, &json!({"title": "Title", "body": "Body"}))
        .await;

    // Act and assert: instants far outside PostgreSQL's timestamptz range (4713 BC to 294276 AD)
    // still order every stored item, which lies within years 0000 to 9999.
    let cases = [
        ("/news?created_after=-99999-01-01T00:00:00Z", 1),
        ("/news?created_before=-99999-01-01T00:00:00Z", 0),
        ("/news?created_before=%2B99999-01-01T00:00:00Z", 1),
        ("/news?created_after=%2B99999-01-01T00:00:00Z", 0),
        ("/news/count?created_after=-99999-01-01T00:00:00Z", 1),
    ];
    for (path, expected) in cases {
        let response = app.authed(Method::GET, path, &token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        let found = body["items"].as_array().map_or_else(
            || body["count"].as_i64().unwrap(),
            |items| items.len() as i64,
        );
        assert_eq!(found, expected, "{path}");
    }
}
