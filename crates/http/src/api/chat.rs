//! `POST /api/v1/chatbots/{id}/chat`: ask a chatbot, as a customer would.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use mtdesk_domain::{ChatbotId, DomainError, text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest message a customer can send in one go.
pub const MESSAGE_MAX: usize = 4_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/chatbots/{id}/chat", post(chat))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The customer's message, up to 4,000 characters.
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchedQaView {
    pub id: String,
    pub question: String,
    /// 0..1: how well the message matched this pair.
    pub score: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    pub answer: String,
    /// `qa_pair` (a Q&A pair matched) or `fallback` (the chatbot's fallback reply).
    pub source: String,
    /// Which engine answered: `offline` needs no API key.
    pub answered_by: String,
    /// The Q&A pair the answer came from, if any.
    pub matched: Option<MatchedQaView>,
    /// A note about how the answer was produced (e.g. the configured provider is not available).
    pub notice: Option<String>,
    pub latency_ms: u64,
}

impl From<mtdesk_ai::Answer> for ChatResponse {
    fn from(a: mtdesk_ai::Answer) -> Self {
        Self {
            answer: a.text,
            source: match a.source {
                mtdesk_ai::AnswerSource::QaPair => "qa_pair",
                mtdesk_ai::AnswerSource::Fallback => "fallback",
            }
            .into(),
            answered_by: a.answered_by.into(),
            matched: a.matched.map(|m| MatchedQaView {
                id: m.id,
                question: m.question,
                score: m.score,
            }),
            notice: a.notice,
            latency_ms: a.latency_ms,
        }
    }
}

/// Ask the chatbot a question.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/chat", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChatRequest,
    responses((status = 200, body = ChatResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn chat(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> ApiResult<Json<ChatResponse>> {
    let id = path_id(&id, ChatbotId::parse)?;
    let bot = state.store.find_chatbot(&account, &id).await?;
    let message = parse_message(&req.message)?;
    let answer = mtdesk_ai::answer(&state.store, &bot, &message).await?;
    Ok(Json(answer.into()))
}

/// A customer message: trimmed, non-empty, bounded.
pub fn parse_message(raw: &str) -> Result<String, DomainError> {
    text::bounded("message", raw, 1, MESSAGE_MAX, true)
}
