//! Meta's deauthorize and data-deletion callbacks (external-apis.md §6) through the deletion engine, and the
//! public status page.

use crate::channels::{APP_ID, APP_SECRET, MetaWorld, meta_vars, num_id};
use crate::helpers::TestApp;
use mtdesk_testkit::fake_meta::{self as meta, FakeMeta};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn signed(secret: &str, user_id: &str) -> String {
    mtdesk_privacy::signed_request::sign(
        secret.as_bytes(),
        &json!({"algorithm": "HMAC-SHA256", "issued_at": 1_700_000_000, "user_id": user_id}),
    )
}

async fn callback(app: &TestApp, path: &str, signed_request: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .form(&[("signed_request", signed_request)])
        .send()
        .await
        .expect("post");
    crate::helpers::json_of(resp).await
}

/// A world whose Page was connected by Facebook user `user_id` (debug_token names them).
async fn connected_by(user_id: &str) -> MetaWorld {
    let w = MetaWorld::start().await;
    w.fake.add_user(
        user_id,
        "Ann Lee",
        &format!("EAAU-{user_id}"),
        &[w.page_id.as_str()],
    );
    w.connect("messenger").await;
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_priv",
        "Do you ship to Canada?",
        meta::now_ms(),
    ))
    .await;
    w.drain().await;
    w
}

