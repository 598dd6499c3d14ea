//! `GET /api/v1/analytics` (JSON) and `GET /api/v1/analytics.csv`: conversations, messages, answer rate,
//! latency, tokens and estimated cost of the last 7, 30 or 90 days, per day, channel and provider, with the
//! most frequent unanswered questions. Shared with the dashboard's Analytics page.
//!
//! The numbers come from the anonymized daily aggregates (`daily_stats`), so they survive the retention
//! purge; only the unanswered questions are read from the answer records, and so cover only what the
//! retention keeps.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_domain::analytics::{self, LatencyBound, Report, Summary};
use mtdesk_domain::{AccountId, ChatbotId};
use mtdesk_storage::analytics::{StatsFilter, TopQuestion};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DAY_MS: i64 = 86_400_000;
/// How many unanswered questions the report lists.
pub const TOP_QUESTIONS: i64 = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics", get(json))
        .route("/analytics.csv", get(csv_export))
}

/// The filters, as typed (the dashboard's GET form sends the same names).
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(default)]
pub struct AnalyticsParams {
    /// 7, 30 or 90 (the last N days up to today, UTC); 30 when omitted.
    pub days: Option<String>,
    /// One of your chatbots; all when omitted or empty.
    pub chatbot_id: Option<String>,
    /// `messenger`, `instagram`, `whatsapp`, `api`, `test` or `unknown`; all when omitted or empty.
    pub channel: Option<String>,
}

/// A loaded report with the filters it was computed for.
#[derive(Debug, Clone)]
pub struct Analytics {
    pub days: i64,
    pub chatbot: Option<ChatbotId>,
    pub channel: Option<&'static str>,
    pub report: Report,
    pub top_unanswered: Vec<TopQuestion>,
}

