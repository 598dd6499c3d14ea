//! Breadth-first order, limits, same-site rule, non-HTML and failing pages.

use axum::response::Redirect;
use axum::routing::get;
use mtdesk_crawler::{
    AddressPolicy, CrawlConfig, CrawlError, FetchError, PageEvent, SkipReason, Url,
};

use crate::helpers::{HTML, TestSite, config, crawl_all, crawler, fetched};

/// `/` → `/a`, `/b`; `/a` → `/a1`, `/b`; `/b` → `/b1`; `/a1` → `/deep`.
async fn tree_site() -> TestSite {
    TestSite::pages(&[
        ("/", HTML, r#"<a href="/a">A</a> <a href="b">B</a>"#),
        (
            "/a",
            HTML,
            r#"<a href="/a1">A1</a> <a href="/b#again">B</a>"#,
        ),
        ("/b", HTML, r#"<a href="/b1">B1</a> <a href="/">home</a>"#),
        ("/a1", HTML, r#"<a href="/deep">deep</a>"#),
        ("/b1", HTML, "leaf"),
        ("/deep", HTML, "too deep"),
    ])
    .await
}

fn strings(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|(p, d)| ((*p).to_owned(), *d)).collect()
}

#[tokio::test]
async fn crawl_visits_pages_breadth_first_with_depths() {
    let site = tree_site().await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(
        fetched(&events),
        strings(&[("/", 0), ("/a", 1), ("/b", 1), ("/a1", 2), ("/b1", 2)])
    );
    assert_eq!(summary.fetched, 5);
    assert_eq!((summary.failed, summary.skipped), (0, 0));
    assert!(!summary.limit_reached);
    // robots.txt first, then the start page, then the sitemap probe, then the queue; `/deep`
    // (depth 3) and duplicates are never requested.
    assert_eq!(
        site.requests(),
        ["/robots.txt", "/", "/sitemap.xml", "/a", "/b", "/a1", "/b1"]
    );
}

#[tokio::test]
async fn max_depth_stops_following_links() {
    let site = tree_site().await;
    let c = crawler(CrawlConfig {
        max_depth: 1,
        ..config(AddressPolicy::AllowPrivate)
    });

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    result.expect("crawl succeeds");
    assert_eq!(fetched(&events), strings(&[("/", 0), ("/a", 1), ("/b", 1)]));
    assert!(!site.requests().contains(&"/a1".to_owned()));
}

#[tokio::test]
async fn max_depth_zero_fetches_only_the_start_page() {
    let site = tree_site().await;
    let c = crawler(CrawlConfig {
        max_depth: 0,
        ..config(AddressPolicy::AllowPrivate)
    });

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    result.expect("crawl succeeds");
    assert_eq!(fetched(&events), strings(&[("/", 0)]));
    assert_eq!(site.requests(), ["/robots.txt", "/"]);
}

#[tokio::test]
async fn max_pages_stops_the_crawl_and_says_so() {
    let site = tree_site().await;
    let c = crawler(CrawlConfig {
        max_pages: 2,
        ..config(AddressPolicy::AllowPrivate)
    });

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(fetched(&events), strings(&[("/", 0), ("/a", 1)]));
    assert_eq!(summary.fetched, 2);
    assert!(summary.limit_reached);
    assert!(!site.requests().contains(&"/b".to_owned()));
}

#[tokio::test]
async fn off_site_links_and_redirects_are_not_followed() {
    let other = TestSite::pages(&[("/", HTML, "another website")]).await;
    let other_url = other.url("/").to_string();
    let home = format!(
        r#"<a href="{other_url}">absolute off-site</a>
           <a href="//{}/x">scheme-relative off-site</a>
           <a href="https://127.0.0.1/">same host, other scheme and port</a>
           <a href="/leaves">redirects away</a>
           <a href="/local">local</a>"#,
        other.addr
    );
    let site = TestSite::spawn(
        crate::helpers::pages_router(&[("/", HTML, &home), ("/local", HTML, "ok")]).route(
            "/leaves",
            get(move || {
                let to = other_url.clone();
                async move { Redirect::temporary(&to) }
            }),
        ),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(fetched(&events), strings(&[("/", 0), ("/local", 1)]));
    let skipped: Vec<(String, SkipReason)> = events
        .iter()
        .filter_map(|e| match e {
            PageEvent::Skipped { url, reason } => Some((url.path().to_owned(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [("/leaves".to_owned(), SkipReason::OffSite)]);
    assert_eq!((summary.skipped, summary.failed), (1, 0));
    assert!(
        other.requests().is_empty(),
        "the other site was contacted: {:?}",
        other.requests()
    );
}

#[tokio::test]
async fn non_html_page_is_fetched_with_its_content_type_but_not_parsed() {
    let site = TestSite::pages(&[
        ("/", HTML, r#"<a href="/brochure.pdf">PDF</a>"#),
        (
            "/brochure.pdf",
            "application/pdf",
            r#"%PDF-1.7 <a href="/hidden">not a real link</a>"#,
        ),
        ("/hidden", HTML, "must not be found"),
    ])
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    result.expect("crawl succeeds");
    let pdf = events
        .iter()
        .find_map(|e| match e {
            PageEvent::Fetched(p) if p.url.path() == "/brochure.pdf" => Some(p),
            _ => None,
        })
        .expect("the PDF is reported as fetched");
    assert_eq!(pdf.content_type.as_deref(), Some("application/pdf"));
    assert!(!pdf.is_html());
    assert!(pdf.body.starts_with(b"%PDF"));
    assert!(!site.requests().contains(&"/hidden".to_owned()));
}

#[tokio::test]
async fn missing_page_is_reported_as_failed_with_its_status() {
    let site = TestSite::pages(&[
        (
            "/",
            HTML,
            r#"<a href="/missing">gone</a> <a href="/ok">ok</a>"#,
        ),
        ("/ok", HTML, "fine"),
    ])
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    let failed: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            PageEvent::Failed { url, error } => Some((url.path().to_owned(), format!("{error:?}"))),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [("/missing".to_owned(), "Status(404)".to_owned())]);
    assert_eq!((summary.fetched, summary.failed), (2, 1));
}

#[tokio::test]
async fn redirect_to_a_page_already_queued_is_skipped_as_duplicate() {
    let site = TestSite::spawn(
        crate::helpers::pages_router(&[
            (
                "/",
                HTML,
                r#"<a href="/old">old</a> <a href="/new">new</a>"#,
            ),
            ("/new", HTML, "the page"),
        ])
        .route("/old", get(|| async { Redirect::permanent("/new") })),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    result.expect("crawl succeeds");
    assert_eq!(fetched(&events), strings(&[("/", 0), ("/new", 1)]));
    assert!(events.iter().any(|e| matches!(
        e,
        PageEvent::Skipped { url, reason: SkipReason::Duplicate } if url.path() == "/old"
    )));
    assert_eq!(
        site.requests().iter().filter(|p| *p == "/new").count(),
        1,
        "{:?}",
        site.requests()
    );
}

#[tokio::test]
async fn redirected_page_reports_its_final_url_and_resolves_links_against_it() {
    let site = TestSite::spawn(
        crate::helpers::pages_router(&[
            ("/", HTML, r#"<a href="/moved">moved</a>"#),
            ("/dir/final", HTML, r#"<a href="sibling">sibling</a>"#),
            ("/dir/sibling", HTML, "found via the final URL"),
        ])
        .route("/moved", get(|| async { Redirect::to("/dir/final") })),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    result.expect("crawl succeeds");
    let pages: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            PageEvent::Fetched(p) => Some((p.requested.path().to_owned(), p.url.path().to_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        pages,
        [
            ("/".to_owned(), "/".to_owned()),
            ("/moved".to_owned(), "/dir/final".to_owned()),
            ("/dir/sibling".to_owned(), "/dir/sibling".to_owned()),
        ]
    );
}

#[tokio::test]
async fn failures_stop_the_crawl_at_max_failures() {
    let links: String = (0..10)
        .map(|i| format!(r#"<a href="/gone{i}">x</a>"#))
        .collect();
    let site = TestSite::pages(&[("/", HTML, &links)]).await;
    let c = crawler(CrawlConfig {
        max_failures: 3,
        ..config(AddressPolicy::AllowPrivate)
    });

    let (result, _events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(summary.failed, 3);
    assert!(summary.limit_reached);
    assert!(!site.requests().contains(&"/gone3".to_owned()));
}

#[tokio::test]
async fn crawl_refuses_a_start_url_that_is_not_http() {
    let c = crawler(config(AddressPolicy::AllowPrivate));
    let url = Url::parse("ftp://127.0.0.1/file").expect("valid URL");

    let (result, events) = crawl_all(&c, &url).await;

    assert!(
        matches!(result, Err(CrawlError::InvalidUrl(_))),
        "{result:?}"
    );
    assert!(events.is_empty());
}

#[tokio::test]
async fn unreachable_site_fails_the_crawl() {
    // A port nobody listens on: bind, note it, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let c = crawler(config(AddressPolicy::AllowPrivate));
    let url = Url::parse(&format!("http://{addr}/")).expect("valid URL");

    let (result, _) = crawl_all(&c, &url).await;

    assert!(
        matches!(result, Err(CrawlError::Unreachable(FetchError::Connect(_)))),
        "{result:?}"
    );
}

#[tokio::test]
async fn crawl_future_is_send_and_runs_on_a_spawned_task() {
    let site = tree_site().await;
    let c = crawler(config(AddressPolicy::AllowPrivate));
    let start = site.url("/");

    let summary = tokio::spawn(async move { c.crawl(&start, |_| {}).await })
        .await
        .expect("task completes")
        .expect("crawl succeeds");

    assert_eq!(summary.fetched, 5);
}
