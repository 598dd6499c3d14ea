//! URL rules: what a source URL may be, how URLs are normalised for de-duplication, which links a
//! page offers.

use scraper::{Html, Selector};
use url::{Origin, Url};

use crate::CrawlError;

/// Longest source URL accepted; longer ones are almost always pasted tracking junk.
const MAX_URL_LEN: usize = 2048;

/// Parses a website address typed by an owner into the URL to crawl.
///
/// Trims whitespace; accepts `http://` and `https://` only (a bare `example.com` gets `https://`);
/// requires a host; refuses `user:password@`; at most 2048 characters. The fragment is dropped.
/// Errors are [`CrawlError::InvalidUrl`] with a message meant for the owner.
pub fn parse_source_url(raw: &str) -> Result<Url, CrawlError> {
    let invalid = |msg: String| Err(CrawlError::InvalidUrl(msg));
    let s = raw.trim();
    if s.is_empty() {
        return invalid("enter the address of your website, e.g. https://example.com".to_owned());
    }
    if s.len() > MAX_URL_LEN {
        return invalid(format!(
            "the address is longer than {MAX_URL_LEN} characters"
        ));
    }
    if s.chars().any(char::is_whitespace) {
        return invalid("a web address can't contain spaces".to_owned());
    }
    let not_a_web_address = || {
        CrawlError::InvalidUrl(format!(
            "\"{}\" is not a valid web address; it should look like https://example.com",
            shorten(s)
        ))
    };
    let wrong_scheme = |scheme: &str| {
        CrawlError::InvalidUrl(format!(
            "only http:// and https:// addresses can be crawled, not {scheme}:"
        ))
    };

    let (url, scheme_given) = match Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => (u, true),
        // `example.com:8080/x` parses with scheme "example.com"; `mailto:x@y` is a real scheme.
        Ok(u) if !s.contains("://") && looks_like_host_and_port(s, u.scheme()) => (
            Url::parse(&format!("https://{s}")).map_err(|_| not_a_web_address())?,
            false,
        ),
        Ok(u) => return Err(wrong_scheme(u.scheme())),
        Err(url::ParseError::RelativeUrlWithoutBase) => (
            Url::parse(&format!("https://{s}")).map_err(|_| not_a_web_address())?,
            false,
        ),
        Err(_) => return Err(not_a_web_address()),
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(not_a_web_address());
    };
    // Without a scheme, "garbage" would be the host `garbage`: demand something domain-like.
    let ip_literal = !matches!(url.host(), Some(url::Host::Domain(_)));
    if !scheme_given && !ip_literal && !host.contains('.') {
        return Err(not_a_web_address());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return invalid(
            "addresses with a user name or password can't be crawled; remove the part before @"
                .to_owned(),
        );
    }
    Ok(normalize(url))
}

/// `example.com:8080` or `localhost:3000` parsed as scheme + path.
fn looks_like_host_and_port(s: &str, scheme: &str) -> bool {
    let rest = &s[scheme.len() + 1..];
    scheme.contains('.') || rest.starts_with(|c: char| c.is_ascii_digit())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut short: String = s.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// The form URLs are de-duplicated in: no fragment, no empty `?`. (The `url` crate already
/// lower-cases scheme and host, drops default ports and normalises `.`/`..` segments.)
pub(crate) fn normalize(mut url: Url) -> Url {
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// Whether `url` is something the crawler can request at all.
pub(crate) fn is_web(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host().is_some()
}

/// `http://example.com` and `https://www.example.com` are the same website published under two
/// origins; a start URL that redirects between them moves the crawl, anything else does not.
pub(crate) fn is_same_site_variant(a: &Origin, b: &Origin) -> bool {
    let (Origin::Tuple(scheme_a, host_a, port_a), Origin::Tuple(scheme_b, host_b, port_b)) = (a, b)
    else {
        return false;
    };
    let default_port = |scheme: &str, port: u16| {
        (scheme == "http" && port == 80) || (scheme == "https" && port == 443)
    };
    if !default_port(scheme_a, *port_a) || !default_port(scheme_b, *port_b) {
        return false;
    }
    let (host_a, host_b) = (host_a.to_string(), host_b.to_string());
    let bare = |h: &str| h.strip_prefix("www.").unwrap_or(h).to_owned();
    bare(&host_a) == bare(&host_b)
}

/// HTML by `Content-Type`; without the header, by a sniff of the first bytes.
pub(crate) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(ct) => {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "text/html" || essence == "application/xhtml+xml"
        }
        None => {
            let head = &body[..body.len().min(512)];
            let head = String::from_utf8_lossy(head)
                .trim_start()
                .to_ascii_lowercase();
            head.starts_with("<!doctype html") || head.starts_with("<html")
        }
    }
}

