//! The Meta fake itself follows external-apis.md §1.2, §1.5, §2.5, §3.4, §4.4 and §5.5.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use mtdesk_testkit::fake_meta::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP_ID: &str = "1234";
const SECRET: &str = "test_app_secret";
const PAGE: &str = "110000000000001";
const PAGE_TOKEN: &str = "EAAB-page-token";
const OTHER_PAGE: &str = "110000000000002";
const OTHER_TOKEN: &str = "EAAB-other-page";
const IG: &str = "17841400000000000";
const PSID: &str = "7000000000000001";
const IGSID: &str = "990000000000001";
const USER: &str = "5550001";
const USER_TOKEN: &str = "EAAB-user-token";
const PNID: &str = "200000000000002";
const WABA: &str = "100000000000001";
const WA_TOKEN: &str = "EAAB-system-user";
const WA_ID: &str = "15550002222";
const HOUR: i64 = 3_600_000;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn fake() -> FakeMeta {
    let meta = FakeMeta::start(APP_ID, SECRET).await;
    meta.add_page(PAGE, "Acme", PAGE_TOKEN, Some(IG));
    meta.add_page(OTHER_PAGE, "Other", OTHER_TOKEN, None);
    meta.add_user(USER, "Ana Owner", USER_TOKEN, &[PAGE, OTHER_PAGE]);
    meta.add_whatsapp_number(PNID, WABA, "15550001111", WA_TOKEN);
    meta
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get_json(meta: &FakeMeta, path_and_query: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path_and_query}", meta.base_url()))
        .send()
        .await
        .expect("GET");
    read(resp).await
}

async fn post_page(meta: &FakeMeta, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/v25.0/{path}", meta.base_url()))
        .query(&[("access_token", token)])
        .json(&body)
        .send()
        .await
        .expect("POST");
    read(resp).await
}

async fn post_wa(meta: &FakeMeta, token: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/v26.0/{PNID}/messages", meta.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    read(resp).await
}

fn text_to(recipient: &str, text: &str) -> Value {
    json!({"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}})
}

fn wa_text(to: &str, text: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": false, "body": text}})
}

/// Asserts the §2.4 error shape and returns (code, subcode).
fn graph_error(v: &Value) -> (i64, Option<i64>) {
    let e = &v["error"];
    assert_eq!(e["type"], "OAuthException", "{v}");
    assert!(e["message"].is_string(), "{v}");
    assert!(e["fbtrace_id"].is_string(), "{v}");
    (
        e["code"].as_i64().expect("numeric code"),
        e["error_subcode"].as_i64(),
    )
}

// ----------------------------------------------------------------------------- §1.2 signatures

#[test]
fn signature_matches_the_four_reference_vectors() {
    let s = SECRET.as_bytes();
    let cases = [
        (
            r#"{"object":"page","entry":[]}"#,
            "sha256=5da47c9c7409e70d7a1851f0cfd9bc27786bd99587a9bf1dd5b51e23a2de03cf",
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[]}"#,
            "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",
        ),
        (
            r#"{"object": "whatsapp_business_account", "entry": []}"#,
            "sha256=56cbbaf4961c6cfdae48b7f116c047e5eb513d2c931baae63a2bc1afd26f803a",
        ),
        (
            r#"{"text":"\u00e4"}"#,
            "sha256=b57f4327e59118e07d95bdd54d114131251f3537026f50a5d4df2ce74c1baf7e",
        ),
    ];
    for (body, header) in cases {
        assert_eq!(meta_signature(s, body.as_bytes()), header, "{body}");
    }
}

#[test]
fn escaper_writes_non_ascii_as_lowercase_u_escapes() {
    assert_eq!(meta_json(&json!({"text": "ä"})), r#"{"text":"\u00e4"}"#);
    assert_eq!(
        meta_json(&json!({"text": "äöå"})),
        r#"{"text":"\u00e4\u00f6\u00e5"}"#
    );
    // Above U+FFFF: a UTF-16 surrogate pair, lowercase.
    assert_eq!(meta_json(&json!("😀")), r#""\ud83d\ude00""#);
    assert_eq!(meta_json(&json!("a\"b\n/")), r#""a\"b\n/""#);
    assert_eq!(meta_json_escaped_slashes(&json!("a/b")), r#""a\/b""#);
    // Still the same JSON.
    let v = json!({"entry": [{"text": "Grüße 😀 \u{1}"}], "n": 1});
    assert_eq!(
        serde_json::from_str::<Value>(&meta_json(&v)).expect("valid"),
        v
    );
    assert_eq!(
        meta_signature(
            SECRET.as_bytes(),
            meta_json(&json!({"text": "ä"})).as_bytes()
        ),
        "sha256=b57f4327e59118e07d95bdd54d114131251f3537026f50a5d4df2ce74c1baf7e"
    );
}

#[test]
fn appsecret_proof_matches_the_reference_vector() {
    assert_eq!(
        appsecret_proof(b"app_secret_123", "EAAB-page-token"),
        "91312d49d7c78d346071ff17c3f35fa67aa17f13bf91c41d343bf0656be8c463"
    );
}

// ----------------------------------------------------------------------------- §2.5 Messenger

#[tokio::test]
async fn messenger_send_in_window_succeeds_with_unique_ids_and_is_recorded() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms() - HOUR);
    let (s1, v1) = post_page(
        &meta,
        &format!("{PAGE}/messages"),
        PAGE_TOKEN,
        text_to(PSID, "Yes"),
    )
    .await;
    assert_eq!(s1, 200, "{v1}");
    assert_eq!(v1["recipient_id"], PSID);
    let id1 = v1["message_id"].as_str().expect("id").to_string();
    assert!(id1.starts_with("m_"));
    // `/me/messages` with a Bearer token works too.
    let resp = client()
        .post(format!("{}/v25.0/me/messages", meta.base_url()))
        .bearer_auth(PAGE_TOKEN)
        .json(&text_to(PSID, "Again"))
        .send()
        .await
        .expect("POST");
    let (s2, v2) = read(resp).await;
    assert_eq!(s2, 200, "{v2}");
    assert_ne!(v2["message_id"], v1["message_id"]);

    let sends = meta.sends();
    assert_eq!(sends.len(), 2);
    let s = &sends[0];
    assert_eq!(
        (
            s.platform.as_str(),
            s.account_id.as_str(),
            s.recipient.as_str()
        ),
        ("messenger", PAGE, PSID)
    );
    assert_eq!(s.text, "Yes");
    assert_eq!(s.messaging_type.as_deref(), Some("RESPONSE"));
    assert_eq!(s.token, PAGE_TOKEN);
    assert_eq!(s.message_id, id1);
    assert_eq!(s.path, format!("/v25.0/{PAGE}/messages"));
    assert_eq!(sends[1].account_id, PAGE);
    let reqs = meta.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, 200);
    assert_eq!(reqs[0].param("access_token"), Some(PAGE_TOKEN));
    assert_eq!(
        reqs[1].header("Authorization"),
        Some("Bearer EAAB-page-token")
    );
}

#[tokio::test]
async fn messenger_rejects_bad_tokens_with_code_190() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms());
    let path = format!("{PAGE}/messages");
    for token in ["nonsense", OTHER_TOKEN, USER_TOKEN, ""] {
        let (s, v) = post_page(&meta, &path, token, text_to(PSID, "Hi")).await;
        assert_eq!(s, 400, "{token}: {v}");
        assert_eq!(graph_error(&v), (190, None), "{token}");
    }
    assert!(meta.sends().is_empty());
    assert_eq!(meta.requests().last().map(|r| r.status), Some(400));
}

