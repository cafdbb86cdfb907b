//! Prometheus metrics: what the server counts, and `/metrics` in the Prometheus text format
//! (version 0.0.4).
//!
//! Counted per request by [`RecordMetrics`]: `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}` and `http_requests_in_flight`. `route` is the
//! contract's route template (`/news/{id}`, never the raw path) or `unmatched`, so no client can
//! grow the label set; `method` is one of the standard methods or `OTHER`. Labels are
//! `&'static str` and `u16`: counting a request allocates no label string.
//!
//! Read when scraped, not per request: the pool (`db_pool_connections`, `…_idle_connections`,
//! `…_waiters`, `…_max_connections`), `password_hash_queue_depth`, and the process
//! (`process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_cpu_seconds_total`, from `/proc/self` and `getrusage`).
//!
//! With a read replica (`DATABASE_READ_URL`), also its pool (`db_read_pool_connections`,
//! `…_idle_connections`, `…_waiters`, `…_max_connections`, read when scraped) and its lag
//! (`db_replica_lag_seconds`, `db_replica_up`), sampled every second by
//! [`crate::db::replica::sample_lag_every`]: see [`Metrics::replica_lag`] for what they mean.
//!
//! Counted where the outcome is decided: `signin_failures_total` (401, wrong email or password),
//! `signin_throttled_total` (429 from the sign-in limits) and `idempotent_replays_total`, through
//! the free functions below. They count for the application serving the current request (a
//! task-local that [`RecordMetrics`] sets), so callers need no handle; outside a request they do
//! nothing.
//!
//! Counted by the mail worker ([`crate::mail::worker`]): `mail_sent_total`,
//! `mail_failed_total{reason="transient|permanent|expired"}`, and `mail_outbox_pending` (set at
//! each poll).
//!
//! Each application has its own [`Metrics`] (in `AppState`), not a process-wide one: tests run
//! many servers in one process, and each must see only its own counts.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
    time::Instant,
};

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::Method};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

use crate::{
    api::Contract, auth::PasswordHasher, auth::SigninError, cancel::Cancellation, db::DbPool,
};

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `mail_failed_total`'s reasons: an attempt that will be retried, a mail refused for good, and
/// a mail given up after failing for too long.
pub const MAIL_TRANSIENT: &str = "transient";
/// See [`MAIL_TRANSIENT`].
pub const MAIL_PERMANENT: &str = "permanent";
/// See [`MAIL_TRANSIENT`].
pub const MAIL_EXPIRED: &str = "expired";

/// The `route` of a request whose path is no route of the contract.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the latency buckets, in seconds: 1 ms to 10 s (the request timeout's order).
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailFailureLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type LatencyHistogram = fn() -> Histogram;

/// One application's metrics and the registry that writes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, LatencyHistogram>,
    in_flight: Gauge,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_waiters: Gauge,
    pool_max: Gauge,
    hash_queue_depth: Gauge,
    signin_failures: Counter,
    signin_throttled: Counter,
    idempotent_replays: Counter,
    mail_sent: Counter,
    mail_failed: Family<MailFailureLabels, Counter>,
    mail_pending: Gauge,
    replica: Option<ReplicaMetrics>,
}

/// The read replica's pool and lag.
#[derive(Debug)]
struct ReplicaMetrics {
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_waiters: Gauge,
    pool_max: Gauge,
    lag: Gauge<f64, AtomicU64>,
    up: Gauge,
}

