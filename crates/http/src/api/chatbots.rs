//! `/api/v1/chatbots[/{id}]`: create, list, read, update and delete chatbots.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_domain::{ChainLink, ChatbotDraft, ChatbotId, ChatbotSettings, DomainError, Provider};
use mtdesk_storage::Chatbot;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chatbots", get(list).post(create))
        .route("/chatbots/{id}", get(get_one).patch(update).delete(delete))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatbotView {
    pub id: String,
    pub name: String,
    /// The persona and rules the bot follows.
    pub instructions: String,
    /// offline, openrouter, fireworks, minimax, moonshot or openai_compat.
    pub provider: String,
    pub model: String,
    pub temperature: f64,
    /// Sent when the bot has no answer.
    pub fallback_reply: String,
    /// Answer only from the knowledge base, never from the model's general knowledge.
    pub knowledge_only: bool,
    /// Longest answer to ask the model for, in tokens.
    pub max_tokens: u32,
    /// Tried in order when the main provider fails; the offline answerer always comes last.
    pub fallback_chain: Vec<ChainLinkView>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Chatbot> for ChatbotView {
    fn from(c: Chatbot) -> Self {
        let s = c.settings;
        Self {
            id: c.id.to_string(),
            name: s.name,
            instructions: s.instructions,
            provider: s.provider.as_str().to_string(),
            model: s.model,
            temperature: s.temperature,
            fallback_reply: s.fallback_reply,
            knowledge_only: s.knowledge_only,
            max_tokens: s.max_tokens,
            fallback_chain: s
                .fallback_chain
                .iter()
                .map(|l| ChainLinkView {
                    provider: l.provider.as_str().into(),
                    model: l.model.clone(),
                })
                .collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// One fallback: a provider and its model.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChainLinkView {
    pub provider: String,
    #[serde(default)]
    pub model: String,
}

/// Fields of a chatbot. On create only `name` is required; on update every field is optional and only
/// the ones given change.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ChatbotInput {
    pub name: Option<String>,
    pub instructions: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// 0 to 2.
    pub temperature: Option<f64>,
    pub fallback_reply: Option<String>,
    pub knowledge_only: Option<bool>,
    /// 1 to 8192.
    pub max_tokens: Option<u32>,
    /// Up to 4 fallbacks, e.g. `[{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]`.
    pub fallback_chain: Option<Vec<ChainLinkView>>,
}

impl ChatbotInput {
    pub fn draft(&self) -> Result<ChatbotDraft<'_>, DomainError> {
        let fallback_chain = match &self.fallback_chain {
            None => None,
            Some(links) => Some(
                links
                    .iter()
                    .map(|l| {
                        Ok(ChainLink {
                            provider: Provider::parse(&l.provider)
                                .map_err(|e| DomainError::invalid("fallback_chain", e.message))?,
                            model: l.model.trim().to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, DomainError>>()?,
            ),
        };
        Ok(ChatbotDraft {
            name: self.name.as_deref(),
            instructions: self.instructions.as_deref(),
            provider: self.provider.as_deref(),
            model: self.model.as_deref(),
            temperature: self.temperature,
            fallback_reply: self.fallback_reply.as_deref(),
            knowledge_only: self.knowledge_only,
            max_tokens: self.max_tokens,
            fallback_chain,
        })
    }
}

/// Your chatbots, oldest first.
#[utoipa::path(get, path = "/api/v1/chatbots", tag = "chatbots", security(("bearer" = [])),
    responses((status = 200, body = [ChatbotView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<Vec<ChatbotView>>> {
    let bots = state.store.list_chatbots(&account).await?;
    Ok(Json(bots.into_iter().map(Into::into).collect()))
}

/// Create a chatbot.
#[utoipa::path(post, path = "/api/v1/chatbots", tag = "chatbots", security(("bearer" = [])),
    request_body = ChatbotInput,
    responses((status = 201, body = ChatbotView), (status = 403, description = "The plan's chatbot limit is reached (`plan_limit`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiJson(input): ApiJson<ChatbotInput>,
) -> ApiResult<(StatusCode, Json<ChatbotView>)> {
    let settings = input.draft()?.apply(&ChatbotSettings::defaults())?;
    mtdesk_billing::limits::check_new_chatbot(
        &state.store,
        &state.plans,
        &account,
        mtdesk_domain::now_ms(),
    )
    .await?;
    let bot = state.store.insert_chatbot(&account, &settings).await?;
    Ok((StatusCode::CREATED, Json(bot.into())))
}

/// One chatbot.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ChatbotView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<ChatbotView>> {
    let id = path_id(&id, ChatbotId::parse)?;
    Ok(Json(state.store.find_chatbot(&account, &id).await?.into()))
}

/// Change a chatbot's settings; fields not given keep their value.
#[utoipa::path(patch, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChatbotInput,
    responses((status = 200, body = ChatbotView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ChatbotInput>,
) -> ApiResult<Json<ChatbotView>> {
    let id = path_id(&id, ChatbotId::parse)?;
    let bot = state.store.find_chatbot(&account, &id).await?;
    let settings = input.draft()?.apply(&bot.settings)?;
    Ok(Json(
        state
            .store
            .update_chatbot(&account, &id, &settings)
            .await?
            .into(),
    ))
}

/// Delete a chatbot with its Q&A pairs, knowledge sources (files, chunks, vectors) and conversations.
#[utoipa::path(delete, path = "/api/v1/chatbots/{id}", tag = "chatbots", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, ChatbotId::parse)?;
    crate::knowledge::delete_chatbot(&state, &account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
