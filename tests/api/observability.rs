//! The log as an operator reads it: one access line per request (route template, status, request
//! id, user), warnings and errors that name their request, no colour codes and no control
//! character from a request in a piped log, and a panic answered as a problem and logged with
//! its backtrace.
//!
//! The in-process servers of the other tests share this binary's (absent) global subscriber, so
//! these tests run the real binary with its standard error piped and read what it writes. The
//! panic test cannot (no route panics): it serves a panicking endpoint behind the application's
//! own middleware, in this process, on a current-thread runtime whose thread has the server's
//! JSON subscriber, writing to a buffer.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{Arc, Mutex},
    time::Duration,
};

use diesel_async::RunQueryDsl;
use newsapi::config::{Config, LogFormat};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    LoggedServer, TEST_SECRET, assert_no_internals, assert_problem, db_execute, server_addr,
};

impl LoggedServer {
    /// Every JSON line, parsed (a line that is not JSON fails the test).
    fn json_lines(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// The access lines of the request with `id`, waiting for the first.
    async fn access_lines(&self, id: &str) -> Vec<Value> {
        self.wait_for_line(|line| line.contains("newsapi::access") && line.contains(id))
            .await;
        self.json_lines()
            .into_iter()
            .filter(|line| line["target"] == "newsapi::access" && line["request_id"] == id)
            .collect()
    }

    /// The one access line of the request with `id`.
    async fn access_line(&self, id: &str) -> Value {
        let lines = self.access_lines(id).await;
        assert_eq!(lines.len(), 1, "one access line for {id}: {lines:#?}");
        lines.into_iter().next().unwrap()
    }
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Asserts no line holds a control character or a colour code, as written and, for JSON, as
/// decoded.
fn assert_clean(lines: &[String]) {
    for line in lines {
        assert!(!line.contains("\x1b["), "a colour code: {line:?}");
        assert!(
            !line.chars().any(char::is_control),
            "a control character: {line:?}"
        );
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            assert_strings_clean(&value, line);
        }
    }
}

fn assert_strings_clean(value: &Value, line: &str) {
    match value {
        Value::String(text) => assert!(
            !text.chars().any(char::is_control),
            "a control character in a value: {line}"
        ),
        Value::Array(items) => items.iter().for_each(|v| assert_strings_clean(v, line)),
        Value::Object(fields) => fields.values().for_each(|v| assert_strings_clean(v, line)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_has_one_access_line_with_its_route_status_id_and_user() {
    // Arrange
    let server = LoggedServer::start("json", &[]).await;
    let app = &server.app;
    let (user_id, token) = app.new_user("ada@example.com").await;
    let news = app
        .create_news(&token, &json!({"title": "Logged", "body": "Lines"}))
        .await;
    let id = news["id"].as_str().unwrap();

    // Act
    let read = app
        .authed(Method::GET, &format!("/news/{id}"), &token)
        .send()
        .await
        .unwrap();
    let listed = app
        .authed(Method::GET, "/news", &token)
        .send()
        .await
        .unwrap();
    let anonymous = app.request(Method::GET, "/whoami").send().await.unwrap();
    let unknown = app
        .request(Method::GET, &format!("/no/such/{id}"))
        .send()
        .await
        .unwrap();

    // Assert
    for (response, route, status, signed_in) in [
        (&read, "/news/{id}", 200, true),
        (&listed, "/news", 200, true),
        (&anonymous, "/whoami", 401, false),
        (&unknown, "unmatched", 404, false),
    ] {
        assert_eq!(response.status(), status, "{route}");
        let rid = request_id(response);
        let line = server.access_line(&rid).await;
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(line["latency_ms"].as_f64().is_some(), "{line}");
        assert!(
            line["remote_addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{line}"
        );
        assert_eq!(line["cancelled"], false, "{line}");
        if signed_in {
            assert_eq!(line["user_id"], user_id.as_str(), "{line}");
        } else {
            assert!(line.get("user_id").is_none(), "{line}");
        }
        // The route is the template, whatever the path.
        assert!(!line["route"].as_str().unwrap().contains(id), "{line}");
        assert!(line["uri"].as_str().unwrap().starts_with('/'), "{line}");
    }
    let body_len = read.bytes().await.unwrap().len();
    let line = server.access_line(&request_id(&anonymous)).await;
    assert!(line["bytes"].as_u64().unwrap() > 0, "{line}");
    let read_line = server
        .json_lines()
        .into_iter()
        .find(|l| l["target"] == "newsapi::access" && l["route"] == "/news/{id}")
        .unwrap();
    assert_eq!(read_line["bytes"], body_len, "{read_line}");
    // Sign-up, sign-in, the create and the four above: one access line each.
    let access = server
        .json_lines()
        .into_iter()
        .filter(|l| l["target"] == "newsapi::access")
        .count();
    assert_eq!(access, 7, "{}", server.lines().join("\n"));
    assert_clean(&server.lines());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_logged_while_serving_names_the_request() {
    // Arrange: a table the handler needs disappears under the running server
    let server = LoggedServer::start("json", &[]).await;
    let app = &server.app;
    let (_, token) = app.new_user("ada@example.com").await;
    db_execute(app, "DROP TABLE news CASCADE").await;

    // Act
    let response = app
        .authed(Method::GET, "/news", &token)
        .send()
        .await
        .unwrap();

    // Assert
    let rid = request_id(&response);
    assert_problem(response, 500).await;
    let error = server
        .wait_for_line(|line| line.contains("\"ERROR\""))
        .await;
    let error: Value = serde_json::from_str(&error).unwrap();
    assert_eq!(error["span"]["request_id"], rid.as_str(), "{error}");
    assert_eq!(server.access_line(&rid).await["status"], 500);
    // Every warning and error line names its request.
    for line in server.json_lines() {
        if line["level"] == "WARN" || line["level"] == "ERROR" {
            assert!(line["span"]["request_id"].is_string(), "{line}");
        }
    }
}

/// Sends `target` raw on a socket of its own, as the request line of a GET, and reads whatever
/// comes back (hyper refuses some targets with a bare 400 before the application sees them).
fn raw_get(addr: &str, target: &[u8]) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_control_character_from_a_request_reaches_the_log_in_either_format() {
    for format in ["json", "text"] {
        // Arrange
        let server = LoggedServer::start(format, &[]).await;
        let app = &server.app;

        // Act: encoded controls, raw ones in the request line (C0, DEL, and what the http crate
        // lets through: UTF-8 C1 controls and a bidirectional override), and in a header
        for target in [
            "/news/%00",
            "/%1b[31mred",
            "/news?a%0ab=1&c=%0d%0a",
            "/%0d%0afake",
        ] {
            let response = app.request(Method::GET, target).send().await.unwrap();
            let rid = request_id(&response);
            server.wait_for_line(|line| line.contains(&rid)).await;
        }
        let addr = server_addr(app).to_string();
        let raw: [&[u8]; 6] = [
            b"/news/a\xc2\x9b31m",
            b"/x\xe2\x80\xaeevil",
            b"/a\x1b[31mred",
            b"/a\x00b",
            b"/a\x7fb",
            b"/a?\xc2\x85=1",
        ];
        let handle = {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                for target in raw {
                    raw_get(&addr, target);
                }
            })
        };
        handle.await.unwrap();
        // The last request's line shows the others are written too.
        let marker = app
            .request(Method::GET, "/healthz")
            .header("x-request-id", "after-the-raw-requests")
            .send()
            .await
            .unwrap();
        assert_eq!(marker.status(), 200);
        server
            .wait_for_line(|line| line.contains("after-the-raw-requests"))
            .await;

        // Assert
        let lines = server.lines();
        assert_clean(&lines);
        // The C1 control and the override were written escaped, not dropped.
        let log = lines.join("\n");
        assert!(log.contains(r"\u{9b}"), "{format}: {log}");
        assert!(log.contains(r"\u{202e}"), "{format}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_dropped_before_its_answer_is_logged_as_cancelled() {
    // Arrange: the news table is locked, so a list waits
    let server = LoggedServer::start("json", &[]).await;
    let app = &server.app;
    let (user_id, token) = app.new_user("ada@example.com").await;
    let mut locker = app.db.connect().await;
    let mut locker = {
        diesel::sql_query("BEGIN")
            .execute(&mut locker)
            .await
            .unwrap();
        diesel::sql_query("LOCK TABLE news IN ACCESS EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        locker
    };

    // Act: the client gives up
    let outcome = app
        .authed(Method::GET, "/news", &token)
        .header("x-request-id", "the-impatient-client")
        .timeout(Duration::from_millis(500))
        .send()
        .await;

    // Assert
    assert!(outcome.is_err(), "the list waited for the lock");
    let line = server.access_line("the-impatient-client").await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["cancelled"], true, "{line}");
    assert_eq!(line["route"], "/news", "{line}");
    assert_eq!(line["user_id"], user_id.as_str(), "{line}");
    diesel::sql_query("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
}

/// A handler that panics, with a message the client must never see.
#[poem::handler]
async fn boom() -> String {
    panic!("secret panic message 0xdeadbeef")
}

/// A `Write` into a shared buffer: the log of the panic test.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Run alone: its subscriber is this thread's only, and tracing caches per call site, for every
// thread, whether anyone listens; with other tests' servers logging from other threads at the same
// time, the access line was not delivered to it in 2 of 6 runs of the whole suite.
#[test]
#[ignore = "a thread's own subscriber: `make test` runs it alone (cargo test --test api -- --ignored --test-threads=1)"]
fn a_panic_is_answered_500_problem_json_and_logged_with_its_request_id_and_a_backtrace() {
    // Arrange: the server's JSON log into a buffer, for this thread, which runs everything
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let written = Arc::clone(&log);
    let subscriber =
        newsapi::telemetry::subscriber(LogFormat::Json, false, move || Sink(Arc::clone(&sink)));
    let _log = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some("postgres://nobody@127.0.0.1:1/unused".to_string()),
        "JWT_SECRET" => Some(TEST_SECRET.to_string()),
        _ => None,
    })
    .unwrap();
    let (response, body, rid) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = newsapi::startup::middleware(boom, Default::default(), Default::default());
        tokio::spawn(async move {
            newsapi::server::serve(
                listener,
                poem::EndpointExt::boxed(app),
                config.connections,
                &[],
                std::future::pending(),
            )
            .await;
        });

        // Act
        let response = reqwest::get(format!("http://{addr}/boom")).await.unwrap();

        let rid = request_id(&response);
        let text = response.text().await.unwrap();
        // The access line may be written just after the answer left: give the server's task the
        // thread until it is (this runtime stops polling it when `block_on` returns).
        for _ in 0..200 {
            if String::from_utf8_lossy(&written.lock().unwrap()).contains("newsapi::access") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Asserted below, outside the runtime; rebuilt as a response for `assert_problem`.
        let again = reqwest::Response::from(
            poem::http::Response::builder()
                .status(500)
                .header("content-type", "application/problem+json")
                .header("x-request-id", rid.as_str())
                .body(text.clone())
                .unwrap(),
        );
        (assert_problem(again, 500).await, text, rid)
    });

    // Assert: the client sees an internal error and nothing of the panic
    assert_eq!(response["detail"], "internal error");
    assert_no_internals(&body);
    assert!(!body.contains("secret panic message"), "{body}");
    assert!(!body.contains("0xdeadbeef"), "{body}");
    // The log: one error line in the request's span, with the message and a backtrace
    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let panics: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request panicked")
        .collect();
    assert_eq!(panics.len(), 1, "{log}");
    let panic = panics[0];
    assert_eq!(panic["level"], "ERROR", "{panic}");
    assert_eq!(panic["span"]["request_id"], rid.as_str(), "{panic}");
    assert!(
        panic["panic"]
            .as_str()
            .unwrap()
            .contains("secret panic message"),
        "{panic}"
    );
    assert!(
        panic["location"]
            .as_str()
            .unwrap()
            .contains("observability.rs"),
        "{panic}"
    );
    let backtrace = panic["backtrace"].as_str().unwrap();
    assert!(
        backtrace.contains("boom"),
        "the backtrace names the handler: {backtrace}"
    );
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "newsapi::access")
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert_eq!(access[0]["status"], 500, "{log}");
    assert_eq!(access[0]["request_id"], rid.as_str(), "{log}");
}
