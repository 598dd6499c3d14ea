//! Signing up, logging in and out.

use crate::web::{
    self, Chrome, ClientIp, Csrf, CsrfForm, CsrfOnly, Errors, api_error, has_csrf, page, respond,
    see_other,
};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use mtdesk_domain::{AccountId, NewAccount};
use mtdesk_http::auth::{self, SESSION_COOKIE};
use mtdesk_http::{ApiError, AppState, services};
use serde::Deserialize;

/// `GET /`: the chatbots for a signed-in visitor, the login page for anyone else.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if auth::session_account(&state, &headers).await.is_some() {
        see_other("/chatbots")
    } else {
        see_other("/login")
    }
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    chrome: Chrome,
    name: String,
    email: String,
    company: String,
    age: bool,
    errors: Errors,
}
page!(SignupPage);

const SIGNUP_FIELDS: &[&str] = &["name", "email", "password", "company", "age_16_or_older"];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignupForm {
    csrf: String,
    name: String,
    email: String,
    password: String,
    company: String,
    age_16_or_older: String,
}
has_csrf!(SignupForm);

pub async fn signup_form(csrf: Csrf) -> Response {
    respond(
        StatusCode::OK,
        &SignupPage {
            chrome: Chrome::anonymous(csrf),
            name: String::new(),
            email: String::new(),
            company: String::new(),
            age: false,
            errors: Errors::none(),
        },
    )
}

/// `POST /signup`: creates the account and signs it in. On an error the form comes back with what was
/// typed (never the password) and the message next to the field: 422, or 409 for a taken email.
pub async fn signup(
    State(state): State<AppState>,
    csrf: Csrf,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Response {
    let age = web::checked(&form.age_16_or_older);
    let result =
        match NewAccount::parse(&form.name, &form.email, &form.company, &form.password, age) {
            Ok(new) => services::sign_up(&state, new).await,
            Err(e) => Err(e.into()),
        };
    match result {
        Ok(account) => {
            // The device of the sign-up is known from the start: no "new sign-in" notice for it.
            services::remember_device(&state, &account.id, user_agent(&headers)).await;
            begin_session(&state, &headers, &account.id).await
        }
        Err(e) => respond(
            e.status(),
            &SignupPage {
                chrome: Chrome::anonymous(csrf),
                name: form.name,
                email: form.email,
                company: form.company,
                age,
                errors: Errors::from_api(&e, SIGNUP_FIELDS),
            },
        ),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    chrome: Chrome,
    email: String,
    errors: Errors,
}
page!(LoginPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
}
has_csrf!(LoginForm);

fn user_agent(headers: &HeaderMap) -> &str {
    mtdesk_http::api::account::user_agent(headers)
}

pub async fn login_form(csrf: Csrf, RawQuery(query): RawQuery) -> Response {
    let flash = web::flash(
        query.as_deref(),
        &[(
            "reset",
            "Your password was changed and every session was signed out. Log in with the new password.",
        )],
    );
    respond(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::anonymous(csrf).with_flash(flash),
            email: String::new(),
            errors: Errors::none(),
        },
    )
}

/// `POST /login`: 401 for wrong credentials (never saying which part), 429 with `Retry-After` when
/// throttled, else a new session (replacing this browser's old one) and 303 to the chatbots.
pub async fn login(
    State(state): State<AppState>,
    csrf: Csrf,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    let email = form.email.trim();
    match services::log_in(&state, email, &form.password, &ip).await {
        Ok(account) => {
            services::note_sign_in(&state, &account, user_agent(&headers)).await;
            begin_session(&state, &headers, &account.id).await
        }
        Err(e) => {
            let errors = match &e {
                ApiError::InvalidCredentials => {
                    Errors::general("The email or password is incorrect.")
                }
                ApiError::TooManyRequests(secs) => Errors::general(format!(
                    "Too many failed attempts. For your security, please wait {} and try again.",
                    wait_text(*secs)
                )),
                other => Errors::from_api(other, &[]),
            };
            let mut resp = respond(
                e.status(),
                &LoginPage {
                    chrome: Chrome::anonymous(csrf),
                    email: form.email.clone(),
                    errors,
                },
            );
            if let ApiError::TooManyRequests(secs) = e
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

pub(crate) fn wait_text(secs: u64) -> String {
    match secs {
        0..=1 => "a second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "a minute".into(),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// Starts a session (ending this browser's previous one), sets the cookie and goes to the chatbots.
async fn begin_session(state: &AppState, headers: &HeaderMap, account: &AccountId) -> Response {
    let old = auth::cookie(headers, SESSION_COOKIE);
    match auth::start_session(state, account, old.as_deref()).await {
        Ok(value) => {
            let cookie = auth::set_cookie(
                state,
                SESSION_COOKIE,
                &value,
                Some(state.config.session_ttl),
            );
            let mut resp = see_other("/chatbots");
            web::append_cookie(&mut resp, &cookie);
            resp
        }
        Err(e) => api_error(Chrome::bare(), e),
    }
}

/// `POST /logout`: ends the session in the database (not only in the browser) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    if let Some(raw) = auth::cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.delete_session(&auth::sha256_hex(&raw)).await
    {
        return api_error(Chrome::bare(), e.into());
    }
    let mut resp = see_other("/login");
    web::append_cookie(&mut resp, &auth::clear_cookie(&state, SESSION_COOKIE));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_human() {
        assert_eq!(wait_text(1), "a second");
        assert_eq!(wait_text(42), "42 seconds");
        assert_eq!(wait_text(61), "a minute");
        assert_eq!(wait_text(900), "15 minutes");
    }
}
