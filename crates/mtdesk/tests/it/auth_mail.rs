//! Email verification, password reset and security notices, through a real SMTP sink: the links are
//! taken from the mails as a person would click them.

use crate::helpers::{PASSWORD, TestAccount, TestApp, email};
use crate::tab::Tab;
use mtdesk_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const CHROME_WINDOWS_UPDATED: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.1.2 Safari/537.36";

async fn app_with_mail() -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    (app, sink)
}

async fn db(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database")
}

async fn exec(app: &TestApp, sql: &str) {
    let mut conn = db(app).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("sql");
}

/// Mails to `to` whose subject contains `subject`, as received so far.
fn mails_about(sink: &SmtpSink, to: &str, subject: &str) -> Vec<ReceivedMail> {
    sink.messages()
        .into_iter()
        .filter(|m| {
            m.to.iter().any(|t| t == to)
                && m.header("Subject").unwrap_or_default().contains(subject)
        })
        .collect()
}

/// Waits for the `n`-th mail to `to` about `subject`.
async fn mail_about(sink: &SmtpSink, n: usize, to: &str, subject: &str) -> ReceivedMail {
    for _ in 0..400 {
        if let Some(m) = mails_about(sink, to, subject).into_iter().nth(n - 1) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "no mail #{n} about {subject:?} to {to}: {:?}",
        sink.messages()
            .iter()
            .map(|m| (m.to.clone(), m.header("Subject")))
            .collect::<Vec<_>>()
    )
}

/// The path of the first link to `<base>/<kind>/…` in the mail's text part.
fn link_in(app: &TestApp, mail: &ReceivedMail, kind: &str) -> String {
    let text = mail.text_part().expect("text part");
    let prefix = format!("{}/{kind}/", app.base);
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {kind} link in {text}"));
    let rest = &text[at + app.base.len()..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].to_string()
}

fn secret_of(path: &str) -> String {
    path.rsplit('/').next().expect("secret").to_string()
}

fn tab_with_agent(app: &TestApp, agent: &str) -> Tab {
    Tab {
        client: reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        base: app.base.clone(),
    }
}

async fn log_in(tab: &Tab, email: &str, password: &str) -> crate::tab::Page {
    let csrf = tab.get("/login").await.csrf();
    tab.post(
        "/login",
        &[("email", email), ("password", password), ("csrf", &csrf)],
    )
    .await
}

