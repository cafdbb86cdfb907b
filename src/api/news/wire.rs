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

/// How many news match.
#[derive(Debug, Object)]
pub struct NewsCount {
    /// The number of news.
    pub count: i64,
}
