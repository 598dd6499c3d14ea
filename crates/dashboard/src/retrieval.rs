//! The Retrieval test tab: ask a question and see what the chatbot's knowledge search finds — each hit
//! with its scores, the leg that found it and where it comes from — whether the bot would answer from it,
//! and which Q&A pairs match. Nothing is stored and no AI model is called.

use crate::chatbots::{BotHeader, load_bot};
use crate::web::{self, Chrome, CsrfForm, Errors, User, has_csrf, page, respond};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::DomainError;
use mtdesk_http::api::retrieval::knowledge_error;
use mtdesk_http::{ApiError, AppState};
use mtdesk_knowledge::fusion::{Leg, Mode};
use mtdesk_knowledge::{Hit, Retrieval};
use mtdesk_storage::Chatbot;
use serde::Deserialize;

/// Hits shown, as the API's default.
const TOP_K: usize = 10;
/// Q&A matches shown.
const QA_SHOWN: usize = 5;
/// At or above this score a Q&A pair answers directly (see the API's `QaMatchView`).
const QA_ANSWERS: f64 = 0.5;

/// A choice of the mode select.
pub struct ModeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn mode_options(current: &str) -> Vec<ModeOption> {
    [
        ("hybrid", "Hybrid (keywords + meaning)"),
        ("bm25", "Keywords only (BM25)"),
        ("vector", "Meaning only (vectors)"),
    ]
    .into_iter()
    .map(|(value, label)| ModeOption {
        value,
        label,
        selected: value == current,
    })
    .collect()
}

fn parse_mode(raw: &str) -> Result<Mode, DomainError> {
    match raw.trim() {
        "" | "hybrid" => Ok(Mode::Hybrid),
        "bm25" | "lexical" => Ok(Mode::Bm25),
        "vector" => Ok(Mode::Vector),
        _ => Err(DomainError::invalid(
            "mode",
            "must be hybrid, keywords only or meaning only",
        )),
    }
}

fn mode_label(m: Mode) -> &'static str {
    match m {
        Mode::Hybrid => "hybrid (keywords + meaning)",
        Mode::Bm25 => "keywords only (BM25)",
        Mode::Vector => "meaning only (vectors)",
    }
}

fn score(s: f32) -> String {
    format!("{s:.3}")
}

/// One hit as the page shows it.
pub struct HitRow {
    rank: usize,
    score: String,
    /// `lexical`, `vector` or `both`.
    leg: &'static str,
    leg_label: &'static str,
    lexical: Option<String>,
    vector: Option<String>,
    source_id: String,
    source_name: String,
    title: String,
    heading: String,
    url: Option<String>,
    page: Option<i64>,
    text: String,
}

impl HitRow {
    fn new(rank: usize, h: Hit) -> Self {
        let (leg, leg_label) = match h.leg {
            Leg::Lexical => ("lexical", "keywords"),
            Leg::Vector => ("vector", "meaning"),
            Leg::Both => ("both", "keywords and meaning"),
        };
        Self {
            rank,
            score: score(h.score),
            leg,
            leg_label,
            lexical: h.lexical_score.map(score),
            vector: h.vector_score.map(score),
            source_id: h.source_id.to_string(),
            source_name: h.source_name,
            title: h.title,
            heading: h.heading,
            url: h.url,
            page: h.page,
            text: h.text,
        }
    }
}

/// A Q&A pair that matches the question.
pub struct QaRow {
    question: String,
    answer: String,
    score: String,
    /// Scores this high answer directly, before any chunk.
    answers: bool,
}

/// What a search found.
pub struct Results {
    query: String,
    mode_used: &'static str,
    lexical_only_reason: Option<String>,
    confident: bool,
    chunks_indexed: usize,
    elapsed: String,
    hits: Vec<HitRow>,
    qa: Vec<QaRow>,
}

#[derive(Template)]
#[template(path = "chatbot_retrieval.html")]
pub struct RetrievalPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    query: String,
    modes: Vec<ModeOption>,
    errors: Errors,
    results: Option<Results>,
}
page!(RetrievalPage);

async fn retrieval_page(state: &AppState, user: &User, bot: &Chatbot) -> RetrievalPage {
    RetrievalPage {
        chrome: user.chrome("chatbots"),
        bot: BotHeader::load(state, bot).await,
        tab: "retrieval",
        query: String::new(),
        modes: mode_options("hybrid"),
        errors: Errors::none(),
        results: None,
    }
}

/// `GET /chatbots/{id}/retrieval-test`: the empty form.
pub async fn page(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    respond(StatusCode::OK, &retrieval_page(&state, &user, &bot).await)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchForm {
    csrf: String,
    query: String,
    mode: String,
}
has_csrf!(SearchForm);

/// `POST /chatbots/{id}/retrieval-test`: runs the search and shows the results under the form (nothing
/// changes, so no redirect: the page is the answer).
pub async fn search(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SearchForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let result = async {
        let query = mtdesk_domain::text::bounded("query", &form.query, 1, 4000, true)?;
        let mode = parse_mode(&form.mode)?;
        let found: Retrieval = state
            .knowledge
            .knowledge
            .retrieve(&bot.id, &query, Some(mode), TOP_K)
            .await
            .map_err(knowledge_error)?;
        let qa = state.answerer.qa_candidates(&bot, &query).await?;
        Ok::<_, ApiError>(Results {
            query,
            mode_used: mode_label(found.mode),
            lexical_only_reason: found.lexical_only_reason,
            confident: found.confident,
            chunks_indexed: found.chunks_indexed,
            elapsed: format!("{:.1}", found.elapsed_ms),
            hits: found
                .hits
                .into_iter()
                .enumerate()
                .map(|(i, h)| HitRow::new(i + 1, h))
                .collect(),
            qa: qa
                .into_iter()
                .filter(|c| c.score > 0.0)
                .take(QA_SHOWN)
                .map(|c| QaRow {
                    question: c.pair.question,
                    answer: c.pair.answer,
                    score: format!("{:.2}", c.score),
                    answers: c.score >= QA_ANSWERS,
                })
                .collect(),
        })
    }
    .await;
    let mut page = retrieval_page(&state, &user, &bot).await;
    page.modes = mode_options(form.mode.trim());
    page.query = form.query;
    match result {
        Ok(results) => {
            page.results = Some(results);
            respond(StatusCode::OK, &page)
        }
        Err(ApiError::NotFound) => web::not_found(user.chrome("chatbots")),
        Err(e) => {
            page.errors = Errors::from_api(&e, &["query", "mode"]);
            respond(e.status(), &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_mode("").ok(), Some(Mode::Hybrid));
        assert_eq!(parse_mode("bm25").ok(), Some(Mode::Bm25));
        assert_eq!(parse_mode(" vector ").ok(), Some(Mode::Vector));
        assert_eq!(parse_mode("semantic").map_err(|e| e.field), Err("mode"));
        let selected: Vec<&str> = mode_options("bm25")
            .iter()
            .filter(|o| o.selected)
            .map(|o| o.value)
            .collect();
        assert_eq!(selected, ["bm25"]);
    }
}
