//! Shared set-up: a fake per provider, a config with short timeouts, stream collection.

use mtdesk_ai::providers::{
    ChatMessage, ChatRequest, LlmClient, Provider, ProviderConfig, ProviderError, RetryPolicy,
    StreamEvent, Timeouts,
};
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

pub const KEY: &str = "sk-test-4f9a2c7e1b";
pub const MODEL: &str = "fake-model";

/// Every provider called over HTTP.
pub const HTTP_PROVIDERS: [Provider; 5] = [
    Provider::Openrouter,
    Provider::Fireworks,
    Provider::Minimax,
    Provider::Moonshot,
    Provider::OpenaiCompat,
];

pub fn client() -> LlmClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LlmClient::new()
}

/// A fake for `provider` expecting [`KEY`] and serving [`MODEL`].
pub async fn fake(provider: Provider) -> FakeLlm {
    FakeLlm::start(FakeConfig::new(provider, Some(KEY))).await
}

/// A config pointing at `fake` with [`KEY`], short timeouts and fast backoff.
pub fn cfg(fake: &FakeLlm) -> ProviderConfig {
    let mut c = ProviderConfig::new(fake.config().provider, fake.base_url(), Some(KEY.into()));
    c.timeouts = Timeouts {
        connect: Duration::from_secs(1),
        total: Duration::from_secs(5),
        first_byte: Duration::from_secs(2),
        idle: Duration::from_secs(2),
    };
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(1),
    };
    c
}

pub fn request(message: &str) -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![
            ChatMessage::system("You are Acme's assistant."),
            ChatMessage::user(message),
        ],
        temperature: 0.3,
        max_tokens: 512,
    }
}

/// Drains a stream: the concatenated deltas, and every item in order.
pub async fn collect(
    mut rx: Receiver<Result<StreamEvent, ProviderError>>,
) -> (String, Vec<Result<StreamEvent, ProviderError>>) {
    let mut text = String::new();
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the stream should end, not hang")
    {
        if let Ok(StreamEvent::Delta(d)) = &item {
            text.push_str(d);
        }
        items.push(item);
    }
    (text, items)
}

/// The words of a text, as the fake counts tokens.
pub fn words(s: &str) -> u32 {
    s.split_whitespace().count() as u32
}
