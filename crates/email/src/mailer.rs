//! The SMTP side: one pooled lettre transport built from `MTDESK_SMTP_URL`, and the From mailbox.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mtdesk_storage::OutboxMail;

use crate::EmailError;

/// lettre's timeout for each SMTP command (connect, each reply). A dead server fails an attempt in
/// seconds instead of holding the mail's lease.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends mail over SMTP, or is "not configured" (no URL): then nothing is sent and mails wait in the
/// outbox. `Debug` and [`Mailer::redacted`] never show the password.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    redacted: Option<String>,
    /// The password as written in the URL and percent-decoded: only to scrub it from error texts.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("smtp", &self.redacted())
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// Why one delivery attempt failed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct SendFailure {
    /// A 5xx reply or an unsendable message: retrying cannot help.
    pub permanent: bool,
    /// The error, with the SMTP password removed.
    pub message: String,
}

impl Mailer {
    /// Parses `MTDESK_SMTP_URL` (`None` or empty: not configured) and the From mailbox (e.g.
    /// `MT Desk <no-reply@example.com>`, checked even without a URL so a bad value shows at start-up).
    ///
    /// URLs as lettre reads them: `smtp://user:pass@host:2525` (plain, port 25 by default),
    /// `smtp://host:587?tls=required` (STARTTLS, required), `smtp://host?tls=opportunistic`,
    /// `smtps://user:pass@host` (TLS from the start, port 465). User and password are percent-decoded.
    ///
    /// With a URL, call (and drop) it inside a Tokio runtime: lettre's connection pool runs a background
    /// task that it spawns on creation and on drop.
    pub fn parse(url: Option<&str>, from: &str) -> Result<Self, EmailError> {
        let from: Mailbox = from.trim().parse().map_err(|e| {
            EmailError::Config(format!(
                "the From address {from:?} is not a valid mailbox (e.g. `MT Desk <no-reply@example.com>`): {e}"
            ))
        })?;
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self {
                transport: None,
                from,
                redacted: None,
                secrets: Vec::new(),
            });
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            EmailError::Config(format!(
                "MTDESK_SMTP_URL is not a valid URL ({e}); use e.g. smtp://user:pass@host:587?tls=required or smtps://user:pass@host"
            ))
        })?;
        let redacted = redact(&parsed);
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(EmailError::Config(format!(
                "MTDESK_SMTP_URL {redacted} has the scheme {:?}; use smtp:// or smtps://",
                parsed.scheme()
            )));
        }
        let secrets: Vec<String> = parsed
            .password()
            .filter(|p| !p.is_empty())
            .map(|p| {
                let decoded = percent_decode(p);
                if decoded == p {
                    vec![p.to_string()]
                } else {
                    vec![p.to_string(), decoded]
                }
            })
            .unwrap_or_default();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                EmailError::Config(scrub(
                    &format!("MTDESK_SMTP_URL {redacted} is not usable: {e}"),
                    &secrets,
                ))
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self {
            transport: Some(transport),
            from,
            redacted: Some(redacted),
            secrets,
        })
    }

    /// Whether an SMTP URL was given (mails are sent) or not (mails stay in the outbox).
    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// The SMTP URL without its password, for logs: `smtp://user@host:2525?tls=required`, or
    /// `not configured`.
    pub fn redacted(&self) -> String {
        self.redacted
            .clone()
            .unwrap_or_else(|| "not configured".to_string())
    }

    /// The From mailbox every mail is sent with.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one queued mail as `multipart/alternative` (plain text, then HTML). Not configured: an
    /// `Err` that is not permanent (the mail stays queued).
    pub async fn send(&self, mail: &OutboxMail) -> Result<(), SendFailure> {
        let Some(transport) = &self.transport else {
            return Err(SendFailure {
                permanent: false,
                message: "SMTP is not configured (MTDESK_SMTP_URL)".to_string(),
            });
        };
        let to: Mailbox = mail.to_addr.parse().map_err(|e| SendFailure {
            permanent: true,
            message: format!("invalid recipient address: {e}"),
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(
                mail.body_text.clone(),
                mail.body_html.clone(),
            ))
            .map_err(|e| SendFailure {
                permanent: true,
                message: format!("cannot build the message: {e}"),
            })?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SendFailure {
                // 5xx: the server refused for good (unknown mailbox, rejected content, bad credentials).
                // 4xx, connection, TLS and timeout errors may pass on a later attempt.
                permanent: e.is_permanent(),
                message: scrub(&e.to_string(), &self.secrets),
            }),
        }
    }
}

/// The URL without its password.
fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(None);
    }
    u.to_string()
}

/// Removes every secret from an error text: an SMTP server or a library may echo what it was sent.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

/// `%XX` → byte; anything else as is (only used to know the password's decoded form for [`scrub`]).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_password_never_shows_in_redacted_or_debug() {
        let m = Mailer::parse(
            Some("smtp://bob:s%40cret!@mail.example:2525?tls=required"),
            "MT Desk <no-reply@example.com>",
        )
        .expect("valid");
        assert!(m.is_configured());
        assert_eq!(m.redacted(), "smtp://bob@mail.example:2525?tls=required");
        let debug = format!("{m:?}");
        assert!(!debug.contains("cret"), "{debug}");
        assert_eq!(
            scrub("535 auth failed for s@cret! (s%40cret!)", &m.secrets),
            "535 auth failed for [redacted] ([redacted])"
        );
    }

    #[test]
    fn no_url_means_not_configured_but_the_from_address_is_still_checked() {
        let m = Mailer::parse(None, "no-reply@example.com").expect("valid");
        assert!(!m.is_configured());
        assert_eq!(m.redacted(), "not configured");
        assert!(
            !Mailer::parse(Some("  "), "a@example.com")
                .expect("valid")
                .is_configured()
        );
        assert!(matches!(
            Mailer::parse(None, "not an address"),
            Err(EmailError::Config(_))
        ));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "mailto:bob@example.com",
            "http://bob:hunter2@example.com",
            "smtp://bob:hunter2@mail.example?tls=sometimes",
            "not a url hunter2",
        ] {
            match Mailer::parse(Some(bad), "a@example.com") {
                Err(EmailError::Config(msg)) => {
                    assert!(!msg.contains("hunter2"), "{bad}: {msg}")
                }
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn percent_decoding_handles_escapes_and_stray_percents() {
        assert_eq!(percent_decode("a%40b%2Fc"), "a@b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
