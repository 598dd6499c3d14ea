//! The dashboard over HTTP, as a browser without JavaScript uses it: forms, cookies, CSRF, throttling,
//! tenant isolation and Delete Account.

use crate::helpers::{PASSWORD, TestApp, email};
use crate::tab::{Page, Tab};
use mtdesk_storage::catalogue;
use reqwest::StatusCode;

impl Tab {
    /// GETs `page_path` for its CSRF token, then posts the form with it.
    async fn submit(&self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page_path).await.csrf();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        self.post(action, &form).await
    }

    async fn sign_up(&self, email: &str) -> Page {
        self.submit(
            "/signup",
            "/signup",
            &[
                ("name", "Ann Lee"),
                ("email", email),
                ("password", PASSWORD),
                ("company", "Lee Shoes"),
                ("age_16_or_older", "on"),
            ],
        )
        .await
    }

    async fn log_in(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}

fn chatbot_id_from(location: &str) -> String {
    location
        .trim_start_matches("/chatbots/")
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn sign_up_log_out_and_log_in_with_safe_cookies() {
    let app = TestApp::spawn().await;
    let tab = Tab::new(&app);
    let e = email("dash");
    let page = tab.sign_up(&e).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/chatbots");
    let session = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("mtdesk_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain-http instance: no Secure flag"
    );

    let page = tab.get("/chatbots").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("MT Desk"));

    let token = page.csrf();
    let page = tab.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(tab.get("/chatbots").await.location(), "/login");

    let page = tab.log_in(&e.to_uppercase(), PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let rotated = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("mtdesk_session="))
        .expect("new cookie");
    assert_ne!(
        rotated.split(';').next(),
        session.split(';').next(),
        "a new session id at every login"
    );
    assert_eq!(tab.get("/chatbots").await.status, StatusCode::OK);
}

#[tokio::test]
async fn https_instances_mark_cookies_secure() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "MTDESK_PUBLIC_URL".into(),
            "https://desk.example.com".into(),
        );
    })
    .await;
    let page = Tab::new(&app).get("/login").await;
    let csrf_cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("mtdesk_csrf="))
        .expect("csrf cookie");
    assert!(
        csrf_cookie.contains("Secure") && csrf_cookie.contains("HttpOnly"),
        "{csrf_cookie}"
    );
}

