//! Queries on `news`. Writes that need ownership check it in the same statement as the write.

use chrono::{DateTime, Utc};
use diesel::{
    dsl::{exists, sql},
    expression::{AppearsOnTable, Expression, ValidGrouping},
    pg::Pg,
    prelude::*,
    query_builder::{AstPass, QueryFragment, QueryId},
    sql_types::{BigInt, Bool, Integer, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    schema::news,
    sessions::{SessionRead, SessionRef, is_live, live_session},
};
use crate::domain::{Cursor, NewsBody, NewsDraft, NewsEdit, NewsTitle, Role, SortOrder, Timestamp};

/// A news item as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = news, check_for_backend(diesel::pg::Pg))]
pub struct NewsRow {
    /// Public id (UUID v7).
    pub id: Uuid,
    /// A [`NewsTitle`] when written.
    pub title: String,
    /// A [`NewsBody`] when written.
    pub body: String,
    /// Set by the author or defaulted to the time of creation; the list's sort key.
    pub date_created: DateTime<Utc>,
    /// When it was last written.
    pub date_updated: DateTime<Utc>,
    /// Who wrote it.
    pub author_id: Uuid,
    /// Bumped by every write; the entity tag is made from it.
    pub version: i64,
}

/// The fields a write changes; a field left `None` stays as it is. Built only from checked
/// domain values ([`NewsDraft`], [`NewsEdit`]).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = news)]
pub struct NewsChanges {
    title: Option<String>,
    body: Option<String>,
    date_created: Option<DateTime<Utc>>,
    date_updated: DateTime<Utc>,
}

impl From<NewsDraft> for NewsChanges {
    /// A full replacement: title and body, and `date_created` if the draft sets one.
    fn from(draft: NewsDraft) -> Self {
        Self {
            title: Some(draft.title.into_inner()),
            body: Some(draft.body.into_inner()),
            date_created: draft.date_created.map(Timestamp::get),
            date_updated: Timestamp::now().get(),
        }
    }
}

impl From<NewsEdit> for NewsChanges {
    fn from(edit: NewsEdit) -> Self {
        Self {
            title: edit.title.map(NewsTitle::into_inner),
            body: edit.body.map(NewsBody::into_inner),
            date_created: edit.date_created.map(Timestamp::get),
            date_updated: Timestamp::now().get(),
        }
    }
}

/// Which news a list or count covers.
#[derive(Debug, Default, Clone)]
pub struct NewsFilter {
    /// Full-text query in web-search syntax.
    pub text: Option<String>,
    /// Only this author's news.
    pub author_id: Option<Uuid>,
    /// Only news created strictly after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Only news created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
}

/// One page of a list, and the cursor of the next page if there is one.
#[derive(Debug)]
pub struct Page {
    /// The rows, in the list's order.
    pub rows: Vec<NewsRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The list's order, for a cursor made after a cut.
    order: SortOrder,
}

impl Page {
    /// The page of the rows a [`page_query`] of `limit` read (one more than the page, if another
    /// page follows).
    fn of(mut rows: Vec<NewsRow>, limit: u32, order: SortOrder) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| cursor_after(order, last))
        } else {
            None
        };
        Self { rows, next, order }
    }

    /// The page cut short, if need be, so that its rows cost at most `budget` together, each
    /// costing `cost(row)` (its size as the client will get it, say). The first row is always
    /// kept, whatever it costs, so that every page moves the list on. After a cut, `next` leads
    /// on from the last row kept: the next page starts right after it, and no row is skipped.
    #[must_use]
    pub fn within(mut self, budget: usize, cost: impl Fn(&NewsRow) -> usize) -> Self {
        let mut spent = 0_usize;
        let keep = self
            .rows
            .iter()
            .position(|row| {
                spent = spent.saturating_add(cost(row));
                spent > budget
            })
            .map_or(self.rows.len(), |over| over.max(1));
        if keep < self.rows.len() {
            self.rows.truncate(keep);
            self.next = self.rows.last().map(|last| cursor_after(self.order, last));
        }
        self
    }
}

/// The cursor of a page whose last row is `last`.
fn cursor_after(order: SortOrder, last: &NewsRow) -> Cursor {
    Cursor {
        order,
        date_created: last.date_created,
        id: last.id,
    }
}

