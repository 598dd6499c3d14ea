//! Analytics from the daily aggregates: traffic seeded through the real chat path (offline answerer and a
//! fake OpenRouter), then the JSON API, the CSV exports and the dashboard page; periods, filters, scoping
//! to the account, bad input, and the numbers surviving the retention purge.

use crate::helpers::{TestAccount, TestApp, email};
use crate::tab::Tab;
use mtdesk_domain::Provider;
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
use reqwest::StatusCode;
use serde_json::{Value, json};

const OR_KEY: &str = "sk-or-v1-instance-analytics-0123";
const DAY_MS: i64 = 86_400_000;

fn today() -> i64 {
    mtdesk_domain::now_ms().div_euclid(DAY_MS)
}

async fn app_with_openrouter(or: &FakeLlm) -> TestApp {
    let url = or.base_url();
    TestApp::spawn_with(move |v| {
        v.insert("MTDESK_OPENROUTER_BASE_URL".into(), url);
        v.insert("MTDESK_OPENROUTER_API_KEY".into(), OR_KEY.into());
    })
    .await
}

async fn chat(
    app: &TestApp,
    a: &TestAccount,
    bot: &str,
    message: &str,
    conv: Option<&str>,
) -> Value {
    let mut body = json!({ "message": message });
    if let Some(c) = conv {
        body["conversation_id"] = json!(c);
    }
    let (status, reply) = app
        .post(&format!("/api/v1/chatbots/{bot}/chat"), &a.token, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply
}

/// Seeds: bot 1 (offline, one Q&A pair) answers a refund question twice in one conversation and gives the
/// fallback reply to a hat question in a second; bot 2 (OpenRouter, no knowledge) has its model answer one
/// question, which the unanswered list counts as weak (no knowledge match). Returns (bot 1, bot 2).
async fn seed(app: &TestApp, a: &TestAccount) -> (String, String) {
    let bot1 = app.create_chatbot(&a.token, "Shop helper").await;
    app.add_qa(
        &a.token,
        &bot1,
        "Can I get a refund?",
        "Yes, within 30 days.",
    )
    .await;
    let first = chat(app, a, &bot1, "Can I get a refund?", None).await;
    assert_eq!(first["source"], "qa_pair", "{first}");
    let conv = first["conversation_id"].as_str().expect("conversation id");
    chat(app, a, &bot1, "Can I get a refund?", Some(conv)).await;
    let hats = chat(app, a, &bot1, "Do you sell hats?", None).await;
    assert_eq!(hats["source"], "fallback", "{hats}");
    let (status, b2) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "Model bot", "provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b2}");
    let bot2 = b2["id"].as_str().expect("id").to_string();
    let m = chat(app, a, &bot2, "Tell me a joke about shoes", None).await;
    assert_eq!(m["answered_by"], "openrouter", "{m}");
    (bot1, bot2)
}

async fn analytics(app: &TestApp, a: &TestAccount, query: &str) -> Value {
    let (status, v) = app
        .get(&format!("/api/v1/analytics?{query}"), &a.token)
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {v}");
    v
}

async fn usage_tokens(app: &TestApp, a: &TestAccount) -> (i64, i64) {
    let (status, u) = app.get("/api/v1/usage", &a.token).await;
    assert_eq!(status, StatusCode::OK, "{u}");
    let line = u["by_model"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["provider"] == "openrouter").cloned())
        .expect("an openrouter usage line");
    (
        line["prompt_tokens"].as_i64().expect("prompt"),
        line["completion_tokens"].as_i64().expect("completion"),
    )
}

