//! `/metrics`: Prometheus's text format, requests counted by route template (never the raw path),
//! method and status, requests in flight, the pool and hashing-queue gauges, the sign-in
//! counters, and `METRICS_ADDR` moving the endpoint to a listener of its own.

use std::collections::BTreeMap;

use reqwest::{Method, header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{PASSWORD, TestApp, assert_problem, server_addr, spawn_app, spawn_app_with};

/// One sample line: `name{label="value",…} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape, after checking every line's format: `# HELP name text`,
/// `# TYPE name type`, or a sample of a declared metric (a histogram's `_bucket`, `_sum` and
/// `_count` belong to it). Panics naming the first line that breaks the format.
fn parse(text: &str) -> Vec<Sample> {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help.split_once(' ').unwrap_or((help, ""));
            assert!(is_metric_name(name), "HELP of a bad name: {line:?}");
        } else if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').expect(line);
            assert!(is_metric_name(name), "TYPE of a bad name: {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type: {line:?}"
            );
            types.insert(name.to_string(), kind.to_string());
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| sample.name.strip_suffix(suffix))
                .find(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                .unwrap_or(&sample.name);
            assert!(types.contains_key(family), "no TYPE before {line:?}");
            samples.push(sample);
        }
    }
    samples
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect(line);
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect(line);
            (name, parse_labels(body, line))
        }
    };
    assert!(is_metric_name(name), "bad metric name in {line:?}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `key="value",…` with `\\`, `\"` and `\n` escapes in values.
fn parse_labels(mut rest: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect(line);
        assert!(
            is_metric_name(key) && !key.contains(':'),
            "bad label in {line:?}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect(line) {
                (_, '\\') => match chars.next().expect(line).1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c} in {line:?}"),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// The value of the sample `name` with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

/// `http_requests_total` for one method, route and status (0 when absent).
fn requests(samples: &[Sample], method: &str, route: &str, status: &str) -> f64 {
    value(
        samples,
        "http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// `GET {base}/metrics`, checked to be 200 in the text format, parsed.
async fn scrape_at(app: &TestApp, base: &str) -> Vec<Sample> {
    let response = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&response.text().await.unwrap())
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    scrape_at(app, &app.address).await
}

async fn status_of(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> u16 {
    let request = app.request(method, path);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_by_route_template_method_and_status() {
    // Arrange: a sign-up and a sign-in, a news item read twice, a missing one, a 401, an unknown
    // path and a wrong method.
    let app = spawn_app().await;
    let (_, token) = app.new_user("ada@example.com").await;
    let news = app
        .create_news(&token, &json!({"title": "Metrics", "body": "Counted."}))
        .await;
    let id = news["id"].as_str().unwrap();
    let path = format!("/news/{id}");
    let missing = "/news/0192f0c4-0000-7000-8000-000000000000";
    for (method, path, token, expected) in [
        (Method::GET, path.as_str(), Some(token.as_str()), 200),
        (Method::GET, path.as_str(), Some(token.as_str()), 200),
        (Method::GET, missing, Some(token.as_str()), 404),
        (Method::GET, "/whoami", None, 401),
        (Method::GET, "/no/such/path", None, 404),
        (Method::DELETE, "/healthz", None, 405),
    ] {
        assert_eq!(
            status_of(&app, method, path, token).await,
            expected,
            "{path}"
        );
    }

    // Act
    let samples = scrape(&app).await;

    // Assert
    for (method, route, status, count) in [
        ("POST", "/signup", "201", 1.0),
        ("POST", "/signin", "200", 1.0),
        ("POST", "/news", "201", 1.0),
        ("GET", "/news/{id}", "200", 2.0),
        ("GET", "/news/{id}", "404", 1.0),
        ("GET", "/whoami", "401", 1.0),
        ("GET", "unmatched", "404", 1.0),
        ("DELETE", "/healthz", "405", 1.0),
        // This scrape is counted once it is answered, so not in itself.
        ("GET", "/metrics", "200", 0.0),
    ] {
        assert_eq!(
            requests(&samples, method, route, status),
            count,
            "{method} {route} {status}"
        );
    }
    let request_samples = samples
        .iter()
        .filter(|s| s.name.starts_with("http_request"));
    for sample in request_samples {
        let route = sample.labels.get("route").map_or("", String::as_str);
        assert!(
            !route.contains(id) && !route.contains("no/such"),
            "a raw path became a label: {sample:?}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/news/{id}")]
        ),
        Some(3.0)
    );
    let ten_seconds = value(
        &samples,
        "http_request_duration_seconds_bucket",
        &[("method", "GET"), ("route", "/news/{id}"), ("le", "10")],
    );
    assert_eq!(ten_seconds, Some(3.0), "every read answered within 10 s");

    // The next scrape counts this one.
    let samples = scrape(&app).await;
    assert_eq!(requests(&samples, "GET", "/metrics", "200"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gauges_show_requests_in_flight_the_pool_the_hashing_queue_and_the_build() {
    // Arrange: a sign-in whose body is half sent, so it is in flight while /metrics is scraped.
    let app = spawn_app().await;
    let body = json!({"email": "nobody@example.com", "password": "not the password"}).to_string();
    let (first, rest) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(server_addr(&app))
        .await
        .unwrap();
    let head = format!(
        "POST /signin HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    // Act: scrape while it waits for its body (the scrape is in flight too), then finish it.
    let mut during = scrape(&app).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while value(&during, "http_requests_in_flight", &[]) != Some(2.0)
        && std::time::Instant::now() < deadline
    {
        // The server may not have read the headers yet.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        during = scrape(&app).await;
    }
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let after = scrape(&app).await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(value(&during, "http_requests_in_flight", &[]), Some(2.0));
    assert_eq!(value(&after, "http_requests_in_flight", &[]), Some(1.0));
    assert_eq!(requests(&after, "POST", "/signin", "401"), 1.0);
    // spawn_app sets DATABASE_POOL_SIZE=4.
    assert_eq!(value(&after, "db_pool_max_connections", &[]), Some(4.0));
    let size = value(&after, "db_pool_connections", &[]).unwrap();
    let idle = value(&after, "db_pool_idle_connections", &[]).unwrap();
    assert!(
        (1.0..=4.0).contains(&size),
        "the sign-in opened a connection"
    );
    assert!(idle <= size, "idle {idle} of {size}");
    assert_eq!(value(&after, "db_pool_waiters", &[]), Some(0.0));
    assert_eq!(value(&after, "password_hash_queue_depth", &[]), Some(0.0));
    assert_eq!(
        value(
            &after,
            "build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(value(&after, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&after, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(value(&after, "process_cpu_seconds_total", &[]).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_and_throttled_sign_ins_move_their_counters() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "2"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user("ada@example.com").await;
    let before = scrape(&app).await;

    // Act: two wrong passwords, then a third attempt past the limit.
    let statuses = [
        app.signin("ada@example.com", "wrong password 1")
            .await
            .status(),
        app.signin("ada@example.com", "wrong password 2")
            .await
            .status(),
        app.signin("ada@example.com", PASSWORD).await.status(),
    ];

    // Assert
    assert_eq!(statuses.map(|s| s.as_u16()), [401, 401, 429]);
    let after = scrape(&app).await;
    assert_eq!(value(&before, "signin_failures_total", &[]), Some(0.0));
    assert_eq!(value(&before, "signin_throttled_total", &[]), Some(0.0));
    assert_eq!(value(&after, "signin_failures_total", &[]), Some(2.0));
    assert_eq!(value(&after, "signin_throttled_total", &[]), Some(1.0));
    assert_eq!(value(&after, "idempotent_replays_total", &[]), Some(0.0));
    assert_eq!(requests(&after, "POST", "/signin", "429"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_addr_moves_metrics_off_the_main_listener() {
    // Arrange
    let app = spawn_app_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics = app
        .metrics_address
        .clone()
        .expect("the metrics listener is bound");
    assert_ne!(metrics, app.address);

    // Act
    let on_main = app.request(Method::GET, "/metrics").send().await.unwrap();
    let elsewhere = app
        .client
        .get(format!("{metrics}/no/such/path"))
        .send()
        .await
        .unwrap();
    let wrong_method = app
        .client
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();

    // Assert: the main listener has no /metrics (the same 404 as any unknown path); the metrics
    // listener has only /metrics, and counts the main listener's requests.
    assert_problem(on_main, 404).await;
    assert_problem(elsewhere, 404).await;
    assert_problem(wrong_method, 405).await;
    let samples = scrape_at(&app, &metrics).await;
    assert_eq!(requests(&samples, "GET", "/metrics", "404"), 1.0);
    assert_eq!(
        value(&samples, "http_requests_in_flight", &[]),
        Some(0.0),
        "scrapes of the metrics listener are not API requests"
    );
}