/// Who is writing, for the ownership check in the write itself.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    /// The user's id.
    pub user_id: Uuid,
    /// Admins may write anyone's news.
    pub role: Role,
}

impl Writer {
    fn is_admin(self) -> bool {
        self.role == Role::Admin
    }
}

/// What a guarded write found.
#[derive(Debug)]
pub enum WriteOutcome<T> {
    /// Written.
    Done(T),
    /// The row exists but belongs to someone else.
    NotOwner,
    /// No such row.
    Missing,
    /// The writer may write it, but its version is not one the client named (`If-Match`).
    Stale,
}

type Condition = Box<dyn BoxableExpression<news::table, Pg, SqlType = Bool>>;

/// A condition every row meets. A bound `true`, not `sql("TRUE")`: diesel never caches a statement
/// that holds an SQL literal as a prepared statement (decision log D4 in BENCHMARKS.md).
fn every_row() -> Condition {
    Box::new(true.into_sql::<Bool>())
}

fn matching(filter: &NewsFilter) -> Condition {
    let mut conditions: Vec<Condition> = Vec::new();
    if let Some(text) = &filter.text {
        // `search` is the stored `to_tsvector('english', title || ' ' || body)`, indexed by
        // `news_search_idx`. Left an SQL literal on purpose: a search is then never a cached
        // prepared statement, so PostgreSQL plans it for its own words (a frequent word walks the
        // date index, a rare one the GIN index) instead of settling on one generic plan (D7).
        conditions.push(Box::new(
            sql::<Bool>("search @@ websearch_to_tsquery('english', ")
                .bind::<Text, _>(text.clone())
                .sql(")"),
        ));
    }
    if let Some(author_id) = filter.author_id {
        conditions.push(Box::new(news::author_id.eq(author_id)));
    }
    if let Some(after) = filter.created_after {
        conditions.push(Box::new(news::date_created.gt(after)));
    }
    if let Some(before) = filter.created_before {
        conditions.push(Box::new(news::date_created.lt(before)));
    }
    conditions
        .into_iter()
        .reduce(|all, next| Box::new(all.and(next)))
        .unwrap_or_else(every_row)
}

/// `("date_created", "id") > ($1, $2)` (or `<`): a row-value comparison, so that PostgreSQL walks
/// the `(date_created, id)` index from a cursor. Its own expression rather than an SQL literal, so
/// that a page of the list is a cached prepared statement (decision log D4 in BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
struct KeysetAfter {
    ascending: bool,
    date_created: DateTime<Utc>,
    id: Uuid,
}

impl Expression for KeysetAfter {
    type SqlType = Bool;
}

impl AppearsOnTable<news::table> for KeysetAfter {}

impl SelectableExpression<news::table> for KeysetAfter {}

impl ValidGrouping<()> for KeysetAfter {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl QueryId for KeysetAfter {
    type QueryId = ();
    // Two texts (`<` and `>`): diesel caches the statement by its SQL instead of its type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for KeysetAfter {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(r#"("news"."date_created", "news"."id") "#);
        out.push_sql(if self.ascending { "> (" } else { "< (" });
        out.push_bind_param::<Timestamptz, _>(&self.date_created)?;
        out.push_sql(", ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        out.push_sql(")");
        Ok(())
    }
}

/// The rows `writer` may write, at one of the `versions` if any are named.
fn writable(writer: Writer, versions: Option<&[i64]>) -> Condition {
    let mut condition: Condition = if writer.is_admin() {
        every_row()
    } else {
        Box::new(news::author_id.eq(writer.user_id))
    };
    if let Some(versions) = versions {
        condition = Box::new(condition.and(news::version.eq_any(versions.to_vec())));
    }
    condition
}

/// Publishes `draft` by `author`: a new id, version 1, `date_created` now unless the draft sets it.
///
/// # Errors
/// Database errors.
pub async fn insert_news(
    conn: &mut AsyncPgConnection,
    author: Uuid,
    draft: NewsDraft,
) -> QueryResult<NewsRow> {
    let now = Timestamp::now().get();
    let row = NewsRow {
        id: Uuid::now_v7(),
        title: draft.title.into_inner(),
        body: draft.body.into_inner(),
        date_created: draft.date_created.map_or(now, Timestamp::get),
        date_updated: now,
        author_id: author,
        version: 1,
    };
    diesel::insert_into(news::table)
        .values(&row)
        .returning(NewsRow::as_returning())
        .get_result(conn)
        .await
}

