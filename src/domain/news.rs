//! What a news item is made of.

use chrono::{DateTime, Datelike, DurationRound, TimeDelta, Utc};

use super::{Invalid, check_text, failures};

/// A new news item, or the full replacement of one.
#[derive(Debug)]
pub struct NewsDraft {
    /// Title.
    pub title: NewsTitle,
    /// Body.
    pub body: NewsBody,
    /// Creation date, if the author sets one.
    pub date_created: Option<Timestamp>,
}

impl NewsDraft {
    /// # Errors
    /// Every field that fails its checks.
    pub fn parse(
        title: String,
        body: String,
        date_created: Option<DateTime<Utc>>,
    ) -> Result<Self, Vec<Invalid>> {
        let date_created = date_created
            .map(|d| Timestamp::parse("date_created", d))
            .transpose();
        match (NewsTitle::parse(title), NewsBody::parse(body), date_created) {
            (Ok(title), Ok(body), Ok(date_created)) => Ok(Self {
                title,
                body,
                date_created,
            }),
            (title, body, date_created) => {
                Err(failures([title.err(), body.err(), date_created.err()]))
            }
        }
    }
}

/// A partial change to a news item: only the fields given change.
#[derive(Debug)]
pub struct NewsEdit {
    /// New title.
    pub title: Option<NewsTitle>,
    /// New body.
    pub body: Option<NewsBody>,
    /// New creation date.
    pub date_created: Option<Timestamp>,
}

impl NewsEdit {
    /// # Errors
    /// Every field given that fails its checks.
    pub fn parse(
        title: Option<String>,
        body: Option<String>,
        date_created: Option<DateTime<Utc>>,
    ) -> Result<Self, Vec<Invalid>> {
        let title = title.map(NewsTitle::parse).transpose();
        let body = body.map(NewsBody::parse).transpose();
        let date_created = date_created
            .map(|d| Timestamp::parse("date_created", d))
            .transpose();
        match (title, body, date_created) {
            (Ok(title), Ok(body), Ok(date_created)) => Ok(Self {
                title,
                body,
                date_created,
            }),
            (title, body, date_created) => {
                Err(failures([title.err(), body.err(), date_created.err()]))
            }
        }
    }
}

/// A title: 1 to 200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsTitle(String);

impl NewsTitle {
    /// The most characters accepted.
    pub const MAX_CHARS: usize = 200;

    /// # Errors
    /// A blank or overlong title.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        check_text("title", &raw, Self::MAX_CHARS)?;
        Ok(Self(raw))
    }

    /// The title.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A body: 1 to 100 000 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsBody(String);

impl NewsBody {
    /// The most characters accepted.
    pub const MAX_CHARS: usize = 100_000;

    /// # Errors
    /// A blank or overlong body.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        check_text("body", &raw, Self::MAX_CHARS)?;
        Ok(Self(raw))
    }

    /// The body.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An instant PostgreSQL can store exactly: microsecond precision, years 1 to 9999.
///
/// Rounding to the microsecond here means the value a client gets back is the value stored, and a
/// pagination cursor made from it finds the same row again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// # Errors
    /// An instant outside years 1 to 9999.
    pub fn parse(field: &'static str, instant: DateTime<Utc>) -> Result<Self, Invalid> {
        if !(1..=9999).contains(&instant.year()) {
            return Err(Invalid::new(field, "must be between the years 1 and 9999"));
        }
        let micros = instant
            .duration_trunc(TimeDelta::microseconds(1))
            .map_err(|_| Invalid::new(field, "is not a representable instant"))?;
        Ok(Self(micros))
    }

    /// The current instant, at microsecond precision.
    #[must_use]
    pub fn now() -> Self {
        let now = Utc::now();
        Self(
            now.duration_trunc(TimeDelta::microseconds(1))
                .unwrap_or(now),
        )
    }

    /// The instant.
    #[must_use]
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_of_200_characters_is_accepted_and_201_is_not() {
        assert!(NewsTitle::parse("é".repeat(200)).is_ok());
        assert_eq!(
            NewsTitle::parse("é".repeat(201)).unwrap_err().field,
            "title"
        );
    }

    #[test]
    fn a_nul_character_is_refused() {
        assert_eq!(NewsTitle::parse("a\0b".into()).unwrap_err().field, "title");
    }

    #[test]
    fn an_empty_or_blank_body_is_refused() {
        assert!(NewsBody::parse(String::new()).is_err());
        assert!(NewsBody::parse(" \n\t".into()).is_err());
        assert!(NewsBody::parse("x".repeat(100_000)).is_ok());
        assert!(NewsBody::parse("x".repeat(100_001)).is_err());
    }

    #[test]
    fn timestamps_are_cut_to_microseconds() {
        let instant = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let stored = Timestamp::parse("date_created", instant).unwrap().get();
        assert_eq!(stored.to_rfc3339(), "2024-01-02T03:04:05.123456+00:00");
    }

    #[test]
    fn timestamps_beyond_year_9999_are_refused() {
        let far = DateTime::parse_from_rfc3339("+10000-01-01T00:00:00Z");
        if let Ok(far) = far {
            assert!(Timestamp::parse("date_created", far.with_timezone(&Utc)).is_err());
        }
        let far = Utc::now() + TimeDelta::days(365 * 9000);
        assert!(Timestamp::parse("date_created", far).is_err());
    }
}
