//! The outbox service: queue now, deliver in the background, retry with backoff, give up visibly.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use mtdesk_domain::{AccountId, now_ms};
use mtdesk_storage::{NewMail, OutboxMail, StorageError, Store};
use tokio::sync::Notify;
use tracing::{info, instrument, warn};

use crate::messages::format_utc;
use crate::{EmailError, Mailer, Rendered};

/// Waits after failed attempts 1, 2, …: 1 min, 5 min, 30 min, 2 h, 6 h. The attempt after the last wait
/// is the last one (6 attempts over about 8.6 hours), then the mail is `failed`.
pub const DEFAULT_BACKOFF: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
];

/// Mails claimed per round.
const BATCH: i64 = 20;
/// How long a claim holds its mails. A round stops starting new sends after half of it (see
/// [`Outbox::deliver_due`]), so with [`crate::mailer::SMTP_TIMEOUT`] per SMTP command a claimed mail is
/// sent or released well within its lease, and no other node sends it meanwhile.
const LEASE: Duration = Duration::from_secs(120);

/// What one [`Outbox::deliver_due`] round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Mails this worker claimed.
    pub claimed: usize,
    /// Accepted by the SMTP server (their rows are gone).
    pub sent: usize,
    /// Failed this time, will be retried.
    pub retrying: usize,
    /// Failed for good (permanent refusal or last attempt).
    pub failed: usize,
    /// Claimed but not tried because the round ran long; sent by a later round once the lease expires.
    pub deferred: usize,
}

/// The email outbox: [`Outbox::enqueue`] commits a mail, [`Outbox::run`] delivers it. Cheap to clone;
/// clones share the wake-up signal, so an enqueue wakes the worker at once.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    mailer: Arc<Mailer>,
    notify: Arc<Notify>,
    backoff: Arc<[Duration]>,
    interval: Duration,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("mailer", &self.mailer)
            .field("interval", &self.interval)
            .finish()
    }
}

impl Outbox {
    /// An outbox over `store` delivering with `mailer` (which may be "not configured": then mails are only
    /// queued). Polls every 2 s by default.
    pub fn new(store: Store, mailer: Mailer) -> Self {
        Self {
            store,
            mailer: Arc::new(mailer),
            notify: Arc::new(Notify::new()),
            backoff: Arc::from(DEFAULT_BACKOFF.as_slice()),
            interval: Duration::from_secs(2),
        }
    }

