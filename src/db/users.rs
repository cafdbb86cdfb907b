//! Queries on `users` and `user_credentials`.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types::Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{user_credentials, users};
use crate::domain::{Email, Role, Timestamp, UserName};

diesel::define_sql_function! {
    /// SQL `lower()`, for case-insensitive email look-ups served by `users_email_lower_key`.
    fn lower(x: Text) -> Text;
}

/// A user as stored; it never carries the password hash.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    /// Public id (UUID v7).
    pub id: Uuid,
    /// As typed at signup.
    pub email: String,
    /// Display name, if given.
    pub name: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    /// A new account with a fresh id, created now.
    #[must_use]
    pub fn new_account(email: &Email, name: Option<UserName>, role: Role) -> Self {
        Self {
            id: Uuid::now_v7(),
            email: email.as_str().to_string(),
            name: name.map(UserName::into_inner),
            role: role.as_str().to_string(),
            created_at: Timestamp::now().get(),
        }
    }
}

/// Inserts a user and their password hash in one transaction.
///
/// # Errors
/// A unique violation on `users_email_lower_key` when the email is taken (in any letter case).
pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    user: &UserRow,
    password_hash: &str,
) -> QueryResult<UserRow> {
    conn.transaction(async |conn| {
        let row = diesel::insert_into(users::table)
            .values(user)
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await?;
        diesel::insert_into(user_credentials::table)
            .values((
                user_credentials::user_id.eq(row.id),
                user_credentials::password_hash.eq(password_hash),
            ))
            .execute(conn)
            .await?;
        Ok(row)
    })
    .await
}

/// The user with this email (any letter case) and their password hash.
///
/// # Errors
/// Database errors only; an unknown email is `Ok(None)`.
pub async fn find_with_password_hash(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<(UserRow, String)>> {
    users::table
        .inner_join(user_credentials::table)
        .filter(lower(users::email).eq(lower(email)))
        .select((UserRow::as_select(), user_credentials::password_hash))
        .first(conn)
        .await
        .optional()
}

/// The user with this id.
///
/// # Errors
/// Database errors only; an unknown id is `Ok(None)`.
pub async fn find_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}