/// Validates the filters (bad `days`/`channel` → 400; a chatbot that is not the account's → 404) and
/// computes the report from the daily aggregates.
pub async fn load(
    state: &AppState,
    account: &AccountId,
    params: &AnalyticsParams,
) -> ApiResult<Analytics> {
    let bad = |e: mtdesk_domain::DomainError| ApiError::BadRequest(e.to_string());
    let days = analytics::parse_days(params.days.as_deref()).map_err(bad)?;
    let channel = analytics::parse_channel(params.channel.as_deref()).map_err(bad)?;
    let chatbot = match params.chatbot_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let id = ChatbotId::parse(raw).ok_or(ApiError::NotFound)?;
            state.store.find_chatbot(account, &id).await?;
            Some(id)
        }
    };
    let filter = StatsFilter {
        account,
        chatbot: chatbot.as_ref(),
        channel,
    };
    let today = mtdesk_domain::now_ms().div_euclid(DAY_MS);
    let from = today - days + 1;
    let rows = state.store.stats_rows(&filter, from, today).await?;
    let top_unanswered = state
        .store
        .top_unanswered(
            &filter,
            from * DAY_MS,
            (today + 1) * DAY_MS,
            super::unanswered::WEAK_SCORE,
            TOP_QUESTIONS,
        )
        .await?;
    Ok(Analytics {
        days,
        chatbot,
        channel,
        report: Report::build(from, today, &rows),
        top_unanswered,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyView {
    /// Upper bound of the histogram bucket the percentile falls in ("at most this many ms"); null for the
    /// open last bucket (above 12,800 ms).
    pub le_ms: Option<i64>,
    /// E.g. "≤ 400 ms" or "> 12.8 s".
    pub label: String,
}

impl From<LatencyBound> for LatencyView {
    fn from(b: LatencyBound) -> Self {
        Self {
            le_ms: b.le_ms,
            label: b.label(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub conversations: i64,
    /// Customer messages received.
    pub messages_in: i64,
    /// Answers sent by the chatbot (answered + fallback replies).
    pub answers: i64,
    /// Answers that were not the fallback reply.
    pub answered: i64,
    /// Answers from your knowledge (Q&A pairs, documents, websites).
    pub from_knowledge: i64,
    /// Answers by a model without a knowledge match.
    pub other_answered: i64,
    /// Fallback replies ("I don't know").
    pub fallbacks: i64,
    /// answered / answers (0..1); null without answers.
    pub answer_rate: Option<f64>,
    /// from_knowledge / answers (0..1); null without answers.
    pub knowledge_rate: Option<f64>,
    /// Median answer latency, from the latency histogram (bucket upper bound).
    pub latency_p50: Option<LatencyView>,
    /// 95th percentile answer latency, from the latency histogram (bucket upper bound).
    pub latency_p95: Option<LatencyView>,
    /// Exact mean answer latency.
    pub latency_mean_ms: Option<i64>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Estimated cost in USD at list prices (an estimate, not a bill).
    pub cost_usd_estimate: f64,
    /// Tokens of providers without a known price (not included in the estimate).
    pub unpriced_tokens: i64,
}

impl From<&Summary> for SummaryView {
    fn from(s: &Summary) -> Self {
        Self {
            conversations: s.counts.conversations,
            messages_in: s.counts.messages_in,
            answers: s.answers(),
            answered: s.counts.answered,
            from_knowledge: s.counts.from_knowledge,
            other_answered: s.other_answered(),
            fallbacks: s.counts.fallbacks,
            answer_rate: s.answer_rate(),
            knowledge_rate: s.knowledge_rate(),
            latency_p50: s.p50().map(Into::into),
            latency_p95: s.p95().map(Into::into),
            latency_mean_ms: s.mean_latency_ms(),
            prompt_tokens: s.counts.prompt_tokens,
            completion_tokens: s.counts.completion_tokens,
            cost_usd_estimate: s.cost_usd,
            unpriced_tokens: s.unpriced_tokens,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub stats: SummaryView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Channel or provider key (`whatsapp`, `openrouter`).
    pub key: String,
    pub label: String,
    pub stats: SummaryView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopQuestionView {
    pub question: String,
    /// How often it was asked (same text) in the period without a good answer.
    pub count: i64,
    pub last_asked_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsView {
    pub days: i64,
    /// First day of the period, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// Last day of the period (today), `YYYY-MM-DD` (UTC).
    pub to: String,
    pub chatbot_id: Option<String>,
    pub channel: Option<String>,
    pub totals: SummaryView,
    /// One entry per day of the period, oldest first (days without traffic as zeros).
    pub daily: Vec<DayView>,
    /// Busiest first.
    pub channels: Vec<GroupView>,
    /// Busiest first; only answers have a provider.
    pub providers: Vec<GroupView>,
    /// Most frequent unresolved questions that got the fallback reply or a weak match, among the latest
    /// 20,000 answers of the period (read from the answer records still kept by your retention setting).
    pub top_unanswered: Vec<TopQuestionView>,
}

impl From<&Analytics> for AnalyticsView {
    fn from(a: &Analytics) -> Self {
        let r = &a.report;
        let group = |label: fn(&str) -> String| {
            move |(key, s): &(String, Summary)| GroupView {
                key: key.clone(),
                label: label(key),
                stats: s.into(),
            }
        };
        Self {
            days: a.days,
            from: analytics::iso_date(r.from_day),
            to: analytics::iso_date(r.to_day),
            chatbot_id: a.chatbot.as_ref().map(|b| b.to_string()),
            channel: a.channel.map(str::to_string),
            totals: (&r.totals).into(),
            daily: r
                .days
                .iter()
                .map(|(d, s)| DayView {
                    date: analytics::iso_date(*d),
                    stats: s.into(),
                })
                .collect(),
            channels: r
                .channels
                .iter()
                .map(group(|k| analytics::channel_label(k).to_string()))
                .collect(),
            providers: r.providers.iter().map(group(provider_label)).collect(),
            top_unanswered: a
                .top_unanswered
                .iter()
                .map(|t| TopQuestionView {
                    question: t.question.clone(),
                    count: t.count,
                    last_asked_at: t.last_asked_at,
                })
                .collect(),
        }
    }
}

/// "openrouter" → "OpenRouter".
pub fn provider_label(key: &str) -> String {
    mtdesk_domain::Provider::parse(key)
        .ok()
        .map(|p| p.label().to_string())
        .unwrap_or_else(|| key.to_string())
}

/// The CSV export: a header, then one line per day of the period (oldest first).
pub fn to_csv(a: &Analytics) -> ApiResult<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| ApiError::Internal(anyhow::Error::new(e));
    w.write_record([
        "date",
        "conversations",
        "messages_in",
        "answers",
        "answered",
        "from_knowledge",
        "other_answered",
        "fallbacks",
        "answer_rate",
        "latency_p50_ms_at_most",
        "latency_p95_ms_at_most",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd_estimate",
    ])
    .map_err(io)?;
    let bound = |b: Option<LatencyBound>| match b {
        None => String::new(),
        Some(LatencyBound { le_ms: Some(ms) }) => ms.to_string(),
        Some(LatencyBound { le_ms: None }) => {
            format!(">{}", analytics::LATENCY_BOUNDS_MS[8])
        }
    };
    for (day, s) in &a.report.days {
        w.write_record([
            analytics::iso_date(*day),
            s.counts.conversations.to_string(),
            s.counts.messages_in.to_string(),
            s.answers().to_string(),
            s.counts.answered.to_string(),
            s.counts.from_knowledge.to_string(),
            s.other_answered().to_string(),
            s.counts.fallbacks.to_string(),
            s.answer_rate()
                .map(|r| format!("{r:.4}"))
                .unwrap_or_default(),
            bound(s.p50()),
            bound(s.p95()),
            s.counts.prompt_tokens.to_string(),
            s.counts.completion_tokens.to_string(),
            format!("{:.6}", s.cost_usd),
        ])
        .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::Internal(e.into()))
}

/// The CSV as a download (`mtdesk-analytics-30d-2026-12-01.csv`), never cached.
pub fn csv_response(a: &Analytics) -> ApiResult<Response> {
    let body = to_csv(a)?;
    let name = format!(
        "attachment; filename=\"mtdesk-analytics-{}d-{}.csv\"",
        a.days,
        analytics::iso_date(a.report.to_day)
    );
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn params(q: Result<Query<AnalyticsParams>, QueryRejection>) -> ApiResult<AnalyticsParams> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Analytics of the last 7, 30 or 90 days from the daily aggregates.
#[utoipa::path(get, path = "/api/v1/analytics", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams),
    responses((status = 200, body = AnalyticsView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn json(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> ApiResult<Json<AnalyticsView>> {
    let a = load(&state, &account, &params(q)?).await?;
    Ok(Json((&a).into()))
}

/// The same analytics as CSV: one line per day (header: date, conversations, messages_in, answers,
/// answered, from_knowledge, other_answered, fallbacks, answer_rate, latency_p50_ms_at_most,
/// latency_p95_ms_at_most, prompt_tokens, completion_tokens, cost_usd_estimate).
#[utoipa::path(get, path = "/api/v1/analytics.csv", tag = "analytics", security(("bearer" = [])),
    params(AnalyticsParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn csv_export(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> ApiResult<Response> {
    let a = load(&state, &account, &params(q)?).await?;
    csv_response(&a)
}
