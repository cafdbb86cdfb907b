//! Probes, the home page, the explorers and the spec endpoints.

use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_is_200_with_status_ok() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/healthz").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_200_with_status_ready_while_the_database_answers() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/readyz").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_problem_when_the_database_is_gone() {
    // Arrange: one request first, so the pool holds a connection to the database being dropped
    let app = spawn_app().await;
    let warm = app.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(warm.status(), 200);
    app.db.drop_now().await;

    // Act
    let response = app.request(Method::GET, "/readyz").send().await.unwrap();

    // Assert
    let problem = assert_problem(response, 503).await;
    let text = problem.to_string();
    assert!(
        !text.contains(&app.db.name),
        "leaks the database name: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_stays_200_when_the_database_is_gone() {
    // Arrange
    let app = spawn_app().await;
    app.db.drop_now().await;

    // Act
    let response = app.request(Method::GET, "/healthz").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_home_page_is_html_linking_to_the_explorer_redoc_and_the_spec() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let html = response.text().await.unwrap();
    for link in [
        r#"href="/explorer""#,
        r#"href="/redoc""#,
        r#"href="/openapi.json""#,
    ] {
        assert!(html.contains(link), "no {link} in {html}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_is_an_html_page() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/explorer").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("<html"), "{html:.200}");
    assert!(html.contains("swagger"), "{html:.200}");
    assert!(
        html.contains("correct horse battery staple"),
        "the explorer shows openapi.yaml, examples included"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redoc_is_an_html_page() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/redoc").send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("<html"), "{html:.200}");
    assert!(html.to_lowercase().contains("redoc"), "{html:.200}");
    assert!(
        html.contains("correct horse battery staple"),
        "Redoc shows openapi.yaml, examples included"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spec_is_served_as_yaml_and_as_json() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let yaml = app
        .request(Method::GET, "/openapi.yaml")
        .send()
        .await
        .unwrap();
    let json = app
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(yaml.status(), 200);
    assert!(
        content_type(&yaml).contains("yaml"),
        "{}",
        content_type(&yaml)
    );
    let yaml: Value = serde_yaml::from_str(&yaml.text().await.unwrap()).unwrap();
    assert_eq!(json.status(), 200);
    assert!(content_type(&json).starts_with("application/json"));
    let json: Value = json.json().await.unwrap();
    assert!(yaml["openapi"].as_str().unwrap().starts_with("3."));
    assert!(yaml["paths"]["/news/{id}"].is_object(), "{}", yaml["paths"]);
    assert_eq!(yaml, json);
}
