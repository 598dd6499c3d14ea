//! `/api/v1/chatbots/{id}/unanswered`: questions the bot could not answer well, and turning one into a
//! Q&A pair.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_domain::{AccountId, AnswerId, ChatbotId, QaPairInput};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Answers whose best knowledge match scored below this are listed as weak even if a model answered.
pub const WEAK_SCORE: f64 = mtdesk_ai::MATCH_THRESHOLD;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chatbots/{id}/unanswered", get(list))
        .route(
            "/chatbots/{id}/unanswered/{answer_id}/resolve",
            post(resolve),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnansweredView {
    pub answer_id: String,
    pub question: String,
    /// Best knowledge match (0..1), if anything matched.
    pub top_score: Option<f64>,
    /// Providers that failed on it (JSON list), if any.
    pub fallbacks: serde_json::Value,
    pub created_at: i64,
}

/// Shared with the dashboard.
pub async fn unanswered(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
) -> ApiResult<Vec<UnansweredView>> {
    state.store.find_chatbot(account, bot).await?;
    let rows = state
        .store
        .list_unanswered(account, bot, WEAK_SCORE, 200)
        .await?;
    Ok(rows
        .into_iter()
        .map(|u| UnansweredView {
            answer_id: u.answer_id.to_string(),
            question: u.question,
            top_score: u.top_score,
            fallbacks: serde_json::from_str(&u.fallbacks).unwrap_or(serde_json::Value::Null),
            created_at: u.created_at,
        })
        .collect())
}

/// Questions of this chatbot that got the fallback reply or only a weak knowledge match, newest first.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/unanswered", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [UnansweredView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<UnansweredView>>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    Ok(Json(unanswered(&state, &account, &bot).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    /// The question for the new Q&A pair (defaults to the customer's question).
    pub question: Option<String>,
    /// The answer the bot should give from now on.
    pub answer: String,
}

/// Turns an unanswered question into a Q&A pair and removes it from the list. Returns the new pair.
pub async fn resolve_with_pair(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
    answer_id: &AnswerId,
    question: Option<&str>,
    answer: &str,
) -> ApiResult<mtdesk_storage::QaPair> {
    let record = state.store.find_answer(account, answer_id).await?;
    let input = QaPairInput::parse(question.unwrap_or(&record.question), answer)?;
    // Resolving first is the ownership check (the answer must be this chatbot's and still open), so a
    // second submit or another chatbot's question creates no pair.
    state.store.resolve_answer(account, bot, answer_id).await?;
    let mut created = state.store.insert_qa_pairs(account, bot, &[input]).await?;
    created
        .pop()
        .ok_or_else(|| crate::ApiError::Internal(anyhow::anyhow!("insert returned no row")))
}

/// Turn an unanswered question into a Q&A pair.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/unanswered/{answer_id}/resolve", tag = "chat",
    security(("bearer" = [])), params(("id" = String, Path), ("answer_id" = String, Path)),
    request_body = ResolveInput,
    responses((status = 201, body = super::qa::QaView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, answer_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ResolveInput>,
) -> ApiResult<(StatusCode, Json<super::qa::QaView>)> {
    let bot = path_id(&id, ChatbotId::parse)?;
    let answer_id = path_id(&answer_id, AnswerId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let pair = resolve_with_pair(
        &state,
        &account,
        &bot,
        &answer_id,
        req.question.as_deref(),
        &req.answer,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(pair.into())))
}
