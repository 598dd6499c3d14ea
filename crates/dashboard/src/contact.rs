//! The public contact page (`/contact`): name, email, topic (support, billing, privacy request) and a
//! message, stored for the operator (`mtdesk admin contact …`) and mailed to the operator's address
//! (`MTDESK_PRIVACY_EMAIL`). A privacy request also becomes a draft deletion request in the operator's
//! tooling. Spam is kept out without a third-party captcha: the form carries its render time signed by
//! the server (sent in under 2 s = a bot, older than a day = reload), a hidden honeypot field, a cap on
//! links, and rate limits per IP address and for everyone together, counted in the database.

use crate::web::{Chrome, ClientIp, Csrf, CsrfForm, Errors, has_csrf, page, respond, see_other};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use mtdesk_domain::contact::{ContactMessage, ContactTopic, FormCheck, check_form};
use mtdesk_domain::now_ms;
use mtdesk_http::AppState;
use mtdesk_privacy::requests::NewRequest;
use mtdesk_storage::contact::{ContactLimits, ContactRefusal, NewContact};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "contact.html")]
pub struct ContactPage {
    chrome: Chrome,
    operator: String,
    stamp: String,
    name: String,
    email: String,
    topic: String,
    message: String,
    errors: Errors,
    sent: bool,
}
page!(ContactPage);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactForm {
    csrf: String,
    name: String,
    email: String,
    topic: String,
    message: String,
    /// Signed render time (`<ms>.<hmac>`).
    stamp: String,
    /// The honeypot: hidden from people by CSS, filled in by naive bots.
    website: String,
}
has_csrf!(ContactForm);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactQuery {
    sent: Option<String>,
    topic: Option<String>,
}

/// `<ms>.<hex HMAC(secret, "contact:<ms>")>`.
fn stamp(secret: &[u8], ms: i64) -> String {
    format!("{ms}.{}", stamp_mac(secret, ms))
}

fn stamp_mac(secret: &[u8], ms: i64) -> String {
    mtdesk_http::auth::keyed_hex(secret, &format!("contact:{ms}"))
}

/// The render time of a stamp this server signed, or `None`.
fn verify_stamp(secret: &[u8], stamp: &str) -> Option<i64> {
    let (ms, mac) = stamp.trim().split_once('.')?;
    let ms: i64 = ms.parse().ok()?;
    let expected = stamp_mac(secret, ms);
    (!expected.is_empty()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            mac.as_bytes(),
        )))
    .then_some(ms)
}

fn page_for(state: &AppState, csrf_chrome: Chrome) -> ContactPage {
    ContactPage {
        chrome: csrf_chrome,
        operator: state.config.operator_name.clone(),
        stamp: stamp(&state.config.secret_key, now_ms()),
        name: String::new(),
        email: String::new(),
        topic: "support".into(),
        message: String::new(),
        errors: Errors::none(),
        sent: false,
    }
}

/// `GET /contact` (`?topic=privacy` preselects the topic; `?sent=1` after a message went out).
pub async fn form(
    State(state): State<AppState>,
    csrf: Csrf,
    Query(q): Query<ContactQuery>,
) -> Response {
    let mut page = page_for(&state, Chrome::anonymous(csrf));
    page.sent = q.sent.is_some();
    if let Some(t) = q.topic.as_deref().and_then(|t| ContactTopic::parse(t).ok()) {
        page.topic = t.as_str().into();
    }
    respond(StatusCode::OK, &page)
}

