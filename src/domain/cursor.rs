//! The opaque pagination cursor: the sort key of the last item of a page, and the order it was
//! read in, so that the next page starts right after it (keyset pagination).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// Which way a list runs over `date_created` (ties broken by id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Newest first.
    #[default]
    NewestFirst,
    /// Oldest first.
    OldestFirst,
}

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The order the previous page was read in; a cursor is refused in the other order.
    pub order: SortOrder,
    /// `date_created` of the last item of the previous page.
    pub date_created: DateTime<Utc>,
    /// `id` of the last item of the previous page.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor as the client sees it: URL-safe base64 of `v1|<order>|<micros>|<uuid>`.
    #[must_use]
    pub fn encode(&self) -> String {
        let order = match self.order {
            SortOrder::NewestFirst => 'd',
            SortOrder::OldestFirst => 'a',
        };
        let raw = format!(
            "v1|{order}|{}|{}",
            self.date_created.timestamp_micros(),
            self.id
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a cursor this server issued for a list in `order`.
    ///
    /// A cursor is only ever made from a stored row, so anything a row cannot hold is refused here
    /// rather than handed to the query: a `date_created` outside the years 0000 to 9999 (the
    /// range [`super::Timestamp`] admits; PostgreSQL refuses years past 294276 and before 4713 BC
    /// with an error, chrono before −262143 and past 262142).
    ///
    /// # Errors
    /// A cursor that is not one of ours, or was issued for the other order; the message is for
    /// the client.
    pub fn decode(encoded: &str, order: SortOrder) -> Result<Self, &'static str> {
        const NOT_OURS: &str = "the cursor is not one this server issued";
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| NOT_OURS)?;
        let raw = std::str::from_utf8(&bytes).map_err(|_| NOT_OURS)?;
        let mut parts = raw.split('|');
        let (Some("v1"), Some(stored_order), Some(micros), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NOT_OURS);
        };
        let stored_order = match stored_order {
            "d" => SortOrder::NewestFirst,
            "a" => SortOrder::OldestFirst,
            _ => return Err(NOT_OURS),
        };
        if stored_order != order {
            return Err("the cursor was issued for the other order");
        }
        let micros: i64 = micros.parse().map_err(|_| NOT_OURS)?;
        let date_created = DateTime::from_timestamp_micros(micros)
            .filter(|instant| (0..=9999).contains(&instant.year()))
            .ok_or(NOT_OURS)?;
        let id = Uuid::parse_str(id).map_err(|_| NOT_OURS)?;
        Ok(Self {
            order,
            date_created,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn forged(year: i32) -> String {
        let micros = NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(i64::MAX, |t| t.and_utc().timestamp_micros());
        URL_SAFE_NO_PAD.encode(format!(
            "v1|d|{micros}|00000000-0000-0000-0000-000000000000"
        ))
    }

    #[test]
    fn a_cursor_outside_years_0000_to_9999_is_refused() {
        for year in [-99_999, -4714, -1, 10_000, 262_142, 300_000] {
            assert!(
                Cursor::decode(&forged(year), SortOrder::NewestFirst).is_err(),
                "{year}"
            );
        }
        for extreme in [i64::MIN, i64::MAX] {
            let raw = format!("v1|d|{extreme}|00000000-0000-0000-0000-000000000000");
            assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(raw), SortOrder::NewestFirst).is_err());
        }
        for year in [0, 1970, 9999] {
            assert!(
                Cursor::decode(&forged(year), SortOrder::NewestFirst).is_ok(),
                "{year}"
            );
        }
    }

    fn sample() -> Cursor {
        Cursor {
            order: SortOrder::NewestFirst,
            date_created: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        }
    }

    #[test]
    fn a_cursor_survives_the_round_trip() {
        let cursor = sample();
        assert_eq!(
            Cursor::decode(&cursor.encode(), SortOrder::NewestFirst),
            Ok(cursor)
        );
    }

    #[test]
    fn a_cursor_for_the_other_order_is_refused() {
        assert!(Cursor::decode(&sample().encode(), SortOrder::OldestFirst).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for garbage in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("v1|d|nan|x"),
            &URL_SAFE_NO_PAD.encode("v2|d|1|00000000-0000-0000-0000-000000000000"),
            &URL_SAFE_NO_PAD.encode("v1|d|1|00000000-0000-0000-0000-000000000000|"),
        ] {
            assert!(
                Cursor::decode(garbage, SortOrder::NewestFirst).is_err(),
                "{garbage}"
            );
        }
    }
}
