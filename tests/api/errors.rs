//! Every error layer — routing, methods, body size, content type, JSON, parameters, auth, the
//! handlers and the database — answers with RFC 9457 problem+json and shows nothing of the
//! server's insides.

use reqwest::{Method, RequestBuilder, header};
use serde_json::json;

use crate::helpers::{
    PASSWORD, TestApp, assert_no_internals, assert_problem, db_count, db_execute, spawn_app,
};

/// A JSON body of a little over 1 MiB: 1.1 MB in one string field.
fn oversized_news() -> String {
    json!({"title": "Big", "body": "x".repeat(1_100_000)}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_route_is_404_problem() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/nope").send().await.unwrap();

    // Assert
    assert_problem(response, 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_healthz_is_405_problem() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .request(Method::DELETE, "/healthz")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(
        response.headers().get("allow").unwrap(),
        "GET, HEAD",
        "a 405 names the methods the resource supports (RFC 9110 §15.5.6)"
    );
    assert_problem(response, 405).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn putting_the_news_collection_is_405_problem_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::PUT, "/news", &token)
        .json(&json!({"title": "Title", "body": "Body"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(
        response.headers().get("allow").unwrap(),
        "GET, PATCH, POST, HEAD"
    );
    assert_problem(response, 405).await;
    assert_eq!(db_count(&app, "SELECT count(*) FROM news").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_news_body_over_1_mib_is_413_problem_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::POST, "/news", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(oversized_news())
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 413).await;
    assert_eq!(db_count(&app, "SELECT count(*) FROM news").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signup_body_over_1_mib_is_413_problem_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let body =
        json!({"email": "ada@example.com", "password": PASSWORD, "name": "n".repeat(1_100_000)});

    // Act
    let response = app
        .request(Method::POST, "/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 413).await;
    assert_eq!(db_count(&app, "SELECT count(*) FROM users").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_at_signup_is_400_problem_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .request(Method::POST, "/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"email": "ada@example.com", "password": "#)
        .send()
        .await
        .unwrap();

    // Assert
    let problem = assert_problem(response, 400).await;
    assert_no_internals(&problem.to_string());
    assert_eq!(db_count(&app, "SELECT count(*) FROM users").await, 0);
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

/// One request per error layer: (what it is, the request, the status it must get).
fn bad_requests(app: &TestApp, token: &str) -> Vec<(&'static str, RequestBuilder, u16)> {
    let unknown = format!("/news/{}", uuid::Uuid::new_v4());
    vec![
        ("unknown route", app.request(Method::GET, "/nope"), 404),
        ("wrong method", app.request(Method::DELETE, "/healthz"), 405),
        (
            "malformed JSON",
            app.authed(Method::POST, "/news", token)
                .header(header::CONTENT_TYPE, "application/json")
                .body("{"),
            400,
        ),
        (
            "no content type",
            app.authed(Method::POST, "/news", token).body("{}"),
            415,
        ),
        (
            "schema",
            app.authed(Method::POST, "/news", token)
                .json(&json!({"title": ""})),
            422,
        ),
        (
            "bad parameter",
            app.authed(Method::GET, "/news?limit=abc", token),
            400,
        ),
        ("no token", app.request(Method::GET, "/whoami"), 401),
        (
            "bad token",
            app.authed(Method::GET, "/whoami", "not-a-token"),
            401,
        ),
        (
            "wrong password",
            app.request(Method::POST, "/signin")
                .json(&json!({"email": "ada@example.com", "password": "wrong password"})),
            401,
        ),
        (
            "duplicate email",
            app.request(Method::POST, "/signup")
                .json(&json!({"email": "ADA@example.com", "password": PASSWORD})),
            409,
        ),
        ("unknown id", app.authed(Method::GET, &unknown, token), 404),
        (
            "too large",
            app.authed(Method::POST, "/news", token)
                .header(header::CONTENT_TYPE, "application/json")
                .body(oversized_news()),
            413,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_layer_answers_problem_json_that_leaks_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for (what, request, status) in bad_requests(&app, &token) {
        // Act
        let response = request.send().await.unwrap();

        // Assert
        assert_eq!(response.status().as_u16(), status, "{what}");
        let problem = assert_problem(response, status).await;
        assert_eq!(
            problem["title"].as_str().map(str::is_empty),
            Some(false),
            "{what}"
        );
        assert_no_internals(&problem.to_string());
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
