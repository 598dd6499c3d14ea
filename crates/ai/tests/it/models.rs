//! `GET /models` and key checks (external-apis.md §7.2–§7.5).

use crate::helpers::*;
use mtdesk_ai::providers::{ErrorKind, Provider};
use mtdesk_testkit::fake_llm::{Behavior, FakeConfig, FakeLlm};

async fn fake_with_models(provider: Provider, models: &[&str]) -> FakeLlm {
    let mut c = FakeConfig::new(provider, Some(KEY));
    c.models = models.iter().map(|m| m.to_string()).collect();
    FakeLlm::start(c).await
}

#[tokio::test]
async fn list_models_returns_sorted_ids_for_providers_with_a_models_endpoint() {
    let llm = client();
    for provider in [
        Provider::Openrouter,
        Provider::Minimax,
        Provider::Moonshot,
        Provider::OpenaiCompat,
    ] {
        let fake = fake_with_models(provider, &["zeta/model", "alpha/model", "mid/model"]).await;
        let models = llm
            .list_models(&cfg(&fake))
            .await
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        assert_eq!(
            models,
            ["alpha/model", "mid/model", "zeta/model"],
            "{provider:?}"
        );
        let r = &fake.requests()[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/v1/models");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
}

#[tokio::test]
async fn fireworks_list_models_maps_404_to_an_empty_list() {
    let fake = fake(Provider::Fireworks).await;
    let models = client()
        .list_models(&cfg(&fake))
        .await
        .expect("404 is no list");
    assert!(models.is_empty());
    assert_eq!(fake.requests()[0].path, "/v1/models");
}

#[tokio::test]
async fn list_models_with_a_wrong_key_is_bad_key_and_a_404_elsewhere_is_invalid_request() {
    let llm = client();
    let fake = fake(Provider::Moonshot).await;
    let mut c = cfg(&fake);
    c.api_key = Some("sk-wrong".into());
    assert_eq!(
        llm.list_models(&c).await.expect_err("bad key").kind,
        ErrorKind::BadKey
    );

    let fake = fake_with_models(Provider::OpenaiCompat, &["m"]).await;
    fake.push(Behavior::Status {
        code: 404,
        retry_after: None,
    });
    assert_eq!(
        llm.list_models(&cfg(&fake)).await.expect_err("404").kind,
        ErrorKind::InvalidRequest
    );
}

#[tokio::test]
async fn test_key_lists_models_where_the_provider_has_an_endpoint_that_checks_the_key() {
    let llm = client();
    for provider in [
        Provider::Minimax,
        Provider::Moonshot,
        Provider::OpenaiCompat,
    ] {
        let fake = fake(provider).await;
        let msg = llm
            .test_key(&cfg(&fake), Some(MODEL))
            .await
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        assert_eq!(msg, "The key works: 2 models available.", "{provider:?}");
        assert!(
            fake.chat_requests().is_empty(),
            "{provider:?}: no paid call"
        );
    }
}

#[tokio::test]
async fn test_key_on_a_keyless_openai_compatible_server_says_the_server_answered() {
    let fake = FakeLlm::start(FakeConfig::new(Provider::OpenaiCompat, None)).await;
    let mut c = cfg(&fake);
    c.api_key = None;
    let msg = client().test_key(&c, None).await.expect("works");
    assert_eq!(msg, "The server answered: 2 models available.");
}

#[tokio::test]
async fn test_key_on_fireworks_sends_a_one_token_chat_with_the_given_model() {
    let llm = client();
    let fake = fake(Provider::Fireworks).await;
    let msg = llm.test_key(&cfg(&fake), Some(MODEL)).await.expect("works");
    assert_eq!(
        msg,
        format!("The key works: {MODEL} answered a test message.")
    );
    let chats = fake.chat_requests();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].body["max_tokens"], 1);
    assert_eq!(chats[0].body["model"], MODEL);

    let err = llm
        .test_key(&cfg(&fake), None)
        .await
        .expect_err("needs a model");
    assert_eq!(err.kind, ErrorKind::NotConfigured);
    assert_eq!(fake.requests().len(), 1, "no request without a model");
}

#[tokio::test]
async fn test_key_on_openrouter_uses_a_chat_when_given_a_model_because_its_model_list_is_public() {
    let llm = client();
    let fake = fake(Provider::Openrouter).await;
    let msg = llm.test_key(&cfg(&fake), Some(MODEL)).await.expect("works");
    assert_eq!(
        msg,
        format!("The key works: {MODEL} answered a test message.")
    );
    assert_eq!(fake.chat_requests().len(), 1);

    let msg = llm.test_key(&cfg(&fake), None).await.expect("list");
    assert!(
        msg.starts_with("OpenRouter answered: 2 models available."),
        "{msg}"
    );
    assert!(msg.contains("without checking the key"), "{msg}");
}

#[tokio::test]
async fn test_key_with_a_wrong_key_is_bad_key_for_every_provider() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let mut c = cfg(&fake);
        c.api_key = Some("sk-wrong".into());
        let err = llm.test_key(&c, Some(MODEL)).await.expect_err("bad key");
        assert_eq!(err.kind, ErrorKind::BadKey, "{provider:?}: {err}");
    }
}

#[tokio::test]
async fn test_key_with_an_unknown_model_is_invalid_request() {
    let fake = fake(Provider::Fireworks).await;
    let err = client()
        .test_key(&cfg(&fake), Some("accounts/fireworks/models/nope"))
        .await
        .expect_err("unknown model");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("accounts/fireworks/models/nope"));
}
