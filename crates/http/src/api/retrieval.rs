//! `/api/v1/chatbots/{id}/retrieval-test` (hit testing: a question in, the hits with scores, leg and
//! source out) and `/api/v1/chatbots/{id}/knowledge-settings` (the embedder).

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_domain::{ChatbotId, DomainError, EmbeddingChoice};
use mtdesk_knowledge::fusion::Mode;
use mtdesk_knowledge::{Hit, KnowledgeError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chatbots/{id}/retrieval-test", post(retrieval_test))
        .route(
            "/chatbots/{id}/knowledge-settings",
            get(get_settings).put(put_settings),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrievalTestRequest {
    /// The question, as a customer would ask it (1–4,000 characters).
    pub query: String,
    /// `hybrid` (default), `bm25` or `vector`.
    pub mode: Option<String>,
    /// Hits to return, 1–50 (default 10).
    pub top_k: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HitView {
    pub chunk_id: String,
    pub source_id: String,
    /// The source's file name or URL.
    pub source_name: String,
    pub title: String,
    /// Heading path inside the document, "Chapter > Section".
    pub heading: String,
    /// The page's URL (websites).
    pub url: Option<String>,
    /// The PDF page number.
    pub page: Option<i64>,
    pub text: String,
    /// The ranking score: fused (hybrid: weighted per-leg z-scores, higher is better), BM25 (bm25) or cosine
    /// (vector). Compare hits of one query with each other, not across queries.
    pub score: f32,
    pub lexical_score: Option<f32>,
    pub vector_score: Option<f32>,
    /// `lexical`, `vector` or `both`: which leg found it.
    pub leg: String,
}

impl From<Hit> for HitView {
    fn from(h: Hit) -> Self {
        Self {
            chunk_id: h.chunk_id.to_string(),
            source_id: h.source_id.to_string(),
            source_name: h.source_name,
            title: h.title,
            heading: h.heading,
            url: h.url,
            page: h.page,
            text: h.text,
            score: h.score,
            lexical_score: h.lexical_score,
            vector_score: h.vector_score,
            leg: serde_json::to_value(h.leg)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetrievalTestResult {
    pub query: String,
    /// The mode used (hybrid becomes bm25 when the chatbot has no vectors).
    pub mode: String,
    /// Why vector search was not used, when it was not.
    pub lexical_only_reason: Option<String>,
    /// Whether the best hit is good enough for the bot to answer from.
    pub confident: bool,
    pub chunks_indexed: usize,
    pub elapsed_ms: f64,
    pub hits: Vec<HitView>,
    /// Q&A pairs that match the question (they win over chunks when their question matches well).
    pub qa_matches: Vec<QaMatchView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QaMatchView {
    pub qa_id: String,
    pub question: String,
    pub answer: String,
    /// 0–1; at or above 0.5 the pair answers directly.
    pub score: f64,
}

/// Hit testing: what the bot would find for a question, with scores, leg and source.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/retrieval-test", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RetrievalTestRequest,
    responses((status = 200, body = RetrievalTestResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn retrieval_test(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RetrievalTestRequest>,
) -> ApiResult<Json<RetrievalTestResult>> {
    let bot_id = path_id(&id, ChatbotId::parse)?;
    let bot = state.store.find_chatbot(&account, &bot_id).await?;
    let query = mtdesk_domain::text::bounded("query", &req.query, 1, 4000, true)?;
    let mode = match req.mode.as_deref().unwrap_or("hybrid") {
        "hybrid" => Mode::Hybrid,
        "bm25" | "lexical" => Mode::Bm25,
        "vector" => Mode::Vector,
        other => {
            return Err(DomainError::invalid(
                "mode",
                format!("must be hybrid, bm25 or vector (got {other:?})"),
            )
            .into());
        }
    };
    let top_k = req.top_k.unwrap_or(10);
    if !(1..=50).contains(&top_k) {
        return Err(DomainError::invalid("top_k", "must be between 1 and 50").into());
    }
    let r = state
        .knowledge
        .knowledge
        .retrieve(&bot_id, &query, Some(mode), top_k)
        .await
        .map_err(knowledge_error)?;
    let qa = state.answerer.qa_candidates(&bot, &query).await?;
    Ok(Json(RetrievalTestResult {
        query,
        mode: r.mode.as_str().into(),
        lexical_only_reason: r.lexical_only_reason,
        confident: r.confident,
        chunks_indexed: r.chunks_indexed,
        elapsed_ms: r.elapsed_ms,
        hits: r.hits.into_iter().map(Into::into).collect(),
        qa_matches: qa
            .into_iter()
            .filter(|c| c.score > 0.0)
            .map(|c| QaMatchView {
                qa_id: c.pair.id.to_string(),
                question: c.pair.question,
                answer: c.pair.answer,
                score: c.score,
            })
            .collect(),
    }))
}

pub fn knowledge_error(e: KnowledgeError) -> ApiError {
    match e {
        KnowledgeError::NotFound => ApiError::NotFound,
        KnowledgeError::Embed(e) => ApiError::Upstream(e.to_string()),
        KnowledgeError::Storage(e) => e.into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeSettings {
    /// `local` (all-MiniLM-L6-v2 in process, English-first), `openrouter:<model>` (multilingual models),
    /// or `none` (lexical search only).
    pub embedding: String,
    /// Whether vector search is available for this chatbot on this server.
    pub vector_search: bool,
    /// Why not, when it is not.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeSettingsUpdate {
    pub embedding: String,
}

async fn settings_view(state: &AppState, bot: &ChatbotId) -> ApiResult<KnowledgeSettings> {
    let choice = state.store.chatbot_embedding(bot).await?;
    let avail = state.knowledge.knowledge.embedders().for_choice(&choice);
    Ok(KnowledgeSettings {
        embedding: choice.to_db(),
        vector_search: avail.is_ok(),
        reason: avail.err(),
    })
}

/// The chatbot's embedder and whether vector search works with it here.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/knowledge-settings", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = KnowledgeSettings), (status = 404, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<KnowledgeSettings>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    Ok(Json(settings_view(&state, &bot).await?))
}

/// Change the embedder. Every chunk is re-embedded in the background (until then the lexical leg answers).
#[utoipa::path(put, path = "/api/v1/chatbots/{id}/knowledge-settings", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = KnowledgeSettingsUpdate,
    responses((status = 200, body = KnowledgeSettings), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<KnowledgeSettingsUpdate>,
) -> ApiResult<Json<KnowledgeSettings>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    let choice = EmbeddingChoice::parse(&req.embedding)?;
    if state
        .store
        .set_chatbot_embedding(&account, &bot, &choice)
        .await?
        .is_some()
    {
        state.knowledge.wake.notify_one();
    }
    Ok(Json(settings_view(&state, &bot).await?))
}
