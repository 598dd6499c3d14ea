//! A recording test website and crawler construction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use mtdesk_crawler::{AddressPolicy, CrawlConfig, CrawlSummary, Crawler, PageEvent, Url};

type Log = Arc<Mutex<Vec<String>>>;

/// A website on 127.0.0.1:0 that records the path (and query) of every request it receives.
pub struct TestSite {
    pub addr: SocketAddr,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl TestSite {
    /// Serves `router` until dropped.
    pub async fn spawn(router: Router) -> Self {
        Self::spawn_with(|_| router).await
    }

    /// Serves the router `build` makes from the site's own base URL (`http://127.0.0.1:<port>`),
    /// for documents that must name the site absolutely.
    pub async fn spawn_with(build: impl FnOnce(&str) -> Router) -> Self {
        init_logging();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound socket has an address");
        let router = build(&format!("http://{addr}"));
        let log = Log::default();
        let app = router.layer(from_fn_with_state(log.clone(), record));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server runs");
        });
        Self { addr, log, task }
    }

    /// Serves static pages: `(path, content type, body)`; other paths answer 404.
    pub async fn pages(pages: &[(&str, &str, &str)]) -> Self {
        Self::spawn(pages_router(pages)).await
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("valid test URL")
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(log): State<Log>, req: Request, next: Next) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), ToString::to_string);
    log.lock().expect("log lock").push(path);
    next.run(req).await
}

/// A router answering the given static pages, 404 otherwise.
pub fn pages_router(pages: &[(&str, &str, &str)]) -> Router {
    let pages: Arc<HashMap<String, (String, String)>> = Arc::new(
        pages
            .iter()
            .map(|(p, ct, body)| ((*p).to_owned(), ((*ct).to_owned(), (*body).to_owned())))
            .collect(),
    );
    Router::new().fallback(move |uri: Uri| {
        let pages = pages.clone();
        async move {
            let key = uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), ToString::to_string);
            match pages.get(&key) {
                Some((ct, body)) => {
                    ([(header::CONTENT_TYPE, ct.clone())], body.clone()).into_response()
                }
                None => (StatusCode::NOT_FOUND, "not found").into_response(),
            }
        }
    })
}

pub const HTML: &str = "text/html; charset=utf-8";

/// Test limits: no politeness delay, short timeouts, the given address policy.
pub fn config(policy: AddressPolicy) -> CrawlConfig {
    CrawlConfig {
        per_host_delay: Duration::ZERO,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        address_policy: policy,
        ..CrawlConfig::default()
    }
}

pub fn crawler(cfg: CrawlConfig) -> Crawler {
    // Every test may be first; a second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Crawler::new(cfg).expect("crawler builds")
}

/// Crawls and collects every event.
pub async fn crawl_all(
    crawler: &Crawler,
    start: &Url,
) -> (
    Result<CrawlSummary, mtdesk_crawler::CrawlError>,
    Vec<PageEvent>,
) {
    let mut events = Vec::new();
    let result = crawler.crawl(start, |e| events.push(e)).await;
    (result, events)
}

/// `(path, depth)` of fetched pages, in event order.
pub fn fetched(events: &[PageEvent]) -> Vec<(String, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            PageEvent::Fetched(p) => Some((p.requested.path().to_owned(), p.depth)),
            _ => None,
        })
        .collect()
}

fn init_logging() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,hyper=warn,hyper_util=warn,reqwest=warn,html5ever=warn,selectors=warn",
            ))
            .with_test_writer()
            .try_init();
    }
}