#[tokio::test]
async fn sign_up_form_refuses_without_age_confirmation_and_keeps_what_was_typed() {
    let app = TestApp::spawn().await;
    let tab = Tab::new(&app);
    let e = email("young");
    let page = tab
        .submit(
            "/signup",
            "/signup",
            &[
                ("name", "Young Person"),
                ("email", &e),
                ("password", PASSWORD),
                ("company", "School Club"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("16"), "the reason is shown");
    assert!(
        page.body.contains("Young Person")
            && page.body.contains(&e)
            && page.body.contains("School Club")
    );
    assert!(
        !page.body.contains(PASSWORD),
        "the password is never echoed back"
    );
    assert!(
        app.state.store.find_account_by_email(&e).await.is_err(),
        "no account created"
    );
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_or_from_another_origin_are_refused() {
    let app = TestApp::spawn().await;
    let tab = Tab::new(&app);
    tab.get("/signup").await;
    let e = email("csrf");
    let fields = [
        ("name", "A"),
        ("email", e.as_str()),
        ("password", PASSWORD),
        ("company", "C"),
        ("age_16_or_older", "on"),
    ];
    let mut form = fields.to_vec();
    form.push(("csrf", "forged"));
    assert_eq!(
        tab.post("/signup", &form).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        tab.post("/signup", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    // A valid token from another origin is still refused.
    let token = tab.get("/signup").await.csrf();
    let mut form = fields.to_vec();
    form.push(("csrf", &token));
    let resp = tab
        .client
        .post(format!("{}/signup", tab.base))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(app.state.store.find_account_by_email(&e).await.is_err());
    // A fresh browser (other cookie) cannot reuse this browser's token.
    let other = Tab::new(&app);
    other.get("/signup").await;
    assert_eq!(
        other.post("/signup", &form).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account() {
    let app = TestApp::spawn().await;
    let e = email("throttle");
    app.sign_up(&e).await;
    let tab = Tab::new(&app);
    for _ in 0..5 {
        let page = tab.log_in(&e, "wrong password!!").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = tab.log_in(&e, PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits: {}",
        page.body
    );
    // Another account from the same IP is not locked by this one.
    let other = email("free");
    app.sign_up(&other).await;
    assert_eq!(
        Tab::new(&app).log_in(&other, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn chatbot_qa_and_test_chat_work_without_javascript() {
    let app = TestApp::spawn().await;
    let tab = Tab::new(&app);
    tab.sign_up(&email("flow")).await;
    let page = tab
        .submit("/chatbots", "/chatbots", &[("name", "Helper")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let bot = chatbot_id_from(page.location());
    let qa_path = format!("/chatbots/{bot}/qa");
    let page = tab
        .submit(
            &qa_path,
            &qa_path,
            &[
                ("question", "Do you ship to Canada?"),
                ("answer", "Yes, in 5 days."),
            ],
        )
        .await;
    assert!(
        page.status.is_success() || page.status == StatusCode::SEE_OTHER,
        "{}",
        page.status
    );
    assert!(
        tab.get(&qa_path)
            .await
            .body
            .contains("Do you ship to Canada?")
    );
    let chat_path = format!("/chatbots/{bot}/chat");
    let page = tab
        .submit(
            &chat_path,
            &chat_path,
            &[("message", "do you ship to canada")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Yes, in 5 days."), "{}", page.body);
    // Settings save.
    let settings = format!("/chatbots/{bot}");
    let page = tab
        .submit(
            &settings,
            &settings,
            &[
                ("name", "Helper 2"),
                ("instructions", "Be brief."),
                ("provider", "offline"),
                ("model", ""),
                ("temperature", "0.5"),
                ("fallback_reply", "Ask us by email."),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(tab.get(&settings).await.body.contains("Helper 2"));
    // A bad value re-renders with the error and keeps the input.
    let page = tab
        .submit(
            &settings,
            &settings,
            &[
                ("name", "Helper 3"),
                ("provider", "offline"),
                ("temperature", "9"),
                ("fallback_reply", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("between 0 and 2") && page.body.contains("Helper 3"));
}

#[tokio::test]
async fn dashboard_pages_of_another_account_are_404() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("owner")).await;
    let bot = app.create_chatbot(&a.token, "Private bot").await;
    let qa = app
        .add_qa(&a.token, &bot, "Secret question?", "Secret answer.")
        .await;
    let tab = Tab::new(&app);
    tab.sign_up(&email("intruder")).await;
    for path in [
        format!("/chatbots/{bot}"),
        format!("/chatbots/{bot}/qa"),
        format!("/chatbots/{bot}/chat"),
    ] {
        let page = tab.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !page.body.contains("Private bot") && !page.body.contains("Secret"),
            "{path} leaked"
        );
    }
    let token = tab.get("/chatbots").await.csrf();
    for (path, fields) in [
        (
            format!("/chatbots/{bot}"),
            vec![
                ("name", "pwned"),
                ("provider", "offline"),
                ("temperature", "0.3"),
                ("fallback_reply", "x"),
            ],
        ),
        (format!("/chatbots/{bot}/delete"), vec![("confirm", "on")]),
        (
            format!("/chatbots/{bot}/qa"),
            vec![("question", "q"), ("answer", "a")],
        ),
        (
            format!("/chatbots/{bot}/qa/{qa}"),
            vec![("question", "q"), ("answer", "pwned")],
        ),
        (format!("/chatbots/{bot}/qa/{qa}/delete"), vec![]),
        (
            format!("/chatbots/{bot}/chat"),
            vec![("message", "Secret question?")],
        ),
    ] {
        let mut form = fields.clone();
        form.push(("csrf", &token));
        let page = tab.post(&path, &form).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "POST {path}");
        assert!(!page.body.contains("Secret"), "POST {path} leaked");
    }
    assert!(!tab.get("/chatbots").await.body.contains("Private bot"));
    let (_, pairs) = app
        .get(&format!("/api/v1/chatbots/{bot}/qa"), &a.token)
        .await;
    assert_eq!(pairs[0]["answer"], "Secret answer.");
    let (_, got) = app.get(&format!("/api/v1/chatbots/{bot}"), &a.token).await;
    assert_eq!(got["name"], "Private bot");
}

#[tokio::test]
async fn delete_account_from_my_account_removes_everything() {
    // The confirmation mail names the account until it is sent: a real SMTP server takes it.
    let sink = mtdesk_testkit::smtp_sink::SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    let tab = Tab::new(&app);
    let e = email("leaving");
    tab.sign_up(&e).await;
    let page = tab
        .submit("/chatbots", "/chatbots", &[("name", "Soon gone")])
        .await;
    let bot = chatbot_id_from(page.location());
    let qa_path = format!("/chatbots/{bot}/qa");
    tab.submit(
        &qa_path,
        &qa_path,
        &[("question", "Gone?"), ("answer", "Yes.")],
    )
    .await;
    let account = app
        .state
        .store
        .find_account_by_email(&e)
        .await
        .expect("account");

    let page = tab
        .submit(
            "/account",
            "/account/delete",
            &[("password", "wrong password!"), ("confirm", "on")],
        )
        .await;
    assert!(page.status.is_client_error(), "{}", page.status);
    assert!(app.state.store.find_account_by_email(&e).await.is_ok());

    let page = tab
        .submit(
            "/account",
            "/account/delete",
            &[("password", PASSWORD), ("confirm", "on")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.to_lowercase().contains("deleted"));
    assert!(
        page.body.contains("id=\"receipt-id\""),
        "the receipt is shown"
    );
    let mails = sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    assert_eq!(mails.first().map(|m| m.to.clone()), Some(vec![e.clone()]));
    crate::privacy_ops::wait_outbox_empty(&app).await;
    let left = catalogue::rows_referencing_account(&app.state.store, account.id.as_str())
        .await
        .expect("scan");
    assert!(left.iter().all(|(_, n)| *n == 0), "{left:?}");
    assert!(
        catalogue::find_traces(&app.state.store, &[account.id.as_str(), &e])
            .await
            .expect("scan")
            .is_empty()
    );
    assert_eq!(
        tab.get("/chatbots").await.location(),
        "/login",
        "the session is gone"
    );
}
