//! SSRF: non-public addresses are refused as IP literals, after DNS, and on every redirect hop.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use mtdesk_crawler::{AddressPolicy, CrawlError, FetchError, Url};

use crate::helpers::{HTML, TestSite, config, crawl_all, crawler, pages_router};

fn url(s: &str) -> Url {
    Url::parse(s).expect("valid test URL")
}

fn assert_private(result: Result<mtdesk_crawler::Page, FetchError>, host: &str) {
    match result {
        Err(e @ FetchError::PrivateAddress { .. }) => {
            let FetchError::PrivateAddress { host: got } = &e else {
                unreachable!()
            };
            assert_eq!(got, host);
            assert!(e.to_string().contains("only public websites"), "{e}");
        }
        other => panic!("expected PrivateAddress for {host}, got {other:?}"),
    }
}

#[tokio::test]
async fn public_only_refuses_loopback_metadata_and_localhost_without_connecting() {
    let site = TestSite::pages(&[("/", HTML, "internal admin page")]).await;
    let port = site.addr.port();
    let c = crawler(config(AddressPolicy::PublicOnly));

    assert_private(
        c.fetch(&url(&format!("http://127.0.0.1:{port}/"))).await,
        "127.0.0.1",
    );
    // Numeric IPv4 spellings are normalised by the URL parser, then refused.
    assert_private(
        c.fetch(&url(&format!("http://2130706433:{port}/"))).await,
        "127.0.0.1",
    );
    assert_private(
        c.fetch(&url(&format!("http://0x7f.1:{port}/"))).await,
        "127.0.0.1",
    );
    assert_private(
        c.fetch(&url(&format!("http://[::1]:{port}/"))).await,
        "[::1]",
    );
    assert_private(
        c.fetch(&url(&format!("http://[::ffff:127.0.0.1]:{port}/")))
            .await,
        "[::ffff:7f00:1]",
    );
    assert_private(
        c.fetch(&url("http://169.254.169.254/latest/meta-data/"))
            .await,
        "169.254.169.254",
    );
    assert_private(c.fetch(&url("http://0.0.0.0/")).await, "0.0.0.0");
    // A name: refused by the resolver after lookup.
    assert_private(
        c.fetch(&url(&format!("http://localhost:{port}/"))).await,
        "localhost",
    );

    assert!(site.requests().is_empty(), "{:?}", site.requests());
}

#[tokio::test]
async fn public_only_crawl_of_a_loopback_site_is_unreachable() {
    let site = TestSite::pages(&[("/", HTML, "internal")]).await;
    let c = crawler(config(AddressPolicy::PublicOnly));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    assert!(
        matches!(
            result,
            Err(CrawlError::Unreachable(FetchError::PrivateAddress { .. }))
        ),
        "{result:?}"
    );
    assert!(events.is_empty());
    assert!(site.requests().is_empty());
}

/// A site allowed by AddressPolicy::AllowOnly whose `/go` redirects to `target`.
async fn redirecting_site(target: String) -> (TestSite, mtdesk_crawler::Crawler) {
    let site = TestSite::spawn(
        pages_router(&[("/here", HTML, "same server, allowed")]).route(
            "/go",
            get(move || {
                let target = target.clone();
                async move { Redirect::temporary(&target) }
            }),
        ),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowOnly(vec![site.addr])));
    (site, c)
}

#[tokio::test]
async fn allow_only_permits_the_listed_address_and_its_redirects() {
    let (site, c) = redirecting_site("/here".to_owned()).await;

    let page = c.fetch(&site.url("/go")).await.expect("allowed address");

    assert_eq!(page.url.path(), "/here");
}

#[tokio::test]
async fn redirect_to_cloud_metadata_is_refused() {
    let (site, c) =
        redirecting_site("http://169.254.169.254/latest/meta-data/iam/".to_owned()).await;

    assert_private(c.fetch(&site.url("/go")).await, "169.254.169.254");
    assert_eq!(site.requests(), ["/go"]);
}

#[tokio::test]
async fn redirect_to_localhost_on_another_port_is_refused() {
    let internal = TestSite::spawn(Router::new().route("/", get(|| async { "internal" }))).await;
    let (site, c) = redirecting_site(format!("http://localhost:{}/", internal.addr.port())).await;

    assert_private(c.fetch(&site.url("/go")).await, "localhost");
    assert!(internal.requests().is_empty(), "{:?}", internal.requests());
}

#[tokio::test]
async fn redirect_to_an_unlisted_loopback_port_is_refused() {
    let internal = TestSite::spawn(Router::new().route("/", get(|| async { "internal" }))).await;
    let (site, c) = redirecting_site(format!("http://{}/", internal.addr)).await;

    assert_private(c.fetch(&site.url("/go")).await, "127.0.0.1");
    assert!(internal.requests().is_empty(), "{:?}", internal.requests());
}

#[tokio::test]
async fn robots_txt_redirect_to_cloud_metadata_makes_the_site_unreachable() {
    let site = TestSite::spawn(pages_router(&[("/", HTML, "home")]).route(
        "/robots.txt",
        get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
    ))
    .await;
    let c = crawler(config(AddressPolicy::AllowOnly(vec![site.addr])));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    assert!(
        matches!(
            &result,
            Err(CrawlError::Unreachable(FetchError::PrivateAddress { host })) if host == "169.254.169.254"
        ),
        "{result:?}"
    );
    assert!(events.is_empty());
    assert_eq!(site.requests(), ["/robots.txt"]);
}
