//! `spawn_app()`: a real server on 127.0.0.1:0 over a database of its own, cloned from a template
//! that is migrated once (per set of migrations) under an advisory lock.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use newsapi::{config::Config, startup::Application};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// The maintenance database of the server the tests may create databases on.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn database_url(name: &str) -> String {
    let server = server_url();
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// A template name that changes whenever the migrations do, so a stale template is never used.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut files: Vec<_> =
        walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"));
    files.sort();
    for file in files {
        for byte in file
            .to_string_lossy()
            .bytes()
            .chain(std::fs::read(&file).unwrap())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("newsapi_template_{hash:016x}")
}

fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(path));
        } else {
            out.push(path);
        }
    }
    out
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = AsyncPgConnection::establish(&server_url())
                .await
                .expect("TEST_DATABASE_URL must reach PostgreSQL");
            // Test binaries run concurrently: one migrates, the others wait for it.
            diesel::sql_query("SELECT pg_advisory_lock(7310001)")
                .execute(&mut admin)
                .await
                .unwrap();
            let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                &format!("EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"),
            ))
            .get_result(&mut admin)
            .await
            .unwrap();
            if !exists {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let conn = AsyncPgConnection::establish(&database_url(&building))
                    .await
                    .unwrap();
                newsapi::db::migrate(conn).await.unwrap();
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
            diesel::sql_query("SELECT pg_advisory_unlock(7310001)")
                .execute(&mut admin)
                .await
                .unwrap();
            name
        })
        .await
}

/// A fresh database cloned from the migrated template; dropped with the guard.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let template = template().await;
        let name = format!(
            "newsapi_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let mut admin = AsyncPgConnection::establish(&server_url()).await.unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = database_url(&name);
        Self { name, url }
    }

    /// A direct connection, for checking what a request did or did not change.
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }

    /// Drops the database now, connections and all.
    pub async fn drop_now(&self) {
        let mut admin = AsyncPgConnection::establish(&server_url()).await.unwrap();
        diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The directory a server on it wrote mail files into (made at its start-up).
        let _ = std::fs::remove_dir_all(mail_dir(self));
        let name = self.name.clone();
        // Drop runs outside async; a thread with a runtime of its own does the async cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&server_url()).await {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                }
            });
        })
        .join();
    }
}

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    /// `http://` and the address of the `METRICS_ADDR` listener, when the test set one.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub db: TestDatabase,
}

/// Starts the server on its own database, with bcrypt at its lowest cost.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra configuration values.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    spawn_app_via(db, &url, overrides).await
}

/// Where a server on `db` writes its mail when `SMTP_URL` is unset: a directory per test database.
pub fn mail_dir(db: &TestDatabase) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("newsapi-mail-{}", db.name))
}

