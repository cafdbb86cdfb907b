//! Queries on `users` and `user_credentials`.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
    sql_types::Text,
};
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
    /// Stored as its name (`user`, `admin`).
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub role: Role,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

/// Creates an account with `role` and its password hash, in one transaction; `None` when an
/// account has this email already (in any letter case).
///
/// # Errors
/// Database errors.
pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    email: &Email,
    name: Option<&UserName>,
    role: Role,
    password_hash: &str,
) -> QueryResult<Option<UserRow>> {
    let row = UserRow {
        id: Uuid::now_v7(),
        email: email.as_str().to_string(),
        name: name.map(|name| name.as_str().to_string()),
        role,
        created_at: Timestamp::now().get(),
    };
    let inserted = conn
        .transaction(async |conn| {
            let row = diesel::insert_into(users::table)
                .values(row.clone())
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
        .await;
    match inserted {
        Ok(row) => Ok(Some(row)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some("users_email_lower_key") =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Gives the account with this email (any letter case) `role`; `false` when there is none.
///
/// # Errors
/// Database errors.
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    email: &Email,
    role: Role,
) -> QueryResult<bool> {
    let changed =
        diesel::update(users::table.filter(lower(users::email).eq(lower(email.as_str()))))
            .set(users::role.eq(String::from(role)))
            .execute(conn)
            .await?;
    Ok(changed > 0)
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
