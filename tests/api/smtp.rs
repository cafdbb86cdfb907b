//! A real SMTP server for the tests: Python's aiosmtpd (`tests/mail/smtp_sink.py`, in its pinned
//! venv), started per test on a free port, keeping every mail it accepts as a JSON file that the
//! test reads back.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// One mail the SMTP server accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    /// The envelope's recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The decoded text of the plain-text part.
    pub body: String,
    /// The whole message as received.
    pub raw: String,
}

impl ReceivedMail {
    /// Whether the envelope names `address` (compared ignoring ASCII case).
    pub fn is_for(&self, address: &str) -> bool {
        self.rcpt_tos
            .iter()
            .any(|r| r.eq_ignore_ascii_case(address))
    }

    /// The first link in the body whose path is `path`, as `(whole link, token)`.
    pub fn link(&self, path: &str) -> Option<(String, String)> {
        let marker = format!("{path}?token=");
        self.body.split_whitespace().find_map(|word| {
            let at = word.find(&marker)?;
            let token: String = word[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            let end = at + marker.len() + token.len();
            Some((word[..end].to_string(), token))
        })
    }

    /// The token of the first link to `path`; panics with the body when there is none.
    pub fn token(&self, path: &str) -> String {
        self.link(path)
            .unwrap_or_else(|| panic!("no link to {path} in the mail:\n{}", self.body))
            .1
    }
}

/// An SMTP server of the test's own.
pub struct SmtpSink {
    /// The port it listens on (kept across [`SmtpSink::stop`] and [`SmtpSink::start_again`]).
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("newsapi-smtp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sink = Self {
            port: 0,
            dir,
            child: None,
        };
        sink.start_again().await;
        sink
    }

    /// `SMTP_URL` for the server under test.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, after [`SmtpSink::stop`]) on its port, keeping the mails received so far.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the SMTP server is running already");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail/sink.sh");
        let mut child = Command::new("bash")
            .arg(script)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("tests/mail/sink.sh starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
            .await
            .expect(
                "the SMTP server says it listens within 3 minutes (the first run makes its venv)",
            )
            .unwrap()
            .expect("the SMTP server printed its port");
        self.port = line
            .strip_prefix("listening on ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP server: {line}"));
        self.child = Some(child);
    }

    /// Stops it: from now on connections to its port are refused.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SIGTERM, so aiosmtpd closes its socket; then wait for the exit.
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// Every mail received so far, in order of arrival.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| serde_json::from_slice(&std::fs::read(self.dir.join(n)).unwrap()).unwrap())
            .collect()
    }

    /// The mails received so far for `address`.
    pub fn mails_for(&self, address: &str) -> Vec<ReceivedMail> {
        self.mails()
            .into_iter()
            .filter(|m| m.is_for(address))
            .collect()
    }

    /// Waits up to `within` until `address` has received `count` mails, and returns them all;
    /// panics, naming what did arrive, if they do not.
    pub async fn wait_for(
        &self,
        address: &str,
        count: usize,
        within: Duration,
    ) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails_for(address);
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{address} received {} of {count} mails within {within:?}; subjects: {:?}",
                mails.len(),
                mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest mail for `address` whose subject contains `subject`, waiting up to 10 s for it.
    pub async fn latest(&self, address: &str, subject: &str) -> ReceivedMail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(mail) = self
                .mails_for(address)
                .into_iter()
                .rev()
                .find(|m| m.subject.contains(subject))
            {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "no mail to {address} about {subject:?} within 10 s; received: {:?}",
                self.mails()
                    .iter()
                    .map(|m| (&m.rcpt_tos, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_smtp_server_keeps_what_it_accepts_and_refuses_while_stopped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sink = SmtpSink::start().await;
    let talk = |port: u16| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let script = "EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
                      Subject: hello\r\nTo: b@example.com\r\n\r\nsee http://h/p?token=abc_-9 now\r\n.\r\nQUIT\r\n";
        s.write_all(script.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        std::io::Result::Ok(out)
    };
    talk(sink.port).await.unwrap();
    let mail = &sink
        .wait_for("b@example.com", 1, Duration::from_secs(5))
        .await[0];
    assert_eq!(mail.subject, "hello");
    assert_eq!(mail.token("/p"), "abc_-9");
    sink.stop().await;
    assert!(
        talk(sink.port).await.is_err(),
        "a stopped SMTP server refuses connections"
    );
    sink.start_again().await;
    talk(sink.port).await.unwrap();
    sink.wait_for("b@example.com", 2, Duration::from_secs(5))
        .await;
}