#[tokio::test]
async fn messenger_validation_errors_are_code_100() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms());
    let path = format!("{PAGE}/messages");
    let cases = [
        json!({"message": {"text": "no recipient"}}),
        json!({"recipient": {"id": PSID}}),
        json!({"recipient": {"id": PSID}, "message": {"text": "x"}, "sender_action": "typing_on"}),
        json!({"recipient": {"id": PSID}, "message": {"text": ""}}),
        text_to(PSID, &"a".repeat(2001)),
        json!({"recipient": {"id": PSID}, "messaging_type": "SOMETIMES", "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "message": {"text": "x"}}),
    ];
    for body in cases {
        let (s, v) = post_page(&meta, &path, PAGE_TOKEN, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(graph_error(&v).0, 100, "{body}");
    }
    // 2000 characters (multi-byte) is still fine.
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, &"ä".repeat(2000))).await;
    assert_eq!(s, 200, "{v}");
    // Sender actions answer with the recipient only and are not sends.
    let (s, v) = post_page(
        &meta,
        &path,
        PAGE_TOKEN,
        json!({"recipient": {"id": PSID}, "sender_action": "typing_on"}),
    )
    .await;
    assert_eq!((s, v), (200, json!({"recipient_id": PSID})));
    assert_eq!(meta.sends().len(), 1);
    assert_eq!(meta.sender_actions()[0].action, "typing_on");
}

#[tokio::test]
async fn messenger_window_is_24h_and_human_agent_7_days() {
    let meta = fake().await;
    let path = format!("{PAGE}/messages");
    meta.set_last_inbound(PSID, now_ms() - 25 * HOUR);
    for mt in ["RESPONSE", "UPDATE"] {
        let body =
            json!({"recipient": {"id": PSID}, "messaging_type": mt, "message": {"text": "late"}});
        let (s, v) = post_page(&meta, &path, PAGE_TOKEN, body).await;
        assert_eq!(s, 400);
        assert_eq!(graph_error(&v), (10, Some(2018065)), "{mt}");
    }
    let human = json!({"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
                       "message": {"text": "A human here"}});
    meta.set_last_inbound(PSID, now_ms() - 6 * 24 * HOUR);
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, human.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(meta.sends()[0].tag.as_deref(), Some("HUMAN_AGENT"));
    meta.set_last_inbound(PSID, now_ms() - 8 * 24 * HOUR);
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, human).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (10, Some(2018065)));
    // Never messaged us: no matching user.
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to("7000000000000999", "hi")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (100, Some(2018001)));
}

// ----------------------------------------------------------------------------- §3.4 Instagram

#[tokio::test]
async fn instagram_path_a_uses_the_page_token_and_a_1000_byte_limit() {
    let meta = fake().await;
    meta.set_last_inbound_instagram(IG, IGSID, now_ms());
    let path = format!("{PAGE}/messages");
    // 501 × "ä" = 1002 bytes but only 501 characters.
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(IGSID, &"ä".repeat(501))).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 100);
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(IGSID, &"ä".repeat(500))).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["message_id"].as_str().expect("id").starts_with("aWdf"));
    let sent = &meta.sends()[0];
    assert_eq!(
        (sent.platform.as_str(), sent.account_id.as_str()),
        ("instagram", IG)
    );
    // The other Page has no such IG user.
    let (s, v) = post_page(
        &meta,
        &format!("{OTHER_PAGE}/messages"),
        OTHER_TOKEN,
        text_to(IGSID, "x"),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (100, Some(2018001)));
    // Outside 24 h, as Messenger.
    meta.set_last_inbound_instagram(IG, IGSID, now_ms() - 25 * HOUR);
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(IGSID, "late")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (10, Some(2018065)));
}

