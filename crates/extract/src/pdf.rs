//! PDF: one section per page through pdf-extract (lopdf inside).
//!
//! pdf-extract panics on some PDFs by design (jrmuizel/pdf-extract#47, #129); the callers in
//! `lib.rs` catch that. Here we load the document ourselves so encryption and corruption get
//! their own errors, then ask pdf-extract for each page in turn.

use std::time::Instant;

use pdf_extract::{Document, Object, PlainTextOutput, output_doc_page};

use crate::sections::paragraphs;
use crate::{ExtractError, Section};

/// Returns `(title from the info dictionary, one section per page with text)`.
///
/// Pages without text are skipped, so page numbers may have gaps; a PDF with no text at all is
/// [`ExtractError::Empty`] (a scan without a text layer).
pub(crate) fn extract(
    bytes: &[u8],
    deadline: Instant,
) -> Result<(Option<String>, Vec<Section>), ExtractError> {
    let document = match Document::load_mem(bytes) {
        Ok(document) => document,
        // A broken encryption dictionary can fail the load itself.
        Err(_) if has_encrypt_entry(bytes) => return Err(ExtractError::Encrypted),
        Err(e) => return Err(ExtractError::Corrupt(format!("PDF: {e}"))),
    };
    // lopdf already decrypted the file if the empty user password opens it (owner-password-only
    // PDFs); what is still encrypted needs a password we do not have.
    if document.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Corrupt("PDF: no pages found".to_owned()));
    }

    let mut sections = Vec::new();
    let mut failed_pages = 0usize;
    for &page_number in pages.keys() {
        if Instant::now() > deadline {
            return Err(ExtractError::Timeout);
        }
        let mut raw = String::new();
        if let Err(e) = output_doc_page(&document, &mut PlainTextOutput::new(&mut raw), page_number)
        {
            tracing::debug!(page = page_number, error = %e, "PDF page not readable");
            failed_pages += 1;
            continue;
        }
        // pdf-extract indents lines with spaces from its layout guesses; they carry no meaning.
        let raw: Vec<&str> = raw.lines().map(str::trim).collect();
        let text = paragraphs(&raw.join("\n")).join("\n\n");
        if !text.is_empty() {
            sections.push(Section {
                heading_path: Vec::new(),
                page: Some(page_number),
                text,
            });
        }
    }
    if sections.is_empty() && failed_pages == pages.len() {
        return Err(ExtractError::Corrupt(
            "PDF: none of its pages could be read".to_owned(),
        ));
    }
    Ok((info_title(&document), sections))
}

fn has_encrypt_entry(bytes: &[u8]) -> bool {
    bytes.windows(b"/Encrypt".len()).any(|w| w == b"/Encrypt")
}

/// `/Title` of the trailer's `/Info` dictionary, if present and not blank.
fn info_title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let info = match info {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    let title = match info.get(b"Title").ok()? {
        Object::String(bytes, _) => decode_pdf_string(bytes),
        _ => return None,
    };
    let title = crate::sections::collapse_whitespace(&title);
    (!title.is_empty()).then_some(title)
}

/// PDF text strings are UTF-16BE with a BOM, or PDFDocEncoding (Latin-1 for printable text).
fn decode_pdf_string(bytes: &[u8]) -> String {
    if let Some(utf16) = bytes.strip_prefix(b"\xFE\xFF") {
        encoding_rs::UTF_16BE
            .decode_without_bom_handling(utf16)
            .0
            .into_owned()
    } else if let Some(utf8) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(utf8).into_owned()
    } else {
        bytes.iter().map(|&b| char::from(b)).collect()
    }
}
