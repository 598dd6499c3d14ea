//! The Test chat tab: ask the chatbot as a customer would, and see where each answer came from.
//!
//! The conversation is the stored one: the form carries a hidden `conversation_id` (from the last answer),
//! the answerer loads the earlier turns from the database for the model, and the page shows them from the
//! database too, so what is displayed is exactly what the model saw.
//!
//! Without JavaScript the form posts to `/chatbots/{id}/chat` and the answer page is rendered at once. With
//! JavaScript, `static/app.js` posts the same form to `/chatbots/{id}/chat/stream`, shows the answer as it
//! is written, then loads `/chatbots/{id}/chat?conversation=…&answer=…`: the stored conversation with the
//! latest answer and its record (who answered, what failed first, the best match).

use crate::chatbots::{BotHeader, load_bot, provider_label_of};
use crate::web::{self, Chrome, CsrfForm, Errors, User, api_error, has_csrf, page, respond};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_ai::{AnswerSource, SourceRef};
use mtdesk_domain::{AnswerId, ConversationId};
use mtdesk_http::api::chat::{answer_error, parse_conversation, parse_message, stream_answer};
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::{AnswerRecord, Chatbot, Message};
use serde::Deserialize;

/// Earlier messages of the conversation shown above the latest answer (10 turns).
const HISTORY_MESSAGES: i64 = 20;

/// One earlier message of the stored conversation.
pub struct Msg {
    customer: bool,
    text: String,
}

/// A piece of knowledge with its match score, e.g. "0.82".
pub struct Src {
    title: String,
    score: String,
}

/// A provider that was tried before the one that answered, and why it did not answer.
pub struct Tried {
    pub provider: String,
    pub model: String,
    pub message: String,
}

/// A failed attempt as stored in answer records (`FailedAttempt` serialised).
#[derive(Debug, Deserialize)]
pub struct AttemptJson {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: String,
}

impl From<AttemptJson> for Tried {
    fn from(a: AttemptJson) -> Self {
        Self {
            provider: provider_label_of(&a.provider),
            model: a.model,
            message: a.message,
        }
    }
}

/// Failed attempts from their stored JSON; unreadable JSON shows none rather than failing the page.
pub fn tried_from_json(json: &str) -> Vec<Tried> {
    match axum::Json::<Vec<AttemptJson>>::from_bytes(json.as_bytes()) {
        Ok(axum::Json(list)) => list.into_iter().map(Tried::from).collect(),
        Err(_) => Vec::new(),
    }
}

fn score(s: f64) -> String {
    format!("{s:.2}")
}

/// The latest answer with how it was produced.
pub struct Reply {
    question: String,
    answer: String,
    /// `qa_pair`, `knowledge`, `model` or `fallback`.
    source: &'static str,
    /// The knowledge the answer was based on.
    sources: Vec<Src>,
    /// When nothing was used: the closest Q&A pair (its title may be unknown for a stored answer).
    closest: Option<Src>,
    /// The provider's label, or "the offline answerer".
    answered_by: String,
    offline: bool,
    model: String,
    fallbacks: Vec<Tried>,
    notice: Option<String>,
    truncated: bool,
    latency_ms: i64,
    tokens: Option<(i64, i64)>,
}

impl Reply {
    fn from_answer(question: String, a: mtdesk_ai::Answer) -> Self {
        let src = |s: SourceRef| Src {
            title: s.title,
            score: score(s.score),
        };
        let sources: Vec<Src> = a.sources.into_iter().map(src).collect();
        let closest = if sources.is_empty() {
            a.matched.map(src)
        } else {
            None
        };
        let offline = a.answered_by == "offline";
        Self {
            question,
            answer: a.text,
            source: match a.source {
                AnswerSource::QaPair => "qa_pair",
                AnswerSource::Knowledge => "knowledge",
                AnswerSource::Excerpt => "excerpt",
                AnswerSource::Model => "model",
                AnswerSource::Fallback => "fallback",
            },
            sources,
            closest,
            answered_by: answered_by(&a.answered_by),
            offline,
            model: a.model,
            fallbacks: a.fallbacks.into_iter().map(tried).collect(),
            notice: a.notice,
            truncated: a.truncated,
            latency_ms: i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
            tokens: (!offline)
                .then_some((i64::from(a.prompt_tokens), i64::from(a.completion_tokens))),
        }
    }