/// `POST /contact`.
pub async fn send(
    State(state): State<AppState>,
    csrf: Csrf,
    ClientIp(ip): ClientIp,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Response {
    let now = now_ms();
    let mut page = page_for(&state, Chrome::anonymous(csrf));
    page.name = form.name.clone();
    page.email = form.email.clone();
    page.topic = form.topic.clone();
    page.message = form.message.clone();
    match check_form(
        verify_stamp(&state.config.secret_key, &form.stamp),
        &form.website,
        now,
    ) {
        FormCheck::Human => {}
        // Answered like a success so a bot learns nothing; nothing is stored or sent.
        FormCheck::Bot => {
            tracing::info!("contact form: a submission looked automated and was dropped");
            return see_other("/contact?sent=1");
        }
        FormCheck::Expired => {
            page.errors = Errors::general(
                "This form is out of date. Your text is still below: check it and send again.",
            );
            return respond(StatusCode::BAD_REQUEST, &page);
        }
    }
    let parsed = match ContactMessage::parse(&form.name, &form.email, &form.topic, &form.message) {
        Ok(m) => m,
        Err(e) => {
            page.errors = Errors::from_api(&e.into(), &["name", "email", "topic", "message"]);
            return respond(StatusCode::BAD_REQUEST, &page);
        }
    };
    if !mtdesk_email::deliverable(parsed.email.as_str()) {
        page.errors = Errors::on_field(
            "email",
            "We cannot reply to this address. Use a plain address such as ann@example.com.",
        );
        return respond(StatusCode::BAD_REQUEST, &page);
    }
    let new = NewContact {
        name: parsed.name.clone(),
        email: parsed.email.as_str().to_string(),
        topic: parsed.topic.as_str().to_string(),
        message: parsed.message.clone(),
        ip_hash: mtdesk_http::auth::keyed_hex(
            &state.config.secret_key,
            &format!("contact-ip:{ip}"),
        ),
    };
    let record = match state
        .store
        .insert_contact(&new, ContactLimits::default())
        .await
    {
        Ok(r) => r,
        Err(ContactRefusal::RateLimited { retry_after_s }) => {
            page.errors = Errors::general(format!(
                "Too many messages were sent from here recently. Please try again in {} minutes, \
                 or write to us by email.",
                (retry_after_s + 59) / 60
            ));
            let mut resp = respond(StatusCode::TOO_MANY_REQUESTS, &page);
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        Err(ContactRefusal::Storage(e)) => {
            return crate::web::api_error(page.chrome.clone(), e.into());
        }
    };
    let mut request_id = None;
    if parsed.topic == ContactTopic::Privacy {
        let request = state
            .privacy
            .add_request(NewRequest {
                email: record.email.clone(),
                name: record.name.clone(),
                scope: mtdesk_domain::privacy_request::RequestScope::Other,
                description: Some(record.message.clone()),
                origin: "contact_form",
                received_at: Some(record.created_at),
            })
            .await;
        match request {
            Ok(r) => {
                if let Err(e) = state.store.set_contact_request(&record.id, &r.id).await {
                    tracing::error!(error = %e, "linking a contact message to its request failed");
                }
                request_id = Some(r.id);
            }
            // The message is stored either way; the operator sees it and records the request by hand.
            Err(e) => {
                tracing::error!(error = %e, "a privacy message could not become a draft request")
            }
        }
    }
    notify_operator(&state, &record, parsed.topic, request_id.as_deref()).await;
    tracing::info!(contact.id = %record.id, topic = parsed.topic.as_str(), "contact message received");
    see_other("/contact?sent=1")
}

/// Mails the operator (when `MTDESK_PRIVACY_EMAIL` is set; otherwise the message waits in
/// `mtdesk admin contact list`).
async fn notify_operator(
    state: &AppState,
    record: &mtdesk_storage::contact::ContactRecord,
    topic: ContactTopic,
    request_id: Option<&str>,
) {
    let Some(to) = state.config.privacy_email.as_deref() else {
        tracing::warn!(
            "contact message stored; MTDESK_PRIVACY_EMAIL is not set, so nobody is mailed"
        );
        return;
    };
    let site = mtdesk_email::Site {
        name: state.config.operator_name.clone(),
        public_url: state.config.public_url.clone(),
    };
    let mail = mtdesk_email::messages::contact_message(
        &site,
        &record.id,
        &record.name,
        &record.email,
        topic.label(),
        &record.message,
        request_id,
        record.created_at,
    );
    let queued = match mail {
        Ok(m) => state.outbox.enqueue(None, to, m).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = queued {
        tracing::error!(error = %e, "queueing the contact message for the operator failed");
    }
}
