//! Wiring: the pool, migrations, the OpenAPI service, the explorer and spec endpoints, the
//! middleware, and the listener.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Route, Server,
    endpoint::make_sync,
    http::{HeaderValue, StatusCode, header},
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::{CatchPanic, Tracing},
    web::Html,
};
use poem_openapi::{LicenseObject, OpenApiService, ServerObject};

use crate::{
    api::{
        AppState, AuthApi, NewsApi, ServiceApi, SharedState, close_request_bodies, complete_spec,
        with_connection_slot,
    },
    auth::{JwtKeys, PasswordHasher},
    config::Config,
    db,
    error::render_any_error,
};

/// Every API area, as one OpenAPI service.
pub type Apis = (AuthApi, NewsApi, ServiceApi);

/// The OpenAPI service for every area; its spec is what `openapi.yaml` must match.
#[must_use]
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (AuthApi, NewsApi, ServiceApi),
        "newsapi",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A News REST API secured with JWT bearer tokens, served from PostgreSQL.\n\n\
             Sign up with `POST /signup`, sign in with `POST /signin` to get an access token, then \
             send it as `Authorization: Bearer <token>` (the **Authorize** button in the explorer) \
             to every operation marked with a lock. Every error is `application/problem+json` \
             (RFC 9457).\n",
    )
    .license(LicenseObject::new("MIT").url("https://spdx.org/licenses/MIT.html"))
    // Relative: the API is wherever this document is served from.
    .server(ServerObject::new("/").description("The server that serves this document"))
}

/// Why the server could not start; one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database is unreachable or could not be migrated.
    #[error(transparent)]
    Database(#[from] db::DbSetupError),
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
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    app: poem::endpoint::BoxEndpoint<'static>,
}

impl Application {
    /// Migrates the database, builds the routes and binds the listener.
    ///
    /// # Errors
    /// The database cannot be reached or migrated, or the address cannot be bound.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        db::migrate(config.database_url()).await?;
        let pool = db::pool(
            config.database_url(),
            config.database_pool_size,
            config.database_pool_timeout,
        )?;
        let state = Arc::new(AppState {
            pool,
            jwt: JwtKeys::new(&config.jwt),
            passwords: PasswordHasher::new(config.bcrypt_cost),
            sessions: config.sessions,
            throttle: config.throttle,
            trusted_proxies: config.trusted_proxies.clone(),
        });
        let acceptor = TcpListener::bind(config.listen_addr)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.listen_addr,
                source,
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .unwrap_or(config.listen_addr);
        Ok(Self {
            acceptor,
            addr,
            app: routes(state).boxed(),
        })
    }

    /// The address actually bound (useful with port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish (up to 10 s).
    ///
    /// # Errors
    /// The server's I/O failed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "serving");
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown_signal(), Some(Duration::from_secs(10)))
            .await
    }
}

/// The spec as served at `/openapi.json` and `/openapi.yaml`: the one poem-openapi generates from
/// the handlers, with the request bodies closed (see [`close_request_bodies`]) and what else
/// poem-openapi cannot say added (see [`complete_spec`]).
#[must_use]
pub fn served_spec() -> serde_json::Value {
    let mut spec: serde_json::Value =
        serde_json::from_str(&api_service().spec()).expect("poem-openapi writes valid JSON");
    close_request_bodies(&mut spec);
    complete_spec(&mut spec);
    spec
}

/// The whole application: API, spec, explorer and home page, behind the middleware.
pub fn routes(state: SharedState) -> impl Endpoint<Output = poem::Response> {
    let api = api_service();
    let spec = served_spec();
    let allowed = AllowedMethods::from_spec(&spec);
    let spec_json = serde_json::to_string_pretty(&spec).expect("a JSON value serialises");
    let spec_yaml = serde_yaml::to_string(&spec).expect("a JSON value serialises as YAML");
    let spec_json = make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(spec_json.clone())
    });
    let spec_yaml = make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/yaml")
            .body(spec_yaml.clone())
    });
    let explorer = api.swagger_ui();
    let redoc = api.redoc();
    // The home page cannot be a route of its own at "/": the API is nested at "/", and poem's
    // router prefers the nested catch-all there. So the API's endpoint answers "/" itself.
    let api = api.into_endpoint().around(|api, req| async move {
        if req.uri().path() == "/" && req.method() == poem::http::Method::GET {
            return Ok(Html(HOME_PAGE).into_response());
        }
        api.call(req).await.map(IntoResponse::into_response)
    });
    let api = with_connection_slot(api);
    Route::new()
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .nest("/explorer", explorer)
        .nest("/redoc", redoc)
        .nest("/", api)
        .data(state)
        .with(Tracing)
        .with(CatchPanic::new())
        .catch_all_error(render_any_error)
        .around(move |endpoint, req| {
            let allowed = allowed.clone();
            async move {
                let path = req.uri().path().to_string();
                let mut response = endpoint.call(req).await?;
                if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                    if let Some(methods) = allowed.for_path(&path) {
                        if let Ok(value) = HeaderValue::from_str(&methods) {
                            response.headers_mut().insert(header::ALLOW, value);
                        }
                    }
                }
                Ok(response)
            }
        })
}

/// The methods each path of the spec supports, for the `Allow` header every 405 must carry
/// (RFC 9110 §15.5.6), which poem does not add.
#[derive(Debug, Clone)]
struct AllowedMethods(Arc<Vec<(Vec<String>, String)>>);

impl AllowedMethods {
    fn from_spec(spec: &serde_json::Value) -> Self {
        let paths = spec["paths"].as_object().into_iter().flatten();
        let table = paths
            .map(|(template, operations)| {
                let segments = template.split('/').map(str::to_string).collect();
                let mut methods: Vec<String> = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .map(|method| method.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_string());
                }
                (segments, methods.join(", "))
            })
            .collect();
        Self(Arc::new(table))
    }

    /// The `Allow` value for a request path, matching `{parameter}` segments to anything.
    fn for_path(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
            })
            .map(|(_, methods)| methods.clone())
    }
}

const HOME_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>newsapi</title></head>
<body>
<h1>newsapi</h1>
<p>A News REST API secured with JWT. Sign up, sign in, and send the access token as a bearer token.</p>
<ul>
<li><a href="/explorer">Swagger UI explorer</a></li>
<li><a href="/redoc">Redoc reference</a></li>
<li><a href="/openapi.json">openapi.json</a> · <a href="/openapi.yaml">openapi.yaml</a></li>
<li><a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></li>
</ul>
</body>
</html>
"#;

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
