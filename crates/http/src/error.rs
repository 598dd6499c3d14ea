//! `ApiError`: every failure of the JSON API as `{"error": "snake_code", "message": "…"}` with the right
//! status. The codes are stable; clients may match on them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mtdesk_domain::DomainError;
use mtdesk_storage::StorageError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON (or not valid CSV).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token or session.
    #[error("authentication required: send Authorization: Bearer <token>")]
    Unauthorized,
    /// 401: wrong email or password (never says which).
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// 403: the account's plan does not allow this (a limit on chatbots, knowledge storage or channels);
    /// the message names the limit and the plan.
    #[error("{0}")]
    PlanLimit(String),
    /// 404: no such resource for this account. Also what another account's ids get.
    #[error("not found")]
    NotFound,
    /// 403: the account's email address is not verified yet, and this action (connecting a channel,
    /// paying) needs it.
    #[error("{0}")]
    EmailNotVerified(String),
    /// 410: a link from an email was already used or has expired.
    #[error("{0}")]
    Gone(String),
    /// 409: a unique value is taken (e.g. the email).
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// 409: the resource is busy or in a state that does not allow this (e.g. a sync already running).
    #[error("{0}")]
    Busy(String),
    /// 413: the body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: wrong Content-Type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a field failed validation.
    #[error("{}", .0.message)]
    Validation(DomainError),
    /// 422: the JSON is well-formed but does not fit the schema (missing field, wrong type, unknown field).
    #[error("{0}")]
    Schema(String),
    /// 429: too many attempts; retry after the given seconds.
    #[error("too many attempts; try again in {0} seconds")]
    TooManyRequests(u64),
    /// 502: an external service (an LLM provider) refused or failed; the message says why in plain words.
    #[error("{0}")]
    Upstream(String),
    /// 503: the database is unreachable.
    #[error("service unavailable")]
    Unavailable,
    /// 500: a bug or an outage. The cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::PlanLimit(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::EmailNotVerified(_) => StatusCode::FORBIDDEN,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Conflict { .. } | ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::Schema(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::PlanLimit(_) => "plan_limit",
            ApiError::NotFound => "not_found",
            ApiError::EmailNotVerified(_) => "email_not_verified",
            ApiError::Gone(_) => "link_expired_or_used",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Busy(_) => "busy",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(_) | ApiError::Schema(_) => "validation_failed",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Upstream(_) => "upstream_error",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::Validation(e) => Some(e.field),
            ApiError::Conflict { field } => Some(field),
            _ => None,
        }
    }

    /// The message shown to users. For a validation error it names the field.
    pub fn user_message(&self) -> String {
        match self {
            ApiError::Validation(e) => format!("{}: {}", e.field, e.message),
            ApiError::Internal(_) => "internal error; it has been logged".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let status = self.status();
        let body = ErrorBody {
            error: self.code(),
            message: self.user_message(),
            field: self.field(),
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests(secs) = self
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<mtdesk_billing::limits::LimitError> for ApiError {
    fn from(e: mtdesk_billing::limits::LimitError) -> Self {
        match e {
            mtdesk_billing::limits::LimitError::Exceeded(x) => ApiError::PlanLimit(x.message),
            mtdesk_billing::limits::LimitError::Storage(s) => s.into(),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Validation(e)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::NotFound,
            StorageError::Conflict { field } => ApiError::Conflict { field },
            StorageError::Config(m) => ApiError::Internal(anyhow::anyhow!(m)),
            StorageError::Other(e) => {
                // A pool timeout means the database is down or saturated: 503, so load balancers back off.
                if format!("{e:#}").contains("pool timed out") {
                    tracing::error!(error = format!("{e:#}"), "database unavailable");
                    ApiError::Unavailable
                } else {
                    ApiError::Internal(e)
                }
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
