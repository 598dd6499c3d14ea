//! The Graph client against scripted answers: paths, queries, headers and bodies of each call
//! (external-apis.md §2.3, §4.2, §5.1, §5.2), error mapping (§2.4, §4.3), retries and timeouts.

use crate::fake::{Fake, Reply};
use mtdesk_channels::{
    ErrorClass, GraphClient, GraphConfig, GraphError, SendTarget, appsecret_proof,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PAGE_TOKEN: &str = "EAAB-page-token-0123456789";
const APP_SECRET: &str = "app_secret_123";

fn config(base: &str) -> GraphConfig {
    GraphConfig {
        base_backoff: Duration::from_millis(10),
        total_timeout: Duration::from_secs(5),
        ..GraphConfig::new(base, "1234", APP_SECRET)
    }
}

fn client(fake: &Fake) -> GraphClient {
    GraphClient::new(config(&fake.base))
}

fn ok_send() -> Reply {
    Reply::json(
        200,
        json!({"recipient_id": "7000000000000001", "message_id": "m_Ghi789"}),
    )
}

/// The §2.4 example error.
fn error_551() -> Reply {
    Reply::json(
        400,
        json!({ "error": { "message": "(#551) This person isn't available right now.", "type": "OAuthException",
             "code": 551, "error_subcode": 1545041, "fbtrace_id": "AbCdEf123" } }),
    )
}

fn graph_error(status: u16, code: i64, subcode: Option<i64>) -> Reply {
    let mut e = json!({"message": format!("(#{code}) scripted"), "type": "OAuthException", "code": code, "fbtrace_id": "T1"});
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    Reply::json(status, json!({ "error": e }))
}

// ---- sends ---------------------------------------------------------------------------------------

#[tokio::test]
async fn messenger_and_instagram_sends_post_to_the_page_with_the_token_in_the_query() {
    for target in [
        SendTarget::Messenger {
            page_id: "110000000000001",
        },
        SendTarget::Instagram {
            page_id: "110000000000001",
        },
    ] {
        let fake = Fake::always(ok_send()).await;
        let sent = client(&fake)
            .send_text(
                target,
                PAGE_TOKEN,
                "7000000000000001",
                "Yes, we ship to Canada.",
            )
            .await
            .expect("sent");
        assert_eq!(sent.message_id, "m_Ghi789");
        let calls = fake.calls();
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/v25.0/110000000000001/messages");
        assert_eq!(c.query_keys(), ["access_token"]);
        assert_eq!(c.q("access_token"), Some(PAGE_TOKEN));
        assert_eq!(c.authorization, None);
        assert_eq!(c.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            c.body,
            json!({"recipient": {"id": "7000000000000001"}, "messaging_type": "RESPONSE",
                   "message": {"text": "Yes, we ship to Canada."}})
        );
    }
}

#[tokio::test]
async fn appsecret_proof_is_added_when_configured() {
    let fake = Fake::always(ok_send()).await;
    let cfg = GraphConfig {
        use_appsecret_proof: true,
        ..config(&fake.base)
    };
    GraphClient::new(cfg)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            "EAAB-page-token",
            "U1",
            "hi",
        )
        .await
        .expect("sent");
    let c = &fake.calls()[0];
    assert_eq!(c.q("access_token"), Some("EAAB-page-token"));
    // external-apis.md §2.3 vector.
    assert_eq!(
        c.q("appsecret_proof"),
        Some("91312d49d7c78d346071ff17c3f35fa67aa17f13bf91c41d343bf0656be8c463")
    );
}