#[tokio::test]
async fn instagram_path_b_me_messages_and_subscription() {
    let meta = fake().await;
    let ig_b = "17841400000000077";
    meta.add_instagram_login_account(ig_b, "acme_shop", "IGQ-token");
    let body = instagram_text(ig_b, IGSID, "aWdfIN1", "Still on sale?", now_ms());
    meta.note_inbound_from(&body);

    let resp = client()
        .get(format!(
            "{}/v25.0/me?fields=user_id,username",
            meta.base_url()
        ))
        .bearer_auth("IGQ-token")
        .send()
        .await
        .expect("GET");
    let (s, v) = read(resp).await;
    assert_eq!(s, 200);
    assert_eq!(v["user_id"], ig_b);
    assert_eq!(v["username"], "acme_shop");
    assert!(v["id"].is_string() && v["id"] != ig_b, "{v}");

    for path in ["me/messages".to_string(), format!("{ig_b}/messages")] {
        let resp = client()
            .post(format!("{}/v25.0/{path}", meta.base_url()))
            .bearer_auth("IGQ-token")
            .json(&json!({"recipient": {"id": IGSID}, "message": {"text": "Yes, 20% off"}}))
            .send()
            .await
            .expect("POST");
        let (s, v) = read(resp).await;
        assert_eq!(s, 200, "{v}");
    }
    let sends = meta.sends();
    assert!(
        sends
            .iter()
            .all(|s| s.platform == "instagram" && s.account_id == ig_b)
    );

    let resp = client()
        .post(format!(
            "{}/v25.0/me/subscribed_apps?subscribed_fields=messages",
            meta.base_url()
        ))
        .bearer_auth("IGQ-token")
        .send()
        .await
        .expect("POST");
    assert_eq!(read(resp).await, (200, json!({"success": true})));
    assert_eq!(meta.subscriptions(), vec![ig_b.to_string()]);

    // An unknown IG token is 400 / 190.
    let resp = client()
        .post(format!("{}/v25.0/me/messages", meta.base_url()))
        .bearer_auth("IGQ-wrong")
        .json(&json!({"recipient": {"id": IGSID}, "message": {"text": "x"}}))
        .send()
        .await
        .expect("POST");
    let (s, v) = read(resp).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 190);
}

#[tokio::test]
async fn instagram_login_tokens_exchange_and_refresh() {
    let meta = fake().await;
    let ig_b = "17841400000000077";
    meta.add_instagram_login_account(ig_b, "acme_shop", "IGQ-token");
    meta.issue_instagram_code("igcode", ig_b, "https://desk.example/cb");
    let form = [
        ("client_id", APP_ID),
        ("client_secret", SECRET),
        ("grant_type", "authorization_code"),
        ("redirect_uri", "https://desk.example/cb"),
        ("code", "igcode#_"),
    ];
    let url = format!("{}/oauth/access_token", meta.base_url());
    let (s, v) = read(client().post(&url).form(&form).send().await.expect("POST")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"][0]["user_id"], ig_b);
    let short = v["data"][0]["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let (s, v) = read(client().post(&url).form(&form).send().await.expect("POST")).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"error_type": "OAuthException", "code": 400,
               "error_message": "Matching code was not found or was already used"})
    );

    let (s, v) = get_json(
        &meta,
        &format!(
            "/access_token?grant_type=ig_exchange_token&client_secret={SECRET}&access_token={short}"
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["expires_in"], 5183944);
    let long = v["access_token"].as_str().expect("token").to_string();

    let refresh = format!("/refresh_access_token?grant_type=ig_refresh_token&access_token={long}");
    let (s, v) = get_json(&meta, &refresh).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 190);
    meta.set_token_times(&long, now_ms() - 48 * HOUR, Some(now_ms() + 24 * HOUR));
    let (s, v) = get_json(&meta, &refresh).await;
    assert_eq!(s, 200, "{v}");
    meta.set_token_times(&long, now_ms() - 70 * 24 * HOUR, Some(now_ms() - HOUR));
    let (s, v) = get_json(&meta, &refresh).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (190, Some(463)));

    meta.instagram_code_response_flat(true);
    meta.issue_instagram_code("igcode2", ig_b, "https://desk.example/cb");
    let mut form2 = form;
    form2[4].1 = "igcode2";
    let (s, v) = read(client().post(&url).form(&form2).send().await.expect("POST")).await;
    assert_eq!(s, 200);
    assert_eq!(v["user_id"], ig_b);
}

// ----------------------------------------------------------------------------- §4.4 WhatsApp

#[tokio::test]
async fn whatsapp_send_succeeds_and_reports_contacts_and_wamid() {
    let meta = fake().await;
    meta.set_last_inbound(WA_ID, now_ms() - HOUR);
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text("+15550002222", "Open 9–18")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messaging_product"], "whatsapp");
    assert_eq!(
        v["contacts"],
        json!([{"input": "+15550002222", "wa_id": WA_ID}])
    );
    let wamid = v["messages"][0]["id"].as_str().expect("wamid");
    assert!(wamid.starts_with("wamid."));
    let sent = &meta.sends()[0];
    assert_eq!(
        (
            sent.platform.as_str(),
            sent.account_id.as_str(),
            sent.recipient.as_str(),
            sent.text.as_str()
        ),
        ("whatsapp", PNID, WA_ID, "Open 9–18")
    );
    assert_eq!(sent.message_id, wamid);
    let (_, v2) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "again")).await;
    assert_ne!(v2["messages"][0]["id"], v["messages"][0]["id"]);
}

