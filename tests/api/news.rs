//! News: create, list (keyset pages, search, filters), count, get, replace, patch, delete.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, Response, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, db_count, db_text, json_of, spawn_app};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Distinct instants an hour apart, from 2024-01-01T00:00:00.000001Z, as the wire writes them.
fn instant(hours: i64) -> String {
    let base = DateTime::parse_from_rfc3339("2024-01-01T00:00:00.000001Z")
        .unwrap()
        .with_timezone(&Utc);
    (base + TimeDelta::hours(hours)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a string: {value}")),
    )
    .unwrap_or_else(|err| panic!("{value}: {err}"))
    .with_timezone(&Utc)
}

async fn news_rows(app: &TestApp) -> i64 {
    db_count(app, "SELECT count(*) FROM news").await
}

/// The stored state of a news item, to show that a refused write changed nothing.
async fn stored(app: &TestApp, id: &str) -> String {
    db_text(
        app,
        &format!(
            "SELECT title || '|' || body || '|' || date_created::text || '|' || \
             date_updated::text || '|' || author_id::text FROM news WHERE id = '{id}'"
        ),
    )
    .await
}

async fn post_news(app: &TestApp, token: &str, body: &Value) -> Response {
    app.authed(Method::POST, "/news", token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn list_response(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Response {
    app.authed(Method::GET, "/news", token)
        .query(query)
        .send()
        .await
        .unwrap()
}

/// A page of `GET /news`, which must be 200.
async fn list(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Value {
    let response = list_response(app, token, query).await;
    assert_eq!(response.status(), 200, "GET /news {query:?}");
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page has items: {page}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// Follows `next_cursor` from the first page to the last; returns the ids of each page.
async fn every_page(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = query.to_vec();
        if let Some(c) = cursor.as_deref() {
            q.push(("cursor", c));
        }
        let page = list(app, token, &q).await;
        pages.push(ids(&page));
        assert!(pages.len() <= 50, "the cursor never ends");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(page["next_cursor"].is_null(), "next_cursor: {page}");
                return pages;
            }
        }
    }
}

/// Creates news dated `instant(hours)` for each of `hours`; returns their ids in that order.
async fn create_dated(app: &TestApp, token: &str, hours: &[i64]) -> Vec<String> {
    let mut ids = Vec::new();
    for &h in hours {
        let news = app
            .create_news(
                token,
                &json!({"title": format!("Item {h}"), "body": "Text", "date_created": instant(h)}),
            )
            .await;
        ids.push(news["id"].as_str().unwrap().to_string());
    }
    ids
}

fn field_names(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 lists its errors: {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

/// A user who has written one news item: (user id, token, news item).
async fn author_with_news(app: &TestApp) -> (String, String, Value) {
    let (id, token) = app.new_user("author@example.com").await;
    let news = app
        .create_news(
            &token,
            &json!({"title": "Original title", "body": "Original body", "date_created": instant(0)}),
        )
        .await;
    (id, token, news)
}

// ---------------------------------------------------------------------------------------------
// POST /news

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_returns_201_with_the_item_its_author_and_a_location_header() {
    // Arrange
    let app = spawn_app().await;
    let (user_id, token) = app.new_user("ada@example.com").await;
    let before = Utc::now() - TimeDelta::seconds(5);

    // Act
    let response = post_news(
        &app,
        &token,
        &json!({"title": "Rust 2.0 released", "body": "A faster compiler."}),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 201);
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let news: Value = response.json().await.unwrap();
    let id = news["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{news}");
    assert_eq!(location.as_deref(), Some(format!("/news/{id}").as_str()));
    assert_eq!(news["title"], "Rust 2.0 released");
    assert_eq!(news["body"], "A faster compiler.");
    assert_eq!(news["author_id"], user_id.as_str());
    let created = parse_instant(&news["date_created"]);
    assert!(created >= before, "date_created defaults to now: {news}");
    assert!(parse_instant(&news["date_updated"]) >= before, "{news}");
    assert_eq!(news_rows(&app).await, 1);
    let stored_author = db_text(
        &app,
        &format!("SELECT author_id::text FROM news WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(stored_author, user_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_date_created_echoes_it_to_the_microsecond() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let given = "2021-06-15T08:30:45.123456Z";

    // Act
    let created = app
        .create_news(
            &token,
            &json!({"title": "Dated", "body": "Text", "date_created": given}),
        )
        .await;
    let fetched: Value = json_of(app.authed(
        Method::GET,
        &format!("/news/{}", created["id"].as_str().unwrap()),
        &token,
    ))
    .await;

    // Assert
    let expected = parse_instant(&json!(given));
    assert_eq!(parse_instant(&created["date_created"]), expected);
    assert_eq!(parse_instant(&fetched["date_created"]), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_title_of_200_characters_and_a_body_of_100000_is_accepted() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let title = "é".repeat(200);
    let body = "b".repeat(100_000);

    // Act
    let response = post_news(&app, &token, &json!({"title": title, "body": body})).await;

    // Assert
    assert_eq!(response.status(), 201);
    let news: Value = response.json().await.unwrap();
    assert_eq!(news["title"], title.as_str());
    assert_eq!(news["body"].as_str().unwrap().len(), 100_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_without_a_token_is_401_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .request(Method::POST, "/news")
        .json(&json!({"title": "Title", "body": "Body"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert!(
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer"))
    );
    assert_problem(response, 401).await;
    assert_eq!(news_rows(&app).await, 0);
}

/// Posts `body` as a new news item and asserts it is refused with 422 naming `field`, and that
/// nothing was stored.
async fn assert_create_refused(app: &TestApp, token: &str, body: &Value, field: &str) {
    let response = post_news(app, token, body).await;
    let problem = assert_problem(response, 422).await;
    assert_eq!(field_names(&problem), [field], "{body:.80}");
    assert_eq!(news_rows(app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_an_empty_title_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(&app, &token, &json!({"title": "", "body": "Body"}), "title").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_blank_title_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": " \t\n ", "body": "Body"}),
        "title",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_title_of_201_characters_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "t".repeat(201), "body": "Body"}),
        "title",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_an_empty_body_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(&app, &token, &json!({"title": "Title", "body": ""}), "body").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_body_of_100001_characters_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "Title", "body": "b".repeat(100_001)}),
        "body",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_an_unknown_field_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "Title", "body": "Body", "author_id": uuid::Uuid::new_v4()}),
        "author_id",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_number_for_a_title_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(&app, &token, &json!({"title": 5, "body": "Body"}), "title").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_date_created_that_is_not_a_date_is_422_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "Title", "body": "Body", "date_created": "yesterday"}),
        "date_created",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_nul_character_in_the_title_is_422_not_a_500() {
    // Arrange: JSON allows U+0000 in a string; PostgreSQL's text does not
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "Nul\u{0}byte", "body": "Body"}),
        "title",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_with_a_nul_character_in_the_body_is_422_not_a_500() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act + Assert
    assert_create_refused(
        &app,
        &token,
        &json!({"title": "Title", "body": "Nul\u{0}byte"}),
        "body",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_from_malformed_json_is_400_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::POST, "/news", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"title":"#)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 400).await;
    assert_eq!(news_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_without_a_content_type_is_415_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::POST, "/news", &token)
        .body(r#"{"title":"Title","body":"Body"}"#)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 415).await;
    assert_eq!(news_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_as_text_plain_is_415_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::POST, "/news", &token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"title":"Title","body":"Body"}"#)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 415).await;
    assert_eq!(news_rows(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// GET /news

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_gives_the_newest_first_20_to_a_page_by_default() {
    // Arrange: 21 items, created oldest first
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let hours: Vec<i64> = (0..21).collect();
    let created = create_dated(&app, &token, &hours).await;

    // Act
    let first = list(&app, &token, &[]).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = list(&app, &token, &[("cursor", &cursor)]).await;

    // Assert
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(ids(&first), newest_first[..20]);
    assert_eq!(ids(&second), newest_first[20..]);
    assert!(second["next_cursor"].is_null(), "{second}");
    let dates: Vec<DateTime<Utc>> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| parse_instant(&n["date_created"]))
        .collect();
    assert!(dates.windows(2).all(|w| w[0] > w[1]), "{dates:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_with_a_limit_returns_that_many_and_a_cursor() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let created = create_dated(&app, &token, &[0, 1, 2, 3, 4]).await;

    // Act
    let page = list(&app, &token, &[("limit", "2")]).await;

    // Assert
    assert_eq!(ids(&page), [created[4].clone(), created[3].clone()]);
    assert!(page["next_cursor"].is_string(), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_an_empty_table_gives_no_items_and_a_null_cursor() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let page = list(&app, &token, &[]).await;

    // Assert
    assert_eq!(page["items"], json!([]));
    assert!(page["next_cursor"].is_null(), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn following_next_cursor_newest_first_visits_every_item_exactly_once() {
    // Arrange: 7 items created in shuffled date order
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let hours = [3, 0, 6, 1, 5, 2, 4];
    let created = create_dated(&app, &token, &hours).await;
    let mut expected: Vec<(i64, String)> = hours.iter().copied().zip(created).collect();
    expected.sort_by_key(|(h, _)| -h);

    // Act
    let pages = every_page(&app, &token, &[("limit", "3")]).await;

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let visited: Vec<String> = pages.concat();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(visited, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn following_next_cursor_oldest_first_visits_every_item_exactly_once() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let hours = [3, 0, 6, 1, 5, 2, 4];
    let created = create_dated(&app, &token, &hours).await;
    let mut expected: Vec<(i64, String)> = hours.iter().copied().zip(created).collect();
    expected.sort_by_key(|(h, _)| *h);

    // Act
    let pages = every_page(
        &app,
        &token,
        &[("limit", "3"), ("order", "date_created_asc")],
    )
    .await;

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let visited: Vec<String> = pages.concat();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(visited, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn following_next_cursor_through_items_with_the_same_date_created_visits_each_once() {
    // Arrange: five items with one date_created, so only the id orders them
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let created = create_dated(&app, &token, &[7, 7, 7, 7, 7]).await;

    for order in ["date_created_desc", "date_created_asc"] {
        // Act
        let pages = every_page(&app, &token, &[("limit", "2"), ("order", order)]).await;

        // Assert
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1], "{order}");
        let visited: Vec<String> = pages.concat();
        let unique: HashSet<&String> = visited.iter().collect();
        assert_eq!(unique.len(), 5, "{order}: duplicates in {visited:?}");
        assert_eq!(unique, created.iter().collect(), "{order}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_stay_stable_when_a_newer_item_is_inserted_between_them() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let created = create_dated(&app, &token, &[0, 1, 2, 3, 4, 5, 6]).await;
    let first = list(&app, &token, &[("limit", "3")]).await;

    // Act: another client publishes the newest item between two page fetches
    let newer = create_dated(&app, &token, &[100]).await;
    let mut visited = ids(&first);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    loop {
        let page = list(&app, &token, &[("limit", "3"), ("cursor", &cursor)]).await;
        visited.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }

    // Assert
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(visited, newest_first, "no duplicate, no skip");
    assert!(!visited.contains(&newer[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn searching_for_rust_finds_it_in_titles_and_bodies_and_nothing_else() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let in_title = app
        .create_news(
            &token,
            &json!({"title": "Rust 2.0 released", "body": "A faster compiler."}),
        )
        .await;
    let in_body = app
        .create_news(
            &token,
            &json!({"title": "Bridges", "body": "The old bridge is covered in rust."}),
        )
        .await;
    app.create_news(
        &token,
        &json!({"title": "Cooking", "body": "Pasta with tomatoes."}),
    )
    .await;

    // Act
    let page = list(&app, &token, &[("q", "rust")]).await;

    // Assert
    let found: HashSet<String> = ids(&page).into_iter().collect();
    let expected: HashSet<String> = [&in_title, &in_body]
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn searching_uses_english_stemming_so_running_finds_runs() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let runs = app
        .create_news(
            &token,
            &json!({"title": "Marathon", "body": "She runs every morning."}),
        )
        .await;
    app.create_news(
        &token,
        &json!({"title": "Swimming", "body": "He swims every evening."}),
    )
    .await;

    // Act
    let page = list(&app, &token, &[("q", "running")]).await;

    // Assert
    assert_eq!(ids(&page), [runs["id"].as_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn searching_for_a_nul_character_is_answered_without_a_500() {
    // Arrange: no stored text can hold U+0000, so nothing can match it
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    create_dated(&app, &token, &[0]).await;

    // Act
    let response = list_response(&app, &token, &[("q", "nul\u{0}byte")]).await;

    // Assert: either no match, or a bad parameter; never an internal error
    match response.status().as_u16() {
        200 => {
            let page: Value = response.json().await.unwrap();
            assert_eq!(page["items"], json!([]), "{page}");
        }
        _ => {
            assert_problem(response, 400).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filtering_by_author_id_lists_only_that_authors_news() {
    // Arrange
    let app = spawn_app().await;
    let (ada, ada_token) = app.new_user("ada@example.com").await;
    let (_, bob_token) = app.new_user("bob@example.com").await;
    let adas = create_dated(&app, &ada_token, &[0, 2]).await;
    create_dated(&app, &bob_token, &[1, 3]).await;

    // Act
    let page = list(&app, &bob_token, &[("author_id", &ada)]).await;

    // Assert
    assert_eq!(ids(&page), [adas[1].clone(), adas[0].clone()]);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["author_id"] == ada.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn created_after_and_created_before_filter_exclusively() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let created = create_dated(&app, &token, &[1, 2, 3]).await;
    let (t1, t3) = (instant(1), instant(3));

    // Act
    let after = list(&app, &token, &[("created_after", &t1)]).await;
    let before = list(&app, &token, &[("created_before", &t3)]).await;
    let between = list(
        &app,
        &token,
        &[("created_after", &t1), ("created_before", &t3)],
    )
    .await;

    // Assert
    assert_eq!(ids(&after), [created[2].clone(), created[1].clone()]);
    assert_eq!(ids(&before), [created[1].clone(), created[0].clone()]);
    assert_eq!(ids(&between), [created[1].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_without_a_token_is_401() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.request(Method::GET, "/news").send().await.unwrap();

    // Assert
    assert_problem(response, 401).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_with_a_limit_of_0_or_101_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for limit in ["0", "101", "-1"] {
        // Act
        let response = list_response(&app, &token, &[("limit", limit)]).await;

        // Assert
        assert_eq!(response.status(), 400, "limit={limit}");
        assert_problem(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_with_an_unparseable_parameter_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for (name, value) in [
        ("limit", "abc"),
        ("author_id", "not-a-uuid"),
        ("created_after", "yesterday"),
        ("created_before", "2024-13-01"),
        ("order", "sideways"),
    ] {
        // Act
        let response = list_response(&app, &token, &[(name, value)]).await;

        // Assert
        assert_eq!(response.status(), 400, "{name}={value}");
        assert_problem(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_news_with_a_garbage_cursor_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    create_dated(&app, &token, &[0, 1]).await;

    for cursor in ["garbage", "!!!", ""] {
        // Act
        let response = list_response(&app, &token, &[("cursor", cursor)]).await;

        // Assert
        assert_eq!(response.status(), 400, "cursor={cursor:?}");
        assert_problem(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_a_newest_first_list_is_400_in_an_oldest_first_list() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    create_dated(&app, &token, &[0, 1, 2]).await;
    let first = list(&app, &token, &[("limit", "1")]).await;
    let cursor = first["next_cursor"].as_str().unwrap();

    // Act
    let response = list_response(
        &app,
        &token,
        &[
            ("limit", "1"),
            ("order", "date_created_asc"),
            ("cursor", cursor),
        ],
    )
    .await;

    // Assert
    assert_problem(response, 400).await;
}

// ---------------------------------------------------------------------------------------------
// GET /news/count

#[tokio::test(flavor = "multi_thread")]
async fn counting_news_applies_the_same_filters_as_listing() {
    // Arrange
    let app = spawn_app().await;
    let (ada, ada_token) = app.new_user("ada@example.com").await;
    let (_, bob_token) = app.new_user("bob@example.com").await;
    app.create_news(
        &ada_token,
        &json!({"title": "Rust news", "body": "Text", "date_created": instant(1)}),
    )
    .await;
    app.create_news(
        &ada_token,
        &json!({"title": "Other", "body": "Text", "date_created": instant(2)}),
    )
    .await;
    app.create_news(
        &bob_token,
        &json!({"title": "More rust", "body": "Text", "date_created": instant(3)}),
    )
    .await;
    let t1 = instant(1);
    let count = async |query: &[(&str, &str)]| -> Value {
        let response = app
            .authed(Method::GET, "/news/count", &ada_token)
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query:?}");
        response.json::<Value>().await.unwrap()["count"].clone()
    };

    // Act + Assert
    assert_eq!(count(&[]).await, 3);
    assert_eq!(count(&[("q", "rust")]).await, 2);
    assert_eq!(count(&[("author_id", &ada)]).await, 2);
    assert_eq!(count(&[("created_after", &t1)]).await, 2);
    assert_eq!(count(&[("created_before", &t1)]).await, 0);
    assert_eq!(count(&[("q", "rust"), ("author_id", &ada)]).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn counting_news_with_a_bad_parameter_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for (name, value) in [
        ("author_id", "not-a-uuid"),
        ("created_after", "yesterday"),
        ("created_before", "soon"),
        ("q", ""),
    ] {
        // Act
        let response = app
            .authed(Method::GET, "/news/count", &token)
            .query(&[(name, value)])
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(response.status(), 400, "{name}={value}");
        assert_problem(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counting_news_without_a_token_is_401() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .request(Method::GET, "/news/count")
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401).await;
}

// ---------------------------------------------------------------------------------------------
// GET /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_news_item_returns_it_to_any_signed_in_user() {
    // Arrange
    let app = spawn_app().await;
    let (author, _, news) = author_with_news(&app).await;
    let (_, reader_token) = app.new_user("reader@example.com").await;

    // Act
    let response = app
        .authed(
            Method::GET,
            &format!("/news/{}", news["id"].as_str().unwrap()),
            &reader_token,
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched, news);
    assert_eq!(fetched["author_id"], author.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn getting_an_unknown_news_id_is_404() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(
            Method::GET,
            &format!("/news/{}", uuid::Uuid::new_v4()),
            &token,
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_news_id_that_is_not_a_uuid_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(Method::GET, "/news/not-a-uuid", &token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 400).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_news_item_without_a_token_is_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, _, news) = author_with_news(&app).await;

    // Act
    let response = app
        .request(
            Method::GET,
            &format!("/news/{}", news["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401).await;
}

// ---------------------------------------------------------------------------------------------
// PUT /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_news_changes_title_and_body_keeps_date_created_and_advances_date_updated() {
    // Arrange
    let app = spawn_app().await;
    let (author, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act
    let response = app
        .authed(Method::PUT, &format!("/news/{id}"), &token)
        .json(&json!({"title": "New title", "body": "New body"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["id"], id);
    assert_eq!(replaced["title"], "New title");
    assert_eq!(replaced["body"], "New body");
    assert_eq!(replaced["author_id"], author.as_str());
    assert_eq!(
        parse_instant(&replaced["date_created"]),
        parse_instant(&news["date_created"])
    );
    assert!(parse_instant(&replaced["date_updated"]) > parse_instant(&news["date_updated"]));
    let title = db_text(&app, &format!("SELECT title FROM news WHERE id = '{id}'")).await;
    assert_eq!(title, "New title");
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_news_with_a_date_created_sets_it() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act
    let response = app
        .authed(Method::PUT, &format!("/news/{id}"), &token)
        .json(&json!({"title": "T", "body": "B", "date_created": instant(42)}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(
        parse_instant(&replaced["date_created"]),
        parse_instant(&json!(instant(42)))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_another_users_news_is_403_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, _, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();
    let (_, intruder) = app.new_user("intruder@example.com").await;
    let before = stored(&app, id).await;

    // Act
    let response = app
        .authed(Method::PUT, &format!("/news/{id}"), &intruder)
        .json(&json!({"title": "Defaced", "body": "Defaced"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 403).await;
    assert_eq!(stored(&app, id).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_an_unknown_news_id_is_404() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(
            Method::PUT,
            &format!("/news/{}", uuid::Uuid::new_v4()),
            &token,
        )
        .json(&json!({"title": "T", "body": "B"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 404).await;
    assert_eq!(news_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_news_without_a_body_field_is_422_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();
    let before = stored(&app, id).await;

    // Act
    let response = app
        .authed(Method::PUT, &format!("/news/{id}"), &token)
        .json(&json!({"title": "Only a title"}))
        .send()
        .await
        .unwrap();

    // Assert
    let problem = assert_problem(response, 422).await;
    assert_eq!(field_names(&problem), ["body"]);
    assert_eq!(stored(&app, id).await, before);
}

// ---------------------------------------------------------------------------------------------
// PATCH /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn patching_news_changes_only_the_given_fields() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), &token)
        .json(&json!({"title": "Patched title"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["title"], "Patched title");
    assert_eq!(patched["body"], news["body"]);
    assert_eq!(patched["author_id"], news["author_id"]);
    assert_eq!(
        parse_instant(&patched["date_created"]),
        parse_instant(&news["date_created"])
    );
    assert!(parse_instant(&patched["date_updated"]) > parse_instant(&news["date_updated"]));
    let fetched: Value = json_of(app.authed(Method::GET, &format!("/news/{id}"), &token)).await;
    assert_eq!(fetched, patched);
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_only_the_body_keeps_the_title() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), &token)
        .json(&json!({"body": "Patched body"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["title"], "Original title");
    assert_eq!(patched["body"], "Patched body");
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_another_users_news_is_403_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, _, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();
    let (_, intruder) = app.new_user("intruder@example.com").await;
    let before = stored(&app, id).await;

    // Act
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), &intruder)
        .json(&json!({"title": "Defaced"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 403).await;
    assert_eq!(stored(&app, id).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_an_unknown_news_id_is_404() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    // Act
    let response = app
        .authed(
            Method::PATCH,
            &format!("/news/{}", uuid::Uuid::new_v4()),
            &token,
        )
        .json(&json!({"title": "T"}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 404).await;
}

/// Patches news item `id` with `body` and asserts a 422 naming `field` that changed nothing.
async fn assert_patch_refused(app: &TestApp, token: &str, id: &str, body: &Value, field: &str) {
    let before = stored(app, id).await;
    let response = app
        .authed(Method::PATCH, &format!("/news/{id}"), token)
        .json(body)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422).await;
    assert_eq!(field_names(&problem), [field], "{body}");
    assert_eq!(stored(app, id).await, before, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_with_an_empty_title_is_422_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act + Assert
    assert_patch_refused(&app, &token, id, &json!({"title": ""}), "title").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_with_an_unknown_field_is_422_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();
    let body = json!({"title": "T", "author_id": uuid::Uuid::new_v4()});

    // Act + Assert
    assert_patch_refused(&app, &token, id, &body, "author_id").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_with_a_null_title_is_422_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();

    // Act + Assert
    assert_patch_refused(&app, &token, id, &json!({"title": null}), "title").await;
}

// ---------------------------------------------------------------------------------------------
// DELETE /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_news_is_204_and_then_getting_it_is_404() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, news) = author_with_news(&app).await;
    let path = format!("/news/{}", news["id"].as_str().unwrap());

    // Act
    let response = app
        .authed(Method::DELETE, &path, &token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(news_rows(&app).await, 0);
    let again = app.authed(Method::GET, &path, &token).send().await.unwrap();
    assert_problem(again, 404).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_another_users_news_is_403_and_keeps_it() {
    // Arrange
    let app = spawn_app().await;
    let (_, _, news) = author_with_news(&app).await;
    let id = news["id"].as_str().unwrap();
    let (_, intruder) = app.new_user("intruder@example.com").await;

    // Act
    let response = app
        .authed(Method::DELETE, &format!("/news/{id}"), &intruder)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 403).await;
    let kept = db_count(
        &app,
        &format!("SELECT count(*) FROM news WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(kept, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_unknown_news_id_is_404() {
    // Arrange
    let app = spawn_app().await;
    let (_, token, _) = author_with_news(&app).await;

    // Act
    let response = app
        .authed(
            Method::DELETE,
            &format!("/news/{}", uuid::Uuid::new_v4()),
            &token,
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 404).await;
    assert_eq!(news_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_news_without_a_token_is_401_and_keeps_it() {
    // Arrange
    let app = spawn_app().await;
    let (_, _, news) = author_with_news(&app).await;

    // Act
    let response = app
        .request(
            Method::DELETE,
            &format!("/news/{}", news["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(response, 401).await;
    assert_eq!(news_rows(&app).await, 1);
}
