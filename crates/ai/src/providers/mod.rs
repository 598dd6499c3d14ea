//! HTTP clients for the LLM providers, all speaking the OpenAI chat dialect (external-apis.md §7).
//!
//! One [`LlmClient`] serves every provider; a [`ProviderConfig`] says where and how to call one. The
//! per-provider differences (extra headers, token field, error shapes, `<think>` blocks) live in
//! `quirks.rs`, the error mapping in `error.rs`, the `text/event-stream` parser in `sse.rs`.
//!
//! Guarantees callers rely on:
//! - Every failure is a [`ProviderError`] whose [`ErrorKind`] says what to do (retry later, tell the owner
//!   to fix the key, top up credits…); its `message` is the provider's own words, capped and with the API
//!   key replaced by `[redacted]`. The key never appears in `Debug` output of a config or an error.
//! - A streamed answer either ends with [`StreamEvent::Done`] or with an `Err` as the last item: a
//!   truncated answer is never reported as complete.
//! - Calls are bounded: [`Timeouts::total`] caps a whole call, retries and backoff included.

mod client;
mod config;
mod error;
mod quirks;
mod sse;

pub use client::LlmClient;
pub use config::{ProviderConfig, RetryPolicy, Timeouts, default_base_url};
pub use error::{ErrorKind, ProviderError};
pub use mtdesk_domain::Provider;

use serde::{Deserialize, Serialize};

/// Who wrote a message of the conversation sent to the model (external-apis.md §7.1 `messages[].role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat completion request. `max_tokens` is sent as `max_completion_tokens` to MiniMax (§7.5).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_tokens: u32,
}

/// Token counts as reported by the provider (`usage`, external-apis.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A complete, non-streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The answer text; MiniMax `<think>…</think>` reasoning already removed.
    pub content: String,
    /// The model that answered, as the provider names it (falls back to the requested model).
    pub model: String,
    pub usage: Option<Usage>,
    /// `stop`, `length`, `content_filter`… as sent by the provider; `unknown` if it sent none.
    pub finish_reason: String,
    /// How many HTTP requests it took (1 = no retry).
    pub attempts: u32,
}

/// One item of a streamed answer. The text of all `Delta`s, in order, is the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer (never reasoning text).
    Delta(String),
    /// The answer is complete. Always the last item of a successful stream.
    Done {
        usage: Option<Usage>,
        finish_reason: String,
    },
}
