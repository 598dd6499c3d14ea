//! Markdown: sections at ATX (`## x`) and setext (`x\n---`) headings; fenced code kept whole.
//!
//! A line scanner rather than a full CommonMark parser: chunking only needs headings and
//! paragraph boundaries, and the Markdown syntax inside paragraphs is useful context for the LLM.

use crate::Section;
use crate::sections::{SectionBuilder, collapse_whitespace, normalize_newlines};

/// Returns `(title, sections)`. The title is the front-matter `title:` or the first `#` heading.
pub(crate) fn extract(text: &str) -> (Option<String>, Vec<Section>) {
    let text = normalize_newlines(text);
    let mut lines: Vec<&str> = text.lines().collect();
    let mut title = None;
    if let Some((front_matter_title, body_start)) = front_matter(&lines) {
        title = front_matter_title;
        lines.drain(..body_start);
    }

    let mut builder = SectionBuilder::default();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut code: Vec<&str> = Vec::new();

    for line in lines {
        if let Some((fence_char, fence_len)) = fence {
            code.push(line);
            if is_fence_close(line, fence_char, fence_len) {
                builder.paragraph(&code.join("\n"));
                code.clear();
                fence = None;
            }
            continue;
        }
        if let Some(open) = fence_open(line) {
            flush(&mut builder, &mut paragraph);
            fence = Some(open);
            code.push(line);
            continue;
        }
        if let Some((level, heading)) = atx_heading(line) {
            flush(&mut builder, &mut paragraph);
            if level == 1 && title.is_none() {
                title = Some(collapse_whitespace(heading));
            }
            builder.heading(level, heading);
            continue;
        }
        if let Some(level) = setext_underline(line)
            && !paragraph.is_empty()
        {
            let heading = paragraph.join(" ");
            paragraph.clear();
            if level == 1 && title.is_none() {
                title = Some(collapse_whitespace(&heading));
            }
            builder.heading(level, &heading);
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut builder, &mut paragraph);
        } else {
            paragraph.push(line.trim_end());
        }
    }
    // An unclosed fence runs to the end of the document, as in CommonMark.
    if !code.is_empty() {
        builder.paragraph(&code.join("\n"));
    }
    flush(&mut builder, &mut paragraph);
    (title.filter(|t| !t.is_empty()), builder.finish())
}

fn flush(builder: &mut SectionBuilder, paragraph: &mut Vec<&str>) {
    if !paragraph.is_empty() {
        builder.paragraph(&paragraph.join("\n"));
        paragraph.clear();
    }
}

/// `# Heading` (up to three spaces of indent, 1–6 `#`, then a space) → `(level, text)`, with any
/// closing `###` removed.
pub(crate) fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let after = &rest[hashes..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let mut text = after.trim();
    let without_closing = text.trim_end_matches('#');
    if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) {
        text = without_closing.trim_end();
    }
    if text.is_empty() {
        return None;
    }
    u8::try_from(hashes).ok().map(|level| (level, text))
}

/// `===` → level 1, `---` → level 2 (only meaningful right after a paragraph line).
fn setext_underline(line: &str) -> Option<u8> {
    let trimmed = line.trim();
    if line.len() - line.trim_start().len() > 3 || trimmed.is_empty() {
        return None;
    }
    if trimmed.chars().all(|c| c == '=') {
        Some(1)
    } else if trimmed.chars().all(|c| c == '-') {
        Some(2)
    } else {
        None
    }
}

fn fence_open(line: &str) -> Option<(char, usize)> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.len() - trimmed.trim_start_matches(fence_char).len();
    (len >= 3).then_some((fence_char, len))
}

fn is_fence_close(line: &str, fence_char: char, fence_len: usize) -> bool {
    let trimmed = line.trim();
    trimmed.len() >= fence_len && trimmed.chars().all(|c| c == fence_char)
}

/// YAML front matter (`---` … `---`/`...` on the first lines) → `(title, index of first body line)`.
fn front_matter(lines: &[&str]) -> Option<(Option<String>, usize)> {
    if lines.first().map(|l| l.trim_end()) != Some("---") {
        return None;
    }
    let end = lines
        .iter()
        .skip(1)
        .position(|l| matches!(l.trim_end(), "---" | "..."))?
        + 1;
    let title = lines[1..end].iter().find_map(|l| {
        let value = l.strip_prefix("title:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then(|| value.to_owned())
    });
    Some((title, end + 1))
}
