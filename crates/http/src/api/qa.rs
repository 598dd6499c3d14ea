//! `/api/v1/chatbots/{id}/qa`: Q&A pairs, one by one or imported from CSV.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::csv_import::parse_qa_csv;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_domain::{ChatbotId, QaPairId, QaPairInput, RowError};
use mtdesk_storage::QaPair;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chatbots/{id}/qa", get(list).post(create))
        .route("/chatbots/{id}/qa/import", post(import))
        .route(
            "/chatbots/{id}/qa/{qa_id}",
            get(get_one).patch(update).delete(delete),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QaView {
    pub id: String,
    pub chatbot_id: String,
    pub question: String,
    pub answer: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<QaPair> for QaView {
    fn from(q: QaPair) -> Self {
        Self {
            id: q.id.to_string(),
            chatbot_id: q.chatbot_id.to_string(),
            question: q.question,
            answer: q.answer,
            created_at: q.created_at,
            updated_at: q.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QaCreate {
    /// Up to 1,000 characters.
    pub question: String,
    /// Up to 10,000 characters.
    pub answer: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QaPatch {
    pub question: Option<String>,
    pub answer: Option<String>,
}

fn ids(bot: &str, qa: &str) -> Result<(ChatbotId, QaPairId), ApiError> {
    Ok((
        path_id(bot, ChatbotId::parse)?,
        path_id(qa, QaPairId::parse)?,
    ))
}

/// The chatbot's Q&A pairs, oldest first.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/qa", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [QaView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<QaView>>> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let pairs = state.store.list_qa_pairs(&account, &bot).await?;
    Ok(Json(pairs.into_iter().map(Into::into).collect()))
}

/// Add a Q&A pair.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/qa", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = QaCreate,
    responses((status = 201, body = QaView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<QaCreate>,
) -> ApiResult<(StatusCode, Json<QaView>)> {
    let bot = path_id(&id, ChatbotId::parse)?;
    let input = QaPairInput::parse(&req.question, &req.answer)?;
    let mut created = state
        .store
        .insert_qa_pairs(&account, &bot, &[input])
        .await?;
    let pair = created
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("insert returned no row")))?;
    Ok((StatusCode::CREATED, Json(pair.into())))
}

/// One Q&A pair.
#[utoipa::path(get, path = "/api/v1/chatbots/{id}/qa/{qa_id}", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path), ("qa_id" = String, Path)),
    responses((status = 200, body = QaView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, qa_id)): Path<(String, String)>,
) -> ApiResult<Json<QaView>> {
    let (bot, qa) = ids(&id, &qa_id)?;
    Ok(Json(
        state.store.find_qa_pair(&account, &bot, &qa).await?.into(),
    ))
}

/// Edit a Q&A pair.
#[utoipa::path(patch, path = "/api/v1/chatbots/{id}/qa/{qa_id}", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path), ("qa_id" = String, Path)), request_body = QaPatch,
    responses((status = 200, body = QaView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, qa_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<QaPatch>,
) -> ApiResult<Json<QaView>> {
    let (bot, qa) = ids(&id, &qa_id)?;
    let current = state.store.find_qa_pair(&account, &bot, &qa).await?;
    let input = QaPairInput::parse(
        req.question.as_deref().unwrap_or(&current.question),
        req.answer.as_deref().unwrap_or(&current.answer),
    )?;
    Ok(Json(
        state
            .store
            .update_qa_pair(&account, &bot, &qa, &input)
            .await?
            .into(),
    ))
}

/// Delete a Q&A pair.
#[utoipa::path(delete, path = "/api/v1/chatbots/{id}/qa/{qa_id}", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path), ("qa_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, qa_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (bot, qa) = ids(&id, &qa_id)?;
    state.store.delete_qa_pair(&account, &bot, &qa).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportParams {
    /// Import the valid rows even when some rows are invalid (default: import nothing if any row is bad).
    #[serde(default)]
    pub skip_invalid: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QaImportResult {
    /// Present when nothing was imported because of invalid rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub imported: usize,
    /// One entry per refused row, with its line number in the file.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<RowError>,
}

/// Import Q&A pairs from a CSV file (`question,answer` rows; a header row is optional). Send the file as
/// the body with `Content-Type: text/csv`. All rows are imported in one transaction; if any row is invalid
/// nothing is imported (422) unless `skip_invalid=true`.
#[utoipa::path(post, path = "/api/v1/chatbots/{id}/qa/import", tag = "qa", security(("bearer" = [])),
    params(("id" = String, Path), ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 201, body = QaImportResult),
        (status = 400, description = "not a CSV file", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "invalid rows; nothing imported", body = QaImportResult),
    ))]
pub async fn import(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    Query(params): Query<ImportParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let bot = path_id(&id, ChatbotId::parse)?;
    state.store.find_chatbot(&account, &bot).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(mime, "text/csv" | "application/csv" | "text/plain") {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: text/csv".into(),
        ));
    }
    let (pairs, errors) = parse_qa_csv(&body).map_err(ApiError::BadRequest)?;
    Ok(
        import_rows(&state, &account, &bot, pairs, errors, params.skip_invalid)
            .await?
            .into_response(),
    )
}

/// Shared with the dashboard's CSV upload.
pub async fn import_rows(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    bot: &ChatbotId,
    pairs: Vec<QaPairInput>,
    errors: Vec<RowError>,
    skip_invalid: bool,
) -> ApiResult<(StatusCode, Json<QaImportResult>)> {
    if !errors.is_empty() && !skip_invalid {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(QaImportResult {
                error: Some("validation_failed"),
                message: Some(format!(
                    "{} row(s) are invalid, so nothing was imported; fix them or pass skip_invalid=true",
                    errors.len()
                )),
                imported: 0,
                errors,
            }),
        ));
    }
    if pairs.is_empty() {
        return Err(ApiError::BadRequest(
            "the file has no question,answer rows".into(),
        ));
    }
    let created = state.store.insert_qa_pairs(account, bot, &pairs).await?;
    Ok((
        StatusCode::CREATED,
        Json(QaImportResult {
            error: None,
            message: None,
            imported: created.len(),
            errors,
        }),
    ))
}
