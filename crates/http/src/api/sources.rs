//! `/api/v1/chatbots/{id}/sources`: knowledge sources — uploaded documents (multipart) and websites (JSON
//! `{"url"}`) — with their ingestion state, crawled pages, re-sync and deletion.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};

use crate::knowledge::{self, FileError};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_domain::{ChatbotId, CrawlLimits, SourceId, SyncSchedule};
use mtdesk_storage::{Source, SourcePage};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        // Uploads carry many megabytes: the global body limit is lifted here and the handler enforces
        // its own (per file while streaming, per request in total, and 64 KB for a JSON body).
        .route(
            "/chatbots/{id}/sources",
            get(list).post(create).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/chatbots/{id}/sources/{source_id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/chatbots/{id}/sources/{source_id}/sync", post(sync))
}

/// A knowledge source and where its ingestion is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub id: String,
    pub chatbot_id: String,
    /// `file` or `url`.
    pub kind: String,
    /// The file name or the URL.
    pub name: String,
    /// The document type detected from the content (files).
    pub doc_type: Option<String>,
    pub byte_size: i64,
    /// `queued`, `extracting`, `embedding`, `ready` or `failed`.
    pub status: String,
    /// Why it failed, in words the owner can act on.
    pub error: Option<String>,
    pub progress: Progress,
    pub chunk_count: i64,
    /// Website sources: the crawl limits.
    pub max_pages: Option<i64>,
    pub max_depth: Option<i64>,
    /// `manual`, `daily` or `weekly`.
    pub sync_schedule: String,
    pub next_sync_at: Option<i64>,
    pub last_synced_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
    /// 0–100.
    pub percent: u8,
}

impl From<Source> for SourceView {
    fn from(s: Source) -> Self {
        let percent = match s.status {
            mtdesk_domain::SourceStatus::Ready => 100,
            _ if s.progress_total > 0 => {
                ((s.progress_done.clamp(0, s.progress_total) * 100) / s.progress_total) as u8
            }
            _ => 0,
        };
        let is_url = s.kind == mtdesk_domain::SourceKind::Url;
        Self {
            id: s.id.to_string(),
            chatbot_id: s.chatbot_id.to_string(),
            kind: s.kind.as_str().into(),
            name: s.name,
            doc_type: s.doc_type,
            byte_size: s.byte_size,
            status: s.status.as_str().into(),
            error: s.error,
            progress: Progress {
                done: s.progress_done,
                total: s.progress_total,
                percent,
            },
            chunk_count: s.chunk_count,
            max_pages: is_url.then_some(s.max_pages),
            max_depth: is_url.then_some(s.max_depth),
            sync_schedule: s.sync_schedule.as_str().into(),
            next_sync_at: s.next_sync_at,
            last_synced_at: s.last_synced_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A website source to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlSourceCreate {
    /// http(s) URL of the first page. Pages of the same site are crawled breadth-first.
    pub url: String,
    /// 1–1000, default 50.
    pub max_pages: Option<i64>,
    /// 0–10 links from the first page, default 2.
    pub max_depth: Option<i64>,
    /// `manual` (default), `daily` or `weekly`.
    pub sync_schedule: Option<String>,
}

/// The result of an upload: the files accepted (queued) and those refused, each with its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    pub sources: Vec<SourceView>,
    pub errors: Vec<FileError>,
}

impl From<knowledge::Uploaded> for UploadResult {
    fn from(u: knowledge::Uploaded) -> Self {
        Self {
            sources: u.sources.into_iter().map(Into::into).collect(),
            errors: u.errors,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceDetail {
    #[serde(flatten)]
    pub source: SourceView,
    /// Website sources: every page the last crawl met (`ok`, `skipped`, `failed`) and why.
    pub pages: Vec<PageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageView {
    pub url: String,
    pub status: String,
    pub detail: Option<String>,
    pub title: Option<String>,
    pub fetched_at: i64,
}

impl From<SourcePage> for PageView {
    fn from(p: SourcePage) -> Self {
        Self {
            url: p.url,
            status: p.status,
            detail: p.detail,
            title: p.title,
            fetched_at: p.fetched_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// `manual`, `daily` or `weekly`.
    pub sync_schedule: String,
}

fn ids(bot: &str, source: &str) -> Result<(ChatbotId, SourceId), ApiError> {
    Ok((
        path_id(bot, ChatbotId::parse)?,
        path_id(source, SourceId::parse)?,
    ))
}

/// The chatbot's knowledge sources, oldest first.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/sources", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [SourceView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SourceView>>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let sources = state.store.list_sources(&account, &bot).await?;
    Ok(Json(sources.into_iter().map(Into::into).collect()))
}

/// Add sources. `multipart/form-data`: one or more files (PDF, DOCX, TXT, Markdown, HTML, CSV; the type is
/// detected from the content), answered with the accepted and the refused files. `application/json`
/// `{"url": …}`: a website, accepted at once and crawled in the background — failures (unreachable,
/// robots.txt, private address) show in its `status` and `error`. Both answer 202: ingestion runs later.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/sources", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content((UrlSourceCreate = "application/json"), (Vec<u8> = "multipart/form-data"))),
    responses((status = 202, description = "a website source (JSON) or the upload result (multipart)", body = UploadResult),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mp = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let result: UploadResult = knowledge::upload(&state, &account, &bot, mp).await?.into();
        if result.sources.is_empty() && result.errors.is_empty() {
            return Err(ApiError::Validation(mtdesk_domain::DomainError::invalid(
                "file",
                "no file in the upload: send one or more file fields",
            )));
        }
        let status = if result.sources.is_empty() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::ACCEPTED
        };
        return Ok((
            status,
            Json(serde_json::to_value(result).map_err(anyhow::Error::from)?),
        ));
    }
    if !ct.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send multipart/form-data with files, or application/json with {\"url\": …}".into(),
        ));
    }
    let raw = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("the JSON body is larger than 64 KB".into()))?;
    let body: UrlSourceCreate = serde_json::from_slice(&raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Schema(e.to_string()),
        _ => ApiError::BadRequest(format!("invalid JSON: {e}")),
    })?;
    let limits = CrawlLimits::parse(body.max_pages, body.max_depth)?;
    let schedule = SyncSchedule::parse(body.sync_schedule.as_deref().unwrap_or("manual"))?;
    let source = knowledge::add_url(&state, &account, &bot, &body.url, limits, schedule).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(SourceView::from(source)).map_err(anyhow::Error::from)?),
    ))
}

