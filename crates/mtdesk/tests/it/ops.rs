//! Health, metrics, OpenAPI and security headers.

use crate::helpers::{TestApp, email};
use reqwest::StatusCode;

#[tokio::test]
async fn healthz_checks_the_database() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["database"], "ok");
    app.state.store.close().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("metrics")).await;
    let bot = app.create_chatbot(&a.token, "B").await;
    app.get(&format!("/api/v1/chatbots/{bot}"), &a.token).await;
    app.get(
        "/api/v1/chatbots/00000000-0000-4000-8000-000000000000",
        &a.token,
    )
    .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(text.contains(r#"mtdesk_http_requests_total{method="GET",route="/api/v1/chatbots/{id}",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"mtdesk_http_requests_total{method="GET",route="/api/v1/chatbots/{id}",status="404"} 1"#), "{text}");
    assert!(text.contains("mtdesk_http_request_duration_seconds_bucket"));
    assert!(!text.contains(&bot), "ids must never be metric labels");
}

#[tokio::test]
async fn openapi_documents_every_api_route() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(spec["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    let paths = spec["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/account", &["post", "get", "patch", "delete"][..]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
        ("/api/v1/chatbots", &["get", "post"]),
        ("/api/v1/chatbots/{id}", &["get", "patch", "delete"]),
        ("/api/v1/chatbots/{id}/qa", &["get", "post"]),
        ("/api/v1/chatbots/{id}/qa/import", &["post"]),
        (
            "/api/v1/chatbots/{id}/qa/{qa_id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/chatbots/{id}/chat", &["post"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} missing from the OpenAPI"
            );
        }
    }
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/api/v1/chatbots", "/login"] {
        let resp = app.client.get(app.url(path)).send().await.expect("send");
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(
            h.get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path}"
        );
    }
}
