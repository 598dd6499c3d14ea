//! Website crawling for MT Desk: fetch the pages of a business's website so the knowledge crate can
//! turn them into answers.
//!
//! The crawler fetches; it never extracts text. What it guarantees:
//!
//! - **Politeness.** robots.txt of the site is read first (user-agent token `MTDeskBot`) and obeyed,
//!   including `Crawl-delay` (capped at 30 s). One request at a time, with a pause between requests to
//!   the same host.
//! - **Safety (SSRF).** A website URL typed by a customer must never make the server talk to its own
//!   network. With [`AddressPolicy::PublicOnly`] every connection goes through a resolver that refuses
//!   loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT and other non-public
//!   addresses *after* DNS resolution, and the address checked is the address connected to. IP-literal
//!   hosts, which never reach a resolver, are checked before each request. Redirects are followed by
//!   hand, and every hop is checked again. Proxies from the environment are ignored.
//! - **Bounded work.** Page count, depth, redirects, per-request time and body size are all capped; a
//!   body is streamed and abandoned as soon as it passes the size cap.
//!
//! Install a rustls crypto provider (`rustls::crypto::ring::default_provider().install_default()`)
//! before [`Crawler::new`]: the workspace builds reqwest without one.

mod address;
mod crawl;
mod fetch;
mod sitemap;
mod urls;

use std::fmt;
use std::time::Duration;

pub use address::{AddressPolicy, is_public_ip};
pub use fetch::Crawler;
pub use url::Url;
pub use urls::parse_source_url;

/// The user-agent token robots.txt rules are matched against.
pub const ROBOTS_AGENT: &str = "MTDeskBot";

/// Limits and identity of a crawl. `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct CrawlConfig {
    /// Stop after this many pages were fetched successfully (default 50).
    pub max_pages: usize,
    /// Follow links at most this many clicks away from the start page, which has depth 0 (default 2).
    /// Sitemap URLs count as depth 1.
    pub max_depth: u32,
    /// Minimum pause between two requests to the same host (default 500 ms). A larger robots.txt
    /// `Crawl-delay` wins, up to 30 s.
    pub per_host_delay: Duration,
    /// Time allowed to open a TCP (and TLS) connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for one request, from sending it to the last byte of the body (default 20 s).
    /// Each redirect hop gets its own budget.
    pub request_timeout: Duration,
    /// Largest body accepted, in bytes (default 5 MB). Larger pages fail with
    /// [`FetchError::TooLarge`] without being held in memory.
    pub max_page_bytes: usize,
    /// Redirect hops followed per page (default 5).
    pub max_redirects: usize,
    /// Stop the crawl after this many failed pages (default 50), so a broken site cannot keep the
    /// crawler busy for hours.
    pub max_failures: usize,
    /// Which addresses may be connected to (default [`AddressPolicy::PublicOnly`]).
    pub address_policy: AddressPolicy,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        Self {
            max_pages: 50,
            max_depth: 2,
            per_host_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            max_page_bytes: 5 * 1024 * 1024,
            max_redirects: 5,
            max_failures: 50,
            address_policy: AddressPolicy::PublicOnly,
            user_agent: "MTDeskBot/0.1 (+https://github.com/mtdesk/mtdesk)".to_owned(),
        }
    }
}

/// A successfully fetched response (2xx). The body is raw bytes: decoding and text extraction are the
/// caller's business.
#[derive(Clone)]
pub struct Page {
    /// The final URL, after redirects. Relative links in the page resolve against this.
    pub url: Url,
    /// The URL that was asked for.
    pub requested: Url,
    /// Clicks away from the start page (0 for the start page and for [`Crawler::fetch`]).
    pub depth: u32,
    /// The HTTP status of the final response (always 2xx).
    pub status: u16,
    /// The `Content-Type` header as sent, e.g. `text/html; charset=utf-8`.
    pub content_type: Option<String>,
    /// The body, at most [`CrawlConfig::max_page_bytes`] long.
    pub body: Vec<u8>,
}

impl Page {
    /// Whether the page is HTML (by `Content-Type`, or by sniffing when the header is missing).
    /// Only HTML pages are searched for links.
    pub fn is_html(&self) -> bool {
        urls::is_html(self.content_type.as_deref(), &self.body)
    }
}

// Manual so that a body never ends up in a log line through `{:?}`.
impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("url", &self.url.as_str())
            .field("requested", &self.requested.as_str())
            .field("depth", &self.depth)
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// What happened to one URL during a crawl, reported as it happens.
#[derive(Debug)]
pub enum PageEvent {
    /// The page was fetched (2xx). Non-HTML pages (PDF, plain text…) are reported too.
    Fetched(Page),
    /// The URL was deliberately not fetched, or its response was not used.
    Skipped {
        /// The URL as queued.
        url: Url,
        /// Why.
        reason: SkipReason,
    },
    /// Fetching failed.
    Failed {
        /// The URL as queued.
        url: Url,
        /// What went wrong, with an owner-readable `Display`.
        error: FetchError,
    },
}

/// Why a URL was not fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// robots.txt disallows it (or a redirect led to a disallowed page).
    Robots,
    /// It redirected to another website.
    OffSite,
    /// It redirected to a page that was already fetched or queued.
    Duplicate,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Robots => "the site's robots.txt asks bots not to read this page",
            Self::OffSite => "the page redirects to another website",
            Self::Duplicate => "the page redirects to a page that is already included",
        })
    }
}

