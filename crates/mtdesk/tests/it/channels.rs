//! Meta channels end to end: signed webhooks in (external-apis.md §1), replies out through the fake Graph
//! API (§2–§4), connect with a pasted token and with Facebook Login (§5), disconnect, the inbox and
//! take-over. The server's channel worker is driven with `drain_channels` (no sleeping).

use crate::helpers::{TestAccount, TestApp, email};
use crate::tab::Tab;
use mtdesk_testkit::fake_meta::{
    self as meta, FakeMeta, GraphBehavior, SignatureMode, WebhookSender,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

pub const APP_ID: &str = "424242";
pub const APP_SECRET: &str = "test_app_secret";
pub const VERIFY_TOKEN: &str = "verify-me-please";

/// Random numeric ids, so a trace scan can never match something else by accident.
pub fn num_id(prefix: &str) -> String {
    let n = u64::from_str_radix(&uuid::Uuid::new_v4().simple().to_string()[..12], 16).unwrap_or(7);
    format!("{prefix}{:015}", n % 1_000_000_000_000_000)
}

/// A server wired to a fake Meta, an account with a chatbot that knows one answer.
pub struct MetaWorld {
    pub app: TestApp,
    pub fake: FakeMeta,
    pub sender: WebhookSender,
    pub account: TestAccount,
    pub bot: String,
    pub page_id: String,
    pub page_token: String,
    pub ig_id: String,
    pub phone_id: String,
    pub waba_id: String,
    pub wa_token: String,
}

pub const ANSWER: &str = "Yes, we ship to Canada in 5 business days.";

pub fn meta_vars(fake: &FakeMeta) -> impl FnOnce(&mut std::collections::BTreeMap<String, String>) {
    let base = fake.base_url();
    move |vars| {
        vars.insert("MTDESK_META_APP_ID".into(), APP_ID.into());
        vars.insert("MTDESK_META_APP_SECRET".into(), APP_SECRET.into());
        vars.insert("MTDESK_META_VERIFY_TOKEN".into(), VERIFY_TOKEN.into());
        vars.insert("MTDESK_GRAPH_API_BASE".into(), base.clone());
        vars.insert("MTDESK_INSTAGRAM_API_BASE".into(), base.clone());
        vars.insert("MTDESK_FACEBOOK_DIALOG_BASE".into(), base);
    }
}

impl MetaWorld {
    pub async fn start() -> Self {
        let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
        let app = TestApp::spawn_with(meta_vars(&fake)).await;
        Self::with(app, fake).await
    }

    pub async fn with(app: TestApp, fake: FakeMeta) -> Self {
        let sender = WebhookSender::new(&app.url("/webhooks/meta"), APP_SECRET).tracking(&fake);
        let account = app.sign_up(&email("meta")).await;
        let bot = app.create_chatbot(&account.token, "Shop bot").await;
        app.add_qa(&account.token, &bot, "Do you ship to Canada?", ANSWER)
            .await;
        let page_id = num_id("11");
        let ig_id = num_id("1784");
        let phone_id = num_id("20");
        let waba_id = num_id("10");
        let page_token = format!("EAAB-page-{}", uuid::Uuid::new_v4().simple());
        let wa_token = format!("EAAG-system-{}", uuid::Uuid::new_v4().simple());
        fake.add_page(&page_id, "Acme Shoes", &page_token, Some(&ig_id));
        fake.add_whatsapp_number(&phone_id, &waba_id, "15550001111", &wa_token);
        Self {
            app,
            fake,
            sender,
            account,
            bot,
            page_id,
            page_token,
            ig_id,
            phone_id,
            waba_id,
            wa_token,
        }
    }

    pub async fn connect(&self, kind: &str) -> Value {
        let body = match kind {
            "messenger" => {
                json!({"kind": "messenger", "chatbot_id": self.bot, "page_id": self.page_id, "access_token": self.page_token})
            }
            "instagram" => {
                json!({"kind": "instagram", "chatbot_id": self.bot, "page_id": self.page_id, "instagram_account_id": self.ig_id, "access_token": self.page_token})
            }
            _ => {
                json!({"kind": "whatsapp", "chatbot_id": self.bot, "phone_number_id": self.phone_id, "waba_id": self.waba_id, "access_token": self.wa_token})
            }
        };
        let (status, v) = self
            .app
            .post("/api/v1/channels", &self.account.token, body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    pub async fn drain(&self) -> usize {
        self.app
            .state
            .channels
            .drain()
            .await
            .expect("channel work runs")
    }

    pub async fn post(&self, body: &Value) -> StatusCode {
        self.sender.post(body).await.status()
    }

    pub async fn conversations(&self) -> Vec<Value> {
        let (status, v) = self
            .app
            .get(
                &format!("/api/v1/chatbots/{}/conversations", self.bot),
                &self.account.token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }

    pub async fn transcript(&self, conversation: &str) -> Value {
        let (status, v) = self
            .app
            .get(
                &format!("/api/v1/chatbots/{}/conversations/{conversation}", self.bot),
                &self.account.token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }
}

impl Tab {
    /// Logs in through the form (a dashboard session for the account).
    pub async fn sign_in_as(&self, email: &str) {
        let csrf = self.get("/login").await.csrf();
        let page = self
            .post(
                "/login",
                &[
                    ("email", email),
                    ("password", crate::helpers::PASSWORD),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert!(page.status.is_redirection(), "login failed: {}", page.body);
    }
}

fn ts() -> i64 {
    meta::now_ms()
}

#[tokio::test]
async fn the_verification_handshake_echoes_the_challenge_only_for_our_token() {
    let w = MetaWorld::start().await;
    let ok = w
        .sender
        .handshake(Some("subscribe"), Some(VERIFY_TOKEN), "1158201444")
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.expect("body"), "1158201444");
    for (mode, token) in [
        (Some("subscribe"), Some("wrong-token")),
        (Some("unsubscribe"), Some(VERIFY_TOKEN)),
        (None, Some(VERIFY_TOKEN)),
        (Some("subscribe"), None),
    ] {
        let r = w.sender.handshake(mode, token, "reflect-me-999").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{mode:?} {token:?}");
        assert!(!r.text().await.expect("body").contains("reflect-me-999"));
    }
}

#[tokio::test]
async fn a_messenger_message_gets_exactly_one_reply_from_the_knowledge() {
    let w = MetaWorld::start().await;
    let ch = w.connect("messenger").await;
    assert_eq!(ch["status"], "connected");
    assert!(ch.get("access_token").is_none(), "{ch}");
    assert!(!ch.to_string().contains(&w.page_token));
    assert!(w.fake.subscriptions().contains(&w.page_id));

    let psid = num_id("7");
    let body = meta::messenger_text(&w.page_id, &psid, "m_first", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    // Durable before acknowledged: the raw event is in the database before any processing.
    assert_eq!(
        w.app
            .state
            .store
            .count_webhook_events()
            .await
            .expect("count"),
        1
    );
    assert!(w.drain().await >= 2);
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 1, "{sends:?}");
    let s = &sends[0];
    assert_eq!(s.platform, "messenger");
    assert_eq!(s.account_id, w.page_id);
    assert_eq!(s.recipient, psid);
    assert_eq!(s.token, w.page_token);
    assert_eq!(s.text, ANSWER);
    assert_eq!(s.messaging_type.as_deref(), Some("RESPONSE"));
    assert_eq!(
        w.app
            .state
            .store
            .count_webhook_events()
            .await
            .expect("count"),
        0,
        "processed events are deleted"
    );

    let convs = w.conversations().await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["channel"], "messenger");
    assert_eq!(convs[0]["contact_id"], psid.as_str());
    let t = w.transcript(convs[0]["id"].as_str().expect("id")).await;
    let msgs = t["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 2, "{t}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["delivery"], "sent");

    // The channel shows its last event and reply.
    let (_, ch) = w
        .app
        .get(
            &format!("/api/v1/channels/{}", ch["id"].as_str().expect("id")),
            &w.account.token,
        )
        .await;
    assert!(ch["last_event_at"].as_i64().is_some());
    assert!(ch["last_reply_at"].as_i64().is_some());
}

#[tokio::test]
async fn redelivered_messages_are_answered_once_sequentially_concurrently_and_across_batches() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    let one = meta::messenger_text(&w.page_id, &psid, "m_dup_1", "Do you ship to Canada?", ts());
    // Sequential redelivery.
    assert_eq!(w.post(&one).await, StatusCode::OK);
    assert_eq!(w.post(&one).await, StatusCode::OK);
    // Concurrent redelivery of another message.
    let two = meta::messenger_text(&w.page_id, &psid, "m_dup_2", "Do you ship to Canada?", ts());
    let posts = (0..6).map(|_| w.sender.post(&two));
    for r in futures_util::future::join_all(posts).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The first message again, inside a batch with a new one.
    let batch = meta::messenger_batch(&[(
        w.page_id.as_str(),
        vec![
            meta::messenger_text_item(&w.page_id, &psid, "m_dup_1", "Do you ship to Canada?", ts()),
            meta::messenger_text_item(&w.page_id, &psid, "m_dup_3", "Do you ship to Canada?", ts()),
        ],
    )]);
    assert_eq!(w.post(&batch).await, StatusCode::OK);
    // Two workers race over the same stored events.
    let (a, b) = tokio::join!(w.app.state.channels.drain(), w.app.state.channels.drain());
    a.expect("drain");
    b.expect("drain");
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 3, "{:?}", w.fake.sends());
    let t = w
        .transcript(w.conversations().await[0]["id"].as_str().expect("id"))
        .await;
    let users = t["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert_eq!(users, 3, "each message stored once: {t}");
}

#[tokio::test]
async fn bad_signatures_are_refused_and_nothing_is_stored() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    let body = meta::messenger_text(&w.page_id, &psid, "m_bad", "Do you ship to Canada?", ts());
    let bytes = serde_json::to_vec(&body).expect("json");
    for mode in [
        SignatureMode::Wrong,
        SignatureMode::Missing,
        SignatureMode::Sha1Only,
        SignatureMode::Custom("sha256=".into()),
        SignatureMode::Custom("sha256=zz".into()),
        SignatureMode::Custom(format!("md5={}", "a".repeat(64))),
        SignatureMode::Custom("sha256=".to_string() + &"0".repeat(64)),
    ] {
        let r = w.sender.post_raw(&bytes, mode.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{mode:?}");
    }
    // A valid signature over other bytes (the body was changed on the way).
    let sig = meta::meta_signature(APP_SECRET.as_bytes(), b"{\"object\":\"page\",\"entry\":[]}");
    let r = w.sender.post_raw(&bytes, SignatureMode::Custom(sig)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.app
            .state
            .store
            .count_webhook_events()
            .await
            .expect("count"),
        0
    );
    w.drain().await;
    assert!(w.fake.sends().is_empty());
    assert!(w.conversations().await.is_empty());
    assert!(w.sender.would_retry().iter().all(|s| *s == 401));
}

#[tokio::test]
async fn without_an_app_secret_every_webhook_is_refused() {
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(move |v| {
        v.insert("MTDESK_GRAPH_API_BASE".into(), base);
    })
    .await;
    let sender = WebhookSender::new(&app.url("/webhooks/meta"), APP_SECRET);
    let body = meta::messenger_text("110000000000001", "7000000000000001", "m_x", "hi", ts());
    assert_eq!(sender.post(&body).await.status(), StatusCode::FORBIDDEN);
    // Not even an "empty secret" signature gets through.
    let bytes = serde_json::to_vec(&body).expect("json");
    let empty_key = meta::meta_signature(b"", &bytes);
    let r = sender
        .post_raw(&bytes, SignatureMode::Custom(empty_key))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.state.store.count_webhook_events().await.expect("count"),
        0
    );
    // Connecting says why it cannot.
    let acct = app.sign_up(&email("nometa")).await;
    let bot = app.create_chatbot(&acct.token, "Bot").await;
    let (status, v) = app
        .post(
            "/api/v1/channels",
            &acct.token,
            json!({"kind": "messenger", "chatbot_id": bot, "page_id": "110000000000001", "access_token": "EAAB-page-token"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("MTDESK_META_APP_SECRET")
    );
}

#[tokio::test]
async fn echoes_statuses_and_unknown_pages_are_never_answered() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    w.connect("whatsapp").await;
    let psid = num_id("7");
    // Our own echo (app id ours), a reaction, a read receipt: no reply.
    assert_eq!(
        w.post(&meta::messenger_echo(
            &w.page_id,
            &psid,
            "m_echo",
            "Our answer",
            Some(APP_ID)
        ))
        .await,
        StatusCode::OK
    );
    // A message to a Page nobody connected: 200, dropped.
    let other = meta::messenger_text(&num_id("99"), &psid, "m_other", "Hello?", ts());
    assert_eq!(w.post(&other).await, StatusCode::OK);
    // Unknown objects are acknowledged.
    assert_eq!(
        w.post(&json!({"object": "permissions", "entry": [{"id": "1", "changes": []}]}))
            .await,
        StatusCode::OK
    );
    w.drain().await;
    assert!(w.fake.sends().is_empty(), "{:?}", w.fake.sends());

    // WhatsApp: a message is answered; its statuses update the reply and are never answered.
    let wa_id = "15550002222";
    let msg = meta::whatsapp_text(
        &w.waba_id,
        &w.phone_id,
        "15550001111",
        wa_id,
        "Ana Test",
        "wamid.IN1",
        "Do you ship to Canada?",
        ts() / 1000,
    );
    assert_eq!(w.post(&msg).await, StatusCode::OK);
    w.drain().await;
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].platform, "whatsapp");
    assert_eq!(sends[0].account_id, w.phone_id);
    assert_eq!(sends[0].recipient, wa_id);
    assert_eq!(sends[0].token, w.wa_token);
    let out = sends[0].message_id.clone();
    for status in ["delivered", "sent", "read", "delivered"] {
        let st = meta::whatsapp_status(
            &w.waba_id,
            &w.phone_id,
            &out,
            status,
            wa_id,
            ts() / 1000,
            None,
        );
        assert_eq!(w.post(&st).await, StatusCode::OK);
    }
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1, "statuses are not answered");
    let convs = w.conversations().await;
    let wa = convs
        .iter()
        .find(|c| c["channel"] == "whatsapp")
        .expect("whatsapp conversation");
    assert_eq!(wa["contact_name"], "Ana Test");
    let t = w.transcript(wa["id"].as_str().expect("id")).await;
    let reply = &t["messages"][1];
    assert_eq!(
        reply["delivery"], "read",
        "monotonic: read never goes back: {t}"
    );
}

#[tokio::test]
async fn attachments_are_recorded_and_get_a_polite_text_only_reply() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    let body = meta::messenger_attachment(
        &w.page_id,
        &psid,
        "m_img",
        "image",
        "https://lookaside.fbsbx.com/img/1",
    );
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.drain().await;
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 1);
    assert!(
        sends[0].text.contains("only read text"),
        "{}",
        sends[0].text
    );
    let t = w
        .transcript(w.conversations().await[0]["id"].as_str().expect("id"))
        .await;
    let first = &t["messages"][0];
    assert_eq!(first["attachments"][0]["kind"], "image");
    assert_eq!(
        first["attachments"][0]["url"],
        "https://lookaside.fbsbx.com/img/1"
    );
}