#[tokio::test]
async fn human_agent_replies_use_the_message_tag() {
    let fake = Fake::always(ok_send()).await;
    let c = client(&fake);
    c.send_human_agent(
        SendTarget::Instagram { page_id: "P1" },
        PAGE_TOKEN,
        "S1",
        "Sorry for the wait!",
    )
    .await
    .expect("sent");
    assert_eq!(
        fake.calls()[0].body,
        json!({"recipient": {"id": "S1"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
               "message": {"text": "Sorry for the wait!"}})
    );
    let err = c
        .send_human_agent(
            SendTarget::WhatsApp {
                phone_number_id: "PN1",
            },
            PAGE_TOKEN,
            "15550002222",
            "x",
        )
        .await
        .expect_err("no HUMAN_AGENT on WhatsApp");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert_eq!(fake.calls().len(), 1, "nothing sent for WhatsApp");
}

#[tokio::test]
async fn whatsapp_sends_use_bearer_and_to_or_recipient() {
    let answer = Reply::json(
        200,
        json!({"messaging_product": "whatsapp", "contacts": [{"input": "+15550002222", "wa_id": "15550002222"}],
               "messages": [{"id": "wamid.OUT1"}]}),
    );
    let cases = [
        ("15550002222", "to", "+15550002222"),
        ("+15550002222", "to", "+15550002222"),
        (
            "US.13491208655302741918",
            "recipient",
            "US.13491208655302741918",
        ),
    ];
    for (recipient, key, value) in cases {
        let fake = Fake::always(answer.clone()).await;
        let sent = client(&fake)
            .send_text(
                SendTarget::WhatsApp {
                    phone_number_id: "200000000000002",
                },
                "wa-system-user-token",
                recipient,
                "We're open 9:00–18:00, Monday to Saturday.",
            )
            .await
            .expect("sent");
        assert_eq!(sent.message_id, "wamid.OUT1");
        let c = &fake.calls()[0];
        assert_eq!(
            (c.method.as_str(), c.path.as_str()),
            ("POST", "/v25.0/200000000000002/messages")
        );
        assert_eq!(
            c.authorization.as_deref(),
            Some("Bearer wa-system-user-token")
        );
        assert!(c.query.is_empty(), "no token in the query: {:?}", c.query);
        let mut want = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "type": "text", "text": {"preview_url": false, "body": "We're open 9:00–18:00, Monday to Saturday."}});
        want[key] = json!(value);
        assert_eq!(c.body, want, "{recipient}");
    }

    let fake = Fake::always(answer).await;
    let err = client(&fake)
        .send_text(
            SendTarget::WhatsApp {
                phone_number_id: "PN1",
            },
            "t",
            "not a number",
            "x",
        )
        .await
        .expect_err("bad recipient");
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn whatsapp_mark_read_posts_the_status() {
    let fake = Fake::always(Reply::json(200, json!({"success": true}))).await;
    client(&fake)
        .mark_read_whatsapp("PN1", "wa-token", "wamid.IN1")
        .await
        .expect("marked");
    let c = &fake.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.path.as_str()),
        ("POST", "/v25.0/PN1/messages")
    );
    assert_eq!(c.authorization.as_deref(), Some("Bearer wa-token"));
    assert_eq!(
        c.body,
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"})
    );
}

// ---- errors and retries --------------------------------------------------------------------------

