//! What a news item is made of.

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

use super::{Invalid, failures};

/// How far in the future an author may date a news item: enough for clocks that disagree, too
/// little to pin an item to the top of every feed (the list is newest first).
pub const MAX_FUTURE_DATE_CREATED: TimeDelta = TimeDelta::minutes(5);

/// A `date_created` as the author gives it: a [`Timestamp`], at most
/// [`MAX_FUTURE_DATE_CREATED`] after now.
fn date_created(instant: DateTime<Utc>) -> Result<Timestamp, Invalid> {
    const FIELD: &str = "date_created";
    let stamp = Timestamp::parse(FIELD, instant)?;
    if stamp.get() > Utc::now() + MAX_FUTURE_DATE_CREATED {
        return Err(Invalid::new(
            FIELD,
            "must not be more than 5 minutes in the future",
        ));
    }
    Ok(stamp)
}

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
        let date_created = date_created.map(self::date_created).transpose();
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
        let date_created = date_created.map(self::date_created).transpose();
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

super::bounded_text!(
    /// A title: 1 to 200 characters, not blank.
    NewsTitle,
    "title",
    200
);

super::bounded_text!(
    /// A body: 1 to 100 000 characters, not blank.
    NewsBody,
    "body",
    100_000
);

/// An instant PostgreSQL can store exactly and RFC 3339 can write in UTC: microsecond precision,
/// years 0000 to 9999.
///
/// Rounding to the microsecond here means the value a client gets back is the value stored, and a
/// pagination cursor made from it finds the same row again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// # Errors
    /// An instant outside years 0000 to 9999 in UTC (an RFC 3339 date-time near either end with an
    /// offset can fall outside them), which no response could write.
    pub fn parse(field: &'static str, instant: DateTime<Utc>) -> Result<Self, Invalid> {
        if !(0..=9999).contains(&instant.year()) {
            return Err(Invalid::new(
                field,
                "must be between the years 0000 and 9999 in UTC",
            ));
        }
        Ok(Self(to_micros(instant)))
    }

    /// A bound for a filter: any instant at all, at microsecond precision. It is only compared with
    /// stored instants (all within years 0000 to 9999), never written back; one before what
    /// PostgreSQL can hold (4713 BC) becomes the start of 4712 BC, which orders every stored
    /// instant the same way. (chrono's latest instant, in year 262142, is within PostgreSQL's
    /// range.)
    #[must_use]
    pub fn bound(instant: DateTime<Utc>) -> Self {
        let earliest = chrono::NaiveDate::from_ymd_opt(-4711, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|start| start.and_utc())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Self(to_micros(instant.max(earliest)))
    }

    /// The current instant, at microsecond precision.
    #[must_use]
    pub fn now() -> Self {
        Self(to_micros(Utc::now()))
    }

    /// The instant.
    #[must_use]
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

/// Cuts the nanoseconds below a microsecond. (chrono's `duration_trunc` cannot: it works on
/// nanoseconds since 1970 in an `i64`, which ends before 1677 and after 2262.)
fn to_micros(instant: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = instant.nanosecond();
    instant
        .with_nanosecond(nanos - nanos % 1_000)
        .unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

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
    fn timestamps_from_year_0000_to_9999_are_kept_to_the_microsecond() {
        for text in [
            "0001-01-01T00:00:00.1234567+23:59",
            "0169-03-05T19:35:56.101Z",
            "1600-02-29T12:00:00.000000999Z",
            "2263-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let instant = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            let stored = Timestamp::parse("date_created", instant)
                .unwrap_or_else(|e| panic!("{text}: {e:?}"))
                .get();
            assert_eq!(stored.nanosecond() % 1_000, 0, "{text}");
            assert_eq!(stored.timestamp(), instant.timestamp(), "{text}");
        }
    }

    #[test]
    fn an_offset_that_leaves_years_0000_to_9999_in_utc_is_refused() {
        let late = DateTime::parse_from_rfc3339("9999-12-31T23:00:00-23:00")
            .unwrap()
            .with_timezone(&Utc);
        assert!(Timestamp::parse("date_created", late).is_err());
        assert_eq!(Timestamp::bound(late).get(), late);
    }

    #[test]
    fn date_created_may_lie_at_most_5_minutes_in_the_future() {
        let now = Utc::now();
        let soon = now + TimeDelta::minutes(4);
        let draft = NewsDraft::parse("T".into(), "B".into(), Some(soon)).unwrap();
        assert_eq!(
            draft.date_created.map(Timestamp::get),
            Some(to_micros(soon))
        );
        for later in [
            now + TimeDelta::minutes(6),
            DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
                .unwrap()
                .with_timezone(&Utc),
        ] {
            let errors = NewsDraft::parse("T".into(), "B".into(), Some(later)).unwrap_err();
            assert_eq!(errors[0].field, "date_created");
            let errors = NewsEdit::parse(None, None, Some(later)).unwrap_err();
            assert_eq!(errors[0].field, "date_created");
        }
        assert!(NewsEdit::parse(None, None, Some(now - TimeDelta::days(365 * 1000))).is_ok());
    }

    #[test]
    fn timestamps_beyond_year_9999_are_refused() {
        // chrono cannot parse "+10000-01-01T00:00:00Z" (RFC 3339 has four-digit years), so the
        // first instant past 9999 is built from its parts.
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("chrono represents year 10000")
            .and_utc();
        assert!(Timestamp::parse("date_created", far).is_err());
        let far = Utc::now() + TimeDelta::days(365 * 9000);
        assert!(Timestamp::parse("date_created", far).is_err());
    }
}
