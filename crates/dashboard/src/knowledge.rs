//! The Knowledge tab: a chatbot's sources (uploaded documents and websites) with their ingestion
//! progress, uploads, websites, re-sync, schedules, deletion and the embedder, plus one source's page
//! (for a website, every page its last crawl met).
//!
//! Every action is a plain form that works without JavaScript: success is a 303 back to the tab, a refused
//! form comes back with what was typed. With JavaScript, `static/app.js` sends dropped or chosen files with
//! `fetch` (answered in JSON, then the table is refreshed) and polls `status.json` while any source is
//! being processed, so the progress bars move without reloading.
//!
//! The upload is a multipart form, which `CsrfForm` cannot read. Its token comes either in the
//! `X-CSRF-Token` header (scripts) or as the body's first field (browsers send fields in document order,
//! and the hidden `csrf` input comes before the file input). Either way it is checked — with the same
//! `Origin` rule as every form — before any file is read, so a forged upload never reaches the disk.

use crate::chatbots::{BotHeader, load_bot};
use crate::web::{
    self, Chrome, CsrfForm, Errors, User, api_error, csrf_failure, error_page, has_csrf, not_found,
    page, respond, see_other,
};
use askama::Template;
use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mtdesk_domain::{
    ChatbotId, CrawlLimits, DomainError, EmbeddingChoice, SourceId, SourceKind, SourceStatus,
    SyncSchedule,
};
use mtdesk_http::knowledge::{self as service, FileError, human_bytes};
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::{Chatbot, Source, SourcePage};
use serde::{Deserialize, Serialize};

/// The header scripts send the CSRF token in with an upload.
const CSRF_HEADER: &str = "x-csrf-token";
/// Longest CSRF field read from a multipart body (a real token is 64 hex characters), so a huge
/// "token" cannot fill memory on a route without a body limit.
const MAX_TOKEN_BYTES: usize = 256;
/// What the file picker offers; the server detects the real type from the content anyway.
const ACCEPT: &str = ".pdf,.docx,.txt,.text,.md,.markdown,.html,.htm,.csv,application/pdf,\
    application/vnd.openxmlformats-officedocument.wordprocessingml.document,text/plain,text/markdown,\
    text/html,text/csv";

/// 0–100, as the API computes it: a ready source is full, otherwise done out of total.
fn percent(s: &Source) -> u8 {
    match s.status {
        SourceStatus::Ready => 100,
        _ if s.progress_total > 0 => {
            let p = (s.progress_done.clamp(0, s.progress_total) * 100) / s.progress_total;
            u8::try_from(p).unwrap_or(100)
        }
        _ => 0,
    }
}

/// The status in words: a website's extraction is its crawl.
fn status_label(kind: SourceKind, status: SourceStatus) -> &'static str {
    match (status, kind) {
        (SourceStatus::Queued, _) => "Queued",
        (SourceStatus::Extracting, SourceKind::Url) => "Crawling",
        (SourceStatus::Extracting, SourceKind::File) => "Extracting text",
        (SourceStatus::Embedding, _) => "Indexing",
        (SourceStatus::Ready, _) => "Ready",
        (SourceStatus::Failed, _) => "Failed",
    }
}

/// "Website", or the document type detected from the file's content.
fn kind_label(s: &Source) -> &'static str {
    match s.kind {
        SourceKind::Url => "Website",
        SourceKind::File => match s.doc_type.as_deref() {
            Some("pdf") => "PDF",
            Some("docx") => "Word (DOCX)",
            Some("txt") => "Text",
            Some("markdown") => "Markdown",
            Some("html") => "HTML",
            Some("csv") => "CSV",
            _ => "File",
        },
    }
}

fn schedule_label(s: SyncSchedule) -> &'static str {
    match s {
        SyncSchedule::Manual => "Manual only",
        SyncSchedule::Daily => "Daily",
        SyncSchedule::Weekly => "Weekly",
    }
}