impl ReplicaMetrics {
    fn register(registry: &mut Registry) -> Self {
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let pool_connections = gauge(
            "db_read_pool_connections",
            "Open connections to the read replica, idle or in use",
        );
        let pool_idle = gauge(
            "db_read_pool_idle_connections",
            "Open connections to the read replica waiting in its pool for a request",
        );
        let pool_waiters = gauge(
            "db_read_pool_waiters",
            "Requests waiting for a connection to the read replica",
        );
        let pool_max = gauge(
            "db_read_pool_max_connections",
            "The most connections the read replica's pool opens (DATABASE_READ_POOL_SIZE)",
        );
        let up = gauge(
            "db_replica_up",
            "1 when the last sample of the read replica's lag succeeded, 0 when the replica could not be asked",
        );
        let lag = Gauge::<f64, AtomicU64>::default();
        // Unknown until the first sample.
        lag.set(f64::NAN);
        registry.register_with_unit(
            "db_replica_lag",
            "How far the read replica's replay is behind: 0 when it has replayed all the WAL it \
             received, else the age of the last transaction it replayed; NaN when it could not be \
             asked. Sampled every second",
            Unit::Seconds,
            lag.clone(),
        );
        Self {
            pool_connections,
            pool_idle,
            pool_waiters,
            pool_max,
            lag,
            up,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered; `build_info` at 1.
    #[must_use]
    pub fn new() -> Self {
        Self::build(false)
    }

    /// [`Metrics::new`], and the read replica's pool and lag.
    #[must_use]
    pub fn with_read_replica() -> Self {
        Self::build(true)
    }

    fn build(read_replica: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations: Family<RouteLabels, Histogram, LatencyHistogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's headers to its answer's headers, by method and route template",
            Unit::Seconds,
            durations.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let in_flight = gauge(
            &mut registry,
            "http_requests_in_flight",
            "HTTP requests being served now",
        );
        let pool_connections = gauge(
            &mut registry,
            "db_pool_connections",
            "Open database connections in the pool, idle or in use",
        );
        let pool_idle = gauge(
            &mut registry,
            "db_pool_idle_connections",
            "Open database connections waiting in the pool for a request",
        );
        let pool_waiters = gauge(
            &mut registry,
            "db_pool_waiters",
            "Requests waiting for a database connection",
        );
        let pool_max = gauge(
            &mut registry,
            "db_pool_max_connections",
            "The most database connections the pool opens (DATABASE_POOL_SIZE)",
        );
        let hash_queue_depth = gauge(
            &mut registry,
            "password_hash_queue_depth",
            "Password hashes waiting or running (at most HASH_QUEUE_MAX)",
        );
        let signin_failures = counter(
            &mut registry,
            "signin_failures",
            "Sign-ins refused with 401: wrong email or password",
        );
        let signin_throttled = counter(
            &mut registry,
            "signin_throttled",
            "Sign-ins refused with 429 by the sign-in limits",
        );
        let idempotent_replays = counter(
            &mut registry,
            "idempotent_replays",
            "Requests answered by replaying the answer to an earlier one with the same Idempotency-Key",
        );
        let mail_sent = counter(
            &mut registry,
            "mail_sent",
            "Mails handed to the SMTP server (or written as .eml files) by this replica's worker",
        );
        let mail_failed = Family::<MailFailureLabels, Counter>::default();
        for reason in [MAIL_TRANSIENT, MAIL_PERMANENT, MAIL_EXPIRED] {
            let _ = mail_failed.get_or_create(&MailFailureLabels { reason });
        }
        registry.register(
            "mail_failed",
            "Attempts at a mail that failed, by reason: transient (tried again later), permanent \
             (refused by the mail server with 5xx; given up), expired (still failing three days after it was queued; given up)",
            mail_failed.clone(),
        );
        let mail_pending = gauge(
            &mut registry,
            "mail_outbox_pending",
            "Mails in the outbox neither sent nor given up, as of the worker's last poll",
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The server's version; always 1", build);
        registry.register_collector(Box::new(ProcessCollector));
        let replica = read_replica.then(|| ReplicaMetrics::register(&mut registry));
        Self {
            registry,
            requests,
            durations,
            in_flight,
            pool_connections,
            pool_idle,
            pool_waiters,
            pool_max,
            hash_queue_depth,
            signin_failures,
            signin_throttled,
            idempotent_replays,
            mail_sent,
            mail_failed,
            mail_pending,
            replica,
        }
    }

    /// Records a sample of the read replica's lag: `Some(seconds)` (0 when the replica has
    /// replayed all it received, else the age of the last transaction it replayed), or `None`
    /// when it could not be asked (`db_replica_lag_seconds` is then NaN and `db_replica_up` 0).
    pub fn replica_lag(&self, sample: Option<f64>) {
        if let Some(replica) = &self.replica {
            replica.lag.set(sample.unwrap_or(f64::NAN));
            replica.up.set(i64::from(sample.is_some()));
        }
    }

    /// Counts a mail sent.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// Counts a failed attempt at a mail: `reason` is [`MAIL_TRANSIENT`], [`MAIL_PERMANENT`] or
    /// [`MAIL_EXPIRED`].
    pub fn mail_failed(&self, reason: &'static str) {
        self.mail_failed
            .get_or_create(&MailFailureLabels { reason })
            .inc();
    }

    /// Sets the number of mails waiting in the outbox.
    pub fn mail_pending(&self, pending: i64) {
        self.mail_pending.set(pending);
    }

    /// Every metric in the Prometheus text format, with the pool and the hashing queue read now.
    #[must_use]
    pub fn render(
        &self,
        pool: &DbPool,
        read_pool: Option<&DbPool>,
        passwords: &PasswordHasher,
    ) -> String {
        let status = pool.status();
        let set = |gauge: &Gauge, value: usize| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.pool_connections, status.size);
        set(&self.pool_idle, status.available);
        set(&self.pool_waiters, status.waiting);
        set(&self.pool_max, status.max_size);
        if let (Some(replica), Some(read_pool)) = (&self.replica, read_pool) {
            let status = read_pool.status();
            set(&replica.pool_connections, status.size);
            set(&replica.pool_idle, status.available);
            set(&replica.pool_waiters, status.waiting);
            set(&replica.pool_max, status.max_size);
        }
        set(&self.hash_queue_depth, passwords.queue_depth());
        let mut text = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// [`Metrics::render`] as a response.
    #[must_use]
    pub fn response(
        &self,
        pool: &DbPool,
        read_pool: Option<&DbPool>,
        passwords: &PasswordHasher,
    ) -> Response {
        Response::builder()
            .content_type(CONTENT_TYPE)
            .body(self.render(pool, read_pool, passwords))
    }

    fn record(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { method, route })
            .observe(took.as_secs_f64());
    }
}

tokio::task_local! {
    /// The metrics of the application serving this task's request (set by [`RecordMetrics`]).
    static CURRENT: Arc<Metrics>;
}

fn count(counter: impl FnOnce(&Metrics) -> &Counter) {
    let _ = CURRENT.try_with(|metrics| counter(metrics).inc());
}

/// Counts a sign-in refused for bad credentials (401) or by the sign-in limits (429); other
/// refusals (the hashing queue, the database) have metrics of their own.
pub fn signin_refused(err: &SigninError) {
    match err {
        SigninError::BadCredentials => count(|m| &m.signin_failures),
        SigninError::Throttled(_) => count(|m| &m.signin_throttled),
        _ => {}
    }
}

/// Counts a request answered by replaying an earlier answer (`Idempotency-Key`).
pub fn idempotent_replay() {
    count(|m| &m.idempotent_replays);
}

/// The method's label: the standard methods by name, anything else `OTHER` (a client may send
/// any token as a method; it must not become a label value).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware that counts every request's answer, its latency and the requests in flight, and
/// makes the application's metrics current for the free functions of this module.
pub struct RecordMetrics {
    metrics: Arc<Metrics>,
    contract: &'static Contract,
}

impl RecordMetrics {
    /// Counts into `metrics`, naming routes by `contract`'s templates.
    #[must_use]
    pub fn new(metrics: Arc<Metrics>, contract: &'static Contract) -> Self {
        Self { metrics, contract }
    }
}

impl<E: Endpoint> Middleware<E> for RecordMetrics {
    type Output = RecordMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RecordMetricsEndpoint {
            inner: ep,
            metrics: Arc::clone(&self.metrics),
            contract: self.contract,
        }
    }
}

/// The endpoint [`RecordMetrics`] wraps.
pub struct RecordMetricsEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
    contract: &'static Contract,
}

