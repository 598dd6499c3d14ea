//! Plumbing every dashboard page shares: the signed-in [`User`], CSRF ([`Csrf`], [`CsrfForm`]), the page
//! [`Chrome`] (top bar, flash), responses, error pages, form errors and date formatting.
//!
//! Authentication and CSRF are extractors, so a handler cannot forget them: a protected handler takes a
//! `User` (no session → 303 to `/login`), and every POST handler reads its body through `CsrfForm`
//! (bad or missing token → 403 page) or, for the multipart forms, calls [`csrf_failure`].

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use mtdesk_http::{ApiError, AppState, auth};
use mtdesk_storage::{Account, StorageError};
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::net::SocketAddr;

/// Appended to asset URLs so a new release is never served a stale cached stylesheet.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The CSRF token for this browser's forms, and the `Set-Cookie` to send when the browser had no CSRF
/// cookie yet (then the page that shows the token must set it, or the form cannot be submitted).
#[derive(Debug, Clone)]
pub struct Csrf {
    pub token: String,
    pub set_cookie: Option<String>,
}

impl FromRequestParts<AppState> for Csrf {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, set_cookie) = auth::csrf_token(state, &parts.headers);
        Ok(Self { token, set_cookie })
    }
}

/// The signed-in account of a dashboard request. Without a live session the request is answered with a
/// 303 to `/login`, so protected handlers only ever run for a known account.
pub struct User {
    pub account: Account,
    /// SHA-256 of the session cookie: the session to keep when the password changes.
    pub session_hash: String,
    pub csrf: Csrf,
}

impl User {
    /// The top bar for this user, with `section` highlighted in the navigation.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            csrf: self.csrf.token.clone(),
            set_cookie: self.csrf.set_cookie.clone(),
            user_name: Some(self.account.name.clone()),
            section,
            flash: None,
            ask_consent: self.account.analytics_consent.is_none(),
        }
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some((id, session_hash)) = auth::session_account(state, &parts.headers).await else {
            return Err(see_other("/login"));
        };
        let (token, set_cookie) = auth::csrf_token(state, &parts.headers);
        let csrf = Csrf { token, set_cookie };
        match state.store.find_account(&id).await {
            Ok(account) => {
                if account.analytics_consent == Some(true)
                    && parts.method == axum::http::Method::GET
                {
                    record_page_view(state, &account.id, parts.uri.path());
                }
                Ok(Self {
                    account,
                    session_hash,
                    csrf,
                })
            }
            Err(StorageError::NotFound) => Err(see_other("/login")),
            Err(e) => Err(api_error(Chrome::anonymous(csrf), e.into())),
        }
    }
}

/// Product-usage analytics, only for accounts that accepted: which dashboard area was opened
/// (`view:/chatbots`, `view:/inbox`; never ids, texts or query strings), recorded off the request path.
fn record_page_view(state: &AppState, account: &mtdesk_domain::AccountId, path: &str) {
    let area = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| {
            !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
        .unwrap_or("home");
    let event = format!("view:/{area}");
    let store = state.store.clone();
    let account = account.clone();
    tokio::spawn(async move {
        if let Err(e) = store.record_usage_event(&account, &event).await {
            tracing::debug!(error = %e, "recording a usage event failed");
        }
    });
}

/// The client's IP address (from the socket; the binary serves with connect info), for login throttling.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(Self(ip))
    }
}

/// A form body that carries a `csrf` field.
pub trait HasCsrf {
    fn csrf(&self) -> &str;
}

/// Implements [`HasCsrf`] for form structs with a `csrf: String` field.
macro_rules! has_csrf {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::web::HasCsrf for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use has_csrf;

/// A form with only the CSRF field (log out, delete buttons).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CsrfOnly {
    pub csrf: String,
}
has_csrf!(CsrfOnly);

