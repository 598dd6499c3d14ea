//! Breadth-first crawl of one website: robots.txt, sitemaps, same-site links.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use texting_robots::Robot;
use url::{Origin, Url};

use crate::fetch::{Hop, Overflow, Pacer, Redirects};
use crate::sitemap::{self, Sitemap};
use crate::urls::{extract_links, is_same_site_variant, is_web, normalize, parse_source_url};
use crate::{
    CrawlError, CrawlSummary, Crawler, FetchError, Page, PageEvent, ROBOTS_AGENT, SkipReason,
};

/// robots.txt beyond this is ignored, as Google does (RFC 9309 asks crawlers to read ≥ 500 KiB).
const ROBOTS_MAX_BYTES: usize = 512 * 1024;
/// A larger `Crawl-delay` is capped: a site asking for an hour between pages would never finish.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(30);
/// Sitemap files read per crawl (declared ones + index children). Bounds requests on sites with
/// hundreds of sitemap files.
const MAX_SITEMAP_FILES: usize = 10;
/// `<loc>` entries read per sitemap file: the protocol's own per-file maximum.
const MAX_LOCS_PER_FILE: usize = 50_000;

/// The rules robots.txt sets for `MTDeskBot` on one origin. `None` allows everything.
struct Robots {
    rules: Option<Robot>,
}

impl Robots {
    fn allows(&self, url: &Url) -> bool {
        self.rules.as_ref().is_none_or(|r| r.allowed(url.as_str()))
    }
}

/// State of one crawl.
struct Run {
    pacer: Pacer,
    /// Origins that count as this website: the start URL's, plus the one it redirects to when that
    /// is only a www/https variant.
    site: Vec<Origin>,
    robots: HashMap<Origin, Robots>,
    /// Normalised URLs already queued, fetched or passed through as redirect hops.
    seen: HashSet<Url>,
    summary: CrawlSummary,
}

impl Run {
    fn in_site(&self, url: &Url) -> bool {
        self.site.contains(&url.origin())
    }