#[tokio::test]
async fn whatsapp_rule_errors_have_the_whatsapp_shape() {
    let meta = fake().await;
    meta.set_last_inbound(WA_ID, now_ms());
    meta.add_whatsapp_number(
        "200000000000009",
        WABA,
        "15550009999",
        "EAAB-other-system-user",
    );
    // Wrong token for this number → 401 / 190.
    for token in ["EAAB-other-system-user", "garbage"] {
        let (s, v) = post_wa(&meta, token, wa_text(WA_ID, "x")).await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(graph_error(&v).0, 190);
    }
    let cases: [(Value, i64); 5] = [
        (
            json!({"to": WA_ID, "type": "text", "text": {"body": "x"}}),
            100,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": WA_ID, "type": "hologram", "hologram": {}}),
            131051,
        ),
        (
            json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
            131008,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": WA_ID, "type": "text", "text": {}}),
            131008,
        ),
        (wa_text(WA_ID, &"a".repeat(4097)), 131009),
    ];
    for (body, code) in cases {
        let (s, v) = post_wa(&meta, WA_TOKEN, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(graph_error(&v).0, code, "{body}");
        assert_eq!(
            v["error"]["error_data"]["messaging_product"], "whatsapp",
            "{v}"
        );
        assert!(v["error"]["error_data"]["details"].is_string());
    }
    let (s, _) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, &"a".repeat(4096))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn whatsapp_window_fails_synchronously_or_as_a_failed_status() {
    let meta = fake().await;
    meta.set_last_inbound(WA_ID, now_ms() - 25 * HOUR);
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "late")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 131047);
    assert_eq!(v["error"]["message"], "(#131047) Re-engagement message");
    assert_eq!(
        v["error"]["error_data"]["details"],
        "More than 24 hours have passed since the recipient last replied to the sender number."
    );
    // Templates are allowed outside the window.
    let template = json!({"messaging_product": "whatsapp", "to": WA_ID, "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"}}});
    let (s, v) = post_wa(&meta, WA_TOKEN, template).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(meta.sends().len(), 1);

    meta.whatsapp_window_mode(WindowMode::AcceptThenFailStatus);
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "late")).await;
    assert_eq!(s, 200, "{v}");
    let wamid = v["messages"][0]["id"].clone();
    assert_eq!(
        meta.sends().len(),
        1,
        "an accepted-then-failed send is not a send"
    );
    let pending = meta.pending_status_webhooks();
    assert_eq!(pending.len(), 1);
    let value = &pending[0]["entry"][0]["changes"][0]["value"];
    assert_eq!(pending[0]["object"], "whatsapp_business_account");
    assert_eq!(value["metadata"]["phone_number_id"], PNID);
    let status = &value["statuses"][0];
    assert_eq!(status["id"], wamid);
    assert_eq!(status["status"], "failed");
    assert_eq!(status["recipient_id"], WA_ID);
    assert_eq!(status["errors"][0]["code"], 131047);
    assert!(meta.pending_status_webhooks().is_empty());
}

#[tokio::test]
async fn whatsapp_mark_read_and_auto_statuses() {
    let meta = fake().await;
    let body = whatsapp_text(
        WABA,
        PNID,
        "15550001111",
        WA_ID,
        "Ana",
        "wamid.IN1",
        "Hours?",
        now_ms() / 1000,
    );
    meta.note_inbound_from(&body);
    let read_body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
                           "typing_indicator": {"type": "text"}});
    assert_eq!(
        post_wa(&meta, WA_TOKEN, read_body).await,
        (200, json!({"success": true}))
    );
    assert_eq!(meta.mark_reads(), vec!["wamid.IN1".to_string()]);
    let bad = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "nope"});
    let (s, v) = post_wa(&meta, WA_TOKEN, bad).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 131009);

    meta.whatsapp_auto_statuses(&["sent", "delivered"]);
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "9 to 6")).await;
    assert_eq!(s, 200, "{v}");
    let statuses: Vec<Value> = meta
        .pending_status_webhooks()
        .iter()
        .map(|b| b["entry"][0]["changes"][0]["value"]["statuses"][0]["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("sent"), json!("delivered")]);
    // Our own outbound wamid can't be marked read.
    let ours = json!({"messaging_product": "whatsapp", "status": "read", "message_id": v["messages"][0]["id"]});
    assert_eq!(post_wa(&meta, WA_TOKEN, ours).await.0, 400);
}

#[tokio::test]
async fn whatsapp_bsuid_recipient_and_media() {
    let meta = fake().await;
    let bsuid = "US.10000000000000000001";
    let body = whatsapp_text_bsuid(
        WABA,
        PNID,
        "15550001111",
        None,
        bsuid,
        "Ana",
        "wamid.IN2",
        "hi",
        now_ms() / 1000,
    );
    meta.note_inbound_from(&body);
    let send = json!({"messaging_product": "whatsapp", "recipient": bsuid, "type": "text", "text": {"body": "hello"}});
    let (s, v) = post_wa(&meta, WA_TOKEN, send).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(meta.sends()[0].recipient, bsuid);

    meta.add_media("media-1", "image/jpeg", b"jpeg bytes");
    let resp = client()
        .get(format!("{}/v25.0/media-1", meta.base_url()))
        .bearer_auth(WA_TOKEN)
        .send()
        .await
        .expect("GET");
    let (s, v) = read(resp).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mime_type"], "image/jpeg");
    let url = v["url"].as_str().expect("url");
    let unauth = client().get(url).send().await.expect("GET");
    assert_eq!(unauth.status().as_u16(), 401);
    let bytes = client()
        .get(url)
        .bearer_auth(WA_TOKEN)
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&bytes[..], b"jpeg bytes");
}

