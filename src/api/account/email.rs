//! `PATCH /account`, `POST /account/email`, `POST /email/verify`, `POST /email/verify/resend`.

use poem_openapi::OpenApi;

use crate::api::ApiTags;

/// The profile and the email.
pub struct EmailApi;

#[OpenApi(tag = "ApiTags::Account")]
impl EmailApi {}