    /// Unknown origins are refused: robots.txt is loaded for every site origin before use.
    fn allows(&self, url: &Url) -> bool {
        self.robots
            .get(&url.origin())
            .is_some_and(|r| r.allows(url))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The start page: may move the crawl to a www/https variant of its origin.
    Start,
    /// A page found by a link or sitemap.
    Page,
    /// A sitemap file: same-site hops only, robots.txt does not apply (it declared them).
    Sitemap,
}

/// Why a URL produced no page.
enum Miss {
    Failed(FetchError),
    Skipped(SkipReason),
}

impl Crawler {
    /// Crawls the website at `start`, breadth first, and reports every page outcome to `on_event`
    /// as it happens.
    ///
    /// Order of work: robots.txt (a 5xx or 429 stops the crawl with
    /// [`CrawlError::RobotsUnavailable`], no answer at all with [`CrawlError::Unreachable`], a 4xx
    /// allows everything), the start page (depth 0; [`CrawlError::RobotsDisallowed`] if robots.txt
    /// forbids it), then the sitemaps (`Sitemap:` lines, else `/sitemap.xml`; one index level),
    /// whose same-site URLs are queued at depth 1 ahead of the start page's links, then links,
    /// level by level, up to [`crate::CrawlConfig::max_depth`]. Only same-site URLs (scheme, host
    /// and port of the start URL) are followed. Stops after
    /// [`crate::CrawlConfig::max_pages`] fetched pages.
    #[tracing::instrument(skip_all, fields(start = %start))]
    pub async fn crawl(
        &self,
        start: &Url,
        mut on_event: impl FnMut(PageEvent) + Send,
    ) -> Result<CrawlSummary, CrawlError> {
        let cfg = &self.inner.cfg;
        let start = parse_source_url(start.as_str())?;
        let mut run = Run {
            pacer: Pacer::new(cfg.per_host_delay),
            site: vec![start.origin()],
            robots: HashMap::new(),
            seen: HashSet::from([start.clone()]),
            summary: CrawlSummary::default(),
        };
        self.load_robots(&mut run, &start).await?;
        if !run.allows(&start) {
            tracing::info!("robots.txt disallows the start page");
            return Err(CrawlError::RobotsDisallowed);
        }

        let start_links = match self.fetch_in_site(&mut run, &start, 0, Kind::Start).await? {
            Ok(page) => report_page(&mut run, page, &mut on_event),
            Err(Miss::Skipped(SkipReason::Robots)) => return Err(CrawlError::RobotsDisallowed),
            Err(miss) => {
                report_miss(&mut run, start.clone(), miss, &mut on_event);
                Vec::new()
            }
        };

        let mut queue = VecDeque::new();
        if cfg.max_depth >= 1 {
            for url in self.load_sitemaps(&mut run).await {
                if run.seen.insert(url.clone()) {
                    queue.push_back((url, 1));
                    run.summary.sitemap_urls += 1;
                }
            }
            for url in start_links {
                if run.seen.insert(url.clone()) {
                    queue.push_back((url, 1));
                }
            }
        }

        while let Some((url, depth)) = queue.pop_front() {
            if run.summary.fetched >= cfg.max_pages || run.summary.failed >= cfg.max_failures {
                tracing::info!(
                    fetched = run.summary.fetched,
                    failed = run.summary.failed,
                    queued = queue.len() + 1,
                    "crawl limit reached"
                );
                run.summary.limit_reached = true;
                break;
            }
            if !run.allows(&url) {
                report_miss(
                    &mut run,
                    url,
                    Miss::Skipped(SkipReason::Robots),
                    &mut on_event,
                );
                continue;
            }
            match self
                .fetch_in_site(&mut run, &url, depth, Kind::Page)
                .await?
            {
                Ok(page) => {
                    let links = report_page(&mut run, page, &mut on_event);
                    if depth < cfg.max_depth {
                        for link in links {
                            if run.seen.insert(link.clone()) {
                                queue.push_back((link, depth + 1));
                            }
                        }
                    }
                }
                Err(miss) => report_miss(&mut run, url, miss, &mut on_event),
            }
        }
        tracing::info!(summary = ?run.summary, "crawl finished");
        Ok(run.summary)
    }

    /// Fetches robots.txt for `url`'s origin and records its rules and `Crawl-delay`.
    async fn load_robots(&self, run: &mut Run, url: &Url) -> Result<(), CrawlError> {
        let robots_url = url
            .join("/robots.txt")
            .map_err(|e| CrawlError::InvalidUrl(format!("{url}: {e}")))?;
        let fetched = self
            .fetch_following(
                &robots_url,
                Some(&mut run.pacer),
                ROBOTS_MAX_BYTES,
                Overflow::Truncate,
            )
            .await;
        let robots = match fetched {
            Ok(page) => match Robot::new(ROBOTS_AGENT, &page.body) {
                Ok(robot) => Robots { rules: Some(robot) },
                Err(e) => {
                    tracing::warn!(url = %robots_url, error = %e, "unparseable robots.txt; allowing all");
                    Robots { rules: None }
                }
            },
            // RFC 9309 §2.3.1.4: server errors mean "assume complete disallow". 429 is treated
            // the same, as Google does: the site asked us to back off.
            Err(e @ FetchError::Status(429 | 500..=599)) => {
                tracing::info!(url = %robots_url, error = %e, "robots.txt unavailable");
                return Err(CrawlError::RobotsUnavailable(e));
            }
            // §2.3.1.3: 4xx ("unavailable") allows everything; §2.3.1.2: so may too many redirects.
            Err(
                e @ (FetchError::Status(_)
                | FetchError::TooManyRedirects
                | FetchError::RedirectLoop
                | FetchError::BadRedirect(_)),
            ) => {
                tracing::debug!(url = %robots_url, error = %e, "no robots.txt; allowing all");
                Robots { rules: None }
            }
            Err(e) => {
                tracing::info!(url = %robots_url, error = %e, "site unreachable");
                return Err(CrawlError::Unreachable(e));
            }
        };
        let crawl_delay = robots
            .rules
            .as_ref()
            .and_then(|r| r.delay)
            .and_then(|secs| Duration::try_from_secs_f32(secs).ok())
            .map(|d| d.min(MAX_CRAWL_DELAY));
        if let Some(delay) = crawl_delay
            && delay > self.inner.cfg.per_host_delay
        {
            tracing::info!(?delay, "obeying robots.txt Crawl-delay");
            run.pacer.set_delay(url, delay);
        }
        run.robots.insert(url.origin(), robots);
        Ok(())
    }