    /// A stored answer (after a streamed answer the page is loaded again): the record keeps who answered,
    /// what failed first and the best score, not the matched titles or the notice.
    fn from_record(r: AnswerRecord) -> Self {
        let offline = r.provider == "offline";
        let source = match (r.answered, r.from_knowledge, offline) {
            (false, _, _) => "fallback",
            (true, true, true) => "qa_pair",
            (true, true, false) => "knowledge",
            (true, false, _) => "model",
        };
        Self {
            question: r.question,
            answer: r.answer,
            source,
            sources: Vec::new(),
            closest: r.top_score.map(|s| Src {
                title: String::new(),
                score: score(s),
            }),
            answered_by: answered_by(&r.provider),
            offline,
            model: r.model,
            fallbacks: tried_from_json(&r.fallbacks),
            notice: None,
            truncated: false,
            latency_ms: r.latency_ms,
            tokens: (!offline).then_some((r.prompt_tokens, r.completion_tokens)),
        }
    }
}

fn answered_by(provider: &str) -> String {
    if provider == "offline" {
        "the offline answerer".into()
    } else {
        provider_label_of(provider)
    }
}

fn tried(f: mtdesk_ai::FailedAttempt) -> Tried {
    Tried {
        provider: provider_label_of(&f.provider),
        model: f.model,
        message: f.message,
    }
}

#[derive(Template)]
#[template(path = "chatbot_chat.html")]
pub struct ChatPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    /// Earlier messages of the stored conversation, oldest first (shown above the reply).
    history: Vec<Msg>,
    reply: Option<Reply>,
    /// Sent back with the next message to continue the conversation; empty starts a new one.
    conversation_id: String,
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
        bot: BotHeader::load(state, bot).await,
        tab: "chat",
        history: Vec::new(),
        reply: None,
        conversation_id: String::new(),
        message: String::new(),
        errors: Errors::none(),
        qa_count,
    })
}

/// The stored messages of `conversation`, without the latest exchange when it ends with `latest` (the
/// answer's text), which the page shows separately with its provenance.
async fn history(
    state: &AppState,
    user: &User,
    conversation: &ConversationId,
    latest: Option<&str>,
) -> Result<Vec<Msg>, ApiError> {
    let mut messages: Vec<Message> = state
        .store
        .recent_messages(&user.account.id, conversation, HISTORY_MESSAGES + 2)
        .await?;
    if let Some(answer) = latest
        && let [.., asked, answered] = messages.as_slice()
        && asked.role == "user"
        && answered.role == "assistant"
        && answered.content == answer
    {
        messages.truncate(messages.len() - 2);
    }
    let skip = messages
        .len()
        .saturating_sub(usize::try_from(HISTORY_MESSAGES).unwrap_or(usize::MAX));
    Ok(messages
        .into_iter()
        .skip(skip)
        .map(|m| Msg {
            customer: m.role == "user",
            text: m.content,
        })
        .collect())
}