#[tokio::test]
async fn instagram_messages_are_answered_through_the_page_and_story_mentions_are_not() {
    let w = MetaWorld::start().await;
    let ch = w.connect("instagram").await;
    assert_eq!(ch["instagram_account_id"], w.ig_id.as_str());
    let igsid = num_id("99");
    let mention = meta::instagram_story_mention(
        &w.ig_id,
        &igsid,
        "aWdf_m1",
        "https://lookaside.fbsbx.com/s",
        ts(),
    );
    assert_eq!(w.post(&mention).await, StatusCode::OK);
    let echo = meta::instagram_echo(&w.ig_id, &igsid, "aWdf_echo", "ours", ts());
    assert_eq!(w.post(&echo).await, StatusCode::OK);
    w.drain().await;
    assert!(w.fake.sends().is_empty(), "{:?}", w.fake.sends());
    let text = meta::instagram_text(&w.ig_id, &igsid, "aWdf_m2", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&text).await, StatusCode::OK);
    w.drain().await;
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0].platform, "instagram");
    assert_eq!(sends[0].recipient, igsid);
    assert_eq!(sends[0].token, w.page_token);
    assert_eq!(sends[0].text, ANSWER);
}

#[tokio::test]
async fn a_refused_token_marks_the_channel_and_stops_sending() {
    let w = MetaWorld::start().await;
    let ch = w.connect("messenger").await;
    let id = ch["id"].as_str().expect("id").to_string();
    w.fake.revoke_token(&w.page_token);
    let psid = num_id("7");
    let body = meta::messenger_text(&w.page_id, &psid, "m_t1", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.drain().await;
    assert!(w.fake.sends().is_empty());
    let (_, ch) = w
        .app
        .get(&format!("/api/v1/channels/{id}"), &w.account.token)
        .await;
    assert_eq!(ch["status"], "needs_reconnect", "{ch}");
    assert!(
        ch["last_error"].as_str().unwrap_or("").contains("190"),
        "{ch}"
    );
    let requests_before = w.fake.requests().len();
    let body = meta::messenger_text(&w.page_id, &psid, "m_t2", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.drain().await;
    assert_eq!(
        w.fake.requests().len(),
        requests_before,
        "nothing is sent while the channel needs reconnecting"
    );
    // The Deploy page says so.
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let page = tab.get("/deploy").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Needs reconnect"), "{}", page.body);
}

#[tokio::test]
async fn transient_graph_errors_are_retried_and_the_window_is_respected() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    // Rate limit, then a 5xx, then success: one reply in the end.
    w.fake.push(GraphBehavior::Error {
        http_status: 400,
        code: 613,
        subcode: None,
        is_transient: false,
        retry_after: None,
    });
    w.fake.push(GraphBehavior::Status(500));
    let body = meta::messenger_text(&w.page_id, &psid, "m_r1", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1);

    // Meta says the window is closed: nothing is sent and the transcript says why.
    let late = num_id("7");
    let body = meta::messenger_text(&w.page_id, &late, "m_r2", "Do you ship to Canada?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.fake.set_last_inbound(&late, ts() - 25 * 3600 * 1000);
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1);
    let conv = w
        .conversations()
        .await
        .into_iter()
        .find(|c| c["contact_id"] == late.as_str())
        .expect("conversation");
    let t = w.transcript(conv["id"].as_str().expect("id")).await;
    assert_eq!(t["messages"][1]["delivery"], "not_sent", "{t}");
    assert!(
        t["messages"][1]["note"]
            .as_str()
            .unwrap_or("")
            .contains("24 hours")
    );
}

#[tokio::test]
async fn the_owner_takes_over_replies_through_the_channel_and_hands_back() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    let body = meta::messenger_text(&w.page_id, &psid, "m_h1", "Do you ship to Canada?", ts());
    w.post(&body).await;
    w.drain().await;
    let conv = w.conversations().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let base = format!("/api/v1/chatbots/{}/conversations/{conv}", w.bot);
    let (status, v) = w
        .app
        .post(&format!("{base}/takeover"), &w.account.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], "human");
    // The bot stays silent while taken over.
    let body = meta::messenger_text(&w.page_id, &psid, "m_h2", "Do you ship to Canada?", ts());
    w.post(&body).await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1);
    let (status, v) = w
        .app
        .post(
            &format!("{base}/messages"),
            &w.account.token,
            json!({"text": "Hi, Ann here. Yes we do!"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1].text, "Hi, Ann here. Yes we do!");
    assert_eq!(sends[1].recipient, psid);
    let (status, v) = w
        .app
        .post(
            &format!("{base}/messages"),
            &w.account.token,
            json!({"text": "   "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, _) = w
        .app
        .post(&format!("{base}/handback"), &w.account.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = meta::messenger_text(&w.page_id, &psid, "m_h3", "Do you ship to Canada?", ts());
    w.post(&body).await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 3);
    // Search finds the conversation by a word of the owner's reply.
    let (_, found) = w
        .app
        .get(
            &format!("/api/v1/chatbots/{}/conversations?q=ann%20here", w.bot),
            &w.account.token,
        )
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    let (_, none) = w
        .app
        .get(
            &format!(
                "/api/v1/chatbots/{}/conversations?q=nothing-like-this",
                w.bot
            ),
            &w.account.token,
        )
        .await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    // The dashboard inbox shows it.
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let inbox = tab.get("/inbox").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.body.contains(&format!("/inbox/{conv}")));
    let page = tab.get(&format!("/inbox/{conv}")).await;
    assert!(
        page.body.contains("Hi, Ann here. Yes we do!"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn disconnecting_deletes_the_channels_meta_data_and_keeps_the_other_channels() {
    let w = MetaWorld::start().await;
    let m = w.connect("messenger").await;
    w.connect("whatsapp").await;
    let psid = num_id("7");
    let marker = format!("zqm{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let body = meta::messenger_text(
        &w.page_id,
        &psid,
        "m_gone_1",
        &format!("Do you ship to Canada? {marker}"),
        ts(),
    );
    w.post(&body).await;
    let wa = meta::whatsapp_text(
        &w.waba_id,
        &w.phone_id,
        "15550001111",
        "15550003333",
        "Bo Kept",
        "wamid.KEEP1",
        "Do you ship to Canada?",
        ts() / 1000,
    );
    w.post(&wa).await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 2);
    let needles = [
        w.page_id.as_str(),
        psid.as_str(),
        "Acme Shoes",
        marker.as_str(),
        "m_gone_1",
    ];
    let before = mtdesk_storage::catalogue::find_traces(&w.app.state.store, &needles)
        .await
        .expect("scan");
    assert!(!before.is_empty());
    let (status, _) = w
        .app
        .api(
            Method::DELETE,
            &format!("/api/v1/channels/{}", m["id"].as_str().expect("id")),
            Some(&w.account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = mtdesk_storage::catalogue::find_traces(&w.app.state.store, &needles)
        .await
        .expect("scan");
    assert!(after.is_empty(), "traces left: {after:?}");
    assert!(
        !w.fake.subscriptions().contains(&w.page_id),
        "unsubscribed at Meta"
    );
    // WhatsApp is untouched.
    let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["kind"], "whatsapp");
    let kept = mtdesk_storage::catalogue::find_traces(
        &w.app.state.store,
        &["Bo Kept", "15550003333", &w.phone_id],
    )
    .await
    .expect("scan");
    assert!(kept.iter().any(|t| t.table == "conversations"), "{kept:?}");
    assert!(kept.iter().any(|t| t.table == "channels"), "{kept:?}");
    // A message to the disconnected Page is dropped.
    let body = meta::messenger_text(&w.page_id, &psid, "m_gone_2", "Still there?", ts());
    assert_eq!(w.post(&body).await, StatusCode::OK);
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 2);
    let after = mtdesk_storage::catalogue::find_traces(&w.app.state.store, &[psid.as_str()])
        .await
        .expect("scan");
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test]
async fn connecting_checks_ids_and_tokens_at_meta_first() {
    let w = MetaWorld::start().await;
    let t = &w.account.token;
    let cases = [
        (
            json!({"kind": "telegram", "chatbot_id": w.bot, "access_token": w.page_token}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind",
        ),
        (
            json!({"kind": "messenger", "chatbot_id": w.bot, "page_id": "abc", "access_token": w.page_token}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "page_id",
        ),
        (
            json!({"kind": "messenger", "chatbot_id": w.bot, "page_id": w.page_id, "access_token": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "access_token",
        ),
        (
            json!({"kind": "messenger", "chatbot_id": w.bot, "page_id": w.page_id, "access_token": "EAAB-not-a-real-token"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "access_token",
        ),
        (
            json!({"kind": "whatsapp", "chatbot_id": w.bot, "phone_number_id": w.phone_id, "access_token": w.wa_token}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "waba_id",
        ),
        (
            json!({"kind": "messenger", "chatbot_id": uuid::Uuid::new_v4().to_string(), "page_id": w.page_id, "access_token": w.page_token}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "chatbot_id",
        ),
    ];
    for (body, want, field) in cases {
        let (status, v) = w.app.post("/api/v1/channels", t, body.clone()).await;
        assert_eq!(status, want, "{body} → {v}");
        assert_eq!(v["field"], field, "{body} → {v}");
    }
    // A Page token that is valid but for another Page: Meta refuses the lookup.
    let other = num_id("11");
    let (status, v) = w
        .app
        .post("/api/v1/channels", t, json!({"kind": "messenger", "chatbot_id": w.bot, "page_id": other, "access_token": w.page_token}))
        .await;
    assert!(
        status == StatusCode::BAD_GATEWAY || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {v}"
    );
    let (_, list) = w.app.get("/api/v1/channels", t).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    // Another account cannot take a connected Page.
    w.connect("messenger").await;
    let b = w.app.sign_up(&email("other")).await;
    let bot_b = w.app.create_chatbot(&b.token, "B").await;
    let (status, v) = w
        .app
        .post("/api/v1/channels", &b.token, json!({"kind": "messenger", "chatbot_id": bot_b, "page_id": w.page_id, "access_token": w.page_token}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    // Nor see or delete it.
    let (_, mine) = w.app.get("/api/v1/channels", &b.token).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn facebook_login_connects_a_page_through_the_oauth_flow() {
    let w = MetaWorld::start().await;
    let user_id = num_id("555");
    let user_token = format!("EAAU-{}", uuid::Uuid::new_v4().simple());
    w.fake
        .add_user(&user_id, "Ann Lee", &user_token, &[w.page_id.as_str()]);
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let start = tab
        .get(&format!(
            "/deploy/facebook?kind=messenger&chatbot_id={}",
            w.bot
        ))
        .await;
    assert!(start.status.is_redirection(), "{}", start.body);
    let dialog = url::Url::parse(start.location()).expect("dialog url");
    assert!(dialog.path().ends_with("/dialog/oauth"), "{dialog}");
    let q: std::collections::HashMap<String, String> = dialog.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], APP_ID);
    assert_eq!(q["response_type"], "code");
    let redirect_uri = q["redirect_uri"].clone();
    let state = q["state"].clone();
    // Facebook sends the user back with a code.
    w.fake.issue_code("code-123", &user_id, &redirect_uri);
    // A tampered state is refused.
    let bad = tab
        .get(&format!(
            "/deploy/facebook/callback?code=code-123&state={}x",
            &state[..state.len() - 1]
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let pick = tab
        .get(&format!(
            "/deploy/facebook/callback?code=code-123&state={state}"
        ))
        .await;
    assert_eq!(pick.status, StatusCode::OK, "{}", pick.body);
    assert!(pick.body.contains("Acme Shoes"));
    let handoff = {
        let at = pick
            .body
            .find("name=\"handoff\" value=\"")
            .expect("handoff")
            + 22;
        pick.body[at..at + pick.body[at..].find('"').expect("end")].to_string()
    };
    assert!(
        !pick.body.contains(&user_token),
        "the user token is sealed in the page"
    );
    let done = tab
        .post(
            "/deploy/facebook/pick",
            &[
                ("csrf", &pick.csrf()),
                ("handoff", &handoff),
                ("page_id", &w.page_id),
            ],
        )
        .await;
    assert_eq!(done.location(), "/deploy?connected=1", "{}", done.body);
    let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
    assert_eq!(list[0]["kind"], "messenger");
    assert_eq!(list[0]["name"], "Acme Shoes");
    assert!(w.fake.subscriptions().contains(&w.page_id));
    // The granting user is kept for the deauthorize callback.
    let chans = w
        .app
        .state
        .store
        .find_channels_by_meta_user(&user_id)
        .await
        .expect("by user");
    assert_eq!(chans.len(), 1);
    // Cancelling at Facebook connects nothing.
    let denied = tab
        .get("/deploy/facebook/callback?error=access_denied&error_reason=user_denied")
        .await;
    assert_eq!(denied.location(), "/deploy?denied=1");
}

#[tokio::test]
async fn hostile_webhook_bodies_never_cause_a_5xx_or_a_reply() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<Vec<u8>> = vec![
        b"{\"object\":\"page\",\"entry\":[{\"id\":".to_vec(),
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
        b"{\"object\":\"page\",\"entry\":\"nope\"}".to_vec(),
        b"{\"object\":\"page\",\"entry\":[{\"id\":{},\"messaging\":[{\"sender\":7,\"message\":[]}]}]}".to_vec(),
        b"{\"object\":\"galaxy\",\"entry\":[]}".to_vec(),
        format!("{{\"object\":\"page\",\"entry\":[{{\"id\":\"{}\",\"messaging\":[{{\"sender\":{{\"id\":\"1\"}},\"recipient\":{{\"id\":\"{}\"}},\"message\":{{\"text\":\"no mid\"}}}}]}}]}}", w.page_id, w.page_id).into_bytes(),
    ];
    for b in &bodies {
        let r = w.sender.post_raw(b, SignatureMode::Valid).await;
        assert!(
            r.status().is_success(),
            "{:?} → {}",
            String::from_utf8_lossy(&b[..b.len().min(40)]),
            r.status()
        );
    }
    // A body over the limit is refused with 413 before anything else.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let r = w.sender.post_raw(&huge, SignatureMode::Valid).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    w.drain().await;
    assert!(w.fake.sends().is_empty(), "{:?}", w.fake.sends());
    assert_eq!(
        w.app
            .state
            .store
            .count_webhook_events()
            .await
            .expect("count"),
        0
    );
}

#[tokio::test]
async fn the_deploy_page_connects_with_a_token_and_keeps_what_was_typed_on_errors() {
    let w = MetaWorld::start().await;
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let page = tab.get("/deploy").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("/webhooks/meta"));
    let csrf = page.csrf();
    let bad = tab
        .post(
            "/deploy/connect",
            &[
                ("csrf", &csrf),
                ("kind", "whatsapp"),
                ("chatbot_id", &w.bot),
                ("phone_number_id", &w.phone_id),
                ("waba_id", ""),
                ("access_token", &w.wa_token),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains(&w.phone_id), "what was typed is kept");
    assert!(
        !bad.body.contains(&w.wa_token),
        "the token is never shown again"
    );
    let ok = tab
        .post(
            "/deploy/connect",
            &[
                ("csrf", &csrf),
                ("kind", "whatsapp"),
                ("chatbot_id", &w.bot),
                ("phone_number_id", &w.phone_id),
                ("waba_id", &w.waba_id),
                ("access_token", &w.wa_token),
            ],
        )
        .await;
    assert_eq!(ok.location(), "/deploy?connected=1", "{}", ok.body);
    let page = tab.get("/deploy?connected=1").await;
    assert!(page.body.contains("WhatsApp"));
    assert!(page.body.contains("15550001111"));
    // Pause from the page: messages are recorded, not answered.
    let id = {
        let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
        list[0]["id"].as_str().expect("id").to_string()
    };
    let saved = tab
        .post(
            &format!("/deploy/{id}/settings"),
            &[("csrf", &csrf), ("chatbot_id", &w.bot), ("paused", "on")],
        )
        .await;
    assert_eq!(saved.location(), "/deploy?saved=1");
    let msg = meta::whatsapp_text(
        &w.waba_id,
        &w.phone_id,
        "15550001111",
        "15550002222",
        "Ana",
        "wamid.P1",
        "Do you ship to Canada?",
        ts() / 1000,
    );
    w.post(&msg).await;
    w.drain().await;
    assert!(w.fake.sends().is_empty());
    assert_eq!(w.conversations().await.len(), 1);
    // Disconnect from the page.
    let gone = tab
        .post(&format!("/deploy/{id}/disconnect"), &[("csrf", &csrf)])
        .await;
    assert_eq!(gone.location(), "/deploy?disconnected=1");
    assert!(w.conversations().await.is_empty());
}

/// Two servers on one database share the work: every event is processed once, sessions work on both.
#[tokio::test]
async fn two_servers_on_one_database_answer_each_message_once() {
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    let first = TestApp::spawn_with(meta_vars(&fake)).await;
    let db = first.database_url();
    let second = TestApp::spawn_with({
        let configure = meta_vars(&fake);
        let db = db.clone();
        move |v| {
            configure(v);
            v.insert("MTDESK_DATABASE_URL".into(), db);
        }
    })
    .await;
    let w = MetaWorld::with(first, fake).await;
    w.connect("messenger").await;
    let workers: Vec<_> = [&w.app, &second]
        .iter()
        .flat_map(|app| (0..2).map(|_| tokio::spawn(app.state.channels.clone().run_worker())))
        .collect();
    let second_sender =
        WebhookSender::new(&second.url("/webhooks/meta"), APP_SECRET).tracking(&w.fake);
    const N: usize = 40;
    let mut posts = Vec::new();
    for i in 0..N {
        let body = meta::messenger_text(
            &w.page_id,
            &num_id("7"),
            &format!("m_burst_{i}"),
            "Do you ship to Canada?",
            ts(),
        );
        let sender = if i % 2 == 0 {
            &w.sender
        } else {
            &second_sender
        };
        posts.push(async move { sender.post(&body).await.status() });
    }
    for s in futures_util::future::join_all(posts).await {
        assert_eq!(s, StatusCode::OK);
    }
    let sends = w.fake.wait_for_sends(N, Duration::from_secs(60)).await;
    // A little longer: a duplicate would show up now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sends_after = w.fake.sends();
    for t in workers {
        t.abort();
    }
    assert_eq!(sends.len(), N);
    assert_eq!(sends_after.len(), N, "exactly one reply per message");
    let mut recipients: Vec<_> = sends_after.iter().map(|s| s.recipient.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), N);
    // A session made on one node works on the other.
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&w.account.email).await;
    let other = Tab {
        client: tab.client.clone(),
        base: second.base.clone(),
    };
    let page = other.get("/inbox").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

/// A real `mtdesk serve` process, for the crash test.
struct Server {
    child: std::process::Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_server(env: &[(String, String)], base: &str) -> Server {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mtdesk"));
    cmd.arg("serve")
        .env_remove("MTDESK_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mtdesk serve");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            return Server {
                child,
                base: base.to_string(),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mtdesk serve did not come up at {base}");
}

#[tokio::test]
async fn a_reply_interrupted_by_kill_9_is_sent_after_the_restart() {
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    let dir = crate::helpers::temp_dir();
    let pg = crate::helpers::fresh_postgres().await;
    let db = match &pg {
        Some((admin, name)) => crate::helpers::with_database(admin, name),
        None => format!("sqlite://{}", dir.join("mtdesk.sqlite").display()),
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env: Vec<(String, String)> = [
        ("MTDESK_DATA_DIR", dir.display().to_string()),
        ("MTDESK_DATABASE_URL", db),
        ("MTDESK_BIND", format!("127.0.0.1:{port}")),
        ("MTDESK_PUBLIC_URL", base.clone()),
        (
            "MTDESK_SECRET_KEY",
            "test-secret-key-0123456789abcdef0123456789".into(),
        ),
        ("MTDESK_ARGON2_MEMORY_KIB", "8192".into()),
        ("MTDESK_ARGON2_ITERATIONS", "1".into()),
        ("MTDESK_META_APP_ID", APP_ID.into()),
        ("MTDESK_META_APP_SECRET", APP_SECRET.into()),
        ("MTDESK_GRAPH_API_BASE", fake.base_url()),
        ("MTDESK_CHANNEL_LEASE_SECS", "2".into()),
        (
            "MTDESK_MODEL_DIR",
            dir.join("no-model").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut server = start_server(&env, &base).await;
    let client = reqwest::Client::new();
    let api = |method: Method, path: &str, token: Option<&str>, body: Value| {
        let mut req = client.request(method, format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.expect("request");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, acct) = api(
        Method::POST,
        "/api/v1/account",
        None,
        json!({"name": "Ann Lee", "email": email("crash"), "password": crate::helpers::PASSWORD, "company": "Lee Shoes", "age_16_or_older": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{acct}");
    let token = acct["token"].as_str().expect("token").to_string();
    // Verified, as opening the emailed link does: connecting a channel needs it.
    {
        let url = &env
            .iter()
            .find(|(k, _)| k == "MTDESK_DATABASE_URL")
            .expect("database url")
            .1;
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .expect("database");
        sqlx::raw_sql("UPDATE accounts SET email_verified_at = created_at")
            .execute(&mut conn)
            .await
            .expect("verify");
    }
    let (_, bot) = api(
        Method::POST,
        "/api/v1/chatbots",
        Some(&token),
        json!({"name": "Bot"}),
    )
    .await;
    let bot = bot["id"].as_str().expect("id").to_string();
    let (status, _) = api(
        Method::POST,
        &format!("/api/v1/chatbots/{bot}/qa"),
        Some(&token),
        json!({"question": "Do you ship to Canada?", "answer": ANSWER}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let page_id = num_id("11");
    let page_token = format!("EAAB-page-{}", uuid::Uuid::new_v4().simple());
    fake.add_page(&page_id, "Acme", &page_token, None);
    let (status, v) = api(
        Method::POST,
        "/api/v1/channels",
        Some(&token),
        json!({"kind": "messenger", "chatbot_id": bot, "page_id": page_id, "access_token": page_token}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // The first send hangs at "Meta"; the server dies while waiting for it.
    fake.push(GraphBehavior::Stall(Duration::from_secs(30)));
    let sender = WebhookSender::new(&format!("{base}/webhooks/meta"), APP_SECRET).tracking(&fake);
    let psid = num_id("7");
    let body = meta::messenger_text(&page_id, &psid, "m_crash", "Do you ship to Canada?", ts());
    assert_eq!(sender.post(&body).await.status(), StatusCode::OK);
    let mut stalled = false;
    for _ in 0..200 {
        if fake
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/messages"))
        {
            stalled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stalled, "the reply was attempted before the crash");
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    assert!(fake.sends().is_empty());

    let mut server = start_server(&env, &base).await;
    let sends = fake.wait_for_sends(1, Duration::from_secs(20)).await;
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0].recipient, psid);
    assert_eq!(sends[0].text, ANSWER);
    let _ = &server.base;
    if let Some((admin, name)) = pg {
        crate::helpers::drop_postgres(admin, name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn another_account_cannot_see_or_touch_channels_or_conversations() {
    let w = MetaWorld::start().await;
    let ch = w.connect("messenger").await;
    let ch_id = ch["id"].as_str().expect("id").to_string();
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_iso",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    let conv = w.conversations().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b = w.app.sign_up(&email("intruder")).await;
    let b_bot = w.app.create_chatbot(&b.token, "B bot").await;
    let bot = &w.bot;
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/channels/{ch_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch_id}"),
            Some(json!({"paused": true})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch_id}"),
            Some(json!({"chatbot_id": b_bot})),
        ),
        (Method::DELETE, format!("/api/v1/channels/{ch_id}"), None),
        (
            Method::GET,
            format!("/api/v1/chatbots/{bot}/conversations"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/chatbots/{bot}/conversations/{conv}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/chatbots/{b_bot}/conversations/{conv}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/conversations/{conv}/takeover"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{b_bot}/conversations/{conv}/takeover"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{b_bot}/conversations/{conv}/handback"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{b_bot}/conversations/{conv}/messages"),
            Some(json!({"text": "pwned"})),
        ),
    ];
    for (method, path, body) in routes {
        let (status, resp) = w.app.api(method.clone(), &path, Some(&b.token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {resp}");
        assert!(
            !resp.to_string().contains(&psid),
            "{method} {path} leaked: {resp}"
        );
    }
    // A conversation of B's own chatbot id filter never shows A's.
    let (_, list) = w
        .app
        .get(
            &format!("/api/v1/chatbots/{b_bot}/conversations?channel_id={ch_id}"),
            &b.token,
        )
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    // The dashboard alike.
    let tab = Tab::new(&w.app);
    tab.sign_in_as(&b.email).await;
    assert_eq!(
        tab.get(&format!("/inbox/{conv}")).await.status,
        StatusCode::NOT_FOUND
    );
    let inbox = tab.get("/inbox").await;
    assert!(!inbox.body.contains(&conv));
    let csrf = inbox.csrf();
    let r = tab
        .post(&format!("/deploy/{ch_id}/disconnect"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = tab
        .post(&format!("/inbox/{conv}/takeover"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A's channel is intact and still answers.
    let (status, ch) = w
        .app
        .get(&format!("/api/v1/channels/{ch_id}"), &w.account.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ch["paused"], false);
    assert_eq!(ch["chatbot_id"], w.bot.as_str());
}

#[tokio::test]
async fn a_chatbot_answering_a_channel_is_not_deleted_until_the_channel_moves() {
    let w = MetaWorld::start().await;
    let ch = w.connect("messenger").await;
    let id = ch["id"].as_str().expect("id");
    let (status, v) = w
        .app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{}", w.bot),
            Some(&w.account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("Acme Shoes"),
        "{v}"
    );
    // Move the channel (and its conversations) to another chatbot, then the first can go.
    let other = w.app.create_chatbot(&w.account.token, "Other bot").await;
    let (status, v) = w
        .app
        .api(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(&w.account.token),
            Some(json!({"chatbot_id": other, "show_sources": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["chatbot_id"], other.as_str());
    assert_eq!(v["show_sources"], true);
    let (status, _) = w
        .app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{}", w.bot),
            Some(&w.account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_channel_can_end_answers_from_documents_with_a_source_line() {
    use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
    let llm = FakeLlm::start(FakeConfig::new(
        mtdesk_domain::Provider::Openrouter,
        Some("sk-or-test-123456"),
    ))
    .await;
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    let llm_url = llm.base_url();
    let app = TestApp::spawn_with({
        let configure = meta_vars(&fake);
        move |v| {
            configure(v);
            v.insert("MTDESK_OPENROUTER_BASE_URL".into(), llm_url);
            v.insert(
                "MTDESK_OPENROUTER_API_KEY".into(),
                "sk-or-test-123456".into(),
            );
        }
    })
    .await;
    let w = MetaWorld::with(app, fake).await;
    let (status, v) = w
        .app
        .api(
            Method::PATCH,
            &format!("/api/v1/chatbots/{}", w.bot),
            Some(&w.account.token),
            Some(json!({"provider": "openrouter", "model": "fake-model"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let doc = "# Returns guide\n\n## Refunds\n\nRefunds are paid back to the original card within 14 days after the parcel reaches our warehouse.\n\n## Exchanges\n\nExchanges for another size are free of charge.\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(doc.as_bytes().to_vec()).file_name("returns.md"),
    );
    let resp = w
        .app
        .client
        .post(w.app.url(&format!("/api/v1/chatbots/{}/sources", w.bot)))
        .bearer_auth(&w.account.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(w.app.drain_jobs().await >= 1);
    let ch = w.connect("messenger").await;
    let id = ch["id"].as_str().expect("id");
    let question = "How many days until refunds are paid back to my card?";
    w.post(&meta::messenger_text(
        &w.page_id,
        &num_id("7"),
        "m_src_1",
        question,
        ts(),
    ))
    .await;
    w.drain().await;
    let plain = w.fake.sends()[0].text.clone();
    assert!(!plain.contains("Source:"), "off by default: {plain}");
    let (status, _) = w
        .app
        .api(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(&w.account.token),
            Some(json!({"show_sources": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    w.post(&meta::messenger_text(
        &w.page_id,
        &num_id("7"),
        "m_src_2",
        question,
        ts(),
    ))
    .await;
    w.drain().await;
    let with = w.fake.sends()[1].text.clone();
    assert!(with.starts_with(&plain), "{with}");
    assert!(with.contains("\n\nSource: Returns guide"), "{with}");
}

#[tokio::test]
async fn deleting_the_account_unsubscribes_its_channels_and_leaves_no_trace() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    w.connect("whatsapp").await;
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_acct",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    assert!(w.fake.subscriptions().contains(&w.page_id));
    assert!(w.fake.subscriptions().contains(&w.waba_id));
    let (status, v) = w
        .app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&w.account.token),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert!(status.is_success(), "{status} {v}");
    assert!(!w.fake.subscriptions().contains(&w.page_id));
    assert!(!w.fake.subscriptions().contains(&w.waba_id));
    let traces = mtdesk_storage::catalogue::find_traces(
        &w.app.state.store,
        &[
            w.page_id.as_str(),
            psid.as_str(),
            w.phone_id.as_str(),
            w.waba_id.as_str(),
            "Acme Shoes",
        ],
    )
    .await
    .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
}

#[tokio::test]
async fn a_person_answering_from_the_page_inbox_pauses_the_bot_for_that_conversation() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_p1",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1);
    // An echo from another app (Meta's Page inbox): a person replied.
    w.post(&meta::messenger_echo(
        &w.page_id,
        &psid,
        "m_human",
        "Hi, this is Bo from the shop.",
        Some("263902037430900"),
    ))
    .await;
    w.drain().await;
    let conv = &w.conversations().await[0];
    assert_eq!(conv["mode"], "human", "{conv}");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_p2",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1, "the bot stays silent");
    let t = w.transcript(conv["id"].as_str().expect("id")).await;
    assert!(
        t.to_string().contains("Hi, this is Bo from the shop."),
        "{t}"
    );
}

#[tokio::test]
async fn long_answers_are_split_at_the_platform_limit_on_sentence_borders() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let sentence =
        "Our returns policy gives you thirty days to send back any unworn pair in its box. ";
    let long = sentence.repeat(40);
    w.app
        .add_qa(
            &w.account.token,
            &w.bot,
            "What is your returns policy?",
            long.trim(),
        )
        .await;
    w.post(&meta::messenger_text(
        &w.page_id,
        &num_id("7"),
        "m_long",
        "What is your returns policy?",
        ts(),
    ))
    .await;
    w.drain().await;
    let sends = w.fake.sends();
    assert!(sends.len() >= 2, "{}", sends.len());
    for s in &sends {
        assert!(s.text.chars().count() <= 2000);
        assert!(
            s.text.ends_with('.'),
            "cut on a sentence border: …{}",
            &s.text[s.text.len().saturating_sub(30)..]
        );
    }
    let joined: String = sends
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        joined.split_whitespace().collect::<Vec<_>>(),
        long.split_whitespace().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn reconnecting_to_another_chatbot_moves_the_conversations_and_unsent_messages_are_redacted()
{
    let w = MetaWorld::start().await;
    w.connect("instagram").await;
    let igsid = num_id("99");
    w.post(&meta::instagram_text(
        &w.ig_id,
        &igsid,
        "aWdf_r1",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 1);
    // Reconnect the same account to another chatbot.
    let other = w.app.create_chatbot(&w.account.token, "Second bot").await;
    w.app
        .add_qa(
            &w.account.token,
            &other,
            "Do you ship to Canada?",
            "Second bot: yes.",
        )
        .await;
    let (status, v) = w
        .app
        .post("/api/v1/channels", &w.account.token, json!({"kind": "instagram", "chatbot_id": other, "page_id": w.page_id, "access_token": w.page_token}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    w.post(&meta::instagram_text(
        &w.ig_id,
        &igsid,
        "aWdf_r2",
        "Do you ship to Canada?",
        ts(),
    ))
    .await;
    w.drain().await;
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(
        sends[1].text, "Second bot: yes.",
        "the returning customer is answered by the new chatbot"
    );
    // The customer unsends the first message: its text leaves the transcript.
    let unsend = json!({"object": "instagram", "entry": [{"id": w.ig_id, "time": ts(), "messaging": [
        {"sender": {"id": igsid}, "recipient": {"id": w.ig_id}, "timestamp": ts(),
         "message": {"mid": "aWdf_r1", "is_deleted": true}}]}]});
    w.post(&unsend).await;
    w.drain().await;
    let (_, convs) = w
        .app
        .get(
            &format!("/api/v1/chatbots/{other}/conversations"),
            &w.account.token,
        )
        .await;
    let conv = convs[0]["id"].as_str().expect("moved conversation");
    let (_, t) = w
        .app
        .get(
            &format!("/api/v1/chatbots/{other}/conversations/{conv}"),
            &w.account.token,
        )
        .await;
    assert_eq!(
        t["messages"][0]["content"], "[the customer unsent this message]",
        "{t}"
    );
    assert_eq!(w.fake.sends().len(), 2, "an unsend is not answered");
}

#[tokio::test]
async fn an_end_user_can_have_their_data_deleted_from_inside_the_channel() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let psid = num_id("7");
    let other = num_id("7");
    for (who, mid) in [(&psid, "m_d1"), (&other, "m_o1")] {
        w.post(&meta::messenger_text(
            &w.page_id,
            who,
            mid,
            "Do you ship to Canada?",
            ts(),
        ))
        .await;
    }
    w.drain().await;
    assert_eq!(w.fake.sends().len(), 2);
    // Asking in German: the bot asks for confirmation in German; "nein" keeps everything.
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_d2",
        "Lösche meine Daten",
        ts(),
    ))
    .await;
    w.drain().await;
    let asked = w.fake.sends()[2].text.clone();
    assert!(asked.contains("JA") && asked.contains("löschen"), "{asked}");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_d3",
        "nein",
        ts(),
    ))
    .await;
    w.drain().await;
    assert_eq!(
        w.fake.sends()[3].text,
        "In Ordnung, es wurde nichts gelöscht."
    );
    assert_eq!(w.conversations().await.len(), 2);
    // In English, confirmed: that end user's conversation, messages and id are gone; the other stays.
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_d4",
        "please delete my data",
        ts(),
    ))
    .await;
    w.drain().await;
    assert!(w.fake.sends()[4].text.contains("Reply YES"));
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_d5",
        "Yes",
        ts(),
    ))
    .await;
    w.drain().await;
    let sends = w.fake.sends();
    assert_eq!(sends.len(), 6);
    assert!(sends[5].text.starts_with("Done"), "{}", sends[5].text);
    assert_eq!(sends[5].recipient, psid);
    let traces = mtdesk_storage::catalogue::find_traces(
        &w.app.state.store,
        &[psid.as_str(), "m_d1", "m_d4", "Lösche"],
    )
    .await
    .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
    let convs = w.conversations().await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["contact_id"], other.as_str());
    let receipts = w.app.state.store.list_receipts(5).await.expect("receipts");
    assert!(
        receipts.iter().any(|r| r.scope == "end_user"
            && r.path == "channel"
            && r.counts["messages"].as_u64() >= Some(4)),
        "{receipts:?}"
    );
}