    /// Fetches a same-site URL, checking every redirect hop against the site, robots.txt and the
    /// URLs already seen. The outer error is a crawl-stopping failure (only possible for
    /// [`Kind::Start`], whose hops may load a second robots.txt).
    async fn fetch_in_site(
        &self,
        run: &mut Run,
        url: &Url,
        depth: u32,
        kind: Kind,
    ) -> Result<Result<Page, Miss>, CrawlError> {
        let cfg = &self.inner.cfg;
        let mut redirects = Redirects::new(url, cfg.max_redirects);
        let mut current = url.clone();
        loop {
            run.pacer.wait(&current).await;
            let hop = match self
                .request_once(&current, cfg.max_page_bytes, Overflow::Fail)
                .await
            {
                Ok(hop) => hop,
                Err(e) => return Ok(Err(Miss::Failed(e))),
            };
            match hop {
                Hop::Final {
                    status,
                    content_type,
                    body,
                } => {
                    return Ok(Ok(Page {
                        url: current,
                        requested: url.clone(),
                        depth,
                        status,
                        content_type,
                        body,
                    }));
                }
                Hop::Redirect(next) => {
                    let next = match redirects.follow(next) {
                        Ok(next) => next,
                        Err(e) => return Ok(Err(Miss::Failed(e))),
                    };
                    tracing::debug!(from = %current, to = %next, "redirect");
                    if let Some(reason) = self.admit_hop(run, &next, kind).await? {
                        tracing::debug!(to = %next, ?reason, "redirect not followed");
                        return Ok(Err(Miss::Skipped(reason)));
                    }
                    current = next;
                }
            }
        }
    }

    /// Whether a redirect hop may be requested; `Some(reason)` when not.
    async fn admit_hop(
        &self,
        run: &mut Run,
        next: &Url,
        kind: Kind,
    ) -> Result<Option<SkipReason>, CrawlError> {
        if !run.in_site(next) {
            let moved = kind == Kind::Start && is_same_site_variant(&run.site[0], &next.origin());
            if !moved {
                return Ok(Some(SkipReason::OffSite));
            }
            tracing::info!(origin = %next.origin().ascii_serialization(), "start page moved to a www/https variant; crawling it");
            run.site.push(next.origin());
            self.load_robots(run, next).await?;
        }
        if kind == Kind::Sitemap {
            return Ok(None);
        }
        if !run.allows(next) {
            return Ok(Some(SkipReason::Robots));
        }
        if !run.seen.insert(next.clone()) {
            return Ok(Some(SkipReason::Duplicate));
        }
        Ok(None)
    }

