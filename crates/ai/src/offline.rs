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

/// The offline answer from document passages: the most relevant sentences of the top passages (up to
/// three, in document order within each passage), then a source line. `None` without passages.
pub fn excerpt(message: &str, passages: &[mtdesk_knowledge::Hit]) -> Option<String> {
    let q: Vec<String> = mtdesk_knowledge::analyze::terms(message);
    if q.is_empty() || passages.is_empty() {
        return None;
    }
    let mut scored: Vec<(f64, usize, usize, String)> = Vec::new();
    for (pi, h) in passages.iter().take(2).enumerate() {
        for (si, sentence) in split_sentences(&h.text).into_iter().enumerate() {
            let terms = mtdesk_knowledge::analyze::terms(&sentence);
            if terms.is_empty() {
                continue;
            }
            let hits = q.iter().filter(|t| terms.contains(t)).count() as f64;
            // Prefer sentences that cover the question; a little weight to the best passage.
            let score = hits / q.len() as f64 + if pi == 0 { 0.05 } else { 0.0 };
            if hits > 0.0 {
                scored.push((score, pi, si, sentence));
            }
        }
    }
    if scored.is_empty() {
        let first = split_sentences(&passages[0].text)
            .into_iter()
            .take(2)
            .collect::<Vec<_>>();
        scored = first
            .into_iter()
            .enumerate()
            .map(|(i, s)| (0.0, 0, i, s))
            .collect();
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best: Vec<(usize, usize, String)> = scored
        .into_iter()
        .take(3)
        .map(|(_, p, s, t)| (p, s, t))
        .collect();
    best.sort_by_key(|(p, s, _)| (*p, *s));
    let body = best
        .into_iter()
        .map(|(_, _, t)| t)
        .collect::<Vec<_>>()
        .join(" ");
    Some(format!(
        "{body}\n\nSource: {}",
        crate::passage_label(&passages[0])
    ))
}

fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' && chars.get(i + 1) == Some(&'\n') {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
            continue;
        }
        cur.push(if c == '\n' { ' ' } else { c });
        let end =
            matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if end && cur.trim().chars().count() > 1 {
            out.push(cur.trim().to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_stops_and_blank_lines() {
        assert_eq!(
            split_sentences("One. Two? Three\n\nFour is here v1.2 ok"),
            vec!["One.", "Two?", "Three", "Four is here v1.2 ok"]
        );
    }

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
