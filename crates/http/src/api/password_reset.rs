//! `/api/v1/password-reset`: "forgot my password" without a token. The request never reveals whether an
//! address has an account; the emailed link (1 hour, single use) is what proves ownership.

use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::{AppState, services};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::net::SocketAddr;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password-reset", post(request))
        .route("/password-reset/confirm", post(confirm))
}

/// The client's IP address from the socket ("unknown" when the server runs without connect info), for
/// throttling only.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetAccepted {
    pub message: String,
}

/// The one answer to every well-formed reset request, whether or not the address has an account.
pub const RESET_ACCEPTED: &str = "if an account uses this address, we sent it a link to choose a new \
     password; the link works once, for one hour";

/// Ask for a password-reset link. Always 202 with the same body: whether the address has an account is
/// never revealed. Throttled per address and per client IP.
#[utoipa::path(post, path = "/api/v1/password-reset", tag = "account", request_body = ResetRequest,
    responses(
        (status = 202, description = "accepted (the same answer for unknown addresses)", body = ResetAccepted),
        (status = 422, description = "not an email address", body = ErrorBody),
        (status = 429, description = "too many requests; see Retry-After", body = ErrorBody),
    ))]
pub async fn request(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ResetRequest>,
) -> ApiResult<(StatusCode, Json<ResetAccepted>)> {
    services::request_password_reset(&state, &req.email, &ip).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetAccepted {
            message: RESET_ACCEPTED.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The secret at the end of the emailed link (`…/reset-password/<token>`).
    pub token: String,
    /// The new password: at least 10 characters, not your email, not a common password.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetDone {
    pub message: String,
}

/// Set a new password with the emailed link's token. Every dashboard session ends (API tokens stay:
/// revoke them under My Account if they may have leaked); the link and any other reset link of the
/// account stop working. A refused password leaves the link usable.
#[utoipa::path(post, path = "/api/v1/password-reset/confirm", tag = "account",
    request_body = ResetConfirm,
    responses(
        (status = 200, description = "the password was changed", body = ResetDone),
        (status = 404, description = "unknown link", body = ErrorBody),
        (status = 410, description = "the link was already used or has expired", body = ErrorBody),
        (status = 422, description = "the password is too weak (the link stays usable)", body = ErrorBody),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> ApiResult<Json<ResetDone>> {
    services::reset_password(&state, req.token.trim(), &req.password).await?;
    Ok(Json(ResetDone {
        message: "your password was changed; every session was signed out".into(),
    }))
}
