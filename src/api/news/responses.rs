//! The responses of the news operations, and the problem statuses each can answer.

use poem_openapi::ApiResponse;

use super::wire::{News, NewsCount, NewsPage};
use crate::api::{Json, JsonBytes, errors::error_statuses};

#[derive(ApiResponse)]
pub(super) enum CreateResponse {
    /// The new news item
    // Already encoded: the bytes recorded for an `Idempotency-Key` are the bytes sent.
    #[oai(status = 201)]
    Created(
        JsonBytes<News>,
        /// The URL of the new news item
        #[oai(header = "Location")]
        String,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
        /// `true` when this is the response first given to an earlier request with the same
        /// `Idempotency-Key`, sent again; absent otherwise
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub(super) enum GetResponse {
    /// The news item
    #[oai(status = 200)]
    Ok(
        Json<News>,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
    /// The news item has not changed since the tag given in `If-None-Match`
    #[oai(status = 304)]
    NotModified(
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub(super) enum ReplaceResponse {
    /// The news item as replaced
    #[oai(status = 200)]
    Ok(
        Json<News>,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub(super) enum UpdateResponse {
    /// The news item as changed
    #[oai(status = 200)]
    Ok(
        Json<News>,
        /// The news item's current entity tag, for `If-Match` and `If-None-Match`
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub(super) enum PageResponse {
    /// One page of news
    #[oai(status = 200)]
    Ok(Json<NewsPage>),
}

#[derive(ApiResponse)]
pub(super) enum CountResponse {
    /// How many news match
    #[oai(status = 200)]
    Ok(Json<NewsCount>),
}

#[derive(ApiResponse)]
pub(super) enum BulkResponse {
    /// How many news were changed
    #[oai(status = 200)]
    Ok(Json<NewsCount>),
}

#[derive(ApiResponse)]
pub(super) enum DeleteResponse {
    /// Deleted
    #[oai(status = 204)]
    Deleted,
}

error_statuses! {
    ListErrors: 400, 401, 500, 503;
    CreateErrors: 400, 401, 403, 408, 409, 413, 415, 422, 500, 503;
    GetErrors: 400, 401, 404, 500, 503;
    WriteErrors: 400, 401, 403, 404, 408, 412, 413, 415, 422, 500, 503;
    BulkErrors: 400, 401, 403, 408, 413, 415, 422, 500, 503;
    DeleteErrors: 400, 401, 403, 404, 412, 500, 503;
}
