//! "Download my data": the API request, the background build (the server's own worker), the archive's
//! contents (and the secrets it must not contain), access rules, expiry with its 410 and purge, and
//! account deletion taking the archives along.

use crate::channels::{ANSWER, MetaWorld, num_id};
use crate::helpers::{PASSWORD, TestAccount, TestApp, email};
use crate::tab::Tab;
use mtdesk_testkit::fake_meta as meta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Raw SQL on the test's database (to read the stored secrets, or to move an expiry into the past).
async fn db(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database")
}

async fn one_text(app: &TestApp, sql: &str, bind: &str) -> String {
    use sqlx::Row;
    let mut c = db(app).await;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(bind)
        .fetch_one(&mut c)
        .await
        .expect("row")
        .try_get::<String, _>(0)
        .expect("text")
}

/// Requests an export and waits (polling, the server's worker builds it) until it is ready; returns the
/// export as listed.
async fn export_ready(app: &TestApp, token: &str) -> Value {
    let (status, created) = app
        .api(Method::POST, "/api/v1/account/export", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["status"], "pending", "{created}");
    assert!(created.get("download_url").is_none());
    let id = created["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = app.get("/api/v1/account/export", token).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let e = list["exports"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()))
            .cloned()
            .expect("the export is listed");
        match e["status"].as_str() {
            Some("ready") => return e,
            Some("failed") => panic!("the export failed: {e}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the export never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn download(app: &TestApp, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("download")
}

/// Every entry of the archive, decompressed.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("a UTF-8 entry name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read entry");
        out.insert(name, data);
    }
    out
}

fn json_of(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(
        files
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing")),
    )
    .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn lines_of(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Vec<Value> {
    String::from_utf8(files.get(name).expect("jsonl").clone())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn upload(app: &TestApp, account: &TestAccount, bot: &str, name: &str, bytes: &[u8]) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()),
    );
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(&account.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn export_holds_all_the_account_data_and_no_secret() {
    let w = MetaWorld::start().await;
    w.connect("messenger").await;
    let (app, a) = (&w.app, &w.account);
    let marker = format!("zqx{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);

    // Knowledge: an uploaded document (its original must be in the archive).
    let doc = format!("# Returns {marker}\n\nYou can return shoes within 30 days.").into_bytes();
    upload(app, a, &w.bot, "returns-policy.md", &doc).await;
    assert_eq!(app.drain_jobs().await, 1);
    // A channel conversation: the customer asks, the bot answers from its Q&A.
    let psid = num_id("7");
    w.post(&meta::messenger_text(
        &w.page_id,
        &psid,
        "m_export",
        "Do you ship to Canada?",
        meta::now_ms(),
    ))
    .await;
    w.drain().await;
    // An API conversation (an answer record), an own provider key and a second API token.
    let (status, _) = app
        .post(
            &format!("/api/v1/chatbots/{}/chat", w.bot),
            &a.token,
            json!({"message": format!("What about {marker}?")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let provider_key = format!("sk-or-v1-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = app
        .api(
            Method::PUT,
            "/api/v1/providers/openrouter/key",
            Some(&a.token),
            Some(json!({"api_key": provider_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, second) = app
        .post("/api/v1/tokens", &a.token, json!({"name": "Website"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_token = second["token"].as_str().unwrap_or_default().to_string();

    // The secrets as stored, and in clear.
    let password_hash = one_text(
        app,
        "SELECT password_hash FROM accounts WHERE id = $1",
        &a.id,
    )
    .await;
    let sealed_token = one_text(
        app,
        "SELECT sealed_token FROM channels WHERE account_id = $1",
        &a.id,
    )
    .await;
    let sealed_key = one_text(
        app,
        "SELECT sealed_key FROM provider_keys WHERE account_id = $1",
        &a.id,
    )
    .await;
    let token_hash = one_text(
        app,
        "SELECT token_hash FROM api_tokens WHERE account_id = $1 ORDER BY created_at LIMIT 1",
        &a.id,
    )
    .await;
    let secrets = [
        ("password hash", password_hash.as_str()),
        ("sealed channel token", sealed_token.as_str()),
        ("channel token", w.page_token.as_str()),
        ("sealed provider key", sealed_key.as_str()),
        ("provider key", provider_key.as_str()),
        ("API token hash", token_hash.as_str()),
        ("API token", a.token.as_str()),
        ("second API token", second_token.as_str()),
        ("password", PASSWORD),
    ];

    let ready = export_ready(app, &a.token).await;
    let id = ready["id"].as_str().expect("id").to_string();
    assert!(ready["size_bytes"].as_i64().unwrap_or(0) > 0, "{ready}");
    let expires = ready["expires_at"].as_i64().expect("expires_at");
    let ready_at = ready["ready_at"].as_i64().expect("ready_at");
    assert_eq!(
        expires - ready_at,
        24 * 3600 * 1000,
        "valid 24 hours from ready"
    );

    // The owner downloads with the API token.
    let resp = download(
        app,
        &app.url(&format!("/api/v1/account/export/{id}/download")),
        Some(&a.token),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/zip")
    );
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"mtdesk-export-")
            && disposition.ends_with(".zip\""),
        "{disposition}"
    );
    let bytes = resp.bytes().await.expect("body").to_vec();
    // The emailed-link variant: no sign-in, the link token only; the same archive.
    let link = ready["download_url"].as_str().expect("download_url");
    assert!(
        link.starts_with(&app.base) && link.contains("?token="),
        "{link}"
    );
    let by_link = download(app, link, None).await;
    assert_eq!(by_link.status(), StatusCode::OK);
    assert_eq!(by_link.bytes().await.expect("body").to_vec(), bytes);

    let files = unzip(&bytes);
    for name in [
        "README.md",
        "profile.json",
        "chatbots.json",
        "qa_pairs.json",
        "sources.json",
        "source_pages.json",
        "conversations.jsonl",
        "answers.jsonl",
        "usage.json",
        "channels.json",
        "provider_keys.json",
        "api_tokens.json",
        "analytics_events.json",
        "billing.json",
        "devices.json",
        "contact_messages.json",
    ] {
        assert!(
            files.contains_key(name),
            "{name} missing: {:?}",
            files.keys()
        );
    }
    let readme = String::from_utf8(files["README.md"].clone()).expect("utf-8");
    for documented in [
        "profile.json",
        "conversations.jsonl",
        "RFC 3339",
        "`contact_name`",
        "billing",
    ] {
        assert!(readme.contains(documented), "README lacks {documented}");
    }

    let profile = json_of(&files, "profile.json");
    assert_eq!(profile["email"], a.email.as_str());
    assert!(
        profile["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "times are RFC 3339 UTC: {profile}"
    );
    assert!(profile.get("password_hash").is_none());
    let bots = json_of(&files, "chatbots.json");
    assert_eq!(bots[0]["name"], "Shop bot");
    let qa = json_of(&files, "qa_pairs.json");
    assert_eq!(qa[0]["question"], "Do you ship to Canada?");
    assert_eq!(qa[0]["answer"], ANSWER);

    // The uploaded original, byte for byte, where sources.json says it is.
    let sources = json_of(&files, "sources.json");
    let original = sources[0]["original_file"].as_str().expect("original_file");
    assert_eq!(
        original,
        format!(
            "sources/{}/returns-policy.md",
            sources[0]["id"].as_str().unwrap_or("")
        )
    );
    assert_eq!(files.get(original), Some(&doc));

    // Both conversations, each with its messages.
    let conversations = lines_of(&files, "conversations.jsonl");
    assert_eq!(conversations.len(), 2, "{conversations:?}");
    let channel_conv = conversations
        .iter()
        .find(|c| c["channel"] == "messenger")
        .expect("the Messenger conversation");
    let texts: Vec<&str> = channel_conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(texts.contains(&"Do you ship to Canada?"), "{texts:?}");
    assert!(texts.contains(&ANSWER), "{texts:?}");
    assert_eq!(channel_conv["contact_id"], psid.as_str());
    let answers = lines_of(&files, "answers.jsonl");
    assert!(!answers.is_empty());
    let usage = json_of(&files, "usage.json");
    assert_eq!(
        usage["months"][0]["answers"].as_u64(),
        Some(answers.len() as u64)
    );

    let channels = json_of(&files, "channels.json");
    assert_eq!(channels[0]["kind"], "messenger");
    assert_eq!(channels[0]["external_id"], w.page_id.as_str());
    assert_eq!(channels[0]["name"], "Acme Shoes");
    let keys = json_of(&files, "provider_keys.json");
    assert_eq!(keys[0]["provider"], "openrouter");
    let tokens = json_of(&files, "api_tokens.json");
    assert_eq!(tokens.as_array().map(Vec::len), Some(2));
    let billing = json_of(&files, "billing.json");
    assert_eq!(billing["billing_status"], "none", "{billing}");
    assert_eq!(billing["invoices"], json!([]));
    assert!(json_of(&files, "devices.json").is_array());
    assert_eq!(json_of(&files, "contact_messages.json"), json!([]));

    // No secret anywhere, in any file.
    for (what, secret) in secrets {
        for (name, data) in &files {
            assert!(!contains(data, secret), "the {what} appears in {name}");
        }
        assert!(!contains(name_list(&files).as_bytes(), secret));
    }
}

fn name_list(files: &BTreeMap<String, Vec<u8>>) -> String {
    files.keys().cloned().collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn other_accounts_and_wrong_tokens_get_404() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("owner")).await;
    let b = app.sign_up(&email("other")).await;
    let ready = export_ready(&app, &a.token).await;
    let id = ready["id"].as_str().expect("id");
    let path = format!("/api/v1/account/export/{id}/download");

    assert_eq!(
        download(&app, &app.url(&path), Some(&b.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let wrong = format!("{path}?token={}", "ab".repeat(32));
    assert_eq!(
        download(&app, &app.url(&wrong), None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(&app, &app.url(&format!("{path}?token=short")), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The right token does not open another export id.
    let link = ready["download_url"].as_str().expect("link");
    let token = link.split("token=").nth(1).expect("token");
    let other_id = uuid::Uuid::new_v4();
    let (status, _) = app
        .api(
            Method::GET,
            &format!("/api/v1/account/export/{other_id}/download?token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        download(&app, &app.url(&path), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        download(
            &app,
            &app.url("/api/v1/account/export/not-a-uuid/download"),
            Some(&a.token)
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get("/api/v1/account/export", &b.token).await;
    assert_eq!(list["exports"], json!([]), "B sees none of A's exports");
}

#[tokio::test]
async fn a_second_request_while_one_is_running_is_409() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("busy")).await;
    // An export some node is building right now (fresh lease): the worker leaves it alone.
    let account = mtdesk_domain::AccountId::parse(&a.id).expect("id");
    let running = uuid::Uuid::new_v4().to_string();
    app.state
        .store
        .create_export(&account, &running, "x", mtdesk_domain::now_ms() + 3_600_000)
        .await
        .expect("create");
    let mut c = db(&app).await;
    sqlx::query("UPDATE exports SET status = 'running', ready_at = $1 WHERE id = $2")
        .bind(mtdesk_domain::now_ms())
        .bind(&running)
        .execute(&mut c)
        .await
        .expect("update");

    let (status, body) = app
        .api(Method::POST, "/api/v1/account/export", Some(&a.token), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("already being prepared"),
        "{body}"
    );
    // Its download is "not ready yet", not a 5xx.
    let resp = download(
        &app,
        &app.url(&format!("/api/v1/account/export/{running}/download")),
        Some(&a.token),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    // A crashed build (lease long expired) is claimed again, by exactly one claimer.
    sqlx::query("UPDATE exports SET ready_at = $1 WHERE id = $2")
        .bind(mtdesk_domain::now_ms() - 3_600_000)
        .bind(&running)
        .execute(&mut c)
        .await
        .expect("update");
    let (x, y) = tokio::join!(
        app.state.store.claim_export(),
        app.state.store.claim_export()
    );
    let claimed: Vec<_> = [x.expect("claim"), y.expect("claim")]
        .into_iter()
        .flatten()
        .collect();
    // (The server's own worker may have claimed it first: then neither of ours did.)
    assert!(claimed.len() <= 1, "claimed twice: {claimed:?}");
    // Someone did reclaim it: its lease (or its completion) is fresh, not the hour-old one.
    let row = sqlx::query("SELECT status, ready_at FROM exports WHERE id = $1")
        .bind(&running)
        .fetch_one(&mut c)
        .await
        .expect("row");
    use sqlx::Row;
    let status: String = row.get("status");
    let at: i64 = row.get("ready_at");
    assert!(
        matches!(status.as_str(), "running" | "ready") && at > mtdesk_domain::now_ms() - 600_000,
        "the crashed build was not reclaimed: {status} at {at}"
    );
}

#[tokio::test]
async fn an_expired_link_is_410_and_the_purge_deletes_file_and_row() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("expiry")).await;
    let ready = export_ready(&app, &a.token).await;
    let id = ready["id"].as_str().expect("id").to_string();
    let link = ready["download_url"].as_str().expect("link").to_string();
    let account = mtdesk_domain::AccountId::parse(&a.id).expect("id");
    let file = app.state.files.export_path(&account, &id).expect("path");
    assert!(file.exists(), "the archive is in the account's directory");

    let mut c = db(&app).await;
    sqlx::query("UPDATE exports SET expires_at = $1 WHERE id = $2")
        .bind(mtdesk_domain::now_ms() - 1_000)
        .bind(&id)
        .execute(&mut c)
        .await
        .expect("expire");
    let path = format!("/api/v1/account/export/{id}/download");
    let resp = download(&app, &app.url(&path), Some(&a.token)).await;
    assert_eq!(resp.status(), StatusCode::GONE);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "gone");
    assert_eq!(download(&app, &link, None).await.status(), StatusCode::GONE);
    let (_, list) = app.get("/api/v1/account/export", &a.token).await;
    assert!(list["exports"][0].get("download_url").is_none(), "{list}");

    // The purge (the server runs it every minute) deletes the file, then the row.
    app.state
        .exporter
        .purge_expired(mtdesk_domain::now_ms())
        .await
        .expect("purge");
    assert!(!file.exists(), "the archive is deleted");
    let (_, list) = app.get("/api/v1/account/export", &a.token).await;
    assert_eq!(list["exports"], json!([]));
    assert_eq!(
        download(&app, &app.url(&path), Some(&a.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_the_account_deletes_its_archives() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("bye")).await;
    let b = app.sign_up(&email("stays")).await;
    let ready_a = export_ready(&app, &a.token).await;
    let ready_b = export_ready(&app, &b.token).await;
    let id_a = ready_a["id"].as_str().expect("id").to_string();
    let id_b = ready_b["id"].as_str().expect("id").to_string();
    assert!(
        files_under(&app.data_dir)
            .iter()
            .any(|p| p.to_string_lossy().contains(&id_a))
    );

    let (status, body) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: Vec<PathBuf> = files_under(&app.data_dir)
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains(&id_a) || s.contains(&a.id)
        })
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    let rows = mtdesk_storage::catalogue::rows_referencing_account(&app.state.store, &a.id)
        .await
        .expect("scan");
    assert!(rows.iter().all(|(_, n)| *n == 0), "{rows:?}");
    // The link of the deleted account's archive opens nothing; B's archive is untouched.
    let link = ready_a["download_url"].as_str().expect("link");
    assert_eq!(
        download(&app, link, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let link_b = ready_b["download_url"].as_str().expect("link");
    assert_eq!(download(&app, link_b, None).await.status(), StatusCode::OK);
    assert!(
        files_under(&app.data_dir)
            .iter()
            .any(|p| p.to_string_lossy().contains(&id_b))
    );
}

#[tokio::test]
async fn my_account_starts_an_export_and_links_the_download_without_javascript() {
    let app = TestApp::spawn().await;
    let e = email("dash-export");
    let a = app.sign_up(&e).await;
    let tab = Tab::new(&app);
    tab.sign_in_as(&e).await;
    let page = tab.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Download my data"), "the card is shown");
    let csrf = page.csrf();

    // Without the CSRF token: refused.
    let refused = tab.post("/account/export", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let started = tab.post("/account/export", &[("csrf", &csrf)]).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER);
    assert_eq!(started.location(), "/account?export=requested#export");
    let page = tab.get("/account?export=requested").await;
    assert!(page.body.contains("We are preparing your data"));

    // Once ready, the card links the session-authenticated download.
    let deadline = Instant::now() + Duration::from_secs(60);
    let href = loop {
        let page = tab.get("/account").await;
        if let Some(at) = page.body.find("/api/v1/account/export/") {
            let rest = &page.body[at..];
            break rest[..rest.find('"').expect("end of href")].to_string();
        }
        assert!(Instant::now() < deadline, "never ready: {}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !href.contains("token="),
        "the dashboard link carries no token"
    );
    let resp = tab
        .client
        .get(format!("{}{href}", tab.base))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    let files = unzip(&resp.bytes().await.expect("zip"));
    assert_eq!(json_of(&files, "profile.json")["email"], a.email.as_str());
}

/// An RFC 3339 UTC time as (whole seconds, milliseconds), comparable (".5Z" sorts before "Z" as text).
fn sortable_time(t: &str) -> (String, String) {
    let t = t.trim_end_matches('Z');
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    (secs.to_string(), format!("{frac:0<3}"))
}

/// More conversations than one batch (with equal creation times across the batch boundary) and one
/// conversation longer than a page of messages: every message is exported once, in order.
#[tokio::test]
async fn large_accounts_are_exported_in_pages_without_losing_a_row() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("large")).await;
    let bot = app.create_chatbot(&a.token, "Busy bot").await;
    let mut c = db(&app).await;
    for sql in [
        // 450 short conversations, all created at the same instant, two messages each.
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 450)
         INSERT INTO conversations (id, account_id, chatbot_id, channel, created_at, updated_at)
         SELECT 'c' || i, $1, $2, 'api', 500, 500 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900)
         INSERT INTO messages (id, account_id, conversation_id, role, content, created_at)
         SELECT 's' || i, $1, 'c' || ((i + 1) / 2), 'user', 'short ' || i, 600 FROM n",
        // One long conversation: more messages than a page, many sharing a timestamp.
        "INSERT INTO conversations (id, account_id, chatbot_id, channel, created_at, updated_at)
         VALUES ('long', $1, $2, 'api', 400, 400)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5200)
         INSERT INTO messages (id, account_id, conversation_id, role, content, created_at)
         SELECT 'l' || i, $1, 'long', 'user', 'long ' || i, 1000 + i / 7 FROM n",
    ] {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).bind(&a.id);
        let q = if sql.contains("$2") { q.bind(&bot) } else { q };
        q.execute(&mut c).await.expect("fixture");
    }

    let ready = export_ready(&app, &a.token).await;
    let link = ready["download_url"].as_str().expect("link");
    let resp = download(&app, link, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let files = unzip(&resp.bytes().await.expect("zip"));
    let conversations = lines_of(&files, "conversations.jsonl");
    assert_eq!(conversations.len(), 451);
    let mut ids = std::collections::HashSet::new();
    let mut messages = 0;
    for conv in &conversations {
        assert!(
            ids.insert(conv["id"].as_str().unwrap_or("").to_string()),
            "twice: {conv}"
        );
        let list = conv["messages"].as_array().expect("messages");
        let expected = if conv["id"] == "long" { 5200 } else { 2 };
        assert_eq!(list.len(), expected, "{}", conv["id"]);
        let times: Vec<(String, String)> = list
            .iter()
            .filter_map(|m| m["created_at"].as_str())
            .map(sortable_time)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "messages in order");
        messages += list.len();
    }
    assert_eq!(messages, 900 + 5200);
    let readme = String::from_utf8(files["README.md"].clone()).expect("utf-8");
    assert!(readme.contains("6100 messages"), "the README counts them");
}
