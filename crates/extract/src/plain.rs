//! TXT (paragraphs) and CSV (one `column: value` paragraph per row).

use crate::sections::paragraphs;
use crate::{ExtractError, Section};

/// One section holding the text's paragraphs; empty when there is no text.
pub(crate) fn txt_sections(text: &str) -> Vec<Section> {
    let paragraphs = paragraphs(text);
    if paragraphs.is_empty() {
        return Vec::new();
    }
    vec![Section {
        heading_path: Vec::new(),
        page: None,
        text: paragraphs.join("\n\n"),
    }]
}

/// The first record names the columns; each later row becomes a paragraph of `column: value`
/// lines (empty cells skipped). Rows longer than the header get `column N` names; short rows
/// are fine.
pub(crate) fn csv_sections(text: &str) -> Result<Vec<Section>, ExtractError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sniff_delimiter(text))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header: Vec<String> = match records.next() {
        Some(record) => record
            .map_err(|e| ExtractError::Corrupt(format!("CSV: {e}")))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect(),
        None => return Ok(Vec::new()),
    };

    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|e| ExtractError::Corrupt(format!("CSV: {e}")))?;
        let lines: Vec<String> = record
            .iter()
            .enumerate()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(i, value)| {
                let name = header
                    .get(i)
                    .filter(|h| !h.is_empty())
                    .cloned()
                    .unwrap_or_else(|| format!("column {}", i + 1));
                format!("{name}: {}", value.trim())
            })
            .collect();
        if !lines.is_empty() {
            rows.push(lines.join("\n"));
        }
    }
    // A lone header row is still content (e.g. a one-line list of terms).
    if rows.is_empty() {
        let line = header
            .iter()
            .filter(|h| !h.is_empty())
            .cloned()
            .collect::<Vec<_>>();
        if !line.is_empty() {
            rows.push(line.join(" | "));
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Section {
        heading_path: Vec::new(),
        page: None,
        text: rows.join("\n\n"),
    }])
}

/// Picks `,`, `;` or tab: the candidate that splits the first lines most consistently (same
/// non-zero count on each line), then the one most frequent in the header. European Excel exports
/// use `;`; a comma is the default.
pub(crate) fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(10)
        .collect();
    let count = |line: &str, d: u8| count_outside_quotes(line, d);
    let candidates = [b',', b';', b'\t'];
    // Reversed so that `max_by_key`, which keeps the last maximum, prefers the comma on ties.
    let consistent = candidates
        .iter()
        .rev()
        .copied()
        .filter(|&d| {
            let first = lines.first().map_or(0, |l| count(l, d));
            first > 0 && lines.iter().all(|l| count(l, d) == first)
        })
        .max_by_key(|&d| lines.first().map_or(0, |l| count(l, d)));
    consistent
        .or_else(|| {
            candidates
                .iter()
                .rev()
                .copied()
                .filter(|&d| lines.first().is_some_and(|l| count(l, d) > 0))
                .max_by_key(|&d| lines.first().map_or(0, |l| count(l, d)))
        })
        .unwrap_or(b',')
}

fn count_outside_quotes(line: &str, delimiter: u8) -> usize {
    let mut in_quotes = false;
    let mut count = 0;
    for b in line.bytes() {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            count += 1;
        }
    }
    count
}
