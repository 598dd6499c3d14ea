//! Knowledge sources, crawled pages and chunks (with their vectors): the one source of truth that the
//! per-node retrieval index is derived from.
//!
//! Every write that changes what a chatbot can retrieve bumps `chatbots.knowledge_version` in the same
//! transaction; index caches compare that number before each search, so a change made by another server
//! process on the same PostgreSQL is seen at the next query.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{
    AccountId, ChatbotId, ChunkId, EmbeddingChoice, JobId, SourceId, SourceKind, SourceStatus,
    SyncSchedule, now_ms,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Source {
    pub id: SourceId,
    pub account_id: AccountId,
    pub chatbot_id: ChatbotId,
    pub kind: SourceKind,
    pub name: String,
    pub doc_type: Option<String>,
    pub byte_size: i64,
    pub sha256: Option<String>,
    pub status: SourceStatus,
    pub error: Option<String>,
    pub progress_done: i64,
    pub progress_total: i64,
    pub chunk_count: i64,
    pub max_pages: i64,
    pub max_depth: i64,
    pub sync_schedule: SyncSchedule,
    pub next_sync_at: Option<i64>,
    pub last_synced_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A source to add; its ingestion job is queued in the same transaction.
#[derive(Debug, Clone)]
pub struct NewSource {
    /// Chosen by the caller, so an upload's file can be written under its final name before the row (and
    /// its job) exist.
    pub id: SourceId,
    pub kind: SourceKind,
    pub name: String,
    pub doc_type: Option<String>,
    pub byte_size: i64,
    pub sha256: Option<String>,
    pub max_pages: i64,
    pub max_depth: i64,
    pub sync_schedule: SyncSchedule,
}

/// One page a crawl met.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourcePage {
    pub url: String,
    pub status: String,
    pub detail: Option<String>,
    pub title: Option<String>,
    pub content_hash: Option<String>,
    pub fetched_at: i64,
}

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub title: String,
    pub heading: String,
    pub url: Option<String>,
    pub page: Option<i64>,
    pub text: String,
    pub text_hash: String,
    /// Little-endian f32s, unit length; `None` when the chatbot has no embedder.
    pub embedding: Option<Vec<u8>>,
    pub embed_model: Option<String>,
}

/// A chunk as the index needs it.
#[derive(Debug, Clone)]
pub struct IndexChunk {
    pub id: ChunkId,
    pub source_id: SourceId,
    pub source_name: String,
    pub title: String,
    pub heading: String,
    pub url: Option<String>,
    pub page: Option<i64>,
    pub text: String,
    pub embedding: Option<Vec<u8>>,
    pub embed_model: Option<String>,
}

const SOURCE_COLUMNS: &str = "id, account_id, chatbot_id, kind, name, doc_type, byte_size, sha256, status, error, progress_done, progress_total, chunk_count, max_pages, max_depth, sync_schedule, next_sync_at, last_synced_at, created_at, updated_at";