/// Counts of a finished crawl.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlSummary {
    /// Pages reported as [`PageEvent::Fetched`].
    pub fetched: usize,
    /// URLs reported as [`PageEvent::Skipped`].
    pub skipped: usize,
    /// URLs reported as [`PageEvent::Failed`].
    pub failed: usize,
    /// Same-site URLs taken from sitemaps into the queue.
    pub sitemap_urls: usize,
    /// True when the crawl stopped at [`CrawlConfig::max_pages`] or [`CrawlConfig::max_failures`]
    /// with URLs still queued.
    pub limit_reached: bool,
}

/// Why one URL could not be fetched. `Display` is written for the website owner.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an http(s) URL with a host.
    #[error("{0}")]
    InvalidUrl(String),
    /// The host is (or resolves to) an address the [`AddressPolicy`] refuses.
    #[error("{host} is a private or local network address; only public websites can be crawled")]
    PrivateAddress {
        /// The host name or IP as written in the URL.
        host: String,
    },
    /// DNS lookup failed; holds the host name.
    #[error("the website {0} could not be found (DNS lookup failed)")]
    Dns(String),
    /// The TCP/TLS connection failed.
    #[error("could not connect to the website: {0}")]
    Connect(String),
    /// The connection or the response took longer than allowed.
    #[error("the website took too long to respond")]
    Timeout,
    /// The server answered with a non-2xx status (redirects are followed, not reported).
    #[error("the server answered with HTTP {0}{hint}", hint = status_hint(*.0))]
    Status(u16),
    /// The body is larger than [`CrawlConfig::max_page_bytes`].
    #[error("the page is larger than {}", human_size(*.limit))]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// More redirects than [`CrawlConfig::max_redirects`].
    #[error("the page redirected too many times")]
    TooManyRedirects,
    /// A redirect led back to a URL already visited.
    #[error("the page redirects in a loop")]
    RedirectLoop,
    /// A redirect's `Location` is missing, unparseable or not http(s).
    #[error("the page redirected to an address that can't be crawled: {0}")]
    BadRedirect(String),
    /// The connection broke while the body was downloading.
    #[error("the download broke off: {0}")]
    Read(String),
    /// Any other client-side failure (e.g. a TLS certificate problem).
    #[error("the request failed: {0}")]
    Request(String),
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (access denied)",
        404 | 410 => " (page not found)",
        429 => " (too many requests)",
        500..=599 => " (server error)",
        _ => "",
    }
}

fn human_size(bytes: usize) -> String {
    const KB: usize = 1024;
    const MB: usize = 1024 * 1024;
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else if bytes >= MB {
        // Display only; precision loss on huge values is irrelevant.
        #[allow(clippy::cast_precision_loss)]
        let mb = bytes as f64 / MB as f64;
        format!("{mb:.1} MB")
    } else if bytes >= KB {
        format!("{} KB", bytes / KB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a crawl could not run at all. Per-page problems are [`PageEvent`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The start URL (or a value given to [`parse_source_url`]) is not a crawlable web address.
    #[error("{0}")]
    InvalidUrl(String),
    /// robots.txt disallows the start page for `MTDeskBot`.
    #[error(
        "the site's robots.txt does not allow MTDeskBot to read this page; the site owner can allow \
         it by adding \"User-agent: MTDeskBot\" and \"Allow: /\" to robots.txt"
    )]
    RobotsDisallowed,
    /// robots.txt answered 5xx or 429, which per RFC 9309 means "crawl nothing for now".
    #[error(
        "the site's robots.txt could not be read ({0}), so the site can't be crawled right now; try again later"
    )]
    RobotsUnavailable(FetchError),
    /// The site could not be reached at all (robots.txt failed with DNS, connection, timeout or
    /// address-policy errors).
    #[error("the website could not be reached: {0}")]
    Unreachable(FetchError),
    /// [`CrawlConfig`] is unusable, or the HTTP client could not be built.
    #[error("crawler configuration error: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_message_names_the_limit_in_megabytes() {
        let e = FetchError::TooLarge {
            limit: 5 * 1024 * 1024,
        };
        assert_eq!(e.to_string(), "the page is larger than 5 MB");
        assert_eq!(human_size(1536 * 1024), "1.5 MB");
        assert_eq!(human_size(2048), "2 KB");
        assert_eq!(human_size(10), "10 bytes");
    }

    #[test]
    fn status_message_explains_common_codes() {
        assert_eq!(
            FetchError::Status(404).to_string(),
            "the server answered with HTTP 404 (page not found)"
        );
        assert_eq!(
            FetchError::Status(418).to_string(),
            "the server answered with HTTP 418"
        );
    }

    #[test]
    fn page_debug_does_not_print_the_body() {
        let url = Url::parse("https://example.com/").expect("static url");
        let page = Page {
            url: url.clone(),
            requested: url,
            depth: 0,
            status: 200,
            content_type: None,
            body: b"secret body text".to_vec(),
        };
        let dbg = format!("{page:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("body_bytes: 16"), "{dbg}");
    }
}
