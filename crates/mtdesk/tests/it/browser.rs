//! One real browser test: headless Chromium driven over the W3C WebDriver protocol (ChromeDriver), no
//! extra crate. Sign up → create a chatbot → add a Q&A pair → ask it in the test chat → see the answer.
//!
//! Skipped with a message when Chromium or ChromeDriver is absent, unless MTDESK_REQUIRE_BROWSER=1 (CI),
//! where their absence fails the test.

use crate::helpers::{TestApp, email};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    http: reqwest::Client,
    session_url: String,
    driver: Child,
    profile: std::path::PathBuf,
}

fn find_binary(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {n}"))
            .output()
            .ok()?;
        let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (!path.is_empty()).then_some(path)
    })
}

impl Browser {
    async fn start() -> Option<Self> {
        let required = std::env::var("MTDESK_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let (Some(driver_bin), Some(chrome_bin)) = (
            find_binary(&["chromedriver"]),
            find_binary(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            assert!(
                !required,
                "MTDESK_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed"
            );
            eprintln!(
                "SKIPPED browser test: install Debian's `chromium` and `chromium-driver` to run it"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = crate::helpers::temp_dir();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-quic", "--no-first-run", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_string();
        Some(Self {
            http,
            session_url: format!("{base}/session/{id}"),
            driver,
            profile,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.session_url, path));
        req = req.json(&body.unwrap_or(json!({})));
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits up to 10 s for an element matching `css`.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Value = self
                .http
                .post(format!("{}/element", self.session_url))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("find")
                .json()
                .await
                .expect("json");
            if let Some(id) = v["value"][ELEMENT_KEY].as_str() {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "element {css} not found on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/clear"), None)
            .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        // As a person would: bring it to the middle of the screen, clear of the sticky top bar (Chrome
        // restores the scroll position after a form redirects back to the same page).
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "arguments[0].scrollIntoView({block: 'center'});", "args": [{ELEMENT_KEY: el}]})),
        )
        .await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), None)
            .await;
    }

    /// Clicks something that loads a new page and waits until the old page is gone, so the next lookup
    /// cannot find an element of the page being left (and no navigation is cut short by the next one).
    async fn click_and_wait(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Value = self
                .http
                .get(format!("{}/element/{old}/name", self.session_url))
                .send()
                .await
                .expect("poll")
                .json()
                .await
                .expect("json");
            if v["value"]["error"] == "stale element reference" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} did not load a new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Saves a PNG screenshot when MTDESK_SCREENSHOT_DIR is set (for looking at the pages).
    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("MTDESK_SCREENSHOT_DIR") else {
            return;
        };
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        if let Some(s) = b64.as_str() {
            let _ = std::fs::create_dir_all(&dir);
            let bytes = base64_decode(s);
            let _ = std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.png")),
                bytes,
            );
        }
    }

    async fn quit(mut self) {
        let _ = self.http.delete(&self.session_url).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter_map(val) {
        buf = (buf << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn a_new_user_builds_a_bot_and_gets_an_answer_in_the_test_chat() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;

    browser.goto(&app.url("/signup")).await;
    browser.type_into("#name", "Ann Lee").await;
    browser.type_into("#email", &email("browser")).await;
    browser
        .type_into("#password", crate::helpers::PASSWORD)
        .await;
    browser.type_into("#company", "Lee Shoes").await;
    browser.click("#age_16_or_older").await;
    browser.screenshot("01-signup").await;
    browser.click_and_wait("#signup-submit").await;
    browser.find("#new-chatbot-name").await;
    assert!(
        browser.url().await.ends_with("/chatbots"),
        "after sign-up: {}",
        browser.url().await
    );

    browser
        .type_into("#new-chatbot-name", "Shoe shop helper")
        .await;
    browser.click_and_wait("#create-chatbot").await;
    browser.click_and_wait("#tab-qa").await;
    browser
        .type_into("#qa-question", "What are your opening hours?")
        .await;
    browser
        .type_into("#qa-answer", "We are open 9 to 5, Monday to Friday.")
        .await;
    browser.click_and_wait("#add-qa").await;
    browser.screenshot("02-qa").await;

    browser.click_and_wait("#tab-chat").await;
    browser
        .type_into("#message", "When are you open? Opening hours?")
        .await;
    browser.click_and_wait("#send").await;
    let answer = browser.text("#answer").await;
    browser.screenshot("03-chat").await;
    assert!(
        answer.contains("We are open 9 to 5, Monday to Friday."),
        "answer shown: {answer:?}"
    );
    browser.quit().await;
}

/// Waits up to 10 s until the text of `css` is `want` (looked up afresh each time: the script may
/// replace the element).
async fn wait_for_text(browser: &Browser, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = browser.text(css).await;
        if got.trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} shows {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_uploaded_file_shows_its_progress_until_ready_without_a_reload() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let dir = crate::helpers::temp_dir();
    let file = dir.join("shipping.md");
    std::fs::write(
        &file,
        "# Shipping\n\nParcels to Norway take four working days. We ship with PostNord.\n",
    )
    .expect("write the file to upload");

    browser.goto(&app.url("/signup")).await;
    browser.type_into("#name", "Ann Lee").await;
    browser.type_into("#email", &email("browser-kb")).await;
    browser
        .type_into("#password", crate::helpers::PASSWORD)
        .await;
    browser.type_into("#company", "Lee Shoes").await;
    browser.click("#age_16_or_older").await;
    browser.click_and_wait("#signup-submit").await;
    browser
        .type_into("#new-chatbot-name", "Shoe shop helper")
        .await;
    browser.click_and_wait("#create-chatbot").await;
    browser.click_and_wait("#tab-knowledge").await;
    browser.find("#sources-empty").await;

    // Choose the file and press Upload: the script sends it with fetch, the page stays.
    let page = browser.find("html").await;
    let input = browser.find("#upload-files").await;
    browser
        .cmd(
            reqwest::Method::POST,
            &format!("/element/{input}/value"),
            Some(json!({"text": file.display().to_string()})),
        )
        .await;
    browser.click("#upload-submit").await;
    let outcome = browser.text("#upload-outcome").await;
    assert!(
        outcome.contains("1 file added"),
        "upload outcome: {outcome:?}"
    );
    browser.find("#sources-table tr[data-source-id]").await;
    assert!(
        browser.text("#sources-table").await.contains("shipping.md"),
        "the new row is shown"
    );
    browser.screenshot("04-knowledge-queued").await;

    // The ingestion runs; the polling script moves the row to Ready without a reload.
    assert!(app.drain_jobs().await >= 1, "the ingestion job ran");
    wait_for_text(&browser, "#sources-table .source-status", "Ready").await;
    assert_eq!(
        browser.text("#sources-table .source-percent").await.trim(),
        "100%"
    );
    let chunks = browser.text("#sources-table .source-chunks").await;
    assert!(
        chunks.trim().parse::<u32>().is_ok_and(|n| n >= 1),
        "chunks: {chunks:?}"
    );
    browser.screenshot("05-knowledge-ready").await;
    let same_page: Value = browser
        .http
        .get(format!("{}/element/{page}/name", browser.session_url))
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert_eq!(
        same_page["value"], "html",
        "the page was not reloaded: {same_page}"
    );

    // The Retrieval test finds the passage, and links to its source.
    browser.click_and_wait("#tab-retrieval").await;
    browser
        .type_into("#query", "How long do parcels to Norway take?")
        .await;
    browser.click_and_wait("#run-retrieval").await;
    let hit = browser.text("#hit-1").await;
    assert!(
        hit.contains("Parcels to Norway take four working days"),
        "hit: {hit:?}"
    );
    browser.screenshot("06-retrieval-test").await;
    browser.click_and_wait("#hit-1 .hit-source-name").await;
    assert!(
        browser.text("#source-name").await.contains("shipping.md"),
        "the source's page"
    );
    browser.screenshot("07-source").await;
    browser.quit().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sign up → verify the address through the link the SMTP sink received → upgrade through the fake Stripe
/// Checkout → the billing page shows the new plan (granted by the signed webhook) and the usage meters.
#[tokio::test]
async fn a_new_user_verifies_the_email_upgrades_through_checkout_and_sees_the_plan_and_meters() {
    use mtdesk_testkit::fake_stripe::{Delivery, FakeStripe, FakeStripeConfig};
    use mtdesk_testkit::smtp_sink::SmtpSink;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let sink = SmtpSink::start().await;
    let fake = FakeStripe::start(FakeStripeConfig::new()).await;
    let cfg = fake.config().clone();
    let (smtp, base) = (sink.url(), fake.base_url());
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
        v.insert("MTDESK_STRIPE_SECRET_KEY".into(), cfg.secret_key.clone());
        v.insert(
            "MTDESK_STRIPE_WEBHOOK_SECRET".into(),
            cfg.webhook_secret.clone(),
        );
        v.insert("MTDESK_STRIPE_API_BASE".into(), base);
    })
    .await;
    fake.set_webhook_url(&app.url("/webhooks/stripe"));
    let address = email("browser-billing");

    browser.goto(&app.url("/signup")).await;
    browser.type_into("#name", "Ann Lee").await;
    browser.type_into("#email", &address).await;
    browser
        .type_into("#password", crate::helpers::PASSWORD)
        .await;
    browser.type_into("#company", "Lee Shoes").await;
    browser.click("#age_16_or_older").await;
    browser.click_and_wait("#signup-submit").await;
    browser.find("#new-chatbot-name").await;

    // The verification link, from the mail the SMTP sink received.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mail = loop {
        if let Some(m) = sink.messages().into_iter().find(|m| {
            m.to.iter().any(|t| t == &address)
                && m.header("Subject").unwrap_or_default().contains("Confirm")
        }) {
            break m;
        }
        assert!(Instant::now() < deadline, "no verification mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = mail.text_part().expect("text");
    let at = text.find("/verify-email/").expect("verify link");
    let start = text[..at].rfind("http").expect("link start");
    let end = at
        + text[at..]
            .find(char::is_whitespace)
            .unwrap_or(text.len() - at);
    browser.goto(&text[start..end]).await;
    let verified = browser.text("#link-result").await;
    assert!(
        verified.to_lowercase().contains("confirmed")
            || verified.to_lowercase().contains("verified"),
        "{verified}"
    );

    // Upgrade: the billing page → the fake hosted Checkout → pay → back on the billing page.
    browser.goto(&app.url("/account/billing")).await;
    assert_eq!(browser.text("#plan-name").await.trim(), "Free");
    browser.find("#billing-meters").await;
    browser.screenshot("10-billing-free").await;
    browser.click_and_wait("#upgrade-starter").await;
    browser.find("#pay").await;
    browser.click_and_wait("#pay").await;
    assert!(
        browser
            .url()
            .await
            .contains("/account/billing?checkout=success"),
        "after paying: {}",
        browser.url().await
    );
    // Stripe's webhooks arrive on their own; the plan changes only then.
    let session = fake.last_session_id().expect("a Checkout Session");
    let done = fake.complete_checkout(&session, Delivery::default()).await;
    for (status, body) in &done.responses {
        assert_eq!(*status, 200, "{body}");
    }
    browser.goto(&app.url("/account/billing")).await;
    assert_eq!(browser.text("#plan-name").await.trim(), "Starter");
    let meters = browser.text("#billing-meters").await;
    assert!(
        meters.contains("0 of 3"),
        "chatbots meter of the Starter plan: {meters}"
    );
    browser.screenshot("11-billing-starter").await;
    browser.goto(&app.url("/account")).await;
    assert_eq!(browser.text("#plan-name").await.trim(), "Starter");
    assert!(browser.text("#meter-chatbots-text").await.contains("of 3"));
    browser.quit().await;
}
