//! Format detection from content, and text decoding.

use std::io::Cursor;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

use crate::{DocKind, ExtractError};

/// How far into a file a format marker may sit and still count as "at the start".
const SNIFF_LEN: usize = 1024;
/// How much of a file is scanned for NUL bytes to tell binary from text.
const BINARY_SCAN_LEN: usize = 8192;

/// Detects the format from the content; the file name only decides between text formats.
///
/// - `%PDF-` in the first KiB → [`DocKind::Pdf`], whatever the name says.
/// - A zip holding `word/document.xml` → [`DocKind::Docx`]; any other zip is
///   [`ExtractError::Unsupported`] naming what it is (XLSX, PPTX, OpenDocument, plain ZIP).
/// - Known binary signatures (images, executables, archives, old Office files) and any other
///   content with NUL bytes → [`ExtractError::Unsupported`], e.g. "looks like a PNG image, not a PDF".
/// - Empty or whitespace-only content → [`ExtractError::Empty`].
/// - Text that starts like an HTML document → [`DocKind::Html`]; otherwise the extension decides
///   (`.md`/`.markdown` Markdown, `.csv`/`.tsv` CSV, `.html`/`.htm` HTML), and a file without
///   extension is Markdown when it has `# ` headings, else [`DocKind::Txt`].
///
/// Never panics; reads at most the zip central directory beyond the first few KiB.
pub fn detect(bytes: &[u8], filename: Option<&str>) -> Result<DocKind, ExtractError> {
    let ext = filename.and_then(extension);
    let claimed = ext.as_deref().and_then(claimed_format);
    let not_claimed = |what: &str| match claimed {
        Some(c) => format!("looks like {what}, not {c}"),
        None => format!("looks like {what}"),
    };

    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    if find(head, b"%PDF-").is_some() {
        return Ok(DocKind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return detect_zip(bytes, ext.as_deref(), &not_claimed);
    }
    if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        // Word saves a password-protected DOCX as an OLE2 container ("EncryptedPackage").
        if ext.as_deref() == Some("docx") {
            return Err(ExtractError::Encrypted);
        }
        return Err(ExtractError::Unsupported(not_claimed(
            "an old-format Office file (.doc, .xls or .ppt); save it as DOCX or PDF first",
        )));
    }
    if let Some(what) = binary_signature(bytes) {
        return Err(ExtractError::Unsupported(not_claimed(what)));
    }
    let has_bom = Encoding::for_bom(bytes).is_some();
    if !has_bom && bytes[..bytes.len().min(BINARY_SCAN_LEN)].contains(&0) {
        return Err(ExtractError::Unsupported(not_claimed("binary data")));
    }

    let text = decode_text(&bytes[..bytes.len().min(64 * 1024)]);
    if text.trim().is_empty() && decode_text(bytes).trim().is_empty() {
        return Err(ExtractError::Empty);
    }
    if looks_like_html(&text) {
        return Ok(DocKind::Html);
    }
    match ext.as_deref() {
        Some("md" | "markdown" | "mdown" | "mkd") => Ok(DocKind::Markdown),
        Some("csv" | "tsv") => Ok(DocKind::Csv),
        Some("html" | "htm" | "xhtml") => Ok(DocKind::Html),
        Some("pdf" | "docx") => Err(ExtractError::Unsupported(not_claimed("plain text"))),
        None if looks_like_markdown(&text) => Ok(DocKind::Markdown),
        _ => Ok(DocKind::Txt),
    }
}

/// Decodes text of unknown encoding; never fails, never panics.
///
/// A BOM wins (UTF-8, UTF-16 LE/BE) and is stripped. Without one, valid UTF-8 is taken as is;
/// anything else is decoded as windows-1252, the usual encoding of old Windows text and CSV
/// exports. A UTF-8 file cut in the middle of its last character stays UTF-8.
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling(&bytes[bom_len..])
            .0
            .into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        // Only an incomplete sequence at the very end: a truncated UTF-8 file.
        Err(e) if e.error_len().is_none() => {
            UTF_8.decode_without_bom_handling(bytes).0.into_owned()
        }
        Err(_) => WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// Like [`decode_text`], but non-UTF-8 HTML honours a `charset=` declared in its first KiB.
