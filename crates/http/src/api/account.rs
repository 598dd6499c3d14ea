//! `/api/v1/account`: sign up, read, correct and delete your account.

use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::{AppState, services};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use mtdesk_domain::{AccountUpdate, NewAccount};
use mtdesk_storage::Account;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/account",
            post(sign_up)
                .get(get_account)
                .patch(update_account)
                .delete(delete_account),
        )
        .route("/account/verification", post(resend_verification))
        .route("/account/verification/confirm", post(confirm_verification))
}

/// The request's User-Agent (empty when absent), for the devices an account signs in from.
pub fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub name: String,
    pub email: String,
    /// At least 10 characters, not your email, not a common password.
    pub password: String,
    pub company: String,
    /// You must confirm you are 16 or older; MT Desk is not for under-16s.
    pub age_16_or_older: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub company: String,
    /// Whether the address was confirmed with the link we emailed. Until it is, the account can build
    /// chatbots but not connect a channel or pay (403 `email_not_verified`). A changed address must be
    /// confirmed again.
    pub email_verified: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name,
            email_verified: a.email_verified_at.is_some(),
            email: a.email,
            company: a.company,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignUpResponse {
    pub account: AccountView,
    /// An API token for this account, shown once.
    pub token: String,
}

/// Create an account and get a first API token. A "Confirm your email" mail with a single-use link (24
/// hours) goes to the address; until it is opened the account cannot connect a channel or pay.
#[utoipa::path(post, path = "/api/v1/account", tag = "account", request_body = SignUpRequest,
    responses(
        (status = 201, body = SignUpResponse),
        (status = 409, description = "email already registered", body = ErrorBody),
        (status = 422, description = "a field is invalid or the age confirmation is missing", body = ErrorBody),
    ))]
pub async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignUpRequest>,
) -> ApiResult<(StatusCode, Json<SignUpResponse>)> {
    let new = NewAccount::parse(
        &req.name,
        &req.email,
        &req.company,
        &req.password,
        req.age_16_or_older,
    )?;
    let account = services::sign_up(&state, new).await?;
    services::remember_device(&state, &account.id, user_agent(&headers)).await;
    let (_, secret) =
        services::create_token_silently(&state, &account.id, "created at sign-up").await?;
    Ok((
        StatusCode::CREATED,
        Json(SignUpResponse {
            account: account.into(),
            token: secret,
        }),
    ))
}

/// Your account.
#[utoipa::path(get, path = "/api/v1/account", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
pub async fn get_account(
    State(state): State<AppState>,
    ApiAccount(id): ApiAccount,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(state.store.find_account(&id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub name: Option<String>,
    /// Changing the email needs `current_password`.
    pub email: Option<String>,
    pub company: Option<String>,
    pub current_password: Option<String>,
    /// Changing the password needs `current_password`; other sessions are ended.
    pub new_password: Option<String>,
}

/// Correct your profile or change your password. A changed email must be confirmed again (a link goes
/// to the new address, `email_verified` turns false) and the old address gets a notice with a link that
/// undoes the change; a changed password is notified too.
#[utoipa::path(patch, path = "/api/v1/account", tag = "account", security(("bearer" = [])),
    request_body = AccountPatch,
    responses(
        (status = 200, body = AccountView),
        (status = 409, description = "email taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update_account(
    State(state): State<AppState>,
    ApiAccount(id): ApiAccount,
    ApiJson(req): ApiJson<AccountPatch>,
) -> ApiResult<Json<AccountView>> {
    let update = AccountUpdate::parse(
        req.name.as_deref(),
        req.email.as_deref(),
        req.company.as_deref(),
    )?;
    if update.is_empty() && req.new_password.is_none() {
        return Err(ApiError::Validation(mtdesk_domain::DomainError::invalid(
            "body",
            "give at least one of name, email, company, new_password",
        )));
    }
    // Validate everything, and check the current password, before writing anything: a bad new password
    // must not leave a half-applied profile change behind.
    let current = state.store.find_account(&id).await?;
    let new_password = match &req.new_password {
        Some(new) => {
            let email = match &update.email {
                Some(e) => e.clone(),
                None => mtdesk_domain::Email::parse(&current.email)?,
            };
            Some(
                mtdesk_domain::Password::new_for(new, &email)
                    .map_err(|e| mtdesk_domain::DomainError::invalid("new_password", e.message))?,
            )
        }
        None => None,
    };
    let email_changes = update
        .email
        .as_ref()
        .is_some_and(|e| e.normalized() != current.email.to_lowercase());
    if new_password.is_some() || email_changes {
        services::confirm_password(&current, req.current_password.as_deref().unwrap_or("")).await?;
    }
    let account = if update.is_empty() {
        current
    } else {
        services::save_profile(&state, &current, &update).await?
    };
    if let Some(new) = new_password {
        services::set_password(&state, &id, &new, None).await?;
    }
    Ok(Json(account.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionReceipt {
    /// The deletion receipt kept as proof (scope, counts, time; no personal data).
    pub receipt_id: String,
    /// Rows deleted per table.
    pub deleted: BTreeMap<String, u64>,
    /// The account's files were removed from the data directory.
    pub files_removed: bool,
    /// What the law makes us keep (invoices for tax law, detached from the account), if anything.
    pub kept: Option<String>,
}

/// Delete your account and everything in it, now and for good.
#[utoipa::path(delete, path = "/api/v1/account", tag = "account", security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 200, description = "deleted; what was removed", body = DeletionReceipt),
        (status = 422, description = "wrong or missing password", body = ErrorBody),
    ))]
pub async fn delete_account(
    State(state): State<AppState>,
    ApiAccount(id): ApiAccount,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> ApiResult<Json<DeletionReceipt>> {
    let done = services::delete_account(&state, &id, &req.password).await?;
    Ok(Json(DeletionReceipt {
        receipt_id: done.receipt.id,
        deleted: done.deleted.tables.into_iter().collect(),
        files_removed: true,
        kept: done.receipt.kept,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationSent {
    pub message: String,
}

/// Send a new "Confirm your email" link to your address (the previous links keep working until they
/// expire).
#[utoipa::path(post, path = "/api/v1/account/verification", tag = "account", security(("bearer" = [])),
    responses(
        (status = 202, description = "a new link is on its way", body = VerificationSent),
        (status = 401, body = ErrorBody),
        (status = 409, description = "the address is already verified", body = ErrorBody),
        (status = 429, description = "one link a minute and five a day; see Retry-After", body = ErrorBody),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ApiAccount(id): ApiAccount,
) -> ApiResult<(StatusCode, Json<VerificationSent>)> {
    services::resend_verification(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(VerificationSent {
            message: "we sent a new confirmation link to your email address".into(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfirm {
    /// The secret at the end of the emailed link (`…/verify-email/<token>`).
    pub token: String,
}

/// Confirm your address with the token of the emailed link (what opening the link does in a browser).
/// No authentication: the token is the proof.
#[utoipa::path(post, path = "/api/v1/account/verification/confirm", tag = "account",
    request_body = VerificationConfirm,
    responses(
        (status = 200, description = "verified", body = AccountView),
        (status = 404, description = "unknown link", body = ErrorBody),
        (status = 410, description = "the link was already used or has expired", body = ErrorBody),
    ))]
pub async fn confirm_verification(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerificationConfirm>,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(
        services::verify_email(&state, req.token.trim())
            .await?
            .into(),
    ))
}
