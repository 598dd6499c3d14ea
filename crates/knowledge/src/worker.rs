//! The background worker: claims jobs from the database queue and runs them; queues scheduled re-syncs;
//! sweeps stale indexes out of memory.

use crate::Knowledge;
use crate::ingest::{Ingestor, JobError, LEASE_MS};
use mtdesk_domain::now_ms;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Idle poll interval: another node may have queued work.
const POLL: Duration = Duration::from_millis(1000);
/// How often schedules are checked and stale indexes swept.
const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// Wait before retrying a failed job (times the attempt number).
const RETRY_MS: i64 = 30_000;

/// Runs jobs until the queue has none that can run now. Returns how many ran. Used by tests, the CLI and
/// the evaluation, which must not sleep while waiting for work.
pub async fn drain(ingestor: &Ingestor) -> anyhow::Result<usize> {
    let mut n = 0;
    while let Some(job) = ingestor.store.claim_job(LEASE_MS).await? {
        run_one(ingestor, &job).await?;
        n += 1;
    }
    Ok(n)
}

async fn run_one(ingestor: &Ingestor, job: &mtdesk_storage::Job) -> anyhow::Result<()> {
    match ingestor.run(job).await {
        Ok(()) | Err(JobError::Gone) => ingestor.store.complete_job(job).await?,
        Err(JobError::Transient(msg)) => {
            tracing::warn!(job.id = %job.id, kind = %job.kind, attempt = job.attempts, error = %msg, "job failed; will retry");
            ingestor
                .store
                .fail_job(job, &msg, RETRY_MS * job.attempts)
                .await?;
            if job.attempts >= job.max_attempts
                && let Some(source) = &job.source_id
            {
                let id = mtdesk_domain::SourceId::from_db(source.clone());
                ingestor
                    .store
                    .fail_source(
                        &id,
                        &format!("processing failed after {} attempts: {msg}", job.attempts),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Jobs whose worker died on their last allowed attempt (their lease ran out) are failed, and their
/// sources marked failed, instead of being claimed forever (a file that crashes the process every time).
pub async fn fail_exhausted_jobs(ingestor: &Ingestor) -> anyhow::Result<usize> {
    let sources = ingestor.store.fail_abandoned_jobs().await?;
    for s in &sources {
        ingestor
            .store
            .fail_source(
                &mtdesk_domain::SourceId::from_db(s.clone()),
                "processing stopped every time it was tried (the server restarted or ran out of memory); try a smaller or different file",
            )
            .await?;
    }
    Ok(sources.len())
}

/// Queues re-syncs for sources whose schedule is due. Returns how many.
pub async fn queue_due_syncs(ingestor: &Ingestor) -> anyhow::Result<usize> {
    let mut n = 0;
    for s in ingestor.store.due_sources(now_ms()).await? {
        if ingestor
            .store
            .queue_source_sync(&s.account_id, &s.id)
            .await?
        {
            n += 1;
        }
    }
    Ok(n)
}

/// The long-running worker of `mtdesk serve`. `wake` is notified when this node queues work, so it starts
/// at once instead of at the next poll.
pub async fn run(ingestor: Ingestor, knowledge: Knowledge, wake: Arc<Notify>) {
    let mut last_housekeeping: Option<tokio::time::Instant> = None;
    loop {
        // Housekeeping first, so a busy queue cannot starve schedules and the sweep of stale indexes.
        if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING) {
            last_housekeeping = Some(tokio::time::Instant::now());
            if let Err(e) = fail_exhausted_jobs(&ingestor).await {
                tracing::error!(error = %e, "failing abandoned jobs failed");
            }
            if let Err(e) = queue_due_syncs(&ingestor).await {
                tracing::error!(error = %e, "queueing scheduled re-syncs failed");
            }
            knowledge.sweep().await;
        }
        match ingestor.store.claim_job(LEASE_MS).await {
            Ok(Some(job)) => {
                if let Err(e) = run_one(&ingestor, &job).await {
                    tracing::error!(error = %e, "job bookkeeping failed");
                    tokio::time::sleep(POLL).await;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "claiming a job failed"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
