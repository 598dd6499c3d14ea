//! Inbox: every conversation of the account (filter by chatbot or channel, text search), a conversation's
//! transcript with delivery states and sources, take-over / hand-back and replying as the owner through the
//! channel. Live: `GET /inbox/events` is an SSE stream that says when something changed, and the page's
//! script swaps the list or transcript in place (without JavaScript the page still works on reload).

use crate::web::{
    self, Chrome, CsrfForm, Errors, User, api_error, has_csrf, page, respond, see_other,
};
use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use mtdesk_domain::{ChannelId, ChatbotId, ConversationId, ConversationMode, Window, now_ms};
use mtdesk_http::{ApiError, AppState};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

pub struct Row {
    id: String,
    who: String,
    channel: String,
    bot: String,
    last_message: String,
    when: String,
    human: bool,
}

pub struct Filter {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    chrome: Chrome,
    rows: Vec<Row>,
    bots: Vec<Filter>,
    channels: Vec<Filter>,
    q: String,
}
page!(InboxPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InboxQuery {
    chatbot_id: String,
    channel_id: String,
    q: String,
}

fn who(name: &Option<String>, id: &Option<String>, channel: &str) -> String {
    match (name, id) {
        (Some(n), _) => n.clone(),
        (None, Some(id)) => format!("{} user …{}", channel_label(channel), tail(id)),
        (None, None) => match channel {
            "test" => "Test chat".into(),
            "api" => "API".into(),
            other => other.to_string(),
        },
    }
}

fn tail(id: &str) -> &str {
    let n = id.len();
    id.get(n.saturating_sub(4)..).unwrap_or(id)
}

fn channel_label(c: &str) -> &str {
    match c {
        "messenger" => "Messenger",
        "instagram" => "Instagram",
        "whatsapp" => "WhatsApp",
        "test" => "Test chat",
        "api" => "API",
        other => other,
    }
}

/// `GET /inbox`.
pub async fn list(
    State(state): State<AppState>,
    user: User,
    Query(q): Query<InboxQuery>,
) -> Response {
    let account = &user.account.id;
    let result = async {
        let bots = state.store.list_chatbots(account).await?;
        let channels = state.store.list_channels(account).await?;
        let bot = ChatbotId::parse(&q.chatbot_id);
        let channel = ChannelId::parse(&q.channel_id);
        let rows = state
            .store
            .list_inbox(account, bot.as_ref(), channel.as_ref(), Some(&q.q), 200)
            .await?;
        let bot_name = |id: &ChatbotId| {
            bots.iter()
                .find(|b| &b.id == id)
                .map(|b| b.settings.name.clone())
                .unwrap_or_default()
        };
        Ok::<_, ApiError>(InboxPage {
            chrome: user.chrome("inbox"),
            rows: rows
                .into_iter()
                .map(|c| Row {
                    id: c.id.to_string(),
                    who: who(&c.contact_name, &c.contact_id, &c.channel),
                    channel: channel_label(&c.channel).to_string(),
                    bot: bot_name(&c.chatbot_id),
                    last_message: web::truncate(c.last_message.as_deref().unwrap_or(""), 140),
                    when: web::date_time(c.updated_at),
                    human: c.mode == ConversationMode::Human,
                })
                .collect(),
            bots: bots
                .iter()
                .map(|b| Filter {
                    selected: Some(&b.id) == bot.as_ref(),
                    value: b.id.to_string(),
                    label: b.settings.name.clone(),
                })
                .collect(),
            channels: channels
                .iter()
                .map(|c| Filter {
                    selected: Some(&c.id) == channel.as_ref(),
                    value: c.id.to_string(),
                    label: format!("{} · {}", c.kind.label(), c.name),
                })
                .collect(),
            q: q.q.clone(),
        })
    }
    .await;
    match result {
        Ok(p) => respond(StatusCode::OK, &p),
        Err(e) => api_error(user.chrome("inbox"), e),
    }
}

pub struct Line {
    role: String,
    who: String,
    content: String,
    when: String,
    delivery: Option<String>,
    note: Option<String>,
    attachments: Vec<String>,
    sources: Vec<String>,
}

#[derive(Template)]
#[template(path = "conversation.html")]
pub struct ConversationPage {
    chrome: Chrome,
    id: String,
    who: String,
    channel: String,
    on_channel: bool,
    human: bool,
    window: &'static str,
    can_reply: bool,
    lines: Vec<Line>,
    reply: String,
    errors: Errors,
}
page!(ConversationPage);

async fn conversation_page(
    state: &AppState,
    user: &User,
    id: &ConversationId,
    chrome: Chrome,
) -> Result<ConversationPage, ApiError> {
    let account = &user.account.id;
    let c = state.store.find_inbox_conversation(account, id).await?;
    let messages = state.store.transcript(account, id).await?;
    let kind = mtdesk_domain::ChannelKind::parse(&c.channel);
    let window = kind.map(|k| mtdesk_domain::channel::window(k, c.last_inbound_at, now_ms()));
    let contact = who(&c.contact_name, &c.contact_id, &c.channel);
    let list_strings = |v: &Option<serde_json::Value>, key: &str| -> Vec<String> {
        v.as_ref()
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        let kind = i["kind"].as_str().unwrap_or("");
                        let main = i[key].as_str().unwrap_or("");
                        let extra = i["url"].as_str().or(i["media_id"].as_str()).unwrap_or("");
                        if key == "title" {
                            main.to_string()
                        } else {
                            format!("{kind} {extra}").trim().to_string()
                        }
                    })
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ConversationPage {
        chrome,
        id: c.id.to_string(),
        who: contact.clone(),
        channel: channel_label(&c.channel).to_string(),
        on_channel: c.channel_id.is_some(),
        human: c.mode == ConversationMode::Human,
        window: match window {
            Some(Window::Open) => "open",
            Some(Window::HumanAgentOnly) => "human",
            Some(Window::Closed) => "closed",
            None => "",
        },
        can_reply: c.channel_id.is_some() && window.is_some_and(|w| w != Window::Closed),
        lines: messages
            .into_iter()
            .map(|m| Line {
                who: match m.role.as_str() {
                    "user" => contact.clone(),
                    "owner" => "You".into(),
                    _ => "Bot".into(),
                },
                attachments: list_strings(&m.attachments, "caption"),
                sources: list_strings(&m.sources, "title"),
                role: m.role,
                content: m.content,
                when: web::date_time(m.created_at),
                delivery: m.delivery,
                note: m.note,
            })
            .collect(),
        reply: String::new(),
        errors: Errors::none(),
    })
}

