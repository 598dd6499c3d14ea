//! Plans and usage limits: the seeded plans, billing off (every account on `MTDESK_DEFAULT_PLAN`), the
//! limits where the work happens (chatbots, knowledge storage, channels, answered messages with the
//! owner's one mail a month), the meters (API and My Account) and `mtdesk admin plan`.

use crate::channels::{MetaWorld, meta_vars};
use crate::helpers::{PASSWORD, TestAccount, TestApp, email, json_of};
use crate::privacy_ops::wait_outbox_empty;
use crate::tab::Tab;
use mtdesk_domain::{AccountId, Provider};
use mtdesk_storage::NewPlan;
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
use mtdesk_testkit::fake_meta::FakeMeta;
use mtdesk_testkit::smtp_sink::SmtpSink;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use std::process::Command;

const OR_KEY: &str = "sk-or-v1-instance-plans-0123456789";

/// Changes the seeded `free` plan's limits (the server reads plans on every check).
pub async fn set_free(app: &TestApp, chatbots: i64, messages: i64, storage: i64, channels: i64) {
    app.state
        .store
        .upsert_plan(&NewPlan {
            id: "free".into(),
            name: "Free".into(),
            stripe_price_id: None,
            price_cents: 0,
            currency: "usd".into(),
            max_chatbots: chatbots,
            max_messages_month: messages,
            max_storage_bytes: storage,
            max_channels: channels,
            is_default: true,
            position: 0,
        })
        .await
        .expect("plan saved");
}

async fn free_app() -> TestApp {
    TestApp::spawn_with(|v| {
        v.insert("MTDESK_DEFAULT_PLAN".into(), "free".into());
    })
    .await
}

async fn usage(app: &TestApp, a: &TestAccount) -> Value {
    let (status, v) = app.get("/api/v1/usage", &a.token).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn upload(
    app: &TestApp,
    token: &str,
    bot: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    json_of(resp).await
}

#[tokio::test]
async fn the_default_plans_are_seeded_and_billing_off_means_unlimited() {
    let app = TestApp::spawn().await;
    let plans = app.state.store.list_plans().await.expect("plans");
    let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["free", "starter", "pro", "unlimited"]);
    assert!(plans[0].is_default);
    assert_eq!(plans[1].stripe_price_id.as_deref(), Some("price_starter"));
    assert_eq!(plans[3].max_messages_month, -1);

    let a = app.sign_up(&email("plans")).await;
    for i in 0..3 {
        app.create_chatbot(&a.token, &format!("Bot {i}")).await;
    }
    let u = usage(&app, &a).await;
    assert_eq!(u["plan"]["id"], "unlimited", "{u}");
    assert_eq!(u["plan"]["billing_enabled"], false);
    assert_eq!(u["limits"]["chatbots"], Value::Null);
    assert_eq!(u["used"]["chatbots"], 3);
    let chatbots = u["meters"]
        .as_array()
        .expect("meters")
        .iter()
        .find(|m| m["resource"] == "chatbots")
        .expect("chatbots meter")
        .clone();
    assert_eq!(
        chatbots,
        json!({"resource": "chatbots", "used": 3, "limit": null, "percent": null})
    );
}

