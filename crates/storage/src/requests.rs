//! Deletion requests received by email (or the contact form), the sub-processor ledger and each executed
//! request's checklist. The requester's address and name are kept only until the confirmation is queued.

use crate::{Result, StorageError, Store};
use mtdesk_domain::now_ms;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A deletion request as the operator sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrivacyRequest {
    pub id: String,
    /// The requester's address until the confirmation is queued; `None` afterwards (as are the name and
    /// the description).
    pub email: Option<String>,
    pub name: Option<String>,
    pub subject_hash: String,
    pub scope: String,
    pub description: Option<String>,
    pub origin: String,
    /// `draft` (from the contact form, not yet accepted), `received`, `completed`.
    pub status: String,
    pub received_at: i64,
    pub ack_due_at: i64,
    pub acknowledged_at: Option<i64>,
    pub due_at: i64,
    pub warned_at: Option<i64>,
    pub executed_at: Option<i64>,
    pub receipt_id: Option<String>,
    pub summary: Option<String>,
    pub confirmed_at: Option<i64>,
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewPrivacyRequest {
    pub email: String,
    pub name: String,
    pub subject_hash: String,
    pub scope: String,
    pub description: Option<String>,
    pub origin: String,
    pub draft: bool,
    pub received_at: i64,
    pub ack_due_at: i64,
    pub due_at: i64,
}

/// A sub-processor of the privacy policy and how deletion reaches it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Subprocessor {
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub location: String,
    pub deletion: String,
    pub automated: bool,
}

/// One line of an executed request's checklist.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestTask {
    pub processor: Subprocessor,
    /// `open`, `done`, `not_applicable`.
    pub status: String,
    pub done_by: Option<String>,
    pub done_at: Option<i64>,
    pub note: Option<String>,
}

const COLUMNS: &str =
    "id, email, name, subject_hash, scope, description, origin, status, received_at, ack_due_at,
    acknowledged_at, due_at, warned_at, executed_at, receipt_id, summary, confirmed_at";

fn from_row(r: &AnyRow) -> Result<PrivacyRequest, sqlx::Error> {
    Ok(PrivacyRequest {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        subject_hash: r.try_get("subject_hash")?,
        scope: r.try_get("scope")?,
        description: r.try_get("description")?,
        origin: r.try_get("origin")?,
        status: r.try_get("status")?,
        received_at: r.try_get("received_at")?,
        ack_due_at: r.try_get("ack_due_at")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        due_at: r.try_get("due_at")?,
        warned_at: r.try_get("warned_at")?,
        executed_at: r.try_get("executed_at")?,
        receipt_id: r.try_get("receipt_id")?,
        summary: r.try_get("summary")?,
        confirmed_at: r.try_get("confirmed_at")?,
    })
}

fn processor_from(r: &AnyRow) -> Result<Subprocessor, sqlx::Error> {
    Ok(Subprocessor {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        purpose: r.try_get("purpose")?,
        location: r.try_get("location")?,
        deletion: r.try_get("deletion")?,
        automated: r.try_get::<i64, _>("automated")? != 0,
    })
}

/// A short id the operator can type: `dr_` and 10 lowercase letters or digits.
fn request_id() -> String {
    use rand::RngExt;
    const A: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let tail: String = (0..10)
        .map(|_| A[rng.random_range(0..A.len())] as char)
        .collect();
    format!("dr_{tail}")
}

