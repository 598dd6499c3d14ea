//! `GET /data-deletion/{code}`: the public status page of a Meta data-deletion request (external-apis.md
//! §6.3). No login, no personal data: the code, the dates, the state, what was deleted (counts per
//! category). Unknown codes are a 404; nothing from the URL is shown unless it is a known code.

use crate::web::{self, Chrome, page, respond};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_http::AppState;

pub struct Count {
    what: String,
    rows: u64,
}

#[derive(Template)]
#[template(path = "data_deletion_status.html")]
pub struct StatusPage {
    chrome: Chrome,
    code: String,
    status: &'static str,
    received: String,
    completed: Option<String>,
    counts: Vec<Count>,
}
page!(StatusPage);

fn label(category: &str) -> String {
    match category {
        "channels" => {
            "connected channels (tokens, Page / Instagram / WhatsApp ids and names)".into()
        }
        "conversations" => "conversations (with the customers' platform ids)".into(),
        "messages" => "messages".into(),
        "answer_records" => "answer records".into(),
        "reply_jobs" => "pending replies".into(),
        other => other.replace('_', " "),
    }
}

/// `GET /data-deletion/{code}`.
pub async fn status(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    match state.privacy.deletion_status(&code).await {
        Ok((request, receipt)) => {
            let page = StatusPage {
                chrome: Chrome::bare(),
                status: match request.status.as_str() {
                    "completed" => "Completed",
                    "in_progress" => "In progress",
                    _ => "Received",
                },
                received: web::date_time(request.received_at),
                completed: request.completed_at.map(web::date_time),
                counts: receipt
                    .map(|r| {
                        r.counts
                            .iter()
                            .map(|(k, v)| Count {
                                what: label(k),
                                rows: v.as_u64().unwrap_or(0),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                code: request.confirmation_code,
            };
            respond(StatusCode::OK, &page)
        }
        Err(mtdesk_privacy::PrivacyError::NotFound) => web::not_found(Chrome::bare()),
        Err(e) => {
            tracing::error!(error = %e, "reading a data-deletion request failed");
            web::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Chrome::bare(),
                "Temporarily unavailable",
                "The status cannot be read right now. Please try again later.",
            )
        }
    }
}
