//! Chunking: structure first (the extractor's sections: headings, PDF pages, CSV rows), then size with
//! overlap inside a section, measured in approximate model tokens so a chunk fits the embedder's window.

use mtdesk_extract::Extracted;
use text_splitter::{ChunkConfig, ChunkSizer, TextSplitter};

/// Most a chunk may hold, in approximate WordPiece tokens. MiniLM reads 256 tokens; the title and heading
/// are prepended when indexing, so the body stays well below.
pub const MAX_TOKENS: usize = 320;
/// A chunk smaller than this is merged with its neighbour where the structure allows.
pub const MIN_TOKENS: usize = 200;
/// Tokens repeated from the end of one chunk at the start of the next, so a sentence cut at a border is
/// still whole in one of them.
pub const OVERLAP_TOKENS: usize = 30;

/// A piece of a source, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDraft {
    pub title: String,
    /// The heading path, "Chapter > Section".
    pub heading: String,
    pub url: Option<String>,
    pub page: Option<u32>,
    pub text: String,
}

impl ChunkDraft {
    /// What the lexical and the vector leg index: title, heading path and text.
    pub fn indexed_text(title: &str, heading: &str, text: &str) -> String {
        let mut s = String::with_capacity(title.len() + heading.len() + text.len() + 4);
        for part in [title, heading] {
            let part = part.trim();
            if !part.is_empty() && !s.contains(part) {
                s.push_str(part);
                s.push_str(". ");
            }
        }
        s.push_str(text);
        s
    }
}

/// Counts WordPiece-like tokens without a tokenizer: each word is one token plus one per further seven
/// characters (long words split into pieces), each punctuation mark one token.
struct ApproxTokens;

impl ChunkSizer for ApproxTokens {
    fn size(&self, chunk: &str) -> usize {
        approx_tokens(chunk)
    }
}

pub fn approx_tokens(s: &str) -> usize {
    let mut n = 0;
    let mut run = 0usize;
    for c in s.chars() {
        if c.is_alphanumeric() {
            run += 1;
        } else {
            if run > 0 {
                n += 1 + (run - 1) / 7;
                run = 0;
            }
            if !c.is_whitespace() {
                n += 1;
            }
        }
    }
    if run > 0 {
        n += 1 + (run - 1) / 7;
    }
    n
}

/// Splits an extracted document into chunks. `fallback_title` names a document without a title of its own
/// (the file name or URL).
pub fn chunk_document(doc: &Extracted, fallback_title: &str, url: Option<&str>) -> Vec<ChunkDraft> {
    let config = ChunkConfig::new(MIN_TOKENS..MAX_TOKENS)
        .with_sizer(ApproxTokens)
        .with_overlap(OVERLAP_TOKENS)
        .unwrap_or_else(|_| ChunkConfig::new(MIN_TOKENS..MAX_TOKENS).with_sizer(ApproxTokens));
    let splitter = TextSplitter::new(config);
    let title = doc
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(fallback_title)
        .to_string();
    let mut out = Vec::new();
    for section in &doc.sections {
        let heading = section.heading_path.join(" > ");
        for piece in splitter.chunks(&section.text) {
            let text = piece.trim();
            if text.is_empty() {
                continue;
            }
            out.push(ChunkDraft {
                title: title.clone(),
                heading: heading.clone(),
                url: url.map(str::to_string),
                page: section.page,
                text: text.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtdesk_extract::{DocKind, Section};

    fn doc(sections: Vec<Section>) -> Extracted {
        Extracted {
            kind: DocKind::Markdown,
            title: Some("Guide".into()),
            sections,
        }
    }

    #[test]
    fn token_estimate_counts_words_pieces_and_punctuation() {
        assert_eq!(approx_tokens("Hello, world!"), 4);
        assert_eq!(approx_tokens("internationalization"), 3);
        assert_eq!(approx_tokens(""), 0);
    }

    #[test]
    fn sections_keep_their_heading_path_and_page_and_long_ones_are_split_with_overlap() {
        let long: String = (0..400)
            .map(|i| format!("Sentence number {i} talks about refunds."))
            .collect::<Vec<_>>()
            .join(" ");
        let d = doc(vec![
            Section {
                heading_path: vec!["Billing".into(), "Refunds".into()],
                page: Some(3),
                text: "Short section.".into(),
            },
            Section {
                heading_path: vec!["Long".into()],
                page: None,
                text: long,
            },
        ]);
        let chunks = chunk_document(&d, "file.md", None);
        assert_eq!(chunks[0].heading, "Billing > Refunds");
        assert_eq!(chunks[0].page, Some(3));
        assert_eq!(chunks[0].title, "Guide");
        assert!(chunks.len() > 5);
        for c in &chunks[1..] {
            assert!(approx_tokens(&c.text) <= MAX_TOKENS, "{}", c.text);
            assert_eq!(c.heading, "Long");
        }
        // Overlap: consecutive chunks share text.
        let a = &chunks[1].text;
        let b = &chunks[2].text;
        let tail: String = a
            .chars()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(
            b.contains(tail.trim()),
            "no overlap between {a:?} and {b:?}"
        );
    }

    #[test]
    fn indexed_text_prefixes_title_and_heading_once() {
        assert_eq!(
            ChunkDraft::indexed_text("Guide", "Refunds", "Text."),
            "Guide. Refunds. Text."
        );
        assert_eq!(ChunkDraft::indexed_text("", "", "Text."), "Text.");
    }
}