/// The news item with this id, if there is one (on a read replica, whose reader's session was
/// checked on the primary).
///
/// # Errors
/// Database errors.
pub async fn find_news(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<NewsRow>> {
    news::table
        .find(id)
        .select(NewsRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The news item with this id, read in the same statement that checks the reader's session (one
/// round trip for an authenticated read). When there is no such row, a second statement tells a
/// live session (`Missing`) from an ended one.
///
/// # Errors
/// Database errors.
pub async fn find_news_in_session(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    session: SessionRef,
) -> QueryResult<SessionRead<NewsRow>> {
    let found = news::table
        .find(id)
        .select((exists(live_session(session)), NewsRow::as_select()))
        .first::<(bool, NewsRow)>(conn)
        .await
        .optional()?;
    Ok(match found {
        Some((true, row)) => SessionRead::Found(row),
        Some((false, _)) => SessionRead::Ended,
        None if is_live(conn, session).await? => SessionRead::Missing,
        None => SessionRead::Ended,
    })
}

/// The page of at most `limit` news that match `filter`, in `order`, starting after `after`.
///
/// The reader's session is checked by a statement of its own: [`list_page_in_session`] checks it
/// in this one, but a search is planned anew each time, and planning the extra subquery cost more
/// than the saved round trip bought (decision log D5 in BENCHMARKS.md).
///
/// # Errors
/// Database errors.
pub async fn list_page(
    conn: &mut AsyncPgConnection,
    filter: &NewsFilter,
    order: SortOrder,
    limit: u32,
    after: Option<Cursor>,
) -> QueryResult<Page> {
    let rows = page_query(filter, order, limit, after)
        .select(NewsRow::as_select())
        .load(conn)
        .await?;
    Ok(Page::of(rows, limit, order))
}

/// [`list_page`] read in the same statement that checks the reader's session (decision log D10 in
/// BENCHMARKS.md), for pages without a search (a cached prepared statement). An empty page takes a
/// second statement to tell a live session (`Found` with no rows) from an ended one. Never
/// `Missing`.
///
/// # Errors
/// Database errors.
pub async fn list_page_in_session(
    conn: &mut AsyncPgConnection,
    filter: &NewsFilter,
    order: SortOrder,
    limit: u32,
    after: Option<Cursor>,
    session: SessionRef,
) -> QueryResult<SessionRead<Page>> {
    let rows: Vec<(bool, NewsRow)> = page_query(filter, order, limit, after)
        .select((exists(live_session(session)), NewsRow::as_select()))
        .load(conn)
        .await?;
    let live = match rows.as_slice().first() {
        Some((live, _)) => *live,
        None => is_live(conn, session).await?,
    };
    Ok(if live {
        let rows = rows.into_iter().map(|(_, row)| row).collect();
        SessionRead::Found(Page::of(rows, limit, order))
    } else {
        SessionRead::Ended
    })
}

type PageQuery = news::BoxedQuery<'static, Pg>;

/// The query of a page, without its select list: one row more than the page, to know whether
/// another page follows.
fn page_query(
    filter: &NewsFilter,
    order: SortOrder,
    limit: u32,
    after: Option<Cursor>,
) -> PageQuery {
    let ascending = order == SortOrder::OldestFirst;
    let mut query = news::table
        .filter(matching(filter))
        .limit(i64::from(limit) + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(KeysetAfter {
            ascending,
            date_created: after.date_created,
            id: after.id,
        });
    }
    if ascending {
        query.order_by((news::date_created.asc(), news::id.asc()))
    } else {
        query.order_by((news::date_created.desc(), news::id.desc()))
    }
}

/// How many news match a filter, and whether that number is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The number, or PostgreSQL's estimate of it.
    pub count: i64,
    /// False when `count` is an estimate.
    pub exact: bool,
}

/// How many news match `filter`: exactly when at most `exact_limit` do, otherwise PostgreSQL's
/// estimate. An exact count reads every match (a full-text match even detoasts each row's
/// vector): 1.7 s for a frequent word at 10^5 rows, and counting only up to the limit is still a
/// seq scan that stops late. So the planner's estimate of the filtered query comes first (one
/// `EXPLAIN`, no rows read): well above the limit, and not the fixed guess PostgreSQL makes for
/// a word it has no statistics of, it is the answer; otherwise the matches are counted up to
/// `exact_limit + 1`, and only a count past the limit falls back to the estimate, raised to the
/// number counted (decision log D13 in BENCHMARKS.md).
///
/// # Errors
/// Database errors.
pub async fn count_news(
    conn: &mut AsyncPgConnection,
    filter: &NewsFilter,
    exact_limit: i64,
) -> QueryResult<Count> {
    let matches = |filter: &NewsFilter| {
        news::table
            .filter(matching(filter))
            .select(1_i32.into_sql::<Integer>())
    };
    let estimate = estimated_rows(conn, matches(filter)).await?;
    if estimate / ESTIMATE_MARGIN > exact_limit {
        // A word outside the statistics' most common elements gets one fixed estimate whatever
        // its true count (none, often): trusted only when it is above that of a word that
        // cannot occur.
        let trusted = filter.text.is_none() || {
            let unknown = NewsFilter {
                text: Some(UNKNOWN_WORD.to_string()),
                ..filter.clone()
            };
            estimate > estimated_rows(conn, matches(&unknown)).await?
        };
        if trusted {
            return Ok(Count {
                count: estimate,
                exact: false,
            });
        }
    }
    let counted: i64 = Around::<_, BigInt>::new(
        "SELECT count(*) FROM (",
        matches(filter).limit(exact_limit.saturating_add(1)),
        ") AS matched",
    )
    .get_result(conn)
    .await?;
    let exact = counted <= exact_limit;
    Ok(Count {
        count: if exact {
            counted
        } else {
            estimate.max(counted)
        },
        exact,
    })
}

/// How far above `COUNT_EXACT_LIMIT` the planner's estimate must be for a count to skip counting:
/// its estimates of single words are within a few per cent, but of combined filters less sure.
const ESTIMATE_MARGIN: i64 = 2;

/// A word no news contains, for the estimate PostgreSQL gives any word it has no statistics of.
const UNKNOWN_WORD: &str = "qzxjvkqzxjvk";

/// PostgreSQL's estimate of the rows `query` returns (0 if `EXPLAIN` says nothing usable).
async fn estimated_rows<Q: QueryFragment<Pg> + Send>(
    conn: &mut AsyncPgConnection,
    query: Q,
) -> QueryResult<i64> {
    let plan: String = Around::<_, Text>::new("EXPLAIN (FORMAT JSON) ", query, "")
        .get_result(conn)
        .await?;
    Ok(planned_rows(&plan).unwrap_or(0))
}

/// The top node's row estimate in the output of `EXPLAIN (FORMAT JSON)`.
fn planned_rows(plan: &str) -> Option<i64> {
    let plan: serde_json::Value = serde_json::from_str(plan).ok()?;
    let rows = plan.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64()?;
    // An estimate, rounded; `as` saturates at i64's bounds.
    #[allow(clippy::cast_possible_truncation)]
    Some(rows.round() as i64)
}

/// `<before><query><after>`: a query inside a statement diesel does not build (`EXPLAIN`, a
/// count over a `LIMIT`ed subquery), with the result type `T`. Cached as a prepared statement
/// by its SQL when the query inside may be (a search never is, see [`matching`]).
#[derive(Debug, Clone, Copy)]
struct Around<Q, T> {
    before: &'static str,
    query: Q,
    after: &'static str,
    result: std::marker::PhantomData<T>,
}

impl<Q, T> Around<Q, T> {
    const fn new(before: &'static str, query: Q, after: &'static str) -> Self {
        Self {
            before,
            query,
            after,
            result: std::marker::PhantomData,
        }
    }
}

impl<Q, T> QueryId for Around<Q, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, T: diesel::sql_types::SqlType + diesel::sql_types::SingleValue> diesel::query_builder::Query
    for Around<Q, T>
{
    type SqlType = T;
}

impl<Q: QueryFragment<Pg>, T> QueryFragment<Pg> for Around<Q, T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.before);
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(self.after);
        Ok(())
    }
}

