//! `GET|POST /webhooks/meta`: Meta's webhook callback (external-apis.md §1).
//!
//! GET is the verification handshake (§1.1). POST checks `X-Hub-Signature-256` over the raw body bytes
//! before anything else (§1.2), then commits the body to the database queue and only then answers 200
//! (§1.4): the workers route, deduplicate and answer afterwards, so a crash after the 200 loses nothing and
//! a slow Graph API never delays the acknowledgement.

use crate::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::IgnoredAny;

/// WhatsApp bodies may reach 3 MB (§1.3); a little more is accepted.
pub const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/webhooks/meta",
        get(handshake)
            .post(receive)
            .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
    )
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// §1.1: echo `hub.challenge` byte for byte only for `hub.mode=subscribe` with our verify token.
async fn handshake(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    // Keys contain dots: read the raw query instead of a struct.
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    match mtdesk_channels::verify_handshake(
        state.channels.meta().verify_token.as_deref(),
        mode.as_deref(),
        token.as_deref(),
        challenge.as_deref(),
    ) {
        Some(challenge) => plain(StatusCode::OK, challenge),
        None => {
            tracing::warn!(
                "Meta webhook verification refused (wrong or missing verify token, or not configured)"
            );
            plain(StatusCode::FORBIDDEN, "verification failed")
        }
    }
}

/// What to do with a webhook POST, decided before anything is stored.
pub enum Verdict {
    /// Signed and readable: store it, then acknowledge.
    Store,
    /// Signed but not JSON (or nested too deep): acknowledge without storing, so Meta does not retry
    /// something that can never be read.
    Drop,
    /// Refused: this response (no app secret configured, or a bad signature).
    Reject(Response),
}

/// §1.2: the signature over the raw bytes, checked before anything is parsed; then a cheap well-formedness
/// check of the JSON. Public so the webhook benchmark measures exactly this.
pub fn check(app_secret: Option<&[u8]>, headers: &HeaderMap, body: &[u8]) -> Verdict {
    let Some(secret) = app_secret else {
        // No app secret: Meta channels are off and nothing unverified is ever accepted.
        return Verdict::Reject(plain(
            StatusCode::FORBIDDEN,
            "Meta channels are not configured on this server",
        ));
    };
    let header = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = mtdesk_channels::verify_signature(secret, body, header) {
        tracing::warn!(error = %e, "Meta webhook with a bad signature refused");
        return Verdict::Reject(plain(
            StatusCode::UNAUTHORIZED,
            format!("signature check failed: {e}"),
        ));
    }
    match serde_json::from_slice::<IgnoredAny>(body) {
        Ok(_) => Verdict::Store,
        Err(e) => {
            tracing::warn!(error = %e, bytes = body.len(), "a signed Meta webhook body is not valid JSON; acknowledged and dropped");
            Verdict::Drop
        }
    }
}

/// The acknowledgement Meta expects.
pub fn acknowledged() -> Response {
    plain(StatusCode::OK, "EVENT_RECEIVED")
}

/// §1.2–§1.4: verify, store, acknowledge.
async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match check(state.channels.app_secret(), &headers, &body) {
        Verdict::Reject(resp) => {
            state.metrics.webhook("rejected");
            resp
        }
        Verdict::Drop => {
            state.metrics.webhook("malformed");
            acknowledged()
        }
        Verdict::Store => match state.channels.enqueue(body.to_vec()).await {
            Ok(()) => {
                state.metrics.webhook("accepted");
                acknowledged()
            }
            Err(e) => {
                state.metrics.webhook("store_failed");
                tracing::error!(error = %e, "storing a Meta webhook failed; answering 503 so Meta delivers it again");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unable to store the event; please retry",
                )
            }
        },
    }
}
