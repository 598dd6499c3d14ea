//! Knowledge base through the API: uploads, websites, ingestion jobs, retrieval, re-sync, deletion.
//! Jobs run with `drain_jobs` (no background worker in tests), never by sleeping.

use crate::helpers::{TestAccount, TestApp, email, json_of};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use mtdesk_domain::{AccountId, SourceId};
use mtdesk_storage::catalogue;
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const REFUND_MD: &str = "# Returns guide\n\n## Refunds\n\nRefunds are paid back to the original card within 14 days after the parcel reaches our warehouse.\n\n## Exchanges\n\nExchanges for another size are free of charge. Print the label from your order page.\n";
const HOURS_TXT: &str = "Our shop in Lyon opens Monday to Saturday from nine to six.\n\nOn Sundays the shop is closed, but the hotline answers calls.";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01";

async fn upload(
    app: &TestApp,
    token: &str,
    bot: &str,
    files: &[(&str, &[u8])],
) -> (StatusCode, Value) {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    }
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

async fn retrieval(app: &TestApp, token: &str, bot: &str, query: &str, mode: &str) -> Value {
    let (status, body) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/retrieval-test"),
            token,
            json!({"query": query, "mode": mode}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn sources(app: &TestApp, token: &str, bot: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("list").clone()
}

async fn setup(app: &TestApp, tag: &str) -> (TestAccount, String) {
    let a = app.sign_up(&email(tag)).await;
    let bot = app.create_chatbot(&a.token, "Shop bot").await;
    (a, bot)
}

#[tokio::test]
async fn uploaded_documents_are_ingested_and_answer_with_their_source() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "upload").await;
    let (status, body) = upload(
        &app,
        &a.token,
        &bot,
        &[
            ("refund.md", REFUND_MD.as_bytes()),
            ("hours.txt", HOURS_TXT.as_bytes()),
            ("photo.pdf", PNG),
            ("empty.txt", b"   \n"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["sources"].as_array().map(Vec::len), Some(2), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["file"], "photo.pdf");
    assert!(
        errors[0]["error"].as_str().unwrap_or("").contains("PNG"),
        "{body}"
    );
    assert_eq!(errors[1]["file"], "empty.txt");
    let listed = sources(&app, &a.token, &bot).await;
    assert!(listed.iter().all(|s| s["status"] == "queued"), "{listed:?}");

    assert_eq!(app.drain_jobs().await, 2);
    let listed = sources(&app, &a.token, &bot).await;
    for s in &listed {
        assert_eq!(s["status"], "ready", "{s}");
        assert_eq!(s["progress"]["percent"], 100);
        assert!(s["chunk_count"].as_i64().unwrap_or(0) >= 1, "{s}");
    }
    let md = listed
        .iter()
        .find(|s| s["name"] == "refund.md")
        .expect("md");
    assert_eq!(md["doc_type"], "markdown");
    // The original is kept under the data dir, byte for byte.
    let account = AccountId::parse(&a.id).expect("id");
    let sid = SourceId::parse(md["id"].as_str().expect("id")).expect("sid");
    assert_eq!(
        std::fs::read(app.state.files.source_path(&account, &sid)).expect("original"),
        REFUND_MD.as_bytes()
    );

    // Hit testing: the refund section, with its heading path and source.
    let r = retrieval(
        &app,
        &a.token,
        &bot,
        "How long until I get my refund?",
        "hybrid",
    )
    .await;
    let hit = &r["hits"][0];
    assert_eq!(hit["source_name"], "refund.md", "{r}");
    assert_eq!(hit["heading"], "Returns guide > Refunds", "{r}");
    assert!(hit["text"].as_str().unwrap_or("").contains("14 days"));
    assert_eq!(r["confident"], true, "{r}");
    // No local model in these tests: hybrid runs on the lexical leg and says why.
    if r["mode"] == "bm25" {
        assert!(r["lexical_only_reason"].is_string(), "{r}");
        assert_eq!(hit["leg"], "lexical");
    }

    // The offline answerer quotes the passage and names its source.
    let (status, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": "How long until I get my refund?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["source"], "excerpt", "{reply}");
    let text = reply["answer"]
        .as_str()
        .or(reply["text"].as_str())
        .unwrap_or("");
    assert!(text.contains("14 days"), "{reply}");
    assert!(text.contains("Source: Returns guide"), "{reply}");
    assert_eq!(reply["sources"][0]["kind"], "chunk", "{reply}");

    // A question the knowledge does not cover gets the fallback reply.
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": "Do you sell bicycles in Norway?"}),
        )
        .await;
    assert_eq!(reply["source"], "fallback", "{reply}");
}

#[tokio::test]
async fn a_qa_pair_that_matches_well_wins_over_document_passages() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "qawins").await;
    upload(&app, &a.token, &bot, &[("refund.md", REFUND_MD.as_bytes())]).await;
    app.drain_jobs().await;
    app.add_qa(
        &a.token,
        &bot,
        "How long do refunds take?",
        "Refunds take two weeks.",
    )
    .await;
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": "How long do refunds take?"}),
        )
        .await;
    assert_eq!(reply["source"], "qa_pair", "{reply}");
}

