//! Liveness and readiness probes for load balancers and orchestrators, and `/metrics` for
//! Prometheus (on the main listener unless `METRICS_ADDR` names another; see [`crate::metrics`]).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::PlainText};

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

#[derive(ApiResponse)]
enum MetricsResponse {
    /// The metrics
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

error_statuses! {
    ReadyErrors: 503;
    MetricsErrors: 404;
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
    /// A read replica (`DATABASE_READ_URL`) is not probed: without it only the news reads fail.
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

    /// Metrics for Prometheus
    ///
    /// Requests by route template, method and status, latency histograms, requests in flight,
    /// the database pool (and the read replica's pool and lag), the password-hashing queue,
    /// sign-in and idempotency counts, the process's memory and CPU, and the build, in the
    /// Prometheus text format. No user data and no secret. 404 when `METRICS_ADDR` is set: the
    /// metrics are then served on that address only.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(
        &self,
        state: Data<&SharedState>,
    ) -> Result<MetricsResponse, Errors<MetricsErrors>> {
        if !state.metrics_on_main_listener {
            // The same answer as for any path the server does not have.
            return Err(ApiError::NotFound("no such resource").into());
        }
        Ok(MetricsResponse::Ok(PlainText(state.metrics.render(
            &state.pool,
            state.read_pool.as_ref(),
            &state.passwords,
        ))))
    }
}