#[tokio::test]
async fn deauthorize_deletes_every_channel_the_meta_user_connected() {
    let user = num_id("55");
    let w = connected_by(&user).await;
    // A channel of someone else stays.
    w.connect("whatsapp").await;
    let needles = [w.page_id.as_str(), "Acme Shoes", "m_priv"];
    assert!(
        !mtdesk_storage::catalogue::find_traces(&w.app.state.store, &needles)
            .await
            .expect("scan")
            .is_empty()
    );
    // Refused first: wrong secret, wrong algorithm, garbage; nothing changes.
    for bad in [
        signed("not-the-secret", &user),
        mtdesk_privacy::signed_request::sign(
            APP_SECRET.as_bytes(),
            &json!({"algorithm": "HMAC-SHA1", "user_id": user}),
        ),
        "garbage".to_string(),
        String::new(),
    ] {
        let (status, v) = callback(&w.app, "/meta/deauthorize", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
    }
    let r = w
        .app
        .client
        .post(w.app.url("/meta/deauthorize"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    let (status, v) = callback(&w.app, "/meta/deauthorize", &signed(APP_SECRET, &user)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["kind"], "whatsapp");
    let traces = mtdesk_storage::catalogue::find_traces(
        &w.app.state.store,
        &[w.page_id.as_str(), "Acme Shoes", "m_priv", user.as_str()],
    )
    .await
    .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
    assert!(!w.fake.subscriptions().contains(&w.page_id));
    // The receipt names the subject only by a keyed hash.
    let receipts = w.app.state.store.list_receipts(10).await.expect("receipts");
    let r = receipts
        .iter()
        .find(|r| r.path == "meta_deauthorize")
        .expect("receipt");
    assert_eq!(r.scope, "meta_user");
    assert!(r.counts["conversations"].as_u64() >= Some(1));
    assert_eq!(
        r.subject_hash,
        w.app.state.privacy.subject_hash("meta_user", &user)
    );
    // Idempotent.
    let (status, _) = callback(&w.app, "/meta/deauthorize", &signed(APP_SECRET, &user)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn data_deletion_answers_a_status_url_that_shows_the_progress() {
    let user = num_id("55");
    let w = connected_by(&user).await;
    let (status, v) = callback(&w.app, "/meta/data-deletion", &signed(APP_SECRET, &user)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let code = v["confirmation_code"].as_str().expect("code").to_string();
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()) && code.len() >= 16);
    assert_eq!(v["url"], format!("{}/data-deletion/{code}", w.app.base));
    let page = w
        .app
        .client
        .get(v["url"].as_str().expect("url"))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains(&code));
    assert!(html.contains("Completed"), "{html}");
    assert!(
        !html.contains(&user) && !html.contains(&w.page_id),
        "no personal data on the page"
    );
    let traces = mtdesk_storage::catalogue::find_traces(
        &w.app.state.store,
        &[w.page_id.as_str(), "m_priv", user.as_str()],
    )
    .await
    .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
    // The same request again: a new code, and both resolve.
    let (status, again) = callback(&w.app, "/meta/data-deletion", &signed(APP_SECRET, &user)).await;
    assert_eq!(status, StatusCode::OK);
    let code2 = again["confirmation_code"].as_str().expect("code");
    assert_ne!(code2, code);
    for c in [code.as_str(), code2] {
        let r = w
            .app
            .client
            .get(w.app.url(&format!("/data-deletion/{c}")))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Unknown and hostile codes are 404 and never reflected.
    for c in ["nope000000000000", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"] {
        let r = w
            .app
            .client
            .get(w.app.url(&format!("/data-deletion/{c}")))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(!r.text().await.expect("body").contains("<script>alert"));
    }
    // A bad signature starts nothing.
    let (status, _) = callback(&w.app, "/meta/data-deletion", &signed("wrong", &user)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn meta_callbacks_are_refused_without_an_app_secret() {
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    let _ = meta_vars(&fake);
    let app = TestApp::spawn().await;
    for path in ["/meta/deauthorize", "/meta/data-deletion"] {
        let (status, v) = callback(&app, path, &signed(APP_SECRET, "1234567890")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {v}");
    }
}

#[tokio::test]
async fn the_privacy_and_data_deletion_pages_name_the_operator_and_the_paths() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_OPERATOR_NAME".into(), "Lee Shoes GmbH".into());
        v.insert(
            "MTDESK_PRIVACY_EMAIL".into(),
            "privacy@leeshoes.example".into(),
        );
    })
    .await;
    for path in ["/privacy", "/data-deletion"] {
        let r = app.client.get(app.url(path)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = r.text().await.expect("html");
        assert!(html.contains("Lee Shoes GmbH"), "{path}");
        assert!(html.contains("privacy@leeshoes.example"), "{path}");
    }
    let deletion = app
        .client
        .get(app.url("/data-deletion"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    for promise in [
        "Delete Account",
        "Disconnect",
        "Apps and websites",
        "2 business days",
        "30 days",
    ] {
        assert!(deletion.contains(promise), "{promise}");
    }
    let signup = app
        .client
        .get(app.url("/signup"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(signup.contains("href=\"/privacy\""));
    assert!(signup.contains("href=\"/data-deletion\""));
    // A bad address is refused at start-up.
    let bad = mtdesk::settings::Settings::from_vars(
        &[(
            "MTDESK_PRIVACY_EMAIL".to_string(),
            "not an email".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    assert!(bad.is_err());
}

#[tokio::test]
async fn messages_are_purged_after_the_accounts_retention() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_ret",
        "Do you ship to Canada?",
        meta::now_ms(),
    ))
    .await;
    w.drain().await;
    let day = 24 * 3600 * 1000;
    let now = mtdesk_domain::now_ms();
    let (status, r) = w
        .app
        .get("/api/v1/account/retention", &w.account.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["retention_days"], 365);
    assert_eq!(r["messages_due_within_7_days"], 0);
    // Nothing is younger than 12 months: nothing goes.
    assert_eq!(
        w.app
            .state
            .privacy
            .purge_expired(now + 100 * day)
            .await
            .expect("purge"),
        0
    );
    for bad in [0, 366, -5] {
        let (status, v) = w
            .app
            .api(
                reqwest::Method::PUT,
                "/api/v1/account/retention",
                Some(&w.account.token),
                Some(json!({"retention_days": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (status, r) = w
        .app
        .api(
            reqwest::Method::PUT,
            "/api/v1/account/retention",
            Some(&w.account.token),
            Some(json!({"retention_days": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["messages_due_within_7_days"], 2, "{r}");
    // Another account keeps 12 months.
    let other = w.app.sign_up(&crate::helpers::email("keeps")).await;
    let bot = w.app.create_chatbot(&other.token, "B").await;
    w.app.add_qa(&other.token, &bot, "Hours?", "9 to 5.").await;
    let (status, _) = w
        .app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &other.token,
            json!({"message": "Hours?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        w.app
            .state
            .privacy
            .purge_expired(now + 2 * day)
            .await
            .expect("purge"),
        0,
        "not yet"
    );
    assert!(
        w.app
            .state
            .privacy
            .purge_expired(now + 4 * day)
            .await
            .expect("purge")
            >= 3
    );
    assert!(w.conversations().await.is_empty());
    let traces =
        mtdesk_storage::catalogue::find_traces(&w.app.state.store, &[psid.as_str(), "m_ret"])
            .await
            .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
    let (_, kept) = w
        .app
        .get(
            &format!("/api/v1/chatbots/{bot}/conversations"),
            &other.token,
        )
        .await;
    assert_eq!(
        kept.as_array().map(Vec::len),
        Some(1),
        "the other account's 12 months still run"
    );
    let receipts = w.app.state.store.list_receipts(5).await.expect("receipts");
    assert!(receipts.iter().any(|r| r.scope == "retention"));
    // The dashboard shows and sets it.
    let tab = crate::tab::Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let page = tab.get("/account").await;
    assert!(
        page.body.contains("Message retention") && page.body.contains("value=\"3\""),
        "{}",
        page.body
    );
    let bad = tab
        .post(
            "/account/retention",
            &[("csrf", &page.csrf()), ("retention_days", "999")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = tab
        .post(
            "/account/retention",
            &[("csrf", &page.csrf()), ("retention_days", "90")],
        )
        .await;
    assert!(ok.status.is_redirection());
}

#[tokio::test]
async fn the_operator_deletes_an_account_reported_as_a_childs_at_once() {
    let app = TestApp::spawn().await;
    let acct = app.sign_up(&crate::helpers::email("child")).await;
    app.create_chatbot(&acct.token, "Bot").await;
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mtdesk"));
        cmd.args(args)
            .env("MTDESK_DATA_DIR", &app.data_dir)
            .env("MTDESK_DATABASE_URL", app.database_url())
            .env(
                "MTDESK_SECRET_KEY",
                "test-secret-key-0123456789abcdef0123456789",
            )
            .env("MTDESK_MODEL_DIR", app.data_dir.join("no-model"));
        cmd.output().expect("run mtdesk")
    };
    let base = ["admin", "account", "delete", "--email", acct.email.as_str()];
    let no_yes = run(&[&base[..], &["--reason", "under-16"]].concat());
    assert_eq!(no_yes.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_yes.stderr).contains("--yes"));
    let bad_reason = run(&[&base[..], &["--reason", "dislike", "--yes"]].concat());
    assert_eq!(bad_reason.status.code(), Some(1));
    let unknown = run(&[
        "admin",
        "account",
        "delete",
        "--email",
        "nobody@example.com",
        "--reason",
        "request",
        "--yes",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        app.get("/api/v1/account", &acct.token).await.0,
        StatusCode::OK,
        "nothing deleted yet"
    );
    let ok = run(&[&base[..], &["--reason", "under-16", "--yes"]].concat());
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("deleted account"));
    assert_eq!(
        app.get("/api/v1/account", &acct.token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let left = mtdesk_storage::catalogue::rows_referencing_account(&app.state.store, &acct.id)
        .await
        .expect("scan");
    assert!(left.iter().all(|(_, n)| *n == 0), "{left:?}");
    let receipts = app.state.store.list_receipts(5).await.expect("receipts");
    assert!(
        receipts
            .iter()
            .any(|r| r.scope == "account" && r.path == "operator_under_16"),
        "{receipts:?}"
    );
}
