//! News: create, list (keyset pages, full-text search, filters), count, get, replace, patch, delete.
//! The operations are here; their wire types are in [`wire`], their responses in [`responses`].

mod responses;
mod wire;

use chrono::{DateTime, Utc};
use poem::{Request, web::Data};
use poem_openapi::{
    OpenApi,
    param::{Header, Path, Query},
};
use uuid::Uuid;

pub use self::wire::News;
use self::{
    responses::{
        BulkErrors, BulkResponse, CountResponse, CreateErrors, CreateResponse, DeleteErrors,
        DeleteResponse, GetErrors, GetResponse, ListErrors, PageResponse, ReplaceResponse,
        UpdateResponse, WriteErrors,
    },
    wire::{
        MAX_PAGE_BYTES, NewsCount, NewsInput, NewsOrder, NewsPage, NewsPatch, PAGE_ENVELOPE_BYTES,
        json_size_bound,
    },
};
use super::{
    ApiTags, AppState, ClaimedSession, CurrentUser, Db, Errors, Json, JsonBody, JsonBytes, ReadDb,
    SharedState, idempotency, session_ended,
};
use crate::{
    db::{
        idempotency::{self as db_idempotency, StoredResponse},
        news::{self as db_news, NewsChanges, NewsFilter, NewsRow, WriteOutcome, Writer},
        sessions::{self as db_sessions, SessionRead},
    },
    domain::{
        Cursor, NewsDraft, RequestFingerprint, Role, SortOrder, TagCondition, Timestamp, entity_tag,
    },
    error::ApiError,
};

fn default_limit() -> i32 {
    20
}

/// News items.
pub struct NewsApi;

