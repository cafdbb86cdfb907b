//! The account-mail limit: requests that make the server send a mail about an account (a
//! forgotten password, a resent verification, an email change) are counted per client address and
//! per target account, in PostgreSQL like failed sign-ins (so replicas share them), whether or not
//! the account exists — the count itself must not tell.

use std::net::IpAddr;

use crate::{
    config::AccountConfig,
    db::throttle::{Budget, ThrottleKey},
};

/// What one such request from `client` about `recipient` counts against: the address
/// (`ACCOUNT_MAIL_MAX_PER_IP`) and the target account (`ACCOUNT_MAIL_MAX_PER_RECIPIENT`), the
/// latter named by a canonical email or, for a signed-in user, by `user:<id>`. Reserve them with
/// [`crate::db::throttle::reserve`] over `limits.mail_window`, in the transaction that queues the
/// mail; the counts are kept whatever follows.
#[must_use]
pub fn account_mail_budgets(
    limits: AccountConfig,
    client: Option<IpAddr>,
    recipient: &str,
) -> Vec<Budget> {
    vec![
        Budget {
            key: ThrottleKey::MailFromIp(client),
            limit: limits.mail_max_per_ip,
        },
        Budget {
            key: ThrottleKey::MailFor(recipient.to_string()),
            limit: limits.mail_max_per_recipient,
        },
    ]
}
