//! My Account: profile, password, this month's usage, API tokens and account deletion.

use crate::web::{
    self, Chrome, CsrfForm, CsrfOnly, Errors, User, api_error, has_csrf, not_found, page, respond,
    see_other,
};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::{AccountUpdate, Month, TokenId};
use mtdesk_http::auth::{self, SESSION_COOKIE};
use mtdesk_http::{ApiError, AppState, services};
use serde::Deserialize;

pub struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    created: String,
    last_used: String,
}

/// One provider and model in the usage table, with its bars' values.
pub struct UsageLineView {
    provider: String,
    offline: bool,
    model: String,
    answers: i64,
    unanswered: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    tokens: i64,
}

/// This month's usage (`mtdesk_http::api::usage::report`), ready to show.
pub struct UsageView {
    month: String,
    answers: i64,
    unanswered: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    lines: Vec<UsageLineView>,
    /// The largest values, the full length of the bars (at least 1, so an empty bar is empty).
    max_answers: i64,
    max_tokens: i64,
    /// The plan that applies now, with one meter per limit ("Plan and usage").
    plan_name: String,
    billing_enabled: bool,
    meters: Vec<MeterRow>,
    /// The monthly message limit is reached: chatbots send their fallback reply.
    messages_full: bool,
}

/// One limit of the plan against what the account uses.
pub(crate) struct MeterRow {
    /// `messages`, `chatbots`, `channels`, `storage`: the element ids in the page.
    pub(crate) resource: String,
    pub(crate) label: &'static str,
    /// "42 of 100", "3 MB of 10 MB", "7 (unlimited)".
    pub(crate) text: String,
    /// For `<meter>`: used and limit (absent when unlimited).
    pub(crate) value: i64,
    pub(crate) max: Option<i64>,
    pub(crate) percent: u8,
    pub(crate) full: bool,
}

pub(crate) fn meter_row(m: mtdesk_http::api::usage::MeterView) -> MeterRow {
    let label = match m.resource.as_str() {
        "messages" => "Answered messages this month",
        "chatbots" => "Chatbots",
        "channels" => "Connected channels",
        _ => "Knowledge storage",
    };
    let fmt = |n: i64| {
        if m.resource == "storage" {
            mtdesk_billing::limits::human_bytes(n)
        } else {
            crate::web::thousands(&n)
        }
    };
    let text = match m.limit {
        Some(l) => format!("{} of {}", fmt(m.used), fmt(l)),
        None => format!("{} (unlimited)", fmt(m.used)),
    };
    MeterRow {
        full: m.limit.is_some_and(|l| m.used >= l),
        percent: m.percent.unwrap_or(0),
        value: m.used.max(0),
        max: m.limit,
        text,
        label,
        resource: m.resource,
    }
}

impl From<mtdesk_http::api::usage::UsageReport> for UsageView {
    fn from(r: mtdesk_http::api::usage::UsageReport) -> Self {
        let lines: Vec<UsageLineView> = r
            .by_model
            .into_iter()
            .map(|l| UsageLineView {
                offline: l.provider == "offline",
                provider: crate::chatbots::provider_label_of(&l.provider),
                model: l.model,
                answers: l.answers,
                unanswered: l.unanswered,
                prompt_tokens: l.prompt_tokens,
                completion_tokens: l.completion_tokens,
                tokens: l.prompt_tokens.saturating_add(l.completion_tokens),
            })
            .collect();
        Self {
            month: month_name(&r.month),
            answers: r.answers,
            unanswered: r.unanswered,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            max_answers: lines.iter().map(|l| l.answers).max().unwrap_or(0).max(1),
            max_tokens: lines.iter().map(|l| l.tokens).max().unwrap_or(0).max(1),
            lines,
            plan_name: r.plan.name,
            billing_enabled: r.plan.billing_enabled,
            messages_full: r
                .meters
                .iter()
                .any(|m| m.resource == "messages" && m.limit.is_some_and(|l| m.used >= l)),
            meters: r.meters.into_iter().map(meter_row).collect(),
        }
    }
}

