//! The headers every response gets, whatever produced it (an operation, the catch-all for errors,
//! the spec's pages): `X-Content-Type-Options: nosniff` on all, and `Cache-Control: no-store` on
//! every response of the operations that hand out a token or account data.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, header},
};

use crate::error::render_any_error;

/// The paths whose every response — success or error — carries a token or account data: sign-up
/// (the new account), sign-in and refresh (tokens), whoami and `PATCH /account` (the account).
pub const NO_STORE_PATHS: &[&str] = &[
    "/signup",
    "/signin",
    "/token/refresh",
    "/whoami",
    "/account",
];

/// The value of `Cache-Control` on [`NO_STORE_PATHS`].
pub const NO_STORE: &str = "no-store";

/// Wraps the whole application (outside the catch-all, so errors get the headers too).
///
/// # Errors
/// None: an error the endpoint still returns is rendered here.
pub async fn response_headers<E: Endpoint>(
    endpoint: Arc<E>,
    req: Request,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut response = match endpoint.call(req).await {
        Ok(response) => response.into_response(),
        Err(err) => render_any_error(err).await,
    };
    add_response_headers(&path, &mut response);
    Ok(response)
}

/// Gives `response`, the answer to a request for `path`, the headers every response gets. Also
/// for answers made outside the application (a request the connection layer cancelled).
pub fn add_response_headers(path: &str, response: &mut Response) {
    let no_store = NO_STORE_PATHS.contains(&path.strip_suffix('/').unwrap_or(path));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    }
}
