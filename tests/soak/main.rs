//! `make soak`: a bounded mixed load against the release server, with the database cut off in the
//! middle, that reports what a client saw and what the database kept.
//!
//! The server runs as its own process over a fresh database, reached through a TCP proxy this
//! program controls. For `SOAK_SECS` (default 300) readers list and fetch news, writers create news
//! with an `Idempotency-Key` (retrying a failed or unanswered create with the same key, as a client
//! should), and one client signs in and refreshes. Halfway through, the proxy drops every database
//! connection and refuses new ones for `SOAK_CUT_SECS` (default 10).
//!
//! It prints, per minute: requests, statuses, p50/p99 latency and the server's peak RSS; then the
//! rows written against the creates acknowledged. It fails (exit 1) on any status the contract does
//! not document for the request, any 500, any request without an answer, or rows ≠ acknowledged.
//!
//! Run through `make soak` (release build). Not part of `cargo test`: `test = false` in Cargo.toml.

use std::{
    collections::{BTreeMap, HashSet},
    io::Write,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};

// The fault tests' proxy (`tests/api/proxy.rs`), which asks its harness for `helpers::server_url`.
#[allow(dead_code)] // The soak only kills and restores.
#[path = "../api/proxy.rs"]
mod proxy;

mod helpers {
    /// The maintenance database of the PostgreSQL server the soak runs on (`TEST_DATABASE_URL`).
    pub fn server_url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
    }
}

/// The settings of one run, from the environment.
struct Settings {
    secs: u64,
    cut_secs: u64,
    readers: usize,
    writers: usize,
}

impl Settings {
    fn from_env() -> Self {
        let get = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            secs: get("SOAK_SECS", 300),
            cut_secs: get("SOAK_CUT_SECS", 10),
            readers: usize::try_from(get("SOAK_READERS", 8)).unwrap_or(8),
            writers: usize::try_from(get("SOAK_WRITERS", 2)).unwrap_or(2),
        }
    }
}

/// What one request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// No answer: the connection failed or the client gave up.
    NoAnswer,
}

/// The kinds of request, each with the statuses the contract documents for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    List,
    Get,
    Create,
    Signin,
    Refresh,
}

impl Kind {
    fn documented(self, status: u16) -> bool {
        match self {
            Self::List => matches!(status, 200 | 503),
            Self::Get => matches!(status, 200 | 404 | 503),
            // 409: a retry that overtook its own first attempt, still running.
            Self::Create => matches!(status, 201 | 409 | 503),
            Self::Signin | Self::Refresh => matches!(status, 200 | 429 | 503),
        }
    }
}

struct Sample {
    at: Duration,
    kind: Kind,
    outcome: Outcome,
    latency: Duration,
}

