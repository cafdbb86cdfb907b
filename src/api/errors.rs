//! `Errors<S>`: a handler's error type that declares, in the spec, exactly the problem+json
//! statuses `S` lists. poem-openapi would otherwise document no error at all.

use std::marker::PhantomData;

use diesel_async::pooled_connection::deadpool::PoolError;
use poem_openapi::{
    ApiResponse,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};

use crate::error::{ApiError, PROBLEM_JSON, Problem};

/// The statuses an operation can fail with.
pub trait ErrorStatuses: Send + Sync + 'static {
    /// In ascending order, as they appear in the spec.
    const STATUSES: &'static [u16];
}

/// Declares marker types for [`ErrorStatuses`]: `statuses!(SignupErrors: 400, 409);`.
macro_rules! error_statuses {
    ($($name:ident: $($status:literal),+;)+) => {$(
        /// The statuses this operation can fail with.
        pub enum $name {}
        impl $crate::api::errors::ErrorStatuses for $name {
            const STATUSES: &'static [u16] = &[$($status),+];
        }
    )+};
}
pub(crate) use error_statuses;

/// An error from an operation that can fail with the statuses of `S`.
pub struct Errors<S>(ApiError, PhantomData<S>);

impl<S> From<ApiError> for Errors<S> {
    fn from(err: ApiError) -> Self {
        Self(err, PhantomData)
    }
}

impl<S> From<diesel::result::Error> for Errors<S> {
    fn from(err: diesel::result::Error) -> Self {
        ApiError::from(err).into()
    }
}

impl<S> From<PoolError> for Errors<S> {
    fn from(err: PoolError) -> Self {
        ApiError::from(err).into()
    }
}

impl<S> From<Errors<S>> for poem::Error {
    fn from(err: Errors<S>) -> Self {
        err.0.into()
    }
}

impl<S: ErrorStatuses> ApiResponse for Errors<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| problem_meta(status))
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

fn problem_meta(status: u16) -> MetaResponse {
    let header = |name: &str, description: &str| MetaHeader {
        name: name.to_string(),
        description: Some(description.to_string()),
        required: true,
        deprecated: false,
        schema: String::schema_ref(),
    };
    let headers = match status {
        401 => vec![header(
            "WWW-Authenticate",
            "The authentication scheme (RFC 6750)",
        )],
        429 | 503 => vec![header("Retry-After", "Seconds to wait before trying again")],
        _ => Vec::new(),
    };
    MetaResponse {
        // What each status means is said once, in `openapi.yaml`'s `components/responses`, which
        // is the spec that is served; the contract test does not compare these descriptions.
        description: "",
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: PROBLEM_JSON,
            schema: Problem::schema_ref(),
        }],
        headers,
    }
}
