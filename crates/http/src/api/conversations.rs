//! `/api/v1/chatbots/{id}/conversations`: the inbox of a chatbot (every channel, text search), a
//! conversation's transcript, and take-over: the owner pauses the bot for one conversation, replies
//! through the channel, and hands it back.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_domain::{ChannelId, ChatbotId, ConversationId, ConversationMode, DomainError};
use mtdesk_storage::{InboxConversation, TranscriptMessage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chatbots/{id}/conversations", get(list))
        .route("/chatbots/{id}/conversations/{cid}", get(get_one))
        .route(
            "/chatbots/{id}/conversations/{cid}/takeover",
            post(take_over),
        )
        .route(
            "/chatbots/{id}/conversations/{cid}/handback",
            post(hand_back),
        )
        .route("/chatbots/{id}/conversations/{cid}/messages", post(reply))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub chatbot_id: String,
    /// The channel it came through (absent for test and API conversations).
    pub channel_id: Option<String>,
    /// `messenger`, `instagram`, `whatsapp`, `test` or `api`.
    pub channel: String,
    /// The end user's name when the platform gives it (WhatsApp profile name).
    pub contact_name: Option<String>,
    /// The end user's platform-scoped id (PSID, IGSID, WhatsApp id).
    pub contact_id: Option<String>,
    /// WhatsApp: the end user's number (digits).
    pub contact_phone: Option<String>,
    /// `bot`, or `human` while the owner has taken it over.
    pub mode: String,
    pub last_message: Option<String>,
    /// When the end user last wrote (the 24-hour reply window starts here).
    pub last_inbound_at: Option<i64>,
    pub updated_at: i64,
}

impl From<InboxConversation> for ConversationView {
    fn from(c: InboxConversation) -> Self {
        Self {
            id: c.id.to_string(),
            chatbot_id: c.chatbot_id.to_string(),
            channel_id: c.channel_id.map(|c| c.to_string()),
            channel: c.channel,
            contact_name: c.contact_name,
            contact_id: c.contact_id,
            contact_phone: c.contact_phone,
            mode: c.mode.as_str().into(),
            last_message: c.last_message,
            last_inbound_at: c.last_inbound_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `user` (the end user), `assistant` (the bot) or `owner` (you).
    pub role: String,
    pub content: String,
    /// Replies on channels: `pending`, `sent`, `delivered`, `read`, `failed` or `not_sent`.
    pub delivery: Option<String>,
    /// Why a reply was not sent or not delivered.
    pub note: Option<String>,
    /// Attachments of an inbound message: type, URL or media id, caption.
    #[schema(value_type = Option<Object>)]
    pub attachments: Option<serde_json::Value>,
    /// The knowledge an answer used.
    #[schema(value_type = Option<Object>)]
    pub sources: Option<serde_json::Value>,
    pub created_at: i64,
}

impl From<TranscriptMessage> for MessageView {
    fn from(m: TranscriptMessage) -> Self {
        Self {
            id: m.id,
            role: m.role,
            content: m.content,
            delivery: m.delivery,
            note: m.note,
            attachments: m.attachments,
            sources: m.sources,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptView {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InboxQuery {
    /// Only this channel's conversations.
    pub channel_id: Option<String>,
    /// Text to find in messages, the contact's name or id (case-insensitive).
    pub q: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerReply {
    /// Sent through the channel as you (not the bot). At most 4,000 characters.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentReply {
    pub message_id: String,
}

fn ids(bot: &str, conversation: &str) -> Result<(ChatbotId, ConversationId), ApiError> {
    Ok((
        path_id(bot, ChatbotId::parse)?,
        path_id(conversation, ConversationId::parse)?,
    ))
}

/// The conversation, checked to be this account's and this chatbot's.
async fn load(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    bot: &ChatbotId,
    id: &ConversationId,
) -> ApiResult<InboxConversation> {
    let c = state.store.find_inbox_conversation(account, id).await?;
    if &c.chatbot_id != bot {
        return Err(ApiError::NotFound);
    }
    Ok(c)
}

/// The chatbot's conversations, most recent first.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/conversations", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), InboxQuery),
    responses((status = 200, body = [ConversationView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Json<Vec<ConversationView>>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let channel = match &q.channel_id {
        Some(raw) => Some(ChannelId::parse(raw).ok_or_else(|| {
            ApiError::Validation(DomainError::invalid("channel_id", "no such channel"))
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Validation(DomainError::invalid(
            "limit",
            "limit must be between 1 and 200",
        )));
    }
    let rows = state
        .store
        .list_inbox(
            &account,
            Some(&bot),
            channel.as_ref(),
            q.q.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// A conversation with its whole transcript: inbound messages, replies with their delivery state and
/// the knowledge they used, your own replies.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/conversations/{cid}", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = TranscriptView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Json<TranscriptView>> {
    let (bot, cid) = ids(&id, &cid)?;
    let c = load(&state, &account, &bot, &cid).await?;
    let messages = state.store.transcript(&account, &cid).await?;
    Ok(Json(TranscriptView {
        conversation: c.into(),
        messages: messages.into_iter().map(Into::into).collect(),
    }))
}

/// Take the conversation over: the bot stops answering it until you hand it back.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/conversations/{cid}/takeover", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn take_over(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Json<ConversationView>> {
    set_mode(state, account, id, cid, ConversationMode::Human).await
}

/// Hand the conversation back to the bot.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/conversations/{cid}/handback", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn hand_back(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<Json<ConversationView>> {
    set_mode(state, account, id, cid, ConversationMode::Bot).await
}

async fn set_mode(
    state: AppState,
    account: mtdesk_domain::AccountId,
    id: String,
    cid: String,
    mode: ConversationMode,
) -> ApiResult<Json<ConversationView>> {
    let (bot, cid) = ids(&id, &cid)?;
    let c = load(&state, &account, &bot, &cid).await?;
    if c.channel_id.is_none() {
        return Err(ApiError::Busy(
            "only Messenger, Instagram and WhatsApp conversations can be taken over".into(),
        ));
    }
    state.channels.set_mode(&account, &cid, mode).await?;
    Ok(Json(load(&state, &account, &bot, &cid).await?.into()))
}

/// Reply as yourself through the conversation's channel (inside Meta's window: 24 hours, or 7 days on
/// Messenger and Instagram for a human agent). 409 outside it or when the channel needs reconnecting; 502
/// when Meta refuses.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/conversations/{cid}/messages", tag = "inbox", security(("bearer" = [])),
    params(("id" = String, Path), ("cid" = String, Path)), request_body = OwnerReply,
    responses((status = 201, body = SentReply), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn reply(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, cid)): Path<(String, String)>,
    ApiJson(body): ApiJson<OwnerReply>,
) -> ApiResult<(StatusCode, Json<SentReply>)> {
    let (bot, cid) = ids(&id, &cid)?;
    load(&state, &account, &bot, &cid).await?;
    let message_id = state
        .channels
        .send_owner_reply(&account, &cid, &body.text)
        .await?;
    Ok((StatusCode::CREATED, Json(SentReply { message_id })))
}
