//! The dashboard's Knowledge and Retrieval test tabs over HTTP, as a browser uses them: multipart uploads
//! with CSRF (form field or header), progress in `status.json`, websites that fail, source pages, the
//! embedder, hit testing, tenant isolation. Ingestion runs through `drain_jobs`, never by sleeping.

use crate::helpers::{PASSWORD, TestApp, email};
use crate::tab::{Page, Tab};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const SHIPPING_MD: &str = "# Shipping\n\n## Delivery times\n\nParcels to Norway take four working days. \
    Parcels inside Sweden arrive the next working day. We ship with PostNord and DHL.\n\n\
    ## Returns\n\nYou can return unworn shoes within 30 days for a full refund.\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01";

impl Page {
    /// The `<tr>` (or block) of one source, by its element id.
    fn source_row(&self, source: &str) -> &str {
        let marker = format!("id=\"source-{source}\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no row for {source}: {}", self.body));
        let rest = &self.body[start..];
        let end = rest.find("</tr>").unwrap_or(rest.len());
        &rest[..end]
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Tab {
    /// The token of this browser's forms (from any signed-in page).
    async fn token(&self) -> String {
        self.get("/chatbots").await.csrf()
    }

    /// Posts `fields` with this browser's CSRF token.
    async fn submit_form(&self, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        self.post(action, &form).await
    }

    /// A multipart upload as the form sends it: `csrf` first (when given), then the files.
    async fn upload(
        &self,
        bot: &str,
        csrf: Option<&str>,
        files: &[(&str, &[u8])],
        extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Page {
        let mut form = Form::new();
        if let Some(t) = csrf {
            form = form.text("csrf", t.to_string());
        }
        for (name, bytes) in files {
            form = form.part(
                "files",
                Part::bytes(bytes.to_vec()).file_name(name.to_string()),
            );
        }
        let req = self
            .client
            .post(format!("{}/chatbots/{bot}/knowledge/upload", self.base))
            .multipart(form);
        Self::page(extra(req).send().await.expect("upload")).await
    }

    async fn status_json(&self, bot: &str) -> Value {
        let page = self
            .get(&format!("/chatbots/{bot}/knowledge/status.json"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.json()
    }

    /// Signs up through the form and creates a chatbot; returns its id.
    async fn sign_up_with_bot(app: &TestApp, tag: &str) -> (Self, String) {
        let tab = Self::new(app);
        let token = tab.get("/signup").await.csrf();
        let e = email(tag);
        let page = tab
            .post(
                "/signup",
                &[
                    ("name", "Ann Lee"),
                    ("email", &e),
                    ("password", PASSWORD),
                    ("company", "Lee Shoes"),
                    ("age_16_or_older", "on"),
                    ("csrf", &token),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let page = tab
            .submit_form("/chatbots", &[("name", "Shoe helper")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let bot = page
            .location()
            .trim_start_matches("/chatbots/")
            .split(['/', '?'])
            .next()
            .unwrap_or("")
            .to_string();
        assert!(!bot.is_empty(), "chatbot id from {}", page.location());
        (tab, bot)
    }
}

/// The ids of the sources shown on a page, in order.
fn source_ids(body: &str) -> Vec<String> {
    body.match_indices("data-source-id=\"")
        .map(|(i, m)| {
            let rest = &body[i + m.len()..];
            rest[..rest.find('"').expect("end quote")].to_string()
        })
        .collect()
}

#[tokio::test]
async fn uploads_show_progress_become_ready_are_searchable_and_can_be_deleted() {
    let app = TestApp::spawn().await;
    let (tab, bot) = Tab::sign_up_with_bot(&app, "kb-upload").await;
    let knowledge = format!("/chatbots/{bot}/knowledge");

    let page = tab.get(&knowledge).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"tab-knowledge\""), "tab link");
    assert!(page.body.contains("No knowledge yet"));
    assert!(
        page.body
            .contains("up to 20 MB per file, 500 files per chatbot"),
        "limits shown"
    );
    assert!(page.body.contains("type=\"file\" multiple"));

    // A form without JavaScript: one good file, one PNG named .pdf.
    let token = page.csrf();
    let page = tab
        .upload(
            &bot,
            Some(&token),
            &[("shipping.md", SHIPPING_MD.as_bytes()), ("scan.pdf", PNG)],
            |r| r,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"upload-outcome\""), "{}", page.body);
    assert!(page.body.contains("1 file added"), "{}", page.body);
    assert!(page.body.contains("1 file refused"), "{}", page.body);
    assert!(
        page.body.contains("scan.pdf") && page.body.contains("looks like a PNG image"),
        "the refused file and why: {}",
        page.body
    );
    let ids = source_ids(&page.body);
    assert_eq!(ids.len(), 1, "one source: {ids:?}");
    let source = ids[0].clone();
    let row = page.source_row(&source);
    assert!(
        row.contains("shipping.md") && row.contains("data-status=\"queued\""),
        "{row}"
    );
    assert!(
        row.contains("<progress") && row.contains("Markdown"),
        "{row}"
    );

    let status = tab.status_json(&bot).await;
    assert_eq!(status["active"], true, "{status}");
    assert_eq!(status["sources"][0]["id"], source.as_str());
    assert_eq!(status["sources"][0]["status"], "queued");
    assert_eq!(status["sources"][0]["percent"], 0);

    assert!(app.drain_jobs().await >= 1, "the ingestion job ran");

    let status = tab.status_json(&bot).await;
    assert_eq!(status["active"], false, "{status}");
    let s = &status["sources"][0];
    assert_eq!(s["status"], "ready", "{status}");
    assert_eq!(s["percent"], 100);
    assert!(s["chunk_count"].as_i64().unwrap_or(0) >= 1, "{status}");
    assert!(s["error"].is_null(), "{status}");

    let page = tab.get(&knowledge).await;
    let row = page.source_row(&source);
    assert!(
        row.contains("data-status=\"ready\"") && row.contains(">Ready<"),
        "{row}"
    );
    assert!(row.contains("value=\"100\""), "full progress bar: {row}");
    assert!(
        !row.contains("class=\"num source-chunks\">0<"),
        "chunks counted: {row}"
    );

    // The source's own page.
    let detail = tab.get(&format!("{knowledge}/{source}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert!(detail.body.contains("shipping.md") && detail.body.contains("Markdown"));
    assert!(detail.body.contains("Ready"));

    // Hit testing: no local model in tests, so keyword search with its reason.
    let retrieval = format!("/chatbots/{bot}/retrieval-test");
    let page = tab.get(&retrieval).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"retrieval-form\""));
    tab.submit_form(
        &format!("/chatbots/{bot}/qa"),
        &[
            ("question", "How long does delivery to Norway take?"),
            ("answer", "About four working days."),
        ],
    )
    .await;
    let page = tab
        .submit_form(
            &retrieval,
            &[
                ("query", "How long do parcels to Norway take?"),
                ("mode", "hybrid"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"hit-1\""), "a hit: {}", page.body);
    assert!(page.body.contains("shipping.md"));
    assert!(
        page.body
            .contains("Parcels to Norway take four working days")
    );
    assert!(page.body.contains("Delivery times"), "heading path shown");
    assert!(
        page.body.contains("id=\"mode-used\">keywords only (BM25)<"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"lexical-only-reason\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-leg=\"lexical\""));
    assert!(page.body.contains("id=\"confident\""));
    assert!(page.body.contains("id=\"qa-matches\""), "{}", page.body);
    assert!(page.body.contains("About four working days."));
    // What was typed stays in the form, and it is escaped.
    let page = tab
        .submit_form(
            &retrieval,
            &[("query", "<script>x</script>"), ("mode", "bm25")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>x</script>"));
    assert!(page.body.contains("&#60;script&#62;x") || page.body.contains("&lt;script&gt;x"));
    let page = tab
        .submit_form(&retrieval, &[("query", "  "), ("mode", "hybrid")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"query-error\""), "{}", page.body);

    // With JavaScript: the token in the header, the answer in JSON, several files at once.
    let token = tab.token().await;
    let page = tab
        .upload(
            &bot,
            None,
            &[
                (
                    "returns.txt",
                    b"Returns are free within 30 days.".as_slice(),
                ),
                ("empty.txt", b"".as_slice()),
            ],
            |r| {
                r.header("X-CSRF-Token", token.as_str())
                    .header("Accept", "application/json")
            },
        )
        .await;
    assert_eq!(page.status, StatusCode::ACCEPTED, "{}", page.body);
    let body = page.json();
    assert_eq!(body["sources"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["sources"][0]["status"], "queued");
    assert_eq!(body["errors"][0]["file"], "empty.txt", "{body}");
    let second = body["sources"][0]["id"].as_str().expect("id").to_string();
    let status = tab.status_json(&bot).await;
    assert_eq!(status["active"], true);
    assert_eq!(status["sources"].as_array().map(Vec::len), Some(2));

    // Delete: gone from the page and from status.json.
    let page = tab
        .submit_form(&format!("{knowledge}/{source}/delete"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("{knowledge}?deleted=1"));
    let page = tab.get(page.location()).await;
    assert!(page.body.contains("Source deleted."));
    assert_eq!(source_ids(&page.body), vec![second.clone()]);
    let status = tab.status_json(&bot).await;
    assert_eq!(status["sources"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["sources"][0]["id"], second.as_str());
    assert_eq!(
        tab.get(&format!("{knowledge}/{source}")).await.status,
        StatusCode::NOT_FOUND
    );
    // The deleted file's text is no longer found.
    let page = tab
        .submit_form(
            &retrieval,
            &[("query", "parcels Norway PostNord"), ("mode", "bm25")],
        )
        .await;
    assert!(!page.body.contains("PostNord and DHL"), "{}", page.body);
}

#[tokio::test]
async fn a_website_that_cannot_be_reached_is_shown_failed_with_the_reason() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_ALLOW_PRIVATE_URLS".into(), "1".into());
    })
    .await;
    let (tab, bot) = Tab::sign_up_with_bot(&app, "kb-url").await;
    let knowledge = format!("/chatbots/{bot}/knowledge");

    // A refused form keeps what was typed and says what is wrong next to the field.
    let page = tab
        .submit_form(
            &format!("{knowledge}/url"),
            &[
                ("url", "http://127.0.0.1:9/"),
                ("max_pages", "lots"),
                ("max_depth", "2"),
                ("sync_schedule", "weekly"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"max-pages-error\""),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("Max pages must be a whole number between 1 and 1000.")
    );
    assert!(page.body.contains("value=\"http://127.0.0.1:9/\""));
    assert!(page.body.contains("value=\"lots\""));
    assert!(page.body.contains("<option value=\"weekly\" selected>"));
    let page = tab
        .submit_form(
            &format!("{knowledge}/url"),
            &[
                ("url", "ftp://example.com/"),
                ("max_pages", ""),
                ("max_depth", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("id=\"source-url-error\""),
        "{}",
        page.body
    );

    let page = tab
        .submit_form(
            &format!("{knowledge}/url"),
            &[
                ("url", "http://127.0.0.1:9/"),
                ("max_pages", "50"),
                ("max_depth", "2"),
                ("sync_schedule", "manual"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("{knowledge}?added=1"));
    let page = tab.get(page.location()).await;
    assert!(page.body.contains("Website added."));
    let ids = source_ids(&page.body);
    assert_eq!(ids.len(), 1);
    let source = ids[0].clone();
    let row = page.source_row(&source);
    assert!(
        row.contains("Website") && row.contains("data-status=\"queued\""),
        "{row}"
    );
    assert!(
        row.contains("Re-sync</button>") && row.contains(" disabled>"),
        "busy: {row}"
    );
    assert!(page.body.contains("data-active=\"true\""));

    // Re-sync while queued: refused with a reason, nothing changes.
    let page = tab
        .submit_form(&format!("{knowledge}/{source}/sync"), &[])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("already queued or being processed"));

    app.drain_jobs().await;

    let status = tab.status_json(&bot).await;
    let s = &status["sources"][0];
    assert_eq!(s["status"], "failed", "{status}");
    let reason = s["error"].as_str().unwrap_or("").to_string();
    assert!(!reason.is_empty(), "a reason: {status}");
    let page = tab.get(&knowledge).await;
    let row = page.source_row(&source);
    assert!(
        row.contains("data-status=\"failed\"") && row.contains(">Failed<"),
        "{row}"
    );
    let shown = reason
        .replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;");
    assert!(
        row.contains(&shown) || row.contains(&reason),
        "the reason {reason:?} in {row}"
    );
    assert!(page.body.contains("data-active=\"false\""));

    // Its page explains the failure; the schedule can be changed there.
    let detail = tab.get(&format!("{knowledge}/{source}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("Failed") && detail.body.contains("Pages of the last crawl"));
    let page = tab
        .submit_form(
            &format!("{knowledge}/{source}/schedule"),
            &[("sync_schedule", "daily"), ("back", "detail")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("{knowledge}/{source}?schedule=1"));
    let detail = tab.get(page.location()).await;
    assert!(
        detail.body.contains("<option value=\"daily\" selected>"),
        "{}",
        detail.body
    );
    let page = tab
        .submit_form(
            &format!("{knowledge}/{source}/schedule"),
            &[("sync_schedule", "hourly")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A failed source can be synced again.
    let page = tab
        .submit_form(&format!("{knowledge}/{source}/sync"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        tab.status_json(&bot).await["sources"][0]["status"],
        "queued"
    );
}

#[tokio::test]
async fn the_embeddings_form_saves_the_choice_and_says_why_vectors_are_off() {
    let app = TestApp::spawn().await;
    let (tab, bot) = Tab::sign_up_with_bot(&app, "kb-embed").await;
    let knowledge = format!("/chatbots/{bot}/knowledge");
    let action = format!("{knowledge}/embedding");

    let page = tab.get(&knowledge).await;
    // No local model in tests (built without it): keyword search only, with the reason.
    assert!(page.body.contains("id=\"lexical-only\""), "{}", page.body);
    assert!(page.body.contains(
        "id=\"embedding-local\" name=\"embedding\" type=\"radio\" value=\"local\" checked"
    ));

    let page = tab
        .submit_form(&action, &[("embedding", "openrouter"), ("model", "")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"embedding-model-error\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"openrouter\" checked"),
        "choice kept"
    );

    let page = tab
        .submit_form(&action, &[("embedding", "none"), ("model", "")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location(),
        format!("{knowledge}?embedding=1#embeddings")
    );
    let page = tab.get(&format!("{knowledge}?embedding=1")).await;
    assert!(page.body.contains("Embeddings saved."));
    assert!(
        page.body
            .contains("Keyword search only: vector search is off for this chatbot."),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"none\" checked"));

    let page = tab
        .submit_form(
            &action,
            &[
                ("embedding", "openrouter"),
                ("model", "openai/text-embedding-3-small"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = tab.get(&knowledge).await;
    assert!(
        page.body
            .contains("value=\"openai/text-embedding-3-small\"")
    );
    assert!(
        page.body.contains("MTDESK_OPENROUTER_API_KEY"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn another_account_gets_404_on_every_knowledge_page_and_action() {
    let app = TestApp::spawn().await;
    let (owner, bot) = Tab::sign_up_with_bot(&app, "kb-owner").await;
    let token = owner.token().await;
    let page = owner
        .upload(
            &bot,
            Some(&token),
            &[("faq.md", SHIPPING_MD.as_bytes())],
            |r| r,
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location(),
        format!("/chatbots/{bot}/knowledge?uploaded=1")
    );
    app.drain_jobs().await;
    let source = source_ids(&owner.get(&format!("/chatbots/{bot}/knowledge")).await.body)
        .pop()
        .expect("a source");

    let (intruder, own_bot) = Tab::sign_up_with_bot(&app, "kb-intruder").await;
    let k = format!("/chatbots/{bot}/knowledge");
    for path in [
        k.clone(),
        format!("{k}/status.json"),
        format!("{k}/{source}"),
        format!("/chatbots/{bot}/retrieval-test"),
        // Their own chatbot with the owner's source.
        format!("/chatbots/{own_bot}/knowledge/{source}"),
        "/chatbots/not-an-id/knowledge".to_string(),
    ] {
        let page = intruder.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(!page.body.contains("faq.md"), "GET {path} leaks");
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("{k}/url"), vec![("url", "https://example.com/")]),
        (format!("{k}/embedding"), vec![("embedding", "none")]),
        (format!("{k}/{source}/delete"), vec![]),
        (format!("{k}/{source}/sync"), vec![]),
        (
            format!("{k}/{source}/schedule"),
            vec![("sync_schedule", "daily")],
        ),
        (
            format!("/chatbots/{own_bot}/knowledge/{source}/delete"),
            vec![],
        ),
        (
            format!("/chatbots/{own_bot}/knowledge/{source}/sync"),
            vec![],
        ),
        (
            format!("/chatbots/{own_bot}/knowledge/{source}/schedule"),
            vec![("sync_schedule", "daily")],
        ),
        (
            format!("/chatbots/{bot}/retrieval-test"),
            vec![("query", "Norway"), ("mode", "bm25")],
        ),
    ];
    for (path, fields) in &posts {
        let page = intruder.submit_form(path, fields).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "POST {path}: {}",
            page.body
        );
        assert!(!page.body.contains("faq.md"), "POST {path} leaks");
    }
    let token = intruder.token().await;
    let page = intruder
        .upload(
            &bot,
            Some(&token),
            &[("evil.md", b"# Evil".as_slice())],
            |r| r,
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "upload: {}", page.body);

    // The owner's source is untouched.
    let status = owner.status_json(&bot).await;
    assert_eq!(
        status["sources"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["sources"][0]["status"], "ready");
    let ids = source_ids(
        &intruder
            .get(&format!("/chatbots/{own_bot}/knowledge"))
            .await
            .body,
    );
    assert!(ids.is_empty(), "nothing was added to either bot: {ids:?}");
}

#[tokio::test]
async fn knowledge_posts_without_a_valid_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let (tab, bot) = Tab::sign_up_with_bot(&app, "kb-csrf").await;
    let k = format!("/chatbots/{bot}/knowledge");
    let file: &[(&str, &[u8])] = &[("faq.md", SHIPPING_MD.as_bytes())];

    // No token at all, a wrong one, files before the token, a wrong header, a foreign Origin.
    let page = tab.upload(&bot, None, file, |r| r).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let page = tab.upload(&bot, Some("0123abcd"), file, |r| r).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let token = tab.token().await;
    let files_first = Form::new()
        .part(
            "files",
            Part::bytes(SHIPPING_MD.as_bytes().to_vec()).file_name("faq.md"),
        )
        .text("csrf", token.clone());
    let page = Tab::page(
        tab.client
            .post(format!("{}{k}/upload", tab.base))
            .multipart(files_first)
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "token after the files");
    let page = tab
        .upload(&bot, None, file, |r| {
            r.header("X-CSRF-Token", "nope")
                .header("Accept", "application/json")
        })
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.json()["message"].as_str().is_some(), "{}", page.body);
    let page = tab
        .upload(&bot, Some(&token), file, |r| {
            r.header("Origin", "https://evil.example")
        })
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "foreign origin");

    for (path, fields) in [
        (format!("{k}/url"), vec![("url", "https://example.com/")]),
        (format!("{k}/embedding"), vec![("embedding", "none")]),
        (
            format!("/chatbots/{bot}/retrieval-test"),
            vec![("query", "Norway")],
        ),
    ] {
        let page = tab.post(&path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    let status = tab.status_json(&bot).await;
    assert_eq!(
        status["sources"].as_array().map(Vec::len),
        Some(0),
        "nothing was added: {status}"
    );

    // The same upload with the token first is accepted: the refusals above were about the token.
    let page = tab.upload(&bot, Some(&token), file, |r| r).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let source = tab.status_json(&bot).await["sources"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    for action in ["delete", "sync", "schedule"] {
        let page = tab
            .post(&format!("{k}/{source}/{action}"), &[("csrf", "forged")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(
        tab.status_json(&bot).await["sources"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
