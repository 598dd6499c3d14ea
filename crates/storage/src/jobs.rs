//! The database job queue: durable work items with leases.
//!
//! A worker claims a job by setting a lease (`locked_until`); a job whose lease ran out — its worker
//! crashed or the process restarted — is claimed again, so work resumes. Claiming is one `UPDATE … WHERE id
//! = (SELECT … LIMIT 1)`: on SQLite the single writer serialises claims, on PostgreSQL the sub-select takes
//! `FOR UPDATE SKIP LOCKED` so two nodes never claim the same job. Finished jobs are deleted (their payload
//! is ids only, but nothing is kept that no one needs); a job that failed for good stays, with its error,
//! until its account or source goes.

use crate::{Backend, Result, Store};
use mtdesk_domain::{AccountId, JobId, now_ms};
use sqlx::{Any, Row, Transaction};

/// A claimed job. `attempts` doubles as the claim's token: completing, failing or extending a job
/// requires it, so a worker that lost its lease cannot touch the job another worker now holds.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub account_id: Option<AccountId>,
    pub chatbot_id: Option<String>,
    pub source_id: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Kind-specific ids (a channel reply's inbound message id); `{}` for knowledge jobs.
    pub payload: String,
}

/// Job kinds of the channel worker (replies to Meta messages) start with this; every other kind is the
/// knowledge worker's. Each worker claims only its own, so a slow crawl never delays a customer's reply.
pub const CHANNEL_KIND_PREFIX: &str = "channel_";

pub(crate) async fn enqueue_in(
    tx: &mut Transaction<'_, Any>,
    kind: &str,
    account: Option<&AccountId>,
    chatbot: Option<&str>,
    source: Option<&str>,
    run_after: i64,
) -> Result<JobId> {
    enqueue_with_payload(tx, kind, account, chatbot, source, "{}", run_after).await
}

pub(crate) async fn enqueue_with_payload(
    tx: &mut Transaction<'_, Any>,
    kind: &str,
    account: Option<&AccountId>,
    chatbot: Option<&str>,
    source: Option<&str>,
    payload: &str,
    run_after: i64,
) -> Result<JobId> {
    let id = JobId::new();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, chatbot_id, source_id, payload, state, run_after, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8)",
    )
    .bind(id.as_str())
    .bind(kind)
    .bind(account.map(|a| a.as_str().to_string()))
    .bind(chatbot)
    .bind(source)
    .bind(payload)
    .bind(run_after)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

impl Store {
    /// Queues a job on its own.
    pub async fn enqueue_job(
        &self,
        kind: &str,
        account: Option<&AccountId>,
        chatbot: Option<&str>,
        source: Option<&str>,
    ) -> Result<JobId> {
        let mut tx = self.pool().begin().await?;
        let id = enqueue_in(&mut tx, kind, account, chatbot, source, now_ms()).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims the next runnable knowledge job (queued and due, or running with an expired lease) for
    /// `lease_ms`.
    pub async fn claim_job(&self, lease_ms: i64) -> Result<Option<Job>> {
        self.claim(lease_ms, false).await
    }

    /// Claims the next runnable channel job (kind starting with [`CHANNEL_KIND_PREFIX`]).
    pub async fn claim_channel_job(&self, lease_ms: i64) -> Result<Option<Job>> {
        self.claim(lease_ms, true).await
    }

    async fn claim(&self, lease_ms: i64, channel: bool) -> Result<Option<Job>> {
        let now = now_ms();
        // Channel jobs of one conversation run one at a time, oldest first: a second message's reply waits
        // while the first one's runs (its lease still valid), so answers go out in order.
        let kinds = if channel {
            "substr(kind, 1, 8) = 'channel_' AND NOT EXISTS (SELECT 1 FROM jobs b
                WHERE b.source_id = jobs.source_id AND b.id <> jobs.id AND substr(b.kind, 1, 8) = 'channel_'
                  AND ((b.state = 'running' AND b.locked_until >= $1)
                       OR (b.state = 'queued' AND b.created_at < jobs.created_at)))"
        } else {
            "substr(kind, 1, 8) <> 'channel_'"
        };
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', locked_until = $2, attempts = attempts + 1, updated_at = $1
             WHERE id = (SELECT id FROM jobs
                         WHERE {kinds} AND ((state = 'queued' AND run_after <= $1)
                            OR (state = 'running' AND locked_until < $1 AND attempts < max_attempts))
                         ORDER BY run_after, created_at LIMIT 1{lock})
               AND ((state = 'queued' AND run_after <= $1)
                    OR (state = 'running' AND locked_until < $1 AND attempts < max_attempts))
             RETURNING id, kind, account_id, chatbot_id, source_id, attempts, max_attempts, payload"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now + lease_ms)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Job {
            id: JobId::from_db(r.try_get("id")?),
            kind: r.try_get("kind")?,
            account_id: r
                .try_get::<Option<String>, _>("account_id")?
                .map(AccountId::from_db),
            chatbot_id: r.try_get("chatbot_id")?,
            source_id: r.try_get("source_id")?,
            attempts: r.try_get("attempts")?,
            max_attempts: r.try_get("max_attempts")?,
            payload: r.try_get("payload")?,
        }))
    }

    /// Extends a running job's lease (long ingests call this as they make progress). Only the holder of
    /// the current claim can: `attempts` is the claim's token (a worker whose lease ran out and whose job
    /// was claimed again holds an older number).
    pub async fn extend_job_lease(&self, job: &Job, lease_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET locked_until = $2 WHERE id = $1 AND state = 'running' AND attempts = $3",
        )
        .bind(job.id.as_str())
        .bind(now_ms() + lease_ms)
        .bind(job.attempts)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The job is done: it is removed — by the holder of the current claim only.
    pub async fn complete_job(&self, job: &Job) -> Result<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND attempts = $2")
            .bind(job.id.as_str())
            .bind(job.attempts)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The job failed: retried after `retry_in_ms` while attempts remain, else kept as failed.
    pub async fn fail_job(&self, job: &Job, error: &str, retry_in_ms: i64) -> Result<()> {
        let now = now_ms();
        let (state, run_after) = if job.attempts < job.max_attempts {
            ("queued", now + retry_in_ms)
        } else {
            ("failed", now)
        };
        sqlx::query(
            "UPDATE jobs SET state = $2, run_after = $3, locked_until = NULL, last_error = $4, updated_at = $5
             WHERE id = $1 AND attempts = $6",
        )
        .bind(job.id.as_str())
        .bind(state)
        .bind(run_after)
        .bind(error)
        .bind(now)
        .bind(job.attempts)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks failed the running jobs whose lease ran out on their last allowed attempt; returns their
    /// source ids (if any), for the caller to mark those sources failed.
    pub async fn fail_abandoned_jobs(&self) -> Result<Vec<String>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'failed', locked_until = NULL, updated_at = $1,
                last_error = 'the worker stopped before finishing, on every attempt'
             WHERE state = 'running' AND locked_until < $1 AND attempts >= max_attempts
             RETURNING source_id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<Option<String>, _>("source_id").ok().flatten())
            .collect())
    }

    /// Jobs not yet finished (queued or running).
    pub async fn pending_jobs(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running')")
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }
}
