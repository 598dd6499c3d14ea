//! Deploy: connect Messenger and Instagram with Facebook Login (external-apis.md §5.1) or a pasted token,
//! WhatsApp with its ids and a system-user token; per channel its state (connected, needs reconnect, last
//! event, last reply, last error), the chatbot that answers it, pause and "Source:" switches, Disconnect.
//! Same service functions as `/api/v1/channels`.

use crate::web::{
    self, Chrome, CsrfForm, Errors, User, api_error, has_csrf, page, respond, see_other,
};
use askama::Template;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use mtdesk_channels::{ChannelError, ConnectRequest};
use mtdesk_domain::{ChannelId, ChannelKind, ChannelStatus, ChatbotId, now_ms};
use mtdesk_http::{ApiError, AppState, services};
use mtdesk_storage::{Channel, ChannelUpdate};
use serde::{Deserialize, Serialize};

/// How long a Facebook Login round trip may take (state) and the page list stays usable (hand-off).
const LOGIN_TTL_MS: i64 = 15 * 60 * 1000;

/// Scopes asked for at Facebook Login (§5.1 step 1).
const MESSENGER_SCOPES: &[&str] = &[
    "pages_show_list",
    "pages_messaging",
    "pages_manage_metadata",
    "pages_read_engagement",
];
const INSTAGRAM_SCOPES: &[&str] = &[
    "pages_show_list",
    "pages_messaging",
    "pages_manage_metadata",
    "pages_read_engagement",
    "instagram_basic",
    "instagram_manage_messages",
];

pub struct ChannelRow {
    id: String,
    kind: &'static str,
    name: String,
    ids: String,
    status: &'static str,
    needs_reconnect: bool,
    paused: bool,
    show_sources: bool,
    chatbot_id: String,
    chatbot_name: String,
    last_event: String,
    last_reply: String,
    last_error: Option<String>,
    last_error_at: String,
}

pub struct BotOption {
    id: String,
    name: String,
}

/// The paste-a-token form as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectForm {
    csrf: String,
    kind: String,
    chatbot_id: String,
    page_id: String,
    instagram_account_id: String,
    phone_number_id: String,
    waba_id: String,
    access_token: String,
}
has_csrf!(ConnectForm);

#[derive(Template)]
#[template(path = "deploy.html")]
pub struct DeployPage {
    chrome: Chrome,
    configured: bool,
    webhook_url: String,
    verify_token_set: bool,
    rows: Vec<ChannelRow>,
    bots: Vec<BotOption>,
    form: ConnectForm,
    errors: Errors,
    /// Unverified accounts see a banner with the resend button; connecting is refused server-side.
    email_verified: bool,
}
page!(DeployPage);

fn when(ms: Option<i64>) -> String {
    ms.map(web::date_time).unwrap_or_else(|| "never".into())
}

async fn deploy_page(
    state: &AppState,
    user: &User,
    chrome: Chrome,
    form: ConnectForm,
    errors: Errors,
) -> Result<DeployPage, ApiError> {
    let bots = state.store.list_chatbots(&user.account.id).await?;
    let channels = state.store.list_channels(&user.account.id).await?;
    let bot_name = |id: &ChatbotId| {
        bots.iter()
            .find(|b| &b.id == id)
            .map(|b| b.settings.name.clone())
            .unwrap_or_default()
    };
    let rows = channels
        .into_iter()
        .map(|c: Channel| ChannelRow {
            id: c.id.to_string(),
            kind: c.kind.label(),
            ids: match c.kind {
                ChannelKind::Messenger => format!("Page {}", c.external_id),
                ChannelKind::Instagram => format!(
                    "Instagram account {} via Page {}",
                    c.external_id,
                    c.page_id.clone().unwrap_or_default()
                ),
                ChannelKind::Whatsapp => format!(
                    "phone number id {} · WABA {}",
                    c.external_id,
                    c.waba_id.clone().unwrap_or_default()
                ),
            },
            name: c.name.clone(),
            status: match c.status {
                ChannelStatus::Connected if c.paused => "Connected · bot paused",
                ChannelStatus::Connected => "Connected",
                ChannelStatus::NeedsReconnect => "Needs reconnect",
            },
            needs_reconnect: c.status == ChannelStatus::NeedsReconnect,
            paused: c.paused,
            show_sources: c.show_sources,
            chatbot_name: bot_name(&c.chatbot_id),
            chatbot_id: c.chatbot_id.to_string(),
            last_event: when(c.last_event_at),
            last_reply: when(c.last_reply_at),
            last_error: c.last_error.clone(),
            last_error_at: when(c.last_error_at),
        })
        .collect();
    let mut form = form;
    if form.kind.is_empty() {
        form.kind = "messenger".into();
    }
    // A pasted token is never shown again, also not after a refused form.
    form.access_token.clear();
    Ok(DeployPage {
        chrome,
        configured: state.channels.configured(),
        webhook_url: format!("{}/webhooks/meta", state.config.public_url),
        verify_token_set: state.channels.meta().verify_token.is_some(),
        rows,
        bots: bots
            .into_iter()
            .map(|b| BotOption {
                id: b.id.to_string(),
                name: b.settings.name,
            })
            .collect(),
        form,
        errors,
        email_verified: user.account.email_verified(),
    })
}

