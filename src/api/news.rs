//! News: create, list (keyset pages, full-text search, filters), count, get, replace, patch, delete.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    ApiTags, BearerAuth, BearerToken, Errors, Json, JsonBody, SharedState, body::present,
    errors::error_statuses,
};
use crate::{
    db::{
        news::{
            self as db_news, NewsChanges, NewsFilter, NewsRow, PageRequest, WriteOutcome, Writer,
        },
        sessions::SessionRead,
        users::UserRow,
    },
    domain::{
        Cursor, NewsBody, NewsDraft, NewsEdit, NewsTitle, Role, SortOrder, TagCondition, Timestamp,
        entity_tag,
    },
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

// Titles and bodies (`pattern` in the spec, checked by `domain::check_text`): at least one
// character that is not white space (`char::is_whitespace`, spelt out since regex dialects
// disagree on `\s`), and no NUL, which PostgreSQL's `text` cannot store.

/// A new news item, or the full replacement of one.
#[derive(Debug, Deserialize, Object)]
pub struct NewsInput {
    /// Not blank (some character that is not white space), and no NUL character
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    ))]
    pub title: String,
    /// Not blank (some character that is not white space), and no NUL character
    #[oai(validator(
        min_length = 1,
        max_length = 100000,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    ))]
    pub body: String,
    /// Defaults to now on create; kept as it is on replace when left out. Between the years 0000
    /// and 9999 in UTC (an offset can move a date-time on the first or last day out of them).
    #[serde(default, deserialize_with = "present")]
    pub date_created: Option<DateTime<Utc>>,
}

/// The fields to change; the others stay as they are.
#[derive(Debug, Deserialize, Object)]
pub struct NewsPatch {
    /// Not blank (some character that is not white space), and no NUL character
    #[serde(default, deserialize_with = "present")]
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    ))]
    pub title: Option<String>,
    /// Not blank (some character that is not white space), and no NUL character
    #[serde(default, deserialize_with = "present")]
    #[oai(validator(
        min_length = 1,
        max_length = 100000,
        pattern = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$"
    ))]
    pub body: Option<String>,
    /// A new creation date, between the years 0000 and 9999 in UTC.
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

