//! The Q&A tab: list, add, edit and delete pairs, and import them from a CSV file.

use crate::chatbots::{BotHeader, load_bot};
use crate::web::{
    self, Chrome, CsrfForm, CsrfOnly, Errors, User, api_error, csrf_failure, error_page, has_csrf,
    not_found, page, respond, see_other,
};
use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mtdesk_domain::{QaPairId, QaPairInput, RowError};
use mtdesk_http::api::qa::import_rows;
use mtdesk_http::csv_import::parse_qa_csv;
use mtdesk_http::{ApiError, AppState};
use mtdesk_storage::Chatbot;
use serde::Deserialize;

/// One pair as the tab shows it, with its edit form's values (what was typed, after a refused edit).
pub struct QaRow {
    id: String,
    question: String,
    answer: String,
    updated: String,
    edit_question: String,
    edit_answer: String,
    /// The edit form is open: it holds a refused edit.
    open: bool,
    errors: Errors,
}

/// The outcome of a CSV upload.
pub struct ImportView {
    ok: bool,
    message: String,
    errors: Vec<RowError>,
}

#[derive(Template)]
#[template(path = "chatbot_qa.html")]
pub struct QaPage {
    chrome: Chrome,
    bot: BotHeader,
    tab: &'static str,
    pairs: Vec<QaRow>,
    question: String,
    answer: String,
    errors: Errors,
    import: Option<ImportView>,
}
page!(QaPage);

const QA_FIELDS: &[&str] = &["question", "answer"];

/// The tab for `bot`, with empty add form and no messages; handlers adjust what they need.
async fn qa_page(
    state: &AppState,
    user: &User,
    bot: &Chatbot,
    chrome: Chrome,
) -> Result<QaPage, Response> {
    let pairs = state
        .store
        .list_qa_pairs(&user.account.id, &bot.id)
        .await
        .map_err(|e| api_error(user.chrome("chatbots"), e.into()))?;
    Ok(QaPage {
        chrome,
        bot: BotHeader::load(state, bot).await,
        tab: "qa",
        pairs: pairs
            .into_iter()
            .map(|p| QaRow {
                id: p.id.to_string(),
                edit_question: p.question.clone(),
                edit_answer: p.answer.clone(),
                question: p.question,
                answer: p.answer,
                updated: web::date(p.updated_at),
                open: false,
                errors: Errors::none(),
            })
            .collect(),
        question: String::new(),
        answer: String::new(),
        errors: Errors::none(),
        import: None,
    })
}

