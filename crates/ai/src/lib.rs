//! Answering a customer's message.
//!
//! [`answer`] is the seam the dashboard's test chat, the API and (later) the channels call. Today every
//! chatbot answers with the offline answerer: the best-matching Q&A pair above [`MATCH_THRESHOLD`], else the
//! chatbot's fallback reply. It needs no API key, so the product is useful out of the box. When LLM
//! providers arrive they plug in behind the same function, and the offline answerer stays the last link of
//! every fallback chain.

pub mod offline;

use mtdesk_domain::Provider;
use mtdesk_storage::{Chatbot, StorageError, Store};
use serde::Serialize;

pub use offline::{MATCH_THRESHOLD, match_score};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// A Q&A pair of the chatbot matched the question.
    QaPair,
    /// Nothing matched well enough: the chatbot's fallback reply.
    Fallback,
}

/// The Q&A pair an answer was taken from, shown as the answer's source.
#[derive(Debug, Clone, Serialize)]
pub struct MatchedQa {
    pub id: String,
    pub question: String,
    /// 0..=1, how well the customer's words matched this pair (see [`match_score`]).
    pub score: f64,
}

/// An answer with everything needed to show how it was produced.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub text: String,
    pub source: AnswerSource,
    /// The engine that produced the text: `offline` today.
    pub answered_by: &'static str,
    pub matched: Option<MatchedQa>,
    /// Set when the chatbot is configured for a provider this build cannot call yet.
    pub notice: Option<String>,
    pub latency_ms: u64,
}

/// Answers `message` for `bot`.
#[tracing::instrument(skip_all, fields(chatbot.id = %bot.id))]
pub async fn answer(store: &Store, bot: &Chatbot, message: &str) -> Result<Answer, StorageError> {
    let started = std::time::Instant::now();
    let mut a = offline::answer(store, bot, message).await?;
    if bot.settings.provider != Provider::Offline {
        a.notice = Some(format!(
            "{} is not available in this version yet, so the offline answerer replied.",
            bot.settings.provider.label()
        ));
    }
    a.latency_ms = started.elapsed().as_millis() as u64;
    Ok(a)
}