/// Whether `url` may be a link on our page (a crawled address is http(s), but never trust it blindly:
/// a `javascript:` link would run in the dashboard).
fn is_web(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// A choice of a `<select>`.
pub struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn schedule_choices(current: &str) -> Vec<Choice> {
    [
        SyncSchedule::Manual,
        SyncSchedule::Daily,
        SyncSchedule::Weekly,
    ]
    .iter()
    .map(|s| Choice {
        value: s.as_str(),
        label: schedule_label(*s),
        selected: s.as_str() == current,
    })
    .collect()
}

/// One source as the table (and its own page) shows it.
pub struct SourceRow {
    id: String,
    name: String,
    is_url: bool,
    /// The name is a web address that can be linked.
    link: bool,
    kind: &'static str,
    /// `queued`, `extracting`, `embedding`, `ready` or `failed` (for scripts and styles).
    status: &'static str,
    status_label: &'static str,
    active: bool,
    percent: u8,
    done: i64,
    total: i64,
    chunks: i64,
    /// Why it failed, in the words the ingestion wrote for the owner.
    error: Option<String>,
    schedule_label: &'static str,
    schedules: Vec<Choice>,
    size: String,
    added: String,
    last_synced: Option<String>,
    next_sync: Option<String>,
    max_pages: i64,
    max_depth: i64,
}

impl From<&Source> for SourceRow {
    fn from(s: &Source) -> Self {
        let is_url = s.kind == SourceKind::Url;
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            is_url,
            link: is_url && is_web(&s.name),
            kind: kind_label(s),
            status: s.status.as_str(),
            status_label: status_label(s.kind, s.status),
            active: s.status.is_active(),
            percent: percent(s),
            done: s.progress_done,
            total: s.progress_total,
            chunks: s.chunk_count,
            error: s.error.clone().filter(|e| !e.trim().is_empty()),
            schedule_label: schedule_label(s.sync_schedule),
            schedules: schedule_choices(s.sync_schedule.as_str()),
            size: human_bytes(usize::try_from(s.byte_size).unwrap_or(0)),
            added: web::date_time(s.created_at),
            last_synced: s.last_synced_at.map(web::date_time),
            next_sync: s
                .next_sync_at
                .filter(|_| is_url && s.sync_schedule != SyncSchedule::Manual)
                .map(web::date_time),
            max_pages: s.max_pages,
            max_depth: s.max_depth,
        }
    }
}

/// What a form without JavaScript shows after an upload that was not entirely accepted.
pub struct UploadView {
    ok: bool,
    message: String,
    accepted: Vec<String>,
    errors: Vec<FileError>,
}

/// The "Add website" form as typed.
pub struct UrlValues {
    url: String,
    max_pages: String,
    max_depth: String,
    schedules: Vec<Choice>,
}

impl Default for UrlValues {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_pages: CrawlLimits::DEFAULT_PAGES.to_string(),
            max_depth: CrawlLimits::DEFAULT_DEPTH.to_string(),
            schedules: schedule_choices("manual"),
        }
    }
}

/// The embeddings form: `local`, `none` or `openrouter` with its model.
pub struct EmbeddingValues {
    choice: String,
    model: String,
}

impl From<&EmbeddingChoice> for EmbeddingValues {
    fn from(c: &EmbeddingChoice) -> Self {
        let (choice, model) = match c {
            EmbeddingChoice::Local => ("local", String::new()),
            EmbeddingChoice::None => ("none", String::new()),
            EmbeddingChoice::OpenRouter(m) => ("openrouter", m.clone()),
        };
        Self {
            choice: choice.into(),
            model,
        }
    }
}

#[derive(Template)]
#[template(path = "chatbot_knowledge.html")]
pub struct KnowledgePage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    sources: Vec<SourceRow>,
    any_active: bool,
    /// "up to 20 MB per file, 500 files per chatbot".
    limits: String,
    accept: &'static str,
    /// An error about the table (a re-sync already running, an unknown schedule).
    notice: Option<String>,
    upload: Option<UploadView>,
    url: UrlValues,
    url_errors: Errors,
    embedding: EmbeddingValues,
    embedding_errors: Errors,
    /// The saved embedder in words.
    saved_embedding: String,
    /// Why vector search is not available with the saved embedder, when it is not.
    lexical_only: Option<String>,
}
page!(KnowledgePage);

fn embedding_label(c: &EmbeddingChoice) -> String {
    match c {
        EmbeddingChoice::Local => "the local model (all-MiniLM-L6-v2)".into(),
        EmbeddingChoice::None => "none (keyword search only)".into(),
        EmbeddingChoice::OpenRouter(m) => format!("OpenRouter, {m}"),
    }
}

