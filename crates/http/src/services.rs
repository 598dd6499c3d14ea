//! What the API and the dashboard both do, written once: each function takes parsed inputs, does one job,
//! and returns domain results or an `ApiError`. Handlers stay thin.

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use mtdesk_domain::{AccountId, AccountUpdate, DomainError, NewAccount, Password};
use mtdesk_privacy::AccountDeletion;
use mtdesk_storage::{Account, ApiToken};

/// Creates an account. The password is hashed off the async workers; a taken email is a 409 (the unique
/// index decides, so concurrent sign-ups with one email produce exactly one account).
pub async fn sign_up(state: &AppState, new: NewAccount) -> ApiResult<Account> {
    let hash =
        auth::hash_password(state.config.password, new.password.expose().to_string()).await?;
    let account = state.store.insert_account(&new, &hash).await?;
    tracing::info!(account.id = %account.id, "account created");
    Ok(account)
}

/// Checks an email and password, with per-account and per-IP throttling of failures. Unknown emails cost
/// the same hash work as known ones, so response time does not reveal which emails have accounts.
pub async fn log_in(state: &AppState, email: &str, password: &str, ip: &str) -> ApiResult<Account> {
    state
        .throttle
        .check(email, ip)
        .map_err(ApiError::TooManyRequests)?;
    let password = Password::for_login(password).map_err(|_| ApiError::InvalidCredentials)?;
    let found = match state.store.find_account_by_email(email).await {
        Ok(a) => Some(a),
        Err(mtdesk_storage::StorageError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let hash = found
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.clone());
    let ok = auth::verify_password(hash, password.expose().to_string()).await;
    match found {
        Some(account) if ok => {
            state.throttle.record_success(email);
            Ok(account)
        }
        _ => {
            state.throttle.record_failure(email, ip);
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// Re-checks the password of a signed-in account before a sensitive change.
pub async fn confirm_password(account: &Account, password: &str) -> ApiResult<()> {
    if password.is_empty() {
        return Err(DomainError::invalid("current_password", "is required").into());
    }
    if auth::verify_password(account.password_hash.clone(), password.to_string()).await {
        Ok(())
    } else {
        Err(DomainError::invalid("current_password", "is incorrect").into())
    }
}

/// Corrects the profile. Changing the email (the login) needs the current password.
pub async fn update_profile(
    state: &AppState,
    id: &AccountId,
    update: AccountUpdate,
    current_password: Option<&str>,
) -> ApiResult<Account> {
    let account = state.store.find_account(id).await?;
    if let Some(email) = &update.email
        && email.normalized() != account.email.to_lowercase()
    {
        confirm_password(&account, current_password.unwrap_or("")).await?;
    }
    Ok(state.store.update_account(id, &update).await?)
}

/// Changes the password after checking the current one, then ends every other session of the account.
pub async fn change_password(
    state: &AppState,
    id: &AccountId,
    current: &str,
    new: &str,
    keep_session_hash: Option<&str>,
) -> ApiResult<()> {
    let account = state.store.find_account(id).await?;
    let email = mtdesk_domain::Email::parse(&account.email)?;
    let new = Password::new_for(new, &email)
        .map_err(|e| DomainError::invalid("new_password", e.message))?;
    confirm_password(&account, current).await?;
    set_password(state, id, &new, keep_session_hash).await
}

/// Stores a new password hash and ends every session but `keep_session_hash` (the caller has checked the
/// current password).
pub async fn set_password(
    state: &AppState,
    id: &AccountId,
    new: &Password,
    keep_session_hash: Option<&str>,
) -> ApiResult<()> {
    let hash = auth::hash_password(state.config.password, new.expose().to_string()).await?;
    state.store.update_password_hash(id, &hash).await?;
    let ended = state
        .store
        .delete_other_sessions(id, keep_session_hash)
        .await?;
    tracing::info!(account.id = %id, sessions_ended = ended, "password changed");
    Ok(())
}

/// Creates an API token; the secret is returned once and only its hash is stored.
pub async fn create_token(
    state: &AppState,
    id: &AccountId,
    name: &str,
) -> ApiResult<(ApiToken, String)> {
    let name = mtdesk_domain::text::bounded("name", name, 1, 100, false)?;
    let secret = auth::new_api_token();
    let prefix: String = secret.chars().take(auth::TOKEN_PREFIX.len() + 6).collect();
    let token = state
        .store
        .insert_token(id, &name, &auth::sha256_hex(&secret), &prefix)
        .await?;
    Ok((token, secret))
}

/// Deletes the account after checking its password: every row in one transaction, then its files.
pub async fn delete_account(
    state: &AppState,
    id: &AccountId,
    password: &str,
) -> ApiResult<AccountDeletion> {
    let account = state.store.find_account(id).await?;
    if password.is_empty() {
        return Err(DomainError::invalid("password", "is required to delete the account").into());
    }
    confirm_password(&account, password)
        .await
        .map_err(|_| DomainError::invalid("password", "is incorrect"))?;
    erase_account(state, id, "account_owner").await
}

/// Deletes an account and everything it owns at once, without asking for its password: the owner's
/// confirmed request (`delete_account`) or the operator's (`mtdesk admin account delete`, an emailed
/// request, an account reported as a child's). The deletion engine does the work and writes the receipt;
/// this node's derived indexes forget the account's texts (other nodes drop theirs at their next search
/// or sweep, the chatbots being gone from the database).
pub async fn erase_account(
    state: &AppState,
    id: &AccountId,
    path: &str,
) -> ApiResult<AccountDeletion> {
    let done = state.privacy.delete_account(id, path).await?;
    for bot in &done.chatbots {
        state.knowledge.knowledge.forget(bot);
    }
    Ok(done)
}
