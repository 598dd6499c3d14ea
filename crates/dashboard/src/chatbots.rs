//! The chatbot list and each chatbot's Settings tab (create, update, delete, the provider's models).

use crate::web::{
    self, Chrome, CsrfForm, Errors, User, api_error, has_csrf, not_found, page, respond, see_other,
};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::{ChainLink, ChatbotDraft, ChatbotId, ChatbotSettings, DomainError, Provider};
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::Chatbot;
use serde::Deserialize;

/// The dashboard's name for a provider. Offline says plainly that no AI model is involved.
pub fn provider_label(p: Provider) -> &'static str {
    match p {
        Provider::Offline => "Offline — answers only from your Q&A pairs, no AI model",
        other => other.label(),
    }
}

/// The label of a provider by its API name (`offline`, `openrouter`, …), or the name itself.
pub fn provider_label_of(name: &str) -> String {
    Provider::parse(name)
        .map(|p| match p {
            Provider::Offline => "Offline answerer".to_string(),
            other => other.label().to_string(),
        })
        .unwrap_or_else(|_| name.to_string())
}

/// What every chatbot tab shows above its content.
pub struct BotHeader {
    pub id: String,
    pub name: String,
    pub provider: &'static str,
    /// Questions waiting on the Unanswered tab (shown as a badge).
    pub unanswered: usize,
}

impl BotHeader {
    /// The header with the Unanswered count (0 when it cannot be read: the badge is a hint only).
    pub async fn load(state: &AppState, bot: &Chatbot) -> Self {
        let unanswered =
            match mtdesk_http::api::unanswered::unanswered(state, &bot.account_id, &bot.id).await {
                Ok(list) => list.len(),
                Err(e) => {
                    web::log_if_internal(&e);
                    0
                }
            };
        Self {
            id: bot.id.to_string(),
            name: bot.settings.name.clone(),
            provider: provider_label(bot.settings.provider),
            unanswered,
        }
    }
}

/// The user's chatbot `raw_id`; `Err` is the 404 page for a malformed id or another account's id (the
/// store scopes by account, so both are simply "not found").
pub async fn load_bot(
    state: &AppState,
    user: &User,
    section: &'static str,
    raw_id: &str,
) -> Result<Chatbot, Response> {
    let Some(id) = ChatbotId::parse(raw_id) else {
        return Err(not_found(user.chrome(section)));
    };
    state
        .store
        .find_chatbot(&user.account.id, &id)
        .await
        .map_err(|e| api_error(user.chrome(section), e.into()))
}

pub struct BotRow {
    id: String,
    name: String,
    provider: &'static str,
    qa_count: i64,
    created: String,
}

#[derive(Template)]
#[template(path = "chatbots.html")]
pub struct ChatbotsPage {
    chrome: Chrome,
    bots: Vec<BotRow>,
    name: String,
    errors: Errors,
}
page!(ChatbotsPage);

async fn rows(state: &AppState, user: &User) -> Result<Vec<BotRow>, ApiError> {
    let bots = state.store.list_chatbots(&user.account.id).await?;
    let mut rows = Vec::with_capacity(bots.len());
    for bot in bots {
        let qa_count = state
            .store
            .count_qa_pairs(&user.account.id, &bot.id)
            .await?;
        rows.push(BotRow {
            id: bot.id.to_string(),
            name: bot.settings.name,
            provider: provider_label(bot.settings.provider),
            qa_count,
            created: web::date(bot.created_at),
        });
    }
    Ok(rows)
}