fn source_from_row(r: &AnyRow) -> Result<Source, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    let schedule: String = r.try_get("sync_schedule")?;
    Ok(Source {
        id: SourceId::from_db(r.try_get("id")?),
        account_id: AccountId::from_db(r.try_get("account_id")?),
        chatbot_id: ChatbotId::from_db(r.try_get("chatbot_id")?),
        kind: SourceKind::parse(&kind).unwrap_or(SourceKind::File),
        name: r.try_get("name")?,
        doc_type: r.try_get("doc_type")?,
        byte_size: r.try_get("byte_size")?,
        sha256: r.try_get("sha256")?,
        status: SourceStatus::parse(&status).unwrap_or(SourceStatus::Failed),
        error: r.try_get("error")?,
        progress_done: r.try_get("progress_done")?,
        progress_total: r.try_get("progress_total")?,
        chunk_count: r.try_get("chunk_count")?,
        max_pages: r.try_get("max_pages")?,
        max_depth: r.try_get("max_depth")?,
        sync_schedule: SyncSchedule::parse(&schedule).unwrap_or_default(),
        next_sync_at: r.try_get("next_sync_at")?,
        last_synced_at: r.try_get("last_synced_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The job kind that (re-)ingests one source.
pub const JOB_INGEST_SOURCE: &str = "ingest_source";
/// The job kind that re-embeds every chunk of a chatbot (its embedder changed).
pub const JOB_REEMBED_CHATBOT: &str = "reembed_chatbot";

pub(crate) async fn bump_version(tx: &mut Transaction<'_, Any>, chatbot: &str) -> Result<()> {
    sqlx::query("UPDATE chatbots SET knowledge_version = knowledge_version + 1 WHERE id = $1")
        .bind(chatbot)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Adds a source and queues its ingestion, in one transaction. The chatbot must belong to the account.
    pub async fn insert_source(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        s: &NewSource,
    ) -> Result<Source> {
        let mut tx = self.pool().begin().await?;
        let owned = sqlx::query(
            "UPDATE chatbots SET updated_at = updated_at WHERE id = $1 AND account_id = $2",
        )
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if owned == 0 {
            return Err(StorageError::NotFound);
        }
        let now = now_ms();
        let next_sync = s.sync_schedule.period_ms().map(|p| now + p);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sources (id, account_id, chatbot_id, kind, name, doc_type, byte_size, sha256, status,
                max_pages, max_depth, sync_schedule, next_sync_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $12, $13, $13) RETURNING {SOURCE_COLUMNS}"
        )))
        .bind(s.id.as_str())
        .bind(account.as_str())
        .bind(chatbot.as_str())
        .bind(s.kind.as_str())
        .bind(&s.name)
        .bind(&s.doc_type)
        .bind(s.byte_size)
        .bind(&s.sha256)
        .bind(s.max_pages)
        .bind(s.max_depth)
        .bind(s.sync_schedule.as_str())
        .bind(next_sync)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let source = source_from_row(&row)?;
        crate::jobs::enqueue_in(
            &mut tx,
            JOB_INGEST_SOURCE,
            Some(account),
            Some(chatbot.as_str()),
            Some(source.id.as_str()),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(source)
    }

    /// Queues a re-sync of a source (by hand or by the schedule). A source already queued or in progress is
    /// left alone: returns `false`.
    pub async fn queue_source_sync(&self, account: &AccountId, id: &SourceId) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE sources SET status = 'queued', error = NULL, progress_done = 0, progress_total = 0, updated_at = $3
             WHERE id = $1 AND account_id = $2 AND status IN ('ready', 'failed') RETURNING chatbot_id",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Either not ours / missing, or busy.
            let exists =
                sqlx::query("SELECT 1 AS one FROM sources WHERE id = $1 AND account_id = $2")
                    .bind(id.as_str())
                    .bind(account.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return if exists.is_some() {
                Ok(false)
            } else {
                Err(StorageError::NotFound)
            };
        };
        let chatbot: String = row.try_get("chatbot_id")?;
        crate::jobs::enqueue_in(
            &mut tx,
            JOB_INGEST_SOURCE,
            Some(account),
            Some(&chatbot),
            Some(id.as_str()),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_sources(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
    ) -> Result<Vec<Source>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE chatbot_id = $1 AND account_id = $2 ORDER BY created_at, id"
        )))
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(source_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn count_sources(&self, chatbot: &ChatbotId, kind: SourceKind) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM sources WHERE chatbot_id = $1 AND kind = $2")
                .bind(chatbot.as_str())
                .bind(kind.as_str())
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// A source of the account within the chatbot.
    pub async fn find_source(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &SourceId,
    ) -> Result<Source> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = $1 AND chatbot_id = $2 AND account_id = $3"
        )))
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(source_from_row(&row)?)
    }

    /// A source by id alone: for the worker, which got the id from its own queue.
    pub async fn find_source_for_job(&self, id: &SourceId) -> Result<Source> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(source_from_row(&row)?)
    }

    /// Records progress. Returns `NotFound` when the source was deleted meanwhile (the worker stops).
    pub async fn set_source_progress(
        &self,
        id: &SourceId,
        status: SourceStatus,
        done: i64,
        total: i64,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE sources SET status = $2, progress_done = $3, progress_total = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(done)
        .bind(total)
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Marks the source failed with a message for the owner. Chunks of an earlier successful sync stay
    /// searchable (a site that is down for an hour must not empty the bot).
    pub async fn fail_source(&self, id: &SourceId, error: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE sources SET status = 'failed', error = $2, updated_at = $3, last_synced_at = $3,
                next_sync_at = CASE sync_schedule WHEN 'daily' THEN $3 + 86400000 WHEN 'weekly' THEN $3 + 604800000 ELSE NULL END
             WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(error)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn update_source_schedule(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &SourceId,
        schedule: SyncSchedule,
    ) -> Result<Source> {
        let next = schedule.period_ms().map(|p| now_ms() + p);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sources SET sync_schedule = $4, next_sync_at = $5, updated_at = $6
             WHERE id = $1 AND chatbot_id = $2 AND account_id = $3 RETURNING {SOURCE_COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .bind(schedule.as_str())
        .bind(next)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(source_from_row(&row)?)
    }

    /// Replaces every chunk (and, for a crawl, every page row) of a source in one transaction and marks it
    /// ready: searchers see the old version or the new one, never half of each. `NotFound` when the source
    /// was deleted while it was being processed (nothing is written then).
    pub async fn replace_source_content(
        &self,
        id: &SourceId,
        chunks: &[NewChunk],
        pages: Option<&[SourcePage]>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE sources SET status = 'ready', error = NULL, chunk_count = $2, progress_done = progress_total,
                updated_at = $3, last_synced_at = $3,
                next_sync_at = CASE sync_schedule WHEN 'daily' THEN $3 + 86400000 WHEN 'weekly' THEN $3 + 604800000 ELSE NULL END
             WHERE id = $1 RETURNING account_id, chatbot_id",
        )
        .bind(id.as_str())
        .bind(chunks.len() as i64)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let account: String = row.try_get("account_id")?;
        let chatbot: String = row.try_get("chatbot_id")?;
        sqlx::query("DELETE FROM chunks WHERE source_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        for (i, c) in chunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO chunks (id, account_id, chatbot_id, source_id, position, title, heading, url, page, text,
                    text_hash, embedding, embed_model, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(ChunkId::new().as_str())
            .bind(&account)
            .bind(&chatbot)
            .bind(id.as_str())
            .bind(i as i64)
            .bind(&c.title)
            .bind(&c.heading)
            .bind(&c.url)
            .bind(c.page)
            .bind(&c.text)
            .bind(&c.text_hash)
            .bind(&c.embedding)
            .bind(&c.embed_model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(pages) = pages {
            sqlx::query("DELETE FROM source_pages WHERE source_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            for p in pages {
                sqlx::query(
                    "INSERT INTO source_pages (id, account_id, source_id, url, status, detail, title, content_hash, fetched_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (source_id, url) DO NOTHING",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&account)
                .bind(id.as_str())
                .bind(&p.url)
                .bind(&p.status)
                .bind(&p.detail)
                .bind(&p.title)
                .bind(&p.content_hash)
                .bind(p.fetched_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        bump_version(&mut tx, &chatbot).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored vectors of a source's chunks by text hash and model, so a re-sync re-embeds only the
    /// chunks whose text changed.
    pub async fn source_embeddings(
        &self,
        id: &SourceId,
        model: &str,
    ) -> Result<HashMap<String, Vec<u8>>> {
        let rows = sqlx::query(
            "SELECT text_hash, embedding FROM chunks WHERE source_id = $1 AND embed_model = $2 AND embedding IS NOT NULL",
        )
        .bind(id.as_str())
        .bind(model)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(r.try_get("text_hash")?, r.try_get("embedding")?);
        }
        Ok(out)
    }

    pub async fn list_source_pages(
        &self,
        account: &AccountId,
        id: &SourceId,
    ) -> Result<Vec<SourcePage>> {
        let rows = sqlx::query(
            "SELECT url, status, detail, title, content_hash, fetched_at FROM source_pages
             WHERE source_id = $1 AND account_id = $2 ORDER BY fetched_at, url",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourcePage {
                    url: r.try_get("url")?,
                    status: r.try_get("status")?,
                    detail: r.try_get("detail")?,
                    title: r.try_get("title")?,
                    content_hash: r.try_get("content_hash")?,
                    fetched_at: r.try_get("fetched_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// Deletes a source with its chunks, vectors, pages and queued jobs, in one transaction. The caller
    /// removes the original file. `NotFound` when it is not the account's.
    pub async fn delete_source(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &SourceId,
    ) -> Result<Source> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM sources WHERE id = $1 AND chatbot_id = $2 AND account_id = $3 RETURNING {SOURCE_COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StorageError::NotFound)?;
        let source = source_from_row(&row)?;
        for sql in [
            "DELETE FROM chunks WHERE source_id = $1",
            "DELETE FROM source_pages WHERE source_id = $1",
            "DELETE FROM jobs WHERE source_id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
        }
        bump_version(&mut tx, chatbot.as_str()).await?;
        tx.commit().await?;
        Ok(source)
    }

    /// Every chunk of a chatbot with its source name, for building the derived index.
    pub async fn list_index_chunks(&self, chatbot: &ChatbotId) -> Result<Vec<IndexChunk>> {
        let rows = sqlx::query(
            "SELECT c.id, c.source_id, s.name AS source_name, c.title, c.heading, c.url, c.page, c.text,
                    c.embedding, c.embed_model
             FROM chunks c JOIN sources s ON s.id = c.source_id
             WHERE c.chatbot_id = $1 ORDER BY c.source_id, c.position",
        )
        .bind(chatbot.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IndexChunk {
                    id: ChunkId::from_db(r.try_get("id")?),
                    source_id: SourceId::from_db(r.try_get("source_id")?),
                    source_name: r.try_get("source_name")?,
                    title: r.try_get("title")?,
                    heading: r.try_get("heading")?,
                    url: r.try_get("url")?,
                    page: r.try_get("page")?,
                    text: r.try_get("text")?,
                    embedding: r.try_get("embedding")?,
                    embed_model: r.try_get("embed_model")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// The chatbot's knowledge version: moves on every change to its chunks.
    pub async fn knowledge_version(&self, chatbot: &ChatbotId) -> Result<i64> {
        Ok(
            sqlx::query("SELECT knowledge_version FROM chatbots WHERE id = $1")
                .bind(chatbot.as_str())
                .fetch_one(self.pool())
                .await?
                .try_get("knowledge_version")?,
        )
    }

    pub async fn chatbot_embedding(&self, chatbot: &ChatbotId) -> Result<EmbeddingChoice> {
        let s: String = sqlx::query("SELECT embedding FROM chatbots WHERE id = $1")
            .bind(chatbot.as_str())
            .fetch_one(self.pool())
            .await?
            .try_get("embedding")?;
        Ok(EmbeddingChoice::parse(&s).unwrap_or_default())
    }

    /// Changes the chatbot's embedder and queues the re-embedding of its chunks (in one transaction).
    /// Returns the queued job, or `None` when the choice did not change.
    pub async fn set_chatbot_embedding(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        choice: &EmbeddingChoice,
    ) -> Result<Option<JobId>> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE chatbots SET embedding = $3 WHERE id = $1 AND account_id = $2 AND embedding <> $3",
        )
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .bind(choice.to_db())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            let exists =
                sqlx::query("SELECT 1 AS one FROM chatbots WHERE id = $1 AND account_id = $2")
                    .bind(chatbot.as_str())
                    .bind(account.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StorageError::NotFound),
            };
        }
        bump_version(&mut tx, chatbot.as_str()).await?;
        let job = crate::jobs::enqueue_in(
            &mut tx,
            JOB_REEMBED_CHATBOT,
            Some(account),
            Some(chatbot.as_str()),
            None,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Stores new vectors for existing chunks (re-embedding), then bumps the version.
    pub async fn update_chunk_embeddings(
        &self,
        chatbot: &ChatbotId,
        rows: &[(ChunkId, Option<Vec<u8>>)],
        model: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        bump_version(&mut tx, chatbot.as_str()).await?;
        for (id, emb) in rows {
            sqlx::query("UPDATE chunks SET embedding = $2, embed_model = $3 WHERE id = $1 AND chatbot_id = $4")
                .bind(id.as_str())
                .bind(emb)
                .bind(model)
                .bind(chatbot.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves a source's next scheduled sync (tests and operators: "sync this one at the next check").
    pub async fn set_next_sync_at(&self, id: &SourceId, at: i64) -> Result<()> {
        sqlx::query("UPDATE sources SET next_sync_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sources whose schedule says they are due for a re-sync.
    pub async fn due_sources(&self, now: i64) -> Result<Vec<Source>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE next_sync_at IS NOT NULL AND next_sync_at <= $1
               AND status IN ('ready', 'failed') ORDER BY next_sync_at LIMIT 100"
        )))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(source_from_row).collect::<Result<_, _>>()?)
    }
}