#[derive(Default)]
struct Record {
    samples: Vec<Sample>,
    /// (second, RSS in KiB) of the server.
    rss: Vec<(u64, u64)>,
    /// Ids of the news whose creation was acknowledged with 201.
    acknowledged: Vec<String>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

const PASSWORD: &str = "soak test passphrase 42";

#[tokio::main]
async fn main() {
    use diesel_async::RunQueryDsl;
    let settings = Settings::from_env();
    let server_url = helpers::server_url();
    let database = format!("newsapi_soak_{}", std::process::id());
    let base = server_url
        .rsplit_once('/')
        .map_or(server_url.as_str(), |(base, _)| base)
        .to_string();
    let mut admin = AsyncPgConnection::establish(&server_url)
        .await
        .expect("the test database server answers (TEST_DATABASE_URL)");
    diesel::sql_query(format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");

    let outcome = run(&settings, &base, &database).await;

    diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    match outcome {
        Ok(()) => println!("soak: clean"),
        Err(failures) => {
            for failure in &failures {
                eprintln!("soak: FAILED: {failure}");
            }
            std::process::exit(1);
        }
    }
}

async fn run(settings: &Settings, base: &str, database: &str) -> Result<(), Vec<String>> {
    let proxy = proxy::Proxy::start().await;
    let proxied = proxy.url(&format!("{base}/{database}"));
    let listen = free_addr();
    std::fs::create_dir_all("target/soak").unwrap();
    let log = std::fs::File::create("target/soak/server.log").unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_newsapi"))
        .env_clear()
        .env("DATABASE_URL", &proxied)
        .env("JWT_SECRET", random_hex(32))
        .env("LISTEN_ADDR", listen.to_string())
        .env("LOG_FORMAT", "json")
        // Cost 10 as in the sign-in benchmark: the soak is about staying up, not about hashing.
        .env("BCRYPT_COST", "10")
        .env("ACCESS_TOKEN_TTL_SECS", (settings.secs + 600).to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the newsapi binary runs");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let url = format!("http://{listen}");
    if !wait_healthy(&client, &url).await {
        stop(&mut server);
        return Err(vec![
            "the server did not come up; see target/soak/server.log".into(),
        ]);
    }

    let tokens = sign_up_users(&client, &url, settings.writers.max(1) + 1).await;
    let record = Arc::new(Mutex::new(Record::default()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(settings.secs);
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for n in 0..settings.readers {
        tasks.push(tokio::spawn(reader(
            client.clone(),
            url.clone(),
            tokens[n % tokens.len()].clone(),
            Arc::clone(&record),
            start,
            deadline,
        )));
    }
    for n in 0..settings.writers {
        tasks.push(tokio::spawn(writer(
            client.clone(),
            url.clone(),
            tokens[n % tokens.len()].clone(),
            Arc::clone(&record),
            start,
            deadline,
        )));
    }
    tasks.push(tokio::spawn(signer(
        client.clone(),
        url.clone(),
        "soak-0@example.com".to_string(),
        Arc::clone(&record),
        start,
        deadline,
    )));
    let sampler = tokio::spawn(sample_rss(
        server.id(),
        Arc::clone(&record),
        start,
        Arc::clone(&running),
    ));

    // The fault, halfway through.
    let cut_at = Duration::from_secs(settings.secs / 2);
    tokio::time::sleep_until((start + cut_at).into()).await;
    println!(
        "soak: cutting the database off at {} s for {} s",
        cut_at.as_secs(),
        settings.cut_secs
    );
    proxy.kill();
    tokio::time::sleep(Duration::from_secs(settings.cut_secs)).await;
    proxy.restore();
    println!("soak: database back at {} s", start.elapsed().as_secs());

    for task in tasks {
        task.await.unwrap();
    }
    running.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    stop(&mut server);

    let rows = stored_ids(&format!("{base}/{database}")).await;
    let failures = report(settings, &record.lock().unwrap(), &rows);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Prints the tables and answers what is wrong.
fn report(settings: &Settings, record: &Record, rows: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    let minutes = settings.secs.div_ceil(60).max(1);
    let mut out = String::new();
    out.push_str(&format!(
        "\n### Soak: {} s, {} readers, {} writers, 1 sign-in client; database cut at {} s for {} s\n\n",
        settings.secs,
        settings.readers,
        settings.writers,
        settings.secs / 2,
        settings.cut_secs
    ));
    out.push_str("| minute | requests | statuses | p50 ms | p99 ms | peak RSS MiB |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for minute in 0..minutes {
        let in_minute: Vec<&Sample> = record
            .samples
            .iter()
            .filter(|s| s.at.as_secs() / 60 == minute)
            .collect();
        let mut latencies: Vec<Duration> = in_minute.iter().map(|s| s.latency).collect();
        latencies.sort();
        let statuses = histogram(in_minute.iter().map(|s| s.outcome));
        let rss = record
            .rss
            .iter()
            .filter(|(at, _)| at / 60 == minute)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0);
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
            minute + 1,
            in_minute.len(),
            statuses,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            rss as f64 / 1024.0
        ));
    }
    let mut by_kind: BTreeMap<Kind, Vec<Outcome>> = BTreeMap::new();
    for sample in &record.samples {
        by_kind.entry(sample.kind).or_default().push(sample.outcome);
        match sample.outcome {
            Outcome::Status(status) if !sample.kind.documented(status) => failures.push(format!(
                "{:?} at {:.1} s: undocumented status {status}",
                sample.kind,
                sample.at.as_secs_f64()
            )),
            Outcome::NoAnswer => failures.push(format!(
                "{:?} at {:.1} s: no answer",
                sample.kind,
                sample.at.as_secs_f64()
            )),
            Outcome::Status(_) => {}
        }
    }
    out.push_str("\n| request | count | statuses |\n|---|---|---|\n");
    for (kind, outcomes) in &by_kind {
        out.push_str(&format!(
            "| {kind:?} | {} | {} |\n",
            outcomes.len(),
            histogram(outcomes.iter().copied())
        ));
    }
    let acknowledged: HashSet<&str> = record.acknowledged.iter().map(String::as_str).collect();
    let stored: HashSet<&str> = rows.iter().map(String::as_str).collect();
    out.push_str(&format!(
        "\ncreates acknowledged: {} ({} distinct); rows written: {}; acknowledged but missing: {}; \
         written but never acknowledged: {}\n",
        record.acknowledged.len(),
        acknowledged.len(),
        rows.len(),
        acknowledged.difference(&stored).count(),
        stored.difference(&acknowledged).count()
    ));
    let rss_first = record.rss.first().map_or(0, |r| r.1);
    let rss_last = record.rss.last().map_or(0, |r| r.1);
    out.push_str(&format!(
        "server RSS: {:.1} MiB after start-up, {:.1} MiB at the end\n",
        rss_first as f64 / 1024.0,
        rss_last as f64 / 1024.0
    ));
    print!("{out}");
    let _ = std::fs::File::create("target/soak/report.md").map(|mut f| f.write_all(out.as_bytes()));
    if acknowledged.len() != record.acknowledged.len() {
        failures.push("one create was acknowledged twice with different ids".into());
    }
    if acknowledged != stored {
        failures.push(format!(
            "rows written ({}) are not the creates acknowledged ({})",
            stored.len(),
            acknowledged.len()
        ));
    }
    failures.truncate(20);
    failures
}

fn histogram(outcomes: impl Iterator<Item = Outcome>) -> String {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome).or_default() += 1;
    }
    counts
        .iter()
        .map(|(outcome, n)| match outcome {
            Outcome::Status(status) => format!("{status}×{n}"),
            Outcome::NoAnswer => format!("no answer×{n}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn send(
    record: &Mutex<Record>,
    start: Instant,
    kind: Kind,
    request: reqwest::RequestBuilder,
) -> Option<(u16, reqwest::header::HeaderMap, Value)> {
    let sent = Instant::now();
    let result = request.send().await;
    let (outcome, answer) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.json().await.unwrap_or(Value::Null);
            (Outcome::Status(status), Some((status, headers, body)))
        }
        Err(_) => (Outcome::NoAnswer, None),
    };
    record.lock().unwrap().samples.push(Sample {
        at: sent - start,
        kind,
        outcome,
        latency: sent.elapsed(),
    });
    answer
}

/// Lists news, and every fifth time fetches one of the page.
async fn reader(
    client: reqwest::Client,
    url: String,
    token: String,
    record: Arc<Mutex<Record>>,
    start: Instant,
    deadline: Instant,
) {
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let list = client
            .get(format!("{url}/news?limit=20"))
            .bearer_auth(&token);
        let Some((status, _, page)) = send(&record, start, Kind::List, list).await else {
            continue;
        };
        if status == 503 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if n % 5 == 0 {
            if let Some(id) = page["items"][0]["id"].as_str() {
                let get = client.get(format!("{url}/news/{id}")).bearer_auth(&token);
                send(&record, start, Kind::Get, get).await;
            }
        }
    }
}

/// Creates news, each with a key of its own; a create without a 201 is retried with the same key
/// until it gets one (up to 60 s past the deadline).
async fn writer(
    client: reqwest::Client,
    url: String,
    token: String,
    record: Arc<Mutex<Record>>,
    start: Instant,
    deadline: Instant,
) {
    let body = json!({"title": "Soak", "body": "x".repeat(1500)});
    while Instant::now() < deadline {
        let key = uuid::Uuid::new_v4().to_string();
        let give_up = deadline + Duration::from_secs(60);
        while Instant::now() < give_up {
            let create = client
                .post(format!("{url}/news"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body);
            match send(&record, start, Kind::Create, create).await {
                Some((201, _, news)) => {
                    if let Some(id) = news["id"].as_str() {
                        record.lock().unwrap().acknowledged.push(id.to_string());
                    }
                    break;
                }
                Some((_, headers, _)) => {
                    let wait = headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1u64)
                        .min(2);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                None => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

/// Signs in, refreshes a few times, and again.
async fn signer(
    client: reqwest::Client,
    url: String,
    email: String,
    record: Arc<Mutex<Record>>,
    start: Instant,
    deadline: Instant,
) {
    while Instant::now() < deadline {
        let signin = client
            .post(format!("{url}/signin"))
            .json(&json!({"email": email, "password": PASSWORD}));
        let Some((200, _, tokens)) = send(&record, start, Kind::Signin, signin).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut refresh = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for _ in 0..3 {
            let request = client
                .post(format!("{url}/token/refresh"))
                .json(&json!({"refresh_token": refresh}));
            match send(&record, start, Kind::Refresh, request).await {
                Some((200, _, tokens)) => {
                    refresh = tokens["refresh_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn sample_rss(
    pid: u32,
    record: Arc<Mutex<Record>>,
    start: Instant,
    running: Arc<AtomicBool>,
) {
    while AtomicBool::load(&running, Ordering::Relaxed) {
        if let Some(kib) = rss_kib(pid) {
            record
                .lock()
                .unwrap()
                .rss
                .push((start.elapsed().as_secs(), kib));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn sign_up_users(client: &reqwest::Client, url: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        let email = format!("soak-{i}@example.com");
        let signup = client
            .post(format!("{url}/signup"))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Soak"}))
            .send()
            .await
            .unwrap();
        assert_eq!(signup.status(), 201, "sign-up of {email}");
        let tokens_of: Value = client
            .post(format!("{url}/signin"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(tokens_of["access_token"].as_str().unwrap().to_string());
    }
    tokens
}

async fn wait_healthy(client: &reqwest::Client, url: &str) -> bool {
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            if response.status() == 200 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn stored_ids(url: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query("SELECT id::text AS id FROM news")
        .load::<IdRow>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect()
}

fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(16))
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect::<String>()
}
