//! The pages behind the links we email, and the forms that send them: "Confirm your email" (works signed
//! out), the verification resend button, "Forgot your password?", "Choose a new password" and "Undo the
//! email change". A link's secret is the capability: the reset and undo forms need no CSRF token (the
//! page holding the secret is what posts them). Opening a reset or undo link only shows a form; the link
//! is spent by the form's POST, so mail scanners that prefetch links cannot use them up. Unknown links
//! are 404 pages, used or expired ones 410, never a 5xx.

use crate::web::{
    self, Chrome, ClientIp, Csrf, CsrfForm, CsrfOnly, Errors, User, api_error, has_csrf, page,
    respond, see_other,
};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use mtdesk_http::auth::{self, SESSION_COOKIE};
use mtdesk_http::{ApiError, AppState, services};
use serde::Deserialize;

/// A message page: the result of opening a link.
#[derive(Template)]
#[template(path = "link_result.html")]
pub struct LinkResultPage {
    chrome: Chrome,
    title: String,
    message: String,
    /// Where to go next: (href, label).
    next: (&'static str, &'static str),
}
page!(LinkResultPage);

fn result_page(
    status: StatusCode,
    chrome: Chrome,
    title: &str,
    message: &str,
    next: (&'static str, &'static str),
) -> Response {
    respond(
        status,
        &LinkResultPage {
            chrome,
            title: title.into(),
            message: message.into(),
            next,
        },
    )
}

/// A link that cannot be used: 404 unknown, 410 used or expired (with what to do instead).
fn link_failed(e: ApiError, chrome: Chrome, again: (&'static str, &'static str)) -> Response {
    match &e {
        ApiError::Gone(m) => result_page(
            StatusCode::GONE,
            chrome,
            "This link no longer works",
            &format!("{}.", web::capitalize(m)),
            again,
        ),
        ApiError::NotFound => result_page(
            StatusCode::NOT_FOUND,
            chrome,
            "This link is not valid",
            "We do not know this link. Check that it was copied whole, or ask for a new one.",
            again,
        ),
        _ => api_error(chrome, e),
    }
}