// The filter parameters (`q`, `author_id`, `created_after`, `created_before`) are declared on each
// operation that takes them: poem-openapi 5 cannot share a group of query parameters
// (poem-web/poem#432). `news_filter` reads them the same way for all three.
#[OpenApi(tag = "ApiTags::News")]
impl NewsApi {
    /// List news, newest first, one page at a time
    ///
    /// Keyset pagination: pass `next_cursor` from one page as `cursor` to get the next, with the
    /// same filters and order. Pages stay stable while other clients insert news.
    ///
    /// A page holds at most `limit` items, and fewer when one more would make its JSON larger than
    /// 1 MiB (1 048 576 bytes), like DynamoDB's 1 MB pages; then `next_cursor` leads on from the
    /// last item it holds, so nothing is skipped. A page holds at least one item whenever one
    /// matches. A short page is not the end of the list: a null `next_cursor` is.
    // Without a search or a read replica, the session is checked in the statement that reads the
    // page (decision D10); a search is planned anew each time, where the extra subquery costs more
    // than the round trip it saves (D5), and a replica's reader is checked on the primary.
    #[oai(path = "/news", method = "get", operation_id = "listNews")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn list(
        &self,
        claimed: ClaimedSession,
        mut db: ReadDb,
        /// The most items on the page; fewer when more would exceed 1 MiB of JSON
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
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0);
        // The validator keeps `limit` within 1..=100.
        let limit = u32::try_from(limit.0).unwrap_or(1);
        let session = claimed.session();
        let read = if db.on_replica() || filter.text.is_some() {
            if db
                .primary(async |c| db_sessions::is_live(c, session).await)
                .await?
            {
                SessionRead::Found(
                    db.run(async |c| db_news::list_page(c, &filter, order, limit, after).await)
                        .await?,
                )
            } else {
                SessionRead::Ended
            }
        } else {
            db.run(async |c| {
                db_news::list_page_in_session(c, &filter, order, limit, after, session).await
            })
            .await?
        };
        // A page is never `Missing`: an empty one is `Found`.
        let page = ClaimedSession::verdict(read, session_ended())?
            .within(MAX_PAGE_BYTES - PAGE_ENVELOPE_BYTES, json_size_bound);
        Ok(PageResponse::Ok(Json(NewsPage {
            items: page.rows.into_iter().map(News::from).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        })))
    }

    /// Publish a news item
    ///
    /// The signed-in user becomes its author. `date_created` defaults to now.
    ///
    /// With an `Idempotency-Key` the request may be retried safely (IETF httpapi
    /// idempotency-key draft): the first request with a key creates the item and its response is
    /// kept for 24 hours; a retry with the same key and the same request gets that response again,
    /// byte for byte, with `Idempotent-Replayed: true`, and creates nothing. Keys are the signed-in
    /// user's own. The same key with another request is 422; a retry while the first request is
    /// still running is 409. Only a created item uses up a key: a request that fails (4xx, 503)
    /// leaves its key free to be tried again.
    #[oai(path = "/news", method = "post", operation_id = "createNews")]
    async fn create(
        &self,
        state: Data<&SharedState>,
        req: &Request,
        user: CurrentUser,
        mut db: Db,
        /// Makes the request safe to retry: 1 to 255 visible ASCII characters (a UUID will do), as
        /// the draft's quoted string (`"…"`) or bare; both forms name the same key. No `"` or `\`
        /// inside. Kept for 24 hours per user; anything else is 400
        #[oai(
            name = "Idempotency-Key",
            validator(pattern = r#"^("[!#-\[\]-~]{1,255}"|[!#-\[\]-~]{1,255})$"#)
        )]
        #[expect(unused_variables, reason = "declares the header; `key_of` reads it")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<NewsInput>,
    ) -> Result<CreateResponse, Errors<CreateErrors>> {
        may_write(&state, &user)?;
        let key = idempotency::key_of(req)?;
        let draft = body.0.parse()?;
        let (stored, replayed) = match key {
            None => {
                let row = db
                    .run(async |c| db_news::insert_news(c, user.id, draft).await)
                    .await?;
                (created(&row)?, false)
            }
            Some(key) => {
                let fingerprint = fingerprint(&draft);
                let outcome = db
                    .run(async |c| {
                        db_idempotency::create_news_once(
                            c,
                            user.id,
                            &key,
                            fingerprint,
                            draft,
                            |row| {
                                // Encoding a row as JSON does not fail; if it did, it would be a 500.
                                created(row).map_err(|e| {
                                    diesel::result::Error::SerializationError(Box::new(e))
                                })
                            },
                        )
                        .await
                    })
                    .await?;
                idempotency::answer(outcome)?
            }
        };
        Ok(CreateResponse::Created(
            JsonBytes::from_encoded(stored.body),
            stored.location.unwrap_or_default(),
            stored.etag.unwrap_or_default(),
            replayed.then(|| "true".to_string()),
        ))
    }

    /// Count the news that match the filters
    #[oai(path = "/news/count", method = "get", operation_id = "countNews")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn count(
        &self,
        state: Data<&SharedState>,
        _user: CurrentUser,
        mut db: ReadDb,
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
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0);
        let limit = state.count_exact_limit;
        let db_news::Count { count, exact } = db
            .run(async |c| db_news::count_news(c, &filter, limit).await)
            .await?;
        Ok(CountResponse::Ok(Json(NewsCount { count, exact })))
    }

    /// Get one news item
    // Without a read replica, the session is checked in the statement that reads the item (see
    // `ClaimedSession`, decision D5). With one, the session is checked on the primary first (a
    // sign-out takes effect at once, whatever the replica's lag), the item is read from the
    // replica, and an item the replica does not have (yet) is looked for on the primary, so an
    // item just created is never a 404.
    #[oai(path = "/news/:id", method = "get", operation_id = "getNews")]
    async fn get(
        &self,
        claimed: ClaimedSession,
        mut db: ReadDb,
        /// The news item's id
        id: Path<Uuid>,
        /// Answer 304 if the news item still has one of these entity tags (RFC 9110)
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<GetResponse, Errors<GetErrors>> {
        let session = claimed.session();
        let read = if db.on_replica() {
            if !db
                .primary(async |c| db_sessions::is_live(c, session).await)
                .await?
            {
                SessionRead::Ended
            } else if let Some(row) = db.run(async |c| db_news::find_news(c, id.0).await).await? {
                SessionRead::Found(row)
            } else {
                db.primary(async |c| db_news::find_news_in_session(c, id.0, session).await)
                    .await?
            }
        } else {
            db.run(async |c| db_news::find_news_in_session(c, id.0, session).await)
                .await?
        };
        let news = ClaimedSession::verdict(read, ApiError::NotFound("no news item with this id"))?;
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
        user: CurrentUser,
        db: Db,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<NewsInput>,
    ) -> Result<ReplaceResponse, Errors<WriteErrors>> {
        may_write(&state, &user)?;
        let changes = NewsChanges::from(body.0.parse()?);
        let (news, tag) = write(user, db, id.0, if_match.0.as_deref(), &changes).await?;
        Ok(ReplaceResponse::Ok(Json(news), tag))
    }

    /// Change some fields of a news item
    ///
    /// Changes only the fields given. Only the author may change a news item.
    #[oai(path = "/news/:id", method = "patch", operation_id = "updateNews")]
    async fn update(
        &self,
        state: Data<&SharedState>,
        user: CurrentUser,
        db: Db,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<NewsPatch>,
    ) -> Result<UpdateResponse, Errors<WriteErrors>> {
        may_write(&state, &user)?;
        let changes = NewsChanges::from(body.0.parse()?);
        let (news, tag) = write(user, db, id.0, if_match.0.as_deref(), &changes).await?;
        Ok(UpdateResponse::Ok(Json(news), tag))
    }

    /// Delete a news item
    ///
    /// Only the author may delete a news item.
    #[oai(path = "/news/:id", method = "delete", operation_id = "deleteNews")]
    async fn delete(
        &self,
        state: Data<&SharedState>,
        user: CurrentUser,
        mut db: Db,
        /// The news item's id
        id: Path<Uuid>,
        /// Change only if the news item still has one of these entity tags (RFC 9110); else 412
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<DeleteResponse, Errors<DeleteErrors>> {
        may_write(&state, &user)?;
        let versions = expected_versions(if_match.0.as_deref());
        let outcome = db
            .run(async |c| db_news::delete_news(c, id.0, writer(user), versions.as_deref()).await)
            .await?;
        written(outcome)?;
        Ok(DeleteResponse::Deleted)
    }

    /// Change some fields of every news item that matches (admins only)
    ///
    /// The bulk update of the original `PATCH /news-models?where=`: the list's filters select the
    /// news, the body's fields are set on all of them. Only admins may use it.
    #[oai(path = "/news", method = "patch", operation_id = "bulkUpdateNews")]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per query parameter"
    )]
    async fn bulk_update(
        &self,
        state: Data<&SharedState>,
        user: CurrentUser,
        mut db: Db,
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
    ) -> Result<BulkResponse, Errors<BulkErrors>> {
        may_write(&state, &user)?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden("only admins may change news in bulk").into());
        }
        let filter = news_filter(q.0, author_id.0, created_after.0, created_before.0);
        let changes = NewsChanges::from(body.0.parse()?);
        let count = db
            .run(async |c| db_news::update_matching(c, &filter, &changes).await)
            .await?;
        Ok(BulkResponse::Ok(Json(NewsCount {
            count: i64::try_from(count).unwrap_or(i64::MAX),
            exact: true,
        })))
    }
}