#[tokio::test]
async fn the_api_reports_conversations_answers_rates_latency_tokens_cost_and_unanswered_questions()
{
    let or = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(OR_KEY))).await;
    let app = app_with_openrouter(&or).await;
    let a = app.sign_up(&email("stats")).await;
    let (bot1, bot2) = seed(&app, &a).await;
    let (prompt, completion) = usage_tokens(&app, &a).await;
    assert!(prompt > 0 && completion > 0);

    let v = analytics(&app, &a, "days=7").await;
    let t = &v["totals"];
    assert_eq!(v["days"], 7);
    assert_eq!(v["to"], mtdesk_domain::analytics::iso_date(today()));
    assert_eq!(t["conversations"], 3, "{v}");
    assert_eq!(t["messages_in"], 4);
    assert_eq!(t["answers"], 4);
    assert_eq!(t["answered"], 3);
    assert_eq!(t["from_knowledge"], 2);
    assert_eq!(t["other_answered"], 1);
    assert_eq!(t["fallbacks"], 1);
    assert_eq!(t["answer_rate"], 0.75);
    assert_eq!(t["knowledge_rate"], 0.5);
    assert_eq!(t["prompt_tokens"], prompt);
    assert_eq!(t["completion_tokens"], completion);
    let expected_cost = (prompt as f64 * 0.15 + completion as f64 * 0.60) / 1_000_000.0;
    let cost = t["cost_usd_estimate"].as_f64().expect("cost");
    assert!(
        (cost - expected_cost).abs() < 1e-12,
        "{cost} vs {expected_cost}"
    );
    // Percentiles are bucket upper bounds of the histogram.
    let p50 = t["latency_p50"]["le_ms"].as_i64().expect("p50 bound");
    assert!(mtdesk_domain::analytics::LATENCY_BOUNDS_MS.contains(&p50));
    assert!(
        t["latency_p50"]["label"]
            .as_str()
            .expect("label")
            .starts_with('≤')
    );
    assert!(t["latency_p95"]["label"].is_string());

    // One entry per day, today last, all of the traffic on it.
    let daily = v["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 7);
    assert_eq!(daily[6]["date"], v["to"]);
    assert_eq!(daily[6]["stats"]["answers"], 4);
    assert!(daily[..6].iter().all(|d| d["stats"]["answers"] == 0));

    // Per channel (all through the API) and per provider (offline: 3 answers, free; OpenRouter: 1).
    assert_eq!(v["channels"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["channels"][0]["key"], "api");
    assert_eq!(v["channels"][0]["stats"]["answers"], 4);
    let providers = v["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 2, "{providers:?}");
    assert_eq!(providers[0]["key"], "offline");
    assert_eq!(providers[0]["stats"]["answers"], 3);
    assert_eq!(providers[0]["stats"]["cost_usd_estimate"], 0.0);
    assert_eq!(providers[1]["key"], "openrouter");
    assert_eq!(providers[1]["label"], "OpenRouter");
    assert_eq!(providers[1]["stats"]["other_answered"], 1);
    assert_eq!(providers[1]["stats"]["prompt_tokens"], prompt);

    // The fallback reply and the model's answer without any knowledge match (the Unanswered tab's rule),
    // most recent first on equal counts; the Q&A answers are not listed.
    let questions = |v: &Value| -> Vec<(String, i64)> {
        v["top_unanswered"]
            .as_array()
            .expect("list")
            .iter()
            .map(|q| {
                (
                    q["question"].as_str().unwrap_or("").to_string(),
                    q["count"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(
        questions(&v),
        vec![
            ("Tell me a joke about shoes".to_string(), 1),
            ("Do you sell hats?".to_string(), 1)
        ]
    );
    assert!(v["top_unanswered"][0]["last_asked_at"].as_i64().is_some());

    // Chatbot filter.
    let one = analytics(&app, &a, &format!("days=7&chatbot_id={bot1}")).await;
    assert_eq!(one["chatbot_id"], bot1);
    assert_eq!(one["totals"]["conversations"], 2);
    assert_eq!(one["totals"]["answers"], 3);
    assert_eq!(one["totals"]["prompt_tokens"], 0);
    assert_eq!(questions(&one), vec![("Do you sell hats?".to_string(), 1)]);
    let two = analytics(&app, &a, &format!("chatbot_id={bot2}")).await;
    assert_eq!(two["days"], 30, "30 days by default");
    assert_eq!(two["totals"]["answers"], 1);
    assert_eq!(
        questions(&two),
        vec![("Tell me a joke about shoes".to_string(), 1)]
    );

    // Channel filter: everything came through the API, nothing through WhatsApp.
    let api = analytics(&app, &a, "channel=api").await;
    assert_eq!(api["totals"]["answers"], 4);
    assert_eq!(questions(&api).len(), 2);
    let wa = analytics(&app, &a, "channel=whatsapp&days=90").await;
    assert_eq!(wa["totals"]["answers"], 0);
    assert_eq!(wa["totals"]["answer_rate"], Value::Null);
    assert_eq!(wa["totals"]["latency_p50"], Value::Null);
    assert_eq!(wa["daily"].as_array().map(Vec::len), Some(90));
    assert_eq!(wa["top_unanswered"], json!([]));
}

#[tokio::test]
async fn bad_filters_are_400_foreign_chatbots_404_and_other_accounts_traffic_is_never_counted() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("stats-a")).await;
    let b = app.sign_up(&email("stats-b")).await;
    let a_bot = app.create_chatbot(&a.token, "A bot").await;
    let b_bot = app.create_chatbot(&b.token, "B bot").await;
    chat(&app, &b, &b_bot, "Hello there", None).await;
    chat(&app, &b, &b_bot, "Anyone?", None).await;
    chat(&app, &a, &a_bot, "Hi", None).await;

    for q in [
        "days=8",
        "days=abc",
        "days=-7",
        "days=365",
        "channel=fax",
        "days=7&channel=WEB",
    ] {
        for path in ["/api/v1/analytics", "/api/v1/analytics.csv"] {
            let (status, body) = app.get(&format!("{path}?{q}"), &a.token).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{q}: {body}");
            assert_eq!(body["error"], "bad_request", "{body}");
        }
    }
    let (_, body) = app.get("/api/v1/analytics?days=8", &a.token).await;
    assert_eq!(body["message"], "days: must be 7, 30 or 90");
    for q in [
        format!("chatbot_id={b_bot}"),
        "chatbot_id=not-an-id".to_string(),
    ] {
        for path in ["/api/v1/analytics", "/api/v1/analytics.csv"] {
            let (status, body) = app.get(&format!("{path}?{q}"), &a.token).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}?{q}: {body}");
        }
    }
    let (status, _) = app
        .api(reqwest::Method::GET, "/api/v1/analytics", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A sees only its own chat, B only its two.
    assert_eq!(analytics(&app, &a, "").await["totals"]["answers"], 1);
    assert_eq!(analytics(&app, &b, "").await["totals"]["answers"], 2);
    assert_eq!(analytics(&app, &b, "").await["totals"]["conversations"], 2);
}

/// Adds a `daily_stats` row for `day` directly (older days cannot be produced through the API).
async fn insert_day(app: &TestApp, account: &str, bot: &str, day: i64, messages_in: i64) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO daily_stats (id, account_id, chatbot_id, channel, provider, day, messages_in, messages_out,
            answered, from_knowledge, lat_800)
         VALUES ($1, $2, $3, 'whatsapp', 'offline', $4, $5, $5, $5, $5, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(account)
    .bind(bot)
    .bind(day)
    .bind(messages_in)
    .execute(&mut conn)
    .await
    .expect("insert daily_stats");
}

#[tokio::test]
async fn periods_of_7_30_and_90_days_count_only_their_days() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("periods")).await;
    let bot = app.create_chatbot(&a.token, "Bot").await;
    let t = today();
    insert_day(&app, &a.id, &bot, t - 6, 1).await; // inside 7 days (the oldest day)
    insert_day(&app, &a.id, &bot, t - 7, 10).await; // just outside 7 days
    insert_day(&app, &a.id, &bot, t - 29, 100).await; // inside 30 days
    insert_day(&app, &a.id, &bot, t - 89, 1000).await; // inside 90 days
    insert_day(&app, &a.id, &bot, t - 90, 10000).await; // outside every period
    let sum = |v: &Value| v["totals"]["messages_in"].as_i64().expect("n");
    let v7 = analytics(&app, &a, "days=7").await;
    assert_eq!(sum(&v7), 1);
    assert_eq!(v7["daily"][0]["stats"]["messages_in"], 1);
    assert_eq!(v7["from"], mtdesk_domain::analytics::iso_date(t - 6));
    assert_eq!(sum(&analytics(&app, &a, "days=30").await), 111);
    let v90 = analytics(&app, &a, "days=90").await;
    assert_eq!(sum(&v90), 1111);
    assert_eq!(v90["daily"][0]["stats"]["messages_in"], 1000);
    assert_eq!(v90["totals"]["latency_p95"]["le_ms"], 800);
    assert_eq!(v90["channels"][0]["label"], "WhatsApp");
    let wa = analytics(&app, &a, "days=90&channel=whatsapp").await;
    assert_eq!(sum(&wa), 1111);
}

#[tokio::test]
async fn the_page_draws_svg_charts_and_the_csv_has_one_line_per_day() {
    let or = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(OR_KEY))).await;
    let app = app_with_openrouter(&or).await;
    let a = app.sign_up(&email("page")).await;
    let (bot1, _) = seed(&app, &a).await;
    let other = app.sign_up(&email("page-other")).await;
    let foreign = app.create_chatbot(&other.token, "Not yours").await;
    let tab = Tab::new(&app);
    tab.sign_in_as(&a.email).await;

    let page = tab.get("/analytics?days=7").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    for needle in [
        "<svg class=\"chart\" id=\"chart-volume\"",
        "<svg class=\"chart\" id=\"chart-answers\"",
        "<svg class=\"chart\" id=\"chart-latency\"",
        "<title id=\"chart-volume-title\">Messages per day</title>",
        "<desc id=\"chart-answers-desc\">",
        "id=\"nav-analytics\" aria-current=\"page\"",
        "Do you sell hats?",
        "OpenRouter",
        "AI cost (estimate)",
        "href=\"/analytics.csv?days=7\"",
        "<option value=\"7\" selected>",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in {body}");
    }
    assert!(!body.contains("style="), "no inline styles under the CSP");
    assert!(
        !body.contains("<script>"),
        "no inline scripts under the CSP"
    );
    // The tiles: 3 conversations, 75 % answered.
    assert!(
        body.contains("<p class=\"analytics-tile-value\">75%</p>"),
        "{body}"
    );

    let filtered = tab
        .get(&format!("/analytics?days=30&chatbot_id={bot1}&channel=api"))
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert!(
        filtered
            .body
            .contains(&format!("<option value=\"{bot1}\" selected>"))
    );
    assert!(
        filtered.body.contains(&format!(
            "href=\"/analytics.csv?days=30&#38;chatbot_id={bot1}&#38;channel=api\""
        )),
        "{}",
        filtered.body
    );
    assert_eq!(
        tab.get("/analytics?days=8").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        tab.get(&format!("/analytics?chatbot_id={foreign}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        tab.get(&format!("/analytics.csv?chatbot_id={foreign}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Signed out: to the login page.
    assert_eq!(Tab::new(&app).get("/analytics").await.location(), "/login");

    let csv = tab.get("/analytics.csv?days=7").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let disposition = csv
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        disposition.starts_with("attachment; filename=\"mtdesk-analytics-7d-"),
        "{disposition}"
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 8, "{}", csv.body);
    assert_eq!(
        lines[0],
        "date,conversations,messages_in,answers,answered,from_knowledge,other_answered,fallbacks,answer_rate,latency_p50_ms_at_most,latency_p95_ms_at_most,prompt_tokens,completion_tokens,cost_usd_estimate"
    );
    let today_line: Vec<&str> = lines[7].split(',').collect();
    assert_eq!(today_line[0], mtdesk_domain::analytics::iso_date(today()));
    assert_eq!(
        &today_line[1..9],
        &["3", "4", "4", "3", "2", "1", "1", "0.7500"]
    );
    let quiet_day: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        &quiet_day[1..],
        &[
            "0", "0", "0", "0", "0", "0", "0", "", "", "", "0", "0", "0.000000"
        ]
    );

    // The API's CSV is the same file.
    let api_csv = app
        .client
        .get(app.url("/api/v1/analytics.csv?days=7"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("csv");
    assert_eq!(api_csv.status(), StatusCode::OK);
    assert_eq!(api_csv.text().await.expect("body"), csv.body);
    let (_, v30) = app.get("/api/v1/analytics.csv?days=30", &a.token).await;
    assert_eq!(v30.as_str().map(|s| s.lines().count()), Some(31));
}

#[tokio::test]
async fn the_numbers_survive_the_retention_purge_of_the_messages() {
    let or = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(OR_KEY))).await;
    let app = app_with_openrouter(&or).await;
    let a = app.sign_up(&email("purge")).await;
    seed(&app, &a).await;
    let before = analytics(&app, &a, "days=7").await;
    assert_eq!(before["top_unanswered"].as_array().map(Vec::len), Some(2));

    // Two years from now every message, answer and conversation is past the 12-month retention.
    let purged = app
        .state
        .privacy
        .purge_expired(mtdesk_domain::now_ms() + 2 * 365 * DAY_MS)
        .await
        .expect("purge");
    assert!(purged >= 4 + 3, "purged {purged}");
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("connect");
    for table in ["messages", "answers", "conversations"] {
        let n: i64 = sqlx::Row::try_get(
            &sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table} WHERE account_id = $1"
            )))
            .bind(&a.id)
            .fetch_one(&mut conn)
            .await
            .expect("count"),
            "n",
        )
        .expect("n");
        assert_eq!(n, 0, "{table} purged");
    }

    let after = analytics(&app, &a, "days=7").await;
    for key in ["totals", "daily", "channels", "providers"] {
        assert_eq!(after[key], before[key], "{key} unchanged by the purge");
    }
    // Only the question list, read from the kept answers, is gone with them.
    assert_eq!(after["top_unanswered"], json!([]));
}