#[tokio::test]
async fn the_chatbot_limit_refuses_with_403_and_creates_nothing() {
    let app = free_app().await;
    let a = app.sign_up(&email("bots")).await;
    app.create_chatbot(&a.token, "First").await;
    let (status, v) = app
        .post("/api/v1/chatbots", &a.token, json!({"name": "Second"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "plan_limit");
    let message = v["message"].as_str().expect("message");
    assert!(message.contains("Free plan allows 1 chatbot"), "{message}");
    let (_, list) = app.get("/api/v1/chatbots", &a.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let u = usage(&app, &a).await;
    assert_eq!(u["plan"]["id"], "free");
    assert_eq!(u["limits"]["chatbots"], 1);
    assert_eq!(u["limits"]["messages_per_month"], 100);
    assert_eq!(u["limits"]["storage_bytes"], 10_485_760);
    let meters = u["meters"].as_array().expect("meters");
    let bots = meters
        .iter()
        .find(|m| m["resource"] == "chatbots")
        .expect("meter");
    assert_eq!(bots["percent"], 100);

    // The dashboard: the same refusal, and the meters on My Account.
    let tab = Tab::new(&app);
    let login = tab.get("/login").await;
    let page = tab
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("email", &a.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let list = tab.get("/chatbots").await;
    let refused = tab
        .post("/chatbots", &[("csrf", &list.csrf()), ("name", "Third")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("Free plan allows 1 chatbot"),
        "{}",
        refused.body
    );
    let account = tab.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Plan and usage"));
    assert!(
        account.body.contains("id=\"plan-name\">Free<"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains("id=\"meter-chatbots-text\">1 of 1"),
        "{}",
        account.body
    );
    assert!(account.body.contains("id=\"meter-messages-text\">0 of 100"));
    assert!(
        account
            .body
            .contains("id=\"meter-storage-text\">0 bytes of 10 MB")
    );
    assert!(!account.body.contains("style="), "no inline styles (CSP)");
}

#[tokio::test]
async fn an_upload_over_the_storage_limit_is_refused() {
    let app = free_app().await;
    set_free(&app, 1, 100, 1000, 1).await;
    let a = app.sign_up(&email("storage")).await;
    let bot = app.create_chatbot(&a.token, "Docs").await;
    let (status, v) = upload(
        &app,
        &a.token,
        &bot,
        "a.txt",
        b"Shipping takes five days. ".repeat(24),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let (status, v) = upload(
        &app,
        &a.token,
        &bot,
        "b.txt",
        b"Returns are free within 30 days. ".repeat(20),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "plan_limit");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("knowledge storage"),
        "{v}"
    );
    let (_, sources) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources"), &a.token)
        .await;
    assert_eq!(sources.as_array().map(Vec::len), Some(1), "{sources}");
    // A small file still fits.
    let (status, v) = upload(&app, &a.token, &bot, "c.txt", b"Open 9 to 5.".to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    // Full: a website is refused too (its size is known only after the crawl).
    set_free(&app, 1, 100, 600, 1).await;
    let (status, v) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/sources"),
            &a.token,
            json!({"url": "https://shop.example.com/"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let u = usage(&app, &a).await;
    assert_eq!(u["used"]["storage_bytes"], 24 * 26 + 12);
}

#[tokio::test]
async fn the_channel_limit_refuses_a_second_channel_but_allows_a_reconnect() {
    let fake = FakeMeta::start(crate::channels::APP_ID, crate::channels::APP_SECRET).await;
    let vars = meta_vars(&fake);
    let app = TestApp::spawn_with(|v| {
        vars(v);
        v.insert("MTDESK_DEFAULT_PLAN".into(), "free".into());
    })
    .await;
    let w = MetaWorld::with(app, fake).await;
    w.connect("messenger").await;
    let (status, v) = w
        .app
        .post(
            "/api/v1/channels",
            &w.account.token,
            json!({"kind": "whatsapp", "chatbot_id": w.bot, "phone_number_id": w.phone_id, "waba_id": w.waba_id, "access_token": w.wa_token}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "plan_limit");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("1 connected channel"),
        "{v}"
    );
    // Reconnecting the same Page adds no channel.
    w.connect("messenger").await;
    let (_, list) = w.app.get("/api/v1/channels", &w.account.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let u = usage(&w.app, &w.account).await;
    assert_eq!(u["used"]["channels"], 1);
}

async fn answered_days_back(app: &TestApp, account: &str, days: i64) {
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database");
    sqlx::query("UPDATE daily_stats SET day = day - $2 WHERE account_id = $1")
        .bind(account)
        .bind(days)
        .execute(&mut db)
        .await
        .expect("move usage");
    sqlx::query("UPDATE accounts SET limit_notice_month = '1999-01' WHERE id = $1")
        .bind(account)
        .execute(&mut db)
        .await
        .expect("old notice");
}

#[tokio::test]
async fn over_the_monthly_limit_the_fallback_reply_is_sent_and_the_owner_mailed_once() {
    let llm = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(OR_KEY))).await;
    let sink = SmtpSink::start().await;
    let (llm_url, smtp) = (llm.base_url(), sink.url());
    let app = TestApp::spawn_with(move |v| {
        v.insert("MTDESK_DEFAULT_PLAN".into(), "free".into());
        v.insert("MTDESK_OPENROUTER_BASE_URL".into(), llm_url);
        v.insert("MTDESK_OPENROUTER_API_KEY".into(), OR_KEY.into());
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    set_free(&app, 1, 2, -1, 1).await;
    let a = app.sign_up(&email("limit")).await;
    let (status, bot) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "Helper", "provider": "openrouter", "model": "fake-model", "fallback_reply": "Our team will reply soon.", "knowledge_only": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    let bot = bot["id"].as_str().expect("id").to_string();
    let ask = |n: usize| {
        let (app, token, bot) = (&app, a.token.clone(), bot.clone());
        async move {
            let (status, v) = app
                .post(
                    &format!("/api/v1/chatbots/{bot}/chat"),
                    &token,
                    json!({"message": format!("Question number {n}?")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v
        }
    };
    for n in 0..2 {
        let r = ask(n).await;
        assert_eq!(r["answered_by"], "openrouter", "{r}");
    }
    assert_eq!(llm.chat_requests().len(), 2);
    for n in 2..6 {
        let r = ask(n).await;
        assert_eq!(r["source"], "fallback", "{r}");
        assert_eq!(r["answer"], "Our team will reply soon.");
        assert!(
            r["notice"]
                .as_str()
                .unwrap_or("")
                .contains("limit of 2 answered messages"),
            "{r}"
        );
    }
    assert_eq!(
        llm.chat_requests().len(),
        2,
        "no provider call over the limit"
    );
    wait_outbox_empty(&app).await;
    let notices = |sink: &SmtpSink| {
        sink.messages()
            .into_iter()
            .filter(|m| {
                m.to.contains(&a.email)
                    && m.header("Subject")
                        .unwrap_or_default()
                        .contains("message limit")
            })
            .count()
    };
    assert_eq!(notices(&sink), 1, "exactly one mail this month");
    let u = usage(&app, &a).await;
    assert_eq!(
        u["used"]["messages_this_month"], 2,
        "fallback replies do not count"
    );
    let messages = u["meters"]
        .as_array()
        .expect("meters")
        .iter()
        .find(|m| m["resource"] == "messages")
        .cloned();
    assert_eq!(
        messages,
        Some(json!({"resource": "messages", "used": 2, "limit": 2, "percent": 100}))
    );

    // A new month: this month's usage moves into the past, so answering starts again.
    answered_days_back(&app, &a.id, 40).await;
    let r = ask(10).await;
    assert_eq!(r["answered_by"], "openrouter", "{r}");
    assert_eq!(llm.chat_requests().len(), 3);
    assert_eq!(usage(&app, &a).await["used"]["messages_this_month"], 1);
    // The notice of the new month is sent once more when the limit is reached again.
    ask(11).await;
    let r = ask(12).await;
    assert_eq!(r["source"], "fallback", "{r}");
    wait_outbox_empty(&app).await;
    assert_eq!(notices(&sink), 2);
    let account = AccountId::from_db(a.id.clone());
    assert_eq!(
        app.state
            .store
            .claim_limit_notice(
                &account,
                &mtdesk_domain::Month::of_ms(mtdesk_domain::now_ms()).to_string()
            )
            .await
            .ok(),
        Some(false),
        "already told this month"
    );
}

#[tokio::test]
async fn an_unknown_default_plan_stops_start_up_with_a_clear_message() {
    let dir = crate::helpers::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_mtdesk"))
        .args(["admin", "outbox"])
        .env_remove("MTDESK_DATABASE_URL")
        .env("MTDESK_DATA_DIR", dir.join("data"))
        .env("MTDESK_DEFAULT_PLAN", "gold")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MTDESK_DEFAULT_PLAN=\"gold\" is not a plan"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn plan_cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["admin", "plan"];
    full.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_mtdesk"))
        .args(&full)
        .env("MTDESK_DATABASE_URL", app.database_url())
        .env("MTDESK_DATA_DIR", &app.data_dir)
        .output()
        .expect("run mtdesk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn admin_plan_commands_set_list_import_and_delete_with_clear_exit_codes() {
    let app = TestApp::spawn().await;
    let (code, out, _) = plan_cli(&app, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("free") && out.contains("(default)") && out.contains("unlimited"),
        "{out}"
    );

    let (code, out, err) = plan_cli(
        &app,
        &[
            "set",
            "team",
            "--name",
            "Team",
            "--price-id",
            "price_team",
            "--price-cents",
            "4900",
            "--chatbots",
            "5",
            "--messages",
            "5000",
            "--storage-mb",
            "200",
            "--channels",
            "-1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("team") && out.contains("200 MB"), "{out}");
    let team = app.state.store.find_plan("team").await.expect("team");
    assert_eq!(
        (team.max_chatbots, team.max_storage_bytes, team.max_channels),
        (5, 200 * 1024 * 1024, -1)
    );
    // Update one field, the rest stays.
    let (code, _, err) = plan_cli(&app, &["set", "team", "--chatbots", "7", "--default"]);
    assert_eq!(code, 0, "{err}");
    let team = app.state.store.find_plan("team").await.expect("team");
    assert_eq!(
        (team.max_chatbots, team.max_messages_month, team.is_default),
        (7, 5000, true)
    );
    assert!(
        !app.state
            .store
            .find_plan("free")
            .await
            .expect("free")
            .is_default
    );

    // Bad input: exit 2 with the reason on stderr.
    for (args, needle) in [
        (vec!["set", "team", "--chatbots", "-5"], "chatbots"),
        (
            vec![
                "set",
                "Bad Id",
                "--name",
                "X",
                "--chatbots",
                "1",
                "--messages",
                "1",
                "--storage-mb",
                "1",
                "--channels",
                "1",
            ],
            "id",
        ),
        (vec!["set", "new", "--name", "New"], "--chatbots"),
        (vec!["set", "team", "--currency", "EURO"], "currency"),
        (
            vec!["set", "pro", "--price-id", "price_team"],
            "already used",
        ),
        (vec!["show", "nope"], "no plan"),
        (vec!["delete", "team"], "default plan"),
        (vec!["set", "team", "--chatbots", "many"], "invalid value"),
    ] {
        let (code, _, err) = plan_cli(&app, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // In use: refused while an account is on it.
    let a = app.sign_up(&email("planuser")).await;
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database");
    sqlx::query("UPDATE accounts SET plan_id = 'starter' WHERE id = $1")
        .bind(&a.id)
        .execute(&mut db)
        .await
        .expect("plan");
    let (code, _, err) = plan_cli(&app, &["delete", "starter"]);
    assert_eq!(code, 2);
    assert!(err.contains("used by 1 account"), "{err}");
    let (code, out, err) = plan_cli(&app, &["delete", "pro"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted plan pro"));
    assert!(app.state.store.find_plan("pro").await.is_err());

    // Import: all or nothing.
    let file = app.data_dir.join("plans.toml");
    std::fs::write(&file, "[[plan]]\nid = \"agency\"\nname = \"Agency\"\nprice_id = \"price_agency\"\nprice_cents = 29900\nchatbots = 50\nmessages = 100000\nstorage_mb = 5000\nchannels = 50\n\n[[plan]]\nid = \"free\"\nname = \"Free\"\nchatbots = 2\nmessages = 200\nstorage_mb = 20\nchannels = 2\n").expect("write");
    let (code, out, err) = plan_cli(&app, &["import", file.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("created plan agency") && out.contains("updated plan free"),
        "{out}"
    );
    assert_eq!(
        app.state
            .store
            .find_plan("free")
            .await
            .expect("free")
            .max_chatbots,
        2
    );
    std::fs::write(
        &file,
        "[[plan]]\nid = \"broken\"\nname = \"B\"\nchatbots = 1\n",
    )
    .expect("write");
    let (code, _, err) = plan_cli(&app, &["import", file.to_str().expect("path")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing field"), "{err}");
    assert!(app.state.store.find_plan("broken").await.is_err());
}
