//! The wire types of the news operations, and their conversions from rows and into domain values.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    api::{body::present, text::Text},
    db::news::NewsRow,
    domain::{NewsBody, NewsDraft, NewsEdit, NewsTitle, SortOrder},
    error::ApiError,
};

/// A news item.
#[derive(Debug, Object)]
pub struct News {
    /// The news item's id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// When it was created (or the date its author gave).
    pub date_created: DateTime<Utc>,
    /// When it was last changed.
    pub date_updated: DateTime<Utc>,
    /// The user who wrote it.
    pub author_id: Uuid,
}

impl From<NewsRow> for News {
    fn from(row: NewsRow) -> Self {
        Self {
            id: row.id,
            title: row.title,
            body: row.body,
            date_created: row.date_created,
            date_updated: row.date_updated,
            author_id: row.author_id,
        }
    }
}

/// A new news item, or the full replacement of one.
#[derive(Debug, Deserialize, Object)]
pub struct NewsInput {
    /// Not blank (some character that is not white space), and no NUL character
    pub title: Text<NewsTitle>,
    /// Not blank (some character that is not white space), and no NUL character
    pub body: Text<NewsBody>,
    /// Defaults to now on create; kept as it is on replace when left out. Between the years 0000
    /// and 9999 in UTC (an offset can move a date-time on the first or last day out of them), and
    /// at most 5 minutes in the future (else 422).
    #[serde(default, deserialize_with = "present")]
    pub date_created: Option<DateTime<Utc>>,
}

/// The fields to change; the others stay as they are.
#[derive(Debug, Deserialize, Object)]
pub struct NewsPatch {
    /// Not blank (some character that is not white space), and no NUL character
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Text<NewsTitle>>,
    /// Not blank (some character that is not white space), and no NUL character
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Text<NewsBody>>,
    /// A new creation date, between the years 0000 and 9999 in UTC, and at most 5 minutes in the
    /// future (else 422).
    #[serde(default, deserialize_with = "present")]
    pub date_created: Option<DateTime<Utc>>,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, Default, Enum)]
#[oai(rename_all = "snake_case")]
pub enum NewsOrder {
    /// Newest first.
    #[default]
    DateCreatedDesc,
    /// Oldest first.
    DateCreatedAsc,
}

impl NewsInput {
    /// The checked draft.
    ///
    /// # Errors
    /// 422 naming every field that breaks its rule.
    pub fn parse(self) -> Result<NewsDraft, ApiError> {
        NewsDraft::parse(
            self.title.into_inner(),
            self.body.into_inner(),
            self.date_created,
        )
        .map_err(ApiError::invalid)
    }
}

impl NewsPatch {
    /// The checked edit.
    ///
    /// # Errors
    /// 422 naming every field given that breaks its rule.
    pub fn parse(self) -> Result<NewsEdit, ApiError> {
        NewsEdit::parse(
            self.title.map(Text::into_inner),
            self.body.map(Text::into_inner),
            self.date_created,
        )
        .map_err(ApiError::invalid)
    }
}

impl From<NewsOrder> for SortOrder {
    fn from(order: NewsOrder) -> Self {
        match order {
            NewsOrder::DateCreatedDesc => Self::NewestFirst,
            NewsOrder::DateCreatedAsc => Self::OldestFirst,
        }
    }
}

