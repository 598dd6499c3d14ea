//! `/api/v1/channels[/{id}]`: connect Messenger, Instagram and WhatsApp with a pasted token (checked at the
//! Graph API first), list them with their state, change which chatbot answers, pause, disconnect.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_channels::{ChannelError, ConnectRequest};
use mtdesk_domain::{ChannelId, ChannelKind, ChatbotId, DomainError};
use mtdesk_storage::{Channel, ChannelUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels", get(list).post(create))
        .route("/channels/{id}", get(get_one).patch(update).delete(delete))
}

impl From<mtdesk_privacy::PrivacyError> for ApiError {
    fn from(e: mtdesk_privacy::PrivacyError) -> Self {
        use mtdesk_privacy::PrivacyError;
        match e {
            PrivacyError::NotFound => ApiError::NotFound,
            PrivacyError::Channel(c) => c.into(),
            PrivacyError::Storage(s) => s.into(),
            PrivacyError::Invalid(d) => ApiError::Validation(d),
            PrivacyError::Refused(m) => ApiError::Busy(m),
            PrivacyError::Email(e) => ApiError::Internal(anyhow::Error::new(e)),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::NotConfigured => ApiError::Busy(e.to_string()),
            ChannelError::Invalid(d) => ApiError::Validation(d),
            ChannelError::NotFound => ApiError::NotFound,
            ChannelError::Conflict(m) => ApiError::Busy(m),
            ChannelError::Upstream(m) => ApiError::Upstream(m),
            ChannelError::Storage(e) => e.into(),
        }
    }
}

/// A connected channel. Tokens are never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    /// `messenger`, `instagram` or `whatsapp`.
    pub kind: String,
    /// The chatbot that answers it.
    pub chatbot_id: String,
    /// Page name, `@username` or the display phone number.
    pub name: String,
    /// Messenger: the Page id. Instagram: the linked Page whose token sends.
    pub page_id: Option<String>,
    /// Instagram: the professional account id.
    pub instagram_account_id: Option<String>,
    /// WhatsApp: the phone number id and the WhatsApp Business Account id.
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    /// `connected` or `needs_reconnect` (Meta refused the token: connect again).
    pub status: String,
    /// The bot does not answer while paused (messages are still recorded).
    pub paused: bool,
    /// Answers from documents end with a "Source:" line.
    pub show_sources: bool,
    pub last_event_at: Option<i64>,
    pub last_reply_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub created_at: i64,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        let (ig, phone) = match c.kind {
            ChannelKind::Instagram => (Some(c.external_id.clone()), None),
            ChannelKind::Whatsapp => (None, Some(c.external_id.clone())),
            ChannelKind::Messenger => (None, None),
        };
        Self {
            id: c.id.to_string(),
            kind: c.kind.as_str().into(),
            chatbot_id: c.chatbot_id.to_string(),
            name: c.name,
            page_id: c.page_id,
            instagram_account_id: ig,
            phone_number_id: phone,
            waba_id: c.waba_id,
            status: c.status.as_str().into(),
            paused: c.paused,
            show_sources: c.show_sources,
            last_event_at: c.last_event_at,
            last_reply_at: c.last_reply_at,
            last_error: c.last_error,
            last_error_at: c.last_error_at,
            created_at: c.created_at,
        }
    }
}

/// Connect a channel with a token you paste. Messenger: `page_id` + a Page access token. Instagram:
/// `page_id` of the Facebook Page linked to the Instagram professional account (optionally
/// `instagram_account_id` to check it) + that Page's token. WhatsApp: `phone_number_id`, `waba_id` + a
/// system-user token. The token and ids are checked at the Graph API, and the app is subscribed to the
/// channel's webhooks, before anything is stored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelCreate {
    /// `messenger`, `instagram` or `whatsapp`.
    pub kind: String,
    pub chatbot_id: String,
    pub page_id: Option<String>,
    pub instagram_account_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub access_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// Move the channel (and its conversations) to another chatbot.
    pub chatbot_id: Option<String>,
    pub paused: Option<bool>,
    pub show_sources: Option<bool>,
}

/// Your connected channels.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = [ChannelView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let channels = state.store.list_channels(&account).await?;
    Ok(Json(channels.into_iter().map(Into::into).collect()))
}

/// Connect a channel (see `ChannelCreate`). Connecting the same Page / account / number again replaces its
/// token (reconnect). 422 for a bad id or token, 502 when Meta refuses, 409 when Meta channels are not
/// configured on the server or the channel belongs to another account.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])),
    request_body = ChannelCreate,
    responses((status = 201, body = ChannelView),
        (status = 403, description = "the account's email address is not verified yet, or the plan's channel limit is reached (`plan_limit`)", body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiJson(body): ApiJson<ChannelCreate>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    crate::services::require_verified(&state.store.find_account(&account).await?)?;
    let kind = ChannelKind::parse(body.kind.trim()).ok_or_else(|| {
        ApiError::Validation(DomainError::invalid(
            "kind",
            "kind must be messenger, instagram or whatsapp",
        ))
    })?;
    let chatbot_id = ChatbotId::parse(&body.chatbot_id).ok_or_else(|| {
        ApiError::Validation(DomainError::invalid("chatbot_id", "no such chatbot"))
    })?;
    mtdesk_billing::limits::check_connect(
        &state.store,
        &state.plans,
        &account,
        kind.as_str(),
        body.page_id.as_deref(),
        body.phone_number_id.as_deref(),
        mtdesk_domain::now_ms(),
    )
    .await?;
    let channel = state
        .channels
        .connect(
            &account,
            ConnectRequest {
                kind,
                chatbot_id,
                page_id: body.page_id,
                instagram_account_id: body.instagram_account_id,
                phone_number_id: body.phone_number_id,
                waba_id: body.waba_id,
                access_token: body.access_token,
                meta_user_id: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(channel.into())))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(state.store.find_channel(&account, &id).await?.into()))
}

/// Change which chatbot answers, pause or resume the bot, switch the "Source:" line.
#[utoipa::path(patch, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChannelPatch,
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChannelPatch>,
) -> ApiResult<Json<ChannelView>> {
    let id = path_id(&id, ChannelId::parse)?;
    let chatbot_id = match &body.chatbot_id {
        Some(raw) => Some(ChatbotId::parse(raw).ok_or_else(|| {
            ApiError::Validation(DomainError::invalid("chatbot_id", "no such chatbot"))
        })?),
        None => None,
    };
    let u = ChannelUpdate {
        chatbot_id,
        paused: body.paused,
        show_sources: body.show_sources,
    };
    Ok(Json(state.channels.update(&account, &id, &u).await?.into()))
}

/// Disconnect: deletes the channel's token, its Page / Instagram / WhatsApp ids and names, every
/// conversation received through it with its messages and the end users' platform ids, and unsubscribes the
/// app at Meta where the API allows. Other channels are untouched.
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, ChannelId::parse)?;
    state
        .privacy
        .delete_channel(&account, &id, mtdesk_privacy::DeletionPath::Api)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
