//! Wiring: the pool, migrations, the OpenAPI service, the routes (the API, the home page and the
//! authored contract's endpoints), the middleware, and the listener.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, LazyLock},
};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Route,
    endpoint::make_sync,
    get,
    http::{HeaderValue, StatusCode, header},
    web::Html,
};
use poem_openapi::OpenApiService;
use tokio::net::TcpListener;

use crate::{
    api::{
        AppState, AuthApi, Contract, EmailApi, NewsApi, PasswordApi, ResponseCompression,
        ServiceApi, SharedState, response_headers, with_connection_slot,
    },
    auth::{JwtKeys, PasswordHasher},
    config::{Config, ConnectionConfig},
    db,
    error::render_any_error,
    mail::{
        Mailer,
        transport::{Transport, TransportError},
        worker::Worker,
    },
    metrics::{Metrics, RecordMetrics},
    panics::answer_panics,
    server,
    telemetry::{RequestIdentity, RequestLog},
};

/// How long, at shutdown, the mail worker may take to finish the sends in flight: one send's
/// bound and a few seconds to record it.
const MAIL_WORKER_GRACE: std::time::Duration =
    crate::mail::transport::SEND_TIMEOUT.saturating_add(std::time::Duration::from_secs(5));

/// Every API area, as one OpenAPI service.
pub type Apis = (AuthApi, PasswordApi, EmailApi, NewsApi, ServiceApi);