/// "2026-03" as "March 2026" (the text as is if it is not a month).
fn month_name(month: &str) -> String {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    Month::parse(month)
        .ok()
        .and_then(|m| {
            let i = usize::try_from(m.month).ok()?.checked_sub(1)?;
            Some(format!("{} {}", NAMES.get(i)?, m.year))
        })
        .unwrap_or_else(|| month.to_string())
}

/// A token just created: the only time its secret is shown.
pub struct NewToken {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    chrome: Chrome,
    name: String,
    email: String,
    company: String,
    member_since: String,
    profile_errors: Errors,
    password_errors: Errors,
    tokens: Vec<TokenRow>,
    token_name: String,
    token_errors: Errors,
    new_token: Option<NewToken>,
    delete_errors: Errors,
    usage: UsageView,
    retention_days: i64,
    retention_due: i64,
    retention_next: Option<String>,
    retention_errors: Errors,
    /// "Download my data" (see `crate::export`).
    export: crate::export::ExportsCard,
    /// Product-usage analytics: the account's choice and what was collected under it.
    consent: Option<bool>,
    usage_events: Vec<(String, i64)>,
    is_operator: bool,
    /// The current address was confirmed; when not, a banner with the resend button.
    email_verified: bool,
    /// Devices the account signed in from: (label, last seen).
    devices: Vec<(String, String)>,
}
page!(AccountPage);

async fn account_page(
    state: &AppState,
    user: &User,
    chrome: Chrome,
) -> Result<AccountPage, Response> {
    let tokens = state
        .store
        .list_tokens(&user.account.id)
        .await
        .map_err(|e| api_error(user.chrome("account"), e.into()))?;
    let usage = mtdesk_http::api::usage::report(
        state,
        &user.account.id,
        Month::of_ms(mtdesk_domain::now_ms()),
    )
    .await
    .map_err(|e| api_error(user.chrome("account"), e))?;
    let retention = state
        .store
        .retention_preview(&user.account.id, mtdesk_domain::now_ms())
        .await
        .map_err(|e| api_error(user.chrome("account"), e.into()))?;
    let usage_events = state
        .store
        .usage_event_counts(&user.account.id)
        .await
        .map_err(|e| api_error(user.chrome("account"), e.into()))?;
    let devices = state
        .store
        .list_devices(&user.account.id)
        .await
        .map_err(|e| api_error(user.chrome("account"), e.into()))?
        .into_iter()
        .map(|d| (d.label, web::date_time(d.last_seen_at)))
        .collect();
    Ok(AccountPage {
        email_verified: user.account.email_verified(),
        devices,
        consent: user.account.analytics_consent,
        usage_events,
        is_operator: user.account.operator,
        retention_days: retention.retention_days,
        retention_due: retention.messages_due_within_7_days,
        retention_next: retention.next_purge_at.map(web::date),
        retention_errors: Errors::none(),
        export: crate::export::card(state, &user.account.id)
            .await
            .map_err(|e| api_error(user.chrome("account"), e))?,
        chrome,
        name: user.account.name.clone(),
        email: user.account.email.clone(),
        company: user.account.company.clone(),
        member_since: web::date(user.account.created_at),
        profile_errors: Errors::none(),
        password_errors: Errors::none(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id.to_string(),
                name: t.name,
                prefix: t.prefix,
                created: web::date_time(t.created_at),
                last_used: t
                    .last_used_at
                    .map(web::date_time)
                    .unwrap_or_else(|| "Never".into()),
            })
            .collect(),
        token_name: String::new(),
        token_errors: Errors::none(),
        new_token: None,
        delete_errors: Errors::none(),
        usage: usage.into(),
    })
}

fn show(
    result: Result<AccountPage, Response>,
    status: StatusCode,
    edit: impl FnOnce(&mut AccountPage),
) -> Response {
    match result {
        Ok(mut page) => {
            edit(&mut page);
            respond(status, &page)
        }
        Err(resp) => resp,
    }
}

