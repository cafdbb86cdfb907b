//! Query-level tests of `db/`: the statements themselves, on a fresh database cloned from the
//! migrated template, without a server in between.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use newsapi::{
    auth::hash_secret_token,
    db::{
        news::{self, NewsChanges, NewsFilter, WriteOutcome, Writer},
        sessions::{self, Rotation},
        tokens::{self, NewToken, Purpose},
        users,
    },
    domain::{Cursor, Email, NewsDraft, NewsEdit, Role, SortOrder},
};
use uuid::Uuid;

use crate::helpers::TestDatabase;

async fn user(conn: &mut AsyncPgConnection, email: &str, role: Role) -> Uuid {
    let email = Email::parse(email).unwrap();
    users::insert_user(conn, &email, None, role, "not a real hash")
        .await
        .unwrap()
        .expect("a new email")
        .id
}

fn draft(title: &str, date_created: DateTime<Utc>) -> NewsDraft {
    NewsDraft::parse(title.into(), "Body".into(), Some(date_created)).unwrap()
}

fn titles(rows: &[news::NewsRow]) -> Vec<&str> {
    rows.iter().map(|row| row.title.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keyset_pages_walk_every_row_once_in_either_order_even_through_ties() {
    // Arrange: five news, two pairs sharing a date_created (ties are broken by id).
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let author = user(&mut conn, "ada@example.com", Role::User).await;
    let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let dates = [0, 1, 1, 2, 2].map(|h| t0 + TimeDelta::hours(h));
    let mut inserted = Vec::new();
    for (i, date) in dates.into_iter().enumerate() {
        let row = news::insert_news(&mut conn, author, draft(&format!("N{i}"), date))
            .await
            .unwrap();
        inserted.push((row.date_created, row.id, row.title));
    }

    for order in [SortOrder::NewestFirst, SortOrder::OldestFirst] {
        let mut expected = inserted.clone();
        expected.sort();
        if order == SortOrder::NewestFirst {
            expected.reverse();
        }
        let expected: Vec<&str> = expected.iter().map(|(_, _, t)| t.as_str()).collect();

        // Act: pages of two.
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = news::list_page(&mut conn, &NewsFilter::default(), order, 2, after)
                .await
                .unwrap();
            pages += 1;
            seen.extend(titles(&page.rows).into_iter().map(str::to_string));
            match page.next {
                Some(cursor) => {
                    assert_eq!(cursor.order, order);
                    after = Some(cursor);
                }
                None => break,
            }
            assert!(pages < 10, "{order:?}: the pages never end");
        }

        // Assert: every row once, in order, in three pages (2 + 2 + 1), the last without a cursor.
        assert_eq!(seen, expected, "{order:?}");
        assert_eq!(pages, 3, "{order:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_that_ends_exactly_at_the_last_row_has_no_next_cursor() {
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let author = user(&mut conn, "ada@example.com", Role::User).await;
    for i in 0..2 {
        news::insert_news(&mut conn, author, draft(&format!("N{i}"), Utc::now()))
            .await
            .unwrap();
    }
    let page = news::list_page(
        &mut conn,
        &NewsFilter::default(),
        SortOrder::NewestFirst,
        2,
        None,
    )
    .await
    .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert!(page.next.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guarded_write_tells_missing_from_not_owner_from_stale_and_bumps_the_version() {
    // Arrange
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let author = user(&mut conn, "ada@example.com", Role::User).await;
    let other = user(&mut conn, "bob@example.com", Role::User).await;
    let admin = user(&mut conn, "root@example.com", Role::Admin).await;
    let item = news::insert_news(&mut conn, author, draft("Original", Utc::now()))
        .await
        .unwrap();
    assert_eq!(item.version, 1);
    let edit =
        |title: &str| NewsChanges::from(NewsEdit::parse(Some(title.into()), None, None).unwrap());
    let as_user = |user_id, role| Writer { user_id, role };

    // Act and assert, case by case, in order (each write that succeeds bumps the version).
    let cases = [
        (
            "a missing row",
            Uuid::now_v7(),
            as_user(author, Role::User),
            None,
            "missing",
        ),
        (
            "someone else's row",
            item.id,
            as_user(other, Role::User),
            None,
            "not owner",
        ),
        (
            "someone else's row at a stale version is still 403",
            item.id,
            as_user(other, Role::User),
            Some(vec![7]),
            "not owner",
        ),
        (
            "the author at a stale version",
            item.id,
            as_user(author, Role::User),
            Some(vec![2]),
            "stale",
        ),
        (
            "the author at the current version",
            item.id,
            as_user(author, Role::User),
            Some(vec![1]),
            "done v2",
        ),
        (
            "an admin, any version",
            item.id,
            as_user(admin, Role::Admin),
            None,
            "done v3",
        ),
    ];
    for (case, id, writer, versions, expected) in cases {
        let outcome = news::update_news(&mut conn, id, writer, versions.as_deref(), &edit(case))
            .await
            .unwrap();
        let got = match outcome {
            WriteOutcome::Done(row) => format!("done v{}", row.version),
            WriteOutcome::Missing => "missing".into(),
            WriteOutcome::NotOwner => "not owner".into(),
            WriteOutcome::Stale => "stale".into(),
        };
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_presented_again_revokes_its_whole_session() {
    // Arrange: a session with its first token.
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let user_id = user(&mut conn, "ada@example.com", Role::User).await;
    let later = Utc::now() + TimeDelta::days(1);
    let (first, second, third) = (
        hash_secret_token("first"),
        hash_secret_token("second"),
        hash_secret_token("third"),
    );
    let (family_id, expires_at) = sessions::start_session(
        &mut conn,
        user_id,
        later,
        &first,
        later + TimeDelta::days(1),
    )
    .await
    .unwrap();
    assert_eq!(expires_at, later, "a token never outlives its session");

    // Act: rotate once, then present the spent token again (no reuse interval), then the new one.
    let rotated = sessions::rotate(&mut conn, &first, &second, later, Duration::ZERO)
        .await
        .unwrap();
    let reused = sessions::rotate(&mut conn, &first, &third, later, Duration::ZERO)
        .await
        .unwrap();
    let after_reuse = sessions::rotate(&mut conn, &second, &third, later, Duration::ZERO)
        .await
        .unwrap();

    // Assert
    assert!(
        matches!(rotated, Rotation::Rotated { family_id: f, .. } if f == family_id),
        "{rotated:?}"
    );
    assert!(matches!(reused, Rotation::Reused), "{reused:?}");
    assert!(
        matches!(after_reuse, Rotation::Invalid),
        "the newest token dies with its session: {after_reuse:?}"
    );
    let unknown = sessions::rotate(
        &mut conn,
        &hash_secret_token("never issued"),
        &third,
        later,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(matches!(unknown, Rotation::Invalid), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_taken_in_another_letter_case_is_refused_without_an_error() {
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    user(&mut conn, "Ada@Example.com", Role::User).await;
    let again = users::insert_user(
        &mut conn,
        &Email::parse("ada@EXAMPLE.com").unwrap(),
        None,
        Role::User,
        "hash",
    )
    .await
    .unwrap();
    assert!(again.is_none());
    let promoted = users::set_role(
        &mut conn,
        &Email::parse("ADA@example.com").unwrap(),
        Role::Admin,
    )
    .await
    .unwrap();
    assert!(promoted);
    let nobody = users::set_role(
        &mut conn,
        &Email::parse("bob@example.com").unwrap(),
        Role::Admin,
    )
    .await
    .unwrap();
    assert!(!nobody);

    // Another spelling of one canonical email: U+0130 and U+212A KELVIN SIGN.
    user(&mut conn, "\u{130}ris@example.com", Role::User).await;
    for spelling in [
        "iris@example.com",
        "IRIS@Example.com",
        "I\u{307}ris@example.com",
    ] {
        let again = users::insert_user(
            &mut conn,
            &Email::parse(spelling).unwrap(),
            None,
            Role::User,
            "hash",
        )
        .await
        .unwrap();
        assert!(again.is_none(), "{spelling}");
    }
    user(&mut conn, "kelvin@example.com", Role::User).await;
    let promoted = users::set_role(
        &mut conn,
        &Email::parse("\u{212A}ELVIN@example.com").unwrap(),
        Role::Admin,
    )
    .await
    .unwrap();
    assert!(promoted);
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_from_before_canonical_emails_get_theirs_at_start_up_and_the_older_keeps_a_clash()
{
    // Arrange: rows as the previous version wrote them, without `email_canonical`; ids are UUID
    // v7, in order of creation.
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let rows = [
        (
            "0190a000-0000-7000-8000-000000000001",
            "\u{130}ris@Example.com",
        ),
        (
            "0190a000-0000-7000-8000-000000000002",
            "STRASSE@example.com",
        ),
        (
            "0190a000-0000-7000-8000-000000000003",
            "stra\u{df}e@example.com",
        ),
        ("0190a000-0000-7000-8000-000000000004", "ada@example.com"),
    ];
    for (id, email) in rows {
        diesel::sql_query("INSERT INTO users (id, email) VALUES ($1::uuid, $2)")
            .bind::<diesel::sql_types::Text, _>(id)
            .bind::<diesel::sql_types::Text, _>(email)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    // Act: what every start-up does
    newsapi::db::migrate(db.connect().await).await.unwrap();
    newsapi::db::migrate(db.connect().await).await.unwrap();

    // Assert
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        email_canonical: Option<String>,
    }
    let canonical: Vec<Option<String>> =
        diesel::sql_query("SELECT email_canonical FROM users ORDER BY id")
            .load::<Row>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.email_canonical)
            .collect();
    assert_eq!(
        canonical,
        [
            Some("iris@example.com".to_string()),
            Some("strasse@example.com".to_string()),
            None,
            Some("ada@example.com".to_string()),
        ],
        "the newer of two accounts with one canonical email is left without it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_token_supersedes_the_older_and_expired_ones_are_cleaned_up() {
    // Arrange
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    let ada = user(&mut conn, "ada@example.com", Role::User).await;
    let bob = user(&mut conn, "bob@example.com", Role::User).await;
    let later = Utc::now() + TimeDelta::minutes(30);
    let earlier = Utc::now() - TimeDelta::seconds(1);
    for (user_id, token, expires_at) in [
        (ada, "first", later),
        (ada, "second", later),
        (bob, "bob's", earlier),
    ] {
        let hash = hash_secret_token(token);
        tokens::issue(
            &mut conn,
            NewToken {
                hash: &hash,
                user_id,
                purpose: Purpose::PasswordReset,
                expires_at,
                email_canonical: None,
                new_email: None,
            },
        )
        .await
        .unwrap();
    }

    // Act
    let deleted = tokens::delete_expired(&mut conn).await.unwrap();

    // Assert: bob's expired token went; ada's first was superseded by her second, which works once.
    assert_eq!(deleted, 1);
    let take = async |conn: &mut AsyncPgConnection, t: &str| {
        tokens::take(conn, &hash_secret_token(t), Purpose::PasswordReset)
            .await
            .unwrap()
            .map(|taken| taken.user_id)
    };
    assert_eq!(take(&mut conn, "first").await, None, "superseded");
    assert_eq!(take(&mut conn, "bob's").await, None, "expired, deleted");
    assert_eq!(take(&mut conn, "second").await, Some(ada));
    assert_eq!(take(&mut conn, "second").await, None, "used");
}
