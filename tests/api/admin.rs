//! Roles and administration: `newsapi create-admin` and `newsapi promote`, admins' rights over
//! anyone's news, and the admin-only bulk update `PATCH /news`.

use std::process::Output;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, access_token, all_news, assert_problem, assert_problem_for, db_count,
    db_execute, db_text, run_cli, spawn_app, users,
};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The role `GET /whoami` shows for `token`.
async fn role_of(app: &TestApp, token: &str) -> String {
    let response = app.whoami(token).await;
    assert_eq!(response.status(), 200, "whoami");
    response.json::<Value>().await.unwrap()["role"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Signs up `email` and promotes them with `newsapi promote`; returns their id and token.
async fn new_admin(app: &TestApp, email: &str) -> (String, String) {
    let (id, token) = app.new_user(email).await;
    let output = run_cli(app, &["promote", email], "").await;
    assert!(output.status.success(), "promote: {}", stderr(&output));
    (id, token)
}

async fn news_of(app: &TestApp, token: &str, titles: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for title in titles {
        let news = app
            .create_news(token, &json!({"title": title, "body": "Body"}))
            .await;
        ids.push(news["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn bulk_patch(
    app: &TestApp,
    token: &str,
    query: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    app.authed(Method::PATCH, "/news", token)
        .query(query)
        .json(body)
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// newsapi create-admin and newsapi promote

#[tokio::test(flavor = "multi_thread")]
async fn create_admin_makes_an_admin_who_signs_in_with_the_password_from_stdin() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let output = run_cli(
        &app,
        &["create-admin", "--email", "root@example.com"],
        &format!("{PASSWORD}\n"),
    )
    .await;

    // Assert
    assert!(output.status.success(), "create-admin: {}", stderr(&output));
    assert!(
        !stderr(&output).contains(PASSWORD),
        "the password is echoed"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains(PASSWORD));
    let stored = db_count(
        &app,
        "SELECT count(*) FROM users WHERE email = 'root@example.com' AND role = 'admin'",
    )
    .await;
    assert_eq!(stored, 1);
    let tokens = app.tokens("root@example.com", PASSWORD).await;
    assert_eq!(role_of(&app, access_token(&tokens)).await, "admin");
    // The operator vouches for the address: verified, and no verification mail.
    let me: Value = app
        .whoami(access_token(&tokens))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);
    assert_eq!(db_count(&app, "SELECT count(*) FROM mail_outbox").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_makes_a_user_admin_on_their_next_request_with_the_same_token() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    assert_eq!(role_of(&app, &token).await, "user");

    // Act
    let output = run_cli(&app, &["promote", "ada@example.com"], "").await;

    // Assert
    assert!(output.status.success(), "promote: {}", stderr(&output));
    assert_eq!(role_of(&app, &token).await, "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_finds_the_user_in_any_letter_case() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("Ada@Example.com").await;

    // Act
    let output = run_cli(&app, &["promote", "ada@EXAMPLE.com"], "").await;

    // Assert
    assert!(output.status.success(), "promote: {}", stderr(&output));
    assert_eq!(role_of(&app, &token).await, "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_with_an_unknown_email_fails_with_one_line_naming_the_email() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let output = run_cli(&app, &["promote", "nobody@example.com"], "").await;

    // Assert
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "one line: {message:?}");
    assert!(message.contains("nobody@example.com"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert_eq!(role_of(&app, &token).await, "user");
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM users WHERE role = 'admin'").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_with_a_bad_email_fails_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.new_user("ada@example.com").await;

    // Act
    let output = run_cli(&app, &["promote", "' OR 1=1 --"], "").await;

    // Assert
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).trim().lines().count(),
        1,
        "{}",
        stderr(&output)
    );
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM users WHERE role = 'admin'").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_admin_with_a_bad_email_fails_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let output = run_cli(
        &app,
        &["create-admin", "--email", "not-an-email"],
        &format!("{PASSWORD}\n"),
    )
    .await;

    // Assert
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "one line: {message:?}");
    assert!(message.contains("email"), "{message}");
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_admin_for_an_existing_email_fails_and_leaves_the_account_as_it_was() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let output = run_cli(
        &app,
        &["create-admin", "--email", "ADA@example.com"],
        "another strong passphrase here\n",
    )
    .await;

    // Assert
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.to_lowercase().contains("ada@example.com"),
        "{message}"
    );
    assert_eq!(users(&app).await, 1);
    assert_eq!(role_of(&app, &token).await, "user");
    assert_eq!(
        app.signin("ada@example.com", PASSWORD).await.status(),
        200,
        "the password is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_admin_with_a_common_password_fails_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let output = run_cli(
        &app,
        &["create-admin", "--email", "root@example.com"],
        "password1\n",
    )
    .await;

    // Assert
    assert!(!output.status.success());
    assert!(stderr(&output).contains("password"), "{}", stderr(&output));
    assert_eq!(users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_admin_refuses_a_password_on_the_command_line() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let output = run_cli(
        &app,
        &[
            "create-admin",
            "--email",
            "root@example.com",
            "--password",
            PASSWORD,
        ],
        "",
    )
    .await;

    // Assert
    assert!(!output.status.success());
    assert_eq!(users(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// An admin's rights over anyone's news

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_replace_anyones_news() {
    // Arrange
    let app = spawn_app().await;
    let (_, author) = app.new_user("author@example.com").await;
    let id = news_of(&app, &author, &["Spam"]).await.remove(0);
    let (_, admin) = new_admin(&app, "root@example.com").await;

    // Act
    let response = app
        .authed(Method::PUT, &format!("/news/{id}"), &admin)
        .json(&json!({"title": "Removed by a moderator", "body": "-"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let news: Value = response.json().await.unwrap();
    assert_eq!(news["title"], "Removed by a moderator");
    let title = db_text(&app, &format!("SELECT title FROM news WHERE id = '{id}'")).await;
    assert_eq!(title, "Removed by a moderator");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_patch_anyones_news_and_the_author_stays_the_same() {
    // Arrange
    let app = spawn_app().await;
    let (author_id, author) = app.new_user("author@example.com").await;
    let id = news_of(&app, &author, &["Spam"]).await.remove(0);
    let (_, admin) = new_admin(&app, "root@example.com").await;

    // Act
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), &admin)
        .json(&json!({"title": "Edited"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let stored = db_text(
        &app,
        &format!("SELECT title || '|' || author_id::text FROM news WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(stored, format!("Edited|{author_id}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_may_delete_anyones_news() {
    // Arrange
    let app = spawn_app().await;
    let (_, author) = app.new_user("author@example.com").await;
    let ids = news_of(&app, &author, &["Spam", "Keep"]).await;
    let (_, admin) = new_admin(&app, "root@example.com").await;

    // Act
    let response = app
        .authed(Method::DELETE, &format!("/news/{}", ids[0]), &admin)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(db_count(&app, "SELECT count(*) FROM news").await, 1);
    let left = db_text(&app, "SELECT id::text FROM news").await;
    assert_eq!(left, ids[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_admin_loses_the_rights_on_the_next_request_with_the_same_token() {
    // Arrange
    let app = spawn_app().await;
    let (_, author) = app.new_user("author@example.com").await;
    let id = news_of(&app, &author, &["Mine"]).await.remove(0);
    let (admin_id, admin) = new_admin(&app, "root@example.com").await;
    assert_eq!(role_of(&app, &admin).await, "admin");
    db_execute(
        &app,
        &format!("UPDATE users SET role = 'user' WHERE id = '{admin_id}'"),
    )
    .await;
    let before = all_news(&app).await;

    // Act
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), &admin)
        .json(&json!({"title": "Too late"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 403).await;
    assert_eq!(all_news(&app).await, before);
    assert_eq!(role_of(&app, &admin).await, "user");
}

// ---------------------------------------------------------------------------------------------
// PATCH /news: the admin-only bulk update

#[tokio::test(flavor = "multi_thread")]
async fn bulk_patch_by_author_id_changes_all_of_that_authors_news_and_no_other() {
    // Arrange
    let app = spawn_app().await;
    let (spammer_id, spammer) = app.new_user("spammer@example.com").await;
    let (_, honest) = app.new_user("honest@example.com").await;
    news_of(&app, &spammer, &["Buy now", "Cheap pills", "Click here"]).await;
    news_of(&app, &honest, &["Real news", "More real news"]).await;
    let honest_before = db_text(
        &app,
        &format!(
            "SELECT string_agg(id::text || title || version::text, ',' ORDER BY id) FROM news \
             WHERE author_id <> '{spammer_id}'"
        ),
    )
    .await;
    let (_, admin) = new_admin(&app, "root@example.com").await;

    // Act
    let response = bulk_patch(
        &app,
        &admin,
        &[("author_id", &spammer_id)],
        &json!({"title": "Removed for spam"}),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"count": 3, "exact": true}));
    let moderated = db_count(
        &app,
        &format!(
            "SELECT count(*) FROM news WHERE author_id = '{spammer_id}' \
             AND title = 'Removed for spam' AND body = 'Body'"
        ),
    )
    .await;
    assert_eq!(moderated, 3);
    let honest_after = db_text(
        &app,
        &format!(
            "SELECT string_agg(id::text || title || version::text, ',' ORDER BY id) FROM news \
             WHERE author_id <> '{spammer_id}'"
        ),
    )
    .await;
    assert_eq!(honest_after, honest_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_patch_that_matches_nothing_is_200_with_a_count_of_0_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, author) = app.new_user("author@example.com").await;
    news_of(&app, &author, &["One", "Two"]).await;
    let (_, admin) = new_admin(&app, "root@example.com").await;
    let before = all_news(&app).await;
    let nobody = uuid::Uuid::new_v4().to_string();

    // Act
    let response = bulk_patch(
        &app,
        &admin,
        &[("author_id", &nobody)],
        &json!({"title": "X"}),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"count": 0, "exact": true})
    );
    assert_eq!(all_news(&app).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_patch_by_a_plain_user_is_403_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (author_id, author) = app.new_user("author@example.com").await;
    news_of(&app, &author, &["One", "Two"]).await;
    let before = all_news(&app).await;

    // Act: even the author may not use the bulk update on their own news
    let response = bulk_patch(
        &app,
        &author,
        &[("author_id", &author_id)],
        &json!({"title": "Bulk"}),
    )
    .await;

    // Assert
    assert_problem(response, 403).await;
    assert_eq!(all_news(&app).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_patch_without_a_token_is_401_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, author) = app.new_user("author@example.com").await;
    news_of(&app, &author, &["One"]).await;
    let before = all_news(&app).await;

    // Act
    let response = app
        .request(Method::PATCH, "/news")
        .json(&json!({"title": "Bulk"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401).await;
    assert_eq!(all_news(&app).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_patch_with_an_invalid_body_is_422_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (author_id, author) = app.new_user("author@example.com").await;
    news_of(&app, &author, &["One", "Two"]).await;
    let (_, admin) = new_admin(&app, "root@example.com").await;
    let before = all_news(&app).await;

    for body in [
        json!({"title": ""}),
        json!({"title": "x".repeat(201)}),
        json!({"author_id": author_id}),
        json!({"title": null}),
    ] {
        // Act
        let response = bulk_patch(&app, &admin, &[("author_id", &author_id)], &body).await;

        // Assert
        assert_problem_for(response, 422, &body.to_string()).await;
        assert_eq!(all_news(&app).await, before, "{body}");
    }
}
