//! Transactional email for MT Desk: a durable outbox in the [`Store`](mtdesk_storage::Store), SMTP delivery
//! with retries ([`Outbox`]), and the messages we send ([`messages`]).
//!
//! # Why an outbox
//! A deletion confirmation or an export link must not be lost because the SMTP server was down for a
//! minute, and must not hold up the request that caused it. So a mail is first committed to the `outbox`
//! table ([`Outbox::enqueue`]); a worker on every node ([`Outbox::run`]) claims due mails with a lease (no
//! two nodes send the same mail at once), sends each over SMTP, and deletes the row once the server
//! accepted it: no copy of an address or a body is kept after delivery (privacy policy, "Email provider").
//! Failures are retried with backoff; a permanent SMTP refusal (5xx) or the last attempt marks the mail
//! `failed`, which the operator sees in `mtdesk admin outbox` ([`outbox_report`]) and can retry.
//!
//! Without `MTDESK_SMTP_URL` the [`Mailer`] is "not configured": mails are queued and stay pending until
//! SMTP is configured, nothing is dropped.

pub mod mailer;
pub mod messages;
pub mod outbox;

pub use mailer::Mailer;
pub use messages::{Rendered, Site};
pub use outbox::{DeliveryReport, Outbox, outbox_report};

use mtdesk_storage::StorageError;

/// What can go wrong, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The SMTP URL or the From address is unusable: a start-up error naming the setting (never the
    /// password).
    #[error("{0}")]
    Config(String),
    /// A recipient that is not an email address: refused before it is queued.
    #[error("invalid email address: {0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A template failed to render (a bug, not an input problem).
    #[error("rendering an email template failed: {0}")]
    Template(#[from] askama::Error),
}

/// Whether `addr` is an address this crate can send to (lettre's mailbox syntax, stricter than a plain
/// "looks like an email" check): validate before storing anything that will be mailed later.
pub fn deliverable(addr: &str) -> bool {
    addr.trim().parse::<lettre::message::Mailbox>().is_ok()
}
