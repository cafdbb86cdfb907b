//! `JsonBody<T>`: a JSON request body read with a size limit, where malformed JSON is 400 and JSON
//! that does not fit `T` — a wrong type, a missing field, a field `T` does not have — is 422 naming
//! the offending field.
//!
//! poem-openapi's own `Json<T>` answers all of these with the same plain-text 400, and its
//! `ParseFromJSON` errors do not say which field failed; here `T` is read with serde (through
//! `serde_path_to_error` and `serde_ignored`), while its `Object` derive still describes it in the
//! spec. Every body refuses unknown fields: `openapi.yaml` says so with `additionalProperties:
//! false` on every request body schema, which poem-openapi cannot express (the contract test allows
//! it).
//!
//! A key repeated in one object, at any depth, is malformed JSON here (400): `serde_json::Value`
//! would keep the last one, so that `{"email": "me@…", "email": "victim@…"}` read as the victim,
//! while a proxy or a log that reads the first would see someone else. The body is read once, into
//! the same `Value`, by [`Strict`], which refuses the repeat as it builds each object.

use poem::{FromRequest, Request, RequestBody, error::ReadBodyError};
use poem_openapi::{
    impl_apirequest_for_payload,
    payload::{ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::Type,
};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// The largest request body accepted: a 100 000-character body of four-byte characters, with room
/// to spare.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Whether a media type is JSON: `application/json` or `application/<anything>+json`.
pub(super) fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
    })
}

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = poem::Body::from_request(request, body)
            .await?
            .into_bytes_limit(MAX_BODY_BYTES)
            .await
            .map_err(|err| match err {
                ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                _ => ApiError::BadRequest("the request body could not be read".into()),
            })?;
        let Strict(value) = serde_json::from_slice(&bytes)
            .map_err(|err| ApiError::BadRequest(format!("malformed JSON: {err}")))?;
        // Every body is an object. serde's derived structs also read an array, field by field in
        // order, so without this `[]` would be an empty patch and `["T", "B"]` a news item.
        if !value.is_object() {
            return Err(ApiError::Validation(vec![FieldError {
                field: "$".to_string(),
                message: "must be a JSON object".to_string(),
            }])
            .into());
        }
        let mut unknown = Vec::new();
        let parsed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
            value,
            &mut |path: serde_ignored::Path<'_>| unknown.push(path.to_string()),
        ))
        .map_err(|err| ApiError::Validation(vec![field_error(&err)]))?;
        if !unknown.is_empty() {
            return Err(ApiError::Validation(
                unknown
                    .into_iter()
                    .map(|field| FieldError {
                        field,
                        message: "unknown field".to_string(),
                    })
                    .collect(),
            )
            .into());
        }
        Ok(Self(parsed))
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned);

/// A JSON value read with no key repeated within any one object.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// `serde_json::Value`'s own visitor, but for objects, which refuse a key they already hold.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // serde_json never hands over a NaN or an infinity, which are not JSON.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key `{}` appears twice in one object",
                    key.escape_debug()
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Names the field a serde error is about: its path, or for a missing field (reported at the
/// object itself) the name serde quotes.
fn field_error(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let message = err.inner().to_string();
    let path = err.path().to_string();
    let field = if path == "." {
        message
            .split('`')
            .nth(1)
            .filter(|_| {
                message.starts_with("missing field") || message.starts_with("unknown field")
            })
            .map_or_else(|| "$".to_string(), str::to_string)
    } else {
        path
    };
    FieldError { field, message }
}

/// For `Option` fields that may be left out but not sent as `null` (the spec does not make them
/// nullable): `#[serde(default, deserialize_with = "present")]`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, Object)]
    struct Patch {
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        body: Option<String>,
    }

    async fn parse(json: &str) -> poem::Result<JsonBody<Patch>> {
        let request = Request::builder().content_type("application/json").finish();
        let mut body = RequestBody::new(poem::Body::from_string(json.to_string()));
        JsonBody::<Patch>::from_request(&request, &mut body).await
    }

    #[tokio::test]
    async fn an_object_is_read() {
        let patch = parse(r#"{"title": "T"}"#).await.unwrap().0;
        assert_eq!(patch.title.as_deref(), Some("T"));
        assert_eq!(patch.body, None);
    }

    #[tokio::test]
    async fn a_key_repeated_in_one_object_is_malformed_at_any_depth() {
        for json in [
            r#"{"title": "T", "title": "U"}"#,
            r#"{"title": "T", "body": {"a": 1, "b": [{"c": 1, "c": 2}]}}"#,
            // The same key after an escape is the same key.
            r#"{"title": "T", "\u0074itle": "U"}"#,
        ] {
            let err = parse(json).await.unwrap_err();
            assert_eq!(err.status(), poem::http::StatusCode::BAD_REQUEST, "{json}");
        }
        // The same key in two objects is no repeat; the values still have to fit.
        let err = parse(r#"{"title": "T", "body": [{"a": 1}, {"a": 1}]}"#)
            .await
            .unwrap_err();
        assert_eq!(err.status(), poem::http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn strict_reads_what_serde_json_reads() {
        let json = r#"{"a": [1, -2, 3.5, "x\u00e9", null, true, {}, []], "b": {"c": 18446744073709551615}}"#;
        let Strict(strict) = serde_json::from_str(json).unwrap();
        assert_eq!(strict, serde_json::from_str::<Value>(json).unwrap());
    }

    #[tokio::test]
    async fn an_array_is_refused_even_where_serde_would_read_it_field_by_field() {
        for json in ["[]", r#"["T", "B"]"#, "null", "3", r#""T""#] {
            let err = parse(json).await.unwrap_err();
            assert_eq!(
                err.status(),
                poem::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{json}"
            );
        }
    }
}
