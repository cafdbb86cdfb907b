//! The mail outbox and its worker, with a real SMTP server (`SmtpSink`): mail queued in the
//! database (as the account operations queue it, with `newsapi::db::mail::enqueue`) is delivered
//! once, survives an outage of the mail server, is shared between replicas, is given up when the
//! server refuses it for good, and goes to `.eml` files without `SMTP_URL`.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use newsapi::{db::mail::enqueue, mail::Outgoing};
use reqwest::Method;

use crate::{
    helpers::{
        LoggedServer, TEST_SECRET, TestApp, TestDatabase, db_count, db_text, mail_dir, spawn_app,
        spawn_app_via, spawn_app_with, wait_for_db,
    },
    smtp::SmtpSink,
};

const FROM: &str = "News Test <news@example.test>";

fn mail(to: &str, subject: &str) -> Outgoing {
    Outgoing {
        to: to.to_string(),
        subject: subject.to_string(),
        // Short lines of ASCII: sent as they are (7bit), so a test can look for them in a file.
        body: "Hello,\n\nfollow this link to go on:\nhttp://127.0.0.1:3000/password/reset?token=tok_42\n"
            .to_string(),
    }
}

/// Queues `mails` in one transaction, as a request would; returns their ids.
async fn queue(app: &TestApp, mails: Vec<Outgoing>) -> Vec<uuid::Uuid> {
    let mut conn: AsyncPgConnection = app.db.connect().await;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let mut ids = Vec::new();
        for m in &mails {
            ids.push(enqueue(conn, m).await?);
        }
        Ok(ids)
    })
    .await
    .unwrap()
}

async fn wait_until(app: &TestApp, condition: &str, what: &str, within: Duration) {
    wait_for_db(
        app,
        &format!("SELECT count(*) FROM mail_outbox WHERE {condition}"),
        what,
        within,
    )
    .await;
}