/// "up to 20 MB per file, 500 files per chatbot".
fn limits_text(state: &AppState) -> String {
    let files = state.knowledge.max_files_per_chatbot;
    format!(
        "up to {} per file, {} file{} per chatbot",
        human_bytes(state.knowledge.max_upload_bytes),
        web::thousands(&i64::try_from(files).unwrap_or(i64::MAX)),
        if files == 1 { "" } else { "s" }
    )
}

/// The tab for `bot` with empty forms and no messages; handlers adjust what they need.
async fn knowledge_page(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    chrome: Chrome,
) -> Result<KnowledgePage, Response> {
    let fail = |e: mtdesk_storage::StorageError| api_error(user.chrome("chatbots"), e.into());
    let sources = state
        .store
        .list_sources(&user.account.id, &bot.id)
        .await
        .map_err(fail)?;
    let choice = state.store.chatbot_embedding(&bot.id).await.map_err(fail)?;
    let lexical_only = state
        .knowledge
        .knowledge
        .embedders()
        .for_choice(&choice)
        .err();
    let rows: Vec<SourceRow> = sources.iter().map(SourceRow::from).collect();
    Ok(KnowledgePage {
        chrome,
        bot: BotHeader::load(state, bot).await,
        tab: "knowledge",
        any_active: rows.iter().any(|r| r.active),
        sources: rows,
        limits: limits_text(state),
        accept: ACCEPT,
        notice: None,
        upload: None,
        url: UrlValues::default(),
        url_errors: Errors::none(),
        embedding: EmbeddingValues::from(&choice),
        embedding_errors: Errors::none(),
        saved_embedding: embedding_label(&choice),
        lexical_only,
    })
}

/// Renders the tab with `adjust` applied, or the error page when the tab cannot be loaded.
async fn render_with(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    status: StatusCode,
    adjust: impl FnOnce(&mut KnowledgePage),
) -> Response {
    match knowledge_page(state, user, bot, user.chrome("chatbots")).await {
        Ok(mut page) => {
            adjust(&mut page);
            respond(status, &page)
        }
        Err(resp) => resp,
    }
}

/// `GET /chatbots/{id}/knowledge`.
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
        &[
            (
                "uploaded",
                "Upload received. Your files are being processed; their progress shows below.",
            ),
            (
                "added",
                "Website added. It is crawled in the background; its progress shows below.",
            ),
            ("synced", "Re-sync queued."),
            ("schedule", "Re-sync schedule saved."),
            ("deleted", "Source deleted."),
            (
                "embedding",
                "Embeddings saved. Every chunk is embedded again in the background; until then search \
                 uses keywords only.",
            ),
        ],
    );
    match knowledge_page(
        &state,
        &user,
        &bot,
        user.chrome("chatbots").with_flash(flash),
    )
    .await
    {
        Ok(page) => respond(StatusCode::OK, &page),
        Err(resp) => resp,
    }
}

/// One source's progress, as `status.json` reports it.
#[derive(Debug, Serialize)]
pub struct SourceStatusJson {
    id: String,
    status: &'static str,
    status_label: &'static str,
    active: bool,
    percent: u8,
    done: i64,
    total: i64,
    chunk_count: i64,
    error: Option<String>,
}

impl From<&SourceRow> for SourceStatusJson {
    fn from(r: &SourceRow) -> Self {
        Self {
            id: r.id.clone(),
            status: r.status,
            status_label: r.status_label,
            active: r.active,
            percent: r.percent,
            done: r.done,
            total: r.total,
            chunk_count: r.chunks,
            error: r.error.clone(),
        }
    }
}

/// Every source's progress; `active` says whether it is worth asking again.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    active: bool,
    sources: Vec<SourceStatusJson>,
}

fn json_response<T: Serialize>(status: StatusCode, body: T) -> Response {
    let mut resp = (status, Json(body)).into_response();
    web::no_store(&mut resp);
    resp
}

