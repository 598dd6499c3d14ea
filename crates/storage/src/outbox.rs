//! The durable email outbox: a mail is committed here before anything tries to send it, so a crash or an
//! SMTP outage loses nothing. Delivery workers (one per node) claim due mails with a lease, so two nodes
//! never send the same mail at the same time. A sent mail's row is deleted at once: no copy of an address
//! or a body outlives its delivery (privacy policy, "Email provider").

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The longest `last_error` kept: enough to diagnose, not a place for whole SMTP transcripts.
const MAX_ERROR_CHARS: usize = 500;

/// A mail to queue: already rendered, addressed to one recipient.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The account the mail is about (`None` for operator mail); lets account deletion find it.
    pub account_id: Option<AccountId>,
    /// Template name, e.g. `account_deleted`: shown by `mtdesk admin outbox`, never the body.
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
}

/// A queued mail: `pending` (due at `next_attempt_at`) or `failed` (delivery gave up).
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: String,
    pub account_id: Option<AccountId>,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub status: String,
    /// Failed delivery attempts so far.
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// While in the future, a delivery worker holds the mail; 0 when nobody does.
    pub locked_until: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, account_id, kind, to_addr, subject, body_text, body_html, status, attempts, \
     next_attempt_at, locked_until, last_error, created_at";

fn from_row(r: &AnyRow) -> Result<OutboxMail, sqlx::Error> {
    Ok(OutboxMail {
        id: r.try_get("id")?,
        account_id: r
            .try_get::<Option<String>, _>("account_id")?
            .map(AccountId::from_db),
        kind: r.try_get("kind")?,
        to_addr: r.try_get("to_addr")?,
        subject: r.try_get("subject")?,
        body_text: r.try_get("body_text")?,
        body_html: r.try_get("body_html")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        locked_until: r.try_get("locked_until")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
    })
}

/// At most [`MAX_ERROR_CHARS`] characters, cut on a character boundary.
fn truncate_error(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => error[..cut].to_string(),
        None => error.to_string(),
    }
}

impl Store {
    /// Queues a mail, due now. Returns its id (a UUID v4).
    pub async fn enqueue_mail(&self, mail: &NewMail) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO outbox (id, account_id, kind, to_addr, subject, body_text, body_html, status, attempts,
                 next_attempt_at, locked_until, last_error, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, 0, NULL, $8)",
        )
        .bind(&id)
        .bind(mail.account_id.as_ref().map(|a| a.as_str().to_string()))
        .bind(&mail.kind)
        .bind(&mail.to_addr)
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(&mail.body_html)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Claims up to `limit` pending mails due at `now` that no worker holds, leasing each until
    /// `now + lease_ms`. Safe across nodes on both databases: each candidate is taken by a conditional
    /// `UPDATE … WHERE locked_until <= now` that only one worker can win (SQLite has one writer; PostgreSQL
    /// re-checks the condition on the locked row), and only the rows this worker won are returned, as they
    /// are after the update. A worker that dies mid-send leaves the lease to expire; the mail is then sent
    /// again (at least once, never twice at the same time).
    pub async fn claim_due_mails(
        &self,
        now: i64,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxMail>> {
        let candidates = sqlx::query(
            "SELECT id FROM outbox
             WHERE status = 'pending' AND next_attempt_at <= $1 AND locked_until <= $1
             ORDER BY next_attempt_at, created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let id: String = c.try_get("id")?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET locked_until = $2
                 WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $3 AND locked_until <= $3
                 RETURNING {COLUMNS}"
            )))
            .bind(&id)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = row {
                claimed.push(from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// A mail was delivered: its row is deleted, so no copy of its address or body is kept.
    pub async fn mail_sent(&self, id: &str) -> Result<()> {
        let row = sqlx::query("DELETE FROM outbox WHERE id = $1 RETURNING account_id")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Err(StorageError::NotFound);
        };
        // A mail about no (longer existing) account — a deletion confirmation, a request's acknowledgement —
        // names someone we otherwise forgot: on SQLite its bytes must not linger in the write-ahead log.
        let orphan = sqlx::Row::try_get::<Option<String>, _>(&row, "account_id")?.is_none();
        if orphan {
            self.after_bulk_delete().await;
        }
        Ok(())
    }

    /// A delivery attempt failed: counts it, keeps the error (cut to 500 characters; the caller must have
    /// removed any secret from it) and releases the lease. `Some(at)` retries at `at`; `None` gives up
    /// (`failed`, listed by [`Store::list_outbox`] until [`Store::retry_failed_mails`]).
    pub async fn mail_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<()> {
        let error = truncate_error(error);
        let query = match next_attempt_at {
            Some(at) => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,
                     locked_until = 0
                 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(at),
            None => sqlx::query(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $2,
                     locked_until = 0
                 WHERE id = $1",
            )
            .bind(id)
            .bind(error),
        };
        let n = query.execute(self.pool()).await?.rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Pending and failed mails, oldest first (what `mtdesk admin outbox` shows).
    pub async fn list_outbox(&self, limit: i64) -> Result<Vec<OutboxMail>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox ORDER BY created_at, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Puts every failed mail back in the queue, due now with a fresh attempt budget (after the operator
    /// fixed the SMTP settings or the address). Returns how many.
    pub async fn retry_failed_mails(&self) -> Result<u64> {
        let n = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, locked_until = 0
             WHERE status = 'failed'",
        )
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n)
    }

    /// `(pending, failed)` mail counts, for health output and the admin report.
    pub async fn outbox_counts(&self) -> Result<(i64, i64)> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
            .fetch_all(self.pool())
            .await?;
        let (mut pending, mut failed) = (0, 0);
        for r in &rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            match status.as_str() {
                "pending" => pending += n,
                "failed" => failed += n,
                _ => {}
            }
        }
        Ok((pending, failed))
    }
}

impl Store {
    /// Deletes mails about no account (deletion confirmations, request acknowledgements) created before
    /// `before` and still unsent (pending or failed). Returns how many.
    pub async fn purge_orphan_mails(&self, before: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM outbox WHERE account_id IS NULL AND created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n > 0 {
            self.after_bulk_delete().await;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_error;

    #[test]
    fn errors_are_cut_to_500_characters_on_a_char_boundary() {
        assert_eq!(truncate_error("short"), "short");
        let long = "é".repeat(600);
        let cut = truncate_error(&long);
        assert_eq!(cut.chars().count(), 500);
    }
}
