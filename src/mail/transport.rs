//! How a mail leaves the server: over SMTP to `SMTP_URL`, or, without one, as an `.eml` file in
//! `MAIL_OUTBOX_DIR` (so a developer needs no mail server and can open each mail). Both are
//! lettre's transports; this module builds the message, bounds each send, and sorts failures into
//! the ones worth retrying and the ones that are not.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::AsyncSmtpTransportBuilder,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::Outgoing;
use crate::config::MailConfig;

/// The longest one SMTP command may wait for the server's reply (lettre's own timeout).
const SMTP_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one whole send may take, connection, TLS and every command included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// To an SMTP server.
    Smtp {
        /// lettre's client (no pool: a connection per mail).
        client: AsyncSmtpTransport<Tokio1Executor>,
        /// `host:port`, for the log (never the URL: it may carry a password).
        server: String,
    },
    /// Into a directory, one `<uuid>.eml` file per mail.
    Files {
        /// lettre's file transport.
        files: AsyncFileTransport<Tokio1Executor>,
        /// The directory.
        dir: PathBuf,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why a mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later: no connection, a timeout, a 4xx reply, a full disk.
    Transient(String),
    /// Never going to work: a 5xx reply (an unknown mailbox, a refused sender), an address that
    /// is no address.
    Permanent(String),
}

impl SendError {
    /// The short reason, for `mail_outbox.last_error` and the log (no secrets: lettre's errors
    /// name the reply or the I/O failure, never the credentials).
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Transient(why) | Self::Permanent(why) => why,
        }
    }
}

/// Why the transport could not be set up; one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `SMTP_URL` is not one lettre can use.
    #[error("SMTP_URL is not a usable SMTP URL: {0}")]
    SmtpUrl(String),
    /// `MAIL_OUTBOX_DIR` could not be created.
    #[error("MAIL_OUTBOX_DIR {dir} cannot be created: {why}")]
    OutboxDir {
        /// The directory.
        dir: String,
        /// What the system said.
        why: String,
    },
}