// ----------------------------------------------------------------------------- the script

#[tokio::test]
async fn scripted_errors_then_success_in_order() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms());
    let path = format!("{PAGE}/messages");
    meta.push(GraphBehavior::Error {
        http_status: 400,
        code: 613,
        subcode: None,
        is_transient: false,
        retry_after: Some(2),
    });
    meta.push(GraphBehavior::Error {
        http_status: 500,
        code: 1200,
        subcode: None,
        is_transient: true,
        retry_after: None,
    });
    meta.push(GraphBehavior::Status(502));
    meta.push(GraphBehavior::Ok);

    let resp = client()
        .post(format!("{}/v25.0/{path}", meta.base_url()))
        .query(&[("access_token", PAGE_TOKEN)])
        .json(&text_to(PSID, "1"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    let (s, v) = read(resp).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v), (613, None));
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, "2")).await;
    assert_eq!(s, 500);
    assert_eq!(graph_error(&v).0, 1200);
    assert_eq!(v["error"]["is_transient"], true);
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, "3")).await;
    assert_eq!(s, 502);
    assert!(v.as_str().is_some_and(|h| h.contains("<html")), "{v}");
    for n in ["4", "5"] {
        let (s, _) = post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, n)).await;
        assert_eq!(s, 200);
    }
    let texts: Vec<String> = meta.sends().into_iter().map(|s| s.text).collect();
    assert_eq!(texts, vec!["4", "5"]);
    let statuses: Vec<u16> = meta.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![400, 500, 502, 200, 200]);
}

#[tokio::test]
async fn scripted_whatsapp_error_and_stall() {
    let meta = fake().await;
    meta.set_last_inbound(WA_ID, now_ms());
    meta.push(GraphBehavior::Error {
        http_status: 400,
        code: 131056,
        subcode: None,
        is_transient: false,
        retry_after: None,
    });
    meta.push(GraphBehavior::Stall(Duration::from_millis(300)));
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "x")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 131056);
    assert_eq!(v["error"]["error_data"]["messaging_product"], "whatsapp");
    let started = Instant::now();
    let (s, _) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "y")).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A client that gives up on a stall: the request stays recorded with status 0.
    meta.push(GraphBehavior::Stall(Duration::from_secs(5)));
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let err = short
        .post(format!("{}/v26.0/{PNID}/messages", meta.base_url()))
        .bearer_auth(WA_TOKEN)
        .json(&wa_text(WA_ID, "z"))
        .send()
        .await;
    assert!(err.is_err());
    assert_eq!(meta.requests().last().map(|r| r.status), Some(0));
    assert_eq!(
        meta.wait_for_sends(2, Duration::from_millis(50))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn wait_for_sends_returns_once_enough_arrived() {
    let meta = Arc::new(fake().await);
    meta.set_last_inbound(PSID, now_ms());
    let m = meta.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        post_page(
            &m,
            &format!("{PAGE}/messages"),
            PAGE_TOKEN,
            text_to(PSID, "later"),
        )
        .await
    });
    let sends = meta.wait_for_sends(1, Duration::from_secs(5)).await;
    assert_eq!(sends.len(), 1);
    assert_eq!(task.await.expect("task").0, 200);
}

// ----------------------------------------------------------------------------- §5.5 OAuth & tokens

#[tokio::test]
async fn oauth_codes_are_single_use_and_need_the_same_redirect_uri() {
    let meta = fake().await;
    meta.issue_code("code-1", USER, "https://desk.example/oauth/cb");
    let exchange = |redirect: &str| {
        format!(
            "/v25.0/oauth/access_token?client_id={APP_ID}&client_secret={SECRET}&code=code-1&redirect_uri={}",
            url_encode(redirect)
        )
    };
    let (s, v) = get_json(&meta, &exchange("https://evil.example/cb")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 100);
    let (s, v) = get_json(&meta, &exchange("https://desk.example/oauth/cb")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "bearer");
    let short = v["access_token"].as_str().expect("token").to_string();
    let (s, v) = get_json(&meta, &exchange("https://desk.example/oauth/cb")).await;
    assert_eq!(s, 400);
    assert_eq!(graph_error(&v).0, 100);
    let (s, v) = get_json(
        &meta,
        "/v25.0/oauth/access_token?client_id=1234&client_secret=wrong&code=x",
    )
    .await;
    assert_eq!((s, graph_error(&v).0), (400, 100));

    let (s, v) = get_json(&meta, &format!(
        "/v25.0/oauth/access_token?grant_type=fb_exchange_token&client_id={APP_ID}&client_secret={SECRET}&fb_exchange_token={short}"
    ))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["expires_in"], 5183944);
    let long = v["access_token"].as_str().expect("token");
    assert_ne!(long, short);
    for token in [short.as_str(), long] {
        let (s, v) = get_json(
            &meta,
            &format!("/v25.0/me?fields=id,name&access_token={token}"),
        )
        .await;
        assert_eq!((s, v), (200, json!({"id": USER, "name": "Ana Owner"})));
    }
}