async fn account_json(app: &TestApp, a: &TestAccount) -> Value {
    let (status, body) = app.get("/api/v1/account", &a.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn the_sign_up_link_verifies_the_address_once_and_a_reused_link_is_gone() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up_unverified(&email("verify")).await;
    assert_eq!(account_json(&app, &a).await["email_verified"], false);
    let mail = mail_about(&sink, 1, &a.email, "Confirm your email").await;
    assert!(mail.html_part().expect("html").contains("/verify-email/"));
    let link = link_in(&app, &mail, "verify-email");

    // Opened in a browser that is not signed in.
    let anonymous = Tab::new(&app);
    let page = anonymous.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Email confirmed"), "{}", page.body);
    assert_eq!(account_json(&app, &a).await["email_verified"], true);

    let again = anonymous.get(&link).await;
    assert_eq!(again.status, StatusCode::GONE, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/account/verification/confirm",
            None,
            Some(json!({"token": secret_of(&link)})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "link_expired_or_used");

    // Verified: nothing to resend.
    let (status, _) = app
        .post("/api/v1/account/verification", &a.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_expired_verification_link_is_gone_and_leaves_the_account_unverified() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up_unverified(&email("expired")).await;
    let link = link_in(
        &app,
        &mail_about(&sink, 1, &a.email, "Confirm your email").await,
        "verify-email",
    );
    exec(
        &app,
        &format!(
            "UPDATE email_links SET expires_at = 1 WHERE account_id = '{}'",
            a.id
        ),
    )
    .await;
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/account/verification/confirm",
            None,
            Some(json!({"token": secret_of(&link)})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("expired"));
    let page = Tab::new(&app).get(&link).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(account_json(&app, &a).await["email_verified"], false);
}

#[tokio::test]
async fn resending_the_verification_is_throttled_per_minute_and_per_day() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up_unverified(&email("resend")).await;
    let backdate = format!(
        "UPDATE email_links SET created_at = created_at - 120000 WHERE account_id = '{}'",
        a.id
    );
    // The sign-up's link was just sent: wait a minute.
    let resp = app
        .client
        .post(app.url("/api/v1/account/verification"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // Four more over the day (a minute apart), then the daily limit of five.
    for n in 2..=5 {
        exec(&app, &backdate).await;
        let (status, body) = app
            .post("/api/v1/account/verification", &a.token, json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "resend {n}: {body}");
        mail_about(&sink, n, &a.email, "Confirm your email").await;
    }
    exec(&app, &backdate).await;
    let (status, body) = app
        .post("/api/v1/account/verification", &a.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Every link sent works (the newest verifies the account).
    let latest = mail_about(&sink, 5, &a.email, "Confirm your email").await;
    let page = Tab::new(&app)
        .get(&link_in(&app, &latest, "verify-email"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

#[tokio::test]
async fn an_unverified_account_can_build_but_not_connect_a_channel() {
    let app = TestApp::spawn().await;
    let a = app.sign_up_unverified(&email("unverified")).await;
    let bot = app.create_chatbot(&a.token, "Shoes").await;
    let (status, body) = app
        .post(
            "/api/v1/channels",
            &a.token,
            json!({"kind": "whatsapp", "chatbot_id": bot, "phone_number_id": "123", "waba_id": "456", "access_token": "EAAtoken"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "email_not_verified");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("Verify your email address before connecting a channel"),
        "{body}"
    );

    let tab = Tab::new(&app);
    assert!(
        log_in(&tab, &a.email, PASSWORD)
            .await
            .status
            .is_redirection()
    );
    let deploy = tab.get("/deploy").await;
    assert!(
        deploy.body.contains("id=\"verify-first\""),
        "{}",
        deploy.body
    );
    assert!(deploy.body.contains("id=\"resend-verification\""));
    let csrf = deploy.csrf();
    let refused = tab
        .post(
            "/deploy/connect",
            &[
                ("csrf", &csrf),
                ("kind", "whatsapp"),
                ("chatbot_id", &bot),
                ("phone_number_id", "123"),
                ("waba_id", "456"),
                ("access_token", "EAAtoken"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("Verify your email address"));
    let fb = tab
        .get(&format!("/deploy/facebook?kind=messenger&chatbot_id={bot}"))
        .await;
    assert_eq!(fb.status, StatusCode::FORBIDDEN);
    let account = tab.get("/account").await;
    assert!(account.body.contains("id=\"resend-verification\""));

    // Once verified, the same request gets past the check (here: Meta is not configured on this server).
    let verified = app.sign_up(&email("verified")).await;
    let bot = app.create_chatbot(&verified.token, "Shoes").await;
    let (status, body) = app
        .post(
            "/api/v1/channels",
            &verified.token,
            json!({"kind": "whatsapp", "chatbot_id": bot, "phone_number_id": "123", "waba_id": "456", "access_token": "EAAtoken"}),
        )
        .await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(account_json(&app, &verified).await["email_verified"], true);
}

#[tokio::test]
async fn a_password_reset_sets_the_password_ends_every_session_and_works_once() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("reset")).await;
    let old_session = Tab::new(&app);
    assert!(
        log_in(&old_session, &a.email, PASSWORD)
            .await
            .status
            .is_redirection()
    );

    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/password-reset",
            None,
            Some(json!({"email": a.email.to_uppercase()})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let link = link_in(
        &app,
        &mail_about(&sink, 1, &a.email, "Reset your").await,
        "reset-password",
    );
    let browser = Tab::new(&app);
    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("Choose a new password"));

    // A weak password is refused and the link stays usable.
    let weak = browser.post(&link, &[("password", "short")]).await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.body
    );
    assert!(
        weak.body.contains("at least 10 characters"),
        "{}",
        weak.body
    );
    assert_eq!(browser.get(&link).await.status, StatusCode::OK);
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/password-reset/confirm",
            None,
            Some(json!({"token": secret_of(&link), "password": "aaaaaaaaaaaaaa"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let done = browser
        .post(&link, &[("password", "a brand new passphrase")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/login?reset=1");
    assert!(
        browser
            .get("/login?reset=1")
            .await
            .body
            .contains("Your password was changed")
    );

    // Every session ended; the link is spent; only the new password works.
    assert_eq!(old_session.get("/account").await.location(), "/login");
    assert_eq!(browser.get(&link).await.status, StatusCode::GONE);
    let reused = browser
        .post(&link, &[("password", "yet another passphrase")])
        .await;
    assert_eq!(reused.status, StatusCode::GONE);
    let (status, _) = app
        .api(
            Method::POST,
            "/api/v1/password-reset/confirm",
            None,
            Some(json!({"token": secret_of(&link), "password": "yet another passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    let fresh = Tab::new(&app);
    assert_eq!(
        log_in(&fresh, &a.email, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        log_in(&fresh, &a.email, "a brand new passphrase")
            .await
            .status
            .is_redirection()
    );
    // API tokens are not sessions: they stay until revoked (README).
    assert_eq!(app.get("/api/v1/account", &a.token).await.0, StatusCode::OK);
    let notice = mail_about(&sink, 1, &a.email, "password was changed").await;
    assert!(
        notice
            .text_part()
            .expect("text")
            .contains("/forgot-password")
    );
}

#[tokio::test]
async fn a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("known")).await;
    let unknown = email("nobody");
    let ask = |address: String| {
        let app = &app;
        async move {
            app.api(
                Method::POST,
                "/api/v1/password-reset",
                None,
                Some(json!({ "email": address })),
            )
            .await
        }
    };
    let known_answer = ask(a.email.clone()).await;
    let unknown_answer = ask(unknown.clone()).await;
    assert_eq!(known_answer.0, StatusCode::ACCEPTED);
    assert_eq!(known_answer, unknown_answer);
    mail_about(&sink, 1, &a.email, "Reset your").await;
    crate::privacy_ops::wait_outbox_empty(&app).await;
    assert!(
        sink.messages()
            .iter()
            .all(|m| !m.to.iter().any(|t| t == &unknown)),
        "a mail went to an unknown address"
    );
    // Not an address: 422, the same for everyone.
    let (status, _) = ask("not-an-email".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The dashboard form answers alike for both.
    let tab = Tab::new(&app);
    let mut bodies = Vec::new();
    for address in [a.email.as_str(), unknown.as_str()] {
        let csrf = tab.get("/forgot-password").await.csrf();
        let page = tab
            .post("/forgot-password", &[("csrf", &csrf), ("email", address)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("id=\"reset-sent\""));
        bodies.push(page.body.replace(address, "ADDRESS"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(tab.get("/login").await.body.contains("/forgot-password"));

    // Throttled per address (and per IP) alike: 429 with Retry-After, for known and unknown addresses.
    let mut last = StatusCode::ACCEPTED;
    for _ in 0..10 {
        last = ask(unknown.clone()).await.0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_notified_once_per_device() {
    let (app, sink) = app_with_mail().await;
    let address = email("devices");
    // Sign up in Firefox on Linux: that device is known from the start.
    let firefox = tab_with_agent(&app, FIREFOX_LINUX);
    let csrf = firefox.get("/signup").await.csrf();
    let created = firefox
        .post(
            "/signup",
            &[
                ("csrf", &csrf),
                ("name", "Ann Lee"),
                ("email", &address),
                ("password", PASSWORD),
                ("company", "Lee Shoes"),
                ("age_16_or_older", "on"),
            ],
        )
        .await;
    assert!(created.status.is_redirection(), "{}", created.body);
    assert!(
        log_in(&tab_with_agent(&app, FIREFOX_LINUX), &address, PASSWORD)
            .await
            .status
            .is_redirection()
    );
    // A new device: one notice naming it; the same browser after an update is not new.
    let chrome = tab_with_agent(&app, CHROME_WINDOWS);
    assert!(
        log_in(&chrome, &address, PASSWORD)
            .await
            .status
            .is_redirection()
    );
    let notice = mail_about(&sink, 1, &address, "New sign-in").await;
    let text = notice.text_part().expect("text");
    assert!(text.contains("Chrome on Windows"), "{text}");
    assert!(text.contains("If this wasn't you, reset your password"));
    assert!(text.contains(&format!("{}/forgot-password", app.base)));
    assert!(
        log_in(
            &tab_with_agent(&app, CHROME_WINDOWS_UPDATED),
            &address,
            PASSWORD
        )
        .await
        .status
        .is_redirection()
    );
    // A failed login is no sign-in.
    log_in(
        &tab_with_agent(&app, "curl/8.0"),
        &address,
        "wrong password",
    )
    .await;
    crate::privacy_ops::wait_outbox_empty(&app).await;
    assert_eq!(mails_about(&sink, &address, "New sign-in").len(), 1);
    let devices = chrome.get("/account").await;
    assert!(
        devices.body.contains("Firefox on Linux") && devices.body.contains("Chrome on Windows")
    );
}

#[tokio::test]
async fn a_password_change_and_a_new_api_token_are_notified() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("notices")).await;
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"current_password": PASSWORD, "new_password": "another fine passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    mail_about(&sink, 1, &a.email, "password was changed").await;

    let (status, body) = app
        .post("/api/v1/tokens", &a.token, json!({"name": "zapier"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().expect("secret");
    let prefix = body["token"]["prefix"].as_str().expect("prefix");
    let notice = mail_about(&sink, 1, &a.email, "new API token").await;
    let text = notice.text_part().expect("text");
    assert!(text.contains("zapier") && text.contains(prefix), "{text}");
    assert!(
        !notice.data.contains(secret),
        "the secret must never be mailed"
    );
    // The sign-up's own token is not notified.
    assert_eq!(mails_about(&sink, &a.email, "new API token").len(), 1);
}

#[tokio::test]
async fn an_email_change_is_confirmed_again_and_can_be_undone_from_the_old_address() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("old")).await;
    let new_address = email("new");
    let session = Tab::new(&app);
    assert!(
        log_in(&session, &a.email, PASSWORD)
            .await
            .status
            .is_redirection()
    );
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"email": new_address, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], new_address.as_str());
    assert_eq!(body["email_verified"], false);

    let verify = link_in(
        &app,
        &mail_about(&sink, 1, &new_address, "Confirm your email").await,
        "verify-email",
    );
    let changed = mail_about(&sink, 1, &a.email, "was changed").await;
    let text = changed.text_part().expect("text");
    assert!(text.contains(&new_address), "{text}");
    let undo = link_in(&app, &changed, "undo-email");

    // Opening the link only asks; the button undoes.
    let anonymous = Tab::new(&app);
    let ask = anonymous.get(&undo).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(ask.body.contains(&a.email) && ask.body.contains("id=\"undo-submit\""));
    assert_eq!(account_json(&app, &a).await["email"], new_address.as_str());
    let done = anonymous.post(&undo, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Email change undone"));

    let account = account_json(&app, &a).await;
    assert_eq!(account["email"], a.email.as_str());
    assert_eq!(account["email_verified"], true);
    assert_eq!(session.get("/account").await.location(), "/login");
    // The change is void: its verification link and the undo link are spent.
    assert_eq!(anonymous.get(&verify).await.status, StatusCode::GONE);
    assert_eq!(anonymous.post(&undo, &[]).await.status, StatusCode::GONE);
    assert_eq!(account_json(&app, &a).await["email"], a.email.as_str());
}

#[tokio::test]
async fn deleting_the_account_sends_the_confirmation() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("bye")).await;
    let (status, body) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    mail_about(&sink, 1, &a.email, "has been deleted").await;
}

#[tokio::test]
async fn garbage_and_concurrent_link_uses_never_cause_a_5xx() {
    let (app, sink) = app_with_mail().await;
    let a = app.sign_up(&email("burst")).await;
    let tab = Tab::new(&app);
    let long = "f".repeat(5000);
    for path in [
        "/verify-email/x".to_string(),
        "/verify-email/%00%ff".to_string(),
        format!("/verify-email/{}", "a".repeat(64)),
        format!("/verify-email/{}", "A".repeat(64)),
        format!("/verify-email/{long}"),
        "/reset-password/..%2f..%2fetc".to_string(),
        format!("/reset-password/{}", "0".repeat(64)),
        "/undo-email/%E2%80%AE".to_string(),
        format!("/undo-email/{}", "9".repeat(64)),
    ] {
        let page = tab.get(&path).await;
        assert!(page.status.is_client_error(), "{path}: {}", page.status);
        let post = tab
            .post(&path, &[("password", "a brand new passphrase")])
            .await;
        assert!(
            post.status.is_client_error(),
            "POST {path}: {}",
            post.status
        );
    }
    for body in [
        json!({"token": "", "password": "a brand new passphrase"}),
        json!({"token": "x".repeat(10_000), "password": "a brand new passphrase"}),
        json!({"token": 5, "password": []}),
        json!({"email": "a@b.c"}),
    ] {
        for path in [
            "/api/v1/password-reset/confirm",
            "/api/v1/account/verification/confirm",
        ] {
            let (status, resp) = app.api(Method::POST, path, None, Some(body.clone())).await;
            assert!(status.is_client_error(), "{path} {body}: {status} {resp}");
        }
    }

    // Twenty concurrent uses of one reset link: exactly one wins, the others are told it is used.
    app.api(
        Method::POST,
        "/api/v1/password-reset",
        None,
        Some(json!({"email": a.email})),
    )
    .await;
    let link = link_in(
        &app,
        &mail_about(&sink, 1, &a.email, "Reset your").await,
        "reset-password",
    );
    let token = secret_of(&link);
    let attempts = (0..20).map(|i| {
        let token = token.clone();
        let app = &app;
        async move {
            app.api(
                Method::POST,
                "/api/v1/password-reset/confirm",
                None,
                Some(json!({"token": token, "password": format!("concurrent passphrase {i}")})),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::GONE),
        "{statuses:?}"
    );
}
