//! Q&A pairs: a question customers ask and the answer the business wants given.

use crate::{DomainError, text};

pub const QUESTION_MAX: usize = 1_000;
pub const ANSWER_MAX: usize = 10_000;
/// A CSV import refuses files with more rows than this (one request, one transaction).
pub const IMPORT_MAX_ROWS: usize = 5_000;

/// A validated question/answer pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaPairInput {
    pub question: String,
    pub answer: String,
}

impl QaPairInput {
    pub fn parse(question: &str, answer: &str) -> Result<Self, DomainError> {
        Ok(Self {
            question: text::bounded("question", question, 1, QUESTION_MAX, true)?,
            answer: text::bounded("answer", answer, 1, ANSWER_MAX, true)?,
        })
    }
}

/// One refused CSV row: its 1-based line number in the file and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub row: usize,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_long_fields_are_refused() {
        assert_eq!(
            QaPairInput::parse("", "a").expect_err("q").field,
            "question"
        );
        assert_eq!(QaPairInput::parse("q", " ").expect_err("a").field, "answer");
        let long = "a".repeat(ANSWER_MAX + 1);
        assert_eq!(
            QaPairInput::parse("q", &long).expect_err("long").field,
            "answer"
        );
        assert!(QaPairInput::parse("Opening hours?", "9 to 5,\nMonday to Friday.").is_ok());
    }
}
