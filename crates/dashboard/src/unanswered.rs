//! The Unanswered tab: questions the chatbot gave its fallback reply to (or answered on a weak match),
//! each with a form that turns it into a Q&A pair. Same functions as `/api/v1/chatbots/{id}/unanswered`.

use crate::chat::{AttemptJson, Tried};
use crate::chatbots::{BotHeader, load_bot};
use crate::web::{
    self, Chrome, CsrfForm, Errors, User, api_error, has_csrf, not_found, page, respond, see_other,
};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::AnswerId;
use mtdesk_http::api::unanswered::{UnansweredView, resolve_with_pair, unanswered};
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::Chatbot;
use serde::Deserialize;

pub struct Row {
    answer_id: String,
    question: String,
    when: String,
    /// Best knowledge match, e.g. "0.31"; `None` when nothing matched at all.
    score: Option<String>,
    fallbacks: Vec<Tried>,
    /// The resolve form as typed, when it was refused.
    form_question: String,
    form_answer: String,
    errors: Errors,
}

impl From<UnansweredView> for Row {
    fn from(u: UnansweredView) -> Self {
        let fallbacks = Vec::<AttemptJson>::deserialize(&u.fallbacks)
            .map(|list| list.into_iter().map(Tried::from).collect())
            .unwrap_or_default();
        Self {
            form_question: u.question.clone(),
            answer_id: u.answer_id,
            question: u.question,
            when: web::date_time(u.created_at),
            score: u.top_score.map(|s| format!("{s:.2}")),
            fallbacks,
            form_answer: String::new(),
            errors: Errors::none(),
        }
    }
}

#[derive(Template)]
#[template(path = "chatbot_unanswered.html")]
pub struct UnansweredPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    rows: Vec<Row>,
}
page!(UnansweredPage);

async fn unanswered_page(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    chrome: Chrome,
) -> Result<UnansweredPage, ApiError> {
    let rows: Vec<Row> = unanswered(state, &user.account.id, &bot.id)
        .await?
        .into_iter()
        .map(Row::from)
        .collect();
    let mut header = BotHeader::load(state, bot).await;
    header.unanswered = rows.len();
    Ok(UnansweredPage {
        chrome,
        bot: header,
        tab: "unanswered",
        rows,
    })
}

/// `GET /chatbots/{id}/unanswered`.
pub async fn tab(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let flash = web::flash(
        query.as_deref(),
        &[(
            "resolved",
            "Added as a Q&A pair. The chatbot answers this question from now on.",
        )],
    );
    let chrome = user.chrome("chatbots").with_flash(flash);
    match unanswered_page(&state, &user, &bot, chrome).await {
        Ok(page) => respond(StatusCode::OK, &page),
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResolveForm {
    csrf: String,
    question: String,
    answer: String,
}
has_csrf!(ResolveForm);

/// `POST /chatbots/{id}/unanswered/{answer_id}/resolve`: adds the Q&A pair and takes the question off
/// the list.
pub async fn resolve(
    State(state): State<AppState>,
    user: User,
    Path((id, answer_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ResolveForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some(answer_id) = AnswerId::parse(&answer_id) else {
        return not_found(user.chrome("chatbots"));
    };
    let mut page = match unanswered_page(&state, &user, &bot, user.chrome("chatbots")).await {
        Ok(p) => p,
        Err(e) => return api_error(user.chrome("chatbots"), e),
    };
    // Only a question waiting on this chatbot's list (not another chatbot's, not one already resolved).
    let Some(index) = page
        .rows
        .iter()
        .position(|r| r.answer_id == answer_id.as_str())
    else {
        return not_found(user.chrome("chatbots"));
    };
    let result = resolve_with_pair(
        &state,
        &user.account.id,
        &bot.id,
        &answer_id,
        Some(&form.question),
        &form.answer,
    )
    .await;
    match result {
        Ok(_) => see_other(&format!("/chatbots/{}/unanswered?resolved=1", bot.id)),
        Err(ApiError::NotFound) => not_found(user.chrome("chatbots")),
        Err(e) => {
            let status = e.status();
            if let Some(row) = page.rows.get_mut(index) {
                row.errors = Errors::from_api(&e, &["question", "answer"]);
                row.form_question = form.question;
                row.form_answer = form.answer;
            }
            respond(status, &page)
        }
    }
}
