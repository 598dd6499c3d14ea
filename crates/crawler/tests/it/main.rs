//! Integration tests: the crawler against small axum sites on 127.0.0.1:0, spawned per test.
//! `TEST_LOG=1` prints the crawler's logs.

mod crawl;
mod fetch;
mod helpers;
mod robots;
mod security;
mod sitemap;
