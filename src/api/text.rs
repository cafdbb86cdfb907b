//! `Text<R>`: a JSON string field whose schema is derived from a domain [`TextRule`], so that a
//! limit is written once in Rust (the rule's constants, which the domain type enforces) and once in
//! `openapi.yaml`; `tests/api/contract.rs` proves the two agree.

use std::{borrow::Cow, fmt, marker::PhantomData};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::domain::{Invalid, TextRule};

/// The not-blank rule as a schema `pattern`: at least one character that is not white space
/// (`char::is_whitespace`, spelt out since regex dialects disagree on `\s`), and no NUL. The one
/// copy in Rust; `openapi.yaml` has the one other (`&not_blank`).
pub const NOT_BLANK_PATTERN: &str = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

/// A string as the client sent it, described in the spec by the rule `R`. It is read as any
/// string; the domain type that owns `R` checks it ([`Text::check`] or the type's `parse`), so that
/// one 422 can name every bad field.
pub struct Text<R>(pub String, PhantomData<R>);

impl<R> Text<R> {
    /// The text as sent.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<R: TextRule> Text<R> {
    /// The text, once it meets `R`.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check(self) -> Result<String, Invalid> {
        R::check(&self.0)?;
        Ok(self.0)
    }
}

impl<R> fmt::Debug for Text<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sign-in passwords are `Text` too: never print the value.
        f.write_str("Text(..)")
    }
}

impl<'de, R> Deserialize<'de> for Text<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(text, PhantomData))
    }
}

impl<R: TextRule + Send + Sync> Type for Text<R> {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: R::FORMAT,
            min_length: (R::MIN_CHARS > 0).then_some(R::MIN_CHARS),
            max_length: Some(R::MAX_CHARS),
            pattern: R::NOT_BLANK.then(|| NOT_BLANK_PATTERN.to_string()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<R: TextRule + Send + Sync> ParseFromJSON for Text<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text, PhantomData)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: TextRule + Send + Sync> ToJSON for Text<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The characters of the pattern's second class, which lists what does not count as content.
    fn listed_as_blank() -> Vec<char> {
        let class = NOT_BLANK_PATTERN
            .split("[^")
            .nth(2)
            .and_then(|rest| rest.split(']').next())
            .expect("the pattern has a second class");
        let mut chars = Vec::new();
        let mut rest = class;
        while !rest.is_empty() {
            let (c, tail) = match rest.as_bytes() {
                [b'\\', b'u', ..] => (
                    char::from_u32(u32::from_str_radix(&rest[2..6], 16).unwrap()).unwrap(),
                    &rest[6..],
                ),
                [b'\\', b't', ..] => ('\t', &rest[2..]),
                [b'\\', b'r', ..] => ('\r', &rest[2..]),
                _ => (rest.chars().next().unwrap(), &rest[1..]),
            };
            if let Some(end) = tail.strip_prefix('-') {
                let (last, tail) = match end.as_bytes() {
                    [b'\\', b'u', ..] => (
                        char::from_u32(u32::from_str_radix(&end[2..6], 16).unwrap()).unwrap(),
                        &end[6..],
                    ),
                    [b'\\', b'r', ..] => ('\r', &end[2..]),
                    _ => unreachable!("no other range end in the pattern"),
                };
                chars.extend(c..=last);
                rest = tail;
            } else {
                chars.push(c);
                rest = tail;
            }
        }
        chars
    }

    #[test]
    fn the_pattern_calls_blank_exactly_what_the_domain_calls_blank() {
        let listed = listed_as_blank();
        assert!(listed.contains(&'\0'), "NUL is never content");
        for c in (0..=0x10_FFFF_u32).filter_map(char::from_u32) {
            if c != '\0' {
                assert_eq!(listed.contains(&c), c.is_whitespace(), "{c:?}");
            }
        }
    }
}