/// `GET /chatbots/{id}/chat`: an empty conversation; `?conversation=…` shows a stored one and continues
/// it, `&answer=…` shows that answer (the latest) with how it was produced.
pub async fn page(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let mut page = match chat_page(&state, &user, &bot).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let Some(raw) = web::query_value(query.as_deref(), "conversation") else {
        return respond(StatusCode::OK, &page);
    };
    let Some(conversation) = ConversationId::parse(raw) else {
        return web::not_found(user.chrome("chatbots"));
    };
    let result = async {
        state
            .store
            .find_conversation(&user.account.id, &bot.id, &conversation)
            .await?;
        let record = match web::query_value(query.as_deref(), "answer").and_then(AnswerId::parse) {
            Some(answer) => match state.store.find_answer(&user.account.id, &answer).await {
                Ok(r) if r.conversation_id == conversation => Some(r),
                Ok(_) | Err(mtdesk_storage::StorageError::NotFound) => None,
                Err(e) => return Err(ApiError::from(e)),
            },
            None => None,
        };
        let latest = record.as_ref().map(|r| r.answer.as_str());
        let history = history(&state, &user, &conversation, latest).await?;
        Ok::<_, ApiError>((history, record))
    }
    .await;
    match result {
        Ok((history, record)) => {
            page.history = history;
            page.reply = record.map(Reply::from_record);
            page.conversation_id = conversation.to_string();
            respond(StatusCode::OK, &page)
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

/// The chat form: the message and the conversation it continues (empty for a new one).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatForm {
    csrf: String,
    message: String,
    conversation_id: String,
}
has_csrf!(ChatForm);

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
    let conversation = match parse_conversation(Some(&form.conversation_id)) {
        Ok(c) => c,
        Err(e) => return api_error(user.chrome("chatbots"), e),
    };
    let result = match parse_message(&form.message) {
        Ok(message) => state
            .answerer
            .answer(
                &bot,
                mtdesk_ai::AnswerRequest {
                    message: &message,
                    conversation: conversation.clone(),
                    channel: "test",
                    inbound: None,
                },
                None,
            )
            .await
            .map(|a| (message, a))
            .map_err(answer_error),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok((message, answer)) => {
            let conversation = answer.conversation_id.clone();
            let reply = Reply::from_answer(message, answer);
            let latest = Some(reply.answer.as_str());
            let history = match history(&state, &user, &conversation, latest).await {
                Ok(h) => h,
                Err(e) => return api_error(user.chrome("chatbots"), e),
            };
            page.history = history;
            page.conversation_id = conversation.to_string();
            page.reply = Some(reply);
            respond(StatusCode::OK, &page)
        }
        Err(e @ ApiError::Validation(_)) => {
            if let Some(c) = &conversation {
                page.history = match history(&state, &user, c, None).await {
                    Ok(h) => h,
                    Err(e) => return api_error(user.chrome("chatbots"), e),
                };
                page.conversation_id = c.to_string();
            }
            page.message = web::truncate(&form.message, parse_limit());
            page.errors = Errors::from_api(&e, &["message"]);
            respond(e.status(), &page)
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

/// `POST /chatbots/{id}/chat/stream`: the same form, answered as server-sent events (`delta`, `reset`,
/// `done` or `error`, see `mtdesk_http::api::chat::stream_answer`). Used by `app.js`; anything it cannot
/// use (a refused message, an expired form) is an ordinary error page, and the script then submits the
/// form normally so the user sees it.
pub async fn stream(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ChatForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let checked = async {
        let message = parse_message(&form.message)?;
        let conversation = parse_conversation(Some(&form.conversation_id))?;
        if let Some(c) = &conversation {
            state
                .store
                .find_conversation(&user.account.id, &bot.id, c)
                .await?;
        }
        Ok::<_, ApiError>((message, conversation))
    }
    .await;
    match checked {
        Ok((message, conversation)) => {
            let mut resp = stream_answer(state, bot, message, conversation, "test");
            web::no_store(&mut resp);
            resp
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
    fn stored_fallbacks_are_read_leniently() {
        let tried = tried_from_json(
            r#"[{"provider":"openrouter","model":"m","error":"bad_key","message":"The API key was refused by the provider."}]"#,
        );
        assert_eq!(tried.len(), 1);
        assert_eq!(tried[0].provider, "OpenRouter");
        assert_eq!(tried[0].message, "The API key was refused by the provider.");
        assert!(tried_from_json("not json").is_empty());
        assert!(tried_from_json("[]").is_empty());
    }
}