#[tokio::test]
async fn me_accounts_lists_pages_with_tokens_and_instagram_and_pages() {
    let meta = fake().await;
    let fields = "id,name,access_token,tasks,instagram_business_account";
    let (s, v) = get_json(
        &meta,
        &format!("/v25.0/me/accounts?fields={fields}&access_token={USER_TOKEN}"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let first = &v["data"][0];
    assert_eq!(first["id"], PAGE);
    assert_eq!(first["name"], "Acme");
    assert_eq!(first["access_token"], PAGE_TOKEN);
    assert!(
        first["tasks"]
            .as_array()
            .expect("tasks")
            .contains(&json!("MESSAGING"))
    );
    assert_eq!(first["instagram_business_account"], json!({"id": IG}));
    assert!(v["data"][1].get("instagram_business_account").is_none());
    assert!(v["paging"]["cursors"]["after"].is_string());
    assert!(v["paging"].get("next").is_none());

    let (_, page1) = get_json(
        &meta,
        &format!("/v25.0/me/accounts?fields={fields}&limit=1&access_token={USER_TOKEN}"),
    )
    .await;
    assert_eq!(page1["data"].as_array().map(Vec::len), Some(1));
    let next = page1["paging"]["next"].as_str().expect("next link");
    let (s, page2) = read(client().get(next).send().await.expect("GET")).await;
    assert_eq!(s, 200);
    assert_eq!(page2["data"][0]["id"], OTHER_PAGE);
    assert!(page2["paging"].get("next").is_none());
}

#[tokio::test]
async fn debug_token_reports_type_owner_and_validity() {
    let meta = fake().await;
    let app = meta.app_token();
    assert_eq!(app, format!("{APP_ID}|{SECRET}"));
    let debug = |t: &str| {
        format!(
            "/v25.0/debug_token?input_token={t}&access_token={}",
            url_encode(&app)
        )
    };
    let (s, v) = get_json(&meta, &debug(PAGE_TOKEN)).await;
    assert_eq!(s, 200, "{v}");
    let d = &v["data"];
    assert_eq!(
        (
            d["type"].clone(),
            d["is_valid"].clone(),
            d["expires_at"].clone()
        ),
        (json!("PAGE"), json!(true), json!(0))
    );
    assert_eq!(d["user_id"], USER);
    assert_eq!(d["app_id"], APP_ID);
    assert!(
        d["scopes"]
            .as_array()
            .expect("scopes")
            .contains(&json!("pages_messaging"))
    );
    let (_, v) = get_json(&meta, &debug(USER_TOKEN)).await;
    assert_eq!(
        (v["data"]["type"].clone(), v["data"]["user_id"].clone()),
        (json!("USER"), json!(USER))
    );
    let (_, v) = get_json(&meta, &debug(WA_TOKEN)).await;
    assert_eq!(v["data"]["type"], "SYSTEM_USER");
    assert!(
        v["data"]["scopes"]
            .as_array()
            .expect("scopes")
            .contains(&json!("whatsapp_business_messaging"))
    );
    let (_, v) = get_json(&meta, &debug("garbage")).await;
    assert_eq!(v["data"]["is_valid"], false);
    assert_eq!(v["data"]["error"]["code"], 190);
    meta.revoke_token(PAGE_TOKEN);
    let (_, v) = get_json(&meta, &debug(PAGE_TOKEN)).await;
    assert_eq!(v["data"]["is_valid"], false);
    assert_eq!(v["data"]["error"]["subcode"], 463);
    // The app token must be {app-id}|{app-secret}.
    let (s, v) = get_json(
        &meta,
        &format!("/v25.0/debug_token?input_token={USER_TOKEN}&access_token=1234%7Cwrong"),
    )
    .await;
    assert_eq!((s, graph_error(&v).0), (400, 190));
}

#[tokio::test]
async fn revoked_tokens_fail_with_190_463_everywhere() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms());
    meta.set_last_inbound(WA_ID, now_ms());
    meta.revoke_token(PAGE_TOKEN);
    meta.revoke_token(WA_TOKEN);
    meta.revoke_token(USER_TOKEN);
    let (s, v) = post_page(
        &meta,
        &format!("{PAGE}/messages"),
        PAGE_TOKEN,
        text_to(PSID, "x"),
    )
    .await;
    assert_eq!((s, graph_error(&v)), (400, (190, Some(463))));
    let (s, v) = post_wa(&meta, WA_TOKEN, wa_text(WA_ID, "x")).await;
    assert_eq!((s, graph_error(&v)), (401, (190, Some(463))));
    let (s, v) = get_json(
        &meta,
        &format!("/v25.0/me/accounts?access_token={USER_TOKEN}"),
    )
    .await;
    assert_eq!((s, graph_error(&v)), (400, (190, Some(463))));
    assert!(meta.sends().is_empty());
}

#[tokio::test]
async fn appsecret_proof_is_checked_when_present_or_required() {
    let meta = fake().await;
    meta.set_last_inbound(PSID, now_ms());
    let url = format!("{}/v25.0/{PAGE}/messages", meta.base_url());
    let proof = appsecret_proof(SECRET.as_bytes(), PAGE_TOKEN);
    let send = |p: Option<&str>| {
        let mut q = vec![("access_token", PAGE_TOKEN.to_string())];
        if let Some(p) = p {
            q.push(("appsecret_proof", p.to_string()));
        }
        client()
            .post(&url)
            .query(&q)
            .json(&text_to(PSID, "x"))
            .send()
    };
    let (s, _) = read(send(Some(&proof)).await.expect("POST")).await;
    assert_eq!(s, 200);
    assert_eq!(
        meta.sends()[0].appsecret_proof.as_deref(),
        Some(proof.as_str())
    );
    let (s, v) = read(send(Some("00")).await.expect("POST")).await;
    assert_eq!((s, graph_error(&v).0), (400, 100));
    meta.require_appsecret_proof(true);
    let (s, v) = read(send(None).await.expect("POST")).await;
    assert_eq!((s, graph_error(&v).0), (400, 100));
}

