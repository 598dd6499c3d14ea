//! What the API and the dashboard both do, written once: each function takes parsed inputs, does one job,
//! and returns domain results or an `ApiError`. Handlers stay thin.

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ApiResult};
use mtdesk_domain::{AccountId, AccountUpdate, DomainError, NewAccount, Password, now_ms};
use mtdesk_email::messages::Rendered;
use mtdesk_privacy::AccountDeletion;
use mtdesk_storage::email_links::{LinkPurpose, LinkState, LinkUse, NewEmailLink};
use mtdesk_storage::{Account, ApiToken, StorageError};

/// Creates an account. The password is hashed off the async workers; a taken email is a 409 (the unique
/// index decides, so concurrent sign-ups with one email produce exactly one account).
pub async fn sign_up(state: &AppState, new: NewAccount) -> ApiResult<Account> {
    let hash =
        auth::hash_password(state.config.password, new.password.expose().to_string()).await?;
    let account = state.store.insert_account(&new, &hash).await?;
    tracing::info!(account.id = %account.id, "account created");
    // The account exists either way; a mail that could not be queued is sent again on request.
    if let Err(e) = send_verification(state, &account).await {
        tracing::warn!(account.id = %account.id, error = %e, "queueing the verification mail failed");
    }
    Ok(account)
}

/// Creates an account whose address the operator vouches for (`mtdesk admin account create`): verified
/// at creation, so no verification mail is sent.
pub async fn sign_up_verified(state: &AppState, new: NewAccount) -> ApiResult<Account> {
    let hash =
        auth::hash_password(state.config.password, new.password.expose().to_string()).await?;
    let mut account = state.store.insert_account(&new, &hash).await?;
    let now = now_ms();
    state
        .store
        .set_email_verified(&account.id, Some(now))
        .await?;
    account.email_verified_at = Some(now);
    tracing::info!(account.id = %account.id, "account created by the operator (verified)");
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
    save_profile(state, &account, &update).await
}

/// Writes a profile correction whose password check (for an email change) the caller has done. A new
/// address is unverified: in the same transaction as the change, a verification link for the new address
/// and an undo link for the old one are stored; then the old address gets "your email was changed" with
/// the undo link and the new one "Confirm your email".
pub async fn save_profile(
    state: &AppState,
    current: &Account,
    update: &AccountUpdate,
) -> ApiResult<Account> {
    let changes_email = update
        .email
        .as_ref()
        .is_some_and(|e| e.normalized() != current.email.to_lowercase());
    if !changes_email {
        return Ok(state.store.update_account(&current.id, update).await?);
    }
    let new_address = update
        .email
        .as_ref()
        .map(|e| e.as_str().to_string())
        .unwrap_or_default();
    let (verify_secret, verify) = new_link(LinkPurpose::Verify, Some(new_address.clone()));
    let (undo_secret, undo) = new_link(LinkPurpose::UndoEmail, Some(current.email.clone()));
    let account = state
        .store
        .update_account_with_links(&current.id, update, &[verify, undo])
        .await?;
    tracing::info!(account.id = %account.id, "email address changed");
    let now = now_ms();
    send_mail(
        state,
        &account.id,
        &current.email,
        mtdesk_email::messages::email_changed(
            &site(state),
            &account.name,
            &current.email,
            &account.email,
            now,
            &link_url(state, "undo-email", &undo_secret),
            now + LinkPurpose::UndoEmail.ttl_ms(),
        ),
    )
    .await;
    send_mail(
        state,
        &account.id,
        &account.email,
        mtdesk_email::messages::verify_email(
            &site(state),
            &account.name,
            &account.email,
            &link_url(state, "verify-email", &verify_secret),
            now + LinkPurpose::Verify.ttl_ms(),
        ),
    )
    .await;
    Ok(account)
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
    notify_password_changed(state, id).await;
    Ok(())
}

async fn notify_password_changed(state: &AppState, id: &AccountId) {
    match state.store.find_account(id).await {
        Ok(account) => {
            send_mail(
                state,
                id,
                &account.email,
                mtdesk_email::messages::password_changed(&site(state), &account.name, now_ms()),
            )
            .await
        }
        Err(e) => tracing::warn!(account.id = %id, error = %e, "password-changed notice not sent"),
    }
}

/// Creates an API token; the secret is returned once and only its hash is stored. The owner gets a
/// "new API token" notice (name, prefix, time).
pub async fn create_token(
    state: &AppState,
    id: &AccountId,
    name: &str,
) -> ApiResult<(ApiToken, String)> {
    let (token, secret) = create_token_silently(state, id, name).await?;
    match state.store.find_account(id).await {
        Ok(account) => {
            send_mail(
                state,
                id,
                &account.email,
                mtdesk_email::messages::token_created(
                    &site(state),
                    &account.name,
                    &token.name,
                    &token.prefix,
                    token.created_at,
                ),
            )
            .await
        }
        Err(e) => tracing::warn!(account.id = %id, error = %e, "token notice not sent"),
    }
    Ok((token, secret))
}

