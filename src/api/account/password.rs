//! `POST /account/password`, `POST /password/forgot`, `POST /password/reset`,
//! `POST /account/delete`.

use poem_openapi::OpenApi;

use crate::api::ApiTags;

/// Passwords, and deleting the account.
pub struct PasswordApi;

#[OpenApi(tag = "ApiTags::Account")]
impl PasswordApi {}
