//! Shared text rules: trimming, length limits in characters (not bytes), no control characters.

use crate::DomainError;

/// Trims `raw` and checks it is between `min` and `max` characters with no control characters other than
/// newlines and tabs (which multi-line fields such as instructions need).
pub fn bounded(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, DomainError> {
    let s = raw.trim();
    let len = s.chars().count();
    if len < min {
        return Err(if min == 1 {
            DomainError::invalid(field, "is required")
        } else {
            DomainError::invalid(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    let bad = s
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t')));
    if bad {
        return Err(DomainError::invalid(field, "contains control characters"));
    }
    Ok(s.to_string())
}

/// Lower-cased words of at least two letters or digits, for full-text queries and answer matching. Anything
/// else (punctuation, FTS operators, quotes) is dropped, so user text can never change a query's syntax.
pub fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(|w| w.to_lowercase())
        .collect()
}

/// Common English words that carry no meaning for matching a question to a Q&A pair.
pub const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does",
    "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me",
    "my", "of", "on", "or", "our", "please", "so", "that", "the", "their", "there", "this", "to",
    "us", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with", "would",
    "you", "your", "yours",
];

/// Content words: [`words`] minus [`STOPWORDS`], lightly stemmed (plural `s`), deduplicated.
pub fn content_terms(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(s) {
        if STOPWORDS.contains(&w.as_str()) {
            continue;
        }
        let stem = stem(&w);
        if !out.contains(&stem) {
            out.push(stem);
        }
    }
    out
}

/// A light plural stemmer for matching: "policies" → "policy", "boxes" → "box", "sizes" → "size".
fn stem(w: &str) -> String {
    if let Some(base) = w.strip_suffix("ies")
        && base.chars().count() >= 2
    {
        return format!("{base}y");
    }
    if let Some(base) = w.strip_suffix("es")
        && ["x", "ch", "sh", "ss"].iter().any(|e| base.ends_with(e))
    {
        return base.to_string();
    }
    if let Some(base) = w.strip_suffix('s')
        && base.chars().count() >= 3
        && !base.ends_with('s')
        && !base.ends_with('u')
    {
        return base.to_string();
    }
    w.to_string()
}

/// Words for a full-text query: [`words`] minus [`STOPWORDS`], deduplicated, not stemmed (the search
/// engine stems them its own way).
pub fn query_words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(s) {
        if !STOPWORDS.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_rejects_each_bad_case() {
        let cases = [
            ("", 1, 10, "is required"),
            ("   ", 1, 10, "is required"),
            ("abcdefghijk", 1, 10, "at most 10"),
            ("a\u{0}b", 1, 10, "control"),
            ("a\nb", 1, 10, "control"),
        ];
        for (input, min, max, expect) in cases {
            let err = bounded("name", input, min, max, false).expect_err(input);
            assert!(err.message.contains(expect), "{input:?}: {err}");
        }
        assert_eq!(bounded("name", "  ok  ", 1, 10, false).as_deref(), Ok("ok"));
        assert_eq!(bounded("x", "a\nb", 1, 10, true).as_deref(), Ok("a\nb"));
        // Limits count characters, not bytes.
        assert!(bounded("name", &"é".repeat(10), 1, 10, false).is_ok());
    }

    #[test]
    fn content_terms_drop_stopwords_and_operators() {
        assert_eq!(
            content_terms("How do I get a REFUND? \"refunds\" OR NEAR(x)"),
            vec!["get", "refund", "near"]
        );
        assert_eq!(
            content_terms("What are your opening hours?"),
            vec!["opening", "hour"]
        );
        assert_eq!(content_terms("policies"), vec!["policy"]);
        assert_eq!(content_terms("address"), vec!["address"]);
        assert_eq!(
            content_terms("sizes boxes watches shoes prices status bus"),
            vec!["size", "box", "watch", "shoe", "price", "status", "bus"]
        );
        assert_eq!(
            query_words("What SIZES do you stock, sizes?"),
            vec!["sizes", "stock"]
        );
    }
}