/// `GET /inbox/{id}`.
pub async fn conversation(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(id) = ConversationId::parse(&id) else {
        return web::not_found(user.chrome("inbox"));
    };
    let chrome = user.chrome("inbox").with_flash(web::flash(
        q.as_deref(),
        &[
            ("sent", "Reply sent."),
            (
                "taken",
                "You took this conversation over: the bot stays silent until you hand it back.",
            ),
            (
                "returned",
                "Handed back: the bot answers this conversation again.",
            ),
        ],
    ));
    match conversation_page(&state, &user, &id, chrome).await {
        Ok(p) => respond(StatusCode::OK, &p),
        Err(e) => api_error(user.chrome("inbox"), e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlainForm {
    csrf: String,
}
has_csrf!(PlainForm);

async fn set_mode(state: &AppState, user: &User, id: &str, mode: ConversationMode) -> Response {
    let Some(cid) = ConversationId::parse(id) else {
        return web::not_found(user.chrome("inbox"));
    };
    match state.channels.set_mode(&user.account.id, &cid, mode).await {
        Ok(()) => see_other(&format!(
            "/inbox/{cid}?{}=1",
            if mode == ConversationMode::Human {
                "taken"
            } else {
                "returned"
            }
        )),
        Err(e) => api_error(user.chrome("inbox"), e.into()),
    }
}

/// `POST /inbox/{id}/takeover`.
pub async fn take_over(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(_f): CsrfForm<PlainForm>,
) -> Response {
    set_mode(&state, &user, &id, ConversationMode::Human).await
}

/// `POST /inbox/{id}/handback`.
pub async fn hand_back(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(_f): CsrfForm<PlainForm>,
) -> Response {
    set_mode(&state, &user, &id, ConversationMode::Bot).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReplyForm {
    csrf: String,
    text: String,
}
has_csrf!(ReplyForm);

/// `POST /inbox/{id}/reply`: sends the owner's message through the channel.
pub async fn reply(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ReplyForm>,
) -> Response {
    let Some(cid) = ConversationId::parse(&id) else {
        return web::not_found(user.chrome("inbox"));
    };
    match state
        .channels
        .send_owner_reply(&user.account.id, &cid, &form.text)
        .await
    {
        Ok(_) => see_other(&format!("/inbox/{cid}?sent=1")),
        Err(e) => {
            let e: ApiError = e.into();
            let status = e.status();
            match conversation_page(&state, &user, &cid, user.chrome("inbox")).await {
                Ok(mut p) => {
                    p.errors = Errors::from_api(&e, &["text"]);
                    p.reply = form.text;
                    respond(status, &p)
                }
                Err(e) => api_error(user.chrome("inbox"), e),
            }
        }
    }
}

/// `GET /inbox/events`: an SSE stream with a `changed` event whenever the account's conversations or
/// delivery states change (checked every second; works with several nodes on one database).
pub async fn events(State(state): State<AppState>, user: User) -> Response {
    let account = user.account.id.clone();
    let store = state.store.clone();
    let stream = futures_util::stream::unfold(
        (store, account, None::<String>),
        |(store, account, last)| async move {
            loop {
                let version = store.inbox_version(&account).await.ok();
                match (&last, &version) {
                    (None, Some(v)) => {
                        let ev = Event::default().event("ready").data(v.clone());
                        return Some((Ok::<_, Infallible>(ev), (store, account, version)));
                    }
                    (Some(prev), Some(v)) if prev != v => {
                        let ev = Event::default().event("changed").data(v.clone());
                        return Some((Ok(ev), (store, account, version)));
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
