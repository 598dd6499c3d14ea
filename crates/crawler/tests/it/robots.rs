//! robots.txt: disallowed pages, disallowed start, unavailable robots.txt, Crawl-delay.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use mtdesk_crawler::{AddressPolicy, CrawlError, FetchError, PageEvent, SkipReason};

use crate::helpers::{HTML, TestSite, config, crawl_all, crawler, fetched, pages_router};

const TEXT: &str = "text/plain";

#[tokio::test]
async fn disallowed_page_is_skipped_and_never_requested() {
    // The MTDeskBot group wins over `*`, which would forbid everything.
    let robots = "User-agent: *\nDisallow: /\n\nUser-agent: MTDeskBot\nDisallow: /private\n";
    let site = TestSite::pages(&[
        ("/robots.txt", TEXT, robots),
        (
            "/",
            HTML,
            r#"<a href="/private/x">private</a> <a href="/public">public</a>"#,
        ),
        ("/private/x", HTML, "secret"),
        ("/public", HTML, "hello"),
    ])
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(
        fetched(&events),
        [("/".to_owned(), 0), ("/public".to_owned(), 1)]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        PageEvent::Skipped { url, reason: SkipReason::Robots } if url.path() == "/private/x"
    )));
    assert_eq!(summary.skipped, 1);
    assert!(!site.requests().contains(&"/private/x".to_owned()));
}

#[tokio::test]
async fn disallowed_start_page_fails_the_crawl_before_fetching_it() {
    let site = TestSite::pages(&[
        ("/robots.txt", TEXT, "User-agent: *\nDisallow: /\n"),
        ("/", HTML, "home"),
    ])
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    assert!(
        matches!(result, Err(CrawlError::RobotsDisallowed)),
        "{result:?}"
    );
    assert!(events.is_empty());
    assert_eq!(site.requests(), ["/robots.txt"]);
}

#[tokio::test]
async fn robots_server_error_stops_the_crawl() {
    let site = TestSite::spawn(pages_router(&[("/", HTML, "home")]).route(
        "/robots.txt",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
    ))
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    match result {
        Err(e @ CrawlError::RobotsUnavailable(FetchError::Status(503))) => {
            assert!(e.to_string().contains("try again later"), "{e}");
        }
        other => panic!("expected RobotsUnavailable(503), got {other:?}"),
    }
    assert!(events.is_empty());
    assert_eq!(site.requests(), ["/robots.txt"]);
}

#[tokio::test]
async fn robots_not_found_allows_everything() {
    let site = TestSite::spawn(pages_router(&[("/", HTML, "home")]).route(
        "/robots.txt",
        get(|| async { (StatusCode::FORBIDDEN, "no") }),
    ))
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    assert_eq!(result.expect("crawl succeeds").fetched, 1);
    assert_eq!(fetched(&events), [("/".to_owned(), 0)]);
}

#[tokio::test]
async fn crawl_delay_spaces_every_request_to_the_site() {
    // per_host_delay is zero in the test config, so any spacing comes from Crawl-delay.
    let site = TestSite::pages(&[
        ("/robots.txt", TEXT, "User-agent: *\nCrawl-delay: 1\n"),
        ("/", HTML, r#"<a href="/a">a</a>"#),
        ("/a", HTML, "a"),
    ])
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let started = Instant::now();
    let (result, _) = crawl_all(&c, &site.url("/")).await;
    let elapsed = started.elapsed();

    result.expect("crawl succeeds");
    // Four requests (robots.txt, /, /sitemap.xml, /a): three gaps of at least one second.
    assert_eq!(site.requests(), ["/robots.txt", "/", "/sitemap.xml", "/a"]);
    assert!(elapsed >= Duration::from_secs(3), "took only {elapsed:?}");
}
