//! Checked types built once at the edge: inside the crate, a `NewsTitle` is always a valid title.
//! Each `parse` returns the value or an [`Invalid`] naming the field and the rule it broke.

mod cursor;
mod etag;
mod news;
mod user;

pub use cursor::{Cursor, SortOrder};
pub use etag::{TagCondition, entity_tag};
pub use news::{NewsBody, NewsDraft, NewsEdit, NewsTitle, Timestamp};
pub use user::{Email, NewUser, Password, Role, UserName};

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

/// Checks a text's length in characters, after refusing one that is only whitespace or that holds
/// a NUL character (valid JSON, but PostgreSQL's `text` cannot store it).
fn check_text(field: &'static str, value: &str, max_chars: usize) -> Result<(), Invalid> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty or blank"));
    }
    if value.contains('\0') {
        return Err(Invalid::new(field, "must not contain a NUL character"));
    }
    if chars > max_chars {
        return Err(Invalid::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}
