//! Every error layer — routing, methods, body size, content type, JSON, parameters, auth, the
//! handlers and the database — answers with RFC 9457 problem+json and shows nothing of the
//! server's insides.

use reqwest::{Method, RequestBuilder, header};
use serde_json::json;

use crate::helpers::{
    PASSWORD, TestApp, assert_no_internals, assert_problem, assert_problem_for, db_count,
    db_execute, news_rows, spawn_app, users,
};

/// A JSON body of a little over 1 MiB: 1.1 MB in one string field.
fn oversized_news() -> String {
    json!({"title": "Big", "body": "x".repeat(1_100_000)}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_fault_is_a_500_problem_that_shows_no_internals() {
    // Arrange: a table the handler needs disappears under the running server
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    db_execute(&app, "DROP TABLE news CASCADE").await;

    // Act
    let response = app
        .authed(Method::GET, "/news", &token)
        .send()
        .await
        .unwrap();

    // Assert
    let problem = assert_problem(response, 500).await;
    let text = problem.to_string();
    assert_no_internals(&text);
    for needle in [
        "relation",
        "does not exist",
        "news_",
        "date_created",
        "42P01",
    ] {
        assert!(!text.contains(needle), "leaks {needle:?}: {text}");
    }
}

/// A request that one error layer refuses.
struct BadRequest {
    /// What it is, for assertion messages.
    what: &'static str,
    request: RequestBuilder,
    /// The status it must get.
    status: u16,
    /// The `Allow` header it must get: a 405 names the methods the resource supports (RFC 9110
    /// §15.5.6).
    allow: Option<&'static str>,
}

impl BadRequest {
    fn new(what: &'static str, request: RequestBuilder, status: u16) -> Self {
        Self {
            what,
            request,
            status,
            allow: None,
        }
    }
}

/// One request per error layer, and for some layers one per route kind.
fn bad_requests(app: &TestApp, token: &str) -> Vec<BadRequest> {
    let unknown = format!("/news/{}", uuid::Uuid::new_v4());
    vec![
        BadRequest::new("unknown route", app.request(Method::GET, "/nope"), 404),
        BadRequest {
            allow: Some("GET, HEAD"),
            ..BadRequest::new(
                "wrong method on /healthz",
                app.request(Method::DELETE, "/healthz"),
                405,
            )
        },
        BadRequest {
            allow: Some("GET, PATCH, POST, HEAD"),
            ..BadRequest::new(
                "wrong method on /news",
                app.authed(Method::PUT, "/news", token)
                    .json(&json!({"title": "Title", "body": "Body"})),
                405,
            )
        },
        BadRequest::new(
            "malformed JSON news",
            app.authed(Method::POST, "/news", token)
                .header(header::CONTENT_TYPE, "application/json")
                .body("{"),
            400,
        ),
        BadRequest::new(
            "malformed JSON signup",
            app.request(Method::POST, "/signup")
                .header(header::CONTENT_TYPE, "application/json")
                .body(r#"{"email": "bob@example.com", "password": "#),
            400,
        ),
        BadRequest::new(
            "no content type",
            app.authed(Method::POST, "/news", token).body("{}"),
            415,
        ),
        BadRequest::new(
            "schema",
            app.authed(Method::POST, "/news", token)
                .json(&json!({"title": ""})),
            422,
        ),
        BadRequest::new(
            "bad parameter",
            app.authed(Method::GET, "/news?limit=abc", token),
            400,
        ),
        BadRequest::new("no token", app.request(Method::GET, "/whoami"), 401),
        BadRequest::new(
            "bad token",
            app.authed(Method::GET, "/whoami", "not-a-token"),
            401,
        ),
        BadRequest::new(
            "wrong password",
            app.request(Method::POST, "/signin")
                .json(&json!({"email": "ada@example.com", "password": "wrong password"})),
            401,
        ),
        BadRequest::new(
            "duplicate email",
            app.request(Method::POST, "/signup")
                .json(&json!({"email": "ADA@example.com", "password": PASSWORD})),
            409,
        ),
        BadRequest::new("unknown id", app.authed(Method::GET, &unknown, token), 404),
        BadRequest::new(
            "news over 1 MiB",
            app.authed(Method::POST, "/news", token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(oversized_news()),
            413,
        ),
        BadRequest::new(
            "signup over 1 MiB",
            app.request(Method::POST, "/signup")
                .header(header::CONTENT_TYPE, "application/json")
                .body(
                    json!({
                        "email": "bob@example.com",
                        "password": PASSWORD,
                        "name": "n".repeat(1_100_000),
                    })
                    .to_string(),
                ),
            413,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_layer_answers_problem_json_that_leaks_nothing_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for BadRequest {
        what,
        request,
        status,
        allow,
    } in bad_requests(&app, &token)
    {
        // Act
        let response = request.send().await.unwrap();

        // Assert
        let allowed = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(allowed.as_deref(), allow, "{what}: Allow");
        let problem = assert_problem_for(response, status, what).await;
        assert_eq!(
            problem["title"].as_str().map(str::is_empty),
            Some(false),
            "{what}"
        );
        assert_no_internals(&problem.to_string());
        assert_eq!(users(&app).await, 1, "{what}: no account created");
        assert_eq!(news_rows(&app).await, 0, "{what}: no news created");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_successful_response_shows_a_password_hash() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_user("ada@example.com").await;
    let news = app
        .create_news(&token, &json!({"title": "Title", "body": "Body"}))
        .await;
    let news_path = format!("/news/{}", news["id"].as_str().unwrap());
    let hash = db_count(
        &app,
        &format!(
            "SELECT count(*) FROM user_credentials WHERE user_id = '{id}' AND password_hash LIKE '$2%'"
        ),
    )
    .await;
    assert_eq!(
        hash, 1,
        "the stored hash is bcrypt, so the check below means something"
    );

    for path in ["/whoami", "/news", news_path.as_str(), "/news/count"] {
        // Act
        let response = app.authed(Method::GET, path, &token).send().await.unwrap();

        // Assert
        assert_eq!(response.status(), 200, "{path}");
        assert_no_internals(&response.text().await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_request_id_and_a_sane_client_id_is_kept() {
    let app = spawn_app().await;
    let id_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
    };

    // Answers of every kind, from every layer, carry an id, and no two the same.
    let mut seen = std::collections::HashSet::new();
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/news"),
        (Method::GET, "/no-such-route"),
        (Method::PUT, "/signin"),
        (Method::GET, "/openapi.json"),
        (Method::GET, "/explorer"),
    ] {
        let response = app.request(method.clone(), path).send().await.unwrap();
        let id = id_of(&response).unwrap_or_else(|| panic!("{method} {path}: no X-Request-Id"));
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{method} {path}: {id}");
        assert!(seen.insert(id), "{method} {path}: a repeated id");
    }

    // A client's sane id is kept, in the header and in the problem.
    let response = app
        .request(Method::POST, "/signin")
        .header("X-Request-Id", "trace-42.a:b")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&response).as_deref(), Some("trace-42.a:b"));
    let problem = assert_problem(response, 400).await;
    assert_eq!(problem["instance"], "trace-42.a:b");

    // One that could break a log line or a header is replaced.
    for insane in ["has space", "<script>", &"x".repeat(200)] {
        let response = app
            .request(Method::GET, "/healthz")
            .header("X-Request-Id", insane)
            .send()
            .await
            .unwrap();
        let id = id_of(&response).unwrap();
        assert_ne!(id, insane);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
}