/// `GET /chatbots`.
pub async fn list(
    State(state): State<AppState>,
    user: User,
    RawQuery(query): RawQuery,
) -> Response {
    let flash = web::flash(query.as_deref(), &[("deleted", "The chatbot was deleted.")]);
    match rows(&state, &user).await {
        Ok(bots) => respond(
            StatusCode::OK,
            &ChatbotsPage {
                chrome: user.chrome("chatbots").with_flash(flash),
                bots,
                name: String::new(),
                errors: Errors::none(),
            },
        ),
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewChatbotForm {
    csrf: String,
    name: String,
}
has_csrf!(NewChatbotForm);

/// `POST /chatbots`: creates a chatbot with default settings and opens it.
pub async fn create(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<NewChatbotForm>,
) -> Response {
    let draft = ChatbotDraft {
        name: Some(&form.name),
        ..Default::default()
    };
    let result = match draft.apply(&ChatbotSettings::defaults()) {
        Ok(settings) => match mtdesk_billing::limits::check_new_chatbot(
            &state.store,
            &state.plans,
            &user.account.id,
            mtdesk_domain::now_ms(),
        )
        .await
        {
            Ok(()) => state
                .store
                .insert_chatbot(&user.account.id, &settings)
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(bot) => see_other(&format!("/chatbots/{}?created=1", bot.id)),
        Err(e) => {
            let bots = match rows(&state, &user).await {
                Ok(b) => b,
                Err(e) => return api_error(user.chrome("chatbots"), e),
            };
            respond(
                e.status(),
                &ChatbotsPage {
                    chrome: user.chrome("chatbots"),
                    bots,
                    name: form.name,
                    errors: Errors::from_api(&e, &["name"]),
                },
            )
        }
    }
}

pub struct ProviderOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// The settings form's values as text, so a refused form comes back exactly as typed.
pub struct SettingsValues {
    name: String,
    instructions: String,
    provider: String,
    model: String,
    temperature: String,
    fallback_reply: String,
    knowledge_only: bool,
    max_tokens: String,
    fallback_chain: String,
}

impl From<&ChatbotSettings> for SettingsValues {
    fn from(s: &ChatbotSettings) -> Self {
        Self {
            name: s.name.clone(),
            instructions: s.instructions.clone(),
            provider: s.provider.as_str().into(),
            model: s.model.clone(),
            temperature: s.temperature.to_string(),
            fallback_reply: s.fallback_reply.clone(),
            knowledge_only: s.knowledge_only,
            max_tokens: s.max_tokens.to_string(),
            fallback_chain: ChainLink::to_lines(&s.fallback_chain),
        }
    }
}

/// The provider's models for the model field's suggestions (`?models=1`), or why they could not be
/// listed.
#[derive(Default)]
pub struct ModelChoices {
    /// A listing was asked for.
    loaded: bool,
    models: Vec<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "chatbot_settings.html")]
pub struct SettingsPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    form: SettingsValues,
    providers: Vec<ProviderOption>,
    errors: Errors,
    delete_error: Option<String>,
    created: String,
    updated: String,
    models: ModelChoices,
    /// The saved provider, whose models "Load models" lists.
    saved_provider: &'static str,
}
page!(SettingsPage);

const SETTINGS_FIELDS: &[&str] = &[
    "name",
    "instructions",
    "provider",
    "model",
    "temperature",
    "fallback_reply",
    "max_tokens",
    "fallback_chain",
];

async fn settings_page(
    state: &AppState,
    chrome: Chrome,
    bot: &Chatbot,
    form: SettingsValues,
    errors: Errors,
) -> SettingsPage {
    let providers = Provider::ALL
        .iter()
        .map(|p| ProviderOption {
            value: p.as_str(),
            label: provider_label(*p),
            selected: p.as_str() == form.provider,
        })
        .collect();
    SettingsPage {
        chrome,
        bot: BotHeader::load(state, bot).await,
        tab: "settings",
        form,
        providers,
        errors,
        delete_error: None,
        models: ModelChoices::default(),
        saved_provider: provider_label(bot.settings.provider),
        created: web::date_time(bot.created_at),
        updated: web::date_time(bot.updated_at),
    }
}

/// The models of the chatbot's saved provider, with the key its answers would use.
async fn model_choices(state: &AppState, bot: &Chatbot) -> ModelChoices {
    let provider = bot.settings.provider;
    if provider == Provider::Offline {
        return ModelChoices {
            loaded: true,
            models: Vec::new(),
            error: Some(
                "The offline answerer uses no AI model. Choose a provider and save first.".into(),
            ),
        };
    }
    let listed = match state
        .answerer
        .provider_config(&bot.account_id, provider)
        .await
    {
        Ok(cfg) => state.answerer.client().list_models(&cfg).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(models) => ModelChoices {
            loaded: true,
            error: models
                .is_empty()
                .then(|| format!("{} returned no models.", provider.label())),
            models,
        },
        Err(e) => ModelChoices {
            loaded: true,
            models: Vec::new(),
            error: Some(format!(
                "Could not list {} models: {}",
                provider.label(),
                mtdesk_ai::owner_message(&e)
            )),
        },
    }
}

/// `GET /chatbots/{id}`: the Settings tab; `?models=1` also lists the provider's models.
pub async fn settings(
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
        &[
            ("saved", "Settings saved."),
            (
                "created",
                "Chatbot created. Add Q&A pairs on the Q&A tab so it can answer your customers.",
            ),
        ],
    );
    let mut page = settings_page(
        &state,
        user.chrome("chatbots").with_flash(flash),
        &bot,
        SettingsValues::from(&bot.settings),
        Errors::none(),
    )
    .await;
    if web::has_key(query.as_deref(), "models") {
        page.models = model_choices(&state, &bot).await;
    }
    respond(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsForm {
    csrf: String,
    name: String,
    instructions: String,
    provider: String,
    model: String,
    temperature: String,
    fallback_reply: String,
    knowledge_only: String,
    /// Absent (an older form, a script) keeps the saved value.
    max_tokens: Option<String>,
    /// Absent keeps the saved chain; present and empty clears it.
    fallback_chain: Option<String>,
}
has_csrf!(SettingsForm);

/// A whole number of tokens as typed; `None` when the field was not sent.
fn parse_max_tokens(raw: Option<&str>) -> Result<Option<u32>, DomainError> {
    raw.map(|t| {
        t.trim().parse::<u32>().map_err(|_| {
            DomainError::invalid(
                "max_tokens",
                format!(
                    "must be a whole number between 1 and {}",
                    mtdesk_domain::chatbot::MAX_TOKENS_LIMIT
                ),
            )
        })
    })
    .transpose()
}

/// `POST /chatbots/{id}`: saves every field of the form (an unticked checkbox is off).
pub async fn update(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let knowledge_only = web::checked(&form.knowledge_only);
    let result = async {
        let temperature: f64 =
            form.temperature.trim().parse().map_err(|_| {
                DomainError::invalid("temperature", "must be a number between 0 and 2")
            })?;
        let max_tokens = parse_max_tokens(form.max_tokens.as_deref())?;
        let fallback_chain = form
            .fallback_chain
            .as_deref()
            .map(ChainLink::parse_lines)
            .transpose()?;
        let settings = ChatbotDraft {
            name: Some(&form.name),
            instructions: Some(&form.instructions),
            provider: Some(&form.provider),
            model: Some(&form.model),
            temperature: Some(temperature),
            fallback_reply: Some(&form.fallback_reply),
            knowledge_only: Some(knowledge_only),
            max_tokens,
            fallback_chain,
        }
        .apply(&bot.settings)?;
        Ok::<_, ApiError>(
            state
                .store
                .update_chatbot(&user.account.id, &bot.id, &settings)
                .await?,
        )
    }
    .await;
    match result {
        Ok(bot) => see_other(&format!("/chatbots/{}?saved=1", bot.id)),
        Err(ApiError::NotFound) => not_found(user.chrome("chatbots")),
        Err(e) => {
            let values = SettingsValues {
                name: form.name,
                instructions: form.instructions,
                provider: form.provider,
                model: form.model,
                temperature: form.temperature,
                fallback_reply: form.fallback_reply,
                knowledge_only,
                max_tokens: form
                    .max_tokens
                    .unwrap_or_else(|| bot.settings.max_tokens.to_string()),
                fallback_chain: form
                    .fallback_chain
                    .unwrap_or_else(|| ChainLink::to_lines(&bot.settings.fallback_chain)),
            };
            let errors = Errors::from_api(&e, SETTINGS_FIELDS);
            let page = settings_page(&state, user.chrome("chatbots"), &bot, values, errors).await;
            respond(e.status(), &page)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteForm {
    csrf: String,
    confirm: String,
}
has_csrf!(DeleteForm);

/// `POST /chatbots/{id}/delete`: deletes the chatbot and its Q&A pairs once the box is ticked.
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if !web::checked(&form.confirm) {
        let mut page = settings_page(
            &state,
            user.chrome("chatbots"),
            &bot,
            SettingsValues::from(&bot.settings),
            Errors::none(),
        )
        .await;
        page.delete_error =
            Some("Tick the box to confirm that you want to delete this chatbot.".into());
        return respond(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    match mtdesk_http::knowledge::delete_chatbot(&state, &user.account.id, &bot.id).await {
        Ok(()) => {
            tracing::info!(chatbot.id = %bot.id, "chatbot deleted from the dashboard");
            see_other("/chatbots?deleted=1")
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}
