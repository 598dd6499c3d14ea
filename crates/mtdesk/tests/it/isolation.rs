//! Tenant isolation: account B, with its own valid token, tries every API route on account A's ids and
//! always gets 404, never data, and A's data is unchanged afterwards.

use crate::helpers::{TestApp, email};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn another_accounts_ids_are_404_on_every_api_route() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("owner")).await;
    let b = app.sign_up(&email("intruder")).await;
    let bot = app.create_chatbot(&a.token, "Private bot").await;
    let qa = app
        .add_qa(&a.token, &bot, "Secret question?", "Secret answer.")
        .await;
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": "Where is your office?"}),
        )
        .await;
    let answer_id = reply["answer_id"].as_str().expect("answer id").to_string();
    let conversation = reply["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (_, tokens) = app.get("/api/v1/tokens", &a.token).await;
    let token_id = tokens[0]["id"].as_str().expect("id").to_string();

    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/api/v1/chatbots/{bot}"), None),
        (
            Method::PATCH,
            format!("/api/v1/chatbots/{bot}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/api/v1/chatbots/{bot}"), None),
        (Method::GET, format!("/api/v1/chatbots/{bot}/qa"), None),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/qa"),
            Some(json!({"question": "q", "answer": "a"})),
        ),
        (Method::GET, format!("/api/v1/chatbots/{bot}/qa/{qa}"), None),
        (
            Method::PATCH,
            format!("/api/v1/chatbots/{bot}/qa/{qa}"),
            Some(json!({"answer": "pwned"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/chatbots/{bot}/qa/{qa}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/chat"),
            Some(json!({"message": "Secret question?"})),
        ),
        (Method::DELETE, format!("/api/v1/tokens/{token_id}"), None),
        (
            Method::GET,
            format!("/api/v1/chatbots/{bot}/unanswered"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/chatbots/{bot}/unanswered/{answer_id}/resolve"),
            Some(json!({"answer": "pwned"})),
        ),
    ];
    for (method, path, body) in routes {
        let (status, resp) = app.api(method.clone(), &path, Some(&b.token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {resp}");
        assert!(
            !resp.to_string().contains("Secret"),
            "{method} {path} leaked data: {resp}"
        );
    }
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/qa/import")))
        .bearer_auth(&b.token)
        .header("content-type", "text/csv")
        .body("q,a\n")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // B cannot continue A's conversation, even on B's own chatbot, nor resolve A's answers there.
    let b_bot = app.create_chatbot(&b.token, "B bot").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/chatbots/{b_bot}/chat"),
            &b.token,
            json!({"message": "hi", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/api/v1/chatbots/{b_bot}/unanswered/{answer_id}/resolve"),
            &b.token,
            json!({"answer": "pwned"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .get(&format!("/api/v1/chatbots/{bot}/unanswered"), &a.token)
        .await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "A's unanswered question is still there"
    );

    // B's lists do not include A's things.
    let (_, list) = app.get("/api/v1/chatbots", &b.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "only B's own bot");
    let (_, list) = app.get("/api/v1/tokens", &b.token).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // A's data is intact.
    let (status, got) = app.get(&format!("/api/v1/chatbots/{bot}"), &a.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "Private bot");
    let (_, pairs) = app
        .get(&format!("/api/v1/chatbots/{bot}/qa"), &a.token)
        .await;
    assert_eq!(pairs.as_array().map(Vec::len), Some(1));
    assert_eq!(pairs[0]["answer"], "Secret answer.");
    assert_eq!(app.get("/api/v1/account", &a.token).await.0, StatusCode::OK);
}
