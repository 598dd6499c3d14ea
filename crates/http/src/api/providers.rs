//! `/api/v1/providers`: which LLM providers are usable, your own keys (stored sealed, never shown
//! again), a key test, and the provider's model list.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mtdesk_ai::Answerer;
use mtdesk_domain::{DomainError, Provider};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/providers", get(list))
        .route("/providers/{provider}/key", put(set_key).delete(delete_key))
        .route("/providers/{provider}/test", post(test_key))
        .route("/providers/{provider}/models", get(models))
}

/// An LLM provider by its API name; `offline` has no key, so it is refused here.
fn llm_provider(raw: &str) -> Result<Provider, ApiError> {
    match Provider::parse(raw) {
        Ok(Provider::Offline) | Err(_) => Err(ApiError::NotFound),
        Ok(p) => Ok(p),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderStatus {
    /// openrouter, fireworks, minimax, moonshot or openai_compat.
    pub provider: String,
    pub label: String,
    /// The operator configured a base URL for it.
    pub has_base_url: bool,
    /// The operator configured an instance-wide key (used when you have none of your own).
    pub has_instance_key: bool,
    /// Your own key: its last 4 characters, if you stored one.
    pub own_key_hint: Option<String>,
    pub own_key_updated_at: Option<i64>,
}

/// The LLM providers and whether each can be used by your chatbots.
#[utoipa::path(get, path = "/api/v1/providers", tag = "providers", security(("bearer" = [])),
    responses((status = 200, body = [ProviderStatus]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<Vec<ProviderStatus>>> {
    Ok(Json(provider_statuses(&state, &account).await?))
}

/// Shared with the dashboard's AI providers page.
pub async fn provider_statuses(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
) -> ApiResult<Vec<ProviderStatus>> {
    let own = state.store.list_provider_keys(account).await?;
    let config = state.answerer.config();
    Ok(Provider::ALL
        .into_iter()
        .filter(|p| *p != Provider::Offline)
        .map(|p| {
            let endpoint = config.endpoint(p);
            let mine = own.iter().find(|k| k.provider == p);
            ProviderStatus {
                provider: p.as_str().into(),
                label: p.label().into(),
                has_base_url: endpoint.is_some_and(|e| e.base_url.is_some()),
                has_instance_key: endpoint.is_some_and(|e| e.api_key.is_some()),
                own_key_hint: mine.map(|k| k.hint.clone()),
                own_key_updated_at: mine.map(|k| k.updated_at),
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// The provider's API key. Stored encrypted; never shown again.
    pub api_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeySaved {
    pub provider: String,
    /// The last 4 characters, to recognise the key by.
    pub hint: String,
}

/// Validates a pasted key: no spaces or control characters, a sane length.
pub fn parse_key(raw: &str) -> Result<String, DomainError> {
    let k = raw.trim();
    if k.is_empty() {
        return Err(DomainError::invalid("api_key", "is required"));
    }
    if k.len() > 500 || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid(
            "api_key",
            "does not look like an API key (no spaces, at most 500 characters)",
        ));
    }
    Ok(k.to_string())
}

/// Stores the account's key for a provider, sealed (AES-256-GCM); replaces an earlier one.
pub async fn save_key(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    provider: Provider,
    raw: &str,
) -> ApiResult<String> {
    let key = parse_key(raw)?;
    let hint: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let sealed = state
        .answerer
        .sealer()
        .seal(&key, &Answerer::key_owner(account, provider));
    state
        .store
        .upsert_provider_key(account, provider, &sealed, &hint)
        .await?;
    tracing::info!(account.id = %account, provider = provider.as_str(), "provider key stored");
    Ok(hint)
}

/// Store your own key for a provider.
#[utoipa::path(put, path = "/api/v1/providers/{provider}/key", tag = "providers", security(("bearer" = [])),
    params(("provider" = String, Path)), request_body = KeyInput,
    responses((status = 200, body = KeySaved), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_key(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(provider): Path<String>,
    ApiJson(req): ApiJson<KeyInput>,
) -> ApiResult<Json<KeySaved>> {
    let provider = llm_provider(&provider)?;
    let hint = save_key(&state, &account, provider, &req.api_key).await?;
    Ok(Json(KeySaved {
        provider: provider.as_str().into(),
        hint,
    }))
}

/// Delete your own key for a provider.
#[utoipa::path(delete, path = "/api/v1/providers/{provider}/key", tag = "providers", security(("bearer" = [])),
    params(("provider" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_key(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(provider): Path<String>,
) -> ApiResult<StatusCode> {
    let provider = llm_provider(&provider)?;
    state.store.delete_provider_key(&account, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TestInput {
    /// A model to try when the provider has no model list.
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    /// The provider's answer in plain words.
    pub message: String,
    /// When not ok: bad_key, no_credits, rate_limited, unavailable, timeout, not_configured, …
    pub error: Option<String>,
}

/// Runs a cheap call with the key your chatbots would use (yours, else the instance's).
pub async fn run_key_test(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    provider: Provider,
    model: Option<&str>,
) -> TestResult {
    let outcome = match state.answerer.provider_config(account, provider).await {
        Ok(cfg) => state.answerer.client().test_key(&cfg, model).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(message) => TestResult {
            ok: true,
            message,
            error: None,
        },
        Err(e) => TestResult {
            ok: false,
            message: mtdesk_ai::owner_message(&e),
            error: Some(e.kind.as_str().into()),
        },
    }
}

/// Test the key: a cheap call to the provider, reported plainly. A failed test is `ok: false`, not an
/// HTTP error.
#[utoipa::path(post, path = "/api/v1/providers/{provider}/test", tag = "providers", security(("bearer" = [])),
    params(("provider" = String, Path)), request_body = TestInput,
    responses((status = 200, body = TestResult), (status = 404, body = ErrorBody)))]
pub async fn test_key(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(provider): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<TestResult>> {
    let provider = llm_provider(&provider)?;
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Schema(e.to_string()))?
    };
    Ok(Json(
        run_key_test(&state, &account, provider, input.model.as_deref()).await,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<String>,
}

/// The provider's models (from its models endpoint), with the key your chatbots would use.
#[utoipa::path(get, path = "/api/v1/providers/{provider}/models", tag = "providers", security(("bearer" = [])),
    params(("provider" = String, Path)),
    responses((status = 200, body = ModelList), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn models(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(provider): Path<String>,
) -> ApiResult<Json<ModelList>> {
    let provider = llm_provider(&provider)?;
    let cfg = state
        .answerer
        .provider_config(&account, provider)
        .await
        .map_err(|e| ApiError::Upstream(mtdesk_ai::owner_message(&e)))?;
    let models = state
        .answerer
        .client()
        .list_models(&cfg)
        .await
        .map_err(|e| ApiError::Upstream(mtdesk_ai::owner_message(&e)))?;
    Ok(Json(ModelList { models }))
}