/// `GET /account`.
pub async fn page(
    State(state): State<AppState>,
    user: User,
    RawQuery(query): RawQuery,
) -> Response {
    let flash = web::flash(
        query.as_deref(),
        &[
            (
                "email",
                "Your email address was changed. We sent a confirmation link to the new address, and a \
                 notice with an undo link to the old one.",
            ),
            ("profile", "Your profile was saved."),
            (
                "verification",
                "We sent a new confirmation link to your email address. It works once, for 24 hours.",
            ),
            (
                "password",
                "Your password was changed. Your other sessions were signed out.",
            ),
            ("revoked", "The token was revoked; it no longer works."),
            (
                "consent-on",
                "Thank you: product-usage analytics are on. You can turn them off here at any time.",
            ),
            (
                "consent-off",
                "Product-usage analytics are off; anything recorded before was deleted.",
            ),
        ],
    );
    let chrome = user.chrome("account").with_flash(flash);
    show(
        account_page(&state, &user, chrome).await,
        StatusCode::OK,
        |p| p.export.notice = crate::export::notice(query.as_deref()),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    csrf: String,
    name: String,
    email: String,
    company: String,
    current_password: String,
}
has_csrf!(ProfileForm);

/// `POST /account/profile`: corrects name, email and company; a new email needs the current password.
pub async fn profile(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Response {
    let result =
        match AccountUpdate::parse(Some(&form.name), Some(&form.email), Some(&form.company)) {
            Ok(update) => {
                let current = Some(form.current_password.as_str()).filter(|p| !p.is_empty());
                services::update_profile(&state, &user.account.id, update, current).await
            }
            Err(e) => Err(e.into()),
        };
    match result {
        Ok(a) if !a.email.eq_ignore_ascii_case(&user.account.email) => {
            see_other("/account?email=changed")
        }
        Ok(_) => see_other("/account?profile=saved"),
        Err(e) => {
            let mut errors =
                Errors::from_api(&e, &["name", "email", "company", "current_password"]);
            if errors.field() == Some("current_password") && form.current_password.is_empty() {
                errors = Errors::on_field(
                    "current_password",
                    "Enter your current password to change your email address.",
                );
            }
            let page = account_page(&state, &user, user.chrome("account")).await;
            show(page, e.status(), |p| {
                p.name = form.name;
                p.email = form.email;
                p.company = form.company;
                p.profile_errors = errors;
            })
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
}
has_csrf!(PasswordForm);

/// `POST /account/password`: changes the password and signs out every other session.
pub async fn password(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let result = services::change_password(
        &state,
        &user.account.id,
        &form.current_password,
        &form.new_password,
        Some(&user.session_hash),
    )
    .await;
    match result {
        Ok(()) => see_other("/account?password=changed"),
        Err(e) => {
            let errors = Errors::from_api(&e, &["current_password", "new_password"]);
            let page = account_page(&state, &user, user.chrome("account")).await;
            show(page, e.status(), |p| p.password_errors = errors)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    csrf: String,
    name: String,
}
has_csrf!(TokenForm);

/// `POST /account/tokens`: creates an API token and shows its secret on this response only.
pub async fn create_token(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Response {
    match services::create_token(&state, &user.account.id, &form.name).await {
        Ok((token, secret)) => {
            tracing::info!(token.id = %token.id, "API token created from the dashboard");
            let page = account_page(&state, &user, user.chrome("account")).await;
            show(page, StatusCode::OK, |p| {
                p.new_token = Some(NewToken {
                    name: token.name,
                    secret,
                })
            })
        }
        Err(e) => {
            let errors = Errors::from_api(&e, &["name"]);
            let page = account_page(&state, &user, user.chrome("account")).await;
            show(page, e.status(), |p| {
                p.token_name = form.name;
                p.token_errors = errors;
            })
        }
    }
}

/// `POST /account/tokens/{id}/delete`: revokes a token at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    let Some(id) = TokenId::parse(&id) else {
        return not_found(user.chrome("account"));
    };
    match state.store.delete_token(&user.account.id, &id).await {
        Ok(()) => see_other("/account?revoked=1"),
        Err(e) => api_error(user.chrome("account"), e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteAccountForm {
    csrf: String,
    password: String,
    confirm: String,
}
has_csrf!(DeleteAccountForm);

#[derive(Template)]
#[template(path = "account_deleted.html")]
pub struct DeletedPage {
    chrome: Chrome,
    tables: Vec<(String, u64)>,
    total: u64,
    receipt_id: String,
    email: String,
}
page!(DeletedPage);

/// `POST /account/delete`: after the password check, deletes every row and file of the account, ends the
/// session and shows what was deleted.
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<DeleteAccountForm>,
) -> Response {
    let result = if web::checked(&form.confirm) {
        services::delete_account(&state, &user.account.id, &form.password).await
    } else {
        Err(ApiError::Validation(mtdesk_domain::DomainError::invalid(
            "confirm",
            "Tick the box to confirm that you want to delete your account and all its data.",
        )))
    };
    match result {
        Ok(deleted) => {
            let mut chrome = Chrome::bare();
            chrome.csrf = user.csrf.token.clone();
            let page = DeletedPage {
                chrome,
                total: deleted.deleted.total(),
                tables: deleted.deleted.tables,
                receipt_id: deleted.receipt.id,
                email: deleted.email,
            };
            let mut resp = respond(StatusCode::OK, &page);
            web::append_cookie(&mut resp, &auth::clear_cookie(&state, SESSION_COOKIE));
            resp
        }
        Err(e) => {
            let errors = Errors::from_api(&e, &["password", "confirm"]);
            let page = account_page(&state, &user, user.chrome("account")).await;
            show(page, e.status(), |p| p.delete_errors = errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_read_as_words() {
        assert_eq!(month_name("2026-03"), "March 2026");
        assert_eq!(month_name("2025-12"), "December 2025");
        assert_eq!(month_name("soon"), "soon");
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RetentionForm {
    csrf: String,
    retention_days: String,
}
has_csrf!(RetentionForm);

/// `POST /account/retention`: how long messages are kept.
pub async fn retention(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<RetentionForm>,
) -> Response {
    let parsed = form
        .retention_days
        .trim()
        .parse::<i64>()
        .map_err(|_| {
            mtdesk_http::ApiError::Validation(mtdesk_domain::DomainError::invalid(
                "retention_days",
                "must be a number of days",
            ))
        })
        .and_then(mtdesk_http::api::retention::parse_days);
    let result = match parsed {
        Ok(days) => state
            .store
            .set_retention_days(&user.account.id, days)
            .await
            .map_err(mtdesk_http::ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => see_other("/account?retention=1#retention"),
        Err(e) => {
            let status = e.status();
            match account_page(&state, &user, user.chrome("account")).await {
                Ok(mut p) => {
                    p.retention_errors = Errors::from_api(&e, &["retention_days"]);
                    respond(status, &p)
                }
                Err(resp) => resp,
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsentForm {
    csrf: String,
    /// `accept` or `decline`.
    choice: String,
    /// The dashboard area the banner was shown in (its navigation section); My Account otherwise.
    next: String,
}
has_csrf!(ConsentForm);

/// `POST /account/consent`: the banner's Accept / Decline buttons and My Account's toggle. Declining or
/// withdrawing deletes every usage event recorded so far.
pub async fn consent(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<ConsentForm>,
) -> Response {
    let consent = match form.choice.as_str() {
        "accept" => true,
        "decline" => false,
        _ => {
            return web::error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                user.chrome("account"),
                "Unknown choice",
                "Choose Accept or Decline.",
            );
        }
    };
    if let Err(e) = state
        .store
        .set_analytics_consent(&user.account.id, consent)
        .await
    {
        return api_error(user.chrome("account"), e.into());
    }
    let flag = if consent { "consent-on" } else { "consent-off" };
    // Back to the area the banner was shown in (a fixed map: never a redirect to an arbitrary URL).
    let back = match form.next.as_str() {
        "chatbots" => "/chatbots",
        "inbox" => "/inbox",
        "deploy" => "/deploy",
        "providers" => "/account/providers",
        "operator" => "/operator/privacy",
        _ => "",
    };
    if back.is_empty() {
        see_other(&format!("/account?{flag}=1#analytics"))
    } else {
        see_other(back)
    }
}
