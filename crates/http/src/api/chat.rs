//! `POST /api/v1/chatbots/{id}/chat`: ask a chatbot, as a customer would, as JSON or as a stream.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mtdesk_ai::{AnswerRequest, StreamUpdate};
use mtdesk_domain::{ChatbotId, ConversationId, DomainError, text};
use mtdesk_storage::Chatbot;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use tokio::sync::mpsc;
use utoipa::ToSchema;

/// Longest message accepted. Messages longer than `mtdesk_ai::prompt::MESSAGE_PROMPT_MAX` (4,000
/// characters) are answered from their first 4,000 characters, cut at a word, and the answer says so.
pub const MESSAGE_MAX: usize = 100_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/chatbots/{id}/chat", post(chat))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The customer's message, up to 100,000 characters (the first 4,000 are answered).
    pub message: String,
    /// Continue a conversation (from an earlier response); omit to start a new one.
    pub conversation_id: Option<String>,
    /// Stream the answer as server-sent events (same as `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// `qa` (a Q&A pair).
    pub kind: String,
    pub id: String,
    pub title: String,
    /// 0..1: how well the message matched it.
    pub score: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedAttemptView {
    pub provider: String,
    pub model: String,
    /// bad_key, no_credits, invalid_request, rate_limited, unavailable, timeout, network,
    /// malformed, stream_cut or not_configured.
    pub error: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    pub answer: String,
    /// `qa_pair` (offline answerer used a Q&A pair), `excerpt` (offline answerer quoted the most relevant
    /// sentences of document passages, with their source), `knowledge` (a model answered from the
    /// knowledge base), `model` (a model answered without matching knowledge) or `fallback` (the fallback
    /// reply).
    pub source: String,
    /// The provider that answered: `offline` is the built-in answerer (no AI model).
    pub answered_by: String,
    pub model: String,
    /// The best-matching Q&A pair, if any.
    pub matched: Option<SourceView>,
    /// The knowledge the answer was based on.
    pub sources: Vec<SourceView>,
    /// Providers that were tried first and failed, and why.
    pub fallbacks: Vec<FailedAttemptView>,
    pub notice: Option<String>,
    /// The message was cut to 4,000 characters before answering.
    pub truncated: bool,
    pub latency_ms: u64,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Send it back to continue the conversation.
    pub conversation_id: String,
    pub answer_id: String,
}

fn source_view(s: mtdesk_ai::SourceRef) -> SourceView {
    SourceView {
        kind: s.kind.into(),
        id: s.id,
        title: s.title,
        score: s.score,
    }
}

impl From<mtdesk_ai::Answer> for ChatResponse {
    fn from(a: mtdesk_ai::Answer) -> Self {
        Self {
            answer: a.text,
            source: match a.source {
                mtdesk_ai::AnswerSource::QaPair => "qa_pair",
                mtdesk_ai::AnswerSource::Knowledge => "knowledge",
                mtdesk_ai::AnswerSource::Excerpt => "excerpt",
                mtdesk_ai::AnswerSource::Model => "model",
                mtdesk_ai::AnswerSource::Fallback => "fallback",
            }
            .into(),
            answered_by: a.answered_by,
            model: a.model,
            matched: a.matched.map(source_view),
            sources: a.sources.into_iter().map(source_view).collect(),
            fallbacks: a
                .fallbacks
                .into_iter()
                .map(|f| FailedAttemptView {
                    provider: f.provider,
                    model: f.model,
                    error: f.error,
                    message: f.message,
                })
                .collect(),
            notice: a.notice,
            truncated: a.truncated,
            latency_ms: a.latency_ms,
            prompt_tokens: a.prompt_tokens,
            completion_tokens: a.completion_tokens,
            conversation_id: a.conversation_id.to_string(),
            answer_id: a.answer_id,
        }
    }
}

/// Ask the chatbot a question. With `"stream": true` or `Accept: text/event-stream` the answer comes as
/// server-sent events: `delta` (`{"text"}`), `reset` (discard the text so far: a provider failed
/// mid-answer and the next one answers), then `done` (the full ChatResponse) or `error`.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/chat", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChatRequest,
    responses(
        (status = 200, description = "JSON, or text/event-stream when streaming", body = ChatResponse),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChatRequest>,
) -> ApiResult<Response> {
    let id = path_id(&id, ChatbotId::parse)?;
    let bot = state.store.find_chatbot(&account, &id).await?;
    let message = parse_message(&req.message)?;
    let conversation = parse_conversation(req.conversation_id.as_deref())?;
    let wants_stream = req.stream
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(stream_answer(state, bot, message, conversation, "api"));
    }
    let answer = state
        .answerer
        .answer(
            &bot,
            AnswerRequest {
                message: &message,
                conversation,
                channel: "api",
                inbound: None,
            },
            None,
        )
        .await
        .map_err(answer_error)?;
    Ok(Json(ChatResponse::from(answer)).into_response())
}

/// A customer message: trimmed, non-empty, bounded.
pub fn parse_message(raw: &str) -> Result<String, DomainError> {
    text::bounded("message", raw, 1, MESSAGE_MAX, true)
}

/// An optional conversation id from a request: malformed or unknown is a 404 (like another account's).
pub fn parse_conversation(raw: Option<&str>) -> Result<Option<ConversationId>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => ConversationId::parse(s).map(Some).ok_or(ApiError::NotFound),
    }
}

pub fn answer_error(e: mtdesk_ai::AnswerError) -> ApiError {
    match e {
        mtdesk_ai::AnswerError::Storage(s) => s.into(),
    }
}

/// Streams an answer as server-sent events (shared with the dashboard's test chat). Events keep the
/// order in which the answerer produced them; the final `done` event carries the recorded answer.
pub fn stream_answer(
    state: AppState,
    bot: Chatbot,
    message: String,
    conversation: Option<ConversationId>,
    channel: &'static str,
) -> Response {
    let (events, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let (utx, mut urx) = mpsc::channel::<StreamUpdate>(64);
        let answering = state.answerer.answer(
            &bot,
            AnswerRequest {
                message: &message,
                conversation,
                channel,
                inbound: None,
            },
            Some(utx),
        );
        tokio::pin!(answering);
        let forward = |u: StreamUpdate| match u {
            StreamUpdate::Delta(t) => Event::default()
                .event("delta")
                .data(serde_json::json!({"text": t}).to_string()),
            StreamUpdate::Reset => Event::default().event("reset").data("{}"),
        };
        let result = loop {
            tokio::select! {
                Some(u) = urx.recv() => {
                    let _ = events.send(forward(u)).await;
                }
                result = &mut answering => break result,
            }
        };
        while let Ok(u) = urx.try_recv() {
            let _ = events.send(forward(u)).await;
        }
        let last = match result {
            Ok(answer) => Event::default()
                .event("done")
                .data(serde_json::to_string(&ChatResponse::from(answer)).unwrap_or_default()),
            Err(e) => {
                let err = answer_error(e);
                tracing::error!(error = %err, "streamed answer failed");
                Event::default().event("error").data(
                    serde_json::json!({"error": err.code(), "message": err.user_message()})
                        .to_string(),
                )
            }
        };
        let _ = events.send(last).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