/// Starts the server over `db`, reaching it at `database_url` (through a proxy, say).
pub async fn spawn_app_via(
    db: TestDatabase,
    database_url: &str,
    overrides: &[(&str, &str)],
) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.to_string()),
        ("JWT_SECRET".into(), TEST_SECRET.into()),
        ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
        ("BCRYPT_COST".into(), "4".into()),
        ("DATABASE_POOL_SIZE".into(), "4".into()),
        ("DATABASE_POOL_TIMEOUT_MS".into(), "2000".into()),
        // Without `SMTP_URL` mail goes to files: a directory of the test's own, not ./mail.
        (
            "MAIL_OUTBOX_DIR".into(),
            mail_dir(&db).to_string_lossy().into_owned(),
        ),
    ]);
    for (k, v) in overrides {
        vars.insert((*k).to_string(), (*v).to_string());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let app = Application::build(&config).await.unwrap();
    let address = format!("http://{}", app.addr());
    let metrics_address = app.metrics_addr().map(|addr| format!("http://{addr}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        db,
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
    }

    pub async fn signup(&self, body: &Value) -> Response {
        self.request(Method::POST, "/signup")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn signin(&self, email: &str, password: &str) -> Response {
        self.request(Method::POST, "/signin")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Signs up a new user and returns their id and an access token.
    pub async fn new_user(&self, email: &str) -> (String, String) {
        let response = self
            .signup(&json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), 201, "signup of {email}");
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let response = self.signin(email, PASSWORD).await;
        assert_eq!(response.status(), 200, "signin of {email}");
        let token = response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        (id, token)
    }

    /// Creates a news item and returns its JSON.
    pub async fn create_news(&self, token: &str, body: &Value) -> Value {
        let response = self
            .authed(Method::POST, "/news", token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Signs in with `email` and `password`, which must succeed; returns the whole token response
    /// (`access_token`, `refresh_token`, …).
    pub async fn tokens(&self, email: &str, password: &str) -> Value {
        let response = self.signin(email, password).await;
        assert_eq!(response.status(), 200, "signin of {email}");
        response.json().await.unwrap()
    }

    /// `POST /token/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.request(Method::POST, "/token/refresh")
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap()
    }

    /// `GET /whoami` with `token` as the bearer token.
    pub async fn whoami(&self, token: &str) -> Response {
        self.authed(Method::GET, "/whoami", token)
            .send()
            .await
            .unwrap()
    }

    /// Whether the main listener's `GET /metrics` has exactly this sample line; the scrape, to
    /// show when it has not.
    pub async fn has_metric_line(&self, line: &str) -> (bool, String) {
        let metrics = self
            .request(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (metrics.lines().any(|l| l == line), metrics)
    }
}

/// Sends `request` and returns its body as JSON, whatever the status.
pub async fn json_of(request: RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Asserts a response is problem+json with `status`, and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_problem_for(response, status, "response").await
}

/// [`assert_problem`] for one case of a table: every message names `case`.
pub async fn assert_problem_for(response: Response, status: u16, case: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{case}: status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(
        content_type, "application/problem+json",
        "{case}: content type"
    );
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{case}: status in body: {body}");
    // Every problem names its occurrence by the request id the answer carries.
    assert!(request_id.is_some(), "{case}: no X-Request-Id");
    assert_eq!(
        body["instance"].as_str(),
        request_id.as_deref(),
        "{case}: instance is the request id: {body}"
    );
    assert!(body["type"].is_string(), "{case}: type: {body}");
    assert!(body["title"].is_string(), "{case}: title: {body}");
    assert!(body["detail"].is_string(), "{case}: detail: {body}");
    body
}

/// The single `bigint` a query returns, e.g. `SELECT count(*) FROM news`, read straight from the
/// database.
pub async fn db_count(app: &TestApp, query: &str) -> i64 {
    let mut conn = app.db.connect().await;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({query})"
    )))
    .get_result(&mut conn)
    .await
    .unwrap_or_else(|err| panic!("{query}: {err}"))
}

/// The single `text` a query returns, read straight from the database.
pub async fn db_text(app: &TestApp, query: &str) -> String {
    let mut conn = app.db.connect().await;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
        "({query})"
    )))
    .get_result(&mut conn)
    .await
    .unwrap_or_else(|err| panic!("{query}: {err}"))
}

/// Runs a statement straight on the database; returns the rows it touched.
pub async fn db_execute(app: &TestApp, statement: &str) -> usize {
    let mut conn = app.db.connect().await;
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("{statement}: {err}"))
}

