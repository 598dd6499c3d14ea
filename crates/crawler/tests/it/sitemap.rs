//! Sitemaps seed the queue: declared in robots.txt (incl. an index), or /sitemap.xml.

use mtdesk_crawler::AddressPolicy;

use crate::helpers::{HTML, TestSite, config, crawl_all, crawler, fetched, pages_router};

const XML: &str = "application/xml";
const TEXT: &str = "text/plain";

fn urlset(locs: &[String]) -> String {
    let urls: String = locs
        .iter()
        .map(|l| format!("<url><loc>{l}</loc></url>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>"#
    )
}

fn index(locs: &[String]) -> String {
    let maps: String = locs
        .iter()
        .map(|l| format!("<sitemap><loc>{l}</loc></sitemap>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>"#
    )
}

#[tokio::test]
async fn sitemap_index_from_robots_seeds_pages_at_depth_one_before_links() {
    let other = TestSite::pages(&[("/off.xml", XML, "<urlset></urlset>")]).await;
    let off = format!("http://{}", other.addr);
    let site = TestSite::spawn_with(|b| {
        let robots = format!("User-agent: *\nAllow: /\nSitemap: {b}/sitemap_index.xml\n");
        let idx = index(&[
            format!("{b}/sm1.xml"),
            format!("{b}/sm2.xml"),
            format!("{off}/off.xml"),
        ]);
        let sm1 = urlset(&[format!("{b}/s1"), format!("{b}/s2"), format!("{b}/")]);
        let sm2 = urlset(&[
            format!("{b}/s3"),
            format!("{off}/page"),
            "http://192.0.2.1/elsewhere".to_owned(),
            format!("{b}/nested.xml"),
        ]);
        pages_router(&[
            ("/robots.txt", TEXT, &robots),
            ("/sitemap_index.xml", XML, &idx),
            ("/sm1.xml", XML, &sm1),
            ("/sm2.xml", XML, &sm2),
            (
                "/",
                HTML,
                r#"<a href="/linked">linked</a> <a href="/s1">also in sitemap</a>"#,
            ),
            ("/s1", HTML, "s1"),
            ("/s2", HTML, "s2"),
            ("/s3", HTML, "s3"),
            ("/nested.xml", XML, &index(&[format!("{b}/never.xml")])),
            ("/linked", HTML, "linked"),
        ])
    })
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(
        fetched(&events),
        [
            ("/".to_owned(), 0),
            ("/s1".to_owned(), 1),
            ("/s2".to_owned(), 1),
            ("/s3".to_owned(), 1),
            ("/nested.xml".to_owned(), 1),
            ("/linked".to_owned(), 1),
        ]
    );
    // s1, s2, s3 and nested.xml (a page URL as far as sm2 is concerned); "/" was already seen.
    assert_eq!(summary.sitemap_urls, 4);
    let requests = site.requests();
    assert_eq!(
        requests[..5],
        [
            "/robots.txt",
            "/",
            "/sitemap_index.xml",
            "/sm1.xml",
            "/sm2.xml"
        ]
    );
    assert!(
        !requests.contains(&"/sitemap.xml".to_owned()),
        "{requests:?}"
    );
    assert!(!requests.contains(&"/never.xml".to_owned()), "{requests:?}");
    assert!(other.requests().is_empty(), "{:?}", other.requests());
}

#[tokio::test]
async fn sitemap_xml_is_read_when_robots_declares_none() {
    let site = TestSite::spawn_with(|b| {
        pages_router(&[
            ("/", HTML, "no links at all"),
            (
                "/sitemap.xml",
                XML,
                &urlset(&[format!("{b}/only-in-sitemap")]),
            ),
            ("/only-in-sitemap", HTML, "found"),
        ])
    })
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let (result, events) = crawl_all(&c, &site.url("/")).await;

    let summary = result.expect("crawl succeeds");
    assert_eq!(
        fetched(&events),
        [("/".to_owned(), 0), ("/only-in-sitemap".to_owned(), 1)]
    );
    assert_eq!(summary.sitemap_urls, 1);
}
