//! Building [`Section`]s from a stream of headings and paragraphs, shared by every format.

use crate::Section;

/// Collects paragraphs under the current heading path; a heading closes the current section.
#[derive(Debug, Default)]
pub(crate) struct SectionBuilder {
    sections: Vec<Section>,
    /// `(level, text)`, outermost first; levels strictly increase.
    path: Vec<(u8, String)>,
    paragraphs: Vec<String>,
}

impl SectionBuilder {
    /// Adds a paragraph (may contain `\n` line breaks) to the current section; blank ones are
    /// dropped.
    pub(crate) fn paragraph(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.paragraphs.push(text.to_owned());
        }
    }

    /// Starts a section under a heading of `level` (1 = outermost). Headings at the same or a
    /// deeper level leave the path; an empty heading is ignored.
    pub(crate) fn heading(&mut self, level: u8, text: &str) {
        let text = collapse_whitespace(text);
        if text.is_empty() {
            return;
        }
        self.flush();
        while self.path.last().is_some_and(|(l, _)| *l >= level) {
            self.path.pop();
        }
        self.path.push((level, text));
    }

    fn flush(&mut self) {
        if self.paragraphs.is_empty() {
            return;
        }
        self.sections.push(Section {
            heading_path: self.path.iter().map(|(_, t)| t.clone()).collect(),
            page: None,
            text: std::mem::take(&mut self.paragraphs).join("\n\n"),
        });
    }

    /// The sections in document order, none of them empty.
    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.flush();
        self.sections
    }
}

/// Collapses every whitespace run to one space and trims the ends.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits plain text into paragraphs at blank lines. Line endings are normalised, trailing
/// spaces are dropped, and lines inside a paragraph are kept.
pub(crate) fn paragraphs(text: &str) -> Vec<String> {
    let text = normalize_newlines(text);
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// `\r\n` and lone `\r` (classic Mac) become `\n`.
pub(crate) fn normalize_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    }
}