/// `application/x-www-form-urlencoded` body whose CSRF token has been checked. A body that cannot be
/// read gets an error page with axum's status (400, 413, 415); a bad token gets the 403 page.
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + HasCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let Form(form) = Form::<T>::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "What you sent is larger than this server accepts."
            } else {
                "The form could not be read. Go back, reload the page and try again."
            };
            error_page(status, Chrome::bare(), "Something went wrong", message)
        })?;
        match csrf_failure(state, &headers, form.csrf()) {
            Some(rejection) => Err(rejection),
            None => Ok(Self(form)),
        }
    }
}

/// Checks a submitted CSRF token (see [`auth::csrf_ok`]): `None` when it is good, else the friendly 403
/// page to answer with.
pub fn csrf_failure(state: &AppState, headers: &HeaderMap, token: &str) -> Option<Response> {
    if auth::csrf_ok(state, headers, token) {
        None
    } else {
        Some(error_page(
            StatusCode::FORBIDDEN,
            Chrome::bare(),
            "This form has expired",
            "For your security we could not accept this form: it is out of date or was sent from another \
             site. Go back, reload the page and try again.",
        ))
    }
}

/// What the base layout needs: the CSRF token (for the log-out button), who is signed in, which
/// navigation item is current, and a one-off success message.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub csrf: String,
    pub set_cookie: Option<String>,
    pub user_name: Option<String>,
    pub section: &'static str,
    pub flash: Option<String>,
    /// Show the consent banner: the signed-in account has not chosen about product-usage analytics yet.
    pub ask_consent: bool,
}

impl Chrome {
    /// For pages seen by signed-out visitors (sign up, log in).
    pub fn anonymous(csrf: Csrf) -> Self {
        Self {
            csrf: csrf.token,
            set_cookie: csrf.set_cookie,
            user_name: None,
            section: "",
            flash: None,
            ask_consent: false,
        }
    }

    /// For error pages rendered before we know anything about the request.
    pub fn bare() -> Self {
        Self {
            csrf: String::new(),
            set_cookie: None,
            user_name: None,
            section: "",
            flash: None,
            ask_consent: false,
        }
    }

    pub fn with_flash(mut self, flash: Option<impl Into<String>>) -> Self {
        self.flash = flash.map(Into::into);
        self
    }

    pub fn asset_version(&self) -> &'static str {
        ASSET_VERSION
    }
}

/// A template that renders inside the base layout.
pub trait Page: Template {
    fn chrome(&self) -> &Chrome;
}

/// Implements [`Page`] for template structs with a `chrome: Chrome` field.
macro_rules! page {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::web::Page for $t {
            fn chrome(&self) -> &$crate::web::Chrome {
                &self.chrome
            }
        })*
    };
}
pub(crate) use page;

/// Renders `page` with `status`. Pages are never cached (they hold account data and CSRF tokens), and a
/// new CSRF cookie is set when the page introduced one.
pub fn respond<P: Page>(status: StatusCode, page: &P) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "rendering a dashboard page failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Something went wrong; it has been logged.</p>"),
            )
                .into_response();
        }
    };
    let mut resp = (status, Html(html)).into_response();
    no_store(&mut resp);
    if let Some(c) = &page.chrome().set_cookie {
        append_cookie(&mut resp, c);
    }
    resp
}

/// A 303 redirect (the answer to every successful POST, so a reload does not resubmit).
pub fn see_other(to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    no_store(&mut resp);
    resp
}

pub fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub fn append_cookie(resp: &mut Response, set_cookie: &str) {
    match HeaderValue::from_str(set_cookie) {
        Ok(v) => {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Err(e) => tracing::error!(error = %e, "invalid Set-Cookie value"),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub title: String,
    pub message: String,
}
page!(ErrorPage);

pub fn error_page(status: StatusCode, chrome: Chrome, title: &str, message: &str) -> Response {
    respond(
        status,
        &ErrorPage {
            chrome,
            status: status.as_u16(),
            title: title.into(),
            message: message.into(),
        },
    )
}

/// The 404 page: what malformed ids and other accounts' ids get alike.
pub fn not_found(chrome: Chrome) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        chrome,
        "Page not found",
        "There is nothing here. It may have been deleted, or the link is wrong.",
    )
}

