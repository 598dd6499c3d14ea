//! `POST /webhooks/stripe`: Stripe's webhook endpoint (external-apis.md §8.4).
//!
//! The raw body (size-limited) is verified against `Stripe-Signature` with the endpoint secret
//! (`MTDESK_STRIPE_WEBHOOK_SECRET`) before anything is parsed. Without a configured secret every delivery
//! is refused (403): an unverified event is never processed. A bad or missing signature is 400; a signed
//! body that is not an event is 400 too (never a 5xx, which Stripe would retry for days). A processed,
//! duplicate, ignored or unknown-account event gets 200 `{"received":true}` quickly (§8.4: reply 2xx fast).

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mtdesk_billing::signature;
use mtdesk_billing::webhook::{Processor, WebhookError};
use serde_json::json;

/// Stripe events are a few KiB; 1 MiB leaves room for large invoices with many lines.
pub const MAX_STRIPE_WEBHOOK_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/webhooks/stripe",
        post(receive).layer(DefaultBodyLimit::max(MAX_STRIPE_WEBHOOK_BYTES)),
    )
}

fn refuse(status: StatusCode, error: &'static str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": error, "message": message.into()})),
    )
        .into_response()
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = state
        .stripe
        .as_ref()
        .and_then(|s| s.webhook_secret.as_deref())
    else {
        tracing::warn!(
            "Stripe webhook refused: billing webhooks are not configured (set MTDESK_STRIPE_SECRET_KEY and MTDESK_STRIPE_WEBHOOK_SECRET)"
        );
        return refuse(
            StatusCode::FORBIDDEN,
            "billing_not_configured",
            "Stripe webhooks are not configured on this server (no MTDESK_STRIPE_WEBHOOK_SECRET); nothing was processed",
        );
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now_secs = mtdesk_domain::now_ms() / 1000;
    if let Err(e) = signature::verify(secret, header, &body, now_secs) {
        tracing::warn!(error = %e, "Stripe webhook refused: bad signature");
        return refuse(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string());
    }
    let processor = Processor::new(
        state.store.clone(),
        mtdesk_email::Site {
            name: state.config.operator_name.clone(),
            public_url: state.config.public_url.clone(),
        },
    );
    match processor.handle(&body).await {
        Ok(_) => Json(json!({"received": true})).into_response(),
        Err(WebhookError::Malformed(m)) => {
            tracing::warn!(error = %m, "Stripe webhook refused: not an event");
            refuse(StatusCode::BAD_REQUEST, "malformed_event", m)
        }
        Err(WebhookError::Storage(e)) => {
            // A database failure: 5xx so Stripe retries later (§8.4); the event was not applied.
            crate::error::ApiError::from(e).into_response()
        }
    }
}
