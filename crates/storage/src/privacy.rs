//! Deletion receipts and Meta data-deletion requests: proof of what was deleted, without personal data.

use crate::{Result, StorageError, Store};
use mtdesk_domain::now_ms;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored deletion receipt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    pub id: String,
    pub scope: String,
    pub path: String,
    pub subject_hash: String,
    /// Category → rows deleted.
    pub counts: serde_json::Map<String, serde_json::Value>,
    pub kept: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// A Meta data-deletion request as its status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeletionRequest {
    pub confirmation_code: String,
    pub subject_hash: String,
    /// The subject (Meta user id) while the deletion is not completed; `None` afterwards.
    pub subject: Option<String>,
    /// `received`, `in_progress` or `completed`.
    pub status: String,
    pub receipt_id: Option<String>,
    pub received_at: i64,
    pub completed_at: Option<i64>,
}

fn receipt_from(r: &AnyRow) -> Result<Receipt> {
    let counts: String = r.try_get("counts")?;
    Ok(Receipt {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        path: r.try_get("path")?,
        subject_hash: r.try_get("subject_hash")?,
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        kept: r.try_get("kept")?,
        created_at: r.try_get("created_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

fn request_from(r: &AnyRow) -> Result<DeletionRequest> {
    Ok(DeletionRequest {
        confirmation_code: r.try_get("confirmation_code")?,
        subject_hash: r.try_get("subject_hash")?,
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
        receipt_id: r.try_get("receipt_id")?,
        received_at: r.try_get("received_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

impl Store {
    /// Records a completed deletion.
    pub async fn insert_receipt(
        &self,
        scope: &str,
        path: &str,
        subject_hash: &str,
        counts: &[(&str, u64)],
        kept: Option<&str>,
        started_at: i64,
    ) -> Result<Receipt> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut map = serde_json::Map::new();
        for (k, v) in counts {
            let prev = map.get(*k).and_then(|v| v.as_u64()).unwrap_or(0);
            map.insert((*k).to_string(), serde_json::Value::from(prev + v));
        }
        sqlx::query(
            "INSERT INTO deletion_receipts (id, scope, path, subject_hash, counts, kept, created_at, completed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(scope)
        .bind(path)
        .bind(subject_hash)
        .bind(serde_json::Value::Object(map).to_string())
        .bind(kept)
        .bind(started_at)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.find_receipt(&id).await
    }

    pub async fn find_receipt(&self, id: &str) -> Result<Receipt> {
        let r = sqlx::query(
            "SELECT id, scope, path, subject_hash, counts, kept, created_at, completed_at FROM deletion_receipts WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        receipt_from(&r)
    }

    /// Receipts, newest first (the operator's proof of compliance).
    pub async fn list_receipts(&self, limit: i64) -> Result<Vec<Receipt>> {
        let rows = sqlx::query(
            "SELECT id, scope, path, subject_hash, counts, kept, created_at, completed_at FROM deletion_receipts
             ORDER BY created_at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(receipt_from).collect()
    }

    /// Records a new data-deletion request (`received`).
    pub async fn insert_deletion_request(
        &self,
        confirmation_code: &str,
        subject_hash: &str,
        subject: &str,
    ) -> Result<DeletionRequest> {
        sqlx::query(
            "INSERT INTO data_deletion_requests (confirmation_code, subject_hash, subject, status, received_at)
             VALUES ($1, $2, $3, 'received', $4)",
        )
        .bind(confirmation_code)
        .bind(subject_hash)
        .bind(subject)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.find_deletion_request(confirmation_code).await
    }

    pub async fn find_deletion_request(&self, code: &str) -> Result<DeletionRequest> {
        let r = sqlx::query(
            "SELECT confirmation_code, subject_hash, subject, status, receipt_id, received_at, completed_at
             FROM data_deletion_requests WHERE confirmation_code = $1",
        )
        .bind(code)
        .fetch_one(self.pool())
        .await?;
        request_from(&r)
    }

    /// Requests not completed yet (resumed after a restart).
    pub async fn pending_deletion_requests(&self) -> Result<Vec<DeletionRequest>> {
        let rows = sqlx::query(
            "SELECT confirmation_code, subject_hash, subject, status, receipt_id, received_at, completed_at
             FROM data_deletion_requests WHERE status <> 'completed' ORDER BY received_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(request_from).collect()
    }

    pub async fn set_deletion_request_status(
        &self,
        code: &str,
        status: &str,
        receipt_id: Option<&str>,
    ) -> Result<()> {
        let completed = (status == "completed").then(now_ms);
        let n = sqlx::query(
            "UPDATE data_deletion_requests SET status = $2, receipt_id = COALESCE($3, receipt_id),
                completed_at = COALESCE($4, completed_at),
                subject = CASE WHEN $2 = 'completed' THEN NULL ELSE subject END
             WHERE confirmation_code = $1",
        )
        .bind(code)
        .bind(status)
        .bind(receipt_id)
        .bind(completed)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}

/// The retention every account gets unless it chose a shorter one (the policy's 12 months).
pub const DEFAULT_RETENTION_DAYS: i64 = 365;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What the retention setting will do next.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetentionPreview {
    pub retention_days: i64,
    /// Messages that will be purged within the next 7 days.
    pub messages_due_within_7_days: i64,
    /// When the oldest message will be purged (`None` without messages).
    pub next_purge_at: Option<i64>,
}

impl Store {
    pub async fn retention_days(&self, account: &mtdesk_domain::AccountId) -> Result<i64> {
        let r = sqlx::query("SELECT retention_days FROM accounts WHERE id = $1")
            .bind(account.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get::<Option<i64>, _>("retention_days")?
            .unwrap_or(DEFAULT_RETENTION_DAYS))
    }

    /// Sets an account's retention (1–365 days; longer than the policy's 12 months is refused by the
    /// caller).
    pub async fn set_retention_days(
        &self,
        account: &mtdesk_domain::AccountId,
        days: i64,
    ) -> Result<()> {
        let n = sqlx::query("UPDATE accounts SET retention_days = $2 WHERE id = $1")
            .bind(account.as_str())
            .bind(days)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    pub async fn retention_preview(
        &self,
        account: &mtdesk_domain::AccountId,
        now: i64,
    ) -> Result<RetentionPreview> {
        let days = self.retention_days(account).await?;
        let cutoff_in_7_days = now + 7 * DAY_MS - days * DAY_MS;
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, (SELECT MIN(created_at) FROM messages WHERE account_id = $1) AS oldest
             FROM messages WHERE account_id = $1 AND created_at < $2",
        )
        .bind(account.as_str())
        .bind(cutoff_in_7_days)
        .fetch_one(self.pool())
        .await?;
        let oldest: Option<i64> = r.try_get("oldest")?;
        Ok(RetentionPreview {
            retention_days: days,
            messages_due_within_7_days: r.try_get("n")?,
            next_purge_at: oldest.map(|o| (o + days * DAY_MS).max(now)),
        })
    }

    /// One batch of the retention purge: at most `batch` messages and `batch` answer records older than
    /// their account's retention, then the conversations left empty and as old. Returns rows deleted (0 =
    /// nothing left to purge). Small batches keep each transaction short: webhooks never wait long for
    /// SQLite's writer lock.
    pub async fn purge_expired_batch(&self, now: i64, batch: i64) -> Result<u64> {
        let mut total = 0;
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM answers WHERE id IN (
                SELECT x.id FROM answers x JOIN accounts a ON a.id = x.account_id
                WHERE x.created_at < $1 - COALESCE(a.retention_days, 365) * 86400000 LIMIT $2)",
            "DELETE FROM messages WHERE id IN (
                SELECT m.id FROM messages m JOIN accounts a ON a.id = m.account_id
                WHERE m.created_at < $1 - COALESCE(a.retention_days, 365) * 86400000 LIMIT $2)",
            "DELETE FROM conversations WHERE id IN (
                SELECT c.id FROM conversations c JOIN accounts a ON a.id = c.account_id
                WHERE c.updated_at < $1 - COALESCE(a.retention_days, 365) * 86400000
                  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)
                  AND NOT EXISTS (SELECT 1 FROM answers x WHERE x.conversation_id = c.id)
                LIMIT $2)",
        ] {
            total += sqlx::query(sql)
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(total)
    }
}
