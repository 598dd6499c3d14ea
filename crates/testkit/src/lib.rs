//! Dev-only test support: small axum servers on `127.0.0.1:0` that behave like the external APIs in
//! `external-apis.md`, record what they receive, and can be scripted to fail or stall (STYLE.md, Tests).

pub mod fake_llm;
pub mod fake_meta;
pub mod fake_stripe;
pub mod smtp_sink;

use axum::Router;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// Serves `router` on a fresh loopback port until the test's runtime ends; returns its address.
pub async fn spawn_on_loopback(router: Router) -> SocketAddr {
    spawn_server(router).await.0
}

/// Like [`spawn_on_loopback`], also returning the server task so its owner can stop it on `Drop`.
pub(crate) async fn spawn_server(router: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("loopback address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}
