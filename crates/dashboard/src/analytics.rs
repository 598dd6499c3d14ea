//! The Analytics page (`GET /analytics`) and its CSV export (`GET /analytics.csv`): the same report as
//! `/api/v1/analytics`, as charts a business owner reads at a glance (server-rendered SVG, see
//! [`crate::charts`]) with the numbers in tables underneath. Filters are a GET form (period, chatbot,
//! channel), so a filtered view is a link one can bookmark.

use crate::charts::{self, Chart, Series, YAxis};
use crate::web::{self, Chrome, User, api_error, page, respond};
use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::analytics::{self as numbers, LATENCY_BOUNDS_MS, LatencyBound, Summary};
use mtdesk_http::api::analytics::{Analytics, AnalyticsParams, csv_response, load, provider_label};
use mtdesk_http::{ApiError, AppState};

pub struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// One headline number.
pub struct Tile {
    id: &'static str,
    label: &'static str,
    value: String,
    note: String,
}

/// A line of the per-day, per-channel or per-provider tables.
pub struct Line {
    label: String,
    conversations: String,
    messages_in: String,
    answers: String,
    answer_rate: String,
    knowledge_rate: String,
    p50: String,
    p95: String,
    tokens: String,
    cost: String,
}

impl Line {
    fn of(label: String, s: &Summary) -> Self {
        Self {
            label,
            conversations: web::thousands(&s.counts.conversations),
            messages_in: web::thousands(&s.counts.messages_in),
            answers: web::thousands(&s.answers()),
            answer_rate: percent(s.answer_rate()),
            knowledge_rate: percent(s.knowledge_rate()),
            p50: latency(s.p50()),
            p95: latency(s.p95()),
            tokens: web::thousands(&(s.counts.prompt_tokens + s.counts.completion_tokens)),
            cost: cost(s),
        }
    }
}

