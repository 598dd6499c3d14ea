//! DOCX: `word/document.xml` read with quick-xml, behind a zip-bomb guard.
//!
//! WordprocessingML: paragraphs are `w:p`, their text is in `w:t` inside runs `w:r`, with
//! `w:tab`/`w:br`/`w:cr` as run content. The paragraph style (`w:pPr/w:pStyle/@w:val`) is a style
//! id; `word/styles.xml` maps ids to names, and built-in names are always English
//! ("heading 1", "Title") even when the id is localised ("berschrift1").

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use zip::ZipArchive;
use zip::result::ZipError;

use crate::sections::{SectionBuilder, collapse_whitespace};
use crate::{ExtractError, Limits, Section, decode_text};

/// Returns `(Title-style paragraph, sections split at Heading 1–9)`.
pub(crate) fn extract(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Option<String>, Vec<Section>), ExtractError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    check_declared_sizes(&mut archive, limits)?;
    let mut budget = limits.max_unzipped_bytes;
    let document = read_entry(&mut archive, "word/document.xml", &mut budget)?
        .ok_or_else(|| ExtractError::Corrupt("DOCX: word/document.xml is missing".to_owned()))?;
    let styles = match read_entry(&mut archive, "word/styles.xml", &mut budget)? {
        Some(xml) => style_names(&xml),
        None => HashMap::new(),
    };
    parse_document(&document, &styles)
}

/// Refuses the archive before inflating anything if it has too many entries or declares more
/// uncompressed bytes than allowed.
fn check_declared_sizes(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    limits: &Limits,
) -> Result<(), ExtractError> {
    if archive.len() > limits.max_zip_entries {
        tracing::warn!(
            entries = archive.len(),
            "DOCX refused: too many zip entries"
        );
        return Err(ExtractError::ZipBomb);
    }
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let size = archive.by_index_raw(index).map_err(corrupt)?.size();
        total = total.saturating_add(size);
        if total > limits.max_unzipped_bytes {
            tracing::warn!(
                declared = total,
                "DOCX refused: declared size over the limit"
            );
            return Err(ExtractError::ZipBomb);
        }
    }
    Ok(())
}

/// Inflates one entry, reading at most `budget + 1` bytes so a header that lies about the size
/// cannot exhaust memory.
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<String>, ExtractError> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let entry = archive.by_index(index).map_err(corrupt)?;
    let mut buf = Vec::new();
    entry
        .take(budget.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| ExtractError::Corrupt(format!("DOCX: {name} cannot be inflated: {e}")))?;
    let read = buf.len() as u64;
    if read > *budget {
        tracing::warn!(entry = name, "DOCX refused: inflated size over the limit");
        return Err(ExtractError::ZipBomb);
    }
    *budget -= read;
    Ok(Some(decode_text(&buf)))
}

fn corrupt(e: ZipError) -> ExtractError {
    match e {
        ZipError::InvalidPassword => ExtractError::Encrypted,
        ZipError::UnsupportedArchive(msg) if msg.to_ascii_lowercase().contains("password") => {
            ExtractError::Encrypted
        }
        e => ExtractError::Corrupt(format!("DOCX: {e}")),
    }
}

fn xml_error(e: impl std::fmt::Display) -> ExtractError {
    ExtractError::Corrupt(format!("DOCX: invalid XML in word/document.xml: {e}"))
}

/// Style id → style name from `word/styles.xml`; unreadable styles just mean no mapping.
fn style_names(xml: &str) -> HashMap<String, String> {
    let mut names = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == "w:style" => {
                current = attr(&e, "w:styleId");
            }
            Ok(Event::Start(e) | Event::Empty(e)) if e.name().as_ref() == "w:name" => {
                if let (Some(id), Some(name)) = (&current, attr(&e, "w:val")) {
                    names.insert(id.clone(), name);
                }
            }
            Ok(Event::End(e)) if e.name().as_ref() == "w:style" => current = None,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    names
}

fn attr(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .try_get_attribute(name)
        .ok()
        .flatten()
        .map(|a| a.value.into_owned())
}

#[derive(Debug, PartialEq, Eq)]
enum ParaKind {
    Title,
    Heading(u8),
    Body,
}

/// Classifies a paragraph style by its name (from styles.xml) or, failing that, its id.
fn para_kind(style_id: Option<&str>, styles: &HashMap<String, String>) -> ParaKind {
    let Some(id) = style_id else {
        return ParaKind::Body;
    };
    let name = styles.get(id).map_or(id, String::as_str);
    let key: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if key == "title" {
        return ParaKind::Title;
    }
    key.strip_prefix("heading")
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| (1..=9).contains(n))
        .map_or(ParaKind::Body, ParaKind::Heading)
}

#[derive(Default)]
struct Paragraph {
    style: Option<String>,
    text: String,
}

