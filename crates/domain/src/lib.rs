//! MT Desk's domain: ids, parsed inputs and the rules they obey.
//!
//! Nothing here does I/O. Every input that crosses a boundary (HTTP form, JSON body, CLI flag, CSV row)
//! is parsed into one of these types first, so the rest of the code can trust it: a `NewAccount` always has
//! a valid email, a password that passed the rules and an age confirmation; a `ChatbotSettings` always has
//! a temperature in range. Each rejection is a [`DomainError::Invalid`] naming the field.

pub mod account;
pub mod analytics;
pub mod channel;
pub mod chatbot;
pub mod contact;
pub mod end_user;
pub mod ids;
pub mod knowledge;
pub mod month;
pub mod privacy_request;
pub mod qa;
pub mod text;

pub use account::{AccountUpdate, Email, NewAccount, Password, PersonName};
pub use channel::{ChannelKind, ChannelStatus, ConversationMode, Window};
pub use chatbot::{ChainLink, ChatbotDraft, ChatbotSettings, Provider};
pub use ids::{
    AccountId, AnswerId, ChannelId, ChatbotId, ChunkId, ConversationId, JobId, QaPairId, SourceId,
    TokenId,
};
pub use knowledge::{CrawlLimits, EmbeddingChoice, SourceKind, SourceStatus, SyncSchedule};
pub use month::Month;
pub use qa::{QaPairInput, RowError};

/// Why an input was refused. The field is the name the user typed it into, so the dashboard and the API can
/// put the message next to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DomainError {
    pub field: &'static str,
    pub message: String,
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Milliseconds since the Unix epoch: the one timestamp format stored in both databases.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
