//! Administrative commands: `newsapi create-admin --email E` (password on standard input, never on
//! the command line, where other users of the machine could read it), `newsapi promote E` and
//! `newsapi delete-user --email E`.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::{
    auth::PasswordHasher,
    config::Config,
    db::users::Deletion,
    db::{self, users},
    domain::{Email, NewUser, Role, canonical_email},
};

/// Why an administrative command failed; each message is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The email or password does not pass the signup rules.
    #[error("{0}")]
    Invalid(String),
    /// The account exists already.
    #[error("an account with the email {0} already exists; use `newsapi promote {0}`")]
    Exists(String),
    /// No account has this email.
    #[error("no user has the email {0}")]
    UnknownUser(String),
    /// The account is the only admin's.
    #[error(
        "{0} is the only admin; promote another account first (`newsapi promote EMAIL`), then delete it"
    )]
    LastAdmin(String),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Setup(#[from] db::DbSetupError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// Hashing failed.
    #[error("{0}")]
    Hash(#[from] crate::auth::password::HashError),
}

async fn connect(config: &Config) -> Result<AsyncPgConnection, AdminError> {
    db::prepare(config.database_url(), &config.database).await?;
    db::connect::connect(
        config.database_url(),
        db::connect::ConnectOptions::unlimited(&config.database),
    )
    .await
    .map_err(|e| db::DbSetupError::connect(config.database_url(), &e).into())
}

/// Creates an account with the role `admin`, under the same rules as a signup.
///
/// # Errors
/// A bad email or password, an existing account, or a database failure.
pub async fn create_admin(
    config: &Config,
    email: &str,
    password: String,
) -> Result<Uuid, AdminError> {
    let new_user = NewUser::parse(email, password, None).map_err(|invalid| {
        AdminError::Invalid(
            invalid
                .iter()
                .map(|i| format!("{} {}", i.field, i.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let NewUser {
        email,
        password,
        name,
    } = new_user;
    let hash = PasswordHasher::new(config.bcrypt_cost, config.hash_queue)
        .hash(password, None)
        .await?;
    let mut conn = connect(config).await?;
    let user = users::insert_user(&mut conn, &email, name.as_ref(), Role::Admin, &hash)
        .await?
        .ok_or_else(|| AdminError::Exists(email.as_str().to_string()))?;
    // The operator typed the address and vouches for it: no verification mail is sent.
    users::mark_email_verified(&mut conn, user.id, None).await?;
    Ok(user.id)
}

/// Gives an existing account the role `admin`.
///
/// # Errors
/// A bad email, no such account, or a database failure.
pub async fn promote(config: &Config, email: &str) -> Result<(), AdminError> {
    let email =
        Email::parse(email).map_err(|i| AdminError::Invalid(format!("email {}", i.message)))?;
    let mut conn = connect(config).await?;
    if users::set_role(&mut conn, &email, Role::Admin).await? {
        Ok(())
    } else {
        Err(AdminError::UnknownUser(email.as_str().to_string()))
    }
}

/// An account deleted by [`delete_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedUser {
    /// Its id.
    pub id: Uuid,
    /// Its email, as stored.
    pub email: String,
    /// How many news items went with it.
    pub news: i64,
}

/// Deletes the account with this email (in any spelling with the same canonical form), with its
/// sessions, tokens and news, as `POST /account/delete` does; like it, refuses the only admin, so
/// that the service always keeps someone who can moderate it.
///
/// # Errors
/// No such account, the only admin, or a database failure.
pub async fn delete_user(config: &Config, email: &str) -> Result<DeletedUser, AdminError> {
    let canonical = canonical_email(email);
    let mut conn = connect(config).await?;
    let unknown = || AdminError::UnknownUser(email.trim().to_string());
    if canonical.contains('\0') {
        return Err(unknown());
    }
    let user = users::find_by_canonical_email(&mut conn, &canonical)
        .await?
        .ok_or_else(unknown)?;
    match users::delete_user(&mut conn, user.id).await? {
        Deletion::Deleted { news } => Ok(DeletedUser {
            id: user.id,
            email: user.email,
            news,
        }),
        Deletion::LastAdmin => Err(AdminError::LastAdmin(user.email)),
        Deletion::Missing => Err(unknown()),
    }
}
