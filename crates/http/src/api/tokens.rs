//! `/api/v1/tokens`: list, create (secret shown once) and revoke API tokens.

use crate::auth::ApiAccount;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, path_id};
use crate::{AppState, services};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use mtdesk_domain::TokenId;
use mtdesk_storage::ApiToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for, e.g. "zapier".
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    pub token: TokenView,
    /// The secret. Shown only in this response; store it now.
    pub secret: String,
}

/// Your API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.store.list_tokens(&account).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Create a token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiJson(req): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (token, secret) = services::create_token(&state, &account, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: token.into(),
            secret,
        }),
    ))
}

/// Revoke a token. It stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, TokenId::parse)?;
    state.store.delete_token(&account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
