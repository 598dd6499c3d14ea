//! The service's own public pages: `/privacy` (Privacy Policy) and `/data-deletion` (Data Deletion
//! Instructions, the URL a Meta app review asks for). They describe exactly what the code does, with the
//! operator's name and contact address from settings.

use crate::web::{Chrome, Csrf, page, respond};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_http::AppState;

#[derive(Template)]
#[template(path = "privacy.html")]
pub struct PrivacyPage {
    chrome: Chrome,
    operator: String,
    email: Option<String>,
    public_url: String,
    /// The sub-processors, from the same data the operator's deletion checklist uses.
    processors: Vec<mtdesk_storage::Subprocessor>,
}
page!(PrivacyPage);

#[derive(Template)]
#[template(path = "data_deletion.html")]
pub struct DeletionPage {
    chrome: Chrome,
    operator: String,
    email: Option<String>,
    public_url: String,
}
page!(DeletionPage);

/// `GET /privacy`.
pub async fn privacy(State(state): State<AppState>, csrf: Csrf) -> Response {
    let processors = match state.store.list_subprocessors().await {
        Ok(p) => p,
        Err(e) => return crate::web::api_error(Chrome::anonymous(csrf), e.into()),
    };
    respond(
        StatusCode::OK,
        &PrivacyPage {
            chrome: Chrome::anonymous(csrf),
            operator: state.config.operator_name.clone(),
            email: state.config.privacy_email.clone(),
            public_url: state.config.public_url.clone(),
            processors,
        },
    )
}

/// `GET /data-deletion`.
pub async fn data_deletion(State(state): State<AppState>, csrf: Csrf) -> Response {
    respond(
        StatusCode::OK,
        &DeletionPage {
            chrome: Chrome::anonymous(csrf),
            operator: state.config.operator_name.clone(),
            email: state.config.privacy_email.clone(),
            public_url: state.config.public_url.clone(),
        },
    )
}