/// The 403 page for an unverified account trying to connect (the buttons are disabled too).
fn refuse_unverified(user: &User) -> Option<Response> {
    services::require_verified(&user.account).err().map(|e| {
        web::error_page(
            e.status(),
            user.chrome("deploy"),
            "Verify your email address first",
            &e.user_message(),
        )
    })
}

const FLASHES: &[(&str, &str)] = &[
    (
        "connected",
        "Channel connected. Messages to it are answered by its chatbot from now on.",
    ),
    (
        "disconnected",
        "Channel disconnected. Its token, ids and every conversation received through it are deleted.",
    ),
    ("saved", "Channel settings saved."),
    (
        "denied",
        "Facebook Login was cancelled; nothing was connected.",
    ),
];

/// `GET /deploy`.
pub async fn page(State(state): State<AppState>, user: User, RawQuery(q): RawQuery) -> Response {
    let chrome = user
        .chrome("deploy")
        .with_flash(web::flash(q.as_deref(), FLASHES));
    match deploy_page(
        &state,
        &user,
        chrome,
        ConnectForm::default(),
        Errors::none(),
    )
    .await
    {
        Ok(p) => respond(StatusCode::OK, &p),
        Err(e) => api_error(user.chrome("deploy"), e),
    }
}

fn channel_error(e: ChannelError) -> ApiError {
    e.into()
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `POST /deploy/connect`: connect with a pasted token.
pub async fn connect(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<ConnectForm>,
) -> Response {
    if let Some(refused) = refuse_unverified(&user) {
        return refused;
    }
    let fields = [
        "kind",
        "chatbot_id",
        "page_id",
        "instagram_account_id",
        "phone_number_id",
        "waba_id",
        "access_token",
    ];
    let result = async {
        let kind = ChannelKind::parse(&form.kind).ok_or_else(|| {
            ApiError::Validation(mtdesk_domain::DomainError::invalid(
                "kind",
                "choose Messenger, Instagram or WhatsApp",
            ))
        })?;
        let chatbot_id = ChatbotId::parse(&form.chatbot_id).ok_or_else(|| {
            ApiError::Validation(mtdesk_domain::DomainError::invalid(
                "chatbot_id",
                "choose the chatbot that answers",
            ))
        })?;
        mtdesk_billing::limits::check_connect(
            &state.store,
            &state.plans,
            &user.account.id,
            kind.as_str(),
            opt(&form.page_id).as_deref(),
            opt(&form.phone_number_id).as_deref(),
            now_ms(),
        )
        .await?;
        state
            .channels
            .connect(
                &user.account.id,
                ConnectRequest {
                    kind,
                    chatbot_id,
                    page_id: opt(&form.page_id),
                    instagram_account_id: opt(&form.instagram_account_id),
                    phone_number_id: opt(&form.phone_number_id),
                    waba_id: opt(&form.waba_id),
                    access_token: form.access_token.clone(),
                    meta_user_id: None,
                },
            )
            .await
            .map_err(channel_error)
    }
    .await;
    match result {
        Ok(_) => see_other("/deploy?connected=1"),
        Err(e) => {
            let status = e.status();
            let errors = Errors::from_api(&e, &fields);
            match deploy_page(&state, &user, user.chrome("deploy"), form, errors).await {
                Ok(p) => respond(status, &p),
                Err(e) => api_error(user.chrome("deploy"), e),
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    chatbot_id: String,
    paused: String,
    show_sources: String,
}
has_csrf!(SettingsForm);

/// `POST /deploy/{id}/settings`: chatbot, pause, "Source:" line.
pub async fn settings(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Response {
    let Some(id) = ChannelId::parse(&id) else {
        return web::not_found(user.chrome("deploy"));
    };
    let u = ChannelUpdate {
        chatbot_id: ChatbotId::parse(&form.chatbot_id),
        paused: Some(web::checked(&form.paused)),
        show_sources: Some(web::checked(&form.show_sources)),
    };
    match state.channels.update(&user.account.id, &id, &u).await {
        Ok(_) => see_other("/deploy?saved=1"),
        Err(e) => api_error(user.chrome("deploy"), e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlainForm {
    csrf: String,
}
has_csrf!(PlainForm);

/// `POST /deploy/{id}/disconnect`.
pub async fn disconnect(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(_form): CsrfForm<PlainForm>,
) -> Response {
    let Some(id) = ChannelId::parse(&id) else {
        return web::not_found(user.chrome("deploy"));
    };
    match state
        .privacy
        .delete_channel(
            &user.account.id,
            &id,
            mtdesk_privacy::DeletionPath::Dashboard,
        )
        .await
    {
        Ok(_) => see_other("/deploy?disconnected=1"),
        Err(e) => api_error(user.chrome("deploy"), e.into()),
    }
}

// ---- Facebook Login (§5.1) -------------------------------------------------------------------------

/// What the `state` parameter carries through Facebook, sealed (AES-GCM: secret and tamper-proof).
#[derive(Debug, Serialize, Deserialize)]
struct LoginState {
    account: String,
    /// Binds the round trip to this browser's session (a state from another session is refused).
    session: String,
    kind: String,
    chatbot: String,
    expires: i64,
}

/// The user token between the callback and the page choice, sealed into the form.
#[derive(Debug, Serialize, Deserialize)]
struct Handoff {
    token: String,
    user_id: String,
    kind: String,
    chatbot: String,
    expires: i64,
}

const STATE_OWNER: &str = "facebook-login-state";

fn redirect_uri(state: &AppState) -> String {
    format!("{}/deploy/facebook/callback", state.config.public_url)
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    kind: Option<String>,
    chatbot_id: Option<String>,
}

/// `GET /deploy/facebook?kind=messenger|instagram&chatbot_id=…`: off to Facebook Login.
pub async fn facebook_start(
    State(state): State<AppState>,
    user: User,
    Query(q): Query<StartQuery>,
) -> Response {
    if let Some(refused) = refuse_unverified(&user) {
        return refused;
    }
    let graph = match state.channels.graph() {
        Ok(g) => g,
        Err(e) => return api_error(user.chrome("deploy"), e.into()),
    };
    let kind = match q.kind.as_deref().and_then(ChannelKind::parse) {
        Some(k @ (ChannelKind::Messenger | ChannelKind::Instagram)) => k,
        _ => {
            return web::error_page(
                StatusCode::BAD_REQUEST,
                user.chrome("deploy"),
                "Choose Messenger or Instagram",
                "Facebook Login connects Messenger and Instagram. WhatsApp is connected with its ids and a system-user token.",
            );
        }
    };
    let bot = match q.chatbot_id.as_deref().and_then(ChatbotId::parse) {
        Some(b) => b,
        None => {
            return web::error_page(
                StatusCode::BAD_REQUEST,
                user.chrome("deploy"),
                "Choose a chatbot",
                "Pick the chatbot that should answer before connecting.",
            );
        }
    };
    if let Err(e) = state.store.find_chatbot(&user.account.id, &bot).await {
        return api_error(user.chrome("deploy"), e.into());
    }
    let login = LoginState {
        account: user.account.id.to_string(),
        session: user.session_hash.clone(),
        kind: kind.as_str().into(),
        chatbot: bot.to_string(),
        expires: now_ms() + LOGIN_TTL_MS,
    };
    let sealed = state.channels.sealer().seal(
        &serde_json::to_string(&login).unwrap_or_default(),
        STATE_OWNER,
    );
    let scopes = if kind == ChannelKind::Instagram {
        INSTAGRAM_SCOPES
    } else {
        MESSENGER_SCOPES
    };
    let url = graph.oauth_dialog_url(
        &state.channels.meta().dialog_base,
        &redirect_uri(&state),
        &sealed,
        scopes,
    );
    Redirect::to(&url).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub struct PageChoice {
    id: String,
    name: String,
    instagram: Option<String>,
    can_message: bool,
}

#[derive(Template)]
#[template(path = "deploy_pick.html")]
pub struct PickPage {
    chrome: Chrome,
    kind: &'static str,
    instagram: bool,
    handoff: String,
    pages: Vec<PageChoice>,
}
page!(PickPage);

fn login_failed(user: &User, message: &str) -> Response {
    web::error_page(
        StatusCode::BAD_REQUEST,
        user.chrome("deploy"),
        "Facebook Login did not complete",
        message,
    )
}

/// `GET /deploy/facebook/callback`: code exchange, long-lived token, the user's Pages to pick from.
pub async fn facebook_callback(
    State(state): State<AppState>,
    user: User,
    Query(q): Query<CallbackQuery>,
) -> Response {
    if q.error.is_some() {
        return see_other("/deploy?denied=1");
    }
    let graph = match state.channels.graph() {
        Ok(g) => g,
        Err(e) => return api_error(user.chrome("deploy"), e.into()),
    };
    let login: Option<LoginState> = q
        .state
        .as_deref()
        .and_then(|s| state.channels.sealer().open(s, STATE_OWNER).ok())
        .and_then(|json| serde_json::from_str(&json).ok());
    let Some(login) = login.filter(|l| {
        l.account == user.account.id.as_str()
            && l.session == user.session_hash
            && l.expires > now_ms()
    }) else {
        return login_failed(
            &user,
            "The login link is invalid or expired, or was started in another session. Start again from the Deploy page.",
        );
    };
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return login_failed(&user, "Facebook sent no authorization code.");
    };
    let short = match graph.exchange_code(code, &redirect_uri(&state)).await {
        Ok(t) => t,
        Err(e) => return login_failed(&user, &format!("Facebook refused the login: {e}")),
    };
    let long = match graph.long_lived_user_token(&short.access_token).await {
        Ok(t) => t,
        Err(e) => return login_failed(&user, &format!("Facebook refused the token exchange: {e}")),
    };
    let me = match graph.me(&long.access_token).await {
        Ok(m) => m,
        Err(e) => return login_failed(&user, &format!("Facebook refused the profile lookup: {e}")),
    };
    let pages = match graph.list_pages(&long.access_token).await {
        Ok(p) => p,
        Err(e) => return login_failed(&user, &format!("Facebook refused the Page list: {e}")),
    };
    let instagram = login.kind == "instagram";
    let handoff = Handoff {
        token: long.access_token,
        user_id: me.id,
        kind: login.kind.clone(),
        chatbot: login.chatbot.clone(),
        expires: now_ms() + LOGIN_TTL_MS,
    };
    let sealed = state.channels.sealer().seal(
        &serde_json::to_string(&handoff).unwrap_or_default(),
        user.account.id.as_str(),
    );
    let page = PickPage {
        chrome: user.chrome("deploy"),
        kind: if instagram { "Instagram" } else { "Messenger" },
        instagram,
        handoff: sealed,
        pages: pages
            .into_iter()
            .map(|p| PageChoice {
                can_message: p.tasks.is_empty() || p.tasks.iter().any(|t| t == "MESSAGING"),
                id: p.id,
                name: p.name,
                instagram: p.instagram_business_account,
            })
            .collect(),
    };
    respond(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PickForm {
    csrf: String,
    handoff: String,
    page_id: String,
}
has_csrf!(PickForm);

/// `POST /deploy/facebook/pick`: connect the chosen Page (or its Instagram account).
pub async fn facebook_pick(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<PickForm>,
) -> Response {
    if let Some(refused) = refuse_unverified(&user) {
        return refused;
    }
    let graph = match state.channels.graph() {
        Ok(g) => g,
        Err(e) => return api_error(user.chrome("deploy"), e.into()),
    };
    let handoff: Option<Handoff> = state
        .channels
        .sealer()
        .open(&form.handoff, user.account.id.as_str())
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok());
    let Some(h) = handoff.filter(|h| h.expires > now_ms()) else {
        return login_failed(
            &user,
            "This choice expired. Start again from the Deploy page.",
        );
    };
    let pages = match graph.list_pages(&h.token).await {
        Ok(p) => p,
        Err(e) => return login_failed(&user, &format!("Facebook refused the Page list: {e}")),
    };
    let Some(page) = pages.into_iter().find(|p| p.id == form.page_id) else {
        return login_failed(&user, "That Page is not among the Pages you manage.");
    };
    let (Some(kind), Some(chatbot_id)) =
        (ChannelKind::parse(&h.kind), ChatbotId::parse(&h.chatbot))
    else {
        return login_failed(
            &user,
            "This choice is damaged. Start again from the Deploy page.",
        );
    };
    if let Err(e) = mtdesk_billing::limits::check_connect(
        &state.store,
        &state.plans,
        &user.account.id,
        kind.as_str(),
        Some(&page.id),
        None,
        now_ms(),
    )
    .await
    {
        return api_error(user.chrome("deploy"), e.into());
    }
    let result = state
        .channels
        .connect(
            &user.account.id,
            ConnectRequest {
                kind,
                chatbot_id,
                page_id: Some(page.id.clone()),
                instagram_account_id: page.instagram_business_account.clone(),
                phone_number_id: None,
                waba_id: None,
                access_token: page.access_token.clone(),
                meta_user_id: Some(h.user_id.clone()),
            },
        )
        .await;
    match result {
        Ok(_) => see_other("/deploy?connected=1"),
        Err(e) => api_error(user.chrome("deploy"), e.into()),
    }
}
