//! Every bad input gets a clear 4xx and writes nothing.

use crate::helpers::{TestApp, email};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn malformed_and_mistyped_bodies_get_clear_errors() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("bad")).await;
    let send = |body: &'static str, content_type: &'static str| {
        let req = app
            .client
            .post(app.url("/api/v1/chatbots"))
            .bearer_auth(&a.token)
            .header("content-type", content_type)
            .body(body);
        async move { crate::helpers::json_of(req.send().await.expect("send")).await }
    };
    let cases = [
        (
            "{\"name\": ",
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "name=x",
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "{}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "{\"name\": 5}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "{\"name\": \"x\", \"nmae\": 1}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "{\"name\": \"x\", \"temperature\": 7}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "{\"name\": \"x\", \"provider\": \"gpt\"}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, ct, status, code) in cases {
        let (got, resp) = send(body, ct).await;
        assert_eq!(got, status, "{body}: {resp}");
        assert_eq!(resp["error"], code, "{body}: {resp}");
        assert!(!resp["message"].as_str().unwrap_or("").is_empty());
    }
    let (_, list) = app.get("/api/v1/chatbots", &a.token).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "no request above may write anything"
    );
}

#[tokio::test]
async fn over_long_fields_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("long")).await;
    let long_name = "n".repeat(201);
    let long_instructions = "i".repeat(20_001);
    for (body, field) in [
        (json!({"name": long_name}), "name"),
        (
            json!({"name": "ok", "instructions": long_instructions}),
            "instructions",
        ),
    ] {
        let (status, resp) = app.post("/api/v1/chatbots", &a.token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
        assert_eq!(resp["field"], field);
    }
    let (status, _) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "n".repeat(200), "instructions": "i".repeat(20_000)}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the limits themselves are allowed"
    );
    let (status, resp) = app
        .api(
            Method::POST,
            "/api/v1/account",
            None,
            Some(json!({"name": "x", "email": "not-an-email", "password": "correct horse battery", "company": "c", "age_16_or_older": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(resp["field"], "email");
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("ids")).await;
    for path in [
        "/api/v1/chatbots/00000000-0000-4000-8000-000000000000".to_string(),
        "/api/v1/chatbots/not-a-uuid".to_string(),
        "/api/v1/chatbots/1%27%20OR%201=1".to_string(),
        "/api/v1/chatbots/00000000-0000-4000-8000-000000000000/qa".to_string(),
        "/api/v1/no-such-route".to_string(),
    ] {
        let (status, body) = app.get(&path, &a.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "not_found", "{path}");
    }
    let (status, body) = app
        .api(Method::PUT, "/api/v1/chatbots", Some(&a.token), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_write_nothing() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_MAX_BODY_BYTES".into(), "4096".into());
    })
    .await;
    let a = app.sign_up(&email("big")).await;
    let (status, body) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "x", "instructions": "y".repeat(10_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    let (_, list) = app.get("/api/v1/chatbots", &a.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn empty_or_huge_chat_messages_are_refused() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("msg")).await;
    let bot = app.create_chatbot(&a.token, "B").await;
    for m in ["   ".to_string(), "x".repeat(100_001)] {
        let (status, body) = app
            .post(
                &format!("/api/v1/chatbots/{bot}/chat"),
                &a.token,
                json!({"message": m}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "message");
    }
}