#[tokio::test]
async fn subscriptions_need_the_right_token_and_can_be_removed() {
    let meta = fake().await;
    let sub = format!(
        "{}/v25.0/{PAGE}/subscribed_apps?subscribed_fields=messages,messaging_postbacks",
        meta.base_url()
    );
    let (s, v) = read(
        client()
            .post(&sub)
            .query(&[("access_token", USER_TOKEN)])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!((s, graph_error(&v).0), (400, 190));
    let no_fields = format!("{}/v25.0/{PAGE}/subscribed_apps", meta.base_url());
    let (s, v) = read(
        client()
            .post(&no_fields)
            .query(&[("access_token", PAGE_TOKEN)])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!((s, graph_error(&v).0), (400, 100));
    let ok = read(
        client()
            .post(&sub)
            .query(&[("access_token", PAGE_TOKEN)])
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(ok, (200, json!({"success": true})));
    let (s, v) = read(
        client()
            .get(&no_fields)
            .query(&[("access_token", PAGE_TOKEN)])
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"][0]["id"], APP_ID);
    assert_eq!(
        v["data"][0]["subscribed_fields"],
        json!(["messages", "messaging_postbacks"])
    );

    let waba = format!("{}/v25.0/{WABA}/subscribed_apps", meta.base_url());
    let (s, _) = read(
        client()
            .post(&waba)
            .bearer_auth("garbage")
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(s, 401);
    let ok = read(
        client()
            .post(&waba)
            .bearer_auth(WA_TOKEN)
            .send()
            .await
            .expect("POST"),
    )
    .await;
    assert_eq!(ok, (200, json!({"success": true})));
    assert_eq!(
        meta.subscriptions(),
        vec![PAGE.to_string(), WABA.to_string()]
    );

    let del = read(
        client()
            .delete(&no_fields)
            .query(&[("access_token", PAGE_TOKEN)])
            .send()
            .await
            .expect("DELETE"),
    )
    .await;
    assert_eq!(del, (200, json!({"success": true})));
    assert_eq!(meta.subscriptions(), vec![WABA.to_string()]);
    let (_, v) = read(
        client()
            .get(&no_fields)
            .query(&[("access_token", PAGE_TOKEN)])
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(v, json!({"data": []}));
}

#[tokio::test]
async fn object_lookups_need_a_token_with_access() {
    let meta = fake().await;
    let (s, v) = get_json(&meta, &format!("/v25.0/{PAGE}?fields=id,name,instagram_business_account{{id}}&access_token={PAGE_TOKEN}")).await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"id": PAGE, "name": "Acme", "instagram_business_account": {"id": IG}})
        )
    );
    let (s, v) = get_json(
        &meta,
        &format!("/v25.0/{PAGE}?fields=id,name&access_token={OTHER_TOKEN}"),
    )
    .await;
    assert_eq!((s, graph_error(&v)), (400, (100, Some(33))));
    meta.set_instagram_profile(IG, "acme_shop", "Acme Shop");
    let (s, v) = get_json(
        &meta,
        &format!("/v25.0/{IG}?fields=username,name&access_token={PAGE_TOKEN}"),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"id": IG, "username": "acme_shop", "name": "Acme Shop"})
        )
    );
    let resp = client()
        .get(format!(
            "{}/v25.0/{PNID}?fields=id,display_phone_number,verified_name",
            meta.base_url()
        ))
        .bearer_auth(WA_TOKEN)
        .send()
        .await
        .expect("GET");
    let (s, v) = read(resp).await;
    assert_eq!(s, 200);
    assert_eq!(v["display_phone_number"], "15550001111");
    assert!(v["verified_name"].is_string());
    // Graph paths need a version.
    let (s, v) = get_json(&meta, &format!("/{PAGE}?access_token={PAGE_TOKEN}")).await;
    assert_eq!((s, graph_error(&v).0), (400, 2500));
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ----------------------------------------------------------------------------- §1.5 sender

#[derive(Default)]
struct Received {
    bodies: Vec<Vec<u8>>,
}

/// A minimal receiver: checks `X-Hub-Signature-256` over the raw bytes (401 otherwise) and answers
/// the handshake for verify token `vt`.
async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    async fn post(
        State(got): State<Arc<Mutex<Received>>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let sig = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        if sig != Some(meta_signature(SECRET.as_bytes(), &body).as_str()) {
            return StatusCode::UNAUTHORIZED;
        }
        got.lock().expect("lock").bodies.push(body.to_vec());
        StatusCode::OK
    }
    async fn verify(Query(q): Query<HashMap<String, String>>) -> (StatusCode, String) {
        match (
            q.get("hub.mode"),
            q.get("hub.verify_token"),
            q.get("hub.challenge"),
        ) {
            (Some(m), Some(t), Some(c)) if m == "subscribe" && t == "vt" => {
                (StatusCode::OK, c.clone())
            }
            _ => (StatusCode::FORBIDDEN, String::new()),
        }
    }
    let app = Router::new()
        .route("/webhooks/meta", get(verify).post(post))
        .with_state(got.clone());
    let addr = mtdesk_testkit::spawn_on_loopback(app).await;
    (format!("http://{addr}/webhooks/meta"), got)
}