/// lettre's builder for `url`, with `tls=starttls` (the spelling most mail providers document)
/// read as lettre's `tls=required`: STARTTLS, and no mail sent if the server does not offer it.
/// lettre's own spellings (`required`, `opportunistic`) and `smtps://` (implicit TLS, port 465 by
/// default) work as lettre documents them.
///
/// # Errors
/// A URL that does not parse, or whose scheme or `tls` lettre does not know; the message never
/// repeats the URL (it may carry a password).
pub fn smtp_builder(url: &str) -> Result<AsyncSmtpTransportBuilder, String> {
    let mut parsed =
        url::Url::parse(url).map_err(|err| format!("it does not parse as a URL ({err})"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it names no host".into());
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "tls" && v.eq_ignore_ascii_case("starttls") {
                "required".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if let Some((_, tls)) = pairs.iter().find(|(k, _)| k == "tls")
        && !["required", "opportunistic"].contains(&tls.as_str())
    {
        return Err(format!(
            "tls={tls:?} is not one of starttls, required or opportunistic"
        ));
    }
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    AsyncSmtpTransport::<Tokio1Executor>::from_url(parsed.as_str())
        .map(|builder| builder.timeout(Some(SMTP_COMMAND_TIMEOUT)))
        .map_err(|err| format!("{err}"))
}

/// `host:port` of an SMTP URL that [`smtp_builder`] accepted, for the log.
fn server_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "?".into(),
        |url| {
            let port = url
                .port()
                .unwrap_or(if url.scheme() == "smtps" { 465 } else { 25 });
            let port = match (url.port(), url.query_pairs().any(|(k, _)| k == "tls")) {
                (None, true) => 587,
                _ => port,
            };
            format!("{}:{port}", url.host_str().unwrap_or("?"))
        },
    )
}

impl Transport {
    /// The transport `config` names: SMTP when `SMTP_URL` is set, files otherwise (the directory
    /// is created now).
    ///
    /// # Errors
    /// An unusable `SMTP_URL`, or an outbox directory that cannot be created.
    pub fn new(config: &MailConfig) -> Result<Self, TransportError> {
        match &config.smtp_url {
            Some(url) => {
                let url = url.expose_secret();
                let client = smtp_builder(url).map_err(TransportError::SmtpUrl)?.build();
                Ok(Self::Smtp {
                    client,
                    server: server_of(url),
                })
            }
            None => {
                std::fs::create_dir_all(&config.outbox_dir).map_err(|err| {
                    TransportError::OutboxDir {
                        dir: config.outbox_dir.display().to_string(),
                        why: err.to_string(),
                    }
                })?;
                Ok(Self::Files {
                    files: AsyncFileTransport::new(&config.outbox_dir),
                    dir: config.outbox_dir.clone(),
                })
            }
        }
    }

    /// Where mail goes, for the log: `smtp host:port` or `files in DIR`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { server, .. } => format!("SMTP server {server}"),
            Self::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends `mail` from `from`, within [`SEND_TIMEOUT`]. Its `Message-ID` is made of `id` (the
    /// outbox row's) and the sender's domain, so a mail sent twice (the worker is at-least-once)
    /// carries the same id both times. Returns, for files, the path written.
    ///
    /// # Errors
    /// Why it was not sent, transient or permanent.
    pub async fn send(
        &self,
        id: Uuid,
        from: &Mailbox,
        mail: &Outgoing,
    ) -> Result<Option<PathBuf>, SendError> {
        let to: Mailbox = mail.to.parse().map_err(|err| {
            SendError::Permanent(format!("the recipient is not an address: {err}"))
        })?;
        let message = Message::builder()
            .message_id(Some(format!("<{id}@{}>", from.email.domain())))
            .from(from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|err| SendError::Permanent(format!("the mail cannot be built: {err}")))?;
        let sending = async {
            match self {
                Self::Smtp { client, .. } => client
                    .send(message)
                    .await
                    .map(|_| None)
                    .map_err(|err| classify_smtp(&err)),
                Self::Files { files, dir } => files
                    .send(message)
                    .await
                    .map(|name| Some(eml_path(dir, &name)))
                    .map_err(|err| SendError::Transient(format!("cannot write the file: {err}"))),
            }
        };
        tokio::time::timeout(SEND_TIMEOUT, sending)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Transient(format!(
                    "no answer within {}s",
                    SEND_TIMEOUT.as_secs()
                )))
            })
    }
}

fn eml_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.eml"))
}

/// A 5xx reply is permanent; everything else (no connection, a timeout, TLS, a 4xx reply) may
/// work later.
fn classify_smtp(err: &lettre::transport::smtp::Error) -> SendError {
    let why = short(&err.to_string());
    if err.is_permanent() {
        SendError::Permanent(why)
    } else {
        SendError::Transient(why)
    }
}

/// At most 300 characters, on a character boundary, on one line.
fn short(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starttls_is_read_as_required_and_lettres_own_spellings_work() {
        for url in [
            "smtp://user:pass@mail.example.com:587?tls=starttls",
            "smtp://user:pass@mail.example.com:587?tls=STARTTLS",
            "smtp://mail.example.com?tls=required",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://127.0.0.1:2525",
            "smtps://user:pass@mail.example.com",
        ] {
            assert!(smtp_builder(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn garbage_is_refused_without_repeating_the_password() {
        for url in [
            "smtp://user:s3cr3t@mail.example.com?tls=maybe",
            "smtp://user:s3cr3t@",
            "smtp//user:s3cr3t@mail.example.com",
            "imap://user:s3cr3t@mail.example.com",
        ] {
            let err = smtp_builder(url).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{url}: {err}");
        }
    }

    #[test]
    fn the_log_names_host_and_port_only() {
        assert_eq!(
            server_of("smtp://user:pass@mail.example.com:587?tls=starttls"),
            "mail.example.com:587"
        );
        assert_eq!(
            server_of("smtps://u:p@mail.example.com"),
            "mail.example.com:465"
        );
        assert_eq!(
            server_of("smtp://mail.example.com?tls=required"),
            "mail.example.com:587"
        );
        assert_eq!(server_of("smtp://mail.example.com"), "mail.example.com:25");
    }
}
