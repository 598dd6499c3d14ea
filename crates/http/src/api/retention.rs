//! `/api/v1/account/retention`: how long messages are kept (12 months at most, shorter if you choose) and
//! what the next purge will remove.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_domain::{DomainError, now_ms};
use mtdesk_storage::RetentionPreview;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/account/retention", get(get_retention).put(put_retention))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionUpdate {
    /// 1–365. Messages and answer records older than this are purged (daily).
    pub retention_days: i64,
}

/// Parses a retention period: 1 to 365 days.
pub fn parse_days(days: i64) -> Result<i64, ApiError> {
    if (1..=mtdesk_storage::privacy::DEFAULT_RETENTION_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::Validation(DomainError::invalid(
            "retention_days",
            "must be between 1 and 365 days (messages are never kept longer than 12 months)",
        )))
    }
}

/// The retention period and what it will purge next.
#[utoipa::path(get, path = "/api/v1/account/retention", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody)))]
pub async fn get_retention(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<RetentionPreview>> {
    Ok(Json(
        state.store.retention_preview(&account, now_ms()).await?,
    ))
}

/// Shorten (or restore up to 12 months) how long messages are kept.
#[utoipa::path(put, path = "/api/v1/account/retention", tag = "account", security(("bearer" = [])),
    request_body = RetentionUpdate,
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
pub async fn put_retention(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiJson(body): ApiJson<RetentionUpdate>,
) -> ApiResult<Json<RetentionPreview>> {
    let days = parse_days(body.retention_days)?;
    state.store.set_retention_days(&account, days).await?;
    Ok(Json(
        state.store.retention_preview(&account, now_ms()).await?,
    ))
}
