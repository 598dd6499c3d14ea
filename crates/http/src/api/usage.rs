//! `GET /api/v1/usage`: answers and tokens per provider and model in a month, and the account's plan with
//! its limits and meters (`mtdesk_billing::limits::usage_report`).

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

/// The plan that applies to the account now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanInfo {
    /// `free`, `starter`, `pro`, `unlimited` or the operator's own.
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    /// Billing is on (Stripe): the plan comes from the subscription. Off: every account is on the
    /// operator's default plan (`MTDESK_DEFAULT_PLAN`).
    pub billing_enabled: bool,
}

/// The plan's limits; `null` means unlimited.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanLimits {
    pub chatbots: Option<i64>,
    /// Answered messages per calendar month (UTC); fallback replies do not count.
    pub messages_per_month: Option<i64>,
    /// Knowledge storage: uploaded files and the text crawled from websites.
    pub storage_bytes: Option<i64>,
    pub channels: Option<i64>,
}

/// What the account uses now (messages: in the current month, UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanUsed {
    pub chatbots: i64,
    pub messages_this_month: i64,
    pub storage_bytes: i64,
    pub channels: i64,
}

/// One resource's usage against its limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterView {
    /// `messages`, `chatbots`, `channels` or `storage`.
    pub resource: String,
    pub used: i64,
    /// `null`: unlimited.
    pub limit: Option<i64>,
    /// Whole percent of the limit used, at most 100; `null` when unlimited.
    pub percent: Option<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub month: String,
    pub answers: i64,
    pub unanswered: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub by_model: Vec<UsageLine>,
    /// The plan that applies now (whatever `month` was asked for).
    pub plan: PlanInfo,
    pub limits: PlanLimits,
    pub used: PlanUsed,
    /// The same, one meter per limited resource, in display order.
    pub meters: Vec<MeterView>,
}

/// The account's usage in one month.
pub async fn report(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    month: Month,
) -> ApiResult<UsageReport> {
    let (from, to) = month.range_ms();
    let rows: Vec<UsageRow> = state.store.usage(account, from, to).await?;
    let limits = mtdesk_billing::limits::usage_report(
        &state.store,
        &state.plans,
        account,
        mtdesk_domain::now_ms(),
    )
    .await?;
    Ok(UsageReport {
        plan: PlanInfo {
            id: limits.plan.id.clone(),
            name: limits.plan.name.clone(),
            price_cents: limits.plan.price_cents,
            currency: limits.plan.currency.clone(),
            billing_enabled: limits.billing_enabled,
        },
        limits: PlanLimits {
            chatbots: limits.chatbots.limit,
            messages_per_month: limits.messages.limit,
            storage_bytes: limits.storage.limit,
            channels: limits.channels.limit,
        },
        used: PlanUsed {
            chatbots: limits.chatbots.used,
            messages_this_month: limits.messages.used,
            storage_bytes: limits.storage.used,
            channels: limits.channels.used,
        },
        meters: limits
            .meters()
            .into_iter()
            .map(|(resource, m)| MeterView {
                resource: serde_json::to_value(resource)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                used: m.used,
                limit: m.limit,
                percent: m.percent,
            })
            .collect(),
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

/// Usage per provider and model in a month, with the account's plan, its limits and the usage against
/// them (chatbots, answered messages this month, knowledge storage, channels).
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