/// [`create_token`] without the notice: for the first token of a sign-up, returned in the same response
/// that created the account.
pub async fn create_token_silently(
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

// ---- Email verification, password reset and security notices ---------------------------------------

/// What an unverified account is told when it tries to connect a channel or pay.
pub const VERIFY_FIRST: &str = "Verify your email address before connecting a channel or paying: open \
     the link we emailed you, or send a new one from My Account.";

/// Refuses (403 `email_not_verified`) an account whose current address is not verified: connecting a
/// channel and paying need a reachable owner.
pub fn require_verified(account: &Account) -> ApiResult<()> {
    if account.email_verified() {
        Ok(())
    } else {
        Err(ApiError::EmailNotVerified(VERIFY_FIRST.into()))
    }
}

/// Resends within this time are refused (429), and at most [`RESEND_PER_DAY`] links a day.
const RESEND_GAP_MS: i64 = 60_000;
const RESEND_PER_DAY: i64 = 5;
const DAY_MS: i64 = 24 * 3_600_000;

fn site(state: &AppState) -> mtdesk_email::Site {
    mtdesk_email::Site {
        name: state.config.operator_name.clone(),
        public_url: state.config.public_url.clone(),
    }
}

/// A fresh link: the secret (for the mail, never stored or logged) and what is stored (its hash).
fn new_link(purpose: LinkPurpose, data: Option<String>) -> (String, NewEmailLink) {
    let secret = auth::random_hex(32);
    let link = NewEmailLink {
        id_hash: auth::sha256_hex(&secret),
        purpose,
        data,
    };
    (secret, link)
}

fn link_url(state: &AppState, path: &str, secret: &str) -> String {
    format!(
        "{}/{path}/{secret}",
        state.config.public_url.trim_end_matches('/')
    )
}

/// Queues a mail about the account. A mail that cannot be rendered or queued is logged (its kind, never
/// its body or links) and does not fail the action it reports.
async fn send_mail(
    state: &AppState,
    account: &AccountId,
    to: &str,
    mail: Result<Rendered, mtdesk_email::EmailError>,
) {
    let result = match mail {
        Ok(m) => {
            let kind = m.kind;
            state
                .outbox
                .enqueue(Some(account), to, m)
                .await
                .map(|_| kind)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(kind) => tracing::info!(account.id = %account, mail = kind, "account mail queued"),
        Err(e) => {
            tracing::warn!(account.id = %account, error = %e, "an account mail was not queued")
        }
    }
}

/// A link secret as it appears in a URL: 64 lower-case hex characters. Anything else is unknown (404)
/// without a database query.
fn parse_secret(secret: &str) -> ApiResult<String> {
    if secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(auth::sha256_hex(&secret.to_ascii_lowercase()))
    } else {
        Err(ApiError::NotFound)
    }
}

fn link_error<T>(outcome: LinkUse<T>, what: &str) -> ApiResult<T> {
    match outcome {
        LinkUse::Done(v) => Ok(v),
        LinkUse::Used => Err(ApiError::Gone(format!(
            "this {what} link was already used; links work once"
        ))),
        LinkUse::Expired => Err(ApiError::Gone(format!("this {what} link has expired"))),
        LinkUse::Unknown => Err(ApiError::NotFound),
    }
}

/// Stores a verification link for the account's current address and queues "Confirm your email".
async fn send_verification(state: &AppState, account: &Account) -> ApiResult<()> {
    let (secret, link) = new_link(LinkPurpose::Verify, Some(account.email.clone()));
    state.store.insert_email_link(&account.id, &link).await?;
    let mail = mtdesk_email::messages::verify_email(
        &site(state),
        &account.name,
        &account.email,
        &link_url(state, "verify-email", &secret),
        now_ms() + LinkPurpose::Verify.ttl_ms(),
    )
    .map_err(|e| ApiError::Internal(e.into()))?;
    state
        .outbox
        .enqueue(Some(&account.id), &account.email, mail)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tracing::info!(account.id = %account.id, "verification mail queued");
    Ok(())
}

/// Sends a new verification link. 409 when the address is verified already; 429 (with the seconds to
/// wait) within a minute of the last link or after five links in 24 hours, counted from the stored links
/// so every node agrees.
pub async fn resend_verification(state: &AppState, id: &AccountId) -> ApiResult<()> {
    let account = state.store.find_account(id).await?;
    if account.email_verified() {
        return Err(ApiError::Busy(
            "your email address is already verified".into(),
        ));
    }
    let now = now_ms();
    let (sent, oldest, newest) = state
        .store
        .email_links_since(id, LinkPurpose::Verify, now - DAY_MS)
        .await?;
    if let Some(newest) = newest
        && now - newest < RESEND_GAP_MS
    {
        return Err(ApiError::TooManyRequests(wait_secs(
            newest + RESEND_GAP_MS - now,
        )));
    }
    if sent >= RESEND_PER_DAY
        && let Some(oldest) = oldest
    {
        return Err(ApiError::TooManyRequests(wait_secs(oldest + DAY_MS - now)));
    }
    send_verification(state, &account).await
}

fn wait_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(1000)).unwrap_or(1000).div_ceil(1000)
}

