//! One fetch: redirects, size cap, timeouts, status errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header;
use axum::response::{Redirect, Response};
use axum::routing::get;
use futures_util::StreamExt;
use mtdesk_crawler::{AddressPolicy, CrawlConfig, FetchError};

use crate::helpers::{HTML, TestSite, config, crawler, pages_router};

const MIB: usize = 1024 * 1024;
static CHUNK: [u8; MIB] = [b'x'; MIB];

/// Serves 50 MiB in 1 MiB chunks, produced lazily and counted, optionally announcing the length.
fn huge_page_router(produced: Arc<AtomicUsize>, announce_length: bool) -> Router {
    Router::new().route(
        "/huge",
        get(move || {
            let produced = produced.clone();
            async move {
                let chunks = futures_util::stream::iter(0..50).map(move |_| {
                    produced.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Bytes::from_static(&CHUNK))
                });
                let mut resp = Response::builder().header(header::CONTENT_TYPE, HTML);
                if announce_length {
                    resp = resp.header(header::CONTENT_LENGTH, 50 * MIB);
                }
                resp.body(Body::from_stream(chunks))
                    .expect("valid response")
            }
        }),
    )
}

#[tokio::test]
async fn fifty_megabyte_streamed_page_is_refused_without_reading_it_all() {
    let produced = Arc::new(AtomicUsize::new(0));
    let site = TestSite::spawn(huge_page_router(produced.clone(), false)).await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let result = c.fetch(&site.url("/huge")).await;

    match result {
        Err(e @ FetchError::TooLarge { limit }) => {
            assert_eq!(limit, 5 * MIB);
            assert_eq!(e.to_string(), "the page is larger than 5 MB");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The server stops once the client hangs up; socket buffers allow some slack past 5 MiB.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = produced.load(Ordering::SeqCst);
    assert!(n < 30, "the server produced {n} of 50 chunks");
}

#[tokio::test]
async fn content_length_over_the_cap_fails_before_the_body_is_read() {
    let produced = Arc::new(AtomicUsize::new(0));
    let site = TestSite::spawn(huge_page_router(produced.clone(), true)).await;
    let c = crawler(CrawlConfig {
        max_page_bytes: 10 * MIB,
        ..config(AddressPolicy::AllowPrivate)
    });

    let result = c.fetch(&site.url("/huge")).await;

    assert!(
        matches!(result, Err(FetchError::TooLarge { limit }) if limit == 10 * MIB),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = produced.load(Ordering::SeqCst);
    assert!(n < 10, "the server produced {n} of 50 chunks");
}

#[tokio::test]
async fn page_under_the_cap_is_returned_whole() {
    let body = "y".repeat(3000);
    let site = TestSite::pages(&[("/", HTML, &body)]).await;
    let c = crawler(CrawlConfig {
        max_page_bytes: 3000,
        ..config(AddressPolicy::AllowPrivate)
    });

    let page = c
        .fetch(&site.url("/"))
        .await
        .expect("exactly at the cap is fine");

    assert_eq!(page.body.len(), 3000);
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type.as_deref(), Some(HTML));
}

#[tokio::test]
async fn stalled_server_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let c = crawler(CrawlConfig {
        request_timeout: Duration::from_millis(300),
        ..config(AddressPolicy::AllowPrivate)
    });
    let url = mtdesk_crawler::Url::parse(&format!("http://{addr}/")).expect("valid URL");

    let result = c.fetch(&url).await;

    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
    holder.abort();
}

#[tokio::test]
async fn body_that_stalls_midway_times_out() {
    let site = TestSite::spawn(Router::new().route(
        "/slow",
        get(|| async {
            let start = futures_util::stream::once(async {
                Ok::<_, Infallible>(Bytes::from_static(b"<html><body>partial"))
            });
            let body = start.chain(futures_util::stream::pending());
            Response::builder()
                .header(header::CONTENT_TYPE, HTML)
                .body(Body::from_stream(body))
                .expect("valid response")
        }),
    ))
    .await;
    let c = crawler(CrawlConfig {
        request_timeout: Duration::from_millis(300),
        ..config(AddressPolicy::AllowPrivate)
    });

    let result = c.fetch(&site.url("/slow")).await;

    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
}

#[tokio::test]
async fn redirect_loop_is_detected() {
    let site = TestSite::spawn(
        Router::new()
            .route("/loop/a", get(|| async { Redirect::to("/loop/b") }))
            .route("/loop/b", get(|| async { Redirect::to("/loop/a#again") })),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let result = c.fetch(&site.url("/loop/a")).await;

    assert!(
        matches!(result, Err(FetchError::RedirectLoop)),
        "{result:?}"
    );
    assert_eq!(site.requests(), ["/loop/a", "/loop/b"]);
}

#[tokio::test]
async fn too_many_redirects_are_refused() {
    let site = TestSite::spawn(Router::new().route(
        "/chain/{n}",
        get(|Path(n): Path<u32>| async move { Redirect::to(&format!("/chain/{}", n + 1)) }),
    ))
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let result = c.fetch(&site.url("/chain/0")).await;

    assert!(
        matches!(result, Err(FetchError::TooManyRedirects)),
        "{result:?}"
    );
    // The first request plus max_redirects (5) hops, never a seventh.
    assert_eq!(site.requests().len(), 6, "{:?}", site.requests());
}

#[tokio::test]
async fn redirect_is_followed_and_the_final_url_reported() {
    let site = TestSite::spawn(
        pages_router(&[("/final", HTML, "here")])
            .route("/start", get(|| async { Redirect::permanent("/final") })),
    )
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let page = c
        .fetch(&site.url("/start"))
        .await
        .expect("redirect followed");

    assert_eq!(page.url, site.url("/final"));
    assert_eq!(page.requested, site.url("/start"));
    assert_eq!(page.body, b"here");
}

#[tokio::test]
async fn redirect_to_a_non_web_scheme_is_refused() {
    let site = TestSite::spawn(Router::new().route(
        "/ftp",
        get(|| async { Redirect::to("ftp://example.com/file") }),
    ))
    .await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let result = c.fetch(&site.url("/ftp")).await;

    assert!(
        matches!(result, Err(FetchError::BadRedirect(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn not_found_is_a_status_error() {
    let site = TestSite::pages(&[]).await;
    let c = crawler(config(AddressPolicy::AllowPrivate));

    let result = c.fetch(&site.url("/missing")).await;

    assert!(matches!(result, Err(FetchError::Status(404))), "{result:?}");
}