/// Applies `changes` to the news item if `writer` may write it and (when `versions` is given) it
/// is at one of those versions — all in the one `UPDATE`, so no other write can slip between the
/// check and the change.
///
/// # Errors
/// Database errors.
pub async fn update_news(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    writer: Writer,
    versions: Option<&[i64]>,
    changes: &NewsChanges,
) -> QueryResult<WriteOutcome<NewsRow>> {
    let updated = diesel::update(news::table.find(id).filter(writable(writer, versions)))
        .set((changes, news::version.eq(news::version + 1)))
        .returning(NewsRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(row) => Ok(WriteOutcome::Done(row)),
        None => why_not_written(conn, id, writer).await,
    }
}

/// Deletes the news item under the same conditions as [`update_news`], in one statement.
///
/// # Errors
/// Database errors.
pub async fn delete_news(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    writer: Writer,
    versions: Option<&[i64]>,
) -> QueryResult<WriteOutcome<()>> {
    let deleted = diesel::delete(news::table.find(id).filter(writable(writer, versions)))
        .execute(conn)
        .await?;
    if deleted == 1 {
        Ok(WriteOutcome::Done(()))
    } else {
        why_not_written(conn, id, writer).await
    }
}

/// Applies `changes` to every news item that matches `filter`; returns how many changed.
///
/// # Errors
/// Database errors.
pub async fn update_matching(
    conn: &mut AsyncPgConnection,
    filter: &NewsFilter,
    changes: &NewsChanges,
) -> QueryResult<usize> {
    diesel::update(news::table.filter(matching(filter)))
        .set((changes, news::version.eq(news::version + 1)))
        .execute(conn)
        .await
}

