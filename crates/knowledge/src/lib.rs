//! The knowledge base: extract → chunk → embed → store → index → hybrid retrieve.
//!
//! Chunks and vectors live in the database (one source of truth). This crate derives a per-chatbot index
//! from them on each node — BM25 postings and a contiguous vector matrix — and rebuilds it whenever the
//! chatbot's `knowledge_version` moved, whichever process changed it. Ranking is computed here, never by
//! the database, so SQLite and PostgreSQL give the same answers.

pub mod analyze;
pub mod bm25;
pub mod chunk;
pub mod embed;
pub mod eval;
pub mod fusion;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod vectors;
pub mod worker;

use crate::embed::{EmbedError, Embedders};
use crate::fusion::{Leg, Mode};
use crate::index::ChatbotIndex;
use mtdesk_domain::{ChatbotId, ChunkId, SourceId};
use mtdesk_storage::{StorageError, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use fusion::DEFAULT_ALPHA;

/// Cosine below which a vector hit does not count as knowing the answer (MiniLM: unrelated sentences sit
/// around 0–0.2, paraphrases above 0.4).
pub const VECTOR_CONFIDENT: f32 = 0.35;
/// Share of the question's terms a lexical-only hit must contain to count as knowing the answer. A third:
/// questions carry words like "long" or "get" that no document needs to contain, and the content word
/// ("refund") is what matters; a question sharing no word is never answered.
pub const LEXICAL_CONFIDENT: f32 = 0.33;
/// Longest wait for a question's embedding before searching with the lexical leg alone.
const QUERY_EMBED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Indexes kept in memory per node; the least recently used goes first.
const CACHE_CAPACITY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for KnowledgeError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Self::NotFound,
            other => Self::Storage(other),
        }
    }
}

/// One retrieved chunk with its source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub chunk_id: ChunkId,
    pub source_id: SourceId,
    pub source_name: String,
    pub title: String,
    pub heading: String,
    pub url: Option<String>,
    pub page: Option<i64>,
    pub text: String,
    /// The ranking score (for hybrid the fused per-leg z-scores; BM25 or cosine for a single leg).
    pub score: f32,
    pub lexical_score: Option<f32>,
    pub vector_score: Option<f32>,
    pub leg: Leg,
}

/// What a search found and how.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retrieval {
    pub hits: Vec<Hit>,
    /// The mode actually used (hybrid degrades to BM25 without vectors).
    pub mode: Mode,
    /// Why the vector leg was not used, when it was not.
    pub lexical_only_reason: Option<String>,
    /// Whether the best hit is good enough to answer from; below it the bot says it does not know.
    pub confident: bool,
    pub chunks_indexed: usize,
    pub elapsed_ms: f64,
}

struct Cached {
    index: Arc<ChatbotIndex>,
    last_used: Instant,
}

/// Retrieval over every chatbot's knowledge, with the per-node index cache.
#[derive(Clone)]
pub struct Knowledge {
    store: Store,
    embedders: Embedders,
    cache: Arc<Mutex<HashMap<ChatbotId, Cached>>>,
    /// Moves on every `forget`: an index whose build started before it is not cached (it may hold text
    /// deleted meanwhile).
    forgotten: Arc<std::sync::atomic::AtomicU64>,
    alpha: f32,
}

impl Knowledge {
    pub fn new(store: Store, embedders: Embedders) -> Self {
        Self {
            store,
            embedders,
            cache: Arc::new(Mutex::new(HashMap::new())),
            forgotten: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            alpha: DEFAULT_ALPHA,
        }
    }