/// The response to a create, as sent and as recorded for an `Idempotency-Key`.
fn created(row: &NewsRow) -> Result<StoredResponse, ApiError> {
    Ok(StoredResponse {
        status: 201,
        body: JsonBytes::encode(&News::from(row.clone()))?.into_bytes(),
        location: Some(format!("/news/{}", row.id)),
        etag: Some(entity_tag(row.version)),
    })
}

/// What makes two creates the same request: the operation and the draft as parsed (so spacing
/// and key order in the JSON do not matter, and a left-out `date_created` is not a date).
fn fingerprint(draft: &NewsDraft) -> RequestFingerprint {
    let date = draft.date_created.map(|date| {
        date.get()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    });
    RequestFingerprint::of(&[
        b"POST /news",
        draft.title.as_str().as_bytes(),
        draft.body.as_str().as_bytes(),
        date.as_deref().unwrap_or("-").as_bytes(),
    ])
}

/// The versions an `If-Match` header names; `None` when any version will do.
fn expected_versions(if_match: Option<&str>) -> Option<Vec<i64>> {
    match TagCondition::parse(if_match?, true) {
        TagCondition::Any => None,
        TagCondition::Versions(versions) => Some(versions),
    }
}

/// A guarded write of one news item: the item as written and its new entity tag.
async fn write(
    user: CurrentUser,
    mut db: Db,
    id: Uuid,
    if_match: Option<&str>,
    changes: &NewsChanges,
) -> Result<(News, String), ApiError> {
    let versions = expected_versions(if_match);
    let outcome = db
        .run(async |c| {
            db_news::update_news(c, id, writer(user), versions.as_deref(), changes).await
        })
        .await?;
    let news = written(outcome)?;
    let tag = entity_tag(news.version);
    Ok((news.into(), tag))
}

/// `REQUIRE_VERIFIED_EMAIL`: when it is on, a user whose email is not verified may read news but
/// not create, change or delete any (403, `/problems/email-not-verified`). Every operation that
/// writes news calls this first.
fn may_write(state: &AppState, user: &CurrentUser) -> Result<(), ApiError> {
    if state.accounts.require_verified_email && !user.email_verified {
        return Err(ApiError::EmailNotVerified);
    }
    Ok(())
}

fn writer(user: CurrentUser) -> Writer {
    Writer {
        user_id: user.id,
        role: user.role,
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
) -> NewsFilter {
    // Any instant is a usable bound, even one outside the years a news item may have.
    let instant = |value: Option<DateTime<Utc>>| value.map(|v| Timestamp::bound(v).get());
    NewsFilter {
        text: q,
        author_id,
        created_after: instant(created_after),
        created_before: instant(created_before),
    }
}
