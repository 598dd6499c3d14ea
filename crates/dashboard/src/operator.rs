//! The operator's privacy page (`/operator/privacy`): deletion requests received by email or the contact
//! form — record, accept, execute, the sub-processor checklist — for accounts granted the operator role
//! (`mtdesk admin operator grant --email`; nothing in the product grants it). Anyone else gets 404 (the
//! page's existence is not revealed). The same engine functions as `mtdesk admin deletion-request`.

use crate::web::{
    Chrome, CsrfForm, CsrfOnly, Errors, User, date_time, has_csrf, page, respond, see_other,
};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::privacy_request::RequestScope;
use mtdesk_http::{ApiError, AppState};
use mtdesk_privacy::requests::NewRequest;
use serde::Deserialize;

fn is_operator(_state: &AppState, user: &User) -> bool {
    user.account.operator
}

fn not_found(user: &User) -> Response {
    crate::web::not_found(user.chrome("operator"))
}

pub struct Row {
    id: String,
    status: String,
    scope: String,
    origin: String,
    requester: String,
    received: String,
    due: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "operator_privacy.html")]
pub struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    errors: Errors,
    form: AddForm,
}
page!(ListPage);

pub struct TaskRow {
    processor: String,
    name: String,
    instruction: String,
    status: String,
    done: String,
}

#[derive(Template)]
#[template(path = "operator_request.html")]
pub struct DetailPage {
    chrome: Chrome,
    r: mtdesk_storage::PrivacyRequest,
    received: String,
    due: String,
    ack_due: String,
    acknowledged: String,
    executed: String,
    tasks: Vec<TaskRow>,
    errors: Errors,
}
page!(DetailPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddForm {
    csrf: String,
    email: String,
    name: String,
    scope: String,
    description: String,
}
has_csrf!(AddForm);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExecuteForm {
    csrf: String,
    confirm: String,
}
has_csrf!(ExecuteForm);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskForm {
    csrf: String,
    status: String,
    note: String,
}
has_csrf!(TaskForm);

async fn list_page(state: &AppState, user: &User, errors: Errors, form: AddForm) -> Response {
    let now = mtdesk_domain::now_ms();
    let rows = match state.store.list_privacy_requests(true).await {
        Ok(list) => list
            .into_iter()
            .map(|r| Row {
                overdue: r.status != "completed" && r.due_at < now,
                id: r.id,
                status: r.status,
                scope: r.scope,
                origin: r.origin,
                requester: match (r.name, r.email) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    _ => "(forgotten after confirmation)".into(),
                },
                received: date_time(r.received_at),
                due: date_time(r.due_at),
            })
            .collect(),
        Err(e) => return crate::web::api_error(user.chrome("operator"), ApiError::from(e)),
    };
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    respond(
        status,
        &ListPage {
            chrome: user.chrome("operator"),
            rows,
            errors,
            form,
        },
    )
}

/// `GET /operator/privacy`.
pub async fn list(State(state): State<AppState>, user: User) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    list_page(
        &state,
        &user,
        Errors::none(),
        AddForm {
            scope: "all".into(),
            ..Default::default()
        },
    )
    .await
}

/// `POST /operator/privacy`: records a request received by email; the acknowledgement is queued.
pub async fn add(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    let scope = match RequestScope::parse(&form.scope) {
        Ok(s) => s,
        Err(e) => {
            return list_page(
                &state,
                &user,
                Errors::from_api(
                    &ApiError::Validation(e),
                    &["email", "name", "scope", "description"],
                ),
                form,
            )
            .await;
        }
    };
    let result = state
        .privacy
        .add_request(NewRequest {
            email: form.email.clone(),
            name: form.name.clone(),
            scope,
            description: Some(form.description.clone()),
            origin: "email",
            received_at: None,
        })
        .await;
    match result {
        Ok(r) => see_other(&format!("/operator/privacy/{}", r.id)),
        Err(e) => {
            let e = ApiError::from(e);
            list_page(
                &state,
                &user,
                Errors::from_api(&e, &["email", "name", "scope", "description"]),
                form,
            )
            .await
        }
    }
}

async fn detail_page(state: &AppState, user: &User, id: &str, errors: Errors) -> Response {
    let view = match state.privacy.request_view(id).await {
        Ok(v) => v,
        Err(e) => return crate::web::api_error(user.chrome("operator"), ApiError::from(e)),
    };
    let t = |x: Option<i64>| x.map(date_time).unwrap_or_else(|| "—".into());
    let r = view.request;
    let status = if errors.any() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    respond(
        status,
        &DetailPage {
            chrome: user.chrome("operator"),
            received: date_time(r.received_at),
            due: date_time(r.due_at),
            ack_due: date_time(r.ack_due_at),
            acknowledged: t(r.acknowledged_at),
            executed: t(r.executed_at),
            tasks: view
                .tasks
                .into_iter()
                .map(|task| TaskRow {
                    done: match (&task.done_by, task.done_at) {
                        (Some(by), Some(at)) => format!(
                            "{by}, {}{}",
                            date_time(at),
                            task.note
                                .as_deref()
                                .map(|n| format!(": {n}"))
                                .unwrap_or_default()
                        ),
                        _ => String::new(),
                    },
                    processor: task.processor.id,
                    name: task.processor.name,
                    instruction: task.processor.deletion,
                    status: task.status,
                })
                .collect(),
            r,
            errors,
        },
    )
}

/// `GET /operator/privacy/{id}`.
pub async fn detail(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    detail_page(&state, &user, &id, Errors::none()).await
}

/// `POST /operator/privacy/{id}/accept`: a draft from the contact form becomes a request (acknowledged).
pub async fn accept(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    match state.privacy.accept_request(&id).await {
        Ok(_) => see_other(&format!("/operator/privacy/{id}")),
        Err(e) => {
            detail_page(
                &state,
                &user,
                &id,
                Errors::from_api(&ApiError::from(e), &[]),
            )
            .await
        }
    }
}

/// `POST /operator/privacy/{id}/execute`: deletes now and queues the confirmation.
pub async fn execute(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ExecuteForm>,
) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    if !crate::web::checked(&form.confirm) {
        return detail_page(
            &state,
            &user,
            &id,
            Errors::general("Tick the box to confirm: the deletion cannot be undone."),
        )
        .await;
    }
    match state
        .privacy
        .execute_request(&id, &user.account.email)
        .await
    {
        Ok(view) => {
            for bot in &view.deleted_chatbots {
                state.knowledge.knowledge.forget(bot);
            }
            see_other(&format!("/operator/privacy/{id}"))
        }
        Err(e) => {
            detail_page(
                &state,
                &user,
                &id,
                Errors::from_api(&ApiError::from(e), &[]),
            )
            .await
        }
    }
}

/// `POST /operator/privacy/{id}/tasks/{processor}`: ticks a checklist line as the signed-in operator.
pub async fn task(
    State(state): State<AppState>,
    user: User,
    Path((id, processor)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<TaskForm>,
) -> Response {
    if !is_operator(&state, &user) {
        return not_found(&user);
    }
    let note = Some(form.note.as_str());
    match state
        .privacy
        .tick_task(&id, &processor, &form.status, &user.account.email, note)
        .await
    {
        Ok(()) => see_other(&format!("/operator/privacy/{id}#task-{processor}")),
        Err(e) => {
            detail_page(
                &state,
                &user,
                &id,
                Errors::from_api(&ApiError::from(e), &[]),
            )
            .await
        }
    }
}
