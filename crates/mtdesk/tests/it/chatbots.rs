//! Chatbots, Q&A pairs, CSV import and the offline test chat through the API.

use crate::helpers::{TestApp, email};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn chatbot_crud_round_trip() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("bots")).await;
    let (status, bot) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "Support", "instructions": "Be kind.", "temperature": 0.7, "fallback_reply": "Ask a human.", "knowledge_only": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    assert_eq!(bot["provider"], "offline");
    assert_eq!(bot["knowledge_only"], false);
    let id = bot["id"].as_str().expect("id");
    app.create_chatbot(&a.token, "Sales").await;

    let (_, list) = app.get("/api/v1/chatbots", &a.token).await;
    let mut names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    // Listed by creation time; two chatbots created within the same millisecond may come in either order.
    names.sort_unstable();
    assert_eq!(names, vec!["Sales", "Support"]);

    let (status, updated) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/chatbots/{id}"),
            Some(&a.token),
            Some(json!({"provider": "openrouter", "model": "openai/gpt-4o-mini", "temperature": 1.2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["provider"], "openrouter");
    assert_eq!(
        updated["instructions"], "Be kind.",
        "fields not sent keep their value"
    );

    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{id}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/api/v1/chatbots/{id}"), &a.token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn qa_pairs_crud_and_the_chat_answers_from_them() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("qa")).await;
    let bot = app.create_chatbot(&a.token, "Support").await;
    let hours = app
        .add_qa(
            &a.token,
            &bot,
            "What are your opening hours?",
            "9 to 5, Monday to Friday.",
        )
        .await;
    app.add_qa(
        &a.token,
        &bot,
        "Can I get a refund?",
        "Yes, within 30 days of purchase.",
    )
    .await;
    app.add_qa(
        &a.token,
        &bot,
        "Do you ship to Canada?",
        "Yes, shipping to Canada takes 5 days.",
    )
    .await;

    let ask = |m: &'static str| {
        let app = &app;
        let token = a.token.clone();
        let path = format!("/api/v1/chatbots/{bot}/chat");
        async move { app.post(&path, &token, json!({"message": m})).await }
    };
    let (status, reply) = ask("how do I get a refund?").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["answer"], "Yes, within 30 days of purchase.");
    assert_eq!(reply["source"], "qa_pair");
    assert_eq!(reply["answered_by"], "offline");
    assert_eq!(reply["matched"]["title"], "Can I get a refund?");

    let (_, reply) = ask("When are you open? Opening hours please").await;
    assert_eq!(reply["matched"]["id"], hours.as_str());

    let (_, reply) = ask("Do you sell gift cards?").await;
    assert_eq!(reply["source"], "fallback");
    assert!(reply["matched"].is_null());

    // Editing a pair changes the answer; deleting it falls back.
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/api/v1/chatbots/{bot}/qa/{hours}"),
            Some(&a.token),
            Some(json!({"answer": "8 to 6 every day."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, reply) = ask("opening hours?").await;
    assert_eq!(reply["answer"], "8 to 6 every day.", "{reply}");
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/chatbots/{bot}/qa/{hours}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, reply) = ask("opening hours?").await;
    assert_eq!(reply["source"], "fallback");
    let (_, list) = app
        .get(&format!("/api/v1/chatbots/{bot}/qa"), &a.token)
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_chatbot_set_to_an_unavailable_provider_says_so() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("prov")).await;
    let (_, bot) = app
        .post(
            "/api/v1/chatbots",
            &a.token,
            json!({"name": "B", "provider": "fireworks", "model": "llama", "knowledge_only": false}),
        )
        .await;
    let id = bot["id"].as_str().expect("id");
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{id}/chat"),
            &a.token,
            json!({"message": "hi"}),
        )
        .await;
    assert_eq!(reply["answered_by"], "offline");
    assert!(
        reply["notice"].as_str().unwrap_or("").contains("Fireworks"),
        "{reply}"
    );
}

async fn import(
    app: &TestApp,
    token: &str,
    bot: &str,
    csv: &str,
    query: &str,
) -> (StatusCode, serde_json::Value) {
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/qa/import{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .expect("send");
    crate::helpers::json_of(resp).await
}

#[tokio::test]
async fn csv_import_is_all_or_nothing_unless_invalid_rows_are_skipped() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("csv")).await;
    let bot = app.create_chatbot(&a.token, "Support").await;
    let csv = "question,answer\nOpening hours?,\"9 to 5, weekdays\"\nno answer column\nRefunds?,30 days\n";
    let (status, body) = import(&app, &a.token, &bot, csv, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["imported"], 0);
    assert_eq!(body["errors"][0]["row"], 3);
    let (_, list) = app
        .get(&format!("/api/v1/chatbots/{bot}/qa"), &a.token)
        .await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing half-imported"
    );

    let (status, body) = import(&app, &a.token, &bot, csv, "?skip_invalid=true").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["imported"], 2);
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));
    let (_, list) = app
        .get(&format!("/api/v1/chatbots/{bot}/qa"), &a.token)
        .await;
    assert_eq!(list[0]["answer"], "9 to 5, weekdays");

    let (status, body) = import(&app, &a.token, &bot, "", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/qa/import")))
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
