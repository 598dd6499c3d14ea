//! CSV import of Q&A pairs: `question,answer` rows, an optional header row, per-row errors.

use mtdesk_domain::qa::IMPORT_MAX_ROWS;
use mtdesk_domain::{QaPairInput, RowError};

/// Parses a CSV file of `question,answer` rows. A first row reading `question,answer` (any case) is a
/// header and skipped. Returns the valid pairs and an error for each refused row (1-based line numbers as
/// a spreadsheet shows them). Fails as a whole only when the file is not CSV at all or too long.
pub fn parse_qa_csv(bytes: &[u8]) -> Result<(Vec<QaPairInput>, Vec<RowError>), String> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).map_err(
        |_| "the file is not UTF-8 text; export it from your spreadsheet as CSV UTF-8".to_string(),
    )?;
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map(|p| p.line() as usize).unwrap_or(i + 1);
                errors.push(RowError {
                    row,
                    message: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map(|p| p.line() as usize)
            .unwrap_or(i + 1);
        if i == 0
            && record.len() == 2
            && record[0].eq_ignore_ascii_case("question")
            && record[1].eq_ignore_ascii_case("answer")
        {
            continue;
        }
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        if pairs.len() + errors.len() >= IMPORT_MAX_ROWS {
            return Err(format!(
                "the file has more than {IMPORT_MAX_ROWS} rows; split it"
            ));
        }
        if record.len() != 2 {
            errors.push(RowError {
                row: line,
                message: format!(
                    "expected 2 columns (question, answer), found {}",
                    record.len()
                ),
            });
            continue;
        }
        match QaPairInput::parse(&record[0], &record[1]) {
            Ok(p) => pairs.push(p),
            Err(e) => errors.push(RowError {
                row: line,
                message: e.to_string(),
            }),
        }
    }
    Ok((pairs, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_quotes_and_bad_rows() {
        let csv = "Question,Answer\n\"Opening hours?\",\"9-5, Mon-Fri\"\nonly one column\n,empty question\n\nRefunds?,30 days\n";
        let (pairs, errors) = parse_qa_csv(csv.as_bytes()).expect("parses");
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].answer, "9-5, Mon-Fri");
        assert_eq!(
            errors,
            vec![
                RowError {
                    row: 3,
                    message: "expected 2 columns (question, answer), found 1".into()
                },
                RowError {
                    row: 4,
                    message: "question: is required".into()
                },
            ]
        );
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        assert!(parse_qa_csv(b"").is_err());
        assert!(parse_qa_csv(b"\xff\xfe\x00").is_err());
    }
}
