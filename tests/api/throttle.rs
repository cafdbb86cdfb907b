//! Throttled sign-in and sign-up: failures counted in PostgreSQL per account and client address,
//! per account and per address, each reserved before the password is checked so that no burst
//! overshoots a limit; 429 with `Retry-After`; recovery after the window; every Unicode spelling of
//! an email sharing its account's counts; the owner signing in from elsewhere while a stranger
//! hammers the account; sign-ups limited per address; `X-Forwarded-For` only from a trusted proxy.
//!
//! Several client addresses are real sockets bound to 127.0.0.2, 127.0.0.3, … (all of
//! 127.0.0.0/8 is loopback); bursts are many concurrent requests over as many connections.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, assert_problem_for, client_from, db_count, signin_with,
    spawn_app_with,
};

const ADA: &str = "ada@example.com";
const WRONG: &str = "not the password at all";
/// Hashing-queue bounds no burst here reaches: these tests count what the throttle lets through,
/// and the queue's own refusals (429 past an address's share, 503 past the whole queue) are
/// tested in `hashing.rs`.
const HASH_QUEUE_OUT_OF_THE_WAY: [(&str, &str); 2] = [
    ("HASH_QUEUE_MAX", "1000"),
    ("HASH_QUEUE_MAX_PER_IP", "1000"),
];

/// What one request of a burst got: its status, and whether a 429 was a proper one (problem+json
/// with a whole number of seconds in `Retry-After`).
#[derive(Debug)]
struct Outcome {
    status: u16,
    proper_429: bool,
}

/// Sends `n` requests at once, `body(i)` to `path` through `client`, each on its own task (so
/// over as many connections as are needed), and returns what each got.
async fn burst(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    n: usize,
    body: impl Fn(usize) -> Value,
) -> Vec<Outcome> {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let request = client.post(format!("{}{path}", app.address)).json(&body(i));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/problem+json");
            Outcome {
                status,
                proper_429: status == 429 && problem && retry_after.is_some_and(|s| s >= 1),
            }
        });
    }
    tasks.join_all().await
}

/// Every 429 of a burst was problem+json with a `Retry-After` of at least 1 s.
fn assert_every_429_is_proper(outcomes: &[Outcome]) {
    assert!(
        outcomes
            .iter()
            .filter(|o| o.status == 429)
            .all(|o| o.proper_429),
        "{outcomes:?}"
    );
}

/// How many outcomes had `status`.
fn count(outcomes: &[Outcome], status: u16) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

async fn signin_from(app: &TestApp, email: &str, password: &str, forwarded_for: &str) -> Response {
    app.request(Method::POST, "/signin")
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Fails to sign in `times` times as `email`; each must be a plain 401.
async fn fail(app: &TestApp, email: &str, times: usize) {
    for attempt in 1..=times {
        let response = app.signin(email, WRONG).await;
        assert_eq!(response.status(), 401, "failure {attempt} for {email}");
    }
}

/// Asserts a 429 problem with a `Retry-After` of a whole number of seconds between 1 and
/// `window_secs`.
async fn assert_throttled(response: Response, window_secs: u64) {
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string())
        .expect("a 429 carries Retry-After");
    let secs: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is whole seconds: {retry_after:?}"));
    assert!(
        (1..=window_secs).contains(&secs),
        "Retry-After {secs} within the window of {window_secs} s"
    );
    let body = assert_problem(response, 429).await;
    crate::helpers::assert_no_internals(&body.to_string());
}

/// The key of failures at `account` (a canonical email) from `address`.
fn account_from(address: &str, account: &str) -> String {
    format!("account-ip:{address} {account}")
}