/// The OpenAPI service for every area. Its generated spec is served nowhere: it is what
/// `tests/api/contract.rs` compares with `openapi.yaml`, the spec that is served.
#[must_use]
pub fn api_service() -> OpenApiService<Apis, ()> {
    // Its `info` and `servers` would only repeat `openapi.yaml`'s, and the contract test does not
    // compare them.
    OpenApiService::new(
        (AuthApi, PasswordApi, EmailApi, NewsApi, ServiceApi),
        "newsapi",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Why the server could not start; one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database is unreachable or could not be migrated.
    #[error(transparent)]
    Database(#[from] db::DbSetupError),
    /// Mail cannot be sent as configured (`SMTP_URL`, `MAIL_FROM`, `MAIL_OUTBOX_DIR`).
    #[error("configuration: {0}")]
    Mail(#[from] TransportError),
    /// `MAIL_FROM` is not an address (the configuration checks it; this is a second guard).
    #[error("configuration: MAIL_FROM is not an address: {0}")]
    MailFrom(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    app: poem::endpoint::BoxEndpoint<'static>,
    connections: ConnectionConfig,
    trusted_proxies: Vec<IpAddr>,
    /// The limit on open files, after raising it; every connection takes one.
    open_files: Option<u64>,
    /// For the background clean-up of expired idempotency keys.
    pool: db::DbPool,
    /// The listener of `METRICS_ADDR`, when set.
    metrics: Option<MetricsListener>,
    /// This replica's mail worker.
    mail_worker: Worker,
    /// The read replica's own pool for sampling its lag, and where the samples go.
    replica_lag: Option<(db::DbPool, Arc<Metrics>)>,
}

/// `METRICS_ADDR`'s listener: `GET /metrics` and nothing else.
struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
    app: poem::endpoint::BoxEndpoint<'static>,
}

impl Application {
    /// Waits for the database and migrates it, builds the routes and binds the listener.
    ///
    /// # Errors
    /// The database cannot be reached or migrated, or the address cannot be bound.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        db::prepare(config.database_url(), &config.database).await?;
        let pool = db::pool(config.database_url(), &config.database)?;
        let transport = Transport::new(&config.mail)?;
        let from = config
            .mail
            .from
            .parse()
            .map_err(|err: lettre::address::AddressError| {
                StartupError::MailFrom(err.to_string())
            })?;
        let mailer = Mailer::default();
        // The replica's pools open their connections lazily: the server starts whether or not the
        // replica answers (its reads answer 503 until it does). A URL that does not parse stops
        // the start-up, as for `DATABASE_URL`.
        let read = match config.database_read_url() {
            Some(url) => {
                url.parse::<tokio_postgres::Config>().map_err(|err| {
                    db::DbSetupError::Pool(format!("DATABASE_READ_URL is not valid: {err}"))
                })?;
                let read_pool = db::pool(
                    url,
                    &crate::config::DatabaseConfig {
                        pool_size: config.database.read_pool_size,
                        ..config.database
                    },
                )?;
                // The lag is sampled on a connection of its own: a busy read pool must not hide it.
                let lag_pool = db::pool(
                    url,
                    &crate::config::DatabaseConfig {
                        pool_size: 1,
                        ..config.database
                    },
                )?;
                Some((read_pool, lag_pool))
            }
            None => None,
        };
        let metrics = Arc::new(if read.is_some() {
            Metrics::with_read_replica()
        } else {
            Metrics::new()
        });
        // The worker has a small pool of its own: it never takes a request's connection, and a
        // storm of requests cannot starve the mail.
        let mail_pool = db::pool(
            config.database_url(),
            &crate::config::DatabaseConfig {
                pool_size: crate::mail::worker::POOL_SIZE,
                ..config.database
            },
        )?;
        let mail_worker = Worker::new(
            mail_pool,
            transport,
            from,
            config.mail.retry_max,
            mailer.clone(),
            Arc::clone(&metrics),
        );
        let state = Arc::new(AppState {
            pool: pool.clone(),
            read_pool: read.as_ref().map(|(read_pool, _)| read_pool.clone()),
            jwt: JwtKeys::new(&config.jwt),
            passwords: PasswordHasher::new(config.bcrypt_cost, config.hash_queue)
                .counted_across_replicas(pool.clone(), config.connections.request_timeout),
            sessions: config.sessions,
            throttle: config.throttle,
            signup: config.signup,
            trusted_proxies: config.trusted_proxies.clone(),
            metrics,
            accounts: config.accounts,
            count_exact_limit: config.count_exact_limit,
            mail: config.mail.clone(),
            mailer,
            metrics_on_main_listener: config.observability.metrics_addr.is_none(),
        });
        let (listener, addr) = bind(config.listen_addr).await?;
        let metrics = match config.observability.metrics_addr {
            Some(metrics_addr) => {
                let (listener, addr) = bind(metrics_addr).await?;
                Some(MetricsListener {
                    listener,
                    addr,
                    app: metrics_routes(Arc::clone(&state)).boxed(),
                })
            }
            None => None,
        };
        Ok(Self {
            listener,
            addr,
            replica_lag: read.map(|(_, lag_pool)| (lag_pool, Arc::clone(&state.metrics))),
            app: routes(
                state,
                ResponseCompression::new(config.compression_min_bytes),
            )
            .boxed(),
            connections: config.connections,
            trusted_proxies: config.trusted_proxies.clone(),
            open_files: server::raise_open_files_limit(),
            metrics,
            pool,
            mail_worker,
        })
    }

    /// The address `/metrics` is served on when `METRICS_ADDR` is set (the one actually bound).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|metrics| metrics.addr)
    }

    /// The address actually bound (useful with port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish for up to
    /// `SHUTDOWN_GRACE_SECS` and cancels the rest (each answered 503 and logged), under the
    /// connection deadlines and the per-address cap ([`server`]). Returns once every connection has
    /// ended and the database pool is closed: nothing a request started is committed later.
    ///
    /// # Errors
    /// None today: a failed `accept` is logged and retried; the signature leaves room for more.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// [`Application::run_until_stopped`], with `shutdown` in place of the signals (for tests).
    ///
    /// # Errors
    /// As [`Application::run_until_stopped`].
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, open_files = self.open_files, "serving");
        let clean_up = tokio::spawn(db::idempotency::clean_up_every(
            self.pool,
            db::idempotency::CLEAN_UP_EVERY,
        ));
        let replica_lag = self.replica_lag.map(|(pool, metrics)| {
            tokio::spawn(db::replica::sample_lag_every(
                pool,
                metrics,
                db::replica::LAG_SAMPLE_EVERY,
            ))
        });
        // The metrics listener and the mail worker stop when the main one is told to.
        let (stopping, stop) = tokio::sync::watch::channel(false);
        let mut mail_worker = tokio::spawn(self.mail_worker.run(stop.clone()));
        let main = server::serve(
            self.listener,
            self.app,
            self.connections,
            &self.trusted_proxies,
            async move {
                shutdown.await;
                let _ = stopping.send(true);
            },
        );
        match self.metrics {
            None => main.await,
            Some(metrics) => {
                tracing::info!(addr = %metrics.addr, "serving metrics");
                let mut stop = stop;
                let metrics = server::serve(
                    metrics.listener,
                    metrics.app,
                    self.connections,
                    &[],
                    async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    },
                );
                tokio::join!(main, metrics);
            }
        }
        clean_up.abort();
        if let Some(sampler) = replica_lag {
            sampler.abort();
        }
        // The worker finishes the sends in flight (each bounded) and records them; past that
        // bound it is cut off, and what it had claimed is sent again when the lease ends.
        if tokio::time::timeout(MAIL_WORKER_GRACE, &mut mail_worker)
            .await
            .is_err()
        {
            mail_worker.abort();
            tracing::warn!("the mail worker did not finish in time; its mails will be retried");
        }
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Listen { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    Ok((listener, bound))
}