/// `GET /chatbots/{id}/qa`.
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
            ("added", "Q&A pair added."),
            ("updated", "Q&A pair saved."),
            ("deleted", "Q&A pair deleted."),
        ],
    );
    match qa_page(
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QaForm {
    csrf: String,
    question: String,
    answer: String,
}
has_csrf!(QaForm);

/// `POST /chatbots/{id}/qa`: adds one pair.
pub async fn add(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<QaForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let result = match QaPairInput::parse(&form.question, &form.answer) {
        Ok(input) => state
            .store
            .insert_qa_pairs(&user.account.id, &bot.id, &[input])
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => see_other(&format!("/chatbots/{}/qa?added=1#add", bot.id)),
        Err(e) => match qa_page(&state, &user, &bot, user.chrome("chatbots")).await {
            Ok(mut page) => {
                page.question = form.question;
                page.answer = form.answer;
                page.errors = Errors::from_api(&e, QA_FIELDS);
                respond(e.status(), &page)
            }
            Err(resp) => resp,
        },
    }
}

/// `POST /chatbots/{id}/qa/{qa_id}`: edits a pair.
pub async fn update(
    State(state): State<AppState>,
    user: User,
    Path((id, qa_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<QaForm>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some(qa) = QaPairId::parse(&qa_id) else {
        return not_found(user.chrome("chatbots"));
    };
    let result = match QaPairInput::parse(&form.question, &form.answer) {
        Ok(input) => state
            .store
            .update_qa_pair(&user.account.id, &bot.id, &qa, &input)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => see_other(&format!("/chatbots/{}/qa?updated=1#qa-{}", bot.id, qa)),
        Err(ApiError::NotFound) => not_found(user.chrome("chatbots")),
        Err(e) => match qa_page(&state, &user, &bot, user.chrome("chatbots")).await {
            Ok(mut page) => {
                let errors = Errors::from_api(&e, QA_FIELDS);
                match page.pairs.iter_mut().find(|p| p.id == qa.as_str()) {
                    Some(row) => {
                        row.edit_question = form.question;
                        row.edit_answer = form.answer;
                        row.open = true;
                        row.errors = errors;
                    }
                    None => return not_found(user.chrome("chatbots")),
                }
                respond(e.status(), &page)
            }
            Err(resp) => resp,
        },
    }
}

/// `POST /chatbots/{id}/qa/{qa_id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path((id, qa_id)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    let bot = match load_bot(&state, &user, "chatbots", &id).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let Some(qa) = QaPairId::parse(&qa_id) else {
        return not_found(user.chrome("chatbots"));
    };
    match state
        .store
        .delete_qa_pair(&user.account.id, &bot.id, &qa)
        .await
    {
        Ok(()) => see_other(&format!("/chatbots/{}/qa?deleted=1", bot.id)),
        Err(e) => api_error(user.chrome("chatbots"), e.into()),
    }
}

/// `POST /chatbots/{id}/qa/import` (multipart: `csrf`, `file`, `skip_invalid`). Same rules as the API's
/// import: all rows in one transaction; with invalid rows nothing is imported unless `skip_invalid`.
pub async fn import(
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
    let upload = match read_upload(multipart).await {
        Ok(u) => u,
        Err(message) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                user.chrome("chatbots"),
                "Upload failed",
                &message,
            );
        }
    };
    if let Some(resp) = csrf_failure(&state, &headers, &upload.csrf) {
        return resp;
    }
    let (status, view) = match upload.file {
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ImportView {
                ok: false,
                message: "Choose a CSV file to import.".into(),
                errors: Vec::new(),
            },
        ),
        Some(bytes) => match parse_qa_csv(&bytes) {
            Err(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ImportView {
                    ok: false,
                    message: web::capitalize(&message),
                    errors: Vec::new(),
                },
            ),
            Ok((pairs, errors)) => {
                match import_rows(
                    &state,
                    &user.account.id,
                    &bot.id,
                    pairs,
                    errors,
                    upload.skip_invalid,
                )
                .await
                {
                    Ok((status, axum::Json(result))) if result.error.is_none() => {
                        let skipped = result.errors.len();
                        let mut message = format!(
                            "Imported {} pair{}.",
                            result.imported,
                            if result.imported == 1 { "" } else { "s" }
                        );
                        if skipped > 0 {
                            message.push_str(&format!(
                                " {skipped} invalid row{} skipped:",
                                if skipped == 1 { " was" } else { "s were" }
                            ));
                        }
                        let status = if status.is_success() {
                            StatusCode::OK
                        } else {
                            status
                        };
                        (
                            status,
                            ImportView {
                                ok: true,
                                message,
                                errors: result.errors,
                            },
                        )
                    }
                    Ok((_, axum::Json(result))) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ImportView {
                            ok: false,
                            message: format!(
                                "Nothing was imported: {} row{} invalid. Fix {} in your file, or tick \
                                 “Skip invalid rows” to import the others.",
                                result.errors.len(),
                                if result.errors.len() == 1 {
                                    " is"
                                } else {
                                    "s are"
                                },
                                if result.errors.len() == 1 {
                                    "it"
                                } else {
                                    "them"
                                },
                            ),
                            errors: result.errors,
                        },
                    ),
                    Err(e) => {
                        web::log_if_internal(&e);
                        let status = e.status();
                        let status = if status == StatusCode::BAD_REQUEST {
                            StatusCode::UNPROCESSABLE_ENTITY
                        } else {
                            status
                        };
                        let message = match e {
                            ApiError::Internal(_) => {
                                "Something went wrong on our side; it has been logged.".into()
                            }
                            other => web::capitalize(&other.user_message()),
                        };
                        (
                            status,
                            ImportView {
                                ok: false,
                                message,
                                errors: Vec::new(),
                            },
                        )
                    }
                }
            }
        },
    };
    match qa_page(&state, &user, &bot, user.chrome("chatbots")).await {
        Ok(mut page) => {
            page.import = Some(view);
            respond(status, &page)
        }
        Err(resp) => resp,
    }
}

struct Upload {
    csrf: String,
    file: Option<Vec<u8>>,
    skip_invalid: bool,
}

async fn read_upload(multipart: Result<Multipart, MultipartRejection>) -> Result<Upload, String> {
    let failed = |_| {
        "The upload could not be read. Check the file is not larger than the limit and try again."
            .to_string()
    };
    let mut multipart = multipart.map_err(|_| "Send the file with the upload form.".to_string())?;
    let mut upload = Upload {
        csrf: String::new(),
        file: None,
        skip_invalid: false,
    };
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        match field.name().unwrap_or("") {
            "csrf" => upload.csrf = field.text().await.map_err(failed)?,
            "skip_invalid" => {
                upload.skip_invalid = web::checked(&field.text().await.map_err(failed)?)
            }
            "file" => {
                let bytes = field.bytes().await.map_err(failed)?;
                // A browser sends an empty part when no file was chosen.
                if !bytes.is_empty() {
                    upload.file = Some(bytes.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(upload)
}