/// After a guarded write touched nothing: was the row missing, someone else's, or at another
/// version? The write has already been refused; this read only chooses between 404, 403 and 412,
/// in that order (RFC 9110 §13.2.1: preconditions are ignored when the answer would be an error
/// without them).
async fn why_not_written<T>(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    writer: Writer,
) -> QueryResult<WriteOutcome<T>> {
    let author: Option<Uuid> = news::table
        .find(id)
        .select(news::author_id)
        .first(conn)
        .await
        .optional()?;
    Ok(match author {
        None => WriteOutcome::Missing,
        Some(author) if author != writer.user_id && !writer.is_admin() => WriteOutcome::NotOwner,
        Some(_) => WriteOutcome::Stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(sizes: &[usize], next: bool) -> Page {
        let rows: Vec<NewsRow> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| NewsRow {
                id: Uuid::now_v7(),
                title: format!("{i}"),
                body: "x".repeat(size),
                date_created: DateTime::from_timestamp(
                    1_700_000_000 - i64::try_from(i).unwrap(),
                    0,
                )
                .unwrap(),
                date_updated: Utc::now(),
                author_id: Uuid::nil(),
                version: 1,
            })
            .collect();
        let next = next.then(|| cursor_after(SortOrder::NewestFirst, rows.last().unwrap()));
        Page {
            rows,
            next,
            order: SortOrder::NewestFirst,
        }
    }

    fn cost(row: &NewsRow) -> usize {
        row.body.len()
    }

    #[test]
    fn a_page_within_its_budget_is_left_as_it_is() {
        let cut = page(&[3, 3, 4], false).within(10, cost);
        assert_eq!(cut.rows.len(), 3);
        assert_eq!(cut.next, None);
        let cut = page(&[3, 3, 4], true).within(10, cost);
        assert_eq!(cut.rows.len(), 3);
        assert_eq!(
            cut.next,
            Some(cursor_after(SortOrder::NewestFirst, &cut.rows[2]))
        );
    }

    #[test]
    fn a_page_over_its_budget_ends_at_its_last_row_that_fits_and_leads_on_from_it() {
        // The last page of the list: the cut makes a next page.
        let cut = page(&[3, 3, 5], false).within(10, cost);
        assert_eq!(cut.rows.len(), 2);
        assert_eq!(
            cut.next,
            Some(cursor_after(SortOrder::NewestFirst, &cut.rows[1]))
        );
    }

    #[test]
    fn a_first_row_over_the_whole_budget_is_still_returned() {
        let cut = page(&[50, 1], false).within(10, cost);
        assert_eq!(cut.rows.len(), 1);
        assert_eq!(
            cut.next,
            Some(cursor_after(SortOrder::NewestFirst, &cut.rows[0]))
        );
        let empty = page(&[], false).within(10, cost);
        assert!(empty.rows.is_empty() && empty.next.is_none());
    }
}
