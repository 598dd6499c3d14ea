//! `GET /api/v1/usage`: answers and tokens per provider and model in a month (for plan limits and bills).

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiResult, ErrorBody};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_domain::Month;
use mtdesk_storage::UsageRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new().route("/usage", get(usage))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageParams {
    /// `YYYY-MM` (UTC); the current month when omitted.
    pub month: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageLine {
    /// `offline` for the built-in answerer.
    pub provider: String,
    pub model: String,
    pub answers: i64,
    /// Of which the fallback reply was sent.
    pub unanswered: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub month: String,
    pub answers: i64,
    pub unanswered: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub by_model: Vec<UsageLine>,
}

/// The account's usage in one month.
pub async fn report(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    month: Month,
) -> ApiResult<UsageReport> {
    let (from, to) = month.range_ms();
    let rows: Vec<UsageRow> = state.store.usage(account, from, to).await?;
    Ok(UsageReport {
        month: month.to_string(),
        answers: rows.iter().map(|r| r.answers).sum(),
        unanswered: rows.iter().map(|r| r.unanswered).sum(),
        prompt_tokens: rows.iter().map(|r| r.prompt_tokens).sum(),
        completion_tokens: rows.iter().map(|r| r.completion_tokens).sum(),
        by_model: rows
            .into_iter()
            .map(|r| UsageLine {
                provider: r.provider,
                model: r.model,
                answers: r.answers,
                unanswered: r.unanswered,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
            })
            .collect(),
    })
}

/// Usage per provider and model in a month.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", security(("bearer" = [])), params(UsageParams),
    responses((status = 200, body = UsageReport), (status = 422, body = ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Query(params): Query<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let month = match params.month {
        Some(m) => Month::parse(&m)?,
        None => Month::of_ms(mtdesk_domain::now_ms()),
    };
    Ok(Json(report(&state, &account, month).await?))
}
