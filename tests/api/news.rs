//! News: create, list (keyset pages, search, filters), count, get, replace, patch, delete.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, RequestBuilder, Response, header};
use serde_json::{Value, json};

use crate::helpers::{
    AuthorWithNews, ORIGINAL_DATE, TestApp, all_news, assert_problem, assert_problem_for,
    author_with_news, db_execute, db_text, error_fields, json_of, news_rows, spawn_app,
    spawn_app_with, stored_news, www_authenticate,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Distinct instants an hour apart, from [`ORIGINAL_DATE`], as the wire writes them.
fn instant(hours: i64) -> String {
    let base = DateTime::parse_from_rfc3339(ORIGINAL_DATE)
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
async fn creating_news_with_a_field_that_breaks_its_rule_is_422_naming_it_and_creates_nothing() {
    // Arrange: each case breaks one rule of one field and is refused before anything is stored,
    // so the cases can share one app
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for (case, body, field) in [
        (
            "an empty title",
            json!({"title": "", "body": "Body"}),
            "title",
        ),
        (
            "a blank title",
            json!({"title": " \t\n ", "body": "Body"}),
            "title",
        ),
        (
            "a title of 201 characters",
            json!({"title": "t".repeat(201), "body": "Body"}),
            "title",
        ),
        (
            "an empty body",
            json!({"title": "Title", "body": ""}),
            "body",
        ),
        (
            "a body of 100001 characters",
            json!({"title": "Title", "body": "b".repeat(100_001)}),
            "body",
        ),
        (
            "an unknown field",
            json!({"title": "Title", "body": "Body", "author_id": uuid::Uuid::new_v4()}),
            "author_id",
        ),
        (
            "a number for a title",
            json!({"title": 5, "body": "Body"}),
            "title",
        ),
        (
            "a date_created that is not a date",
            json!({"title": "Title", "body": "Body", "date_created": "yesterday"}),
            "date_created",
        ),
        // JSON allows U+0000 in a string; PostgreSQL's text does not: a 422, not a 500
        (
            "a NUL character in the title",
            json!({"title": "Nul\u{0}byte", "body": "Body"}),
            "title",
        ),
        (
            "a NUL character in the body",
            json!({"title": "Title", "body": "Nul\u{0}byte"}),
            "body",
        ),
    ] {
        // Act
        let response = post_news(&app, &token, &body).await;

        // Assert
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(error_fields(&problem), [field], "{case}");
        assert_eq!(news_rows(&app).await, 0, "{case}: nothing stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_news_from_a_body_that_is_not_json_is_400_or_415_and_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for (case, content_type, body, status) in [
        (
            "malformed JSON",
            Some("application/json"),
            r#"{"title":"#,
            400,
        ),
        (
            "no content type",
            None,
            r#"{"title":"Title","body":"Body"}"#,
            415,
        ),
        (
            "text/plain",
            Some("text/plain"),
            r#"{"title":"Title","body":"Body"}"#,
            415,
        ),
    ] {
        let mut request = app.authed(Method::POST, "/news", &token).body(body);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }

        // Act
        let response = request.send().await.unwrap();

        // Assert
        assert_problem_for(response, status, case).await;
        assert_eq!(news_rows(&app).await, 0, "{case}: nothing stored");
    }
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
async fn searching_for_a_nul_character_is_400_not_a_500() {
    // Arrange: no stored text can hold U+0000, and PostgreSQL could not take it as a parameter
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    create_dated(&app, &token, &[0]).await;

    // Act
    let response = list_response(&app, &token, &[("q", "nul\u{0}byte")]).await;

    // Assert
    assert_problem(response, 400).await;
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
async fn listing_news_with_a_limit_of_0_or_101_is_400() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;

    for limit in ["0", "101", "-1"] {
        // Act
        let response = list_response(&app, &token, &[("limit", limit)]).await;

        // Assert
        assert_problem_for(response, 400, &format!("limit={limit}")).await;
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
        assert_problem_for(response, 400, &format!("{name}={value}")).await;
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
        assert_problem_for(response, 400, &format!("cursor={cursor:?}")).await;
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
    let count = async |query: &[(&str, &str)]| -> Value { count_of(&app, &ada_token, query).await };

    // Act + Assert: every count is below COUNT_EXACT_LIMIT's default, so exact.
    let exactly = |count: i64| json!({"count": count, "exact": true});
    assert_eq!(count(&[]).await, exactly(3));
    assert_eq!(count(&[("q", "rust")]).await, exactly(2));
    assert_eq!(count(&[("author_id", &ada)]).await, exactly(2));
    assert_eq!(count(&[("created_after", &t1)]).await, exactly(2));
    assert_eq!(count(&[("created_before", &t1)]).await, exactly(0));
    assert_eq!(
        count(&[("q", "rust"), ("author_id", &ada)]).await,
        exactly(1)
    );
}

/// The body of a `GET /news/count` with `query`, which must be a 200.
async fn count_of(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Value {
    let response = app
        .authed(Method::GET, "/news/count", token)
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query:?}");
    response.json::<Value>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_above_the_exact_limit_are_estimates_that_say_so_and_never_fall_below_it() {
    // Arrange: a limit of 2, three news about rust by ada and one about cooking by bob.
    let app = spawn_app_with(&[("COUNT_EXACT_LIMIT", "2")]).await;
    let (ada, ada_token) = app.new_user("ada@example.com").await;
    let (bob, bob_token) = app.new_user("bob@example.com").await;
    for day in 1..=3 {
        app.create_news(
            &ada_token,
            &json!({"title": "Rust news", "body": "Text", "date_created": instant(day)}),
        )
        .await;
    }
    app.create_news(
        &bob_token,
        &json!({"title": "Cooking", "body": "Text", "date_created": instant(4)}),
    )
    .await;
    // Statistics, as autovacuum would gather them on a real table: a table never analysed has
    // estimates guessed from its size on disk, far above four rows, and a count whose estimate
    // is well above the limit is not counted.
    db_execute(&app, "ANALYZE news").await;
    let (t1, t4) = (instant(1), instant(4));

    // Act + Assert: up to the limit (2 included), exact.
    for (query, expected) in [
        (vec![("author_id", bob.as_str())], 1),
        (vec![("q", "rust"), ("created_after", &t1)], 2),
        (vec![("author_id", &ada), ("created_before", &t1)], 0),
        (vec![("q", "cooking")], 1),
    ] {
        let body = count_of(&app, &ada_token, &query).await;
        assert_eq!(body, json!({"count": expected, "exact": true}), "{query:?}");
    }
    // Beyond it, an estimate: marked as one, and at least the limit + 1 that were counted.
    for query in [
        vec![],
        vec![("q", "rust")],
        vec![("author_id", ada.as_str())],
        vec![("q", "rust"), ("author_id", &ada), ("created_before", &t4)],
    ] {
        let body = count_of(&app, &ada_token, &query).await;
        assert_eq!(body["exact"], false, "{query:?}: {body}");
        assert!(body["count"].as_i64().unwrap() >= 3, "{query:?}: {body}");
    }
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
        assert_problem_for(response, 400, &format!("{name}={value}")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// GET /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn getting_a_news_item_returns_it_to_any_signed_in_user() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        author_id,
        id,
        news,
        ..
    } = author_with_news(&app).await;
    let (_, reader_token) = app.new_user("reader@example.com").await;

    // Act
    let response = app
        .authed(Method::GET, &format!("/news/{id}"), &reader_token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched, news);
    assert_eq!(fetched["author_id"], author_id.as_str());
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

// ---------------------------------------------------------------------------------------------
// PUT /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_news_changes_title_and_body_keeps_date_created_and_advances_date_updated() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        author_id,
        token,
        id,
        news,
        ..
    } = author_with_news(&app).await;

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
    assert_eq!(replaced["author_id"], author_id.as_str());
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
    let AuthorWithNews { token, id, .. } = author_with_news(&app).await;

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

// ---------------------------------------------------------------------------------------------
// PATCH /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn patching_news_changes_only_the_given_fields() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews {
        token, id, news, ..
    } = author_with_news(&app).await;

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
    let AuthorWithNews { token, id, .. } = author_with_news(&app).await;

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
async fn replacing_or_patching_with_a_field_that_breaks_its_rule_is_422_naming_it_and_changes_nothing()
 {
    // Arrange: every case is refused before anything is written, so the cases can share one item
    let app = spawn_app().await;
    let AuthorWithNews { token, id, .. } = author_with_news(&app).await;
    let before = stored_news(&app, &id).await;

    for (case, method, body, field) in [
        (
            "PUT without a body field",
            Method::PUT,
            json!({"title": "Only a title"}),
            "body",
        ),
        (
            "PATCH with an empty title",
            Method::PATCH,
            json!({"title": ""}),
            "title",
        ),
        (
            "PATCH with an unknown field",
            Method::PATCH,
            json!({"title": "T", "author_id": uuid::Uuid::new_v4()}),
            "author_id",
        ),
        (
            "PATCH with a null title",
            Method::PATCH,
            json!({"title": null}),
            "title",
        ),
    ] {
        // Act
        let response = app
            .authed(method, &format!("/news/{id}"), &token)
            .json(&body)
            .send()
            .await
            .unwrap();

        // Assert
        let problem = assert_problem_for(response, 422, case).await;
        assert_eq!(error_fields(&problem), [field], "{case}");
        assert_eq!(
            stored_news(&app, &id).await,
            before,
            "{case}: nothing changed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// DELETE /news/{id}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_news_is_204_and_then_getting_it_is_404() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews { token, id, .. } = author_with_news(&app).await;
    let path = format!("/news/{id}");

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

// ---------------------------------------------------------------------------------------------
// Refusals every news operation shares

/// Every operation on one news item, with a body where it needs one.
fn item_operations() -> Vec<(Method, Option<Value>)> {
    vec![
        (Method::GET, None),
        (
            Method::PUT,
            Some(json!({"title": "Defaced", "body": "Defaced"})),
        ),
        (Method::PATCH, Some(json!({"title": "Defaced"}))),
        (Method::DELETE, None),
    ]
}

/// `request` with `body` as JSON, if there is one.
fn with_body(request: RequestBuilder, body: Option<Value>) -> RequestBuilder {
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_news_operation_without_a_token_is_401_with_a_bearer_challenge_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews { id, .. } = author_with_news(&app).await;
    let before = all_news(&app).await;
    let collection = [
        (
            Method::POST,
            "/news".to_string(),
            Some(json!({"title": "Title", "body": "Body"})),
        ),
        (Method::GET, "/news".to_string(), None),
        (Method::GET, "/news/count".to_string(), None),
    ];
    let item = item_operations()
        .into_iter()
        .map(|(method, body)| (method, format!("/news/{id}"), body));

    for (method, path, body) in collection.into_iter().chain(item) {
        let case = format!("{method} {path}");

        // Act
        let response = with_body(app.request(method, &path), body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(
            www_authenticate(&response).as_deref(),
            Some("Bearer"),
            "{case}: a bare challenge"
        );
        assert_problem_for(response, 401, &case).await;
        assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_on_an_unknown_news_id_is_404_and_changes_nothing() {
    // Arrange: an item exists, so that a write to the unknown id that hit it would show
    let app = spawn_app().await;
    let AuthorWithNews { token, .. } = author_with_news(&app).await;
    let before = all_news(&app).await;
    let path = format!("/news/{}", uuid::Uuid::new_v4());

    for (method, body) in item_operations() {
        let case = format!("{method} of an unknown id");

        // Act
        let response = with_body(app.authed(method, &path, &token), body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem_for(response, 404, &case).await;
        assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_to_another_users_news_is_403_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let AuthorWithNews { id, .. } = author_with_news(&app).await;
    let (_, intruder) = app.new_user("intruder@example.com").await;
    let before = all_news(&app).await;
    let path = format!("/news/{id}");

    for (method, body) in item_operations() {
        if method == Method::GET {
            continue; // any signed-in user may read any news
        }
        let case = format!("{method} of another user's news");

        // Act
        let response = with_body(app.authed(method, &path, &intruder), body)
            .send()
            .await
            .unwrap();

        // Assert
        assert_problem_for(response, 403, &case).await;
        assert_eq!(all_news(&app).await, before, "{case}: nothing changed");
    }
}
