//! Ingestion jobs: a source's text extracted (file) or crawled (website), chunked, embedded and written
//! in one transaction. Embeddings of unchanged chunk texts are reused, so a re-sync only embeds what
//! changed. A failure that is the source's fault (corrupt file, site unreachable, robots) is recorded on
//! the source for the owner and the job ends; a failure of ours (database, embedding provider down) is
//! retried by the queue.

use crate::chunk::{ChunkDraft, chunk_document};
use crate::embed::{Embedder, Embedders};
use crate::vectors;
use mtdesk_crawler::{CrawlConfig, Crawler, PageEvent};
use mtdesk_domain::{ChatbotId, ChunkId, SourceId, SourceKind, SourceStatus, now_ms};
use mtdesk_extract::{DocKind, Limits};
use mtdesk_storage::knowledge::{JOB_INGEST_SOURCE, JOB_REEMBED_CHATBOT};
use mtdesk_storage::{FileStore, Job, NewChunk, SourcePage, StorageError, Store};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Texts embedded per call: large enough for the model to batch, small enough for visible progress.
const EMBED_BATCH: usize = 32;
/// How long a claimed job stays ours without a sign of life. Longer than one embedding call can take with
/// its retries, so a slow provider does not make another node take the job over; a crashed worker's job
/// waits this long before it is claimed again.
pub const LEASE_MS: i64 = 600_000;
/// Non-HTML documents met while crawling (PDFs…) are kept in memory until the crawl ends, up to this much.
const CRAWL_DOCS_BUDGET: usize = 64 * 1024 * 1024;
/// Text kept from one crawl (all pages' chunks); pages beyond it are recorded as skipped.
const CRAWL_TEXT_BUDGET: usize = 64 * 1024 * 1024;

/// Progress of one source, for a CLI progress bar.
pub type ProgressHook = Arc<dyn Fn(&SourceId, SourceStatus, i64, i64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Our side failed; the queue retries the job.
    #[error("{0}")]
    Transient(String),
    /// The source (or chatbot) was deleted while the job ran: nothing left to do.
    #[error("the source was deleted")]
    Gone,
}

impl From<StorageError> for JobError {
    fn from(e: StorageError) -> Self {
        Self::Transient(format!("database: {e}"))
    }
}

