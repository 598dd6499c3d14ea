//! The Test chat tab: ask the chatbot as a customer would, and see where each answer came from.
//!
//! Without JavaScript there is no client state, so the last turns travel in hidden `h_q`/`h_a` inputs and
//! come back with the next message. They are only displayed (escaped), never sent to the answerer, and
//! are bounded in number and length, so a forged history can do no more than show text to its author.

use crate::chatbots::{BotHeader, load_bot};
use crate::web::{self, Chrome, CsrfForm, Errors, HasCsrf, User, api_error, page, respond};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_ai::AnswerSource;
use mtdesk_http::api::chat::parse_message;
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::Chatbot;
use serde::Deserialize;

/// Turns of conversation kept in the page.
const HISTORY_TURNS: usize = 10;
/// Characters kept of each carried question or answer.
const HISTORY_CHARS: usize = 2_000;

pub struct Turn {
    q: String,
    a: String,
}

/// The latest answer with how it was produced.
pub struct Reply {
    question: String,
    answer: String,
    /// The matched Q&A question and its score, e.g. "0.82"; `None` means the fallback reply.
    matched: Option<(String, String)>,
    answered_by: String,
    notice: Option<String>,
    latency_ms: u64,
}

#[derive(Template)]
#[template(path = "chatbot_chat.html")]
pub struct ChatPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    /// Earlier turns, oldest first (shown above the reply).
    history: Vec<Turn>,
    reply: Option<Reply>,
    /// Carried to the next request: `history` plus the reply, the last [`HISTORY_TURNS`].
    carry: Vec<Turn>,
    message: String,
    errors: Errors,
    qa_count: i64,
}
page!(ChatPage);

async fn chat_page(state: &AppState, user: &User, bot: &Chatbot) -> Result<ChatPage, Response> {
    let qa_count = state
        .store
        .count_qa_pairs(&user.account.id, &bot.id)
        .await
        .map_err(|e| api_error(user.chrome("chatbots"), e.into()))?;
    Ok(ChatPage {
        chrome: user.chrome("chatbots"),
        bot: BotHeader::new(bot),
        tab: "chat",
        history: Vec::new(),
        reply: None,
        carry: Vec::new(),
        message: String::new(),
        errors: Errors::none(),
        qa_count,
    })
}

/// `GET /chatbots/{id}/chat`: an empty conversation.
pub async fn page(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match chat_page(&state, &user, &bot).await {
        Ok(page) => respond(StatusCode::OK, &page),
        Err(resp) => resp,
    }
}

/// The chat form as ordered pairs: `csrf`, `message` and repeated `h_q`/`h_a`.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct ChatForm(Vec<(String, String)>);

impl ChatForm {
    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The carried turns, the last [`HISTORY_TURNS`], each cut to [`HISTORY_CHARS`].
    fn history(&self) -> Vec<Turn> {
        let turns: Vec<Turn> = self
            .all("h_q")
            .zip(self.all("h_a"))
            .map(|(q, a)| Turn {
                q: web::truncate(q, HISTORY_CHARS),
                a: web::truncate(a, HISTORY_CHARS),
            })
            .collect();
        let skip = turns.len().saturating_sub(HISTORY_TURNS);
        turns.into_iter().skip(skip).collect()
    }
}

impl HasCsrf for ChatForm {
    fn csrf(&self) -> &str {
        self.get("csrf")
    }
}

/// `POST /chatbots/{id}/chat`: answers the message with the same engine the API and channels use.
pub async fn send(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ChatForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let mut page = match chat_page(&state, &user, &bot).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let history = form.history();
    let raw = form.get("message");
    let result = match parse_message(raw) {
        Ok(message) => state
            .answerer
            .answer(
                &bot,
                mtdesk_ai::AnswerRequest {
                    message: &message,
                    conversation: None,
                    channel: "test",
                },
                None,
            )
            .await
            .map(|a| (message, a))
            .map_err(mtdesk_http::api::chat::answer_error),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok((message, answer)) => {
            let reply = Reply {
                question: message,
                matched: match answer.source {
                    AnswerSource::QaPair | AnswerSource::Knowledge => {
                        answer.matched.map(|m| (m.title, format!("{:.2}", m.score)))
                    }
                    AnswerSource::Model | AnswerSource::Fallback => None,
                },
                answer: answer.text,
                answered_by: answer.answered_by.to_string(),
                notice: answer.notice,
                latency_ms: answer.latency_ms,
            };
            let mut carry: Vec<Turn> = history
                .iter()
                .map(|t| Turn {
                    q: t.q.clone(),
                    a: t.a.clone(),
                })
                .collect();
            carry.push(Turn {
                q: web::truncate(&reply.question, HISTORY_CHARS),
                a: web::truncate(&reply.answer, HISTORY_CHARS),
            });
            let skip = carry.len().saturating_sub(HISTORY_TURNS);
            page.carry = carry.into_iter().skip(skip).collect();
            // Show at most the turns that are still carried, before the new one.
            let shown = history.len().min(HISTORY_TURNS - 1);
            let skip = history.len() - shown;
            page.history = history.into_iter().skip(skip).collect();
            page.reply = Some(reply);
            respond(StatusCode::OK, &page)
        }
        Err(e @ ApiError::Validation(_)) => {
            page.carry = history
                .iter()
                .map(|t| Turn {
                    q: t.q.clone(),
                    a: t.a.clone(),
                })
                .collect();
            page.history = history;
            page.message = web::truncate(raw, parse_limit());
            page.errors = Errors::from_api(&e, &["message"]);
            respond(e.status(), &page)
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

/// What we echo back of a refused message: enough to fix it, never unbounded.
fn parse_limit() -> usize {
    mtdesk_http::api::chat::MESSAGE_MAX + 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_turns_bounded() {
        let mut pairs = vec![("csrf".to_string(), "t".to_string())];
        for i in 0..15 {
            pairs.push(("h_q".into(), format!("q{i}")));
            pairs.push(("h_a".into(), "a".repeat(HISTORY_CHARS + 5)));
        }
        pairs.push(("message".into(), "hello".into()));
        let form = ChatForm(pairs);
        let h = form.history();
        assert_eq!(h.len(), HISTORY_TURNS);
        assert_eq!(h[0].q, "q5");
        assert_eq!(h[9].a.chars().count(), HISTORY_CHARS);
        assert_eq!(form.csrf(), "t");
        assert_eq!(form.get("message"), "hello");
    }
}