/// Links a page offers to follow: `a[href]`/`area[href]` resolved against `<base href>` or the
/// page URL, http(s) only, normalised, in document order, without duplicates. Empty when the page
/// says `<meta name="robots" content="nofollow">` (or `none`).
pub(crate) fn extract_links(html: &[u8], page_url: &Url) -> Vec<Url> {
    let text = String::from_utf8_lossy(html);
    let doc = Html::parse_document(&text);
    let selector = |css: &str| Selector::parse(css).expect("static CSS selector is valid");

    let nofollow = doc.select(&selector("meta[name][content]")).any(|m| {
        let el = m.value();
        let robots = el.attr("name").is_some_and(|n| {
            n.eq_ignore_ascii_case("robots") || n.eq_ignore_ascii_case("mtdeskbot")
        });
        let content = el.attr("content").unwrap_or("").to_ascii_lowercase();
        robots
            && content
                .split(',')
                .any(|d| matches!(d.trim(), "nofollow" | "none"))
    });
    if nofollow {
        return Vec::new();
    }

    let base = doc
        .select(&selector("base[href]"))
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .filter(is_web)
        .unwrap_or_else(|| page_url.clone());

    let mut seen = std::collections::HashSet::new();
    let mut links = Vec::new();
    for a in doc.select(&selector("a[href], area[href]")) {
        let Some(href) = a.value().attr("href").map(str::trim) else {
            continue;
        };
        if href.is_empty() || href.starts_with('#') {
            continue;
        }
        let Ok(url) = base.join(href) else {
            continue;
        };
        if !is_web(&url) {
            continue; // mailto:, javascript:, tel:, data:, ftp:…
        }
        let url = normalize(url);
        if seen.insert(url.clone()) {
            links.push(url);
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls_that_are_accepted() {
        let cases = [
            ("https://example.com", "https://example.com/"),
            ("  http://example.com/about  ", "http://example.com/about"),
            ("example.com", "https://example.com/"),
            (
                "www.example.com/shop?x=1#top",
                "https://www.example.com/shop?x=1",
            ),
            ("example.com:8080/x", "https://example.com:8080/x"),
            ("HTTPS://EXAMPLE.COM:443/", "https://example.com/"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ];
        for (raw, want) in cases {
            let got = parse_source_url(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(got.as_str(), want, "{raw}");
        }
    }

    #[test]
    fn source_urls_that_are_refused_with_a_clear_message() {
        let long = format!("https://example.com/{}", "a".repeat(2100));
        let cases: [(&str, &str); 13] = [
            ("", "enter the address"),
            ("   ", "enter the address"),
            ("ftp://example.com/file", "only http:// and https://"),
            ("file:///etc/passwd", "only http:// and https://"),
            ("mailto:owner@example.com", "only http:// and https://"),
            ("javascript:alert(1)", "only http:// and https://"),
            ("https://", "not a valid web address"),
            ("http://", "not a valid web address"),
            ("https://user:pass@example.com/", "user name or password"),
            ("https://user@example.com/", "user name or password"),
            ("garbage", "not a valid web address"),
            ("not a url", "can't contain spaces"),
            (&long, "longer than 2048"),
        ];
        for (raw, want) in cases {
            match parse_source_url(raw) {
                Err(CrawlError::InvalidUrl(msg)) => {
                    assert!(
                        msg.contains(want),
                        "{raw:?}: message {msg:?} lacks {want:?}"
                    );
                }
                other => panic!("{raw:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn links_resolve_against_base_href_and_skip_non_web_schemes() {
        let page = Url::parse("https://example.com/dir/page.html").expect("static url");
        let html = br##"<html><head><base href="/sub/"></head><body>
            <a href="one">relative to base</a>
            <a href="/abs#section">absolute path with fragment</a>
            <a href="/abs#other">same page, other fragment</a>
            <a href="#top">same-page anchor</a>
            <a href="mailto:a@example.com">mail</a>
            <a href="javascript:void(0)">js</a>
            <a href="tel:+123">phone</a>
            <a href="https://other.example/x">off site (filtered by the crawler, not here)</a>
            <a href="  /spaced?q=1  ">spaced</a>
            <a href="/empty-query?">empty query</a>
            <a>no href</a>
        </body></html>"##;
        let links: Vec<String> = extract_links(html, &page)
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            links,
            [
                "https://example.com/sub/one",
                "https://example.com/abs",
                "https://other.example/x",
                "https://example.com/spaced?q=1",
                "https://example.com/empty-query",
            ]
        );
    }

    #[test]
    fn links_resolve_against_the_page_url_without_base() {
        let page = Url::parse("https://example.com/dir/page.html").expect("static url");
        let links = extract_links(br#"<a href="next.html">n</a><a href="../up">u</a>"#, &page);
        let links: Vec<&str> = links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "https://example.com/dir/next.html",
                "https://example.com/up"
            ]
        );
    }

    #[test]
    fn meta_robots_nofollow_yields_no_links() {
        let page = Url::parse("https://example.com/").expect("static url");
        let html = br#"<meta name="robots" content="noindex, nofollow"><a href="/x">x</a>"#;
        assert!(extract_links(html, &page).is_empty());
    }

    #[test]
    fn html_detection() {
        assert!(is_html(Some("text/html; charset=utf-8"), b""));
        assert!(is_html(Some("Application/XHTML+XML"), b""));
        assert!(!is_html(Some("application/pdf"), b"<html>"));
        assert!(is_html(None, b"  <!DOCTYPE html><html>"));
        assert!(!is_html(None, b"%PDF-1.7"));
    }

    #[test]
    fn same_site_variants_are_www_and_scheme_changes_only() {
        let o = |s: &str| Url::parse(s).expect("static url").origin();
        assert!(is_same_site_variant(
            &o("http://example.com/"),
            &o("https://www.example.com/")
        ));
        assert!(is_same_site_variant(
            &o("https://www.example.com/"),
            &o("https://example.com/")
        ));
        assert!(!is_same_site_variant(
            &o("https://example.com/"),
            &o("https://shop.example.com/")
        ));
        assert!(!is_same_site_variant(
            &o("https://example.com/"),
            &o("https://example.com:8443/")
        ));
        assert!(!is_same_site_variant(
            &o("https://example.com/"),
            &o("https://evil.com/")
        ));
    }
}