    /// Overrides the hybrid's vector weight (evaluation and tuning).
    pub fn with_alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha.clamp(0.0, 1.0);
        self
    }

    pub fn embedders(&self) -> &Embedders {
        &self.embedders
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The chatbot's current index, rebuilt from the database when its version moved.
    pub async fn index(&self, chatbot: &ChatbotId) -> Result<Arc<ChatbotIndex>, KnowledgeError> {
        // Read before anything of the chatbot is: a `forget` after this point keeps the result out of the
        // cache.
        let generation = self.forgotten.load(std::sync::atomic::Ordering::SeqCst);
        let version = match self.store.knowledge_version(chatbot).await {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, StorageError::NotFound) {
                    self.forget(chatbot);
                }
                return Err(e.into());
            }
        };
        if let Ok(mut cache) = self.cache.lock()
            && let Some(c) = cache.get_mut(chatbot)
            && c.index.version == version
        {
            c.last_used = Instant::now();
            return Ok(c.index.clone());
        }
        let choice = self.store.chatbot_embedding(chatbot).await?;
        let model = self
            .embedders
            .for_choice(&choice)
            .ok()
            .map(|e| e.model_id());
        let chunks = self.store.list_index_chunks(chatbot).await?;
        let index = tokio::task::spawn_blocking(move || {
            Arc::new(ChatbotIndex::build(
                version,
                chunks,
                choice,
                model.as_deref(),
            ))
        })
        .await
        .map_err(|e| KnowledgeError::Storage(StorageError::Other(anyhow::anyhow!(e))))?;
        if let Ok(mut cache) = self.cache.lock()
            && self.forgotten.load(std::sync::atomic::Ordering::SeqCst) == generation
        {
            if cache.len() >= CACHE_CAPACITY
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.last_used)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
            cache.insert(
                chatbot.clone(),
                Cached {
                    index: index.clone(),
                    last_used: Instant::now(),
                },
            );
        }
        Ok(index)
    }

    /// Drops a chatbot's cached index (its data was deleted).
    pub fn forget(&self, chatbot: &ChatbotId) {
        if let Ok(mut cache) = self.cache.lock() {
            self.forgotten
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            cache.remove(chatbot);
        }
    }

    /// Drops every cached index whose chatbot is gone or changed, also by another process. Called
    /// periodically by the worker so deleted text does not linger in memory.
    pub async fn sweep(&self) {
        let cached: Vec<(ChatbotId, i64)> = match self.cache.lock() {
            Ok(c) => c
                .iter()
                .map(|(k, v)| (k.clone(), v.index.version))
                .collect(),
            Err(_) => return,
        };
        for (bot, version) in cached {
            match self.store.knowledge_version(&bot).await {
                Ok(v) if v == version => {}
                Ok(_) | Err(StorageError::NotFound) => self.forget(&bot),
                Err(_) => {}
            }
        }
    }

    /// Whether any cached index holds this text (for deletion tests: proves derived indexes forgot it).
    pub fn cache_contains_text(&self, needle: &str) -> bool {
        self.cache
            .lock()
            .map(|c| {
                c.values()
                    .any(|c| c.index.docs.iter().any(|d| d.text.contains(needle)))
            })
            .unwrap_or(false)
    }

    /// Searches a chatbot's knowledge. `mode` `None` means hybrid (or lexical alone without vectors).
    pub async fn retrieve(
        &self,
        chatbot: &ChatbotId,
        query: &str,
        mode: Option<Mode>,
        k: usize,
    ) -> Result<Retrieval, KnowledgeError> {
        let started = Instant::now();
        let index = self.index(chatbot).await?;
        let wanted = mode.unwrap_or(Mode::Hybrid);
        let mut reason = None;
        let mut query_vec = None;
        if wanted != Mode::Bm25 && !index.docs.is_empty() {
            match self.embedders.for_choice(&index.embedding) {
                Ok(e)
                    if index.vectors.is_some() && index.model.as_deref() == Some(&e.model_id()) =>
                {
                    // A slow or failing embedding provider must not hold up an answer: past the limit
                    // the lexical leg answers alone, and says why.
                    match tokio::time::timeout(QUERY_EMBED_TIMEOUT, e.embed_one(query)).await {
                        Ok(Ok(v)) => query_vec = Some(v),
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "query embedding failed; lexical search only");
                            reason = Some(format!("the question could not be embedded ({err})"));
                        }
                        Err(_) => {
                            tracing::warn!("query embedding timed out; lexical search only");
                            reason = Some("the embedding provider did not answer in time".into());
                        }
                    }
                }
                Ok(_) => {
                    reason = Some("the chunks have no vectors yet (embedding in progress)".into())
                }
                Err(why) => reason = Some(why),
            }
        }
        let index2 = index.clone();
        let query_owned = query.to_string();
        let alpha = self.alpha;
        let (ranked, mode_used) = tokio::task::spawn_blocking(move || {
            rank_index(
                &index2,
                &query_owned,
                query_vec.as_deref(),
                wanted,
                k,
                alpha,
            )
        })
        .await
        .map_err(|e| KnowledgeError::Storage(StorageError::Other(anyhow::anyhow!(e))))?;
        let hits: Vec<Hit> = ranked
            .into_iter()
            .map(|r| {
                let d = &index.docs[r.doc];
                Hit {
                    chunk_id: d.chunk_id.clone(),
                    source_id: d.source_id.clone(),
                    source_name: d.source_name.clone(),
                    title: d.title.clone(),
                    heading: d.heading.clone(),
                    url: d.url.clone(),
                    page: d.page,
                    text: d.text.clone(),
                    score: r.score,
                    lexical_score: r.lexical,
                    vector_score: r.vector,
                    leg: r.leg,
                }
            })
            .collect();
        let confident = hits.first().is_some_and(|h| is_confident(h, query));
        Ok(Retrieval {
            hits,
            mode: mode_used,
            lexical_only_reason: reason,
            confident,
            chunks_indexed: index.docs.len(),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// Ranks one query against an index (no I/O): the core shared by the service and the benchmarks.
pub fn rank_index(
    index: &ChatbotIndex,
    query: &str,
    query_vec: Option<&[f32]>,
    mode: Mode,
    k: usize,
    alpha: f32,
) -> (Vec<fusion::Ranked>, Mode) {
    let n = index.docs.len();
    let lexical = if mode != Mode::Vector {
        let mut l = vec![0.0f32; n];
        index.bm25.score_into(query, &mut l);
        Some(l)
    } else {
        None
    };
    let vector = match (mode, &index.vectors, query_vec) {
        (Mode::Bm25, _, _) => None,
        (_, Some(v), Some(q)) => {
            let mut s = vec![-1.0f32; n];
            v.score_into(q, &mut s);
            Some(s)
        }
        _ => None,
    };
    let used = match (mode, lexical.is_some(), vector.is_some()) {
        (Mode::Hybrid, true, false) => Mode::Bm25,
        (m, _, _) => m,
    };
    (
        fusion::rank(lexical.as_deref(), vector.as_deref(), mode, k, alpha),
        used,
    )
}

/// Whether a hit is strong enough to answer from.
fn is_confident(hit: &Hit, query: &str) -> bool {
    if hit.vector_score.is_some_and(|v| v >= VECTOR_CONFIDENT) {
        return true;
    }
    let q: HashSet<String> = analyze::terms(query).into_iter().collect();
    if q.is_empty() || hit.lexical_score.is_none() {
        return false;
    }
    let d: HashSet<String> = analyze::terms(&chunk::ChunkDraft::indexed_text(
        &hit.title,
        &hit.heading,
        &hit.text,
    ))
    .into_iter()
    .collect();
    let covered = q.iter().filter(|t| d.contains(*t)).count();
    covered > 0 && covered as f32 / q.len() as f32 >= LEXICAL_CONFIDENT
}