/// One page of news.
#[derive(Debug, Object)]
pub struct NewsPage {
    /// The news on this page.
    pub items: Vec<News>,
    /// Pass as `cursor` to get the next page; null on the last page
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// The most bytes of JSON a page of news may take (like DynamoDB's 1 MB pages): a `limit=100`
/// page of long bodies would otherwise be 10 MB and more for a request of 250 bytes.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// What a page's JSON holds besides its items, at most: `{"items":[`, `],"next_cursor":`, a cursor
/// (under 100 characters: base64 of at most 63 bytes) in quotes or `null`, and `}`.
pub const PAGE_ENVELOPE_BYTES: usize = 128;

/// What an item's JSON holds besides the text of its title and body, at most: the braces, six
/// keys with their quotes and colons, two UUIDs, two RFC 3339 date-times (at most 35 characters
/// each), and the comma before the next item.
const ITEM_FIXED_BYTES: usize = 256;

/// How many bytes a news item takes in a page's JSON, at most: its fixed part and the exact
/// escaped length of its title and body.
///
/// This is an upper bound, never an estimate below: a page whose items' bounds fit in
/// [`MAX_PAGE_BYTES`] less [`PAGE_ENVELOPE_BYTES`] is at most [`MAX_PAGE_BYTES`] of JSON. One
/// item is always well below it: 100 000 characters escaped as `\u0001` are 600 000 bytes.
#[must_use]
pub fn json_size_bound(row: &NewsRow) -> usize {
    ITEM_FIXED_BYTES + escaped_len(&row.title) + escaped_len(&row.body)
}

/// The length of `text` as a JSON string's contents, as serde_json and sonic-rs write it: `"` and
/// `\` and the short escapes (`\n`, `\t`, …) take two bytes, other control characters six
/// (`\u001f`), everything else (UTF-8 included) itself.
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\t' | b'\r' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// How many news match.
#[derive(Debug, Object)]
pub struct NewsCount {
    /// The number of news.
    pub count: i64,
    /// Whether `count` is exact. Matches are counted up to the server's `COUNT_EXACT_LIMIT`
    /// (1 000 by default); when there are more, or PostgreSQL estimates more than twice
    /// that many, counting them all would take too long, and `count` is PostgreSQL's
    /// estimate instead (above the limit), with `exact` false. A bulk update's count is
    /// always exact.
    pub exact: bool,
}

#[cfg(test)]
mod tests {
    use poem::IntoResponse;

    use super::*;
    use crate::api::Json;

    fn row(title: &str, body: &str, year: i32) -> NewsRow {
        let instant = chrono::NaiveDate::from_ymd_opt(year, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
            .unwrap()
            .and_utc();
        NewsRow {
            id: Uuid::now_v7(),
            title: title.to_string(),
            body: body.to_string(),
            date_created: instant,
            date_updated: instant,
            author_id: Uuid::now_v7(),
            version: 1,
        }
    }

    async fn encoded_len(rows: Vec<NewsRow>, next_cursor: Option<String>) -> usize {
        let page = NewsPage {
            items: rows.into_iter().map(News::from).collect(),
            next_cursor,
        };
        let body = Json(page).into_response().into_body();
        body.into_vec().await.unwrap().len()
    }

    #[tokio::test]
    async fn the_bound_of_an_item_is_never_below_its_json() {
        let nasty: String = (0_u8..0x80).map(char::from).collect::<String>() + "é😀\u{2028}";
        for (title, body, year) in [
            ("", "", 9999),
            ("T", "B", 0),
            (nasty.as_str(), nasty.as_str(), 2024),
            ("\"\\", &"\u{1}".repeat(1000), 1),
        ] {
            let item = row(title, body, year);
            let bound = json_size_bound(&item);
            let alone = encoded_len(vec![item.clone()], None).await;
            let two = encoded_len(vec![item.clone(), item], None).await;
            // What one more item adds, comma included, is within its bound.
            assert!(two - alone <= bound, "{title:?}: {} > {bound}", two - alone);
            assert!(alone <= bound + PAGE_ENVELOPE_BYTES);
        }
    }

    #[tokio::test]
    async fn the_envelope_holds_the_longest_cursor() {
        let cursor = crate::domain::Cursor {
            order: crate::domain::SortOrder::NewestFirst,
            date_created: row("", "", 9999).date_created,
            id: Uuid::max(),
        }
        .encode();
        let empty = encoded_len(Vec::new(), Some(cursor)).await;
        assert!(empty <= PAGE_ENVELOPE_BYTES, "{empty}");
    }
}