/// `GET /chatbots/{id}/knowledge/status.json`: polled by the tab while a source is being processed.
/// Session-authenticated and account-scoped like the pages (another account's chatbot is a 404).
pub async fn status(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match state.store.list_sources(&user.account.id, &bot.id).await {
        Ok(sources) => {
            let rows: Vec<SourceStatusJson> = sources
                .iter()
                .map(|s| SourceStatusJson::from(&SourceRow::from(s)))
                .collect();
            json_response(
                StatusCode::OK,
                StatusJson {
                    active: rows.iter().any(|r| r.active),
                    sources: rows,
                },
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            web::log_if_internal(&e);
            json_response(
                e.status(),
                MessageJson {
                    message: "The progress could not be read. Reload the page.".into(),
                    sources: Vec::new(),
                    errors: Vec::new(),
                },
            )
        }
    }
}

/// The JSON answer to a scripted upload: the files accepted, those refused, and a sentence.
#[derive(Debug, Serialize)]
pub struct MessageJson {
    message: String,
    sources: Vec<SourceStatusJson>,
    errors: Vec<FileError>,
}

/// Whether the request is from the tab's script (which asks for JSON).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// The CSRF token of a multipart upload: the `X-CSRF-Token` header, else the body's first field, which
/// must be `csrf`. `Err` is a message when the body cannot be read at all.
async fn upload_token(headers: &HeaderMap, mp: &mut Multipart) -> Result<String, String> {
    if let Some(v) = headers.get(CSRF_HEADER) {
        return Ok(v.to_str().unwrap_or("").to_string());
    }
    let unreadable = "The upload could not be read. Reload the page and try again.".to_string();
    let mut field = match mp.next_field().await {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(String::new()),
        Err(_) => return Err(unreadable),
    };
    if field.name() != Some("csrf") || field.file_name().is_some() {
        // Files before the token: refused as a missing token, nothing is read.
        return Ok(String::new());
    }
    let mut token = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                if token.len() + c.len() > MAX_TOKEN_BYTES {
                    return Ok(String::new());
                }
                token.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(_) => return Err(unreadable),
        }
    }
    Ok(String::from_utf8(token).unwrap_or_default())
}