/// A tiny website on loopback whose pages the test can change between crawls.
#[derive(Clone, Default)]
struct Site {
    pages: Arc<Mutex<HashMap<String, String>>>,
    /// Requests served, to show a crawl stopped.
    served: Arc<std::sync::atomic::AtomicUsize>,
}

async fn site_page(State(site): State<Site>, Path(path): Path<String>) -> Response {
    site.served
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let pages = site.pages.lock().expect("lock");
    match pages.get(&path) {
        Some(body) if path == "robots.txt" => body.clone().into_response(),
        Some(body) => Html(body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn site_root(State(site): State<Site>) -> Response {
    site_page(State(site), Path("index".into())).await
}

fn page(title: &str, body: &str, links: &[&str]) -> String {
    let links: String = links
        .iter()
        .map(|l| format!("<a href=\"/{l}\">{l}</a> "))
        .collect();
    format!(
        "<html><head><title>{title}</title></head><body><nav>{links} Menu Home About</nav><main><h1>{title}</h1><p>{body}</p></main><footer>Copyright footer text</footer></body></html>"
    )
}

async fn start_site() -> (Site, String) {
    let site = Site::default();
    {
        let mut p = site.pages.lock().expect("lock");
        p.insert(
            "robots.txt".into(),
            "User-agent: *\nDisallow: /private\n".into(),
        );
        p.insert(
            "index".into(),
            page(
                "Welcome",
                "Acme sells handmade ceramic teapots.",
                &["shipping", "warranty", "private"],
            ),
        );
        p.insert(
            "shipping".into(),
            page(
                "Shipping",
                "Parcels to Belgium arrive within three working days.",
                &[],
            ),
        );
        p.insert(
            "warranty".into(),
            page(
                "Warranty",
                "Every teapot carries a five year craquelure warranty.",
                &[],
            ),
        );
        p.insert(
            "private".into(),
            page("Private", "Internal staff rota zebrafinch.", &[]),
        );
    }
    let router = Router::new()
        .route("/", axum::routing::get(site_root))
        .route("/{*path}", axum::routing::get(site_page))
        .with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (site, format!("http://{addr}/"))
}

#[tokio::test]
async fn a_website_is_crawled_with_page_states_and_a_resync_only_reembeds_what_changed() {
    let fake = FakeLlm::start(FakeConfig::new(
        mtdesk_domain::Provider::Openrouter,
        Some("sk-or-test"),
    ))
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_ALLOW_PRIVATE_URLS".into(), "1".into());
        v.insert("MTDESK_CRAWL_DELAY_MS".into(), "0".into());
        v.insert("MTDESK_OPENROUTER_API_KEY".into(), "sk-or-test".into());
        v.insert("MTDESK_OPENROUTER_BASE_URL".into(), base);
    })
    .await;
    let (a, bot) = setup(&app, "crawl").await;
    // Vectors from OpenRouter embeddings (the fake's deterministic vectors).
    let (status, body) = app
        .api(
            Method::PUT,
            &format!("/api/v1/chatbots/{bot}/knowledge-settings"),
            Some(&a.token),
            Some(json!({"embedding": "openrouter:openai/text-embedding-3-small"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["vector_search"], true, "{body}");
    app.drain_jobs().await;

    let (site, url) = start_site().await;
    let (status, source) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/sources"),
            &a.token,
            json!({"url": url, "max_pages": 20, "max_depth": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{source}");
    assert_eq!(source["status"], "queued");
    let sid = source["id"].as_str().expect("id").to_string();
    app.drain_jobs().await;

    let (_, detail) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources/{sid}"), &a.token)
        .await;
    assert_eq!(detail["status"], "ready", "{detail}");
    let pages = detail["pages"].as_array().expect("pages");
    let state_of = |p: &str| {
        pages
            .iter()
            .find(|x| x["url"].as_str().unwrap_or("").ends_with(p))
            .map(|x| x["status"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state_of("/shipping").as_deref(), Some("ok"), "{detail}");
    assert_eq!(state_of("/private").as_deref(), Some("skipped"), "{detail}");
    let embedded_first: usize = embedded_texts(&fake);
    assert!(embedded_first >= 3, "{embedded_first}");

    let r = retrieval(
        &app,
        &a.token,
        &bot,
        "How long does delivery to Belgium take?",
        "hybrid",
    )
    .await;
    assert_eq!(r["mode"], "hybrid", "{r}");
    assert!(
        r["hits"][0]["url"]
            .as_str()
            .unwrap_or("")
            .ends_with("/shipping"),
        "{r}"
    );
    assert!(
        !r["hits"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("footer"),
        "{r}"
    );
    // The disallowed page was never indexed.
    let r = retrieval(&app, &a.token, &bot, "zebrafinch rota", "bm25").await;
    assert!(r["hits"].as_array().expect("hits").is_empty(), "{r}");

    let before_sync = embedded_texts(&fake);
    // The site changes: one page edited, one gone.
    {
        let mut p = site.pages.lock().expect("lock");
        p.insert(
            "shipping".into(),
            page(
                "Shipping",
                "Parcels to Belgium now arrive within one working day.",
                &[],
            ),
        );
        p.remove("warranty");
    }
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}/sync"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A second sync while one is queued is refused.
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}/sync"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.drain_jobs().await;
    // Only the changed page's chunk was embedded again.
    let embedded_second = embedded_texts(&fake) - before_sync;
    assert_eq!(
        embedded_second, 1,
        "unchanged chunks must not be re-embedded"
    );
    let r = retrieval(&app, &a.token, &bot, "Belgium delivery", "bm25").await;
    let texts: Vec<&str> = r["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["text"].as_str())
        .collect();
    assert!(texts.iter().any(|t| t.contains("one working day")), "{r}");
    assert!(
        !texts.iter().any(|t| t.contains("three working days")),
        "{r}"
    );
    let r = retrieval(&app, &a.token, &bot, "craquelure warranty", "bm25").await;
    assert!(
        r["hits"].as_array().expect("hits").is_empty(),
        "vanished page still found: {r}"
    );
}

fn embedded_texts(fake: &FakeLlm) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .filter_map(|r| r.body["input"].as_array().map(Vec::len))
        .sum()
}

#[tokio::test]
async fn private_and_metadata_addresses_fail_per_source_and_bad_urls_are_refused() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "ssrf").await;
    for url in [
        "http://127.0.0.1:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/",
    ] {
        let (status, body) = app
            .post(
                &format!("/api/v1/chatbots/{bot}/sources"),
                &a.token,
                json!({"url": url}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{url}: {body}");
    }
    app.drain_jobs().await;
    for s in sources(&app, &a.token, &bot).await {
        assert_eq!(s["status"], "failed", "{s}");
        let err = s["error"].as_str().unwrap_or("").to_lowercase();
        assert!(
            err.contains("private") || err.contains("not allowed") || err.contains("refused"),
            "{s}"
        );
    }
    for (bad, status) in [
        (
            json!({"url": "ftp://example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "not a url"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://user:pw@example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://example.com/", "max_pages": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://example.com/", "sync_schedule": "hourly"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"link": "https://example.com/"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, body) = app
            .post(
                &format!("/api/v1/chatbots/{bot}/sources"),
                &a.token,
                bad.clone(),
            )
            .await;
        assert_eq!(s, status, "{bad}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    // Wrong content type and broken JSON.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(&a.token)
        .header("content-type", "text/plain")
        .body("https://example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Nothing else was created.
    assert_eq!(sources(&app, &a.token, &bot).await.len(), 3);
}

#[tokio::test]
async fn bad_files_get_clear_per_file_errors_and_nothing_half_written() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_MAX_UPLOAD_BYTES".into(), "4096".into());
    })
    .await;
    let (a, bot) = setup(&app, "badfiles").await;
    let big = vec![b'a'; 10_000];
    let (status, body) = upload(
        &app,
        &a.token,
        &bot,
        &[
            ("big.txt", &big),
            ("archive.zip", b"PK\x03\x04\x14\x00\x00\x00\x00\x00garbage"),
            ("broken.pdf", b"%PDF-1.7\n garbage that is no pdf at all"),
            ("latin1.txt", b"Caf\xe9 cr\xe8me: ouvert le dimanche."),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    assert!(
        errors[0]["error"].as_str().unwrap_or("").contains("4 KB"),
        "{body}"
    );
    assert_eq!(errors[1]["file"], "archive.zip");
    app.drain_jobs().await;
    let listed = sources(&app, &a.token, &bot).await;
    let broken = listed
        .iter()
        .find(|s| s["name"] == "broken.pdf")
        .expect("pdf");
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(broken["error"].is_string());
    assert_eq!(broken["chunk_count"], 0);
    let latin = listed
        .iter()
        .find(|s| s["name"] == "latin1.txt")
        .expect("txt");
    assert_eq!(latin["status"], "ready", "{latin}");
    let r = retrieval(&app, &a.token, &bot, "café crème", "bm25").await;
    assert!(
        r["hits"][0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Café crème"),
        "{r}"
    );
    // An upload without any file.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(&a.token)
        .multipart(Form::new().text("note", "no file here"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Retrieval-test input checks.
    for bad in [
        json!({"query": ""}),
        json!({"query": "x", "mode": "fuzzy"}),
        json!({"query": "x", "top_k": 0}),
    ] {
        let (s, body) = app
            .post(
                &format!("/api/v1/chatbots/{bot}/retrieval-test"),
                &a.token,
                bad.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
}

#[tokio::test]
async fn deleting_a_source_removes_its_file_rows_and_index_entries_on_every_node() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "delsource").await;
    let marker = format!("qzv{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let text = format!("The secret ingredient is {marker} and cardamom.");
    let (_, body) = upload(&app, &a.token, &bot, &[("secret.txt", text.as_bytes())]).await;
    let sid = body["sources"][0]["id"].as_str().expect("id").to_string();
    upload(&app, &a.token, &bot, &[("hours.txt", HOURS_TXT.as_bytes())]).await;
    app.drain_jobs().await;
    // Another node on the same database, with its own cache.
    let other = mtdesk_knowledge::Knowledge::new(
        app.state.store.clone(),
        mtdesk_knowledge::embed::Embedders::none(),
    );
    let bot_id = mtdesk_domain::ChatbotId::parse(&bot).expect("bot");
    let r = other
        .retrieve(&bot_id, &marker, None, 5)
        .await
        .expect("retrieve");
    assert_eq!(r.hits.len(), 1);
    let r = retrieval(&app, &a.token, &bot, &marker, "bm25").await;
    assert_eq!(r["hits"].as_array().map(Vec::len), Some(1));
    assert!(other.cache_contains_text(&marker));

    let account = AccountId::parse(&a.id).expect("id");
    let source_id = SourceId::parse(&sid).expect("sid");
    let path = app.state.files.source_path(&account, &source_id);
    assert!(path.exists());
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!path.exists(), "the original file is still there");
    // No table holds the text any more (chunks, pages, jobs…).
    let traces = catalogue::find_traces(&app.state.store, &[&marker, &sid])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "traces left: {traces:?}");
    // This node forgot it at once; the other node on its next search.
    assert!(!app.state.knowledge.knowledge.cache_contains_text(&marker));
    let r = other
        .retrieve(&bot_id, &marker, None, 5)
        .await
        .expect("retrieve");
    assert!(r.hits.is_empty());
    assert!(!other.cache_contains_text(&marker));
    let r = retrieval(&app, &a.token, &bot, &marker, "bm25").await;
    assert!(r["hits"].as_array().expect("hits").is_empty());
    // The other source is intact; deleting again is a 404.
    assert_eq!(sources(&app, &a.token, &bot).await.len(), 1);
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_ingest_interrupted_by_a_crash_resumes_and_completes() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "resume").await;
    upload(&app, &a.token, &bot, &[("hours.txt", HOURS_TXT.as_bytes())]).await;
    // A worker claims the job and dies: its lease is already over.
    let job = app
        .state
        .store
        .claim_job(-1)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(job.kind, "ingest_source");
    assert_eq!(app.drain_jobs().await, 1, "the job is claimed again");
    let listed = sources(&app, &a.token, &bot).await;
    assert_eq!(listed[0]["status"], "ready", "{listed:?}");
    assert_eq!(app.state.store.pending_jobs().await.expect("count"), 0);
}

#[tokio::test]
async fn a_job_that_kills_its_worker_every_time_ends_failed_not_retried_forever() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "poison").await;
    upload(&app, &a.token, &bot, &[("hours.txt", HOURS_TXT.as_bytes())]).await;
    // Three workers in a row claim it and die (their leases are already over).
    for _ in 0..3 {
        assert!(
            app.state
                .store
                .claim_job(-1)
                .await
                .expect("claim")
                .is_some()
        );
    }
    assert!(
        app.state
            .store
            .claim_job(-1)
            .await
            .expect("claim")
            .is_none(),
        "claimed a 4th time"
    );
    assert_eq!(
        mtdesk_knowledge::worker::fail_exhausted_jobs(&app.ingestor)
            .await
            .expect("sweep"),
        1
    );
    let listed = sources(&app, &a.token, &bot).await;
    assert_eq!(listed[0]["status"], "failed", "{listed:?}");
    assert!(
        listed[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("every time"),
        "{listed:?}"
    );
    // The owner can try again.
    let sid = listed[0]["id"].as_str().expect("id");
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}/sync"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.drain_jobs().await, 1);
    assert_eq!(sources(&app, &a.token, &bot).await[0]["status"], "ready");
    // A file is never re-synced on a schedule.
    let (status, body) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(&a.token),
            Some(json!({"sync_schedule": "daily"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn another_account_gets_404_on_every_knowledge_route() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "owner").await;
    let b = app.sign_up(&email("intruder")).await;
    let (_, body) = upload(&app, &a.token, &bot, &[("hours.txt", HOURS_TXT.as_bytes())]).await;
    let sid = body["sources"][0]["id"].as_str().expect("id").to_string();
    app.drain_jobs().await;
    let (status, _) = upload(&app, &b.token, &bot, &[("x.txt", b"intruder text")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/chatbots/{bot}/sources"), None),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/sources"),
            Some(json!({"url": "https://example.com/"})),
        ),
        (
            Method::GET,
            format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(json!({"sync_schedule": "daily"})),
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/sources/{sid}/sync"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/retrieval-test"),
            Some(json!({"query": "shop"})),
        ),
        (
            Method::GET,
            format!("/api/v1/chatbots/{bot}/knowledge-settings"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/chatbots/{bot}/knowledge-settings"),
            Some(json!({"embedding": "none"})),
        ),
    ] {
        let (status, resp) = app.api(method.clone(), &path, Some(&b.token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {resp}");
    }
    // Still there for the owner.
    assert_eq!(sources(&app, &a.token, &bot).await.len(), 1);
}

#[tokio::test]
async fn openapi_documents_the_knowledge_routes() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("get");
    let doc: Value = resp.json().await.expect("json");
    for path in [
        "/api/v1/chatbots/{id}/sources",
        "/api/v1/chatbots/{id}/sources/{source_id}",
        "/api/v1/chatbots/{id}/sources/{source_id}/sync",
        "/api/v1/chatbots/{id}/retrieval-test",
        "/api/v1/chatbots/{id}/knowledge-settings",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn deleting_a_chatbot_removes_its_source_files_too() {
    let app = TestApp::spawn().await;
    let (a, bot) = setup(&app, "delbot").await;
    let (_, body) = upload(&app, &a.token, &bot, &[("hours.txt", HOURS_TXT.as_bytes())]).await;
    let sid = SourceId::parse(body["sources"][0]["id"].as_str().expect("id")).expect("sid");
    app.drain_jobs().await;
    let account = AccountId::parse(&a.id).expect("id");
    let path = app.state.files.source_path(&account, &sid);
    assert!(path.exists());
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{bot}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        !path.exists(),
        "the chatbot's uploaded file survived its deletion"
    );
    let traces = catalogue::find_traces(&app.state.store, &["Lyon opens Monday", sid.as_str()])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
}

/// The local model's directory: `MTDESK_MODEL_DIR`, else the repository's `data/models/…` (fetched by
/// scripts/fetch-model). Missing: the test is skipped, unless `MTDESK_REQUIRE_MODEL=1` (CI) makes it fail.
#[cfg(feature = "local-embeddings")]
fn model_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var("MTDESK_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../data/models/all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("MTDESK_REQUIRE_MODEL").as_deref() != Ok("1"),
        "MTDESK_REQUIRE_MODEL=1 but no model in {}: run scripts/fetch-model",
        dir.display()
    );
    eprintln!("skipped: no local embedding model in {}", dir.display());
    None
}

#[cfg(feature = "local-embeddings")]
#[tokio::test]
async fn with_the_local_model_hybrid_search_finds_paraphrases_the_lexical_leg_misses() {
    let Some(dir) = model_dir() else { return };
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_MODEL_DIR".into(), dir.display().to_string());
    })
    .await;
    let (a, bot) = setup(&app, "minilm").await;
    upload(
        &app,
        &a.token,
        &bot,
        &[
            ("refund.md", REFUND_MD.as_bytes()),
            ("hours.txt", HOURS_TXT.as_bytes()),
        ],
    )
    .await;
    app.drain_jobs().await;
    let (_, settings) = app
        .get(
            &format!("/api/v1/chatbots/{bot}/knowledge-settings"),
            &a.token,
        )
        .await;
    assert_eq!(settings["vector_search"], true, "{settings}");
    // No word in common with the refund section.
    let q = "How do I get reimbursed for my purchase?";
    let r = retrieval(&app, &a.token, &bot, q, "hybrid").await;
    assert_eq!(r["mode"], "hybrid", "{r}");
    assert!(r["lexical_only_reason"].is_null(), "{r}");
    assert_eq!(r["hits"][0]["heading"], "Returns guide > Refunds", "{r}");
    assert!(
        r["hits"][0]["vector_score"].as_f64().unwrap_or(0.0) > 0.3,
        "{r}"
    );
    let r = retrieval(&app, &a.token, &bot, q, "bm25").await;
    assert!(
        r["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["heading"] != "Returns guide > Refunds"),
        "{r}"
    );
    // The offline answer quotes the refund passage.
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": q}),
        )
        .await;
    assert_eq!(reply["source"], "excerpt", "{reply}");
    assert!(
        reply["answer"].as_str().unwrap_or("").contains("14 days"),
        "{reply}"
    );
    // Switching the embedder off re-embeds (clears) and search falls back to the lexical leg.
    let (status, body) = app
        .api(
            Method::PUT,
            &format!("/api/v1/chatbots/{bot}/knowledge-settings"),
            Some(&a.token),
            Some(json!({"embedding": "none"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["vector_search"], false);
    app.drain_jobs().await;
    let r = retrieval(&app, &a.token, &bot, q, "hybrid").await;
    assert_eq!(r["mode"], "bm25", "{r}");
}

#[tokio::test]
async fn a_due_schedule_queues_a_resync_by_itself() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_ALLOW_PRIVATE_URLS".into(), "1".into());
        v.insert("MTDESK_CRAWL_DELAY_MS".into(), "0".into());
    })
    .await;
    let (a, bot) = setup(&app, "schedule").await;
    let (_site, url) = start_site().await;
    let (status, source) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/sources"),
            &a.token,
            json!({"url": url, "sync_schedule": "daily"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{source}");
    app.drain_jobs().await;
    let sid = source["id"].as_str().expect("id");
    let (_, s) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources/{sid}"), &a.token)
        .await;
    let next = s["next_sync_at"].as_i64().expect("scheduled");
    assert!(
        next > s["last_synced_at"].as_i64().expect("synced") + 86_000_000,
        "{s}"
    );
    // Nothing is due yet.
    assert_eq!(
        mtdesk_knowledge::worker::queue_due_syncs(&app.ingestor)
            .await
            .expect("q"),
        0
    );
    // A day later (moved back in the database), the worker queues it and it runs.
    sqlx_set_due(&app, sid).await;
    assert_eq!(
        mtdesk_knowledge::worker::queue_due_syncs(&app.ingestor)
            .await
            .expect("q"),
        1
    );
    assert_eq!(app.drain_jobs().await, 1);
    let (_, s2) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources/{sid}"), &a.token)
        .await;
    assert_eq!(s2["status"], "ready");
    assert!(
        s2["last_synced_at"].as_i64() > s["last_synced_at"].as_i64(),
        "{s2}"
    );
    // Manual sources are never due.
    let (status, body) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(&a.token),
            Some(json!({"sync_schedule": "manual"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["next_sync_at"].is_null());
}

async fn sqlx_set_due(app: &TestApp, sid: &str) {
    let id = SourceId::parse(sid).expect("sid");
    app.state
        .store
        .set_next_sync_at(&id, 1)
        .await
        .expect("update");
}

#[tokio::test]
async fn deleting_a_website_source_stops_its_crawl() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_ALLOW_PRIVATE_URLS".into(), "1".into());
        v.insert("MTDESK_CRAWL_DELAY_MS".into(), "200".into());
    })
    .await;
    let (a, bot) = setup(&app, "stopcrawl").await;
    let (site, url) = start_site().await;
    {
        let mut p = site.pages.lock().expect("lock");
        let links: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = links.iter().map(String::as_str).collect();
        p.insert("index".into(), page("Welcome", "Many pages.", &refs));
        for l in &links {
            p.insert(l.clone(), page(l, "Some text about teapots.", &[]));
        }
    }
    let (_, source) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/sources"),
            &a.token,
            json!({"url": url, "max_pages": 41, "max_depth": 1}),
        )
        .await;
    let sid = source["id"].as_str().expect("id").to_string();
    let ingestor = app.ingestor.clone();
    let crawl = tokio::spawn(async move { mtdesk_knowledge::worker::drain(&ingestor).await });
    // Let it start, then delete the source.
    loop {
        let (_, s) = app
            .get(&format!("/api/v1/chatbots/{bot}/sources/{sid}"), &a.token)
            .await;
        if s["status"] == "extracting" && s["progress"]["done"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{bot}/sources/{sid}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    crawl.await.expect("task").expect("drain");
    // Stopped well before the 41 pages (200 ms apart), and nothing was stored.
    let served = site.served.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        served < 30,
        "the crawl went on after the deletion: {served} requests"
    );
    let crawled = sources(&app, &a.token, &bot).await;
    assert!(crawled.is_empty());
    let r = retrieval(&app, &a.token, &bot, "teapots", "bm25").await;
    assert!(r["hits"].as_array().expect("hits").is_empty(), "{r}");
    assert_eq!(app.state.store.pending_jobs().await.expect("count"), 0);
}

#[tokio::test]
async fn a_crawl_stops_adding_pages_when_the_plans_storage_is_full() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_ALLOW_PRIVATE_URLS".into(), "1".into());
        v.insert("MTDESK_CRAWL_DELAY_MS".into(), "0".into());
        v.insert("MTDESK_DEFAULT_PLAN".into(), "free".into());
    })
    .await;
    // Room for the text of one or two of the three pages.
    crate::plans::set_free(&app, 5, 100, 100, 1).await;
    let (a, bot) = setup(&app, "crawl-limit").await;
    let (_site, url) = start_site().await;
    let (status, source) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/sources"),
            &a.token,
            json!({"url": url, "max_pages": 20, "max_depth": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{source}");
    let sid = source["id"].as_str().expect("id").to_string();
    app.drain_jobs().await;
    let (_, detail) = app
        .get(&format!("/api/v1/chatbots/{bot}/sources/{sid}"), &a.token)
        .await;
    assert_eq!(detail["status"], "ready", "{detail}");
    let pages = detail["pages"].as_array().expect("pages");
    let read = pages.iter().filter(|p| p["status"] == "ok").count();
    let full: Vec<&Value> = pages
        .iter()
        .filter(|p| {
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("knowledge storage is full"))
        })
        .collect();
    assert!(read >= 1, "{detail}");
    assert!(
        !full.is_empty(),
        "pages past the limit are skipped: {detail}"
    );
    let (_, usage) = app.get("/api/v1/usage", &a.token).await;
    let used = usage["used"]["storage_bytes"].as_i64().expect("used");
    assert!(
        (1..=200).contains(&used),
        "storage stays within the plan: {usage}"
    );
}