#[tokio::test]
async fn a_graph_error_body_becomes_a_classified_error_without_retry() {
    let fake = Fake::always(error_551()).await;
    let err = client(&fake)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("551");
    assert_eq!(
        err,
        GraphError {
            http_status: Some(400),
            code: Some(551),
            subcode: Some(1545041),
            message: "(#551) This person isn't available right now.".into(),
            fbtrace_id: Some("AbCdEf123".into()),
            is_transient: false,
            class: ErrorClass::UserUnavailable,
        }
    );
    assert!(err.to_string().contains("code 551/1545041"), "{err}");
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn transient_and_rate_limit_errors_are_retried_then_succeed() {
    let cases = [
        ("HTTP 500", Reply::raw(500, "Internal Server Error")),
        ("613", graph_error(400, 613, None)),
        ("1200", graph_error(400, 1200, None)),
        (
            "is_transient",
            Reply::json(
                400,
                json!({"error": {"message": "x", "code": 1, "is_transient": true}}),
            ),
        ),
        ("131000 as 500", graph_error(500, 131000, None)),
        ("130429", graph_error(400, 130429, None)),
    ];
    for (name, first) in cases {
        let fake = Fake::start(vec![first], ok_send()).await;
        let sent = client(&fake)
            .send_text(
                SendTarget::Messenger { page_id: "P1" },
                PAGE_TOKEN,
                "U1",
                "hi",
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sent.message_id, "m_Ghi789", "{name}");
        assert_eq!(fake.calls().len(), 2, "{name}");
    }
}

#[tokio::test]
async fn permanent_errors_are_returned_at_once() {
    let cases = [
        ("190", graph_error(401, 190, None), ErrorClass::TokenInvalid),
        (
            "190/463",
            graph_error(400, 190, Some(463)),
            ErrorClass::TokenInvalid,
        ),
        (
            "10/2018065",
            graph_error(400, 10, Some(2018065)),
            ErrorClass::OutsideWindow,
        ),
        (
            "131047",
            graph_error(400, 131047, None),
            ErrorClass::OutsideWindow,
        ),
        ("100", graph_error(400, 100, None), ErrorClass::Permanent),
        ("200", graph_error(403, 200, None), ErrorClass::Config),
        (
            "404 html",
            Reply::raw(404, "<html>nope</html>"),
            ErrorClass::Permanent,
        ),
    ];
    for (name, reply, class) in cases {
        let fake = Fake::start(vec![reply], ok_send()).await;
        let err = client(&fake)
            .send_text(
                SendTarget::Messenger { page_id: "P1" },
                PAGE_TOKEN,
                "U1",
                "hi",
            )
            .await
            .expect_err(name);
        assert_eq!(err.class, class, "{name}");
        assert!(!err.is_retryable(), "{name}");
        assert_eq!(fake.calls().len(), 1, "{name}: not retried");
    }
}

#[tokio::test]
async fn retries_stop_after_max_attempts_and_keep_the_status_of_a_non_json_body() {
    let fake = Fake::always(Reply::raw(502, "<html><h1>502 Bad Gateway</h1></html>")).await;
    let err = client(&fake)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("502");
    assert_eq!(
        (err.http_status, err.code, err.class),
        (Some(502), None, ErrorClass::Transient)
    );
    assert!(err.to_string().contains("HTTP 502"), "{err}");
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = Fake::start(
        vec![Reply::raw(503, "busy").header("retry-after", "1")],
        ok_send(),
    )
    .await;
    let started = Instant::now();
    client(&fake)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect("sent after waiting");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(fake.calls().len(), 2);

    // A Retry-After beyond the total timeout: give up at once instead of sleeping past it.
    let fake = Fake::start(
        vec![graph_error(400, 613, None).header("retry-after", "3600")],
        ok_send(),
    )
    .await;
    let started = Instant::now();
    let err = client(&fake)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("gives up");
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn a_stalled_server_times_out_within_the_total_timeout() {
    let fake = Fake::always(ok_send().delayed(Duration::from_secs(30))).await;
    let cfg = GraphConfig {
        total_timeout: Duration::from_millis(400),
        ..config(&fake.base)
    };
    let started = Instant::now();
    let err = GraphClient::new(cfg)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
    assert_eq!((err.http_status, err.class), (None, ErrorClass::Transient));
    assert!(err.to_string().contains("400 ms"), "{err}");
}

#[tokio::test]
async fn tokens_and_the_app_secret_never_appear_in_errors() {
    // 1. Network error: reqwest's error would carry the URL with `access_token=`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let cfg = GraphConfig {
        use_appsecret_proof: true,
        max_attempts: 1,
        ..config(&closed)
    };
    let c = GraphClient::new(cfg);
    let errs = vec![
        c.send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("refused"),
        c.debug_token(PAGE_TOKEN).await.expect_err("refused"),
        c.exchange_code("the-oauth-code-xyz", "https://r")
            .await
            .expect_err("refused"),
    ];
    for err in &errs {
        assert_eq!(err.class, ErrorClass::Transient);
        assert_no_secret(err);
    }

    // 2. An error body that echoes the token, the app secret and the proof back.
    let proof = appsecret_proof(APP_SECRET.as_bytes(), PAGE_TOKEN);
    let echo = format!(
        "Invalid token {PAGE_TOKEN} for secret {APP_SECRET} proof {proof} app 1234|{APP_SECRET}"
    );
    let fake = Fake::always(Reply::json(
        400,
        json!({"error": {"message": echo, "code": 190}}),
    ))
    .await;
    let cfg = GraphConfig {
        use_appsecret_proof: true,
        ..config(&fake.base)
    };
    let c = GraphClient::new(cfg);
    let err = c
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect_err("190");
    assert_eq!(err.class, ErrorClass::TokenInvalid);
    assert_no_secret(&err);
    assert!(!err.to_string().contains(&proof));
    let err = c.debug_token(PAGE_TOKEN).await.expect_err("190");
    assert_no_secret(&err);
}

fn assert_no_secret(err: &GraphError) {
    for shown in [err.to_string(), format!("{err:?}")] {
        for secret in [PAGE_TOKEN, APP_SECRET, "the-oauth-code-xyz"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
    }
}

// ---- subscriptions, tokens, OAuth ----------------------------------------------------------------

#[tokio::test]
async fn page_subscription_posts_the_fields_and_accepts_both_success_forms() {
    for success in [json!(true), json!("true")] {
        let fake = Fake::always(Reply::json(200, json!({"success": success}))).await;
        let c = client(&fake);
        c.subscribe_page("P1", PAGE_TOKEN)
            .await
            .expect("subscribed");
        c.unsubscribe_page("P1", PAGE_TOKEN)
            .await
            .expect("unsubscribed");
        let calls = fake.calls();
        assert_eq!(
            (calls[0].method.as_str(), calls[0].path.as_str()),
            ("POST", "/v25.0/P1/subscribed_apps")
        );
        assert_eq!(
            calls[0].q("subscribed_fields"),
            Some("messages,messaging_postbacks,message_echoes,message_deliveries,message_reads")
        );
        assert_eq!(calls[0].q("access_token"), Some(PAGE_TOKEN));
        assert_eq!(
            (calls[1].method.as_str(), calls[1].path.as_str()),
            ("DELETE", "/v25.0/P1/subscribed_apps")
        );
        assert_eq!(calls[1].q("access_token"), Some(PAGE_TOKEN));
    }
    for bad in [
        json!({"success": false}),
        json!({"success": "false"}),
        json!({}),
    ] {
        let fake = Fake::always(Reply::json(200, bad.clone())).await;
        let err = client(&fake)
            .subscribe_page("P1", PAGE_TOKEN)
            .await
            .expect_err("not success");
        assert_eq!(err.class, ErrorClass::Permanent, "{bad}");
    }
}

#[tokio::test]
async fn waba_subscription_uses_bearer() {
    let fake = Fake::always(Reply::json(200, json!({"success": true}))).await;
    let c = client(&fake);
    c.subscribe_waba("WABA1", "wa-token")
        .await
        .expect("subscribed");
    c.unsubscribe_waba("WABA1", "wa-token")
        .await
        .expect("unsubscribed");
    let calls = fake.calls();
    for (c, method) in calls.iter().zip(["POST", "DELETE"]) {
        assert_eq!(
            (c.method.as_str(), c.path.as_str()),
            (method, "/v25.0/WABA1/subscribed_apps")
        );
        assert_eq!(c.authorization.as_deref(), Some("Bearer wa-token"));
        assert!(c.query.is_empty());
    }
}

#[tokio::test]
async fn debug_token_uses_the_app_token_and_reads_data() {
    let fake = Fake::always(Reply::json(
        200,
        json!({"data": {"app_id": "1234", "type": "PAGE", "application": "MT Desk",
            "data_access_expires_at": 1743000000, "expires_at": 0, "is_valid": true,
            "issued_at": 1735000000, "scopes": ["pages_messaging"], "user_id": "5550001"}}),
    ))
    .await;
    let info = client(&fake).debug_token("EAAB-input").await.expect("info");
    assert!(info.is_valid);
    assert_eq!(info.app_id, "1234");
    assert_eq!(info.token_type, "PAGE");
    assert_eq!(info.user_id.as_deref(), Some("5550001"));
    assert_eq!(info.scopes, ["pages_messaging"]);
    assert_eq!(info.expires_at, 0);
    let c = &fake.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.path.as_str()),
        ("GET", "/v25.0/debug_token")
    );
    assert_eq!(c.q("input_token"), Some("EAAB-input"));
    assert_eq!(c.q("access_token"), Some("1234|app_secret_123"));
    assert!(
        c.raw_query.contains("access_token=1234%7Capp_secret_123"),
        "{}",
        c.raw_query
    );

    let fake = Fake::always(Reply::json(
        200,
        json!({"data": {"is_valid": false, "error": {"code": 190, "message": "expired"}, "scopes": []}}),
    ))
    .await;
    let info = client(&fake).debug_token("old").await.expect("info");
    assert!(!info.is_valid);
}