/// How many bytes of text a crawl of `source` may still add for its account under the account's plan
/// (`None`: no limit). Set by the binary from the plans; the knowledge crate knows nothing of plans.
pub type StorageBudget = Arc<
    dyn Fn(
            mtdesk_domain::AccountId,
            SourceId,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<i64>> + Send>>
        + Send
        + Sync,
>;

/// What a page skipped for the plan's storage limit shows.
const STORAGE_FULL: &str =
    "not added: your plan's knowledge storage is full (see Plan and usage under My Account)";

/// Runs knowledge jobs.
#[derive(Clone)]
pub struct Ingestor {
    pub store: Store,
    pub files: FileStore,
    pub embedders: Embedders,
    /// Crawl settings from the operator (address policy, delays, caps); pages and depth come per source.
    pub crawl: CrawlConfig,
    pub limits: Limits,
    pub progress: Option<ProgressHook>,
    /// The plan's storage limit, checked page by page while crawling (`None`: unlimited).
    pub storage_budget: Option<StorageBudget>,
}

enum Outcome {
    Done,
    /// The source's own problem, shown to the owner.
    SourceFailed(String),
}

impl Ingestor {
    /// Runs one claimed job. `Ok` when the job is finished (successfully or with the failure recorded on
    /// its source); `Err` when it should be retried.
    pub async fn run(&self, job: &Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            JOB_INGEST_SOURCE => {
                let Some(id) = job.source_id.clone() else {
                    return Ok(());
                };
                let id = SourceId::from_db(id);
                match self.ingest_source(job, &id).await {
                    Ok(Outcome::Done) => Ok(()),
                    Ok(Outcome::SourceFailed(msg)) => {
                        tracing::info!(source.id = %id, error = %msg, "source failed");
                        self.store.fail_source(&id, &msg).await?;
                        self.report(&id, SourceStatus::Failed, 0, 0);
                        Ok(())
                    }
                    // Deleted while we worked: nothing to do.
                    Err(JobError::Gone) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            JOB_REEMBED_CHATBOT => {
                let Some(bot) = job.chatbot_id.clone() else {
                    return Ok(());
                };
                self.reembed(job, &ChatbotId::from_db(bot)).await
            }
            other => {
                tracing::warn!(kind = other, "unknown job kind; dropped");
                Ok(())
            }
        }
    }

    fn report(&self, id: &SourceId, status: SourceStatus, done: i64, total: i64) {
        if let Some(p) = &self.progress {
            p(id, status, done, total);
        }
    }

    async fn progress(
        &self,
        job: &Job,
        id: &SourceId,
        status: SourceStatus,
        done: i64,
        total: i64,
    ) -> Result<(), JobError> {
        self.store
            .set_source_progress(id, status, done, total)
            .await
            .map_err(|e| match e {
                StorageError::NotFound => JobError::Gone,
                other => other.into(),
            })?;
        self.store.extend_job_lease(job, LEASE_MS).await?;
        self.report(id, status, done, total);
        Ok(())
    }

    async fn ingest_source(&self, job: &Job, id: &SourceId) -> Result<Outcome, JobError> {
        let source = match self.store.find_source_for_job(id).await {
            Ok(s) => s,
            Err(StorageError::NotFound) => return Ok(Outcome::Done),
            Err(e) => return Err(e.into()),
        };
        self.progress(job, id, SourceStatus::Extracting, 0, 0)
            .await?;
        let (drafts, pages) = match source.kind {
            SourceKind::File => {
                let bytes = match self.files.read_source(&source.account_id, id) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Outcome::SourceFailed(
                            "the uploaded file is missing from the server: upload it again".into(),
                        ));
                    }
                    Err(e) => return Err(JobError::Transient(format!("reading the file: {e}"))),
                };
                let doc = match mtdesk_extract::extract(
                    bytes,
                    Some(source.name.clone()),
                    self.limits.clone(),
                )
                .await
                {
                    Ok(d) => d,
                    Err(e) => return Ok(Outcome::SourceFailed(e.to_string())),
                };
                (
                    chunk_document(&doc, &title_from_name(&source.name), None),
                    None,
                )
            }
            SourceKind::Url => {
                let (drafts, pages) = match self.crawl_source(job, &source).await? {
                    Ok(x) => x,
                    Err(msg) => return Ok(Outcome::SourceFailed(msg)),
                };
                (drafts, Some(pages))
            }
        };
        if drafts.is_empty() {
            let why = match &pages {
                Some(p) => match p.iter().find(|p| p.status != "ok") {
                    Some(bad) => format!(
                        "no text found on any page; first problem: {} ({})",
                        bad.url,
                        bad.detail.as_deref().unwrap_or(&bad.status)
                    ),
                    None => "no text found on any page".into(),
                },
                None => "the document contains no text".into(),
            };
            return Ok(Outcome::SourceFailed(why));
        }
        let chunks = self
            .embed_drafts(job, id, &source.chatbot_id, drafts)
            .await?;
        match self
            .store
            .replace_source_content(id, &chunks, pages.as_deref())
            .await
        {
            Ok(()) => {}
            Err(StorageError::NotFound) => return Ok(Outcome::Done),
            Err(e) => return Err(e.into()),
        }
        self.report(
            id,
            SourceStatus::Ready,
            chunks.len() as i64,
            chunks.len() as i64,
        );
        Ok(Outcome::Done)
    }

    /// Embeds the drafts with the chatbot's embedder, reusing stored vectors of identical texts.
    async fn embed_drafts(
        &self,
        job: &Job,
        id: &SourceId,
        chatbot: &ChatbotId,
        drafts: Vec<ChunkDraft>,
    ) -> Result<Vec<NewChunk>, JobError> {
        let choice = self.store.chatbot_embedding(chatbot).await?;
        let embedder = self.embedders.for_choice(&choice).ok();
        let texts: Vec<String> = drafts
            .iter()
            .map(|d| ChunkDraft::indexed_text(&d.title, &d.heading, &d.text))
            .collect();
        let hashes: Vec<String> = texts.iter().map(|t| hex_sha256(t.as_bytes())).collect();
        let mut embeddings: Vec<Option<Vec<u8>>> = vec![None; drafts.len()];
        let model = embedder.as_ref().map(Embedder::model_id);
        if let (Some(e), Some(model)) = (&embedder, &model) {
            let known = self.store.source_embeddings(id, model).await?;
            let todo: Vec<usize> = (0..drafts.len())
                .filter(|&i| match known.get(&hashes[i]) {
                    Some(v) => {
                        embeddings[i] = Some(v.clone());
                        false
                    }
                    None => true,
                })
                .collect();
            let total = todo.len() as i64;
            self.progress(job, id, SourceStatus::Embedding, 0, total)
                .await?;
            let mut done = 0i64;
            for batch in todo.chunks(EMBED_BATCH) {
                let input: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
                let vecs = e
                    .embed(input)
                    .await
                    .map_err(|err| JobError::Transient(err.to_string()))?;
                for (&i, v) in batch.iter().zip(vecs) {
                    embeddings[i] = Some(vectors::to_bytes(&v));
                }
                done += batch.len() as i64;
                self.progress(job, id, SourceStatus::Embedding, done, total)
                    .await?;
            }
        }
        Ok(drafts
            .into_iter()
            .zip(hashes)
            .zip(embeddings)
            .map(|((d, text_hash), embedding)| NewChunk {
                title: d.title,
                heading: d.heading,
                url: d.url,
                page: d.page.map(i64::from),
                text: d.text,
                text_hash,
                embed_model: embedding.as_ref().and(model.clone()),
                embedding,
            })
            .collect())
    }

    /// Crawls a website source. The outer error is ours (retry); the inner one is the site's (shown).
    async fn crawl_source(
        &self,
        job: &Job,
        source: &mtdesk_storage::Source,
    ) -> Result<Result<(Vec<ChunkDraft>, Vec<SourcePage>), String>, JobError> {
        let start = match mtdesk_crawler::parse_source_url(&source.name) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut cfg = self.crawl.clone();
        cfg.max_pages = usize::try_from(source.max_pages.max(1)).unwrap_or(1);
        cfg.max_depth = u32::try_from(source.max_depth.max(0)).unwrap_or(0);
        let crawler = match Crawler::new(cfg.clone()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let seen = Arc::new(AtomicI64::new(0));
        let total = cfg.max_pages as i64;
        // Progress is written by a ticker while the crawl runs (the crawl's callback is synchronous).
        let ticker = {
            let (store, id, seen, hook) = (
                self.store.clone(),
                source.id.clone(),
                seen.clone(),
                self.progress.clone(),
            );
            let job_claim = job.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                    let n = seen.load(Ordering::Relaxed);
                    // The source was deleted: stop, which ends the crawl (see below).
                    if let Err(StorageError::NotFound) = store
                        .set_source_progress(&id, SourceStatus::Extracting, n, total)
                        .await
                    {
                        return;
                    }
                    let _ = store.extend_job_lease(&job_claim, LEASE_MS).await;
                    if let Some(h) = &hook {
                        h(&id, SourceStatus::Extracting, n, total);
                    }
                }
            })
        };
        // Text the account's plan still has room for (limits are enforced where the work happens).
        let plan_budget: Option<usize> = match &self.storage_budget {
            Some(budget) => budget(source.account_id.clone(), source.id.clone())
                .await
                .map(|b| usize::try_from(b.max(0)).unwrap_or(0)),
            None => None,
        };
        let fits = |used: usize, more: usize| plan_budget.is_none_or(|b| used + more <= b);
        let mut pages: Vec<SourcePage> = Vec::new();
        let mut drafts: Vec<ChunkDraft> = Vec::new();
        let mut docs: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
        let mut docs_bytes = 0usize;
        let mut text_chars = 0usize;
        let crawl = crawler.crawl(&start, |event| {
                seen.fetch_add(1, Ordering::Relaxed);
                let now = now_ms();
                match event {
                    PageEvent::Fetched(page) => {
                        let url = page.url.to_string();
                        let ct = page
                            .content_type
                            .clone()
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        let is_html =
                            ct.contains("html") || ct.is_empty() && looks_like_html(&page.body);
                        if is_html && text_chars > CRAWL_TEXT_BUDGET {
                            pages.push(SourcePage {
                                url,
                                status: "skipped".into(),
                                detail: Some("the site's text exceeds what one source may hold; split it into several sources".into()),
                                title: None,
                                content_hash: None,
                                fetched_at: now,
                            });
                        } else if is_html {
                            let html = mtdesk_extract::decode_text(&page.body);
                            let doc = mtdesk_extract::html_to_document(&html);
                            let chunks = chunk_document(&doc, &url, Some(&url));
                            // Counted as the plan's storage meter counts crawled text (characters, SQL `LENGTH`).
                            let size = chunks.iter().map(|c| c.text.chars().count()).sum::<usize>();
                            if fits(text_chars, size) {
                                let detail =
                                    chunks.is_empty().then(|| "no text on the page".to_string());
                                pages.push(page_read(url, &doc, &chunks, detail, now));
                                text_chars += size;
                                drafts.extend(chunks);
                            } else {
                                pages.push(SourcePage {
                                    url,
                                    status: "skipped".into(),
                                    detail: Some(STORAGE_FULL.into()),
                                    title: None,
                                    content_hash: None,
                                    fetched_at: now,
                                });
                            }
                        } else if docs_bytes + page.body.len() <= CRAWL_DOCS_BUDGET {
                            docs_bytes += page.body.len();
                            docs.push((url, page.content_type.clone(), page.body));
                        } else {
                            pages.push(SourcePage {
                                url,
                                status: "skipped".into(),
                                detail: Some("too many linked documents in one crawl".into()),
                                title: None,
                                content_hash: None,
                                fetched_at: now,
                            });
                        }
                    }
                    PageEvent::Skipped { url, reason } => pages.push(SourcePage {
                        url: url.to_string(),
                        status: "skipped".into(),
                        detail: Some(reason.to_string()),
                        title: None,
                        content_hash: None,
                        fetched_at: now,
                    }),
                    PageEvent::Failed { url, error } => pages.push(SourcePage {
                        url: url.to_string(),
                        status: "failed".into(),
                        detail: Some(error.to_string()),
                        title: None,
                        content_hash: None,
                        fetched_at: now,
                    }),
                }
            });
        let mut ticker = ticker;
        // A deleted source stops its crawl: the ticker ends when the source row is gone.
        let result = tokio::select! {
            r = crawl => r,
            _ = &mut ticker => return Err(JobError::Gone),
        };
        ticker.abort();
        if let Err(e) = result {
            return Ok(Err(e.to_string()));
        }
        for (url, _ct, body) in docs {
            let name = url.rsplit('/').next().unwrap_or("").to_string();
            let now = now_ms();
            match mtdesk_extract::extract(body, Some(name), self.limits.clone()).await {
                Ok(doc) => {
                    let chunks = chunk_document(&doc, &url, Some(&url));
                    let size = chunks.iter().map(|c| c.text.chars().count()).sum::<usize>();
                    if !fits(text_chars, size) {
                        pages.push(SourcePage {
                            url,
                            status: "skipped".into(),
                            detail: Some(STORAGE_FULL.into()),
                            title: None,
                            content_hash: None,
                            fetched_at: now,
                        });
                        continue;
                    }
                    text_chars += size;
                    let detail = Some(format!("{} document", doc.kind.as_str()));
                    pages.push(page_read(url, &doc, &chunks, detail, now));
                    drafts.extend(chunks);
                }
                Err(e) => pages.push(SourcePage {
                    url,
                    status: "failed".into(),
                    detail: Some(e.to_string()),
                    title: None,
                    content_hash: None,
                    fetched_at: now,
                }),
            }
        }
        Ok(Ok((drafts, pages)))
    }

    /// Re-embeds every chunk of a chatbot with its current embedder (or clears the vectors when it has
    /// none).
    async fn reembed(&self, job: &Job, chatbot: &ChatbotId) -> Result<(), JobError> {
        let choice = match self.store.chatbot_embedding(chatbot).await {
            Ok(c) => c,
            Err(StorageError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let chunks = self.store.list_index_chunks(chatbot).await?;
        let embedder = self.embedders.for_choice(&choice).ok();
        let Some(e) = embedder else {
            let rows: Vec<(ChunkId, Option<Vec<u8>>)> =
                chunks.into_iter().map(|c| (c.id, None)).collect();
            self.store
                .update_chunk_embeddings(chatbot, &rows, None)
                .await?;
            return Ok(());
        };
        let model = e.model_id();
        let todo: Vec<_> = chunks
            .into_iter()
            .filter(|c| c.embed_model.as_deref() != Some(model.as_str()))
            .collect();
        for batch in todo.chunks(EMBED_BATCH * 4) {
            let input: Vec<String> = batch
                .iter()
                .map(|c| ChunkDraft::indexed_text(&c.title, &c.heading, &c.text))
                .collect();
            let vecs = e
                .embed(input)
                .await
                .map_err(|err| JobError::Transient(err.to_string()))?;
            let rows: Vec<(ChunkId, Option<Vec<u8>>)> = batch
                .iter()
                .zip(vecs)
                .map(|(c, v)| (c.id.clone(), Some(vectors::to_bytes(&v))))
                .collect();
            self.store
                .update_chunk_embeddings(chatbot, &rows, Some(&model))
                .await?;
            self.store.extend_job_lease(job, LEASE_MS).await?;
        }
        Ok(())
    }
}

/// The record of a page whose text was read: "ok" with a hash of its chunks, or "skipped" without text.
fn page_read(
    url: String,
    doc: &mtdesk_extract::Extracted,
    chunks: &[ChunkDraft],
    detail: Option<String>,
    now: i64,
) -> SourcePage {
    let text: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    SourcePage {
        url,
        status: if chunks.is_empty() { "skipped" } else { "ok" }.into(),
        detail,
        title: doc.title.clone(),
        content_hash: Some(hex_sha256(text.join("\n").as_bytes())),
        fetched_at: now,
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    head.contains("<html") || head.contains("<!doctype html")
}

/// "refund-policy.pdf" → "refund-policy".
pub fn title_from_name(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 8 => stem.to_string(),
        _ => name.to_string(),
    }
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The document kind of an upload, checked before it is stored (so the API can refuse at once).
pub fn detect_upload(bytes: &[u8], name: &str) -> Result<DocKind, mtdesk_extract::ExtractError> {
    mtdesk_extract::detect(bytes, Some(name))
}
