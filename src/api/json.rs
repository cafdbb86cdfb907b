//! `Json<T>`: a JSON response body, described in the spec exactly as poem-openapi's own
//! `payload::Json<T>` (same media type, same schema), but encoded with `sonic-rs`.
//!
//! serde_json escapes strings one byte at a time, which dominated the cost of a page of news;
//! sonic-rs scans strings with SIMD and writes the same JSON (decision log D3 in BENCHMARKS.md).
//! Request bodies are still read with serde_json ([`super::JsonBody`]): they are small and their
//! errors matter more.

use std::marker::PhantomData;

use poem::{IntoResponse, Response, error::ResponseError, http::StatusCode};
use poem_openapi::{
    payload::Payload,
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use crate::error::ApiError;

/// The media type of every JSON response body.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A JSON response body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: Type> Payload for Json<T> {
    const CONTENT_TYPE: &'static str = JSON_UTF8;

    fn check_content_type(content_type: &str) -> bool {
        super::body::is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ToJSON> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match JsonBytes::encode(&self.0) {
            Ok(bytes) => bytes.into_response(),
            Err(err) => err.as_response(),
        }
    }
}

/// A JSON response body of type `T` already encoded, described in the spec as [`Json<T>`] is:
/// what `Json` sends, kept as bytes so that a response recorded for an `Idempotency-Key` is sent
/// again exactly as it was first.
#[derive(Debug)]
pub struct JsonBytes<T>(Vec<u8>, PhantomData<fn() -> T>);

impl<T: ToJSON> JsonBytes<T> {
    /// `value` encoded as [`Json`] encodes it.
    ///
    /// # Errors
    /// The encoder failed (500).
    pub fn encode(value: &T) -> Result<Self, ApiError> {
        sonic_rs::to_vec(&value.to_json())
            .map(|bytes| Self(bytes, PhantomData))
            .map_err(ApiError::internal)
    }
}

impl<T> JsonBytes<T> {
    /// Bytes made by [`JsonBytes::encode`] earlier, for a `T`.
    #[must_use]
    pub fn from_encoded(bytes: Vec<u8>) -> Self {
        Self(bytes, PhantomData)
    }

    /// The bytes.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = JSON_UTF8;

    fn check_content_type(content_type: &str) -> bool {
        super::body::is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for JsonBytes<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::OK)
            .content_type(JSON_UTF8)
            .body(self.0)
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;

    use super::*;

    #[derive(Object)]
    struct Sample {
        text: String,
        #[oai(nullable)]
        next: Option<String>,
        count: i64,
    }

    /// The bytes are serde_json's, escapes and all.
    #[tokio::test]
    async fn encodes_as_serde_json_does() {
        let sample = Sample {
            text: "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 😀 </script>"
                .into(),
            next: None,
            count: -42,
        };
        let expected = serde_json::to_vec(&sample.to_json()).unwrap();
        let response = Json(sample).into_response();
        assert_eq!(
            response.content_type(),
            Some("application/json; charset=utf-8")
        );
        let bytes = response.into_body().into_vec().await.unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
