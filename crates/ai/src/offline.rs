//! Retrieval over Q&A pairs, and the offline answerer.
//!
//! Full-text search proposes candidates; [`match_score`] decides. BM25 scores are relative (they depend on
//! the collection), so they rank candidates but cannot say "this is a good enough match". Thresholds
//! therefore apply to [`match_score`], an absolute 0..=1 overlap of content words that behaves the same on
//! SQLite and PostgreSQL.

use mtdesk_domain::text::{content_terms, query_words};
use mtdesk_storage::{Chatbot, QaPair, StorageError, Store};

/// The offline answerer uses a pair only at or above this score; below it the fallback reply is given.
/// 0.5 means, for example, that a two-word question must share both words with the pair's question, or
/// that half of the words of both questions agree.
pub const MATCH_THRESHOLD: f64 = 0.5;

/// Pairs at or above this score are given to an LLM as context (it can judge partial matches).
pub const CONTEXT_THRESHOLD: f64 = 0.2;

/// At most this many pairs go into the prompt.
pub const CONTEXT_MAX: usize = 4;

/// How many full-text candidates are re-scored.
const CANDIDATES: i64 = 8;

/// How well a customer's `message` matches a Q&A pair, in 0..=1.
///
/// The Dice overlap of content words between the message and the pair's question, or, if higher, 0.6 ×
/// the share of the message's words found in the pair (so "do you ship to Canada?" finds "Where do you
/// ship?" → "…the US and Canada…" only when most words are there).
pub fn match_score(message: &str, question: &str, answer: &str) -> f64 {
    let m = content_terms(message);
    if m.is_empty() {
        return 0.0;
    }
    let q = content_terms(question);
    let a = content_terms(answer);
    let in_q = m.iter().filter(|t| q.contains(t)).count() as f64;
    let dice = if q.is_empty() {
        0.0
    } else {
        2.0 * in_q / (m.len() + q.len()) as f64
    };
    let in_a = m.iter().filter(|t| a.contains(t) || q.contains(t)).count() as f64;
    let answer_cover = 0.6 * in_a / m.len() as f64;
    dice.max(answer_cover)
}

/// A Q&A pair found for a message, with its [`match_score`].
#[derive(Debug, Clone)]
pub struct Candidate {
    pub pair: QaPair,
    pub score: f64,
}

/// Candidates for `message`, best first (ties keep the full-text order).
pub async fn retrieve(
    store: &Store,
    bot: &Chatbot,
    message: &str,
) -> Result<Vec<Candidate>, StorageError> {
    let terms = query_words(message);
    let found = store
        .search_qa_pairs(&bot.account_id, &bot.id, &terms, CANDIDATES)
        .await?;
    let mut out: Vec<Candidate> = found
        .into_iter()
        .map(|c| Candidate {
            score: match_score(message, &c.pair.question, &c.pair.answer),
            pair: c.pair,
        })
        .collect();
    // A stable sort keeps the search engine's order among equal scores.
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}

/// The offline reply: the best pair's answer when it matches well enough, else `None` (fallback reply).
pub fn best_match(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.first().filter(|c| c.score >= MATCH_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_scores_separate_good_and_bad_matches() {
        let cases = [
            (
                "How do I get a refund?",
                "Can I get a refund?",
                "Yes, within 30 days.",
                true,
            ),
            ("refund", "What is your refund policy?", "30 days.", true),
            (
                "What are your opening hours on Sunday?",
                "Opening hours?",
                "9 to 5.",
                true,
            ),
            (
                "do you ship to canada",
                "Where do you ship?",
                "We ship to the US and Canada.",
                true,
            ),
            (
                "What's the weather like?",
                "Can I get a refund?",
                "Yes, within 30 days.",
                false,
            ),
            (
                "Can I pay by card?",
                "Can I get a refund?",
                "Yes, within 30 days.",
                false,
            ),
            ("", "Can I get a refund?", "Yes.", false),
            ("???", "Can I get a refund?", "Yes.", false),
        ];
        for (msg, q, a, good) in cases {
            let s = match_score(msg, q, a);
            assert_eq!(s >= MATCH_THRESHOLD, good, "{msg:?} vs {q:?}: {s}");
            assert!((0.0..=1.0).contains(&s));
        }
    }
}