    /// Same-site page URLs from the site's sitemaps, at most 2 × `max_pages` of them.
    async fn load_sitemaps(&self, run: &mut Run) -> Vec<Url> {
        let max_urls = self.inner.cfg.max_pages.saturating_mul(2);
        let mut files: VecDeque<(Url, bool)> = VecDeque::new();
        for origin in &run.site {
            let declared = run
                .robots
                .get(origin)
                .and_then(|r| r.rules.as_ref())
                .map(|r| r.sitemaps.clone())
                .unwrap_or_default();
            for raw in declared {
                match Url::parse(raw.trim()) {
                    Ok(u) if is_web(&u) && run.in_site(&u) => {
                        files.push_back((normalize(u), false))
                    }
                    _ => {
                        tracing::debug!(sitemap = %raw, "declared sitemap is not on this site; ignored")
                    }
                }
            }
        }
        if files.is_empty() {
            // The origin the start page settled on (the last one adopted).
            let fallback = run
                .site
                .last()
                .and_then(|o| Url::parse(&o.ascii_serialization()).ok())
                .and_then(|base| base.join("/sitemap.xml").ok());
            if let Some(url) = fallback.filter(|u| run.allows(u)) {
                files.push_back((url, false));
            }
        }

        let mut urls = Vec::new();
        let mut read = HashSet::new();
        while let Some((file, from_index)) = files.pop_front() {
            if read.len() >= MAX_SITEMAP_FILES || urls.len() >= max_urls {
                break;
            }
            if !read.insert(file.clone()) {
                continue;
            }
            let page = match self.fetch_in_site(run, &file, 0, Kind::Sitemap).await {
                Ok(Ok(page)) => page,
                Ok(Err(Miss::Failed(e))) => {
                    tracing::debug!(sitemap = %file, error = %e, "sitemap not read");
                    continue;
                }
                Ok(Err(Miss::Skipped(reason))) => {
                    tracing::debug!(sitemap = %file, ?reason, "sitemap not read");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(sitemap = %file, error = %e, "sitemap not read");
                    continue;
                }
            };
            let same_site = |raw: &str| {
                Url::parse(raw)
                    .ok()
                    .filter(|u| is_web(u) && run.in_site(u))
                    .map(normalize)
            };
            match sitemap::parse(&page.body, MAX_LOCS_PER_FILE) {
                Some(Sitemap::Index(children)) if !from_index => {
                    files.extend(
                        children
                            .iter()
                            .filter_map(|c| same_site(c))
                            .map(|c| (c, true)),
                    );
                }
                Some(Sitemap::Index(_)) => {
                    tracing::debug!(sitemap = %file, "nested sitemap index ignored (one level only)");
                }
                Some(Sitemap::Pages(locs)) => {
                    let room = max_urls - urls.len();
                    urls.extend(locs.iter().filter_map(|l| same_site(l)).take(room));
                }
                None => tracing::debug!(sitemap = %file, "not a sitemap document"),
            }
        }
        tracing::info!(files = read.len(), urls = urls.len(), "sitemaps read");
        urls
    }
}

/// Reports a fetched page and returns its same-site links (HTML pages only).
fn report_page<F: FnMut(PageEvent)>(run: &mut Run, page: Page, on_event: &mut F) -> Vec<Url> {
    let links: Vec<Url> = if page.is_html() {
        extract_links(&page.body, &page.url)
            .into_iter()
            .filter(|u| run.in_site(u))
            .collect()
    } else {
        Vec::new()
    };
    tracing::debug!(
        url = %page.url,
        depth = page.depth,
        bytes = page.body.len(),
        content_type = page.content_type.as_deref().unwrap_or(""),
        links = links.len(),
        "page fetched"
    );
    run.summary.fetched += 1;
    on_event(PageEvent::Fetched(page));
    links
}

fn report_miss<F: FnMut(PageEvent)>(run: &mut Run, url: Url, miss: Miss, on_event: &mut F) {
    match miss {
        Miss::Failed(error) => {
            tracing::info!(url = %url, error = %error, "page failed");
            run.summary.failed += 1;
            on_event(PageEvent::Failed { url, error });
        }
        Miss::Skipped(reason) => {
            tracing::debug!(url = %url, ?reason, "page skipped");
            run.summary.skipped += 1;
            on_event(PageEvent::Skipped { url, reason });
        }
    }
}