/// The authored contract, built once per process, the first time [`routes`] runs.
static CONTRACT: LazyLock<Contract> = LazyLock::new(|| Contract::new(&api_service()));

/// The home page: links to the explorer, Redoc, the spec and the probes.
const HOME_PAGE: &str = include_str!("home.html");

/// The whole application: API, spec, explorer and home page, behind the [`middleware`].
pub fn routes(
    state: SharedState,
    compression: ResponseCompression,
) -> impl Endpoint<Output = poem::Response> {
    let contract: &'static Contract = &CONTRACT;
    let metrics = Arc::clone(&state.metrics);
    // The home page cannot be a route of its own at "/": the API is nested at "/", and poem's
    // router prefers the nested catch-all there. So the API's endpoint answers "/" itself.
    let api = api_service().into_endpoint().around(|api, req| async move {
        if req.uri().path() == "/" && req.method() == poem::http::Method::GET {
            return Ok(Html(HOME_PAGE).into_response());
        }
        api.call(req).await.map(IntoResponse::into_response)
    });
    let api = with_connection_slot(api);
    middleware(
        contract.routes(Route::new()).nest("/", api).data(state),
        metrics,
        compression,
    )
}

/// What every request passes through around `app`, outermost first: [`RequestIdentity`] (the
/// request id), [`RecordMetrics`] (counted into `metrics`), [`RequestLog`] (the span and the access
/// line, outside everything that can still change the answer, so it logs the status and the
/// body's bytes as sent, compressed or not), `compression` ([`ResponseCompression`]: outside the
/// rest, so it sees every answer, errors included), the response headers, `Allow` on 405, the
/// catch-all that renders every error as problem+json, and [`answer_panics`]. Public so a test can
/// put an endpoint of its own (one that panics) behind exactly this stack.
pub fn middleware(
    app: impl Endpoint + 'static,
    metrics: Arc<Metrics>,
    compression: ResponseCompression,
) -> impl Endpoint<Output = poem::Response> {
    let contract: &'static Contract = &CONTRACT;
    answer_panics(app)
        .catch_all_error(render_any_error)
        .around(move |endpoint, req| async move {
            let path = req.uri().path().to_string();
            let mut response = endpoint.call(req).await?;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                if let Some(methods) = contract.allowed_methods(&path) {
                    if let Ok(value) = HeaderValue::from_str(methods) {
                        response.headers_mut().insert(header::ALLOW, value);
                    }
                }
            }
            Ok(response)
        })
        .around(response_headers)
        .with(compression)
        .with(RequestLog::new(contract))
        .with(RecordMetrics::new(metrics, contract))
        .with(RequestIdentity)
}

/// `METRICS_ADDR`'s application: `GET /metrics`; anything else is a problem+json 404 or 405.
/// Its requests are not counted in `http_requests_total` (scrapes would drown the API's).
pub fn metrics_routes(state: SharedState) -> impl Endpoint<Output = poem::Response> {
    Route::new()
        .at(
            "/metrics",
            get(make_sync(move |_| {
                state
                    .metrics
                    .response(&state.pool, state.read_pool.as_ref(), &state.passwords)
            })),
        )
        .catch_all_error(render_any_error)
        .around(response_headers)
        .with(RequestIdentity)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