/// `POST /chatbots/{id}/knowledge/upload` (multipart: `csrf` first, then one or more `files`). Each file
/// is checked on its own by the same service as the API; refused files are listed with their reason.
/// A script (`Accept: application/json`) gets [`MessageJson`]; a form gets a 303 when every file was
/// accepted, else the tab with the result.
pub async fn upload(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let json = wants_json(&headers);
    let refused = |status: StatusCode, message: String| -> Response {
        if json {
            json_response(
                status,
                MessageJson {
                    message,
                    sources: Vec::new(),
                    errors: Vec::new(),
                },
            )
        } else {
            error_page(status, user.chrome("chatbots"), "Upload failed", &message)
        }
    };
    let Ok(mut mp) = multipart else {
        return refused(
            StatusCode::BAD_REQUEST,
            "Send the files with the upload form.".into(),
        );
    };
    let token = match upload_token(&headers, &mut mp).await {
        Ok(t) => t,
        Err(message) => return refused(StatusCode::BAD_REQUEST, message),
    };
    if let Some(resp) = csrf_failure(&state, &headers, &token) {
        return if json {
            refused(
                StatusCode::FORBIDDEN,
                "For your security this upload was refused: the page is out of date. Reload it and \
                 try again."
                    .into(),
            )
        } else {
            resp
        };
    }
    let result = service::upload(&state, &user.account.id, &bot.id, mp).await;
    let (status, view) = match result {
        Ok(mut up) => {
            // A form with no file chosen still sends an empty part without a name.
            up.errors.retain(|e| !e.file.is_empty());
            let accepted: Vec<String> = up.sources.iter().map(|s| s.name.clone()).collect();
            let count = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
            let message = match (accepted.len(), up.errors.len()) {
                (0, 0) => "Choose one or more files to upload.".to_string(),
                (0, r) => format!("Nothing was added: {} refused.", count(r)),
                (a, 0) => format!("{} added; processing has started.", count(a)),
                (a, r) => format!(
                    "{} added; processing has started. {} refused.",
                    count(a),
                    count(r)
                ),
            };
            let status = if accepted.is_empty() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            if json {
                return json_response(
                    if accepted.is_empty() {
                        status
                    } else {
                        StatusCode::ACCEPTED
                    },
                    MessageJson {
                        message,
                        sources: up
                            .sources
                            .iter()
                            .map(|s| SourceStatusJson::from(&SourceRow::from(s)))
                            .collect(),
                        errors: up
                            .errors
                            .into_iter()
                            .map(|e| FileError {
                                error: web::capitalize(&e.error),
                                file: e.file,
                            })
                            .collect(),
                    },
                );
            }
            if !accepted.is_empty() && up.errors.is_empty() {
                return see_other(&format!("/chatbots/{}/knowledge?uploaded=1", bot.id));
            }
            (
                status,
                UploadView {
                    ok: !accepted.is_empty(),
                    message,
                    accepted,
                    errors: up.errors,
                },
            )
        }
        Err(e) => {
            web::log_if_internal(&e);
            let message = match &e {
                ApiError::Internal(_) => {
                    "Something went wrong on our side; it has been logged. Please try again.".into()
                }
                other => web::capitalize(&other.user_message()),
            };
            if json {
                return refused(e.status(), message);
            }
            (
                e.status(),
                UploadView {
                    ok: false,
                    message,
                    accepted: Vec::new(),
                    errors: Vec::new(),
                },
            )
        }
    };
    render_with(&state, &user, &bot, status, |page| page.upload = Some(view)).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UrlForm {
    csrf: String,
    url: String,
    max_pages: String,
    max_depth: String,
    sync_schedule: String,
}
has_csrf!(UrlForm);

const URL_FIELDS: &[&str] = &["url", "max_pages", "max_depth", "sync_schedule"];

/// An optional whole number as typed: empty means the default.
fn optional_number(field: &'static str, raw: &str, rule: &str) -> Result<Option<i64>, DomainError> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| DomainError::invalid(field, format!("must be a whole number {rule}")))
}

/// `POST /chatbots/{id}/knowledge/url`: adds a website; the crawl runs in the background and its
/// failures (unreachable, robots.txt, private address) show in the source's status.
pub async fn add_url(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UrlForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let result = async {
        let pages = optional_number(
            "max_pages",
            &form.max_pages,
            &format!("between 1 and {}", CrawlLimits::MAX_PAGES),
        )?;
        let depth = optional_number(
            "max_depth",
            &form.max_depth,
            &format!("between 0 and {}", CrawlLimits::MAX_DEPTH),
        )?;
        let limits = CrawlLimits::parse(pages, depth)?;
        let schedule = SyncSchedule::parse(&form.sync_schedule)?;
        service::add_url(
            &state,
            &user.account.id,
            &bot.id,
            form.url.trim(),
            limits,
            schedule,
        )
        .await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/chatbots/{}/knowledge?added=1", bot.id)),
        Err(e) => {
            let errors = Errors::from_api(&e, URL_FIELDS);
            let schedules = schedule_choices(form.sync_schedule.trim());
            let values = UrlValues {
                url: form.url,
                max_pages: form.max_pages,
                max_depth: form.max_depth,
                schedules,
            };
            render_with(&state, &user, &bot, e.status(), |page| {
                page.url = values;
                page.url_errors = errors;
            })
            .await
        }
    }
}

/// A button on a source: `back=detail` returns to the source's own page instead of the tab.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SourceActionForm {
    csrf: String,
    back: String,
    sync_schedule: String,
}
has_csrf!(SourceActionForm);

/// Where a source action returns to, with `flag` for the flash message.
fn back_to(bot: &ChatbotId, source: &SourceId, back: &str, flag: &str) -> Response {
    if back == "detail" {
        see_other(&format!("/chatbots/{bot}/knowledge/{source}?{flag}=1"))
    } else {
        see_other(&format!("/chatbots/{bot}/knowledge?{flag}=1"))
    }
}

/// The chatbot and the source (of that chatbot, of this account), or the 404 page.
async fn load_source(
    state: &AppState,
    user: &User,
    id: &str,
    source_id: &str,
) -> Result<(Chatbot, Source), Response> {
    let bot = load_bot(state, user, "chatbots", id).await?;
    let Some(sid) = SourceId::parse(source_id) else {
        return Err(not_found(user.chrome("chatbots")));
    };
    match state
        .store
        .find_source(&user.account.id, &bot.id, &sid)
        .await
    {
        Ok(s) => Ok((bot, s)),
        Err(e) => Err(api_error(user.chrome("chatbots"), e.into())),
    }
}