    /// How often [`Outbox::run`] looks for due mails besides being woken by an enqueue (retries become due
    /// without a wake-up).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The waits after each failed attempt (see [`DEFAULT_BACKOFF`]); a mail gets `backoff.len() + 1`
    /// attempts. Tests pass zero waits to retry at once.
    pub fn with_backoff(mut self, backoff: &[Duration]) -> Self {
        self.backoff = Arc::from(backoff);
        self
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits a rendered mail to `to` (checked to be an address; refused with [`EmailError::Invalid`]
    /// otherwise) and wakes the delivery worker. `account` is the account the mail is about, so its
    /// deletion can find the mail. Returns the outbox id.
    pub async fn enqueue(
        &self,
        account: Option<&AccountId>,
        to: &str,
        mail: Rendered,
    ) -> Result<String, EmailError> {
        let to = to.trim();
        to.parse::<Mailbox>()
            .map_err(|e| EmailError::Invalid(e.to_string()))?;
        let id = self
            .store
            .enqueue_mail(&NewMail {
                account_id: account.cloned(),
                kind: mail.kind.to_string(),
                to_addr: to.to_string(),
                subject: mail.subject,
                body_text: mail.text,
                body_html: mail.html,
            })
            .await?;
        self.notify.notify_one();
        Ok(id)
    }

    /// One delivery round: claims up to 20 due mails (a 2-minute lease) and sends each. A sent mail's row
    /// is deleted; a failed one is retried after the backoff, or marked `failed` on a permanent refusal or
    /// after its last attempt. Does nothing when SMTP is not configured. Safe to call from several nodes
    /// at once: each mail is claimed by one of them.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, EmailError> {
        let mut report = DeliveryReport::default();
        if !self.mailer.is_configured() {
            return Ok(report);
        }
        let started = Instant::now();
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let mails = self
            .store
            .claim_due_mails(now_ms(), BATCH, lease_ms)
            .await?;
        report.claimed = mails.len();
        for mail in mails {
            if started.elapsed() > LEASE / 2 {
                // Left locked: due again when the lease expires, for whichever node comes first.
                report.deferred += 1;
                continue;
            }
            self.deliver_one(&mail, &mut report).await?;
        }
        Ok(report)
    }

    #[instrument(skip_all, fields(mail.id = %mail.id, mail.kind = %mail.kind, mail.attempt = mail.attempts + 1))]
    async fn deliver_one(
        &self,
        mail: &OutboxMail,
        report: &mut DeliveryReport,
    ) -> Result<(), EmailError> {
        match self.mailer.send(mail).await {
            Ok(()) => {
                match self.store.mail_sent(&mail.id).await {
                    // Deleted meanwhile (the account's deletion): nothing left to do.
                    Ok(()) | Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                info!("mail sent");
                report.sent += 1;
            }
            Err(failure) => {
                let attempts = usize::try_from(mail.attempts).unwrap_or(0) + 1;
                let next = if failure.permanent {
                    None
                } else {
                    self.backoff.get(attempts - 1).map(|wait| {
                        now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
                    })
                };
                match next {
                    Some(at) => {
                        warn!(error = %failure.message, retry_at = at, "mail not sent, will retry");
                        report.retrying += 1;
                    }
                    None => {
                        warn!(error = %failure.message, permanent = failure.permanent, "mail not sent, giving up");
                        report.failed += 1;
                    }
                }
                match self
                    .store
                    .mail_failed(&mail.id, &failure.message, next)
                    .await
                {
                    Ok(()) | Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Delivers until `shutdown` completes: a round at once, then whenever [`Outbox::enqueue`] wakes it or
    /// the interval passes; a full batch is followed by another round straight away. Without SMTP it only
    /// waits for `shutdown` (mails stay queued). Errors (e.g. the database briefly unreachable) are logged
    /// and the loop goes on.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        if !self.mailer.is_configured() {
            info!("email delivery is off (MTDESK_SMTP_URL not set): mails stay in the outbox");
            shutdown.await;
            return;
        }
        info!(smtp = %self.mailer.redacted(), "email delivery started");
        loop {
            let more = match self.deliver_due().await {
                Ok(r) => i64::try_from(r.claimed).unwrap_or(0) == BATCH && r.deferred == 0,
                Err(e) => {
                    warn!(error = %e, "email delivery round failed");
                    false
                }
            };
            if more {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    _ = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// The operator's view of the outbox (`mtdesk admin outbox`): counts, then up to `limit` pending and
/// failed mails, oldest first, as a table (id, kind, to, status, attempts, next attempt, last error).
pub async fn outbox_report(store: &Store, limit: i64) -> Result<String, EmailError> {
    let (pending, failed) = store.outbox_counts().await?;
    let mails = store.list_outbox(limit).await?;
    let mut out = format!("Outbox: {pending} pending, {failed} failed\n");
    if mails.is_empty() {
        out.push_str("Nothing waiting: every queued mail was delivered.\n");
        return Ok(out);
    }
    let now = now_ms();
    let header = [
        "ID",
        "KIND",
        "TO",
        "STATUS",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST ERROR",
    ]
    .map(String::from);
    let rows: Vec<[String; 7]> = mails
        .iter()
        .map(|m| {
            let next = if m.status != "pending" {
                "-".to_string()
            } else if m.locked_until > now {
                "sending".to_string()
            } else if m.next_attempt_at <= now {
                "now".to_string()
            } else {
                format_utc(m.next_attempt_at)
            };
            [
                m.id.clone(),
                m.kind.clone(),
                m.to_addr.clone(),
                m.status.clone(),
                m.attempts.to_string(),
                next,
                one_line(m.last_error.as_deref().unwrap_or("-"), 60),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push('\n');
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if i64::try_from(rows.len()).unwrap_or(i64::MAX) < pending + failed {
        out.push_str(&format!(
            "(showing the oldest {} of {})\n",
            rows.len(),
            pending + failed
        ));
    }
    Ok(out)
}

/// Newlines folded, cut to `max` characters with an ellipsis: table cells stay on one line.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn table_cells_are_one_short_line() {
        assert_eq!(one_line("a\r\nb", 10), "a  b");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }
}