/// One source, with the pages of its last crawl.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/sources/{source_id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path), ("source_id" = String, Path)),
    responses((status = 200, body = SourceDetail), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, source_id)): Path<(String, String)>,
) -> ApiResult<Json<SourceDetail>> {
    let (bot, sid) = ids(&id, &source_id)?;
    let source = state.store.find_source(&account, &bot, &sid).await?;
    let pages = state.store.list_source_pages(&account, &sid).await?;
    Ok(Json(SourceDetail {
        source: source.into(),
        pages: pages.into_iter().map(Into::into).collect(),
    }))
}

/// Change a website source's re-sync schedule.
#[utoipa::path(patch, path = "/api/v1/chatbots/{id}/sources/{source_id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path), ("source_id" = String, Path)), request_body = SourcePatch,
    responses((status = 200, body = SourceView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, source_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SourcePatch>,
) -> ApiResult<Json<SourceView>> {
    let (bot, sid) = ids(&id, &source_id)?;
    let schedule = SyncSchedule::parse(&body.sync_schedule)?;
    let s = knowledge::set_schedule(&state, &account, &bot, &sid, schedule).await?;
    Ok(Json(s.into()))
}

/// Re-sync now: a website is crawled again (changed pages replaced, vanished ones removed, unchanged
/// chunks not re-embedded); a file is processed again. 409 while one is queued or running.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/sources/{source_id}/sync", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path), ("source_id" = String, Path)),
    responses((status = 202, body = SourceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn sync(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, source_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<SourceView>)> {
    let (bot, sid) = ids(&id, &source_id)?;
    state.store.find_source(&account, &bot, &sid).await?;
    knowledge::resync(&state, &account, &sid).await?;
    let s = state.store.find_source(&account, &bot, &sid).await?;
    Ok((StatusCode::ACCEPTED, Json(s.into())))
}

/// Delete a source: its original file, chunks, vectors and index entries.
#[utoipa::path(delete, path = "/api/v1/chatbots/{id}/sources/{source_id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path), ("source_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, source_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (bot, sid) = ids(&id, &source_id)?;
    knowledge::delete_source(&state, &account, &bot, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}
