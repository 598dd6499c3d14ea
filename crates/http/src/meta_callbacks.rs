//! Meta's deauthorize and data-deletion callbacks (external-apis.md §6): `POST /meta/deauthorize` and
//! `POST /meta/data-deletion`, form-encoded with one `signed_request` field, verified before anything
//! changes. The public status page `GET /data-deletion/{code}` is in the dashboard crate.

use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mtdesk_privacy::PrivacyError;

/// A signed_request is a few hundred bytes; anything much larger is not one.
const MAX_CALLBACK_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/meta/deauthorize", post(deauthorize))
        .route("/meta/data-deletion", post(data_deletion))
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BYTES))
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

/// The `signed_request` field of a form body (UTF-8 or not, never a 5xx).
fn signed_request(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "signed_request")
        .map(|(_, v)| v.into_owned())
}

fn refused(e: PrivacyError) -> Response {
    match e {
        PrivacyError::NotConfigured => {
            json_error(StatusCode::FORBIDDEN, "not_configured", &e.to_string())
        }
        PrivacyError::SignedRequest(e) => {
            tracing::warn!(error = %e, "Meta callback with an invalid signed_request refused");
            json_error(
                StatusCode::BAD_REQUEST,
                "invalid_signed_request",
                &e.to_string(),
            )
        }
        other => {
            tracing::error!(error = %other, "Meta callback failed");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the deletion could not be completed now; please retry",
            )
        }
    }
}

/// §6.2: the user removed the app: every channel they connected is disconnected and its data deleted.
async fn deauthorize(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(sr) = signed_request(&body) else {
        return refused(PrivacyError::SignedRequest(
            mtdesk_privacy::signed_request::SignedRequestError::Missing,
        ));
    };
    match state.privacy.meta_deauthorize(&sr).await {
        Ok(receipt) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"success": true, "receipt": receipt.id})),
        )
            .into_response(),
        Err(e) => refused(e),
    }
}

/// §6.3: deletion of everything Meta-sourced about the user; answers the status URL and code.
async fn data_deletion(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(sr) = signed_request(&body) else {
        return refused(PrivacyError::SignedRequest(
            mtdesk_privacy::signed_request::SignedRequestError::Missing,
        ));
    };
    match state.privacy.meta_data_deletion(&sr).await {
        Ok(request) => {
            // The URL comes from the configured public URL, never from the Host header.
            let url = format!(
                "{}/data-deletion/{}",
                state.config.public_url, request.confirmation_code
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"url": url, "confirmation_code": request.confirmation_code})
                    .to_string(),
            )
                .into_response()
        }
        Err(e) => refused(e),
    }
}