/// Opens a verification link: the account's address is verified. 404 for an unknown link, 410 for a
/// used or expired one (a new one can be sent from My Account).
pub async fn verify_email(state: &AppState, secret: &str) -> ApiResult<Account> {
    let hash = parse_secret(secret)?;
    let id = link_error(
        state.store.verify_email_with_link(&hash).await?,
        "verification",
    )?;
    tracing::info!(account.id = %id, "email address verified");
    Ok(state.store.find_account(&id).await?)
}

/// "Firefox on Linux": the browser and system named by a User-Agent, for notices and My Account. Simple
/// on purpose: it names the device for a person, it is not a fingerprint.
pub fn device_label(user_agent: &str) -> String {
    let ua = user_agent.to_ascii_lowercase();
    if ua.trim().is_empty() {
        return "an unknown device".into();
    }
    let browser = [
        ("edg/", "Edge"),
        ("opr/", "Opera"),
        ("firefox/", "Firefox"),
        ("chrome/", "Chrome"),
        ("crios/", "Chrome"),
        ("safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name)
    .unwrap_or("An unknown browser");
    let system = [
        ("android", "Android"),
        ("iphone", "iOS"),
        ("ipad", "iPadOS"),
        ("windows", "Windows"),
        ("mac os x", "macOS"),
        ("cros", "ChromeOS"),
        ("linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_string(),
    }
}

/// The device key: HMAC(instance secret, the User-Agent without version numbers), so a browser update is
/// not a new device and the stored key cannot be turned back into the User-Agent.
fn device_hash(state: &AppState, user_agent: &str) -> String {
    let normalized: String = user_agent
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '.' && *c != '_')
        .take(512)
        .collect();
    auth::keyed_hex(&state.config.secret_key, &format!("device:{normalized}"))
}

/// Records the device an account was created from, without a notice (the owner is right there).
pub async fn remember_device(state: &AppState, account: &AccountId, user_agent: &str) {
    let hash = device_hash(state, user_agent);
    if let Err(e) = state
        .store
        .record_device(account, &hash, &device_label(user_agent))
        .await
    {
        tracing::warn!(account.id = %account, error = %e, "recording the sign-up device failed");
    }
}

/// After a successful sign-in: records the device and, the first time the account uses it, sends the
/// "new sign-in" notice (when, which device, "if this wasn't you, reset your password"). Returns whether
/// the device was new. Never fails the sign-in.
pub async fn note_sign_in(state: &AppState, account: &Account, user_agent: &str) -> bool {
    let hash = device_hash(state, user_agent);
    let label = device_label(user_agent);
    match state.store.record_device(&account.id, &hash, &label).await {
        Ok(true) => {
            send_mail(
                state,
                &account.id,
                &account.email,
                mtdesk_email::messages::new_sign_in(&site(state), &account.name, &label, now_ms()),
            )
            .await;
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(account.id = %account.id, error = %e, "recording a sign-in device failed");
            false
        }
    }
}

/// "Forgot your password?": always the same answer whether or not `email` has an account (never reveal
/// it), throttled per address and per client IP alike (429). For a real account a reset link (1 h) is
/// mailed, at most one a minute; that work runs off the request so the response time does not tell
/// either.
pub async fn request_password_reset(state: &AppState, email: &str, ip: &str) -> ApiResult<()> {
    let email = mtdesk_domain::Email::parse(email)?;
    // The login throttle's map, in its own key space: these attempts never lock anyone out of logging in.
    let key = format!("reset:{}", email.normalized());
    let ip_key = format!("reset:{ip}");
    state
        .throttle
        .check(&key, &ip_key)
        .map_err(ApiError::TooManyRequests)?;
    state.throttle.record_failure(&key, &ip_key);
    let account = match state.store.find_account_by_email(email.as_str()).await {
        Ok(a) => a,
        Err(StorageError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset(&state, &account).await {
            tracing::warn!(account.id = %account.id, error = %e, "queueing a reset mail failed");
        }
    });
    Ok(())
}

async fn send_reset(state: &AppState, account: &Account) -> ApiResult<()> {
    let now = now_ms();
    let (recent, _, _) = state
        .store
        .email_links_since(&account.id, LinkPurpose::Reset, now - RESEND_GAP_MS)
        .await?;
    if recent > 0 {
        tracing::info!(account.id = %account.id, "reset link sent less than a minute ago; not resent");
        return Ok(());
    }
    let (secret, link) = new_link(LinkPurpose::Reset, None);
    state.store.insert_email_link(&account.id, &link).await?;
    send_mail(
        state,
        &account.id,
        &account.email,
        mtdesk_email::messages::password_reset(
            &site(state),
            &account.name,
            &link_url(state, "reset-password", &secret),
            now + LinkPurpose::Reset.ttl_ms(),
        ),
    )
    .await;
    Ok(())
}

/// The account a link belongs to, without using the link: 404 unknown, 410 used or expired.
async fn peek_link(state: &AppState, secret: &str, purpose: LinkPurpose) -> ApiResult<Account> {
    let hash = parse_secret(secret)?;
    let what = match purpose {
        LinkPurpose::Verify => "verification",
        LinkPurpose::Reset => "password reset",
        LinkPurpose::UndoEmail => "undo",
    };
    let link = match state.store.find_email_link(&hash, purpose).await {
        Ok(l) => l,
        Err(StorageError::NotFound) => return Err(ApiError::NotFound),
        Err(e) => return Err(e.into()),
    };
    match link.state(now_ms()) {
        LinkState::Usable => Ok(state.store.find_account(&link.account_id).await?),
        LinkState::Used => link_error(LinkUse::Used, what),
        LinkState::Expired => link_error(LinkUse::Expired, what),
    }
}

/// Checks a reset link for the "choose a new password" form (the link stays usable).
pub async fn check_reset_link(state: &AppState, secret: &str) -> ApiResult<Account> {
    peek_link(state, secret, LinkPurpose::Reset).await
}

/// Sets a new password with a reset link: a weak password is refused (422 on `password`) and the link
/// stays usable; otherwise, in one transaction, the link is spent, the password set, every session ended
/// and the account's other reset links spent. Then the "password changed" notice.
pub async fn reset_password(state: &AppState, secret: &str, new: &str) -> ApiResult<Account> {
    let account = check_reset_link(state, secret).await?;
    let email = mtdesk_domain::Email::parse(&account.email)?;
    let new = Password::new_for(new, &email)?;
    let hash = auth::hash_password(state.config.password, new.expose().to_string()).await?;
    let id = link_error(
        state
            .store
            .reset_password_with_link(&parse_secret(secret)?, &hash)
            .await?,
        "password reset",
    )?;
    tracing::info!(account.id = %id, "password reset; every session ended");
    state.throttle.record_success(&account.email);
    notify_password_changed(state, &id).await;
    Ok(state.store.find_account(&id).await?)
}

/// Checks an undo link for its confirmation page: the account and the address it would restore.
pub async fn check_undo_link(state: &AppState, secret: &str) -> ApiResult<(Account, String)> {
    let account = peek_link(state, secret, LinkPurpose::UndoEmail).await?;
    let link = state
        .store
        .find_email_link(&parse_secret(secret)?, LinkPurpose::UndoEmail)
        .await?;
    Ok((account, link.data.unwrap_or_default()))
}

/// Undoes an email change with the link sent to the old address: the old address is restored (verified:
/// it received the link), every session ends and the new address's pending verification is cancelled.
/// 409 when another account took the old address meanwhile.
pub async fn undo_email_change(state: &AppState, secret: &str) -> ApiResult<Account> {
    let (id, _) = link_error(
        state
            .store
            .undo_email_change_with_link(&parse_secret(secret)?)
            .await?,
        "undo",
    )?;
    tracing::info!(account.id = %id, "email change undone; every session ended");
    Ok(state.store.find_account(&id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_labels_name_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("curl/8.5.0", "curl"),
            ("", "an unknown device"),
            ("SomethingElse", "An unknown browser"),
        ];
        for (ua, label) in cases {
            assert_eq!(device_label(ua), label, "{ua}");
        }
    }

    #[test]
    fn link_secrets_must_be_64_hex_characters() {
        assert!(parse_secret(&"a".repeat(64)).is_ok());
        assert!(parse_secret(&"a".repeat(63)).is_err());
        assert!(parse_secret(&"g".repeat(64)).is_err());
        assert!(parse_secret("../../etc/passwd").is_err());
    }
}