pub struct Question {
    text: String,
    count: String,
    last: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
pub struct AnalyticsPage {
    chrome: Chrome,
    periods: Vec<Choice>,
    bots: Vec<Choice>,
    channels: Vec<Choice>,
    /// The period in words, e.g. "4 Sep – 2 Dec 2026 (30 days, UTC)".
    period: String,
    /// The filters as a query string, for the CSV link.
    query: String,
    tiles: Vec<Tile>,
    has_traffic: bool,
    volume_chart: String,
    answers_chart: String,
    latency_chart: String,
    days: Vec<Line>,
    channel_lines: Vec<Line>,
    provider_lines: Vec<Line>,
    questions: Vec<Question>,
}
page!(AnalyticsPage);

fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn latency(b: Option<LatencyBound>) -> String {
    b.map(|b| b.label()).unwrap_or_else(|| "—".into())
}

fn cost(s: &Summary) -> String {
    let c = s.cost_usd;
    let priced = if c == 0.0 {
        "$0".to_string()
    } else if c < 0.01 {
        "< $0.01".to_string()
    } else {
        format!("${c:.2}")
    };
    if s.unpriced_tokens > 0 {
        format!("{priced} + unpriced")
    } else {
        priced
    }
}

/// The latency axis: one level per histogram bucket, "≤ 50 ms" … "> 12.8 s".
fn latency_levels() -> Vec<String> {
    LATENCY_BOUNDS_MS
        .iter()
        .map(|ms| format!("≤ {}", numbers::format_ms(*ms)))
        .chain(std::iter::once(
            LatencyBound { le_ms: None }.label().to_string(),
        ))
        .collect()
}

/// The level index of a latency bound on [`latency_levels`].
fn level_of(b: LatencyBound) -> f64 {
    match b.le_ms {
        Some(ms) => LATENCY_BOUNDS_MS
            .iter()
            .position(|x| *x == ms)
            .unwrap_or(LATENCY_BOUNDS_MS.len()) as f64,
        None => LATENCY_BOUNDS_MS.len() as f64,
    }
}

fn query_string(a: &Analytics) -> String {
    let mut q = format!("days={}", a.days);
    if let Some(b) = &a.chatbot {
        q.push_str(&format!("&chatbot_id={b}"));
    }
    if let Some(c) = a.channel {
        q.push_str(&format!("&channel={c}"));
    }
    q
}

/// Builds the page from a loaded report.
fn build(chrome: Chrome, a: &Analytics, bots: Vec<Choice>) -> AnalyticsPage {
    let r = &a.report;
    let t = &r.totals;
    let x_labels: Vec<String> = r
        .days
        .iter()
        .map(|(d, _)| numbers::short_date(*d))
        .collect();
    let per_day = |f: &dyn Fn(&Summary) -> Option<f64>| -> Vec<Option<f64>> {
        r.days.iter().map(|(_, s)| f(s)).collect()
    };
    let share = |n: fn(&Summary) -> i64| {
        move |s: &Summary| (s.answers() > 0).then(|| 100.0 * n(s) as f64 / s.answers() as f64)
    };
    let volume = Chart {
        id: "chart-volume",
        title: "Messages per day".into(),
        desc: format!(
            "Bar chart of customer messages received and answers sent per day: {} received and {} answers in total.",
            t.counts.messages_in,
            t.answers()
        ),
        x_labels: x_labels.clone(),
        y_label: "Messages".into(),
        series: vec![
            Series {
                name: "Received".into(),
                class: "series-1",
                values: per_day(&|s| Some(s.counts.messages_in as f64)),
            },
            Series {
                name: "Answers sent".into(),
                class: "series-2",
                values: per_day(&|s| Some(s.answers() as f64)),
            },
        ],
    };
    let answers = Chart {
        id: "chart-answers",
        title: "How questions were answered".into(),
        desc: format!(
            "Stacked bars per day: share of answers from your knowledge, answered by the AI model without it, and fallback replies. Over the period: {} from knowledge, {} answered, {} fallback.",
            percent(t.knowledge_rate()),
            percent(t.answer_rate()),
            percent(t.fallback_rate())
        ),
        x_labels: x_labels.clone(),
        y_label: "Share of answers".into(),
        series: vec![
            Series {
                name: "From your knowledge".into(),
                class: "series-2",
                values: per_day(&share(|s| s.counts.from_knowledge)),
            },
            Series {
                name: "Answered by the AI model".into(),
                class: "series-1",
                values: per_day(&share(Summary::other_answered)),
            },
            Series {
                name: "Fallback reply".into(),
                class: "series-3",
                values: per_day(&share(|s| s.counts.fallbacks)),
            },
        ],
    };
    let latency_chart = Chart {
        id: "chart-latency",
        title: "Answer time per day".into(),
        desc: format!(
            "Line chart of the median and 95th percentile answer time per day, read from a histogram so each value is an upper bound. Over the period: median {}, 95th percentile {}.",
            latency(t.p50()),
            latency(t.p95())
        ),
        x_labels,
        y_label: "Answer time (at most)".into(),
        series: vec![
            Series {
                name: "Median".into(),
                class: "series-2",
                values: per_day(&|s| s.p50().map(level_of)),
            },
            Series {
                name: "95th percentile".into(),
                class: "series-3",
                values: per_day(&|s| s.p95().map(level_of)),
            },
        ],
    };
    let (from, to) = (
        numbers::civil_date(r.from_day),
        numbers::civil_date(r.to_day),
    );
    AnalyticsPage {
        chrome,
        periods: numbers::PERIODS
            .iter()
            .map(|d| Choice {
                value: d.to_string(),
                label: format!("Last {d} days"),
                selected: *d == a.days,
            })
            .collect(),
        bots,
        channels: numbers::CHANNELS
            .iter()
            .map(|(k, l)| Choice {
                value: k.to_string(),
                label: l.to_string(),
                selected: Some(*k) == a.channel,
            })
            .collect(),
        period: format!(
            "{} {} – {} {} ({} days, UTC)",
            numbers::short_date(r.from_day),
            from.0,
            numbers::short_date(r.to_day),
            to.0,
            a.days
        ),
        query: query_string(a),
        tiles: vec![
            Tile {
                id: "tile-conversations",
                label: "Conversations",
                value: web::thousands(&t.counts.conversations),
                note: format!(
                    "{} messages received",
                    web::thousands(&t.counts.messages_in)
                ),
            },
            Tile {
                id: "tile-answer-rate",
                label: "Answered",
                value: percent(t.answer_rate()),
                note: format!(
                    "{} from your knowledge · {} answers",
                    percent(t.knowledge_rate()),
                    web::thousands(&t.answers())
                ),
            },
            Tile {
                id: "tile-latency",
                label: "Median answer time",
                value: latency(t.p50()),
                note: format!("95% of answers {}", latency(t.p95())),
            },
            Tile {
                id: "tile-cost",
                label: "AI cost (estimate)",
                value: cost(t),
                note: format!(
                    "{} tokens",
                    web::thousands(&(t.counts.prompt_tokens + t.counts.completion_tokens))
                ),
            },
        ],
        has_traffic: t.counts.conversations + t.counts.messages_in + t.answers() > 0,
        volume_chart: charts::bars(&volume, &YAxis::Count, false),
        answers_chart: charts::bars(&answers, &YAxis::Percent, true),
        latency_chart: charts::lines(&latency_chart, &YAxis::Levels(latency_levels())),
        days: r
            .days
            .iter()
            .rev()
            .map(|(d, s)| Line::of(numbers::iso_date(*d), s))
            .collect(),
        channel_lines: r
            .channels
            .iter()
            .map(|(k, s)| Line::of(numbers::channel_label(k).to_string(), s))
            .collect(),
        provider_lines: r
            .providers
            .iter()
            .map(|(k, s)| Line::of(provider_label(k), s))
            .collect(),
        questions: a
            .top_unanswered
            .iter()
            .map(|q| Question {
                text: q.question.clone(),
                count: web::thousands(&q.count),
                last: web::date_time(q.last_asked_at),
            })
            .collect(),
    }
}

fn bad_query(user: &User, e: QueryRejection) -> Response {
    api_error(
        user.chrome("analytics"),
        ApiError::BadRequest(e.body_text()),
    )
}

/// `GET /analytics?days=7|30|90&chatbot_id=&channel=`.
pub async fn page(
    State(state): State<AppState>,
    user: User,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> Response {
    let params = match q {
        Ok(Query(p)) => p,
        Err(e) => return bad_query(&user, e),
    };
    let result = async {
        let a = load(&state, &user.account.id, &params).await?;
        let bots = state
            .store
            .list_chatbots(&user.account.id)
            .await?
            .into_iter()
            .map(|b| Choice {
                selected: a.chatbot.as_ref() == Some(&b.id),
                value: b.id.to_string(),
                label: b.settings.name,
            })
            .collect();
        Ok::<_, ApiError>(build(user.chrome("analytics"), &a, bots))
    }
    .await;
    match result {
        Ok(p) => respond(StatusCode::OK, &p),
        Err(e) => api_error(user.chrome("analytics"), e),
    }
}

/// `GET /analytics.csv?…`: the page's numbers per day as a CSV download.
pub async fn csv(
    State(state): State<AppState>,
    user: User,
    q: Result<Query<AnalyticsParams>, QueryRejection>,
) -> Response {
    let params = match q {
        Ok(Query(p)) => p,
        Err(e) => return bad_query(&user, e),
    };
    match load(&state, &user.account.id, &params)
        .await
        .and_then(|a| csv_response(&a))
    {
        Ok(resp) => resp,
        Err(e) => api_error(user.chrome("analytics"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_levels_cover_every_bucket() {
        let levels = latency_levels();
        assert_eq!(levels.len(), 10);
        assert_eq!(levels[0], "≤ 50 ms");
        assert_eq!(levels[5], "≤ 1.6 s");
        assert_eq!(levels[9], "> 12.8 s");
        assert_eq!(level_of(LatencyBound { le_ms: Some(400) }), 3.0);
        assert_eq!(level_of(LatencyBound { le_ms: None }), 9.0);
    }

    #[test]
    fn costs_read_as_estimates() {
        let mut s = Summary::default();
        assert_eq!(cost(&s), "$0");
        s.cost_usd = 0.004;
        assert_eq!(cost(&s), "< $0.01");
        s.cost_usd = 12.346;
        assert_eq!(cost(&s), "$12.35");
        s.unpriced_tokens = 5;
        assert_eq!(cost(&s), "$12.35 + unpriced");
        assert_eq!(percent(Some(0.875)), "88%");
        assert_eq!(percent(None), "—");
    }
}
