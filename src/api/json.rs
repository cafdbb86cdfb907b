//! `Json<T>`: a JSON response body, described in the spec exactly as poem-openapi's own
//! `payload::Json<T>` (same media type, same schema), but encoded with `sonic-rs`.
//!
//! serde_json escapes strings one byte at a time, which dominated the cost of a page of news;
//! sonic-rs scans strings with SIMD and writes the same JSON (decision log D3 in BENCHMARKS.md).
//! Request bodies are still read with serde_json ([`super::JsonBody`]): they are small and their
//! errors matter more.

use poem::{IntoResponse, Response, error::ResponseError, http::StatusCode};
use poem_openapi::{
    payload::Payload,
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use crate::error::ApiError;

/// A JSON response body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: Type> Payload for Json<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

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
        match sonic_rs::to_vec(&self.0.to_json()) {
            Ok(bytes) => Response::builder()
                .status(StatusCode::OK)
                .content_type(Self::CONTENT_TYPE)
                .body(bytes),
            Err(err) => ApiError::internal(err).as_response(),
        }
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
