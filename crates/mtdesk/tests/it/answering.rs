//! AI answering through the real server against fake LLM providers on loopback (external-apis.md §7):
//! provider answers with knowledge as context, conversation history, the fallback chain, own keys sealed
//! at rest, streaming, cut streams, usage, unanswered questions, and keys never leaking.

use crate::helpers::{TestAccount, TestApp, email};
use mtdesk_domain::Provider;
use mtdesk_testkit::fake_llm::{Behavior, FakeConfig, FakeLlm};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};

const OR_KEY: &str = "sk-or-v1-instance-0123456789";
const FW_KEY: &str = "fw-instance-abcdef0123456789";

async fn fakes() -> (FakeLlm, FakeLlm) {
    (
        FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(OR_KEY))).await,
        FakeLlm::start(FakeConfig::new(Provider::Fireworks, Some(FW_KEY))).await,
    )
}

/// A server whose OpenRouter and Fireworks point at the fakes with the given instance keys.
async fn app_with(
    or: &FakeLlm,
    fw: &FakeLlm,
    or_key: Option<&str>,
    fw_key: Option<&str>,
) -> TestApp {
    let (or_url, fw_url) = (or.base_url(), fw.base_url());
    let (or_key, fw_key) = (or_key.map(str::to_string), fw_key.map(str::to_string));
    TestApp::spawn_with(move |v| {
        v.insert("MTDESK_OPENROUTER_BASE_URL".into(), or_url);
        v.insert("MTDESK_FIREWORKS_BASE_URL".into(), fw_url);
        if let Some(k) = or_key {
            v.insert("MTDESK_OPENROUTER_API_KEY".into(), k);
        }
        if let Some(k) = fw_key {
            v.insert("MTDESK_FIREWORKS_API_KEY".into(), k);
        }
    })
    .await
}

async fn bot(app: &TestApp, a: &TestAccount, settings: Value) -> String {
    let mut body = json!({"name": "Helper"});
    if let (Some(b), Some(s)) = (body.as_object_mut(), settings.as_object()) {
        b.extend(s.clone());
    }
    let (status, bot) = app.post("/api/v1/chatbots", &a.token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    bot["id"].as_str().expect("id").to_string()
}

async fn ask(app: &TestApp, a: &TestAccount, bot: &str, body: Value) -> Value {
    let (status, reply) = app
        .post(&format!("/api/v1/chatbots/{bot}/chat"), &a.token, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply
}

fn last_request_messages(fake: &FakeLlm) -> Vec<Value> {
    let reqs = fake.chat_requests();
    let last = reqs.last().expect("a chat request");
    last.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_provider_answers_with_the_knowledge_as_context_and_usage_is_recorded() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), None).await;
    let a = app.sign_up(&email("llm")).await;
    let b = bot(&app, &a, json!({"provider": "openrouter", "model": "fake-model", "instructions": "You are Lee Shoes' assistant."})).await;
    app.add_qa(&a.token, &b, "Can I get a refund?", "Yes, within 30 days.")
        .await;
    let reply = ask(&app, &a, &b, json!({"message": "How do I get a refund?"})).await;
    assert_eq!(reply["answer"], or.expected_reply("How do I get a refund?"));
    assert_eq!(reply["answered_by"], "openrouter");
    assert_eq!(reply["source"], "knowledge");
    assert_eq!(reply["sources"][0]["title"], "Can I get a refund?");
    assert!(reply["completion_tokens"].as_u64().unwrap_or(0) > 0);

    let messages = last_request_messages(&or);
    let system = messages[0]["content"].as_str().unwrap_or("");
    assert_eq!(messages[0]["role"], "system");
    assert!(
        system.starts_with("You are Lee Shoes' assistant."),
        "{system}"
    );
    assert!(
        system.contains("[1] Q: Can I get a refund?") && system.contains("Yes, within 30 days.")
    );
    assert!(system.contains("customer's language"));
    assert!(
        system.contains("does not contain the answer, say so"),
        "knowledge-only rule"
    );
    assert_eq!(
        messages.last().map(|m| m["content"].clone()),
        Some(json!("How do I get a refund?"))
    );
    let req = or.chat_requests().pop().expect("request");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {OR_KEY}").as_str())
    );
    assert_eq!(req.body["model"], "fake-model");
    assert_eq!(req.body["max_tokens"], 512);

    let (status, usage) = app.get("/api/v1/usage", &a.token).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["answers"], 1);
    assert_eq!(usage["by_model"][0]["provider"], "openrouter");
    assert_eq!(usage["by_model"][0]["model"], "fake-model");
    assert!(usage["completion_tokens"].as_i64().unwrap_or(0) > 0);
    let (status, body) = app.get("/api/v1/usage?month=2026-13", &a.token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn the_conversation_so_far_is_sent_to_the_model() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), None).await;
    let a = app.sign_up(&email("conv")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
    )
    .await;
    let first = ask(
        &app,
        &a,
        &b,
        json!({"message": "My order number is A-1234."}),
    )
    .await;
    let conversation = first["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_string();
    ask(
        &app,
        &a,
        &b,
        json!({"message": "Where is it?", "conversation_id": conversation}),
    )
    .await;
    let messages = last_request_messages(&or);
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    assert_eq!(messages[1]["content"], "My order number is A-1234.");
    assert_eq!(
        messages[2]["content"],
        or.expected_reply("My order number is A-1234.")
    );

    // Another account cannot continue this conversation.
    let other = app.sign_up(&email("other")).await;
    let other_bot = bot(&app, &other, json!({})).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/chatbots/{other_bot}/chat"),
            &other.token,
            json!({"message": "hi", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_failing_provider_hands_over_to_the_next_in_the_chain() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), Some(FW_KEY)).await;
    let a = app.sign_up(&email("chain")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "fireworks", "model": "fake-model", "knowledge_only": false,
               "fallback_chain": [{"provider": "openrouter", "model": "fake-model"}]}),
    )
    .await;
    for _ in 0..3 {
        fw.push(Behavior::Status {
            code: 503,
            retry_after: None,
        });
    }
    let reply = ask(&app, &a, &b, json!({"message": "Do you sell boots?"})).await;
    assert_eq!(reply["answered_by"], "openrouter", "{reply}");
    assert_eq!(reply["fallbacks"][0]["provider"], "fireworks");
    assert_eq!(reply["fallbacks"][0]["error"], "unavailable");
    assert_eq!(
        fw.chat_requests().len(),
        3,
        "fireworks retried before handing over"
    );
    assert_eq!(or.chat_requests().len(), 1);
    assert!(reply["notice"].as_str().unwrap_or("").contains("Fireworks"));
}