#[tokio::test]
async fn get_object_and_me() {
    let fake = Fake::start(
        vec![
            Reply::json(
                200,
                json!({"instagram_business_account": {"id": "17841400000000000"}, "id": "P1"}),
            ),
            Reply::json(200, json!({"id": "5550001", "name": "Ana Owner"})),
        ],
        Reply::raw(500, ""),
    )
    .await;
    let c = client(&fake);
    let v: Value = c
        .get_object("P1", "instagram_business_account", PAGE_TOKEN)
        .await
        .expect("object");
    assert_eq!(v["instagram_business_account"]["id"], "17841400000000000");
    let me = c.me("user-token-abc").await.expect("me");
    assert_eq!(
        (me.id.as_str(), me.name.as_deref()),
        ("5550001", Some("Ana Owner"))
    );
    let calls = fake.calls();
    assert_eq!(calls[0].path, "/v25.0/P1");
    assert_eq!(calls[0].q("fields"), Some("instagram_business_account"));
    assert_eq!(calls[0].q("access_token"), Some(PAGE_TOKEN));
    assert_eq!(calls[1].path, "/v25.0/me");
    assert_eq!(calls[1].q("fields"), Some("id,name"));
    assert_eq!(calls[1].q("access_token"), Some("user-token-abc"));
}

