//! `/api/v1/account/export`: "Download my data". A request queues a background build of a ZIP with all the
//! account's data (format: the README inside the archive); when ready it can be downloaded for 24 hours,
//! by its owner (API token or dashboard session) or with the link token of the emailed link.

use crate::AppState;
use crate::auth::{self, ApiAccount};
use crate::error::{ApiError, ApiResult, ErrorBody};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mtdesk_domain::{AccountId, now_ms};
use mtdesk_privacy::export::{DownloadBy, ExportError, Exporter, link_path};
use mtdesk_storage::export::{Export, ExportStatus};
use serde::Serialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/export", post(request).get(list))
        .route("/account/export/{id}/download", get(download))
}

/// One export as the API shows it. Times are unix milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub id: String,
    /// `pending`, `running`, `ready` or `failed`.
    pub status: String,
    pub created_at: i64,
    /// When the archive was ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<i64>,
    /// Ready exports: when the link stops working and the archive is deleted (24 hours after ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Failed exports: why, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ready exports: a link that downloads the archive without signing in, valid until `expires_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

impl ExportView {
    pub fn new(state: &AppState, e: Export, now: i64) -> Self {
        let ready = e.status == ExportStatus::Ready;
        let download_url = Exporter::downloadable(&e, now).then(|| {
            format!(
                "{}{}",
                state.config.public_url,
                link_path(&e.id, &state.exporter.link_token(&e.id))
            )
        });
        Self {
            status: e.status.as_str().to_string(),
            created_at: e.created_at,
            ready_at: if ready { e.ready_at } else { None },
            expires_at: ready.then_some(e.expires_at),
            size_bytes: e.size_bytes,
            error: e.error,
            download_url,
            id: e.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportList {
    /// Newest first. Expired exports are deleted within minutes.
    pub exports: Vec<ExportView>,
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::NotFound => ApiError::NotFound,
            ExportError::InProgress | ExportError::NotReady | ExportError::Failed(_) => {
                ApiError::Busy(e.to_string())
            }
            ExportError::TooMany { retry_after_secs } => {
                ApiError::TooManyRequests(retry_after_secs)
            }
            ExportError::Storage(s) => s.into(),
            // `Expired` is answered as 410 by the download handler itself; anything else is a bug or an
            // outage.
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Request an export of all your data. It is built in the background; poll `GET /api/v1/account/export`
/// (or wait for the email) for its download link.
#[utoipa::path(post, path = "/api/v1/account/export", tag = "account", security(("bearer" = [])),
    responses(
        (status = 202, description = "queued", body = ExportView),
        (status = 401, body = ErrorBody),
        (status = 409, description = "an export is already being prepared", body = ErrorBody),
        (status = 429, description = "too many exports within 24 hours", body = ErrorBody),
    ))]
pub async fn request(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<(StatusCode, Json<ExportView>)> {
    let (export, _token) = state.exporter.request(&account).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ExportView::new(&state, export, now_ms())),
    ))
}

/// Your exports with their status and, when ready, their download link.
#[utoipa::path(get, path = "/api/v1/account/export", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = ExportList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<ExportList>> {
    let now = now_ms();
    let exports = state
        .exporter
        .list(&account)
        .await?
        .into_iter()
        .map(|e| ExportView::new(&state, e, now))
        .collect();
    Ok(Json(ExportList { exports }))
}

/// Download a ready archive (`application/zip`). Authenticate with your API token, your dashboard session,
/// or the `token` of the download link.
#[utoipa::path(get, path = "/api/v1/account/export/{id}/download", tag = "account",
    security(("bearer" = []), ()),
    params(
        ("id" = String, Path),
        ("token" = Option<String>, Query, description = "The link token (from `download_url` or the email)"),
    ),
    responses(
        (status = 200, description = "the ZIP archive", content_type = "application/zip"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "unknown export, another account's, or a wrong token", body = ErrorBody),
        (status = 409, description = "not ready yet, or failed", body = ErrorBody),
        (status = 410, description = "the link expired; the archive is deleted", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let token = query.as_deref().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_string())
    });
    let owner: Option<AccountId> = if token.is_some() {
        None
    } else {
        match owner_of(&state, request).await {
            Ok(a) => Some(a),
            Err(e) => return e.into_response(),
        }
    };
    let by = match (&owner, &token) {
        (Some(account), _) => DownloadBy::Owner(account),
        (None, Some(t)) => DownloadBy::LinkToken(t),
        (None, None) => return ApiError::Unauthorized.into_response(),
    };
    let download = match state.exporter.open_download(&id, by, now_ms()).await {
        Ok(d) => d,
        Err(ExportError::Expired) => return gone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let file = match tokio::fs::File::open(&download.path).await {
        Ok(f) => f,
        // Purged between the check and the open.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return gone(),
        Err(e) => return ApiError::Internal(e.into()).into_response(),
    };
    let length = file.metadata().await.map(|m| m.len()).ok();
    tracing::info!(export.id = %download.export.id, "data export downloaded");
    let mut resp = Body::from_stream(file_stream(file)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", download.file_name))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The signed-in owner: `Authorization: Bearer` when sent (a bad token is a 401), else the dashboard
/// session cookie (so the dashboard can link here without putting the token in the URL).
async fn owner_of(state: &AppState, request: Request) -> Result<AccountId, ApiError> {
    let (mut parts, _) = request.into_parts();
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return ApiAccount::from_request_parts(&mut parts, state)
            .await
            .map(|a| a.0);
    }
    auth::session_account(state, &parts.headers)
        .await
        .map(|(a, _)| a)
        .ok_or(ApiError::Unauthorized)
}

/// 410: the export existed, its 24 hours are over.
fn gone() -> Response {
    (
        StatusCode::GONE,
        Json(ErrorBody {
            error: "gone",
            message: ExportError::Expired.to_string(),
            field: None,
        }),
    )
        .into_response()
}

/// The file in 64 KiB chunks, without holding it in memory.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
