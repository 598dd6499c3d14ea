//! The derived per-chatbot index: documents, BM25 postings and the vector matrix, rebuilt from the
//! database whenever the chatbot's `knowledge_version` moved, cached per node.

use crate::bm25::Bm25;
use crate::chunk::ChunkDraft;
use crate::vectors::{self, Vectors};
use mtdesk_domain::{ChunkId, SourceId};
use mtdesk_storage::IndexChunk;

/// One retrievable chunk with its provenance.
#[derive(Debug, Clone)]
pub struct Doc {
    pub chunk_id: ChunkId,
    pub source_id: SourceId,
    pub source_name: String,
    pub title: String,
    pub heading: String,
    pub url: Option<String>,
    pub page: Option<i64>,
    pub text: String,
}

#[derive(Debug)]
pub struct ChatbotIndex {
    pub version: i64,
    pub docs: Vec<Doc>,
    pub bm25: Bm25,
    /// Vectors by the chatbot's current embedder (`model`); `None` when it has none.
    pub vectors: Option<Vectors>,
    pub model: Option<String>,
    /// The chatbot's embedder choice when the index was built (changing it moves the version, so this is
    /// current as long as the index is).
    pub embedding: mtdesk_domain::EmbeddingChoice,
}

impl ChatbotIndex {
    /// Builds the index from the stored chunks. Only vectors made by `model` are used; chunks without one
    /// (still being re-embedded) are found by the lexical leg only.
    pub fn build(
        version: i64,
        chunks: Vec<IndexChunk>,
        embedding: mtdesk_domain::EmbeddingChoice,
        model: Option<&str>,
    ) -> Self {
        let texts: Vec<String> = chunks
            .iter()
            .map(|c| ChunkDraft::indexed_text(&c.title, &c.heading, &c.text))
            .collect();
        let bm25 = Bm25::build(texts.iter().map(String::as_str));
        let mut vecs: Option<Vectors> = None;
        if let Some(model) = model {
            for (row, c) in chunks.iter().enumerate() {
                if c.embed_model.as_deref() != Some(model) {
                    continue;
                }
                let Some(v) = c.embedding.as_deref().and_then(vectors::from_bytes) else {
                    continue;
                };
                let m = vecs.get_or_insert_with(|| Vectors::new(v.len(), chunks.len()));
                m.set(row, &v);
            }
        }
        let docs = chunks
            .into_iter()
            .map(|c| Doc {
                chunk_id: c.id,
                source_id: c.source_id,
                source_name: c.source_name,
                title: c.title,
                heading: c.heading,
                url: c.url,
                page: c.page,
                text: c.text,
            })
            .collect();
        Self {
            version,
            docs,
            bm25,
            model: vecs.as_ref().map(|_| model.unwrap_or_default().to_string()),
            vectors: vecs,
            embedding,
        }
    }
}
