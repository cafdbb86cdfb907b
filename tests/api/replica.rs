//! A read replica (`DATABASE_READ_URL`) on a real streaming standby: a PostgreSQL primary of the
//! tests' own (initdb on a free port, `wal_level=replica`) and a standby made of it with
//! `pg_basebackup -R`, shared by the tests of this file, which take turns on it (they pause its
//! replay). Each test has its own database on that primary, migrated by the server. The main
//! PostgreSQL is not touched. The pair is removed when the test process ends, however it ends: a
//! watchdog process started with the pair stops both clusters and deletes their directory once the
//! test process is gone.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard, OnceCell};

use crate::helpers::{
    TestApp, TestDatabase, assert_no_internals, assert_problem, claims_of, spawn_app_via,
};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The primary and its standby.
struct Pair {
    primary_port: u16,
    standby_port: u16,
}

static PAIR: OnceCell<Pair> = OnceCell::const_new();
/// The tests of this file take turns: pausing replay pauses it for every database.
static TURN: Mutex<()> = Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL program, as the `postgres` user when we are root (initdb refuses root).
fn pg(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn pair() -> &'static Pair {
    PAIR.get_or_init(|| async { tokio::task::block_in_place(start_pair) })
        .await
}

fn start_pair() -> Pair {
    let dir = std::env::temp_dir().join(format!(
        "newsapi-replica-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (primary, standby) = (dir.join("primary"), dir.join("standby"));
    // First the watchdog, so that whatever happens next is cleaned up.
    let stop = |data: &PathBuf| {
        let prefix = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "[ -d '{d}' ] && {prefix}{BIN}/pg_ctl -D '{d}' -m immediate -w stop >/dev/null 2>&1;",
            d = data.display()
        )
    };
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {} {} rm -rf '{}'",
        stop(&standby),
        stop(&primary),
        dir.display(),
        pid = std::process::id()
    );
    // `setsid -f` forks it off in a session of its own (no signal to the tests' process group
    // reaches it) and returns at once.
    let started = Command::new("setsid")
        .args(["-f", "sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the watchdog starts");
    assert!(started.success(), "the watchdog did not start");
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["postgres:postgres"]).arg(&dir);
                c
            },
            "chown",
        );
    }
    let (primary_port, standby_port) = (free_port(), free_port());
    let mut initdb = pg("initdb");
    initdb
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&primary);
    run(initdb, "initdb");
    let settings = |port: u16| {
        format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nfsync = off\n\
             full_page_writes = off\nshared_buffers = 16MB\nmax_connections = 60\n",
            dir.display()
        )
    };
    append(&primary.join("postgresql.conf"), &settings(primary_port));
    start(&primary, &dir.join("primary.log"));
    let mut basebackup = pg("pg_basebackup");
    basebackup
        .args(["-h", "127.0.0.1", "-p", &primary_port.to_string()])
        .args(["-U", "postgres", "-R", "-X", "stream", "--no-sync", "-D"])
        .arg(&standby);
    run(basebackup, "pg_basebackup");
    append(&standby.join("postgresql.conf"), &settings(standby_port));
    start(&standby, &dir.join("standby.log"));
    Pair {
        primary_port,
        standby_port,
    }
}