#[derive(ApiResponse)]
enum CreateResponse {
    /// The new news item
    #[oai(status = 201)]
    Created(
        Json<News>,
        /// The URL of the new news item
        #[oai(header = "Location")]
        String,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The news item
    #[oai(status = 200)]
    Ok(
        Json<News>,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
    /// The news item has not changed since the tag given in `If-None-Match`
    #[oai(status = 304)]
    NotModified(
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
enum WriteResponse {
    /// The news item as written
    #[oai(status = 200)]
    Ok(
        Json<News>,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
enum PageResponse {
    /// One page of news
    #[oai(status = 200)]
    Ok(Json<NewsPage>),
}

#[derive(ApiResponse)]
enum CountResponse {
    /// How many news match
    #[oai(status = 200)]
    Ok(Json<NewsCount>),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// Deleted
    #[oai(status = 204)]
    Deleted,
}

error_statuses! {
    ListErrors: 400, 401, 500, 503;
    CreateErrors: 400, 401, 413, 415, 422, 500, 503;
    GetErrors: 400, 401, 404, 500, 503;
    WriteErrors: 400, 401, 403, 404, 412, 413, 415, 422, 500, 503;
    BulkErrors: 400, 401, 403, 413, 415, 422, 500, 503;
    DeleteErrors: 400, 401, 403, 404, 412, 500, 503;
}

/// The most items a page holds.
const MAX_LIMIT: u32 = 100;

fn default_limit() -> i32 {
    20
}

/// News items.
pub struct NewsApi;

#[OpenApi(tag = "ApiTags::News")]
impl NewsApi {
    /// List news, newest first, one page at a time
    ///
    /// Keyset pagination: pass `next_cursor` from one page as `cursor` to get the next, with the
    /// same filters and order. Pages stay stable while other clients insert news.
    #[oai(path = "/news", method = "get", operation_id = "listNews")]
    #[allow(clippy::too_many_arguments)] // one argument per query parameter of the spec
    async fn list(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        /// Page size
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<i32>,
        /// `next_cursor` from the previous page; opaque
        #[oai(validator(min_length = 1, max_length = 200))]
        cursor: Query<Option<String>>,
        /// Full-text search over title and body (web-search syntax, English stemming);
        /// no NUL character
        #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))]
        q: Query<Option<String>>,
        /// Only news by this author
        author_id: Query<Option<Uuid>>,
        /// Only news whose `date_created` is later than this instant
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only news whose `date_created` is earlier than this instant
        created_before: Query<Option<DateTime<Utc>>>,
        /// Sort order by `date_created` (ties broken by id)
        #[oai(default)]
        order: Query<NewsOrder>,
    ) -> Result<PageResponse, Errors<ListErrors>> {
        let order = SortOrder::from(order.0);
        let after = cursor
            .0
            .as_deref()
            .map(|c| Cursor::decode(c, order).map_err(|why| ApiError::BadRequest(why.into())))
            .transpose()?;
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0)?;
        let limit = u32::try_from(limit.0).unwrap_or(1).clamp(1, MAX_LIMIT);
        // One row more than the page, to know whether another page follows.
        let page = PageRequest {
            limit: i64::from(limit) + 1,
            ascending: order == SortOrder::OldestFirst,
            after: after.map(|c| (c.date_created, c.id)),
        };
        let mut conn = auth.connection(&state.pool).await?;
        let mut rows = db_news::list_news(&mut conn, &filter, page).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| {
                Cursor {
                    order,
                    date_created: last.date_created,
                    id: last.id,
                }
                .encode()
            })
        } else {
            None
        };
        Ok(PageResponse::Ok(Json(NewsPage {
            items: rows.into_iter().map(News::from).collect(),
            next_cursor,
        })))
    }

    /// Publish a news item
    ///
    /// The signed-in user becomes its author. `date_created` defaults to now.
    #[oai(path = "/news", method = "post", operation_id = "createNews")]
    async fn create(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        body: JsonBody<NewsInput>,
    ) -> Result<CreateResponse, Errors<CreateErrors>> {
        let NewsInput {
            title,
            body,
            date_created,
        } = body.0;
        let draft = NewsDraft::parse(title, body, date_created).map_err(ApiError::invalid)?;
        let now = Timestamp::now().get();
        let row = NewsRow {
            id: Uuid::now_v7(),
            title: draft.title.into_inner(),
            body: draft.body.into_inner(),
            date_created: draft.date_created.map_or(now, Timestamp::get),
            date_updated: now,
            author_id: auth.user.id,
            version: 1,
        };
        let mut conn = auth.connection(&state.pool).await?;
        let news = db_news::insert_news(&mut conn, &row).await?;
        let location = format!("/news/{}", news.id);
        let tag = entity_tag(news.version);
        Ok(CreateResponse::Created(Json(news.into()), location, tag))
    }

    /// Count the news that match the filters
    #[oai(path = "/news/count", method = "get", operation_id = "countNews")]
    async fn count(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        /// Full-text search over title and body (web-search syntax, English stemming);
        /// no NUL character
        #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))]
        q: Query<Option<String>>,
        /// Only news by this author
        author_id: Query<Option<Uuid>>,
        /// Only news whose `date_created` is later than this instant
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only news whose `date_created` is earlier than this instant
        created_before: Query<Option<DateTime<Utc>>>,
    ) -> Result<CountResponse, Errors<ListErrors>> {
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0)?;
        let mut conn = auth.connection(&state.pool).await?;
        let count = db_news::count_news(&mut conn, &filter).await?;
        Ok(CountResponse::Ok(Json(NewsCount { count })))
    }

    /// Get one news item
    #[oai(path = "/news/:id", method = "get", operation_id = "getNews")]
    async fn get(
        &self,
        state: Data<&SharedState>,
        auth: BearerToken,
        /// The news item's id
        id: Path<Uuid>,
        /// Answer 304 if the news item still has one of these entity tags (RFC 9110)
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<GetResponse, Errors<GetErrors>> {
        let mut conn = state.pool.get().await?;
        let news = match db_news::find_news_in_session(&mut conn, id.0, auth.session).await? {
            SessionRead::Found(news) => news,
            SessionRead::Missing => {
                return Err(ApiError::NotFound("no news item with this id").into());
            }
            SessionRead::Ended => return Err(BearerToken::ended().into()),
        };
        let tag = entity_tag(news.version);
        let unchanged = if_none_match
            .0
            .as_deref()
            .is_some_and(|header| TagCondition::parse(header, false).matches(news.version));
        Ok(if unchanged {
            GetResponse::NotModified(tag)
        } else {
            GetResponse::Ok(Json(news.into()), tag)
        })
    }

    /// Replace a news item
    ///
    /// Replaces `title` and `body`; `date_created` is kept when it is left out. Only the author
    /// may replace a news item.
    #[oai(path = "/news/:id", method = "put", operation_id = "replaceNews")]
    async fn replace(
        &self,
        state: Data<&SharedState>,
        auth: BearerAuth,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<NewsInput>,
    ) -> Result<WriteResponse, Errors<WriteErrors>> {
        let NewsInput {
            title,
            body,
            date_created,
        } = body.0;
        let draft = NewsDraft::parse(title, body, date_created).map_err(ApiError::invalid)?;
        let changes = NewsChanges {
            title: Some(draft.title.into_inner()),
            body: Some(draft.body.into_inner()),
            date_created: draft.date_created.map(Timestamp::get),
            date_updated: Some(Timestamp::now().get()),
        };
        write(&state, id.0, auth, if_match.0.as_deref(), &changes).await
    }

    /// Change some fields of a news item
    ///
    /// Changes only the fields given. Only the author may change a news item.
    #[oai(path = "/news/:id", method = "patch", operation_id = "updateNews")]
    async fn update(
        &self,
        state: Data<&SharedState>,
        auth: BearerAuth,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<NewsPatch>,
    ) -> Result<WriteResponse, Errors<WriteErrors>> {
        let changes = patch_changes(body.0)?;
        write(&state, id.0, auth, if_match.0.as_deref(), &changes).await
    }

    /// Delete a news item
    ///
    /// Only the author may delete a news item.
    #[oai(path = "/news/:id", method = "delete", operation_id = "deleteNews")]
    async fn delete(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<DeleteResponse, Errors<DeleteErrors>> {
        let versions = expected_versions(if_match.0.as_deref());
        let mut conn = auth.connection(&state.pool).await?;
        let outcome =
            db_news::delete_news(&mut conn, id.0, writer(&auth.user), versions.as_deref()).await?;
        written(outcome)?;
        Ok(DeleteResponse::Deleted)
    }

    /// Change some fields of every news item that matches (admins only)
    ///
    /// The bulk update of the original `PATCH /news-models?where=`: the list's filters select the
    /// news, the body's fields are set on all of them. Only admins may use it.
    #[oai(path = "/news", method = "patch", operation_id = "bulkUpdateNews")]
    #[allow(clippy::too_many_arguments)] // one argument per query parameter of the spec
    async fn bulk_update(
        &self,
        state: Data<&SharedState>,
        mut auth: BearerAuth,
        /// Full-text search over title and body (web-search syntax, English stemming);
        /// no NUL character
        #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))]
        q: Query<Option<String>>,
        /// Only news by this author
        author_id: Query<Option<Uuid>>,
        /// Only news whose `date_created` is later than this instant
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only news whose `date_created` is earlier than this instant
        created_before: Query<Option<DateTime<Utc>>>,
        body: JsonBody<NewsPatch>,
    ) -> Result<CountResponse, Errors<BulkErrors>> {
        if !writer(&auth.user).is_admin {
            return Err(ApiError::Forbidden("only admins may change news in bulk").into());
        }
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0)?;
        let changes = patch_changes(body.0)?;
        let mut conn = auth.connection(&state.pool).await?;
        let count = db_news::update_matching(&mut conn, &filter, &changes).await?;
        Ok(CountResponse::Ok(Json(NewsCount {
            count: i64::try_from(count).unwrap_or(i64::MAX),
        })))
    }
}

/// The versions an `If-Match` header names; `None` when any version will do.
fn expected_versions(if_match: Option<&str>) -> Option<Vec<i64>> {
    match TagCondition::parse(if_match?, true) {
        TagCondition::Any => None,
        TagCondition::Versions(versions) => Some(versions),
    }
}

/// A guarded write of one news item, answered with the item and its new entity tag.
async fn write(
    state: &SharedState,
    id: Uuid,
    mut auth: BearerAuth,
    if_match: Option<&str>,
    changes: &NewsChanges,
) -> Result<WriteResponse, Errors<WriteErrors>> {
    let versions = expected_versions(if_match);
    let mut conn = auth.connection(&state.pool).await?;
    let outcome = db_news::update_news(
        &mut conn,
        id,
        writer(&auth.user),
        versions.as_deref(),
        changes,
    )
    .await?;
    let news = written(outcome)?;
    let tag = entity_tag(news.version);
    Ok(WriteResponse::Ok(Json(news.into()), tag))
}

fn patch_changes(patch: NewsPatch) -> Result<NewsChanges, ApiError> {
    let NewsPatch {
        title,
        body,
        date_created,
    } = patch;
    let edit = NewsEdit::parse(title, body, date_created).map_err(ApiError::invalid)?;
    Ok(NewsChanges {
        title: edit.title.map(NewsTitle::into_inner),
        body: edit.body.map(NewsBody::into_inner),
        date_created: edit.date_created.map(Timestamp::get),
        date_updated: Some(Timestamp::now().get()),
    })
}

fn writer(user: &UserRow) -> Writer {
    Writer {
        user_id: user.id,
        is_admin: Role::from_stored(&user.role) == Role::Admin,
    }
}

fn written<T>(outcome: WriteOutcome<T>) -> Result<T, ApiError> {
    match outcome {
        WriteOutcome::Done(value) => Ok(value),
        WriteOutcome::Stale => Err(ApiError::PreconditionFailed),
        WriteOutcome::NotOwner => Err(ApiError::Forbidden(
            "only the author may change this news item",
        )),
        WriteOutcome::Missing => Err(ApiError::NotFound("no news item with this id")),
    }
}

fn news_filter(
    q: Option<String>,
    author_id: Option<Uuid>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
) -> Result<NewsFilter, ApiError> {
    // Any instant is a usable bound, even one outside the years a news item may have.
    let instant = |value: Option<DateTime<Utc>>| value.map(|v| Timestamp::bound(v).get());
    if q.as_deref().is_some_and(|q| q.contains('\0')) {
        return Err(ApiError::BadRequest(
            "`q` must not contain a NUL character".into(),
        ));
    }
    Ok(NewsFilter {
        text: q,
        author_id,
        created_after: instant(created_after),
        created_before: instant(created_before),
    })
}