/// One request in flight: counted while it lives, so a request whose client goes away (its
/// future dropped) leaves the gauge too. Such a request has no status and is not counted.
/// One request being recorded: in flight from its creation to its drop, and counted once — with
/// its status when it is answered here, or, when the connection layer cancels it (past
/// `REQUEST_TIMEOUT_SECS`, or at the end of the shutdown grace), as the 503 that layer answers.
/// A request whose client went away has no status and is not counted.
struct Recording<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    route: &'static str,
    started: Instant,
    cancellation: Option<Cancellation>,
    counted: bool,
}

impl<'a> Recording<'a> {
    fn start(metrics: &'a Metrics, req: &Request, contract: &'static Contract) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            method: method_label(req.method()),
            route: contract
                .route_template(req.uri().path())
                .unwrap_or(UNMATCHED),
            started: Instant::now(),
            cancellation: req.extensions().get::<Cancellation>().cloned(),
            counted: false,
        }
    }

    fn count(&mut self, status: u16) {
        self.counted = true;
        self.metrics
            .record(self.method, self.route, status, self.started.elapsed());
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        if !self.counted {
            if let Some(status) = Cancellation::dropped_answer(self.cancellation.as_ref()) {
                self.count(status.as_u16());
            }
        }
    }
}

impl<E: Endpoint> Endpoint for RecordMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut recording = Recording::start(&self.metrics, &req, self.contract);
        let result = CURRENT
            .scope(Arc::clone(&self.metrics), self.inner.call(req))
            .await
            .map(IntoResponse::into_response);
        let status = match &result {
            Ok(response) => response.status(),
            Err(err) => err.status(),
        };
        recording.count(status.as_u16());
        result
    }
}

