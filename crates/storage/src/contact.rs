//! Messages from the public contact page, kept for the operator (`mtdesk admin contact …`) and purged
//! after 12 months. Rate limits count stored messages, so they hold across nodes.

use crate::{Result, StorageError, Store};
use mtdesk_domain::now_ms;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored contact message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContactRecord {
    pub id: String,
    pub name: String,
    pub email: String,
    pub topic: String,
    pub message: String,
    /// The draft deletion request a privacy message created, if any.
    pub privacy_request_id: Option<String>,
    pub created_at: i64,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub name: String,
    pub email: String,
    pub topic: String,
    pub message: String,
    /// Keyed hash of the sender's IP address (never the address itself).
    pub ip_hash: String,
}

/// How many messages are accepted per window.
#[derive(Debug, Clone, Copy)]
pub struct ContactLimits {
    pub window_ms: i64,
    /// From one IP address.
    pub per_ip: i64,
    /// From everyone together: protects the operator's inbox from a distributed flood.
    pub total: i64,
}

impl Default for ContactLimits {
    fn default() -> Self {
        Self {
            window_ms: 3_600_000,
            per_ip: 5,
            total: 200,
        }
    }
}

/// Why a message was not stored.
#[derive(Debug)]
pub enum ContactRefusal {
    /// Too many messages in the window.
    RateLimited {
        retry_after_s: i64,
    },
    Storage(StorageError),
}

impl From<StorageError> for ContactRefusal {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<sqlx::Error> for ContactRefusal {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

const COLUMNS: &str = "id, name, email, topic, message, privacy_request_id, created_at";

fn from_row(r: &AnyRow) -> Result<ContactRecord, sqlx::Error> {
    Ok(ContactRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        topic: r.try_get("topic")?,
        message: r.try_get("message")?,
        privacy_request_id: r.try_get("privacy_request_id")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Stores a message unless the sender's IP or everyone together sent too many within the window.
    /// The insert comes first and the counts are read in the same transaction, which holds SQLite's write
    /// lock or, on PostgreSQL, an advisory lock: a concurrent burst cannot slip past the limit.
    pub async fn insert_contact(
        &self,
        new: &NewContact,
        limits: ContactLimits,
    ) -> std::result::Result<ContactRecord, ContactRefusal> {
        let now = now_ms();
        let since = now - limits.window_ms;
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool().begin().await?;
        if self.backend() == crate::Backend::Postgres {
            // PostgreSQL: concurrent inserts would not see each other's rows when counting; one
            // transaction-scoped advisory lock makes contact inserts take turns.
            sqlx::query("SELECT pg_advisory_xact_lock(7226842)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO contact_messages (id, name, email, topic, message, ip_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.email)
        .bind(&new.topic)
        .bind(&new.message)
        .bind(&new.ip_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS total, \
                    CAST(COALESCE(SUM(CASE WHEN ip_hash = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS mine, \
                    CAST(COALESCE(MIN(CASE WHEN ip_hash = $2 THEN created_at END), 0) AS BIGINT) AS first_mine, \
                    CAST(COALESCE(MIN(created_at), 0) AS BIGINT) AS first_any \
             FROM contact_messages WHERE created_at > $1",
        )
        .bind(since)
        .bind(&new.ip_hash)
        .fetch_one(&mut *tx)
        .await?;
        let (total, mine): (i64, i64) = (row.try_get("total")?, row.try_get("mine")?);
        if mine > limits.per_ip || total > limits.total {
            let first: i64 = if mine > limits.per_ip {
                row.try_get("first_mine")?
            } else {
                row.try_get("first_any")?
            };
            tx.rollback().await?;
            let retry_after_s = ((first + limits.window_ms - now) / 1000).max(1);
            return Err(ContactRefusal::RateLimited { retry_after_s });
        }
        tx.commit().await?;
        Ok(ContactRecord {
            id,
            name: new.name.clone(),
            email: new.email.clone(),
            topic: new.topic.clone(),
            message: new.message.clone(),
            privacy_request_id: None,
            created_at: now,
        })
    }

    /// Links a privacy message to the draft deletion request it created.
    pub async fn set_contact_request(&self, id: &str, request_id: &str) -> Result<()> {
        sqlx::query("UPDATE contact_messages SET privacy_request_id = $1 WHERE id = $2")
            .bind(request_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest messages first.
    pub async fn list_contacts(&self, limit: i64) -> Result<Vec<ContactRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM contact_messages ORDER BY created_at DESC, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn find_contact(&self, id: &str) -> Result<ContactRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM contact_messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StorageError::NotFound)?;
        Ok(from_row(&row)?)
    }

    /// Every message sent from `email` (compared case-insensitively), oldest first: part of a data export.
    pub async fn list_contacts_by_email(&self, email: &str) -> Result<Vec<ContactRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM contact_messages WHERE LOWER(email) = $1 ORDER BY created_at, id"
        )))
        .bind(email.trim().to_lowercase())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes one message (the operator has handled it). `NotFound` when there is none.
    pub async fn delete_contact(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM contact_messages WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Deletes every message sent from `email` (compared case-insensitively): part of executing an
    /// emailed deletion request. Returns how many went.
    pub async fn delete_contacts_by_email(&self, email: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM contact_messages WHERE LOWER(email) = $1")
            .bind(email.trim().to_lowercase())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes messages older than `before` (ms): the 12-month retention. Returns how many went.
    pub async fn purge_contacts(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM contact_messages WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