fn with_retry_after(mut resp: Response, e: &ApiError) -> Response {
    if let ApiError::TooManyRequests(secs) = e
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `GET /verify-email/{secret}`: confirms the address (signed in or not).
pub async fn verify(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(secret): Path<String>,
) -> Response {
    let chrome = Chrome::anonymous(csrf);
    match services::verify_email(&state, &secret).await {
        Ok(account) => result_page(
            StatusCode::OK,
            chrome,
            "Email confirmed",
            &format!(
                "Thank you: {} is confirmed. You can now connect channels.",
                account.email
            ),
            ("/deploy", "Go to Deploy"),
        ),
        Err(e) => link_failed(
            e,
            chrome,
            ("/account#verify", "Send a new link from My Account"),
        ),
    }
}

/// `POST /account/verification`: sends a new confirmation link (one a minute, five a day).
pub async fn resend(
    State(state): State<AppState>,
    user: User,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    match services::resend_verification(&state, &user.account.id).await {
        Ok(()) => see_other("/account?verification=sent"),
        Err(ApiError::Busy(_)) => see_other("/account"),
        Err(e @ ApiError::TooManyRequests(secs)) => with_retry_after(
            result_page(
                e.status(),
                user.chrome("account"),
                "Please wait a moment",
                &format!(
                    "We sent a link recently. You can ask for another in {}. Check your spam folder too.",
                    crate::session::wait_text(secs)
                ),
                ("/account", "Back to My Account"),
            ),
            &e,
        ),
        Err(e) => api_error(user.chrome("account"), e),
    }
}

#[derive(Template)]
#[template(path = "forgot_password.html")]
pub struct ForgotPage {
    chrome: Chrome,
    email: String,
    sent: bool,
    errors: Errors,
}
page!(ForgotPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ForgotForm {
    csrf: String,
    email: String,
}
has_csrf!(ForgotForm);

/// `GET /forgot-password`.
pub async fn forgot_form(csrf: Csrf) -> Response {
    respond(
        StatusCode::OK,
        &ForgotPage {
            chrome: Chrome::anonymous(csrf),
            email: String::new(),
            sent: false,
            errors: Errors::none(),
        },
    )
}

/// `POST /forgot-password`: the same "check your inbox" whether or not the address has an account.
pub async fn forgot(
    State(state): State<AppState>,
    csrf: Csrf,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Response {
    let email = form.email.trim().to_string();
    match services::request_password_reset(&state, &email, &ip).await {
        Ok(()) => respond(
            StatusCode::OK,
            &ForgotPage {
                chrome: Chrome::anonymous(csrf),
                email,
                sent: true,
                errors: Errors::none(),
            },
        ),
        Err(e) => {
            let errors = match &e {
                ApiError::TooManyRequests(secs) => Errors::general(format!(
                    "Too many requests. Please wait {} and try again.",
                    crate::session::wait_text(*secs)
                )),
                other => Errors::from_api(other, &["email"]),
            };
            let resp = respond(
                e.status(),
                &ForgotPage {
                    chrome: Chrome::anonymous(csrf),
                    email,
                    sent: false,
                    errors,
                },
            );
            with_retry_after(resp, &e)
        }
    }
}

#[derive(Template)]
#[template(path = "reset_password.html")]
pub struct ResetPage {
    chrome: Chrome,
    secret: String,
    email: String,
    errors: Errors,
}
page!(ResetPage);

const AGAIN: (&str, &str) = ("/forgot-password", "Ask for a new link");

/// `GET /reset-password/{secret}`: the "choose a new password" form (does not use the link up).
pub async fn reset_form(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(secret): Path<String>,
) -> Response {
    let chrome = Chrome::anonymous(csrf);
    match services::check_reset_link(&state, &secret).await {
        Ok(account) => respond(
            StatusCode::OK,
            &ResetPage {
                chrome,
                secret,
                email: account.email,
                errors: Errors::none(),
            },
        ),
        Err(e) => link_failed(e, chrome, AGAIN),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    password: String,
}

/// `POST /reset-password/{secret}`: sets the password, signs out every session (this browser's too) and
/// sends to the login page. A weak password comes back on the form (422) and the link stays usable.
pub async fn reset(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(secret): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    match services::reset_password(&state, &secret, &form.password).await {
        Ok(_) => {
            let mut resp = see_other("/login?reset=1");
            web::append_cookie(&mut resp, &auth::clear_cookie(&state, SESSION_COOKIE));
            resp
        }
        Err(e @ ApiError::Validation(_)) => {
            let email = services::check_reset_link(&state, &secret)
                .await
                .map(|a| a.email)
                .unwrap_or_default();
            respond(
                e.status(),
                &ResetPage {
                    chrome: Chrome::anonymous(csrf),
                    secret,
                    email,
                    errors: Errors::from_api(&e, &["password"]),
                },
            )
        }
        Err(e) => link_failed(e, Chrome::anonymous(csrf), AGAIN),
    }
}

#[derive(Template)]
#[template(path = "undo_email.html")]
pub struct UndoPage {
    chrome: Chrome,
    secret: String,
    current: String,
    previous: String,
}
page!(UndoPage);

const UNDO_AGAIN: (&str, &str) = ("/forgot-password", "Reset your password");

/// `GET /undo-email/{secret}`: what undoing would do, with the button that does it.
pub async fn undo_form(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(secret): Path<String>,
) -> Response {
    let chrome = Chrome::anonymous(csrf);
    match services::check_undo_link(&state, &secret).await {
        Ok((account, previous)) => respond(
            StatusCode::OK,
            &UndoPage {
                chrome,
                secret,
                current: account.email,
                previous,
            },
        ),
        Err(e) => link_failed(e, chrome, UNDO_AGAIN),
    }
}

/// `POST /undo-email/{secret}`: restores the previous address and signs out every session.
pub async fn undo(
    State(state): State<AppState>,
    csrf: Csrf,
    Path(secret): Path<String>,
) -> Response {
    let chrome = Chrome::anonymous(csrf);
    match services::undo_email_change(&state, &secret).await {
        Ok(account) => {
            let mut resp = result_page(
                StatusCode::OK,
                chrome,
                "Email change undone",
                &format!(
                    "Your account uses {} again, and every session was signed out. If you did not change \
                     the address yourself, choose a new password now.",
                    account.email
                ),
                ("/forgot-password", "Reset your password"),
            );
            web::append_cookie(&mut resp, &auth::clear_cookie(&state, SESSION_COOKIE));
            resp
        }
        Err(e @ ApiError::Conflict { .. }) => result_page(
            e.status(),
            chrome,
            "The old address is taken",
            "Another account uses your previous address now, so it cannot be restored. Reset your \
             password and contact us.",
            UNDO_AGAIN,
        ),
        Err(e) => link_failed(e, chrome, UNDO_AGAIN),
    }
}
