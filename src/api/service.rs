//! Liveness and readiness probes for load balancers and orchestrators.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, Errors, Json, SharedState, errors::error_statuses};
use crate::{db::failure::Unavailable, error::ApiError};

/// A probe's answer.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

#[derive(ApiResponse)]
enum LiveResponse {
    /// The process is alive
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database answers
    #[oai(status = 200)]
    Ok(Json<Health>),
}

error_statuses! {
    ReadyErrors: 503;
}

/// Probes.
pub struct ServiceApi;

#[OpenApi(tag = "ApiTags::Service")]
impl ServiceApi {
    /// Liveness probe
    ///
    /// 200 while the process runs; it does not touch the database.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> LiveResponse {
        LiveResponse::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Readiness probe
    ///
    /// 200 when the database can be reached, 503 when it cannot; answered within a second,
    /// whatever the database does. A busy database (every pooled connection in use) is ready.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(
        &self,
        state: Data<&SharedState>,
    ) -> Result<ReadyResponse, Errors<ReadyErrors>> {
        match state.pool.readiness().await {
            Ok(()) => Ok(ReadyResponse::Ok(Json(Health {
                status: "ready".into(),
            }))),
            Err(why) => Err(ApiError::Unavailable(
                Unavailable::Unreachable,
                format!("readiness probe: {why}"),
            )
            .into()),
        }
    }
}