fn append(file: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn start(data: &std::path::Path, log: &std::path::Path) {
    let mut pg_ctl = pg("pg_ctl");
    pg_ctl
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .args(["-w", "-t", "60", "start"])
        .stdout(Stdio::null());
    run(pg_ctl, "pg_ctl start");
}

impl Pair {
    fn url(&self, port: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{database}")
    }

    fn primary(&self, database: &str) -> String {
        self.url(self.primary_port, database)
    }

    fn standby(&self, database: &str) -> String {
        self.url(self.standby_port, database)
    }
}

/// One SQL statement's first row's first column, as text.
async fn sql(url: &str, statement: &str) -> Option<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    let rows = client.simple_query(statement).await.unwrap();
    rows.into_iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

/// Waits until the standby has replayed everything the primary has written so far.
async fn caught_up(pair: &Pair) {
    let lsn = sql(&pair.primary("postgres"), "SELECT pg_current_wal_lsn()")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let query = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
    while sql(&pair.standby("postgres"), &query).await.as_deref() != Some("t") {
        assert!(Instant::now() < deadline, "the standby did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pause_replay(pair: &Pair) {
    sql(&pair.standby("postgres"), "SELECT pg_wal_replay_pause()").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sql(
        &pair.standby("postgres"),
        "SELECT pg_get_wal_replay_pause_state()",
    )
    .await
    .is_none_or(|state| state == "not paused")
    {
        assert!(Instant::now() < deadline, "replay did not pause");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn resume_replay(pair: &Pair) {
    sql(&pair.standby("postgres"), "SELECT pg_wal_replay_resume()").await;
}

/// This test's turn on the pair (replay running), a database of its own on the primary and a
/// server on it reading from the standby, once the standby has the migrated database.
async fn replica_app() -> (MutexGuard<'static, ()>, &'static Pair, TestApp) {
    let pair = pair().await;
    let turn = TURN.lock().await;
    // Whatever an earlier test left paused.
    resume_replay(pair).await;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "newsapi_replica_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sql(
        &pair.primary("postgres"),
        &format!("CREATE DATABASE {name}"),
    )
    .await;
    let url = pair.primary(&name);
    let read_url = pair.standby(&name);
    let db = TestDatabase {
        name,
        url: url.clone(),
    };
    let app = spawn_app_via(
        db,
        &url,
        &[
            ("DATABASE_READ_URL", &read_url),
            ("DATABASE_READ_POOL_SIZE", "3"),
        ],
    )
    .await;
    caught_up(pair).await;
    (turn, pair, app)
}

async fn titles(app: &TestApp, token: &str) -> Vec<String> {
    let response = app
        .authed(Method::GET, "/news?limit=100", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["title"].as_str().unwrap().to_string())
        .collect()
}

async fn count(app: &TestApp, token: &str) -> i64 {
    let response = app
        .authed(Method::GET, "/news/count", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["count"]
        .as_i64()
        .unwrap()
}

/// `db_replica_lag_seconds` as scraped now (NaN when absent).
async fn lag(app: &TestApp) -> f64 {
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("db_replica_lag_seconds "))
        .map_or(f64::NAN, |value| value.parse().unwrap())
}

/// Waits up to `within` for `ok(lag)`.
async fn wait_for_lag(app: &TestApp, within: Duration, ok: impl Fn(f64) -> bool, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let seen = lag(app).await;
        if ok(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the lag stayed {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_count_come_from_the_replica_a_just_created_item_from_the_primary_and_the_lag_shows()
 {
    let (_turn, pair, app) = replica_app().await;
    let (_, token) = app.new_user("reader@example.com").await;
    app.create_news(&token, &json!({"title": "before", "body": "replayed"}))
        .await;
    caught_up(pair).await;
    assert_eq!(titles(&app, &token).await, ["before"]);
    // Caught up, with nothing to replay: 0.
    wait_for_lag(&app, Duration::from_secs(30), |lag| lag == 0.0, "caught up").await;

    pause_replay(pair).await;
    let created = app
        .create_news(
            &token,
            &json!({"title": "after", "body": "not replayed yet"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    // The write's own answer carries the item.
    assert_eq!(created["title"], "after");
    // The list and the count come from the replica, which has not replayed it...
    assert_eq!(titles(&app, &token).await, ["before"]);
    assert_eq!(count(&app, &token).await, 1);
    // ...while the primary has it, and a get of the item just created finds it there.
    assert_eq!(
        sql(&app.db.url, "SELECT count(*) FROM news")
            .await
            .as_deref(),
        Some("2")
    );
    let got = app
        .authed(Method::GET, &format!("/news/{id}"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.unwrap()["title"], "after");
    // A missing item is still a 404 (from the primary).
    let missing = app
        .authed(
            Method::GET,
            &format!("/news/{}", uuid::Uuid::now_v7()),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(missing, 404).await;
    // WAL waits on the replica: the lag rises, and grows while replay stays paused.
    wait_for_lag(&app, Duration::from_secs(30), |lag| lag > 0.0, "paused").await;
    let first = lag(&app).await;
    wait_for_lag(
        &app,
        Duration::from_secs(30),
        |lag| lag >= first + 1.0,
        "still paused, the lag grows",
    )
    .await;

    resume_replay(pair).await;
    caught_up(pair).await;
    assert_eq!(titles(&app, &token).await, ["after", "before"]);
    assert_eq!(count(&app, &token).await, 2);
    wait_for_lag(&app, Duration::from_secs(30), |lag| lag == 0.0, "resumed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_is_immediate_on_replica_reads_whatever_the_lag() {
    let (_turn, pair, app) = replica_app().await;
    let (_, token) = app.new_user("leaver@example.com").await;
    let tokens = app
        .tokens("leaver@example.com", crate::helpers::PASSWORD)
        .await;
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    let item = app
        .create_news(&token, &json!({"title": "t", "body": "b"}))
        .await;
    let path = format!("/news/{}", item["id"].as_str().unwrap());
    caught_up(pair).await;
    for route in ["/news", "/news/count", path.as_str()] {
        let response = app.authed(Method::GET, route, access).send().await.unwrap();
        assert_eq!(response.status(), 200, "{route} before the sign-out");
    }

    pause_replay(pair).await;
    let response = app
        .authed(Method::POST, "/signout", access)
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // The replica still holds the session as live: a check made there would let the token in.
    let sid = claims_of(access)["sid"].as_str().unwrap().to_string();
    let standby = pair.standby(&app.db.name);
    assert_eq!(
        sql(
            &standby,
            &format!("SELECT revoked_at IS NULL FROM refresh_families WHERE id = '{sid}'")
        )
        .await
        .as_deref(),
        Some("t"),
        "the replica replayed the sign-out; the test shows nothing"
    );
    for route in ["/news", "/news/count", path.as_str()] {
        let response = app.authed(Method::GET, route, access).send().await.unwrap();
        assert_eq!(response.status(), 401, "{route} after the sign-out");
        assert_problem(response, 401).await;
    }
    // The user's other session is unaffected, and reads still work with replay paused.
    let response = app.authed(Method::GET, &path, &token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    resume_replay(pair).await;
}

/// No pair needed: a replica nobody answers on.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_replica_makes_its_reads_503_and_leaves_writes_and_readiness_alone() {
    let closed = free_port();
    let db = TestDatabase::create().await;
    let url = db.url.clone();
    let name = db.name.clone();
    let read_url = format!("postgres://postgres@127.0.0.1:{closed}/{name}");
    let app = spawn_app_via(
        db,
        &url,
        &[
            ("DATABASE_READ_URL", read_url.as_str()),
            ("DATABASE_READ_POOL_SIZE", "3"),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let (_, token) = app.new_user("writer@example.com").await;
    let item = app
        .create_news(&token, &json!({"title": "t", "body": "b"}))
        .await;
    let path = format!("/news/{}", item["id"].as_str().unwrap());
    for route in ["/news", "/news/count", path.as_str()] {
        let response = app.authed(Method::GET, route, &token).send().await.unwrap();
        assert_eq!(response.status(), 503, "{route}");
        assert!(
            response.headers().contains_key("retry-after"),
            "{route}: no Retry-After"
        );
        let problem = assert_problem(response, 503).await;
        assert_no_internals(&problem.to_string());
        assert!(!problem.to_string().contains(&closed.to_string()));
    }
    // Writes and the primary's readiness do not depend on the replica.
    let response = app
        .authed(Method::PATCH, &path, &token)
        .json(&json!({"title": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ready = app.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The metrics say so.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (down, metrics) = app.has_metric_line("db_replica_up 0").await;
        if down {
            assert!(metrics.lines().any(|l| l == "db_replica_lag_seconds NaN"));
            assert!(
                metrics
                    .lines()
                    .any(|l| l == "db_read_pool_max_connections 3")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "db_replica_up never 0:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_replica_there_are_no_replica_metrics() {
    let app = crate::helpers::spawn_app().await;
    let (_, metrics) = app.has_metric_line("").await;
    assert!(metrics.contains("db_pool_max_connections 4"));
    assert!(!metrics.contains("db_replica"), "{metrics}");
    assert!(!metrics.contains("db_read_pool"), "{metrics}");
}