#[derive(Default)]
struct Table {
    lines: Vec<String>,
    row: Vec<String>,
    cell: String,
}

fn parse_document(
    xml: &str,
    styles: &HashMap<String, String>,
) -> Result<(Option<String>, Vec<Section>), ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut builder = SectionBuilder::default();
    let mut title: Option<String> = None;
    // Paragraphs nest through text boxes (`w:txbxContent`), so keep a stack.
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    // Only the outermost table is laid out as rows; nested tables flow into its cells.
    let mut table_depth = 0usize;
    let mut table = Table::default();
    let mut in_run = 0usize;
    let mut in_text = false;
    // `mc:AlternateContent` repeats text boxes in `mc:Fallback` for old readers: read it once.
    let mut in_fallback = 0usize;

    loop {
        let event = reader.read_event().map_err(xml_error)?;
        match &event {
            Event::Start(e) if e.name().as_ref() == "mc:Fallback" => in_fallback += 1,
            Event::End(e) if e.name().as_ref() == "mc:Fallback" => {
                in_fallback = in_fallback.saturating_sub(1);
            }
            _ => {}
        }
        if in_fallback > 0 {
            continue;
        }
        match event {
            Event::Start(e) => match e.name().as_ref() {
                "w:p" => paragraphs.push(Paragraph::default()),
                "w:r" => in_run += 1,
                "w:t" => in_text = true,
                "w:tbl" => {
                    table_depth += 1;
                    if table_depth == 1 {
                        table = Table::default();
                    }
                }
                "w:tr" if table_depth == 1 => table.row.clear(),
                "w:tc" if table_depth == 1 => table.cell.clear(),
                "w:pStyle" => set_style(&e, &mut paragraphs),
                _ => {}
            },
            Event::Empty(e) => match e.name().as_ref() {
                "w:pStyle" => set_style(&e, &mut paragraphs),
                "w:tab" if in_run > 0 => push_text(&mut paragraphs, "\t"),
                "w:br" | "w:cr" if in_run > 0 => push_text(&mut paragraphs, "\n"),
                _ => {}
            },
            Event::Text(t) if in_text => push_text(&mut paragraphs, &t.xml10_content()),
            Event::CData(t) if in_text => push_text(&mut paragraphs, &t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                push_text(&mut paragraphs, &resolve_reference(&r).map_err(xml_error)?);
            }
            Event::End(e) => match e.name().as_ref() {
                "w:t" => in_text = false,
                "w:r" => in_run = in_run.saturating_sub(1),
                "w:p" => {
                    let Some(paragraph) = paragraphs.pop() else {
                        continue;
                    };
                    let text = tidy_paragraph(&paragraph.text);
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(outer) = paragraphs.last_mut() {
                        // A text box: its text belongs to the enclosing paragraph.
                        if !outer.text.is_empty() && !outer.text.ends_with(char::is_whitespace) {
                            outer.text.push(' ');
                        }
                        outer.text.push_str(&text);
                        outer.text.push(' ');
                    } else if table_depth > 0 {
                        if !table.cell.is_empty() {
                            table.cell.push(' ');
                        }
                        table.cell.push_str(&collapse_whitespace(&text));
                    } else {
                        match para_kind(paragraph.style.as_deref(), styles) {
                            ParaKind::Title if title.is_none() => {
                                title = Some(collapse_whitespace(&text))
                            }
                            ParaKind::Heading(level) => builder.heading(level, &text),
                            _ => builder.paragraph(&text),
                        }
                    }
                }
                "w:tc" if table_depth == 1 => table.row.push(std::mem::take(&mut table.cell)),
                "w:tr" if table_depth == 1 => {
                    let row = std::mem::take(&mut table.row);
                    if row.iter().any(|c| !c.is_empty()) {
                        table.lines.push(row.join(" | "));
                    }
                }
                "w:tbl" => {
                    table_depth = table_depth.saturating_sub(1);
                    if table_depth == 0 {
                        builder.paragraph(&std::mem::take(&mut table.lines).join("\n"));
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((title, builder.finish()))
}

fn set_style(element: &BytesStart<'_>, paragraphs: &mut [Paragraph]) {
    if let Some(paragraph) = paragraphs.last_mut() {
        paragraph.style = attr(element, "w:val");
    }
}

fn push_text(paragraphs: &mut [Paragraph], text: &str) {
    if let Some(paragraph) = paragraphs.last_mut() {
        paragraph.text.push_str(text);
    }
}

/// `&amp;` and friends, or a character reference like `&#x2019;`.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, quick_xml::Error> {
    if let Some(c) = reference.resolve_char_ref()? {
        return Ok(c.to_string());
    }
    let name = reference.xml10_content();
    Ok(resolve_predefined_entity(&name)
        .map(str::to_owned)
        .unwrap_or_default())
}

/// Trims each `w:br` line and drops blank ones; tabs stay (they often separate columns).
fn tidy_paragraph(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
