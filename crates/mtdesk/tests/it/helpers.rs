//! `TestApp`: one real server per test.

use mtdesk::settings::Settings;
use mtdesk_http::AppState;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub ingestor: mtdesk_knowledge::ingest::Ingestor,
    pub data_dir: PathBuf,
    pg: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A signed-up account with its first API token.
#[derive(Debug, Clone)]
pub struct TestAccount {
    pub id: String,
    pub email: String,
    pub token: String,
}

fn init_logging() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,sqlx=warn,hyper=warn",
            ))
            .with_test_writer()
            .try_init();
    }
}

/// Replaces the database name (last path segment) of a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtdesk-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Creates a fresh PostgreSQL database when MTDESK_TEST_DATABASE_URL is set; returns (admin URL, name).
pub async fn fresh_postgres() -> Option<(String, String)> {
    let admin = std::env::var("MTDESK_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = format!("mtdesk_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("MTDESK_TEST_DATABASE_URL must be reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    Some((admin, name))
}

pub fn drop_postgres(admin: String, name: String) {
    // Drop runs outside any runtime guarantee, so use a small runtime of our own on a thread.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        });
    })
    .join();
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with extra or changed `MTDESK_*` variables.
    pub async fn spawn_with(configure: impl FnOnce(&mut BTreeMap<String, String>)) -> Self {
        init_logging();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data_dir = temp_dir();
        let pg = fresh_postgres().await;
        let mut vars = BTreeMap::new();
        vars.insert(
            "MTDESK_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        );
        let db_url = match &pg {
            Some((admin, name)) => with_database(admin, name),
            None => format!("sqlite://{}", data_dir.join("mtdesk.sqlite").display()),
        };
        vars.insert("MTDESK_DATABASE_URL".into(), db_url);
        vars.insert(
            "MTDESK_SECRET_KEY".into(),
            "test-secret-key-0123456789abcdef0123456789".into(),
        );
        // Cheap hashing in tests; the production cost is measured in the bench.
        vars.insert("MTDESK_ARGON2_MEMORY_KIB".into(), "8192".into());
        vars.insert("MTDESK_ARGON2_ITERATIONS".into(), "1".into());
        configure(&mut vars);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        vars.entry("MTDESK_PUBLIC_URL".into())
            .or_insert(format!("http://{addr}"));
        let settings = Settings::from_vars(&vars).expect("test settings");
        let state = mtdesk::build_state(&settings).await.expect("state");
        let ingestor = mtdesk::ingestor(&settings, &state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            // No background worker: tests run queued jobs with `drain_jobs`, never by sleeping.
            let _ = mtdesk::serve(serve_state, None, 0, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: format!("http://{addr}"),
            client,
            state,
            ingestor,
            data_dir,
            pg,
            shutdown: Some(tx),
        }
    }

    /// Runs every queued job (ingestion, re-embedding) now; returns how many ran.
    pub async fn drain_jobs(&self) -> usize {
        mtdesk_knowledge::worker::drain(&self.ingestor)
            .await
            .expect("jobs run")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An API call with an optional bearer token and JSON body; returns status and JSON (Null if none).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        json_of(resp).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.api(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.api(Method::POST, path, Some(token), Some(body)).await
    }

    /// Signs up through the API and marks the address verified (as opening the emailed link does), so the
    /// account can connect channels. See [`TestApp::sign_up_unverified`] for the state right after sign-up.
    pub async fn sign_up(&self, email: &str) -> TestAccount {
        let account = self.sign_up_unverified(email).await;
        self.state
            .store
            .set_email_verified(
                &mtdesk_domain::AccountId::parse(&account.id).expect("account id"),
                Some(mtdesk_domain::now_ms()),
            )
            .await
            .expect("mark verified");
        account
    }

    /// Signs up through the API; the address stays unverified (the verification mail is in the outbox).
    pub async fn sign_up_unverified(&self, email: &str) -> TestAccount {
        let (status, body) = self
            .api(
                Method::POST,
                "/api/v1/account",
                None,
                Some(json!({"name": "Ann Lee", "email": email, "password": PASSWORD, "company": "Lee Shoes", "age_16_or_older": true})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestAccount {
            id: body["account"]["id"].as_str().expect("id").to_string(),
            email: email.to_string(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }

    pub async fn create_chatbot(&self, token: &str, name: &str) -> String {
        let (status, body) = self
            .post("/api/v1/chatbots", token, json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    pub async fn add_qa(&self, token: &str, bot: &str, q: &str, a: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/api/v1/chatbots/{bot}/qa"),
                token,
                json!({"question": q, "answer": a}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// The database this server uses (for a second server on the same database).
    pub fn database_url(&self) -> String {
        match &self.pg {
            Some((admin, name)) => with_database(admin, name),
            None => format!("sqlite://{}", self.data_dir.join("mtdesk.sqlite").display()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

pub async fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A unique email per call, so tests never collide.
pub fn email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((admin, name)) = self.pg.take() {
            drop_postgres(admin, name);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