#[tokio::test]
async fn code_exchange_and_long_lived_token() {
    let token = Reply::json(
        200,
        json!({"access_token": "EAAB-user", "token_type": "bearer", "expires_in": 5183944}),
    );
    let fake = Fake::start(
        vec![
            token.clone(),
            Reply::json(
                200,
                json!({"access_token": "EAAB-long", "token_type": "bearer"}),
            ),
        ],
        Reply::raw(500, ""),
    )
    .await;
    let c = client(&fake);
    let t = c
        .exchange_code("CODE1", "https://desk.example.com/cb")
        .await
        .expect("token");
    assert_eq!(
        (t.access_token.as_str(), t.expires_in),
        ("EAAB-user", Some(5183944))
    );
    assert!(
        !format!("{t:?}").contains("EAAB-user"),
        "Debug hides the token"
    );
    let long = c.long_lived_user_token("EAAB-user").await.expect("long");
    assert_eq!(
        (long.access_token.as_str(), long.expires_in),
        ("EAAB-long", None)
    );
    let calls = fake.calls();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("GET", "/v25.0/oauth/access_token")
    );
    assert_eq!(
        calls[0].query_keys(),
        ["client_id", "redirect_uri", "client_secret", "code"]
    );
    assert_eq!(calls[0].q("client_id"), Some("1234"));
    assert_eq!(
        calls[0].q("redirect_uri"),
        Some("https://desk.example.com/cb")
    );
    assert_eq!(calls[0].q("client_secret"), Some(APP_SECRET));
    assert_eq!(calls[0].q("code"), Some("CODE1"));
    assert_eq!(calls[1].path, "/v25.0/oauth/access_token");
    assert_eq!(calls[1].q("grant_type"), Some("fb_exchange_token"));
    assert_eq!(calls[1].q("client_id"), Some("1234"));
    assert_eq!(calls[1].q("client_secret"), Some(APP_SECRET));
    assert_eq!(calls[1].q("fb_exchange_token"), Some("EAAB-user"));

    // Embedded Signup: no redirect_uri (external-apis.md §5.4).
    let fake = Fake::always(token).await;
    client(&fake)
        .exchange_code("CODE2", "")
        .await
        .expect("token");
    assert_eq!(
        fake.calls()[0].query_keys(),
        ["client_id", "client_secret", "code"]
    );

    let fake = Fake::always(graph_error(400, 100, None)).await;
    let err = client(&fake)
        .exchange_code("used", "https://r")
        .await
        .expect_err("used code");
    assert_eq!(err.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn list_pages_follows_paging_next_and_stops_after_ten_pages() {
    // Two pages, the second reached through `paging.next`, which carries Meta's own access_token.
    let second = Reply::json(
        200,
        json!({"data": [{"id": "110000000000002", "name": "Acme Outlet", "access_token": "EAAB-p2", "tasks": ["ADVERTISE"]}],
               "paging": {"cursors": {"before": "C", "after": "CUR2"}}}),
    );
    let fake = Fake::always(second).await;
    fake.script(Reply::json(
        200,
        json!({"data": [{"id": "110000000000001", "name": "Acme", "access_token": "EAAB-p1",
                "tasks": ["MESSAGING", "MODERATE"], "instagram_business_account": {"id": "17841400000000000"}}],
               "paging": {"cursors": {"before": "B", "after": "CUR1"},
                          "next": format!("{}/v25.0/me/accounts?access_token=OTHER&after=CUR1&limit=25", fake.base)}}),
    ));
    let pages = client(&fake).list_pages("user-long").await.expect("pages");
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].id, "110000000000001");
    assert_eq!(pages[0].name, "Acme");
    assert_eq!(pages[0].access_token, "EAAB-p1");
    assert_eq!(pages[0].tasks, ["MESSAGING", "MODERATE"]);
    assert_eq!(
        pages[0].instagram_business_account.as_deref(),
        Some("17841400000000000")
    );
    assert_eq!(pages[1].instagram_business_account, None);
    assert!(
        !format!("{pages:?}").contains("EAAB-p1"),
        "Debug hides page tokens"
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "stops when there is no next page");
    assert_eq!(calls[0].path, "/v25.0/me/accounts");
    assert_eq!(
        calls[0].q("fields"),
        Some("id,name,access_token,tasks,instagram_business_account")
    );
    assert_eq!(calls[0].q("access_token"), Some("user-long"));
    assert_eq!(calls[1].path, "/v25.0/me/accounts");
    assert_eq!(calls[1].q("after"), Some("CUR1"));
    assert_eq!(calls[1].q("limit"), Some("25"));
    assert_eq!(
        calls[1].q("access_token"),
        Some("user-long"),
        "our token, not the one in next"
    );
    assert_eq!(
        calls[1]
            .query
            .iter()
            .filter(|(k, _)| k == "access_token")
            .count(),
        1
    );

    // Endless paging: at most ten requests. A `next` on another host is not followed; the cursor is.
    let endless = Reply::json(
        200,
        json!({"data": [{"id": "P", "name": "P", "access_token": "t", "tasks": []}],
               "paging": {"cursors": {"after": "AGAIN"}, "next": "https://evil.example.com/v25.0/me/accounts?after=AGAIN"}}),
    );
    let fake = Fake::always(endless).await;
    let pages = client(&fake).list_pages("user-long").await.expect("pages");
    assert_eq!(pages.len(), 10);
    let calls = fake.calls();
    assert_eq!(calls.len(), 10);
    assert_eq!(calls[1].q("after"), Some("AGAIN"));
    assert_eq!(
        calls[1].q("fields"),
        Some("id,name,access_token,tasks,instagram_business_account")
    );

    // An empty page ends the listing.
    let fake = Fake::always(Reply::json(
        200,
        json!({"data": [], "paging": {"cursors": {"after": "X"}}}),
    ))
    .await;
    assert!(
        client(&fake)
            .list_pages("user-long")
            .await
            .expect("pages")
            .is_empty()
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn revoke_permissions_deletes_them() {
    let fake = Fake::always(Reply::json(200, json!({"success": true}))).await;
    client(&fake)
        .revoke_permissions("5550001", "user-token-abc")
        .await
        .expect("revoked");
    let c = &fake.calls()[0];
    assert_eq!(
        (c.method.as_str(), c.path.as_str()),
        ("DELETE", "/v25.0/5550001/permissions")
    );
    assert_eq!(c.q("access_token"), Some("user-token-abc"));
}

#[tokio::test]
async fn a_base_with_a_path_prefix_and_another_version_is_respected() {
    let fake = Fake::always(ok_send()).await;
    let cfg = GraphConfig {
        version: "v26.0".into(),
        ..config(&format!("{}/meta/", fake.base))
    };
    GraphClient::new(cfg)
        .send_text(
            SendTarget::Messenger { page_id: "P1" },
            PAGE_TOKEN,
            "U1",
            "hi",
        )
        .await
        .expect("sent");
    assert_eq!(fake.calls()[0].path, "/meta/v26.0/P1/messages");
}

#[tokio::test]
async fn a_200_without_the_expected_field_is_a_permanent_error() {
    for (name, reply) in [
        (
            "no message_id",
            Reply::json(200, json!({"recipient_id": "U1"})),
        ),
        ("not json", Reply::raw(200, "OK")),
        (
            "error in a 200",
            Reply::json(200, json!({"error": {"message": "x", "code": 100}})),
        ),
    ] {
        let fake = Fake::always(reply).await;
        let err = client(&fake)
            .send_text(
                SendTarget::Messenger { page_id: "P1" },
                PAGE_TOKEN,
                "U1",
                "hi",
            )
            .await
            .expect_err(name);
        assert_eq!(err.class, ErrorClass::Permanent, "{name}");
        assert_eq!(err.http_status, Some(200), "{name}");
        assert_eq!(fake.calls().len(), 1, "{name}");
    }
}