/// The process's memory, descriptors and CPU time, read when scraped (Linux; elsewhere the ones
/// that cannot be read are left out).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(bytes) = resident_memory_bytes() {
            let gauge = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size.",
                Some(&Unit::Bytes),
                gauge.metric_type(),
            )?)?;
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let gauge = ConstGauge::new(i64::try_from(entries.count()).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors.",
                None,
                gauge.metric_type(),
            )?)?;
        }
        #[cfg(unix)]
        {
            use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage};
            if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
                let gauge = ConstGauge::new(i64::try_from(soft).unwrap_or(i64::MAX));
                gauge.encode(encoder.encode_descriptor(
                    "process_max_fds",
                    "The limit on open file descriptors (soft).",
                    None,
                    gauge.metric_type(),
                )?)?;
            }
            if let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) {
                // Whole microseconds, then seconds: written as `0.449206`, not `0.44920600000000007`.
                let micros = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
                let total = micros(usage.user_time()) + micros(usage.system_time());
                let counter = ConstCounter::new(total as f64 / 1e6);
                counter.encode(encoder.encode_descriptor(
                    "process_cpu",
                    "CPU time used, user and system.",
                    Some(&Unit::Seconds),
                    counter.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(metrics: &Metrics) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry).unwrap();
        text
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        metrics.record("GET", "/news/{id}", 200, Duration::from_millis(3));
        let text = render(&metrics);
        for line in [
            "# TYPE http_requests_total counter",
            "http_requests_total{method=\"GET\",route=\"/news/{id}\",status=\"200\"} 1",
            "# TYPE http_request_duration_seconds histogram",
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/news/{id}\",le=\"0.005\"} 1",
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/news/{id}\",le=\"0.0025\"} 0",
            "# TYPE signin_failures_total counter",
            "# TYPE idempotent_replays_total counter",
            concat!("build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn the_free_counters_count_for_the_current_application_only() {
        let (first, second) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
        // Outside a request: nothing to count into, and no panic.
        idempotent_replay();
        CURRENT
            .scope(Arc::clone(&first), async {
                idempotent_replay();
                signin_refused(&SigninError::BadCredentials);
                signin_refused(&SigninError::Throttled(5));
                signin_refused(&SigninError::Throttled(5));
            })
            .await;
        assert_eq!(first.idempotent_replays.get(), 1);
        assert_eq!(first.signin_failures.get(), 1);
        assert_eq!(first.signin_throttled.get(), 2);
        assert_eq!(second.idempotent_replays.get(), 0);
        assert_eq!(second.signin_failures.get(), 0);
    }

    #[test]
    fn unknown_methods_are_one_label() {
        let method = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&method), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}