async fn failures_of(app: &TestApp, key: &str) -> i64 {
    db_count(
        app,
        &format!(
            "SELECT coalesce(sum(failures), 0)::bigint FROM signin_failures WHERE key = '{key}'"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn after_three_failures_even_the_right_password_gets_429_with_retry_after() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;

    // Act
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM refresh_families").await,
        1,
        "no session was started besides the one of new_user"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failure_counters_are_kept_in_postgresql() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;

    // Act
    fail(&app, ADA, 2).await;

    // Assert
    assert!(db_count(&app, "SELECT count(*) FROM signin_failures").await > 0);
    assert_eq!(failures_of(&app, &account_from("127.0.0.1", ADA)).await, 2);
    assert_eq!(failures_of(&app, &format!("account:{ADA}")).await, 2);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_attempt_does_not_count_as_another_failure() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;

    // Act
    for _ in 0..3 {
        assert_throttled(app.signin(ADA, WRONG).await, 60).await;
    }

    // Assert
    assert_eq!(failures_of(&app, &account_from("127.0.0.1", ADA)).await, 3);
    assert_eq!(failures_of(&app, &format!("account:{ADA}")).await, 3);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_is_throttled_in_any_letter_case() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, "Ada@Example.com", 1).await;
    fail(&app, "ADA@EXAMPLE.COM", 1).await;
    fail(&app, " ada@example.com ", 1).await;

    // Act
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_email_is_throttled_like_a_known_one() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    fail(&app, "nobody@example.com", 3).await;

    // Act
    let response = app.signin("nobody@example.com", WRONG).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_one_email_does_not_lock_out_another() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    app.new_user("bob@example.com").await;
    fail(&app, ADA, 3).await;

    // Act
    let response = app.signin("bob@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_window_passes_the_right_password_signs_in_again() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "2")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 3).await;
    assert_throttled(app.signin(ADA, PASSWORD).await, 2).await;

    // Act: a throttled attempt is refused before it is checked, so polling does not extend it
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = loop {
        let response = app.signin(ADA, PASSWORD).await;
        if response.status() != 429 {
            break response;
        }
        assert!(Instant::now() < deadline, "still 429 after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(failures_of(&app, &account_from("127.0.0.1", ADA)).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successful_signin_resets_the_count_for_the_account_from_its_address_and_gives_back_the_others()
 {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "3"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    app.new_user(ADA).await;
    fail(&app, ADA, 2).await;
    assert_eq!(app.signin(ADA, PASSWORD).await.status(), 200);
    assert_eq!(failures_of(&app, &account_from("127.0.0.1", ADA)).await, 0);
    assert_eq!(
        failures_of(&app, &format!("account:{ADA}")).await,
        2,
        "the owner's success does not reopen the account to others"
    );
    assert_eq!(
        failures_of(&app, "ip:127.0.0.1").await,
        2,
        "a success does not count against the address"
    );

    // Act: three more failures are needed to reach the limit again
    fail(&app, ADA, 3).await;
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_for_different_emails_from_one_address_add_up_to_the_per_ip_limit() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
    ])
    .await;
    app.new_user(ADA).await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        fail(&app, email, 1).await;
    }

    // Act: a fourth email, even with its right password
    let response = app.signin(ADA, PASSWORD).await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_per_ip_limit() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
    ])
    .await;
    for (i, forwarded) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let response = signin_from(&app, &format!("user{i}@example.com"), WRONG, forwarded).await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let response = signin_from(&app, "user9@example.com", WRONG, "198.51.100.99").await;

    // Assert
    assert_throttled(response, 60).await;
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 3);
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM signin_failures WHERE key LIKE 'ip:%' AND key <> 'ip:127.0.0.1'"
        )
        .await,
        0,
        "the forwarded addresses were ignored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_trusted_proxy_each_forwarded_address_is_counted_separately() {
    // Arrange
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for i in 0..3 {
        let response =
            signin_from(&app, &format!("user{i}@example.com"), WRONG, "203.0.113.7").await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let same_client = signin_from(&app, "user8@example.com", WRONG, "203.0.113.7").await;
    let other_client = signin_from(&app, "user9@example.com", WRONG, "198.51.100.9").await;

    // Assert
    assert_throttled(same_client, 60).await;
    assert_eq!(other_client.status(), 401, "a new address is not throttled");
    assert_eq!(failures_of(&app, "ip:203.0.113.7").await, 3);
    assert_eq!(failures_of(&app, "ip:198.51.100.9").await, 1);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_trusted_proxy_a_client_cannot_prepend_addresses_to_escape_the_limit() {
    // Arrange: the proxy appends the real client address; what the client sent comes first
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "100"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "3"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for i in 0..3 {
        let forwarded = format!("10.0.0.{i}, 203.0.113.7");
        let response = signin_from(&app, &format!("user{i}@example.com"), WRONG, &forwarded).await;
        assert_eq!(response.status(), 401);
    }

    // Act
    let response = signin_from(&app, "user9@example.com", WRONG, "10.9.9.9, 203.0.113.7").await;

    // Assert
    assert_throttled(response, 60).await;
}

// ---------------------------------------------------------------------------------------------
// One canonical email: every spelling that reaches an account shares its counts

/// `bob@example.com` typed wholly in fullwidth forms, `＠` and `．` included: it reaches Bob's
/// account at sign-in, but is no email address as typed, so sign-up refuses it with 422.
const BOB_ALL_FULLWIDTH: &str = "\u{FF42}\u{FF4F}\u{FF42}\u{FF20}\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}\u{FF0E}\u{FF43}\u{FF4F}\u{FF4D}";

/// Accounts and spellings of their emails that must reach them: `İ` (U+0130, alone and as I +
/// U+0307), `K` (U+212A KELVIN SIGN), `ß`/`ẞ`/`ss`, fullwidth letters, surrounding white space.
/// Each is a valid address as typed, so sign-up with it is a 409 once the account exists.
const SPELLINGS: &[(&str, [&str; 3])] = &[
    (
        "iris@example.com",
        [
            "\u{130}ris@example.com",
            "iR\u{130}s@EXAMPLE.com",
            "I\u{307}RIS@example.com",
        ],
    ),
    (
        "kelvin@example.com",
        [
            "\u{212A}elvin@example.com",
            "\u{212A}ELVIN@example.com",
            "KELVIN@example.COM",
        ],
    ),
    (
        "stra\u{df}e@example.com",
        [
            "STRA\u{1E9E}E@example.com",
            "strasse@example.com",
            "Stra\u{df}e@Example.com",
        ],
    ),
    (
        "bob@example.com",
        [
            "\u{FF42}\u{FF4F}\u{FF42}@example.com",
            "\u{FF22}\u{FF2F}\u{FF22}@\u{FF45}xample.com",
            "BOB@\u{FF45}\u{FF58}ample.com",
        ],
    ),
    (
        "carol@example.com",
        [
            " carol@example.com",
            "carol@example.com\t\n",
            "\u{3000}CAROL@example.com\u{A0}",
        ],
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_unicode_spelling_of_an_email_reaches_its_account() {
    // Arrange
    let app = spawn_app_with(&[("SIGNIN_MAX_FAILURES", "100"), ("SIGNIN_WINDOW_SECS", "60")]).await;
    for (email, spellings) in SPELLINGS {
        let (id, _) = app.new_user(email).await;
        for spelling in spellings {
            // Act
            let response = app.signin(spelling, PASSWORD).await;

            // Assert
            assert_eq!(response.status(), 200, "{spelling:?} signs in to {email}");
            let token = response.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_string();
            let me: Value = app.whoami(&token).await.json().await.unwrap();
            assert_eq!(me["id"], id.as_str(), "{spelling:?} is {email}'s account");
        }
    }
    assert_eq!(app.signin(BOB_ALL_FULLWIDTH, PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_unicode_spelling_of_an_email_shares_its_accounts_counts() {
    // Arrange: three failures per account, each typed another way
    let app = spawn_app_with(&[
        ("SIGNIN_MAX_FAILURES", "3"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "1000"),
        ("SIGNIN_WINDOW_SECS", "60"),
    ])
    .await;
    for (email, spellings) in SPELLINGS {
        app.new_user(email).await;
        for spelling in spellings {
            let response = app.signin(spelling, WRONG).await;
            assert_eq!(response.status(), 401, "{spelling:?}");
        }
    }

    for (email, spellings) in SPELLINGS {
        // Act: the plain spelling, and each other one, with the right password
        for typed in std::iter::once(email).chain(spellings) {
            let response = app.signin(typed, PASSWORD).await;

            // Assert
            assert_throttled(response, 60).await;
        }
    }
    assert_eq!(
        db_count(
            &app,
            "SELECT count(*) FROM signin_failures WHERE key LIKE 'account:%'"
        )
        .await,
        i64::try_from(SPELLINGS.len()).unwrap(),
        "one counter per account, whatever the spellings"
    );
    assert_eq!(failures_of(&app, "account:iris@example.com").await, 3);
    assert_eq!(failures_of(&app, "account:strasse@example.com").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_with_another_spelling_of_a_taken_email_is_409_and_creates_nothing() {
    // Arrange
    let app = spawn_app_with(&[("SIGNUP_MAX_PER_IP", "100")]).await;
    for (email, _) in SPELLINGS {
        app.new_user(email).await;
    }

    for (_, spellings) in SPELLINGS {
        for spelling in spellings {
            // Act
            let response = app
                .signup(&json!({"email": spelling, "password": "another password entirely"}))
                .await;

            // Assert
            assert_problem_for(response, 409, &format!("{spelling:?}")).await;
        }
    }
    let not_an_address = app
        .signup(&json!({"email": BOB_ALL_FULLWIDTH, "password": PASSWORD}))
        .await;
    assert_problem(not_an_address, 422).await;
    assert_eq!(
        db_count(&app, "SELECT count(*) FROM users").await,
        i64::try_from(SPELLINGS.len()).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Counting that cannot be raced

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_50_wrong_signins_at_one_account_evaluates_at_most_10() {
    // Arrange
    let app = spawn_app_with(&[
        HASH_QUEUE_OUT_OF_THE_WAY[0],
        HASH_QUEUE_OUT_OF_THE_WAY[1],
        ("SIGNIN_MAX_FAILURES", "10"),
        ("SIGNIN_MAX_FAILURES_PER_IP", "1000"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    app.new_user(ADA).await;

    // Act
    let outcomes = burst(
        &app,
        &app.client,
        "/signin",
        50,
        |_| json!({"email": ADA, "password": WRONG}),
    )
    .await;

    // Assert: each 401 is one password checked; every other attempt was refused before
    assert_eq!(count(&outcomes, 401), 10, "{outcomes:?}");
    assert_eq!(count(&outcomes, 429), 40, "{outcomes:?}");
    assert_every_429_is_proper(&outcomes);
    assert_eq!(failures_of(&app, &account_from("127.0.0.1", ADA)).await, 10);
    assert_eq!(failures_of(&app, "ip:127.0.0.1").await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_150_wrong_signins_from_one_address_evaluates_at_most_its_limit_of_100() {
    // Arrange: each attempt at another (unknown) account, so only the address's limit applies
    let app = spawn_app_with(&[
        HASH_QUEUE_OUT_OF_THE_WAY[0],
        HASH_QUEUE_OUT_OF_THE_WAY[1],
        ("SIGNIN_MAX_FAILURES_PER_IP", "100"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    let client = client_from(2);

    // Act
    let outcomes = burst(
        &app,
        &client,
        "/signin",
        150,
        |i| json!({"email": format!("user{i}@example.com"), "password": WRONG}),
    )
    .await;

    // Assert
    assert_eq!(count(&outcomes, 401), 100, "{outcomes:?}");
    assert_eq!(count(&outcomes, 429), 50, "{outcomes:?}");
    assert_every_429_is_proper(&outcomes);
    assert_eq!(failures_of(&app, "ip:127.0.0.2").await, 100);
    // Another address is not affected.
    let other = signin_with(&app, &client_from(3), "user0@example.com", WRONG).await;
    assert_eq!(other.status(), 401);
}

// ---------------------------------------------------------------------------------------------
// No lock-out by strangers

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_signs_in_from_another_address_while_one_address_hammers_the_account() {
    // Arrange
    let app = spawn_app_with(&[
        HASH_QUEUE_OUT_OF_THE_WAY[0],
        HASH_QUEUE_OUT_OF_THE_WAY[1],
        ("SIGNIN_MAX_FAILURES", "10"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    app.new_user(ADA).await;
    let stranger = client_from(2);
    let owner = client_from(3);

    // Act: the stranger goes well past SIGNIN_MAX_FAILURES, at once
    let hammering = burst(
        &app,
        &stranger,
        "/signin",
        30,
        |_| json!({"email": ADA, "password": WRONG}),
    )
    .await;
    let strangers_right_guess = signin_with(&app, &stranger, ADA, PASSWORD).await;
    let owners = signin_with(&app, &owner, ADA, PASSWORD).await;

    // Assert
    assert_eq!(count(&hammering, 401), 10, "{hammering:?}");
    assert_eq!(count(&hammering, 429), 20, "{hammering:?}");
    assert_throttled(strangers_right_guess, 60).await;
    assert_eq!(owners.status(), 200, "the owner, elsewhere, still signs in");
    assert_eq!(failures_of(&app, &account_from("127.0.0.2", ADA)).await, 10);
    assert_eq!(failures_of(&app, &format!("account:{ADA}")).await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_account_limit_bounds_guesses_from_every_address_together() {
    // Arrange: 3 per account and address, 5 per account
    let app = spawn_app_with(&[
        HASH_QUEUE_OUT_OF_THE_WAY[0],
        HASH_QUEUE_OUT_OF_THE_WAY[1],
        ("SIGNIN_MAX_FAILURES", "3"),
        ("SIGNIN_MAX_FAILURES_PER_ACCOUNT", "5"),
        ("SIGNIN_WINDOW_SECS", "60"),
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    app.new_user(ADA).await;
    let addresses = [2, 3, 4, 5];

    // Act: ten wrong guesses from each of four addresses, all at once
    let mut bursts = JoinSet::new();
    for address in addresses {
        let client = client_from(address);
        let url = format!("{}/signin", app.address);
        bursts.spawn(async move {
            let mut tasks = JoinSet::new();
            for _ in 0..10 {
                let request = client
                    .post(&url)
                    .json(&json!({"email": ADA, "password": WRONG}));
                tasks.spawn(async move { request.send().await.unwrap().status().as_u16() });
            }
            tasks.join_all().await
        });
    }
    let statuses: Vec<u16> = bursts.join_all().await.into_iter().flatten().collect();
    let owner_elsewhere = signin_with(&app, &client_from(6), ADA, PASSWORD).await;

    // Assert
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!(unauthorized, 5, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        35,
        "{statuses:?}"
    );
    assert_eq!(failures_of(&app, &format!("account:{ADA}")).await, 5);
    for address in addresses {
        assert!(
            failures_of(&app, &account_from(&format!("127.0.0.{address}"), ADA)).await <= 3,
            "{address}"
        );
    }
    assert_throttled(owner_elsewhere, 60).await;
}

// ---------------------------------------------------------------------------------------------
// Sign-up limit per client address

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_50_signups_from_one_address_creates_at_most_20_accounts() {
    // Arrange: the default limit of 20 per hour
    let app = spawn_app_with(&[
        HASH_QUEUE_OUT_OF_THE_WAY[0],
        HASH_QUEUE_OUT_OF_THE_WAY[1],
        ("DATABASE_POOL_SIZE", "8"),
    ])
    .await;
    let client = client_from(2);

    // Act
    let outcomes = burst(
        &app,
        &client,
        "/signup",
        50,
        |i| json!({"email": format!("user{i}@example.com"), "password": PASSWORD}),
    )
    .await;

    // Assert
    assert_eq!(count(&outcomes, 201), 20, "{outcomes:?}");
    assert_eq!(count(&outcomes, 429), 30, "{outcomes:?}");
    assert_every_429_is_proper(&outcomes);
    assert_eq!(db_count(&app, "SELECT count(*) FROM users").await, 20);
    assert_eq!(failures_of(&app, "signup-ip:127.0.0.2").await, 20);
    let again = client
        .post(format!("{}/signup", app.address))
        .json(&json!({"email": "late@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_throttled(again, 3600).await;
    // Another address still signs up.
    let elsewhere = client_from(3)
        .post(format!("{}/signup", app.address))
        .json(&json!({"email": "elsewhere@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signup_refused_by_the_schema_does_not_count_and_a_taken_email_does() {
    // Arrange
    let app = spawn_app_with(&[("SIGNUP_MAX_PER_IP", "2"), ("SIGNUP_WINDOW_SECS", "60")]).await;
    let invalid = app
        .signup(&json!({"email": "not an email", "password": PASSWORD}))
        .await;
    assert_eq!(invalid.status(), 422);

    // Act
    let first = app
        .signup(&json!({"email": ADA, "password": PASSWORD}))
        .await;
    let taken = app
        .signup(&json!({"email": "ADA@example.com", "password": PASSWORD}))
        .await;
    let third = app
        .signup(&json!({"email": "bob@example.com", "password": PASSWORD}))
        .await;

    // Assert
    assert_eq!(first.status(), 201);
    assert_eq!(taken.status(), 409);
    assert_throttled(third, 60).await;
    assert_eq!(db_count(&app, "SELECT count(*) FROM users").await, 1);
}