/// An error page for a service error that no form can show (not found, outage, bug).
pub fn api_error(chrome: Chrome, e: ApiError) -> Response {
    log_if_internal(&e);
    match e {
        ApiError::NotFound => not_found(chrome),
        ApiError::Unavailable => error_page(
            e.status(),
            chrome,
            "Temporarily unavailable",
            "The service cannot reach its database right now. Please try again in a minute.",
        ),
        ApiError::Internal(_) => error_page(
            e.status(),
            chrome,
            "Something went wrong",
            "An unexpected error happened; it has been logged. Please try again.",
        ),
        other => error_page(
            other.status(),
            chrome,
            "Something went wrong",
            &capitalize(&other.user_message()),
        ),
    }
}

/// 5xx errors are logged with their cause chain here, since the dashboard does not go through
/// `ApiError`'s `IntoResponse`.
pub fn log_if_internal(e: &ApiError) {
    match e {
        ApiError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error")
        }
        ApiError::Unavailable => tracing::error!("database unavailable"),
        _ => {}
    }
}

/// The error of one form: next to its field when the field is on the form, else above the form.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    field: Option<&'static str>,
    message: Option<String>,
}

impl Errors {
    pub fn none() -> Self {
        Self::default()
    }

    /// `fields` are the field names this form shows; an error on any other field is shown above it.
    pub fn from_api(e: &ApiError, fields: &[&str]) -> Self {
        log_if_internal(e);
        let field = e.field().filter(|f| fields.contains(f));
        let message = match (e, field) {
            (ApiError::Conflict { field: "email" }, _) => {
                "An account with this email already exists. Log in instead, or use another email."
                    .to_string()
            }
            (ApiError::Validation(d), Some(f)) => sentence(f, &d.message),
            (ApiError::Internal(_), _) => {
                "Something went wrong on our side; it has been logged. Please try again.".into()
            }
            (other, _) => capitalize(&other.user_message()),
        };
        Self {
            field,
            message: Some(message),
        }
    }

    pub fn on_field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            message: Some(message.into()),
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: Some(message.into()),
        }
    }

    /// The message for `field`, if the error is about it.
    pub fn on(&self, field: &str) -> Option<&str> {
        if self.field == Some(field) {
            self.message.as_deref()
        } else {
            None
        }
    }

    /// The message when it is not about one field of the form.
    pub fn summary(&self) -> Option<&str> {
        if self.field.is_none() {
            self.message.as_deref()
        } else {
            None
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    pub fn any(&self) -> bool {
        self.message.is_some()
    }
}

/// "is required" on `email` reads "Email is required"; a message that is already a sentence is only
/// capitalised.
pub fn sentence(field: &str, message: &str) -> String {
    let label = match field {
        "name" => "Name",
        "email" => "Email",
        "password" => "Password",
        "company" => "Company",
        "current_password" => "Current password",
        "new_password" => "New password",
        "question" => "Question",
        "answer" => "Answer",
        "instructions" => "Instructions",
        "provider" => "Provider",
        "model" => "Model",
        "temperature" => "Temperature",
        "fallback_reply" => "Fallback reply",
        "message" => "Message",
        "max_tokens" => "Max tokens",
        "fallback_chain" => "Fallback chain",
        "api_key" => "API key",
        "url" => "Website address",
        "max_pages" => "Max pages",
        "max_depth" => "Max depth",
        "sync_schedule" => "Re-sync schedule",
        "embedding" => "Embeddings",
        "query" => "Question",
        "mode" => "Search mode",
        _ => "",
    };
    let starts_predicate = ["is ", "must ", "contains "]
        .iter()
        .any(|p| message.starts_with(p));
    if !label.is_empty() && starts_predicate {
        format!("{label} {message}.")
    } else {
        capitalize(message)
    }
}

pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An HTML checkbox: present ("on", or "true" from scripts) means ticked.
pub fn checked(value: &str) -> bool {
    matches!(value.trim(), "on" | "true" | "1" | "yes")
}

/// The first known flag in the query string (`?saved=1`) mapped to its fixed message. Only fixed texts
/// are shown, so a crafted link cannot put words on our page.
pub fn flash(query: Option<&str>, known: &[(&str, &'static str)]) -> Option<&'static str> {
    known
        .iter()
        .find(|(k, _)| has_key(query, k))
        .map(|(_, m)| *m)
}

/// Whether the query string has `key` (`?models=1`, `?models`).
pub fn has_key(query: Option<&str>, key: &str) -> bool {
    query_value(query, key).is_some()
}

/// The raw value of `key` in the query string (`""` for a bare `?key`). Only for values that are then
/// parsed into something known (an id, a provider name): never shown as is.
pub fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A unix-ms timestamp as a day, e.g. "5 Mar 2025" (UTC).
pub fn date(ms: i64) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:short] [year]");
    to_datetime(ms)
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| "—".into())
}

/// A unix-ms timestamp with the time of day, e.g. "5 Mar 2025, 14:03 UTC".
pub fn date_time(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    to_datetime(ms)
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| "—".into())
}