impl Store {
    pub async fn insert_privacy_request(&self, new: &NewPrivacyRequest) -> Result<PrivacyRequest> {
        let id = request_id();
        sqlx::query(
            "INSERT INTO privacy_requests (id, email, name, subject_hash, scope, description, origin, status,
                received_at, ack_due_at, due_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(&new.email)
        .bind(&new.name)
        .bind(&new.subject_hash)
        .bind(&new.scope)
        .bind(&new.description)
        .bind(&new.origin)
        .bind(if new.draft { "draft" } else { "received" })
        .bind(new.received_at)
        .bind(new.ack_due_at)
        .bind(new.due_at)
        .execute(self.pool())
        .await?;
        self.find_privacy_request(&id).await
    }

    pub async fn find_privacy_request(&self, id: &str) -> Result<PrivacyRequest> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM privacy_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&r)?)
    }

    /// Requests, open ones (draft, received) first by deadline, then completed ones newest first.
    pub async fn list_privacy_requests(
        &self,
        include_completed: bool,
    ) -> Result<Vec<PrivacyRequest>> {
        let filter = if include_completed {
            ""
        } else {
            "WHERE status <> 'completed'"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM privacy_requests {filter}
             ORDER BY CASE WHEN status = 'completed' THEN 1 ELSE 0 END, due_at, received_at DESC LIMIT 500"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// A draft (from the contact form) accepted by the operator: now `received`, its deadlines running.
    pub async fn accept_privacy_request(&self, id: &str) -> Result<PrivacyRequest> {
        let n = sqlx::query(
            "UPDATE privacy_requests SET status = 'received' WHERE id = $1 AND status = 'draft'",
        )
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            self.find_privacy_request(id).await?;
        }
        self.find_privacy_request(id).await
    }

    pub async fn set_privacy_request_acknowledged(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE privacy_requests SET acknowledged_at = COALESCE(acknowledged_at, $2) WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Open requests whose completion is due before `horizon` (or acknowledgement overdue), not warned
    /// about since `warned_before`.
    pub async fn privacy_requests_near_deadline(
        &self,
        now: i64,
        horizon: i64,
        warned_before: i64,
    ) -> Result<Vec<PrivacyRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM privacy_requests
             WHERE status = 'received' AND (due_at <= $1 OR (acknowledged_at IS NULL AND ack_due_at <= $2))
               AND (warned_at IS NULL OR warned_at < $3)
             ORDER BY due_at"
        )))
        .bind(horizon)
        .bind(now)
        .bind(warned_before)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_privacy_request_warned(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE privacy_requests SET warned_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the execution: receipt, summary and one open checklist line per sub-processor (in one
    /// transaction). Only a `received` request can be executed; `Conflict` otherwise.
    pub async fn record_privacy_request_executed(
        &self,
        id: &str,
        receipt_id: Option<&str>,
        summary: &str,
    ) -> Result<PrivacyRequest> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE privacy_requests SET executed_at = $2, receipt_id = $3, summary = $4
             WHERE id = $1 AND status = 'received' AND executed_at IS NULL",
        )
        .bind(id)
        .bind(now_ms())
        .bind(receipt_id)
        .bind(summary)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            let r = self.find_privacy_request(id).await?;
            return Err(StorageError::Conflict {
                field: if r.status == "draft" {
                    "draft"
                } else {
                    "executed"
                },
            });
        }
        sqlx::query(
            "INSERT INTO privacy_request_tasks (request_id, processor_id, status)
             SELECT $1, id, 'open' FROM subprocessors",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.find_privacy_request(id).await
    }

    /// The confirmation was queued: the request is completed and forgets the requester's address and name.
    pub async fn complete_privacy_request(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE privacy_requests SET status = 'completed', confirmed_at = $2, email = NULL, name = NULL,
                description = NULL
             WHERE id = $1 AND executed_at IS NOT NULL",
        )
        .bind(id)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Executed but not confirmed (a crash between the two): finished at start-up.
    pub async fn privacy_requests_unconfirmed(&self) -> Result<Vec<PrivacyRequest>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM privacy_requests WHERE status = 'received' AND executed_at IS NOT NULL"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn list_subprocessors(&self) -> Result<Vec<Subprocessor>> {
        let rows = sqlx::query(
            "SELECT id, name, purpose, location, deletion, automated FROM subprocessors ORDER BY position, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(processor_from).collect::<Result<_, _>>()?)
    }

    pub async fn request_tasks(&self, request: &str) -> Result<Vec<RequestTask>> {
        let rows = sqlx::query(
            "SELECT s.id, s.name, s.purpose, s.location, s.deletion, s.automated, t.status, t.done_by, t.done_at, t.note
             FROM privacy_request_tasks t JOIN subprocessors s ON s.id = t.processor_id
             WHERE t.request_id = $1 ORDER BY s.position, s.id",
        )
        .bind(request)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RequestTask {
                    processor: processor_from(r)?,
                    status: r.try_get("status")?,
                    done_by: r.try_get("done_by")?,
                    done_at: r.try_get("done_at")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    /// Ticks a checklist line: `done` or `not_applicable`, by whom, with a note. `NotFound` for an unknown
    /// request or processor.
    pub async fn set_request_task(
        &self,
        request: &str,
        processor: &str,
        status: &str,
        by: &str,
        note: Option<&str>,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE privacy_request_tasks SET status = $3, done_by = $4, done_at = $5, note = $6
             WHERE request_id = $1 AND processor_id = $2",
        )
        .bind(request)
        .bind(processor)
        .bind(status)
        .bind(by)
        .bind(now_ms())
        .bind(note)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