#[tokio::test]
async fn a_refused_key_gives_the_fallback_reply_and_the_owner_can_turn_the_question_into_a_qa_pair()
{
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some("sk-or-v1-wrong-key-000000"), None).await;
    let a = app.sign_up(&email("badkey")).await;
    let b = bot(&app, &a, json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false, "fallback_reply": "A person will reply soon."})).await;
    let reply = ask(
        &app,
        &a,
        &b,
        json!({"message": "Do you have a store in Oslo?"}),
    )
    .await;
    assert_eq!(reply["answer"], "A person will reply soon.");
    assert_eq!(reply["source"], "fallback");
    assert_eq!(reply["answered_by"], "offline");
    assert_eq!(reply["fallbacks"][0]["error"], "bad_key");
    assert!(
        reply["fallbacks"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("key"),
        "{reply}"
    );
    assert_eq!(or.chat_requests().len(), 1, "a refused key is not retried");

    let (status, list) = app
        .get(&format!("/api/v1/chatbots/{b}/unanswered"), &a.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["question"], "Do you have a store in Oslo?");
    let answer_id = list[0]["answer_id"].as_str().expect("id");
    let (status, pair) = app
        .post(
            &format!("/api/v1/chatbots/{b}/unanswered/{answer_id}/resolve"),
            &a.token,
            json!({"answer": "No, we sell online only."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pair}");
    assert_eq!(pair["question"], "Do you have a store in Oslo?");
    let (_, list) = app
        .get(&format!("/api/v1/chatbots/{b}/unanswered"), &a.token)
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let reply = ask(
        &app,
        &a,
        &b,
        json!({"message": "Do you have a store in Oslo?"}),
    )
    .await;
    assert_eq!(
        reply["answer"], "No, we sell online only.",
        "the offline answerer now knows: {reply}"
    );
}

#[tokio::test]
async fn an_unknown_model_or_a_provider_that_is_down_gives_the_fallback_reply_with_the_reason() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), Some(FW_KEY)).await;
    let a = app.sign_up(&email("down")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "no-such-model", "knowledge_only": false, "fallback_reply": "We will get back to you.",
               "fallback_chain": [{"provider": "fireworks", "model": "fake-model"}]}),
    )
    .await;
    drop(fw); // Fireworks is down: connection refused.
    let reply = ask(&app, &a, &b, json!({"message": "Is anyone there?"})).await;
    assert_eq!(reply["answer"], "We will get back to you.");
    assert_eq!(reply["fallbacks"][0]["error"], "invalid_request");
    assert!(
        reply["fallbacks"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-model"),
        "{reply}"
    );
    assert_eq!(reply["fallbacks"][1]["provider"], "fireworks");
    assert_eq!(reply["fallbacks"][1]["error"], "network");
}

