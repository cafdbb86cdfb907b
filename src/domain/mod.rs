//! Checked types built once at the edge: inside the crate, a `NewsTitle` is always a valid title.
//! Each `parse` returns the value or an [`Invalid`] naming the field and the rule it broke.

mod cursor;
mod etag;
mod idempotency;
mod news;
mod user;

pub use cursor::{Cursor, SortOrder};
pub use etag::{TagCondition, entity_tag};
pub use idempotency::{IdempotencyKey, RequestFingerprint};
pub use news::{NewsBody, NewsDraft, NewsEdit, NewsTitle, Timestamp};
pub use user::{
    CurrentPassword, Email, MAX_CANONICAL_EMAIL_BYTES, NewUser, Password, Role, SigninEmail,
    SigninPassword, UserName, canonical_email,
};

/// The address the limits count one client by: an IPv4 address (also when written IPv4-mapped),
/// or an IPv6 address's /64 — one subscriber's network, whose hosts may take any number of
/// addresses in it. The sign-in and sign-up counters and the hashing queue's shares all use it.
#[must_use]
pub fn client_share(client: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(
            || IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
            IpAddr::V4,
        ),
    }
}

/// A value that failed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The wire name of the field.
    pub field: &'static str,
    /// The rule it broke, for a person to read.
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Keeps every failure of several independent checks, so that one 422 names every bad field.
fn failures<const N: usize>(results: [Option<Invalid>; N]) -> Vec<Invalid> {
    results.into_iter().flatten().collect()
}

/// The rules of a text field, declared once: the domain type that implements this enforces them
/// ([`TextRule::check`]), and the API derives the field's schema (`minLength`, `maxLength`, the
/// not-blank `pattern`, `format`) from the same constants. Lengths count characters, as JSON Schema
/// does.
pub trait TextRule {
    /// The wire name of the field, for the 422 that names it.
    const FIELD: &'static str;
    /// The fewest characters accepted.
    const MIN_CHARS: usize = 0;
    /// The most characters accepted.
    const MAX_CHARS: usize;
    /// Whether the text must hold a character that is not white space, and no NUL (which
    /// PostgreSQL's `text` cannot store).
    const NOT_BLANK: bool = false;
    /// The schema's `format`, if any.
    const FORMAT: Option<&'static str> = None;

    /// Checks what the schema says of the text: not blank and no NUL (if [`Self::NOT_BLANK`]), then
    /// its length in characters.
    ///
    /// # Errors
    /// The first rule the text breaks.
    fn check(value: &str) -> Result<(), Invalid> {
        if Self::NOT_BLANK {
            if value.trim().is_empty() {
                return Err(Invalid::new(Self::FIELD, "must not be empty or blank"));
            }
            if value.contains('\0') {
                return Err(Invalid::new(
                    Self::FIELD,
                    "must not contain a NUL character",
                ));
            }
        }
        let chars = value.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Invalid::new(
                Self::FIELD,
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid::new(
                Self::FIELD,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(())
    }
}

/// A checked, not-blank text of bounded length: `bounded_text!(NewsTitle, "title", 200, "A title")`
/// declares the type, its [`TextRule`] and its `parse`.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $crate::domain::TextRule for $name {
            const FIELD: &'static str = $field;
            const MIN_CHARS: usize = 1;
            const MAX_CHARS: usize = $max;
            const NOT_BLANK: bool = true;
        }

        impl $name {
            /// # Errors
            /// A blank text, one with a NUL, or one that is too long.
            pub fn parse(raw: String) -> Result<Self, $crate::domain::Invalid> {
                <Self as $crate::domain::TextRule>::check(&raw)?;
                Ok(Self(raw))
            }

            /// The text.
            #[must_use]
            pub fn into_inner(self) -> String {
                self.0
            }

            /// The text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use bounded_text;

#[cfg(test)]
mod tests {
    use super::client_share;

    #[test]
    fn an_ipv6_network_is_one_client_and_an_ipv4_mapped_address_is_its_ipv4_address() {
        let share = |raw: &str| client_share(raw.parse().unwrap());
        assert_eq!(share("2001:db8:1:2::1"), share("2001:db8:1:2:ffff::9"));
        assert_ne!(share("2001:db8:1:2::1"), share("2001:db8:1:3::1"));
        assert_eq!(share("::ffff:192.0.2.1"), share("192.0.2.1"));
        assert_ne!(share("192.0.2.1"), share("192.0.2.2"));
    }
}