pub(crate) fn decode_html(bytes: &[u8]) -> String {
    if Encoding::for_bom(bytes).is_some() || std::str::from_utf8(bytes).is_ok() {
        return decode_text(bytes);
    }
    match declared_charset(&bytes[..bytes.len().min(SNIFF_LEN)]) {
        Some(encoding) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
        None => decode_text(bytes),
    }
}

fn declared_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let start = find(&lower, b"charset=")? + b"charset=".len();
    let label: Vec<u8> = lower[start..]
        .iter()
        .skip_while(|b| matches!(b, b'"' | b'\'' | b' '))
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        .copied()
        .collect();
    Encoding::for_label(&label)
}

fn detect_zip(
    bytes: &[u8],
    ext: Option<&str>,
    not_claimed: &dyn Fn(&str) -> String,
) -> Result<DocKind, ExtractError> {
    let archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(e) if ext == Some("docx") => {
            return Err(ExtractError::Corrupt(format!(
                "its zip container cannot be read: {e}"
            )));
        }
        Err(_) => {
            return Err(ExtractError::Unsupported(not_claimed(
                "a damaged ZIP archive",
            )));
        }
    };
    let has = |name: &str| archive.index_for_name(name).is_some();
    if has("word/document.xml") {
        return Ok(DocKind::Docx);
    }
    let what = if has("xl/workbook.xml") {
        "an Excel workbook (XLSX); save it as CSV first"
    } else if has("ppt/presentation.xml") {
        "a PowerPoint presentation (PPTX); export it as PDF first"
    } else if has("content.xml") && has("mimetype") {
        "an OpenDocument file; save it as DOCX or PDF first"
    } else {
        "a ZIP archive"
    };
    Err(ExtractError::Unsupported(not_claimed(what)))
}

/// Signatures of common binary formats people upload by mistake.
fn binary_signature(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"),
        (b"\x7FELF", "a program (ELF executable)"),
        (b"MZ", "a Windows program"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"BZh", "a bzip2 archive"),
        (b"\xFD7zXZ\x00", "an xz archive"),
        (b"\x28\xB5\x2F\xFD", "a zstd archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (b"SQLite format 3\x00", "an SQLite database"),
        (b"{\\rtf", "an RTF document; save it as DOCX or PDF first"),
        (b"%!PS", "a PostScript file"),
        (b"ID3", "an MP3 audio file"),
        (b"OggS", "an Ogg audio or video file"),
        (b"fLaC", "a FLAC audio file"),
    ];
    if let Some((_, what)) = SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        return Some(what);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" {
        return Some(match &bytes[8..12] {
            b"WEBP" => "a WebP image",
            b"WAVE" => "a WAV audio file",
            b"AVI " => "an AVI video",
            _ => "a RIFF media file",
        });
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some("a video or audio file (MP4/MOV)");
    }
    None
}

fn looks_like_html(text: &str) -> bool {
    let head: String = text.chars().take(SNIFF_LEN).collect::<String>();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if !head.starts_with('<') {
        return false;
    }
    let lower = head.to_ascii_lowercase();
    ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|marker| lower.contains(marker))
}

/// An ATX heading (`# Title`) in the first lines: plain text rarely has one.
fn looks_like_markdown(text: &str) -> bool {
    text.lines()
        .take(200)
        .any(|line| crate::markdown::atx_heading(line).is_some())
}

fn extension(filename: &str) -> Option<String> {
    let name = filename.rsplit(['/', '\\']).next()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

/// What the extension promises, for "looks like X, not Y" messages.
fn claimed_format(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "pdf" => "a PDF",
        "docx" => "a DOCX document",
        "txt" => "a text file",
        "md" | "markdown" => "a Markdown file",
        "csv" => "a CSV file",
        "html" | "htm" => "an HTML page",
        _ => return None,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
