//! Queries on `mail_outbox`.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::mail_outbox;
use crate::mail::Outgoing;

/// Queues `mail`, due at once. Call it inside the transaction of the change that causes the mail:
/// the mail exists if and only if the change committed.
///
/// # Errors
/// Database errors.
pub async fn enqueue(conn: &mut AsyncPgConnection, mail: &Outgoing) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::id.eq(id),
            mail_outbox::recipient.eq(&mail.to),
            mail_outbox::subject.eq(&mail.subject),
            mail_outbox::body.eq(&mail.body),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}
