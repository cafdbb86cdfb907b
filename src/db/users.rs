//! Queries on `users` and `user_credentials`.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error as DieselError},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{user_credentials, users};
use crate::domain::{Email, Role, Timestamp, UserName, canonical_email};

/// The unique index on `users.email_canonical`: a taken email, in any spelling.
pub(super) const EMAIL_TAKEN: &str = "users_email_canonical_key";

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
    /// When its current email was verified; `None` until then.
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// Creates an account with `role` and its password hash, in one transaction; `None` when an
/// account has this email already (in any spelling with the same canonical form).
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
        email_verified_at: None,
    };
    let inserted = conn
        .transaction(async |conn| {
            let row = diesel::insert_into(users::table)
                .values((row.clone(), users::email_canonical.eq(email.canonical())))
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
            if info.constraint_name() == Some(EMAIL_TAKEN) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Gives the account with this email (in any spelling) `role`; `false` when there is none.
///
/// # Errors
/// Database errors.
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    email: &Email,
    role: Role,
) -> QueryResult<bool> {
    let changed = diesel::update(users::table.filter(users::email_canonical.eq(email.canonical())))
        .set(users::role.eq(String::from(role)))
        .execute(conn)
        .await?;
    Ok(changed > 0)
}

/// The user whose email has the canonical form `canonical` (see
/// [`crate::domain::canonical_email`]), and their password hash.
///
/// # Errors
/// Database errors only; an unknown email is `Ok(None)`.
pub async fn find_with_password_hash(
    conn: &mut AsyncPgConnection,
    canonical: &str,
) -> QueryResult<Option<(UserRow, String)>> {
    users::table
        .inner_join(user_credentials::table)
        .filter(users::email_canonical.eq(canonical))
        .select((UserRow::as_select(), user_credentials::password_hash))
        .first(conn)
        .await
        .optional()
}

/// What [`fill_missing_canonical_emails`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalBackfill {
    /// Rows given their canonical email.
    pub filled: usize,
    /// Rows left without one because an older account already has that canonical form.
    pub collisions: usize,
}

/// Gives every account made before `email_canonical` existed its canonical email, oldest first
/// (ids are UUID v7, so in order of creation). When two old accounts share one canonical form, the
/// older keeps it and the newer is left without one: it cannot sign in until an operator resolves
/// the clash, and is logged. Run at start-up, after the migrations; with nothing to fill it is
/// one indexed query.
///
/// # Errors
/// Database errors.
pub async fn fill_missing_canonical_emails(
    conn: &mut AsyncPgConnection,
) -> QueryResult<CanonicalBackfill> {
    const BATCH: i64 = 1000;
    let mut done = CanonicalBackfill::default();
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<(Uuid, String)> = users::table
            .filter(users::email_canonical.is_null())
            .filter(users::id.gt(after))
            .order(users::id)
            .select((users::id, users::email))
            .limit(BATCH)
            .load(conn)
            .await?;
        let Some((last, _)) = rows.last() else {
            return Ok(done);
        };
        after = *last;
        for (id, email) in rows {
            let canonical = canonical_email(&email);
            let updated = diesel::update(users::table.find(id))
                .set(users::email_canonical.eq(&canonical))
                .execute(conn)
                .await;
            match updated {
                Ok(_) => done.filled += 1,
                Err(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::CheckViolation,
                    _,
                )) => {
                    done.collisions += 1;
                    tracing::warn!(
                        user_id = %id,
                        "this account's email has the canonical form of an older account's (or \
                         one too long to index); it cannot sign in until the clash is resolved"
                    );
                }
                Err(err) => return Err(err),
            }
        }
    }
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

/// The canonical email of the user with this id (`None` for an unknown id, or an account whose
/// canonical form could not be filled in).
///
/// # Errors
/// Database errors.
pub async fn find_canonical_email(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<String>> {
    Ok(users::table
        .find(id)
        .select(users::email_canonical)
        .first::<Option<String>>(conn)
        .await
        .optional()?
        .flatten())
}

/// The user whose email has the canonical form `canonical`.
///
/// # Errors
/// Database errors only; an unknown email is `Ok(None)`.
pub async fn find_by_canonical_email(
    conn: &mut AsyncPgConnection,
    canonical: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email_canonical.eq(canonical))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Replaces the user's password hash; `false` when the user is gone.
///
/// # Errors
/// Database errors.
pub async fn set_password_hash(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    password_hash: &str,
) -> QueryResult<bool> {
    let changed = diesel::update(user_credentials::table.find(user_id))
        .set((
            user_credentials::password_hash.eq(password_hash),
            user_credentials::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(changed > 0)
}

/// What [`delete_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The user is gone, with this many news items of theirs; their credentials, sessions,
    /// one-time tokens and idempotency keys went with them (`ON DELETE CASCADE`).
    Deleted {
        /// News items deleted with the user.
        news: i64,
    },
    /// The user is the only admin: nothing was deleted.
    LastAdmin,
    /// No such user.
    Missing,
}

/// Deletes the user and everything of theirs, unless they are the only admin. For an admin, every
/// admin row is locked first (`FOR UPDATE`, in id order, so two deletions never wait on each other
/// in a cycle): of two last admins deleting themselves at once, the second sees the first gone and
/// is refused.
///
/// # Errors
/// Database errors.
pub async fn delete_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Deletion> {
    use super::schema::news;

    conn.transaction(async |conn| {
        let Some(role) = users::table
            .find(user_id)
            .select(users::role)
            .first::<String>(conn)
            .await
            .optional()?
        else {
            return Ok(Deletion::Missing);
        };
        if Role::from(role) == Role::Admin {
            let admins: Vec<Uuid> = users::table
                .filter(users::role.eq(Role::Admin.as_str()))
                .order(users::id)
                .select(users::id)
                .for_update()
                .load(conn)
                .await?;
            if admins == [user_id] {
                return Ok(Deletion::LastAdmin);
            }
        }
        let news: i64 = news::table
            .filter(news::author_id.eq(user_id))
            .count()
            .get_result(conn)
            .await?;
        let deleted = diesel::delete(users::table.find(user_id))
            .execute(conn)
            .await?;
        Ok(if deleted == 0 {
            Deletion::Missing
        } else {
            Deletion::Deleted { news }
        })
    })
    .await
}

/// Sets the display name of the user with this id (`None` clears it); the user as changed, or
/// `None` for an unknown id.
///
/// # Errors
/// Database errors.
pub async fn set_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    name: Option<&UserName>,
) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.find(id))
        .set(users::name.eq(name.map(UserName::as_str)))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Marks the current email of the user with this id verified (keeping an earlier date) — only if
/// it still has the canonical form `only_if_email`, when given; `false` when no row matched.
///
/// # Errors
/// Database errors.
pub async fn mark_email_verified(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    only_if_email: Option<&str>,
) -> QueryResult<bool> {
    let mut update = diesel::update(users::table.find(id)).into_boxed();
    if let Some(canonical) = only_if_email {
        update = update.filter(users::email_canonical.eq(canonical));
    }
    let changed = update
        .set(users::email_verified_at.eq(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        >("coalesce(email_verified_at, now())")))
        .execute(conn)
        .await?;
    Ok(changed > 0)
}