fn to_datetime(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A count with thousands separators, e.g. "12,345".
pub fn thousands(n: &i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if *n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cuts `s` to at most `max` characters (on a character boundary).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_formatted_in_utc() {
        assert_eq!(date(0), "1 Jan 1970");
        // 2025-03-05T14:03:09.123Z
        assert_eq!(date(1_741_183_389_123), "5 Mar 2025");
        assert_eq!(date_time(1_741_183_389_123), "5 Mar 2025, 14:03 UTC");
        assert_eq!(date(i64::MAX), "—");
    }

    #[test]
    fn field_messages_read_as_sentences() {
        assert_eq!(sentence("email", "is required"), "Email is required.");
        assert_eq!(
            sentence(
                "age_16_or_older",
                "you must confirm that you are 16 or older to use MT Desk"
            ),
            "You must confirm that you are 16 or older to use MT Desk"
        );
        assert_eq!(
            sentence("new_password", "must be at least 10 characters"),
            "New password must be at least 10 characters."
        );
    }

    #[test]
    fn checkboxes_and_flashes() {
        assert!(checked("on"));
        assert!(checked("true"));
        assert!(!checked(""));
        assert!(!checked("off"));
        let known = [("saved", "Saved."), ("deleted", "Deleted.")];
        assert_eq!(flash(Some("deleted=1"), &known), Some("Deleted."));
        assert_eq!(flash(Some("x=<script>&saved"), &known), Some("Saved."));
        assert_eq!(flash(Some("other=1"), &known), None);
        assert_eq!(flash(None, &known), None);
        assert!(has_key(Some("a=1&models=1"), "models"));
        assert!(has_key(Some("models"), "models"));
        assert!(!has_key(Some("modelsx=1"), "models"));
        assert_eq!(query_value(Some("c=abc&answer=x1"), "answer"), Some("x1"));
        assert_eq!(query_value(Some("c=abc"), "answer"), None);
    }

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 10), "hi");
        assert_eq!(thousands(&0), "0");
        assert_eq!(thousands(&999), "999");
        assert_eq!(thousands(&1_234_567), "1,234,567");
        assert_eq!(thousands(&-1_000), "-1,000");
    }

    #[test]
    fn errors_go_next_to_known_fields_only() {
        let e = ApiError::Validation(mtdesk_domain::DomainError::invalid("email", "is required"));
        let on_form = Errors::from_api(&e, &["email"]);
        assert_eq!(on_form.on("email"), Some("Email is required."));
        assert_eq!(on_form.summary(), None);
        let elsewhere = Errors::from_api(&e, &["name"]);
        assert_eq!(elsewhere.on("email"), None);
        assert!(elsewhere.summary().is_some());
    }
}