#[tokio::test]
async fn own_keys_are_sealed_tested_preferred_and_removable() {
    let (or, fw) = fakes().await;
    let own = "sk-or-v1-own-key-9876543210";
    let own_fake = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(own))).await;
    // The instance has no OpenRouter key; the account brings its own.
    let app = app_with(&own_fake, &fw, None, None).await;
    drop(or);
    let a = app.sign_up(&email("byok")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
    )
    .await;
    let reply = ask(&app, &a, &b, json!({"message": "hello"})).await;
    assert_eq!(reply["fallbacks"][0]["error"], "not_configured");

    let (status, saved) = app
        .api(
            Method::PUT,
            "/api/v1/providers/openrouter/key",
            Some(&a.token),
            Some(json!({"api_key": own})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["hint"], "3210");
    let (_, statuses) = app.get("/api/v1/providers", &a.token).await;
    let or_status = statuses
        .as_array()
        .and_then(|l| l.iter().find(|s| s["provider"] == "openrouter"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(or_status["own_key_hint"], "3210");
    assert!(
        !statuses.to_string().contains(own),
        "the key is never shown again"
    );
    let traces = mtdesk_storage::catalogue::find_traces(&app.state.store, &[own])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "key stored in clear: {traces:?}");

    let (status, test) = app
        .post(
            "/api/v1/providers/openrouter/test",
            &a.token,
            json!({"model": "fake-model"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(test["ok"], true, "{test}");
    let (_, models) = app
        .get("/api/v1/providers/openrouter/models", &a.token)
        .await;
    assert_eq!(models["models"], json!(["fake-model", "fake-model-large"]));

    let reply = ask(&app, &a, &b, json!({"message": "hello"})).await;
    assert_eq!(reply["answered_by"], "openrouter", "{reply}");
    let last = own_fake.chat_requests().pop().expect("request");
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {own}").as_str())
    );

    let (status, _) = app
        .api(
            Method::DELETE,
            "/api/v1/providers/openrouter/key",
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reply = ask(&app, &a, &b, json!({"message": "hello"})).await;
    assert_eq!(reply["answered_by"], "offline");
    let (status, _) = app
        .api(
            Method::PUT,
            "/api/v1/providers/offline/key",
            Some(&a.token),
            Some(json!({"api_key": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .api(
            Method::PUT,
            "/api/v1/providers/openrouter/key",
            Some(&a.token),
            Some(json!({"api_key": "has spaces in it"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Parses a server-sent-events body into (event, data) pairs.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            (!event.is_empty()).then(|| (event, serde_json::from_str(&data).unwrap_or(Value::Null)))
        })
        .collect()
}

async fn stream(app: &TestApp, a: &TestAccount, bot: &str, message: &str) -> Vec<(String, Value)> {
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/chat")))
        .bearer_auth(&a.token)
        .header("accept", "text/event-stream")
        .json(&json!({"message": message}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    sse_events(&resp.text().await.expect("body"))
}

#[tokio::test]
async fn streaming_sends_deltas_then_the_recorded_answer() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), None).await;
    let a = app.sign_up(&email("sse")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
    )
    .await;
    let events = stream(&app, &a, &b, "Tell me about your shoes please").await;
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect();
    assert!(
        events.iter().filter(|(e, _)| e == "delta").count() > 1,
        "several deltas: {events:?}"
    );
    let (last, done) = events.last().expect("events");
    assert_eq!(last, "done");
    assert_eq!(done["answer"], text.as_str());
    assert_eq!(text, or.expected_reply("Tell me about your shoes please"));
    assert_eq!(or.chat_requests()[0].body["stream"], true);
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_discarded_and_the_next_provider_answers() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), Some(FW_KEY)).await;
    let a = app.sign_up(&email("cut")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false,
               "fallback_chain": [{"provider": "fireworks", "model": "fake-model"}]}),
    )
    .await;
    or.push(Behavior::CutStream);
    let events = stream(&app, &a, &b, "A question that gets cut off halfway").await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let reset_at = names
        .iter()
        .position(|e| *e == "reset")
        .expect("a reset event");
    assert!(
        names[..reset_at].contains(&"delta"),
        "partial text was streamed first: {names:?}"
    );
    let (_, done) = events.last().expect("done");
    assert_eq!(done["answered_by"], "fireworks", "{done}");
    assert_eq!(done["fallbacks"][0]["error"], "stream_cut");
    let after: String = events[reset_at..]
        .iter()
        .filter(|(e, _)| e == "delta")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect();
    assert_eq!(after, done["answer"].as_str().unwrap_or(""));
    // Only the complete answer was stored.
    let id = mtdesk_domain::AnswerId::parse(done["answer_id"].as_str().unwrap_or(""))
        .expect("answer id");
    let account = mtdesk_domain::AccountId::parse(&a.id).expect("account");
    let record = app
        .state
        .store
        .find_answer(&account, &id)
        .await
        .expect("record");
    assert_eq!(
        record.answer,
        fw.expected_reply("A question that gets cut off halfway")
    );
    assert_eq!(record.provider, "fireworks");
}

#[tokio::test]
async fn long_messages_are_cut_before_answering_and_say_so() {
    let (or, fw) = fakes().await;
    let app = app_with(&or, &fw, Some(OR_KEY), None).await;
    let a = app.sign_up(&email("long")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
    )
    .await;
    let reply = ask(&app, &a, &b, json!({"message": "word ".repeat(20_000)})).await;
    assert_eq!(reply["truncated"], true);
    assert!(reply["notice"].as_str().unwrap_or("").contains("4000"));
    let sent = last_request_messages(&or)
        .last()
        .and_then(|m| m["content"].as_str().map(str::len))
        .unwrap_or(0);
    assert!(sent <= 4_010, "sent {sent} characters");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn api_keys_never_appear_in_logs_responses_or_the_database() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,hyper=off,h2=off"))
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (or, fw) = fakes().await;
    let wrong = "sk-or-v1-leaky-wrong-key-55555";
    let app = app_with(&or, &fw, Some(OR_KEY), None).await;
    let a = app.sign_up(&email("leak")).await;
    let b = bot(
        &app,
        &a,
        json!({"provider": "openrouter", "model": "fake-model", "knowledge_only": false}),
    )
    .await;
    let mut responses = String::new();
    let (_, r) = app
        .api(
            Method::PUT,
            "/api/v1/providers/openrouter/key",
            Some(&a.token),
            Some(json!({"api_key": wrong})),
        )
        .await;
    responses.push_str(&r.to_string());
    // The fake echoes the wrong key in its 401 message; it must be redacted everywhere.
    for path in ["/api/v1/providers/openrouter/test"] {
        let (_, r) = app
            .post(path, &a.token, json!({"model": "fake-model"}))
            .await;
        responses.push_str(&r.to_string());
    }
    let (_, r) = app
        .get("/api/v1/providers/openrouter/models", &a.token)
        .await;
    responses.push_str(&r.to_string());
    responses.push_str(
        &ask(&app, &a, &b, json!({"message": "hi there"}))
            .await
            .to_string(),
    );
    for e in stream(&app, &a, &b, "hi again").await {
        responses.push_str(&e.1.to_string());
    }
    let (_, r) = app.get("/api/v1/providers", &a.token).await;
    responses.push_str(&r.to_string());
    let (_, r) = app
        .get(&format!("/api/v1/chatbots/{b}/unanswered"), &a.token)
        .await;
    responses.push_str(&r.to_string());
    assert!(
        responses.contains("bad_key"),
        "the failure is reported: {responses}"
    );

    for key in [wrong, OR_KEY] {
        assert!(!responses.contains(key), "{key} in an API response");
        let traces = mtdesk_storage::catalogue::find_traces(&app.state.store, &[key])
            .await
            .expect("scan");
        assert!(traces.is_empty(), "{key} in the database: {traces:?}");
        let text =
            String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|p| p.into_inner())).to_string();
        assert!(!text.is_empty(), "logs were captured");
        assert!(!text.contains(key), "{key} in the logs");
    }
}
