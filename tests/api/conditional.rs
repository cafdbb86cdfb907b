//! Conditional requests (RFC 9110 §13): `ETag`, `If-None-Match` on reads, `If-Match` on writes.

use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use crate::helpers::{
    AuthorWithNews, TestApp, assert_problem, assert_problem_for, author_with_news, db_text,
    news_rows, spawn_app, stored_news,
};

/// The `ETag` of a response, which must have one.
fn etag(response: &Response) -> String {
    response
        .headers()
        .get(header::ETAG)
        .unwrap_or_else(|| panic!("no ETag on a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_string()
}

async fn get(app: &TestApp, token: &str, id: &str, if_none_match: Option<&str>) -> Response {
    let mut request = app.authed(Method::GET, &format!("/news/{id}"), token);
    if let Some(tags) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tags);
    }
    request.send().await.unwrap()
}

/// A write (`PUT`, `PATCH` or `DELETE`) of news item `id`, with `If-Match: if_match` when given.
async fn write(
    app: &TestApp,
    token: &str,
    method: Method,
    id: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app.authed(method, &format!("/news/{id}"), token);
    if let Some(tags) = if_match {
        request = request.header(header::IF_MATCH, tags);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn patch_title(
    app: &TestApp,
    token: &str,
    id: &str,
    if_match: Option<&str>,
    title: &str,
) -> Response {
    write(
        app,
        token,
        Method::PATCH,
        id,
        if_match,
        Some(json!({ "title": title })),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// ETag and If-None-Match

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_news_item_returns_a_strong_etag_equal_to_the_one_from_its_creation() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: created_tag,
        ..
    } = author_with_news(&app).await;

    // Act
    let response = get(&app, &token, &id, None).await;

    // Assert
    assert_eq!(response.status(), 200);
    let tag = etag(&response);
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "a strong entity tag: {tag}"
    );
    assert_eq!(tag, created_tag);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_is_304_when_a_tag_matches_and_200_with_the_item_otherwise() {
    // Arrange: reads change nothing, so the cases can share one item
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: created_tag,
        ..
    } = author_with_news(&app).await;
    let tag = etag(&get(&app, &token, &id, None).await);

    for (case, if_none_match, status) in [
        ("the current ETag, from a read", tag.clone(), 304),
        ("the ETag from the creation", created_tag, 304),
        ("the weak form of the current ETag", format!("W/{tag}"), 304),
        (
            "a list holding the current ETag",
            format!("\"other\", {tag}"),
            304,
        ),
        ("*, for an existing item", "*".to_string(), 304),
        ("another tag", "\"some-other-tag\"".to_string(), 200),
    ] {
        // Act
        let response = get(&app, &token, &id, Some(&if_none_match)).await;

        // Assert
        assert_eq!(response.status(), status, "{case}");
        assert_eq!(etag(&response), tag, "{case}");
        if status == 304 {
            assert!(response.bytes().await.unwrap().is_empty(), "{case}");
        } else {
            let news: Value = response.json().await.unwrap();
            assert_eq!(news["id"], id.as_str(), "{case}");
            assert_eq!(news["title"], "Original title", "{case}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_with_the_etag_from_before_a_change_is_200_with_the_new_item() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: old_tag,
        ..
    } = author_with_news(&app).await;
    let changed = patch_title(&app, &token, &id, None, "Changed title").await;
    assert_eq!(changed.status(), 200);
    let new_tag = etag(&changed);

    // Act
    let response = get(&app, &token, &id, Some(&old_tag)).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(etag(&response), new_tag);
    let news: Value = response.json().await.unwrap();
    assert_eq!(news["title"], "Changed title");
}

// ---------------------------------------------------------------------------------------------
// If-Match on PUT, PATCH and DELETE

#[tokio::test(flavor = "multi_thread")]
async fn put_with_the_current_etag_in_if_match_is_200_with_a_new_etag() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: tag,
        ..
    } = author_with_news(&app).await;

    // Act
    let response = write(
        &app,
        &token,
        Method::PUT,
        &id,
        Some(&tag),
        Some(json!({"title": "Replaced", "body": "Replaced body"})),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 200);
    let new_tag = etag(&response);
    assert_ne!(new_tag, tag);
    let news: Value = response.json().await.unwrap();
    assert_eq!(news["title"], "Replaced");
    assert_eq!(etag(&get(&app, &token, &id, None).await), new_tag);
    assert!(
        stored_news(&app, &id)
            .await
            .starts_with("Replaced|Replaced body|")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_with_the_current_etag_in_if_match_is_200_with_a_new_etag() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: tag,
        ..
    } = author_with_news(&app).await;

    // Act
    let response = patch_title(&app, &token, &id, Some(&tag), "Patched").await;

    // Assert
    assert_eq!(response.status(), 200);
    let new_tag = etag(&response);
    assert_ne!(new_tag, tag);
    let news: Value = response.json().await.unwrap();
    assert_eq!(news["title"], "Patched");
    assert_eq!(etag(&get(&app, &token, &id, None).await), new_tag);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_with_the_current_etag_in_if_match_is_204() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: tag,
        ..
    } = author_with_news(&app).await;

    // Act
    let response = write(&app, &token, Method::DELETE, &id, Some(&tag), None).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(news_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_etag_of_a_write_response_is_the_one_the_next_write_must_name() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: first,
        ..
    } = author_with_news(&app).await;
    let response = patch_title(&app, &token, &id, Some(&first), "Second").await;
    assert_eq!(response.status(), 200);
    let second = etag(&response);

    // Act
    let with_second = patch_title(&app, &token, &id, Some(&second), "Third").await;
    let with_first = patch_title(&app, &token, &id, Some(&first), "Lost edit").await;

    // Assert
    assert_eq!(with_second.status(), 200);
    assert_ne!(etag(&with_second), second);
    assert_problem(with_first, 412).await;
    assert!(stored_news(&app, &id).await.starts_with("Third|"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_if_match_names_no_current_etag_is_412_and_changes_nothing() {
    // Arrange: another write makes the creation's tag stale; refused writes change nothing, so
    // the cases can share one item
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: stale,
        ..
    } = author_with_news(&app).await;
    let newer = patch_title(&app, &token, &id, None, "Newer").await;
    assert_eq!(newer.status(), 200);
    let current = etag(&newer);
    let before = stored_news(&app, &id).await;
    let replacement = || Some(json!({"title": "Overwrite", "body": "Overwrite"}));
    let patch = || Some(json!({"title": "Overwrite"}));

    for (case, method, if_match, body) in [
        (
            "PUT with a stale ETag",
            Method::PUT,
            stale.clone(),
            replacement(),
        ),
        (
            "PATCH with a stale ETag",
            Method::PATCH,
            stale.clone(),
            patch(),
        ),
        ("DELETE with a stale ETag", Method::DELETE, stale, None),
        // If-Match compares strongly (RFC 9110 §13.1.1)
        (
            "the weak form of the current ETag",
            Method::PATCH,
            format!("W/{current}"),
            patch(),
        ),
        (
            "SQL in a tag",
            Method::PATCH,
            "\"' OR 1=1 --\"".to_string(),
            patch(),
        ),
        (
            "a tag with SQL",
            Method::PATCH,
            "\"v1 OR 1=1\"".to_string(),
            patch(),
        ),
        (
            "a negative version",
            Method::PATCH,
            "\"v-1\"".to_string(),
            patch(),
        ),
        (
            "an unquoted tag",
            Method::PATCH,
            "garbage".to_string(),
            patch(),
        ),
        ("an empty tag", Method::PATCH, "\"\"".to_string(), patch()),
    ] {
        // Act
        let response = write(&app, &token, method, &id, Some(&if_match), body).await;

        // Assert
        assert_problem_for(response, 412, case).await;
        assert_eq!(news_rows(&app).await, 1, "{case}: the item is kept");
        assert_eq!(
            stored_news(&app, &id).await,
            before,
            "{case}: nothing changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_with_a_list_holding_the_current_etag_is_accepted() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: tag,
        ..
    } = author_with_news(&app).await;

    // Act
    let response = patch_title(
        &app,
        &token,
        &id,
        Some(&format!("\"v999\", {tag}")),
        "Listed",
    )
    .await;

    // Assert
    assert_eq!(response.status(), 200);
    assert!(stored_news(&app, &id).await.starts_with("Listed|"));
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_star_lets_put_patch_and_delete_through() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews { token, id, .. } = author_with_news(&app).await;

    // Act
    let put = write(
        &app,
        &token,
        Method::PUT,
        &id,
        Some("*"),
        Some(json!({"title": "Star put", "body": "Body"})),
    )
    .await;
    let put_status = put.status();
    let patch = patch_title(&app, &token, &id, Some("*"), "Star patch").await;
    let patch_status = patch.status();
    let after_patch = stored_news(&app, &id).await;
    let delete = write(&app, &token, Method::DELETE, &id, Some("*"), None).await;

    // Assert
    assert_eq!(put_status, 200);
    assert_eq!(patch_status, 200);
    assert!(after_patch.starts_with("Star patch|Body|"), "{after_patch}");
    assert_eq!(delete.status(), 204);
    assert_eq!(news_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_if_match_on_another_users_news_is_403_not_412() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token: author_token,
        id,
        etag: stale,
        ..
    } = author_with_news(&app).await;
    assert_eq!(
        patch_title(&app, &author_token, &id, None, "Newer")
            .await
            .status(),
        200
    );
    let before = stored_news(&app, &id).await;
    let (_, intruder) = app.new_user("intruder@example.com").await;

    // Act
    let put = write(
        &app,
        &intruder,
        Method::PUT,
        &id,
        Some(&stale),
        Some(json!({"title": "Mine", "body": "Mine"})),
    )
    .await;
    let patch = patch_title(&app, &intruder, &id, Some(&stale), "Mine").await;
    let delete = write(&app, &intruder, Method::DELETE, &id, Some(&stale), None).await;

    // Assert
    assert_problem(put, 403).await;
    assert_problem(patch, 403).await;
    assert_problem(delete, 403).await;
    assert_eq!(stored_news(&app, &id).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_if_match_on_an_unknown_id_is_404_not_412() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token, etag: tag, ..
    } = author_with_news(&app).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    // Act
    let patch = patch_title(&app, &token, &unknown, Some(&tag), "Ghost").await;
    let delete = write(&app, &token, Method::DELETE, &unknown, Some(&tag), None).await;

    // Assert
    assert_problem(patch, 404).await;
    assert_problem(delete, 404).await;
    assert_eq!(news_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_concurrent_writes_naming_the_same_etag_exactly_one_wins_and_no_edit_is_lost() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token,
        id,
        etag: mut tag,
        ..
    } = author_with_news(&app).await;

    for round in 0..5 {
        // Act
        let (title_a, title_b) = (format!("A{round}"), format!("B{round}"));
        let (a, b) = tokio::join!(
            patch_title(&app, &token, &id, Some(&tag), &title_a),
            patch_title(&app, &token, &id, Some(&tag), &title_b),
        );

        // Assert
        let (winner, loser, title) = match (a.status().as_u16(), b.status().as_u16()) {
            (200, 412) => (a, b, title_a),
            (412, 200) => (b, a, title_b),
            other => panic!("round {round}: expected one 200 and one 412, got {other:?}"),
        };
        assert_problem(loser, 412).await;
        tag = etag(&winner);
        assert!(
            stored_news(&app, &id)
                .await
                .starts_with(&format!("{title}|")),
            "round {round}: the stored title is the winner's"
        );
        let version = db_text(
            &app,
            &format!("SELECT version::text FROM news WHERE id = '{id}'"),
        )
        .await;
        assert_eq!(version, (round + 2).to_string(), "one write per round");
    }
}
