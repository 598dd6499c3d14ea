//! One URL, fetched safely: address checks, manual redirects, timeouts, a streamed body with a cap.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use tokio::time::Instant;
use url::{Host, Url};

use crate::address::{GuardedResolver, ResolveFailure};
use crate::urls::{is_web, normalize};
use crate::{CrawlConfig, CrawlError, FetchError, Page};

/// Fetches pages and crawls sites. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Crawler {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: reqwest::Client,
    pub(crate) cfg: CrawlConfig,
}

impl fmt::Debug for Crawler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crawler")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// What to do when a body passes its size cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Fail with [`FetchError::TooLarge`] (pages, sitemaps).
    Fail,
    /// Keep the first `limit` bytes (robots.txt, as Google does past 500 KiB).
    Truncate,
}

/// The outcome of one request: a final response, or a redirect to follow.
pub(crate) enum Hop {
    Final {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    Redirect(Url),
}

impl Crawler {
    /// Builds a crawler. Fails on a zero page/byte limit or when the HTTP client can't be built
    /// (e.g. no rustls crypto provider installed).
    pub fn new(cfg: CrawlConfig) -> Result<Self, CrawlError> {
        if cfg.max_pages == 0 {
            return Err(CrawlError::Config(
                "max_pages must be at least 1".to_owned(),
            ));
        }
        if cfg.max_page_bytes == 0 {
            return Err(CrawlError::Config(
                "max_page_bytes must be at least 1".to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            // Every hop is re-checked by us; reqwest must never follow one on its own.
            .redirect(reqwest::redirect::Policy::none())
            // An HTTP(S)_PROXY from the environment would connect on our behalf, past the resolver.
            .no_proxy()
            .connect_timeout(cfg.connect_timeout)
            .dns_resolver(GuardedResolver {
                policy: cfg.address_policy.clone(),
            })
            .build()
            .map_err(|e| CrawlError::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner { client, cfg }),
        })
    }

    /// The configuration this crawler runs with.
    pub fn config(&self) -> &CrawlConfig {
        &self.inner.cfg
    }

    /// Fetches one URL (any host the address policy allows; no robots.txt check — use
    /// [`Crawler::crawl`] for that). Redirects are followed by hand up to
    /// [`CrawlConfig::max_redirects`], every hop checked against the address policy. The body is
    /// streamed and abandoned past [`CrawlConfig::max_page_bytes`]. Non-2xx is
    /// [`FetchError::Status`].
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn fetch(&self, url: &Url) -> Result<Page, FetchError> {
        self.fetch_following(url, None, self.inner.cfg.max_page_bytes, Overflow::Fail)
            .await
    }

    /// Follows redirects without site rules; used by [`Crawler::fetch`] and for robots.txt.
    pub(crate) async fn fetch_following(
        &self,
        url: &Url,
        mut pacer: Option<&mut Pacer>,
        limit: usize,
        overflow: Overflow,
    ) -> Result<Page, FetchError> {
        let requested = normalize(url.clone());
        let mut redirects = Redirects::new(&requested, self.inner.cfg.max_redirects);
        let mut current = requested.clone();
        loop {
            if let Some(p) = pacer.as_deref_mut() {
                p.wait(&current).await;
            }
            match self.request_once(&current, limit, overflow).await? {
                Hop::Final {
                    status,
                    content_type,
                    body,
                } => {
                    return Ok(Page {
                        url: current,
                        requested,
                        depth: 0,
                        status,
                        content_type,
                        body,
                    });
                }
                Hop::Redirect(next) => current = redirects.follow(next)?,
            }
        }
    }

    /// One GET, without following redirects: checks the target, then sends and reads the body
    /// within `request_timeout`. A 2xx is read (up to `limit`), a redirect with a `Location` is
    /// returned resolved, anything else is [`FetchError::Status`] and the body is not read.
    pub(crate) async fn request_once(
        &self,
        url: &Url,
        limit: usize,
        overflow: Overflow,
    ) -> Result<Hop, FetchError> {
        self.check_target(url)?;
        let exchange = async {
            let resp = self
                .inner
                .client
                .get(url.clone())
                .header(
                    ACCEPT,
                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                )
                .send()
                .await
                .map_err(|e| map_reqwest_error(&e, url))?;
            let status = resp.status();
            tracing::debug!(url = %url, status = status.as_u16(), "response");
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
                && let Some(location) = resp.headers().get(LOCATION)
            {
                let location = location.to_str().map_err(|_| {
                    FetchError::BadRedirect("the Location header is not valid text".to_owned())
                })?;
                let next = url
                    .join(location.trim())
                    .map_err(|e| FetchError::BadRedirect(format!("{location} ({e})")))?;
                return Ok(Hop::Redirect(next));
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_body(resp, url, limit, overflow).await?;
            Ok(Hop::Final {
                status: status.as_u16(),
                content_type,
                body,
            })
        };
        tokio::time::timeout(self.inner.cfg.request_timeout, exchange)
            .await
            .map_err(|_| {
                tracing::debug!(url = %url, "request timed out");
                FetchError::Timeout
            })?
    }

    /// Scheme, host and — for IP literals, which reqwest connects to without asking the
    /// resolver — the address policy.
    fn check_target(&self, url: &Url) -> Result<(), FetchError> {
        if !is_web(url) {
            return Err(FetchError::InvalidUrl(format!(
                "{url} is not an http:// or https:// address"
            )));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            // The url crate turns numeric hosts into Host::Ipv4 for http(s); this catches any
            // form a std parser (as hyper's connector uses) would still read as an address.
            Some(Host::Domain(d)) => d.parse::<IpAddr>().ok(),
            None => None,
        };
        if let Some(ip) = ip {
            let port = url.port_or_known_default().unwrap_or(80);
            if !self
                .inner
                .cfg
                .address_policy
                .permits(SocketAddr::new(ip, port))
            {
                tracing::warn!(url = %url, "refused a non-public IP address");
                return Err(FetchError::PrivateAddress {
                    host: url.host_str().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Streams the body into memory, never holding more than `limit` bytes. A `Content-Length` over
/// the cap fails before any body byte is read.
async fn read_body(
    mut resp: reqwest::Response,
    url: &Url,
    limit: usize,
    overflow: Overflow,
) -> Result<Vec<u8>, FetchError> {
    let announced = resp.content_length();
    if overflow == Overflow::Fail
        && announced.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        tracing::info!(url = %url, announced, limit, "page too large (Content-Length)");
        return Err(FetchError::TooLarge { limit });
    }
    let initial = announced
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(limit)
        .min(1024 * 1024);
    let mut body = Vec::with_capacity(initial);
    while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest_error(&e, url))? {
        let room = limit - body.len();
        if chunk.len() > room {
            match overflow {
                Overflow::Fail => {
                    tracing::info!(url = %url, limit, "page too large (streamed)");
                    return Err(FetchError::TooLarge { limit });
                }
                Overflow::Truncate => {
                    body.extend_from_slice(&chunk[..room]);
                    break;
                }
            }
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns reqwest's error into one the owner can act on. Refusals and DNS failures come from
/// [`GuardedResolver`] and are found in the source chain.
fn map_reqwest_error(e: &reqwest::Error, url: &Url) -> FetchError {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    let mut innermost = None;
    while let Some(err) = source {
        if let Some(failure) = err.downcast_ref::<ResolveFailure>() {
            return match failure {
                ResolveFailure::Refused { host } => {
                    FetchError::PrivateAddress { host: host.clone() }
                }
                ResolveFailure::NotFound { host, .. } => FetchError::Dns(host.clone()),
            };
        }
        innermost = Some(err);
        source = err.source();
    }
    let detail = innermost.map_or_else(|| e.to_string(), ToString::to_string);
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_connect() {
        FetchError::Connect(format!("{}: {detail}", url.host_str().unwrap_or_default()))
    } else if e.is_body() || e.is_decode() {
        FetchError::Read(detail)
    } else {
        FetchError::Request(detail)
    }
}

/// Redirect bookkeeping for one fetch: hop count and loop detection.
pub(crate) struct Redirects {
    visited: HashSet<Url>,
    count: usize,
    max: usize,
}

impl Redirects {
    pub(crate) fn new(start: &Url, max: usize) -> Self {
        Self {
            visited: HashSet::from([normalize(start.clone())]),
            count: 0,
            max,
        }
    }

    /// Accepts the next hop or says why not.
    pub(crate) fn follow(&mut self, next: Url) -> Result<Url, FetchError> {
        let next = normalize(next);
        if !is_web(&next) {
            return Err(FetchError::BadRedirect(format!(
                "{next} is not an http:// or https:// address"
            )));
        }
        if self.visited.contains(&next) {
            return Err(FetchError::RedirectLoop);
        }
        if self.count >= self.max {
            return Err(FetchError::TooManyRedirects);
        }
        self.count += 1;
        self.visited.insert(next.clone());
        Ok(next)
    }
}

/// Spaces requests to the same host (host and port) by at least its delay.
#[derive(Debug)]
pub(crate) struct Pacer {
    default_delay: Duration,
    delays: HashMap<String, Duration>,
    last: HashMap<String, Instant>,
}

impl Pacer {
    pub(crate) fn new(default_delay: Duration) -> Self {
        Self {
            default_delay,
            delays: HashMap::new(),
            last: HashMap::new(),
        }
    }

    fn key(url: &Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        )
    }

    /// Sets the delay for `url`'s host (e.g. from robots.txt `Crawl-delay`).
    pub(crate) fn set_delay(&mut self, url: &Url, delay: Duration) {
        self.delays.insert(Self::key(url), delay);
    }

    /// Waits until a request to `url`'s host is due, then records it as made now.
    pub(crate) async fn wait(&mut self, url: &Url) {
        let key = Self::key(url);
        let delay = self.delays.get(&key).copied().unwrap_or(self.default_delay);
        if let Some(last) = self.last.get(&key) {
            tokio::time::sleep_until(*last + delay).await;
        }
        self.last.insert(key, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("static url")
    }

    #[test]
    fn redirects_detect_loops_and_count_hops() {
        let mut r = Redirects::new(&u("http://a.example/1"), 2);
        assert!(r.follow(u("http://a.example/2")).is_ok());
        assert!(matches!(
            r.follow(u("http://a.example/1#frag")),
            Err(FetchError::RedirectLoop)
        ));
        assert!(r.follow(u("http://a.example/3")).is_ok());
        assert!(matches!(
            r.follow(u("http://a.example/4")),
            Err(FetchError::TooManyRedirects)
        ));
        let mut r = Redirects::new(&u("http://a.example/1"), 5);
        assert!(matches!(
            r.follow(u("ftp://a.example/file")),
            Err(FetchError::BadRedirect(_))
        ));
    }

    #[tokio::test]
    async fn pacer_spaces_requests_per_host() {
        // Lower bounds only: a busy machine may be slower, never faster.
        let mut p = Pacer::new(Duration::from_millis(100));
        p.set_delay(&u("http://slow.example/"), Duration::from_millis(300));
        p.wait(&u("http://a.example/1")).await;
        let t0 = Instant::now();
        p.wait(&u("http://a.example/2")).await;
        assert!(t0.elapsed() >= Duration::from_millis(100));
        p.wait(&u("http://slow.example/")).await;
        let t1 = Instant::now();
        p.wait(&u("http://slow.example:80/2")).await;
        assert!(t1.elapsed() >= Duration::from_millis(300));
        // Another host was never waited for; its entry starts now.
        assert!(!p.last.contains_key("b.example:80"));
        p.wait(&u("http://b.example/")).await;
        assert!(p.last.contains_key("b.example:80"));
    }
}