#[tokio::test]
async fn sender_signs_exact_escaped_bytes_and_records_would_retry() {
    let (url, got) = receiver().await;
    let hook = WebhookSender::new(&url, SECRET);
    let body = messenger_text(PAGE, PSID, "m_IN1", "Grüße", 1735700000001);
    assert_eq!(hook.post(&body).await.status().as_u16(), 200);
    let sent = got.lock().expect("lock").bodies[0].clone();
    assert_eq!(sent, meta_json(&body).into_bytes());
    assert!(String::from_utf8_lossy(&sent).contains(r"Gr\u00fc\u00dfe"));
    assert_eq!(serde_json::from_slice::<Value>(&sent).expect("json"), body);

    for mode in [
        SignatureMode::Wrong,
        SignatureMode::Missing,
        SignatureMode::Sha1Only,
        SignatureMode::Custom("sha256=00".into()),
    ] {
        assert_eq!(
            hook.post_raw(br#"{"object":"page","entry":[]}"#, mode)
                .await
                .status()
                .as_u16(),
            401
        );
    }
    assert_eq!(hook.would_retry(), vec![401, 401, 401, 401]);
    let valid = hook
        .post_raw(br#"{"object": "page", "entry": []}"#, SignatureMode::Valid)
        .await;
    assert_eq!(valid.status().as_u16(), 200);
    assert_eq!(
        hook.redeliver_last().await.map(|r| r.status().as_u16()),
        Some(200)
    );
    assert_eq!(got.lock().expect("lock").bodies.len(), 3);

    let ok = hook
        .handshake(Some("subscribe"), Some("vt"), "1158201444")
        .await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    assert_eq!(
        hook.handshake(Some("subscribe"), Some("nope"), "1")
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        hook.handshake(Some("subscribe"), None, "1")
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        hook.would_retry().len(),
        4,
        "handshakes are not retried deliveries"
    );
}

#[tokio::test]
async fn tracking_sender_opens_windows_for_what_it_delivers() {
    let meta = fake().await;
    let (url, _got) = receiver().await;
    let hook = WebhookSender::new(&url, SECRET).tracking(&meta);
    let batch = messenger_batch(&[(
        PAGE,
        vec![
            messenger_text_item(PAGE, PSID, "m_1", "Hi", now_ms()),
            messenger_echo_item(
                PAGE,
                "7000000000000005",
                "m_2",
                "echo",
                Some(APP_ID),
                now_ms(),
            ),
        ],
    )]);
    assert_eq!(hook.post(&reversed(&batch)).await.status().as_u16(), 200);
    let path = format!("{PAGE}/messages");
    assert_eq!(
        post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, "Hello"))
            .await
            .0,
        200
    );
    // An echo is not a user message: its recipient gets no window.
    let (s, v) = post_page(&meta, &path, PAGE_TOKEN, text_to("7000000000000005", "x")).await;
    assert_eq!((s, graph_error(&v)), (400, (100, Some(2018001))));

    // Instagram bodies register IGSIDs, so Page sends to them are Instagram sends.
    hook.post(&instagram_story_reply(
        IG,
        "990000000000002",
        "aWdfIN",
        "Nice!",
        "https://cdn/x",
        "1800",
        now_ms(),
    ))
    .await;
    assert_eq!(
        post_page(
            &meta,
            &path,
            PAGE_TOKEN,
            text_to("990000000000002", "Thanks")
        )
        .await
        .0,
        200
    );
    assert_eq!(meta.sends()[1].platform, "instagram");

    meta.echo_webhooks(true);
    assert_eq!(
        post_page(&meta, &path, PAGE_TOKEN, text_to(PSID, "echo me"))
            .await
            .0,
        200
    );
    let echoes = meta.pending_status_webhooks();
    assert_eq!(echoes.len(), 1);
    let item = &echoes[0]["entry"][0]["messaging"][0];
    assert_eq!(item["message"]["is_echo"], true);
    assert_eq!(item["message"]["app_id"], 1234);
    assert_eq!(item["recipient"]["id"], PSID);
    assert_eq!(hook.post(&echoes[0]).await.status().as_u16(), 200);
}

#[test]
fn builders_follow_the_reference_shapes() {
    let m = messenger_text(
        PAGE,
        PSID,
        "m_AbC123",
        "Do you ship to Canada?",
        1735700000001,
    );
    assert_eq!(
        m,
        json!({"object": "page", "entry": [{"id": PAGE, "time": 1735700000001i64, "messaging": [
            {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1735700000001i64,
             "message": {"mid": "m_AbC123", "text": "Do you ship to Canada?"}}]}]})
    );
    let w = whatsapp_text(
        WABA,
        PNID,
        "15550001111",
        WA_ID,
        "Ana Test",
        "wamid.X",
        "Hours?",
        1735700000,
    );
    let value = &w["entry"][0]["changes"][0]["value"];
    assert_eq!(w["entry"][0]["changes"][0]["field"], "messages");
    assert_eq!(
        value["metadata"],
        json!({"display_phone_number": "15550001111", "phone_number_id": PNID})
    );
    assert_eq!(
        value["contacts"][0],
        json!({"profile": {"name": "Ana Test"}, "wa_id": WA_ID})
    );
    assert_eq!(value["messages"][0]["timestamp"], "1735700000");
    assert_eq!(value["messages"][0]["text"]["body"], "Hours?");
    let st = whatsapp_status(
        WABA,
        PNID,
        "wamid.OUT1",
        "failed",
        WA_ID,
        1735700100,
        Some((131047, "Re-engagement message")),
    );
    let item = &st["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(item["errors"][0]["code"], 131047);
    assert!(item["errors"][0]["error_data"]["details"].is_string());
    let mention = instagram_story_mention(
        IG,
        IGSID,
        "aWdfZAG1",
        "https://lookaside.fbsbx.com/x",
        1735700000900,
    );
    assert_eq!(mention["object"], "instagram");
    assert_eq!(
        mention["entry"][0]["messaging"][0]["message"]["attachments"][0]["type"],
        "story_mention"
    );
    let img = whatsapp_image(
        WABA,
        PNID,
        "1555",
        WA_ID,
        "Ana",
        "wamid.I",
        "media-1",
        "image/jpeg",
        Some("look"),
        1,
    );
    assert_eq!(
        img["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["caption"],
        "look"
    );
}