/// `POST /chatbots/{id}/knowledge/{source_id}/delete`: the source, its chunks, vectors and file.
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path((id, source_id)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<SourceActionForm>,
) -> Response {
    let (bot, source) = match load_source(&state, &user, &id, &source_id).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match service::delete_source(&state, &user.account.id, &bot.id, &source.id).await {
        Ok(()) => {
            tracing::info!(chatbot.id = %bot.id, source.id = %source.id, "source deleted from the dashboard");
            see_other(&format!("/chatbots/{}/knowledge?deleted=1", bot.id))
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

/// `POST /chatbots/{id}/knowledge/{source_id}/sync`: process the source again now. A source already
/// queued or being processed gets the page back with a 409 and why.
pub async fn sync(
    State(state): State<AppState>,
    user: User,
    Path((id, source_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<SourceActionForm>,
) -> Response {
    let (bot, source) = match load_source(&state, &user, &id, &source_id).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match service::resync(&state, &user.account.id, &source.id).await {
        Ok(()) => back_to(&bot.id, &source.id, &form.back, "synced"),
        Err(e @ ApiError::Busy(_)) => {
            let message = format!(
                "“{}” is already queued or being processed; it can be re-synced once it is ready or has \
                 failed.",
                source.name
            );
            refused(&state, &user, &bot, source, &form.back, e.status(), message).await
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

/// A refused source action, shown on the page it came from (the source's page or the Knowledge tab).
async fn refused(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    source: Source,
    back: &str,
    status: StatusCode,
    message: String,
) -> Response {
    if back == "detail" {
        return detail_page(state, user, bot, source, status, Some(message)).await;
    }
    render_with(state, user, bot, status, |page| page.notice = Some(message)).await
}

/// `POST /chatbots/{id}/knowledge/{source_id}/schedule`: how often a website is crawled again.
pub async fn schedule(
    State(state): State<AppState>,
    user: User,
    Path((id, source_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<SourceActionForm>,
) -> Response {
    let (bot, source) = match load_source(&state, &user, &id, &source_id).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let result = match SyncSchedule::parse(&form.sync_schedule) {
        Ok(s) => {
            mtdesk_http::knowledge::set_schedule(&state, &user.account.id, &bot.id, &source.id, s)
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => back_to(&bot.id, &source.id, &form.back, "schedule"),
        Err(ApiError::Validation(d)) => {
            let message = format!("Re-sync schedule: {}.", d.message);
            refused(
                &state,
                &user,
                &bot,
                source,
                &form.back,
                StatusCode::UNPROCESSABLE_ENTITY,
                message,
            )
            .await
        }
        Err(e) => api_error(user.chrome("chatbots"), e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmbeddingForm {
    csrf: String,
    /// `local`, `none` or `openrouter`.
    embedding: String,
    /// The OpenRouter model, with `openrouter`.
    model: String,
}
has_csrf!(EmbeddingForm);

/// `POST /chatbots/{id}/knowledge/embedding`: which embedder makes the chatbot's vectors. A change
/// queues re-embedding of every chunk (keyword search answers meanwhile).
pub async fn embedding(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<EmbeddingForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let parsed = match form.embedding.trim() {
        "openrouter" if form.model.trim().is_empty() => Err(DomainError::invalid(
            "model",
            "Enter the OpenRouter embedding model, e.g. openai/text-embedding-3-small.",
        )),
        "openrouter" => EmbeddingChoice::parse(&format!("openrouter:{}", form.model.trim()))
            .map_err(|_| {
                DomainError::invalid(
                    "model",
                    "Enter a model name without spaces, e.g. openai/text-embedding-3-small.",
                )
            }),
        "local" | "none" => EmbeddingChoice::parse(form.embedding.trim()),
        _ => Err(DomainError::invalid(
            "embedding",
            "Choose the local model, OpenRouter or none.",
        )),
    };
    let result = match parsed {
        Ok(choice) => state
            .store
            .set_chatbot_embedding(&user.account.id, &bot.id, &choice)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(job) => {
            if job.is_some() {
                state.knowledge.wake.notify_one();
            }
            see_other(&format!(
                "/chatbots/{}/knowledge?embedding=1#embeddings",
                bot.id
            ))
        }
        Err(ApiError::NotFound) => not_found(user.chrome("chatbots")),
        Err(e) => {
            let errors = Errors::from_api(&e, &["embedding", "model"]);
            let values = EmbeddingValues {
                choice: form.embedding,
                model: form.model,
            };
            render_with(&state, &user, &bot, e.status(), |page| {
                page.embedding = values;
                page.embedding_errors = errors;
            })
            .await
        }
    }
}

/// One page a crawl met.
pub struct PageRow {
    url: String,
    link: bool,
    /// `ok`, `skipped` or `failed`.
    status: String,
    detail: Option<String>,
    title: Option<String>,
    fetched: String,
}

impl From<SourcePage> for PageRow {
    fn from(p: SourcePage) -> Self {
        Self {
            link: is_web(&p.url),
            url: p.url,
            status: p.status,
            detail: p.detail.filter(|d| !d.trim().is_empty()),
            title: p.title.filter(|t| !t.trim().is_empty()),
            fetched: web::date_time(p.fetched_at),
        }
    }
}

#[derive(Template)]
#[template(path = "chatbot_source.html")]
pub struct SourcePageView {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    source: SourceRow,
    doc_type: Option<String>,
    pages: Vec<PageRow>,
    pages_ok: usize,
    pages_skipped: usize,
    pages_failed: usize,
    notice: Option<String>,
}
page!(SourcePageView);

async fn detail_page(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    source: Source,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    detail_with_chrome(
        state,
        user,
        bot,
        source,
        status,
        notice,
        user.chrome("chatbots"),
    )
    .await
}

async fn detail_with_chrome(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    source: Source,
    status: StatusCode,
    notice: Option<String>,
    chrome: Chrome,
) -> Response {
    let pages = match source.kind {
        SourceKind::Url => match state
            .store
            .list_source_pages(&user.account.id, &source.id)
            .await
        {
            Ok(p) => p,
            Err(e) => return api_error(user.chrome("chatbots"), e.into()),
        },
        SourceKind::File => Vec::new(),
    };
    let pages: Vec<PageRow> = pages.into_iter().map(PageRow::from).collect();
    let count = |s: &str| pages.iter().filter(|p| p.status == s).count();
    let view = SourcePageView {
        chrome,
        bot: BotHeader::load(state, bot).await,
        tab: "knowledge",
        pages_ok: count("ok"),
        pages_skipped: count("skipped"),
        pages_failed: count("failed"),
        doc_type: source.doc_type.clone(),
        source: SourceRow::from(&source),
        pages,
        notice,
    };
    respond(status, &view)
}

/// `GET /chatbots/{id}/knowledge/{source_id}`: one source; for a website, every page its last crawl met
/// (read, skipped or failed, and why).
pub async fn detail(
    State(state): State<AppState>,
    user: User,
    Path((id, source_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (bot, source) = match load_source(&state, &user, &id, &source_id).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let flash = web::flash(
        query.as_deref(),
        &[
            ("synced", "Re-sync queued."),
            ("schedule", "Re-sync schedule saved."),
        ],
    );
    let chrome = user.chrome("chatbots").with_flash(flash);
    detail_with_chrome(&state, &user, &bot, source, StatusCode::OK, None, chrome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_left_empty_take_the_default() {
        assert_eq!(optional_number("max_pages", " ", "x").ok(), Some(None));
        assert_eq!(optional_number("max_pages", "12", "x").ok(), Some(Some(12)));
        let e = optional_number("max_depth", "two", "between 0 and 10").expect_err("refused");
        assert_eq!(e.field, "max_depth");
        assert_eq!(e.message, "must be a whole number between 0 and 10");
    }

    #[test]
    fn only_web_addresses_become_links() {
        assert!(is_web("https://example.com/a"));
        assert!(is_web("HTTP://example.com"));
        assert!(!is_web("javascript:alert(1)"));
        assert!(!is_web("data:text/html,x"));
    }

    #[test]
    fn only_json_requests_get_json() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(
            header::ACCEPT,
            axum::http::HeaderValue::from_static("application/json"),
        );
        assert!(wants_json(&h));
    }
}
