//! Non-streaming chat: answers, usage, and exactly what goes over the wire (external-apis.md §7.1–§7.5).

use crate::helpers::*;
use mtdesk_ai::providers::{Provider, Usage};
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};

#[tokio::test]
async fn non_streaming_answer_carries_the_reply_and_usage_for_every_provider() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        fake.reply_to("Do you ship to Canada?", "Yes, we ship to Canada.");
        let r = llm
            .chat(&cfg(&fake), &request("Do you ship to Canada?"))
            .await
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        assert_eq!(r.content, "Yes, we ship to Canada.", "{provider:?}");
        assert_eq!(r.finish_reason, "stop", "{provider:?}");
        assert_eq!(r.model, MODEL, "{provider:?}");
        assert_eq!(r.attempts, 1, "{provider:?}");
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: words("You are Acme's assistant.") + words("Do you ship to Canada?"),
                completion_tokens: 5
            }),
            "{provider:?}"
        );
    }
}

#[tokio::test]
async fn unscripted_messages_get_the_fakes_default_echo_reply() {
    let fake = fake(Provider::Fireworks).await;
    let r = client()
        .chat(&cfg(&fake), &request("Where is my order A1?"))
        .await
        .expect("answer");
    assert_eq!(r.content, "Echo: Where is my order A1?");
}

#[tokio::test]
async fn chat_request_sends_bearer_key_path_and_openai_body_fields() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        llm.chat(&cfg(&fake), &request("Hello"))
            .await
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1, "{provider:?}");
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/chat/completions", "{provider:?}");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let b = &r.body;
        assert_eq!(b["model"], MODEL);
        assert_eq!(b["stream"], false);
        assert_eq!(b["temperature"], 0.3);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(b["messages"][0]["content"], "You are Acme's assistant.");
        assert_eq!(b["messages"][1]["role"], "user");
        assert_eq!(b["messages"][1]["content"], "Hello");
        assert!(b.get("stream_options").is_none(), "{provider:?}");
        if provider == Provider::Minimax {
            assert_eq!(
                b["max_completion_tokens"], 512,
                "MiniMax wants max_completion_tokens"
            );
            assert!(
                b.get("max_tokens").is_none(),
                "MiniMax must not get max_tokens"
            );
        } else {
            assert_eq!(b["max_tokens"], 512, "{provider:?}");
            assert!(b.get("max_completion_tokens").is_none(), "{provider:?}");
        }
    }
}

#[tokio::test]
async fn openrouter_requests_carry_x_title_and_http_referer() {
    let fake = fake(Provider::Openrouter).await;
    let mut c = cfg(&fake);
    c.site_url = Some("https://desk.example.com".into());
    c.app_name = "Acme Desk".into();
    client().chat(&c, &request("Hi")).await.expect("answer");
    let r = &fake.requests()[0];
    assert_eq!(r.header("http-referer"), Some("https://desk.example.com"));
    assert_eq!(r.header("x-title"), Some("Acme Desk"));
}

#[tokio::test]
async fn openrouter_attribution_headers_are_left_out_when_unset_and_for_other_providers() {
    let llm = client();
    let fake_or = fake(Provider::Openrouter).await;
    let mut c = cfg(&fake_or);
    c.app_name = String::new();
    llm.chat(&c, &request("Hi")).await.expect("answer");
    let r = &fake_or.requests()[0];
    assert_eq!(r.header("http-referer"), None);
    assert_eq!(r.header("x-title"), None);

    let fake_mo = fake(Provider::Moonshot).await;
    let mut c = cfg(&fake_mo);
    c.site_url = Some("https://desk.example.com".into());
    llm.chat(&c, &request("Hi")).await.expect("answer");
    let r = &fake_mo.requests()[0];
    assert_eq!(r.header("http-referer"), None);
    assert_eq!(r.header("x-title"), None);
}

#[tokio::test]
async fn openai_compatible_server_without_a_key_gets_no_authorization_header() {
    let fake = FakeLlm::start(FakeConfig::new(Provider::OpenaiCompat, None)).await;
    let mut c = cfg(&fake);
    c.api_key = None;
    let r = client().chat(&c, &request("Hi")).await.expect("answer");
    assert_eq!(r.content, "Echo: Hi");
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn minimax_think_block_is_stripped_from_non_streamed_answers() {
    let fake = fake(Provider::Minimax).await;
    let r = client()
        .chat(&cfg(&fake), &request("Can I return shoes?"))
        .await
        .expect("answer");
    assert_eq!(r.content, "Echo: Can I return shoes?");
    assert!(!r.content.contains("think"), "{:?}", r.content);
}

#[tokio::test]
async fn answer_cut_by_max_tokens_reports_finish_reason_length() {
    let fake = fake(Provider::Moonshot).await;
    fake.reply_to("Hi", "Hello there, how can I help you today?");
    let mut req = request("Hi");
    req.max_tokens = 2;
    let r = client().chat(&cfg(&fake), &req).await.expect("answer");
    assert_eq!(r.content, "Hello there,");
    assert_eq!(r.finish_reason, "length");
}