/// The sample `name` (with its labels) on `app`'s `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits up to 5 s (a few polls) for `name` to read `value`.
async fn wait_for_metric(app: &TestApp, name: &str, value: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = metric(app, name).await;
        if (now - value).abs() < f64::EPSILON {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_mail_reaches_the_smtp_server_from_mail_from_and_its_body_is_erased() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(&[("SMTP_URL", &sink.url()), ("MAIL_FROM", FROM)]).await;
    let ids = queue(
        &app,
        vec![mail("alice@example.test", "Reset your password")],
    )
    .await;

    let got = sink
        .wait_for("alice@example.test", 1, Duration::from_secs(15))
        .await;
    assert_eq!(got.len(), 1);
    let received = &sink.latest("alice@example.test", "password").await;
    assert_eq!(received.from, FROM);
    assert_eq!(received.to, "alice@example.test");
    assert_eq!(received.subject, "Reset your password");
    assert_eq!(received.token("/password/reset"), "tok_42");
    assert!(received.body.starts_with("Hello,"), "{}", received.body);
    assert!(
        received
            .raw
            .contains(&format!("Message-ID: <{}@example.test>", ids[0])),
        "the Message-ID is the outbox row's: {}",
        received.raw
    );

    let id = ids[0];
    wait_until(
        &app,
        &format!("id = '{id}' AND sent_at IS NOT NULL"),
        "the mail recorded as sent",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        db_count(
            &app,
            &format!(
                "SELECT count(*) FROM mail_outbox WHERE id = '{id}' AND body IS NULL \
                 AND last_error IS NULL AND failed_at IS NULL AND attempts = 1"
            )
        )
        .await,
        1,
        "a sent mail keeps no body (it may carry a one-time token)"
    );
    assert_eq!(metric(&app, "mail_sent_total").await, 1.0);
    // Set at each poll: the next one finds nothing pending.
    wait_for_metric(&app, "mail_outbox_pending", 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_queued_while_the_smtp_server_is_down_arrives_once_it_is_back() {
    let mut sink = SmtpSink::start().await;
    sink.stop().await;
    let app = spawn_app_with(&[
        ("SMTP_URL", &sink.url()),
        ("MAIL_FROM", FROM),
        ("MAIL_RETRY_MAX_SECS", "1"),
    ])
    .await;
    let id = queue(&app, vec![mail("bob@example.test", "Verify your email")]).await[0];

    // Down: tried, failed, kept with the reason, and retried.
    wait_until(
        &app,
        &format!("id = '{id}' AND attempts >= 2 AND last_error IS NOT NULL"),
        "two failed attempts recorded",
        Duration::from_secs(15),
    )
    .await;
    let row = db_text(
        &app,
        &format!(
            "SELECT concat_ws('|', sent_at, failed_at, body IS NOT NULL, last_error) \
             FROM mail_outbox WHERE id = '{id}'"
        ),
    )
    .await;
    assert!(
        row.starts_with("t|"),
        "neither sent nor given up, body kept: {row}"
    );
    assert!(
        row.contains("Connection refused"),
        "last_error says why: {row}"
    );
    assert!(metric(&app, "mail_failed_total{reason=\"transient\"}").await >= 1.0);
    assert_eq!(metric(&app, "mail_outbox_pending").await, 1.0);

    // Back: delivered, exactly once.
    sink.start_again().await;
    sink.wait_for("bob@example.test", 1, Duration::from_secs(15))
        .await;
    wait_until(
        &app,
        &format!("id = '{id}' AND sent_at IS NOT NULL AND body IS NULL AND last_error IS NULL"),
        "the mail recorded as sent",
        Duration::from_secs(10),
    )
    .await;
    // Two more polls: nothing is sent again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = sink.mails_for("bob@example.test");
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].subject, "Verify your email");
    assert_eq!(metric(&app, "mail_sent_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_outbox_and_send_each_mail_exactly_once() {
    let sink = SmtpSink::start().await;
    let db = TestDatabase::create().await;
    let (name, url) = (db.name.clone(), db.url.clone());
    let env = [("SMTP_URL", sink.url()), ("MAIL_FROM", FROM.to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let one = spawn_app_via(db, &url, &env).await;
    let two = spawn_app_via(
        TestDatabase {
            name,
            url: url.clone(),
        },
        &url,
        &env,
    )
    .await;

    // The sink takes two seconds over each of these, so a replica's batch keeps it busy while
    // the other one polls and claims the rest.
    let recipients: Vec<String> = (0..40).map(|i| format!("slow{i}@example.test")).collect();
    queue(
        &one,
        recipients
            .iter()
            .map(|to| mail(to, &format!("Mail for {to}")))
            .collect(),
    )
    .await;

    wait_for_db(
        &one,
        "SELECT (count(*) FILTER (WHERE sent_at IS NOT NULL) = 40)::int::bigint FROM mail_outbox",
        "all 40 mails recorded as sent",
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = sink.mails();
    assert_eq!(received.len(), 40, "each mail once, no more");
    for to in &recipients {
        assert_eq!(sink.mails_for(to).len(), 1, "{to}");
    }
    assert_eq!(
        db_count(&one, "SELECT count(*) FROM mail_outbox WHERE attempts <> 1").await,
        0,
        "no mail was claimed twice"
    );
    let (by_one, by_two) = (
        metric(&one, "mail_sent_total").await,
        metric(&two, "mail_sent_total").await,
    );
    assert_eq!(by_one + by_two, 40.0);
    assert!(
        by_one > 0.0 && by_two > 0.0,
        "both replicas sent some: {by_one} and {by_two}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_the_server_refuses_for_good_is_given_up_and_not_retried() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(&[
        ("SMTP_URL", &sink.url()),
        ("MAIL_FROM", FROM),
        ("MAIL_RETRY_MAX_SECS", "1"),
    ])
    .await;
    let ids = queue(
        &app,
        vec![
            mail("reject-me@example.test", "Refused"),
            mail("carol@example.test", "Accepted"),
        ],
    )
    .await;
    let refused = ids[0];
    wait_until(
        &app,
        &format!("id = '{refused}' AND failed_at IS NOT NULL"),
        "the refused mail given up",
        Duration::from_secs(15),
    )
    .await;
    sink.wait_for("carol@example.test", 1, Duration::from_secs(15))
        .await;
    // Time for two more polls and a retry, were there one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row = db_text(
        &app,
        &format!(
            "SELECT concat_ws('|', attempts, sent_at IS NULL, body IS NULL, last_error) \
             FROM mail_outbox WHERE id = '{refused}'"
        ),
    )
    .await;
    assert!(
        row.starts_with("1|t|t|"),
        "one attempt, not sent, body erased: {row}"
    );
    assert!(row.contains("550"), "the server's reply is kept: {row}");
    assert!(sink.mails_for("reject-me@example.test").is_empty());
    assert_eq!(
        metric(&app, "mail_failed_total{reason=\"permanent\"}").await,
        1.0
    );
    assert_eq!(
        metric(&app, "mail_failed_total{reason=\"transient\"}").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_smtp_url_mail_is_written_as_an_eml_file_into_the_outbox_dir() {
    let app = spawn_app().await;
    let dir = mail_dir(&app.db);
    let id = queue(
        &app,
        vec![mail("dave@example.test", "Confirm your new email")],
    )
    .await[0];
    wait_until(
        &app,
        &format!("id = '{id}' AND sent_at IS NOT NULL AND body IS NULL"),
        "the mail recorded as written",
        Duration::from_secs(15),
    )
    .await;
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    for expected in [
        "From: newsapi <no-reply@localhost>",
        "To: dave@example.test",
        "Subject: Confirm your new email",
        &format!("Message-ID: <{id}@localhost>"),
        "Content-Type: text/plain; charset=utf-8",
        "\r\n\r\nHello,\r\n\r\nfollow this link to go on:\r\n\
         http://127.0.0.1:3000/password/reset?token=tok_42\r\n",
    ] {
        assert!(eml.contains(expected), "{expected} missing from\n{eml}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_says_where_mail_goes_and_never_names_the_address_the_body_or_the_password() {
    // Files: the start-up line names the directory; each mail's line names its file.
    let server = LoggedServer::start("json", &[]).await;
    server
        .wait_for_line(|l| l.contains("SMTP_URL is not set") && l.contains("newsapi-mail-"))
        .await;
    let id = queue(&server.app, vec![mail("erin@example.test", "Secret link")]).await[0];
    let written = server
        .wait_for_line(|l| l.contains("mail written") && l.contains(&id.to_string()))
        .await;
    assert!(written.contains(".eml"), "{written}");

    // SMTP with a password, the server down: host:port only, and the failure at warn.
    let mut sink = SmtpSink::start().await;
    sink.stop().await;
    let url = format!("smtp://mailer:s3cr3t-pw@127.0.0.1:{}", sink.port);
    let smtp = LoggedServer::start("json", &[("SMTP_URL", &url)]).await;
    smtp.wait_for_line(|l| l.contains(&format!("127.0.0.1:{}", sink.port)))
        .await;
    let id = queue(&smtp.app, vec![mail("frank@example.test", "Secret link")]).await[0];
    let failed = smtp
        .wait_for_line(|l| l.contains("will retry") && l.contains(&id.to_string()))
        .await;
    assert!(failed.contains("\"WARN\""), "{failed}");

    for log in [server.log(), smtp.log()] {
        for secret in ["erin@", "frank@", "tok_42", "Hello,", "s3cr3t-pw"] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_garbage_smtp_url_or_mail_from_stops_start_up_with_one_line_naming_it() {
    for (name, value) in [
        (
            "SMTP_URL",
            "smtp://mailer:s3cr3t-pw@127.0.0.1:25?tls=sometimes",
        ),
        ("SMTP_URL", "mail.example.com"),
        ("MAIL_FROM", "newsapi at example dot com"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_newsapi"))
            .env_clear()
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env("JWT_SECRET", TEST_SECRET)
            .env(name, value)
            .current_dir(std::env::temp_dir())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(!stderr.contains("s3cr3t-pw"), "{stderr}");
    }
}