/// Polls `query`, a count, until it is above zero: for a test that must not act before the server
/// has reached a state only the database shows. Fails the test, naming `what`, after `timeout`.
pub async fn wait_for_db(app: &TestApp, query: &str, what: &str, timeout: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while db_count(app, query).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {timeout:?} in vain for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The claims of a token the server issued, read without verifying it; tests change one claim
/// and re-sign it with [`sign_token`].
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The `kid` of the tokens a server with [`TEST_SECRET`] issues.
pub fn test_kid() -> String {
    newsapi::auth::jwt::hs256_kid(TEST_SECRET.as_bytes())
}

/// Signs `claims` as the server would: HS256 with [`TEST_SECRET`], under its `kid`.
pub fn sign_token(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(test_kid());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Asserts a response body shows none of the server's insides: SQL, the ORM, a panic or a bcrypt
/// hash.
pub fn assert_no_internals(body: &str) {
    for needle in ["SELECT", "diesel", "panicked", "$2b$", "$2a$", "$2y$"] {
        assert!(!body.contains(needle), "body leaks {needle:?}: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions, challenges and the command line

/// The `access_token` of a token response.
pub fn access_token(tokens: &Value) -> &str {
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {tokens}"))
}

/// The `refresh_token` of a token response.
pub fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh_token: {tokens}"))
}

/// The `WWW-Authenticate` header of a response, if it has one.
pub fn www_authenticate(response: &Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Asserts a 401 problem+json whose challenge is exactly `Bearer error="invalid_token"` (RFC 6750
/// §3.1), and returns its body.
pub async fn assert_invalid_token(response: Response) -> Value {
    assert_invalid_token_for(response, "response").await
}

/// [`assert_invalid_token`] for one case of a table: every message names `case`.
pub async fn assert_invalid_token_for(response: Response, case: &str) -> Value {
    assert_eq!(
        www_authenticate(&response).as_deref(),
        Some(r#"Bearer error="invalid_token""#),
        "{case}: WWW-Authenticate on a {}",
        response.status()
    );
    let body = assert_problem_for(response, 401, case).await;
    assert_no_internals(&body.to_string());
    body
}

/// Runs the `newsapi` binary with `args` against the app's database (and nothing from the
/// environment or a `.env`), writing `stdin` to its standard input.
pub async fn run_cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let url = app.db.url.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_newsapi"))
            .args(&args)
            .env_clear()
            .env("DATABASE_URL", url)
            .env("JWT_SECRET", TEST_SECRET)
            .env("BCRYPT_COST", "4")
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the newsapi binary runs");
        // A command that never reads its input may have exited already; that is its business.
        let _ = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes());
        child.wait_with_output().expect("the newsapi binary ends")
    })
    .await
    .unwrap()
}

/// The field names of a 422's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 lists its errors: {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

/// How many users the database holds.
pub async fn users(app: &TestApp) -> i64 {
    db_count(app, "SELECT count(*) FROM users").await
}

// ---------------------------------------------------------------------------------------------
// News

/// How many news items the database holds.
pub async fn news_rows(app: &TestApp) -> i64 {
    db_count(app, "SELECT count(*) FROM news").await
}

/// Every stored column of a news item but its id, `|`-separated, starting with the title and the
/// body: what a refused write must leave as it was.
const NEWS_COLUMNS: &str = "title || '|' || body || '|' || date_created::text || '|' || \
                            date_updated::text || '|' || author_id::text || '|' || version::text";

/// Everything stored about news item `id` ([`NEWS_COLUMNS`]), to show that a refused write changed
/// nothing.
pub async fn stored_news(app: &TestApp, id: &str) -> String {
    db_text(
        app,
        &format!("SELECT {NEWS_COLUMNS} FROM news WHERE id = '{id}'"),
    )
    .await
}

/// Everything stored about every news item, one line per item in id order.
pub async fn all_news(app: &TestApp) -> String {
    db_text(
        app,
        &format!(
            "SELECT coalesce(string_agg(id::text || '|' || {NEWS_COLUMNS}, E'\\n' ORDER BY id), '') \
             FROM news"
        ),
    )
    .await
}

/// The date the news of [`author_with_news`] is created with.
pub const ORIGINAL_DATE: &str = "2024-01-01T00:00:00.000001Z";

/// A user who has written one news item, as [`author_with_news`] made them.
pub struct AuthorWithNews {
    pub author_id: String,
    pub token: String,
    /// The item's id.
    pub id: String,
    /// The item as `POST /news` answered it.
    pub news: Value,
    /// The item's `ETag` from that answer.
    pub etag: String,
}

/// Signs up `author@example.com`, who writes one news item: `Original title`, `Original body`,
/// created at [`ORIGINAL_DATE`].
pub async fn author_with_news(app: &TestApp) -> AuthorWithNews {
    let (author_id, token) = app.new_user("author@example.com").await;
    let response = app
        .authed(Method::POST, "/news", &token)
        .json(&json!({
            "title": "Original title",
            "body": "Original body",
            "date_created": ORIGINAL_DATE,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "the author's news");
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .expect("POST /news answers with an ETag")
        .to_str()
        .unwrap()
        .to_string();
    let news: Value = response.json().await.unwrap();
    let id = news["id"].as_str().unwrap().to_string();
    AuthorWithNews {
        author_id,
        token,
        id,
        news,
        etag,
    }
}

/// 127.0.0.`n`: all of 127.0.0.0/8 is loopback here, so tests tell client addresses apart by
/// binding their sockets to different ones.
pub fn loopback(n: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n))
}

/// A client whose connections come from 127.0.0.`n`.
pub fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(loopback(n))
        .build()
        .unwrap()
}

/// The test server's socket address, for raw connections.
pub fn server_addr(app: &TestApp) -> std::net::SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("the test server listens on an IP address")
}

/// `POST /signin` through `client` (one bound to a client address of its own).
pub async fn signin_with(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> Response {
    client
        .post(format!("{}/signin", app.address))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The log

/// The real binary, serving a fresh database, its standard error collected line by line as it was
/// written (colour codes included, if any): for what only a process shows — its log (the
/// in-process servers of [`spawn_app`] share the test binary's global subscriber, and there is
/// none), signals, its exit, limits set on it.
pub struct LoggedServer {
    pub app: TestApp,
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

/// How long a log line may take to show up: the `serving` line covers start-up on a loaded
/// machine; a request's lines are written before its answer is sent, so for them this only
/// covers the reader thread.
const LOG_WAIT: Duration = Duration::from_secs(30);

impl LoggedServer {
    /// Starts the binary logging in `format` (`json` or `text`), with `env` added.
    pub async fn start(format: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(format, env, None).await
    }

    /// [`LoggedServer::start`], and with `open_files`, that limit on its open files (soft and
    /// hard, set by the shell that execs it, so the server cannot raise it).
    pub async fn start_with(format: &str, env: &[(&str, &str)], open_files: Option<u32>) -> Self {
        let db = TestDatabase::create().await;
        let binary = env!("CARGO_BIN_EXE_newsapi");
        let mut command = match open_files {
            Some(limit) => {
                let mut command = Command::new("bash");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\""))
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("JWT_SECRET", TEST_SECRET)
            .env("BCRYPT_COST", "4")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", format)
            // Without `SMTP_URL` mail goes to files: a directory of the test's own, not ./mail.
            .env("MAIL_OUTBOX_DIR", mail_dir(&db))
            .envs(env.iter().copied())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the newsapi binary runs");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            // Bytes, not `lines()`: a line that is not UTF-8 must show up in the assertions too.
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\n')
                    .to_string();
                collected.lock().unwrap().push(text);
                line.clear();
            }
        });
        let mut server = Self {
            app: TestApp {
                address: String::new(),
                client: reqwest::Client::new(),
                db,
                metrics_address: None,
            },
            child: Mutex::new(child),
            lines,
        };
        let serving = server.wait_for_line(|line| line.contains("serving")).await;
        let addr = serving_addr(&serving)
            .unwrap_or_else(|| panic!("no address in the serving line: {serving}"));
        server.app.address = format!("http://{addr}");
        server
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The log so far, as one text.
    pub fn log(&self) -> String {
        self.lines().join("\n")
    }

    /// The first line `matches`, waiting for it up to [`LOG_WAIT`].
    pub async fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LOG_WAIT;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| matches(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no such log line within {LOG_WAIT:?}; the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Sends the server `SIGTERM`, as an orchestrator stopping it does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits at most `within` for the process to exit; its status, or `None` if it still runs.
    pub async fn exited(&self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A row lock on news item `id`, held by an open transaction of the test until released: what
/// keeps a write of the server waiting in PostgreSQL for as long as a test needs.
pub struct RowLock(AsyncPgConnection);

impl RowLock {
    pub async fn take(app: &TestApp, id: &str) -> Self {
        let mut conn = app.db.connect().await;
        diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
        let locked = diesel::sql_query(format!("SELECT 1 FROM news WHERE id = '{id}' FOR UPDATE"))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(locked, 1, "the news item is locked");
        Self(conn)
    }

    pub async fn release(mut self) {
        diesel::sql_query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .unwrap();
    }
}

/// The address of the `serving` line, in either format (`"addr":"…"` or `addr=…`).
fn serving_addr(line: &str) -> Option<String> {
    if let Ok(value) = serde_json::from_str::<Value>(line) {
        return value["addr"].as_str().map(str::to_string);
    }
    let rest = &line[line.find("addr=")? + "addr=".len()..];
    Some(rest.split_whitespace().next()?.to_string())
}
