//! Text and structure out of uploaded knowledge documents.
//!
//! The ingestion pipeline hands us the raw bytes of an upload (or of a crawled page) and gets back
//! an [`Extracted`] document: a title when the file has one, and [`Section`]s that keep the
//! structure a chunker needs — the heading path (`h1 > h2 > h3`) for Markdown, HTML and DOCX, the
//! page number for PDF — with paragraphs separated by a blank line.
//!
//! Uploads are untrusted, so:
//! - the type is detected from the content, not from the name ([`detect`]): a PNG renamed to
//!   `.pdf` is refused with a message saying what it really is;
//! - size is checked before any parsing ([`Limits::max_bytes`]), and a DOCX is checked for zip
//!   bombs before anything is inflated ([`Limits::max_unzipped_bytes`],
//!   [`Limits::max_zip_entries`]);
//! - [`extract`] runs the parsers on the blocking pool under `catch_unwind` and a timeout, because
//!   `pdf-extract` panics on some PDFs by design: a bad file is a per-file error, never a crash.
//!
//! Every [`ExtractError`] displays as a sentence an end user can act on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

mod docx;
mod html;
mod markdown;
mod pdf;
mod plain;
mod sections;
mod sniff;

#[cfg(test)]
mod tests;

pub use html::html_to_document;
pub use sniff::{decode_text, detect};

/// The document formats we can read. Detected from content by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    Pdf,
    Docx,
    Txt,
    Markdown,
    Html,
    Csv,
}

impl DocKind {
    /// Stable lowercase name, suitable for storage and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DocKind::Pdf => "pdf",
            DocKind::Docx => "docx",
            DocKind::Txt => "txt",
            DocKind::Markdown => "markdown",
            DocKind::Html => "html",
            DocKind::Csv => "csv",
        }
    }

    /// The IANA media type of the format.
    pub fn mime(&self) -> &'static str {
        match self {
            DocKind::Pdf => "application/pdf",
            DocKind::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            DocKind::Txt => "text/plain",
            DocKind::Markdown => "text/markdown",
            DocKind::Html => "text/html",
            DocKind::Csv => "text/csv",
        }
    }
}

/// Resource caps for one extraction. Uploads are untrusted: every limit turns into an error,
/// never into unbounded memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, checked before any parsing. Default 20 MiB.
    pub max_bytes: usize,
    /// Most bytes a DOCX may inflate to, checked against the declared sizes before inflating and
    /// against the bytes actually read. Default 200 MiB.
    pub max_unzipped_bytes: u64,
    /// Most entries a DOCX zip may hold. Default 10 000.
    pub max_zip_entries: usize,
    /// Wall-clock budget of [`extract`]. Default 60 s.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_unzipped_bytes: 200 * 1024 * 1024,
            max_zip_entries: 10_000,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A run of text under one heading path (or on one PDF page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Headings enclosing the text, outermost first (`["Guide", "Install", "Linux"]`); empty for
    /// text before the first heading and for formats without headings (TXT, CSV, PDF).
    pub heading_path: Vec<String>,
    /// 1-based page number for PDF; `None` for the other formats.
    pub page: Option<u32>,
    /// Never empty. Paragraphs are separated by `"\n\n"`; lines inside a paragraph (list items,
    /// table rows as `cell | cell`, CSV `column: value` pairs) by `"\n"`.
    pub text: String,
}

/// The readable content of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The detected format.
    pub kind: DocKind,
    /// `<title>`, DOCX Title style, PDF info title, Markdown front-matter title, or else the first
    /// level-1 heading, when present.
    pub title: Option<String>,
    /// In document order. [`extract_blocking`] and [`extract`] never return an empty list (they
    /// return [`ExtractError::Empty`] instead); [`html_to_document`] may.
    pub sections: Vec<Section>,
}

/// Why a document could not be read. `Display` is a message for the person who uploaded it.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Not one of the supported formats; the text says what the file looks like.
    #[error(
        "this file type is not supported: it {0}. Upload a PDF, DOCX, TXT, Markdown, HTML or CSV file"
    )]
    Unsupported(String),
    /// Over [`Limits::max_bytes`]; nothing was parsed.
    #[error(
        "the file is {} but the limit is {}: split it into smaller files and upload them separately",
        human_size(*.size as u64),
        human_size(*.max as u64)
    )]
    TooLarge { size: usize, max: usize },
    /// No readable text: an empty or whitespace-only file, or a PDF without a text layer.
    #[error(
        "the file has no readable text: if it is a scanned PDF it has no text layer and OCR is \
         not supported, so upload a version with selectable text"
    )]
    Empty,
    /// Password protected.
    #[error("the file is encrypted: remove the password and upload it again")]
    Encrypted,
    /// The bytes do not parse as the detected format; the text names what is wrong.
    #[error("the file is damaged ({0}): open it, save or export it again, and upload the new copy")]
    Corrupt(String),
    /// A DOCX that would inflate past [`Limits::max_unzipped_bytes`] or holds more than
    /// [`Limits::max_zip_entries`] entries.
    #[error(
        "the DOCX unpacks to far more data than a document needs (a possible zip bomb): save it \
         again from your word processor and upload the new copy"
    )]
    ZipBomb,
    /// Reading took longer than [`Limits::timeout`].
    #[error(
        "reading the file took too long: split it into smaller files and upload them separately"
    )]
    Timeout,
    /// The parser crashed on this file; the process is unaffected.
    #[error(
        "the file could not be read because its internal structure is unusual: save or export \
         it again (for a PDF, \"print to PDF\" works well) and upload the new copy"
    )]
    Panicked,
    /// The server shut down while reading; the file itself may be fine.
    #[error("reading the file was interrupted: upload it again")]
    Interrupted,
}

fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// Detects the format and extracts the text, on the calling thread.
///
/// Checks [`Limits::max_bytes`] first, then catches any parser panic as
/// [`ExtractError::Panicked`]. [`Limits::timeout`] is only honoured between PDF pages here; use
/// [`extract`] from async code for a hard deadline.
pub fn extract_blocking(
    bytes: &[u8],
    filename: Option<&str>,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    check_size(bytes, limits)?;
    let deadline = Instant::now() + limits.timeout;
    let result = catch_unwind(AssertUnwindSafe(|| {
        extract_detected(bytes, filename, limits, deadline)
    }))
    .unwrap_or_else(|payload| {
        tracing::warn!(panic = panic_message(&*payload), "document parser panicked");
        Err(ExtractError::Panicked)
    });
    match &result {
        Ok(doc) => tracing::debug!(
            kind = doc.kind.as_str(),
            sections = doc.sections.len(),
            "document extracted"
        ),
        Err(e) => tracing::debug!(error = %e, "document not extracted"),
    }
    result
}

/// [`extract_blocking`] on tokio's blocking pool, bounded by [`Limits::timeout`].
///
/// A panic or a hang in a parser becomes [`ExtractError::Panicked`] / [`ExtractError::Timeout`]
/// for this file only. On timeout the worker thread cannot be killed: it finishes (or stops at the
/// next PDF page) in the background, so callers should bound how many extractions run at once.
#[tracing::instrument(skip_all, fields(bytes = bytes.len()))]
pub async fn extract(
    bytes: Vec<u8>,
    filename: Option<String>,
    limits: Limits,
) -> Result<Extracted, ExtractError> {
    check_size(&bytes, &limits)?;
    let timeout = limits.timeout;
    run_guarded(timeout, move || {
        extract_blocking(&bytes, filename.as_deref(), &limits)
    })
    .await
}

/// Runs `job` on the blocking pool with `catch_unwind` and a timeout. Separate from [`extract`]
/// so tests can feed it a job that panics or hangs.
async fn run_guarded<F>(timeout: Duration, job: F) -> Result<Extracted, ExtractError>
where
    F: FnOnce() -> Result<Extracted, ExtractError> + Send + 'static,
{
    let handle = tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(job)));
    match tokio::time::timeout(timeout, handle).await {
        Err(_elapsed) => {
            tracing::warn!(?timeout, "document extraction timed out");
            Err(ExtractError::Timeout)
        }
        Ok(Ok(Ok(result))) => result,
        Ok(Ok(Err(payload))) => {
            tracing::warn!(panic = panic_message(&*payload), "document parser panicked");
            Err(ExtractError::Panicked)
        }
        Ok(Err(join_error)) if join_error.is_panic() => Err(ExtractError::Panicked),
        Ok(Err(_cancelled)) => Err(ExtractError::Interrupted),
    }
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), ExtractError> {
    if bytes.len() > limits.max_bytes {
        return Err(ExtractError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    Ok(())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

fn extract_detected(
    bytes: &[u8],
    filename: Option<&str>,
    limits: &Limits,
    deadline: Instant,
) -> Result<Extracted, ExtractError> {
    let kind = detect(bytes, filename)?;
    let (title, sections) = match kind {
        DocKind::Pdf => pdf::extract(bytes, deadline)?,
        DocKind::Docx => docx::extract(bytes, limits)?,
        DocKind::Txt => (None, plain::txt_sections(&decode_text(bytes))),
        DocKind::Markdown => markdown::extract(&decode_text(bytes)),
        DocKind::Csv => (None, plain::csv_sections(&decode_text(bytes))?),
        DocKind::Html => {
            let doc = html_to_document(&sniff::decode_html(bytes));
            (doc.title, doc.sections)
        }
    };
    if sections.is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(Extracted {
        kind,
        title,
        sections,
    })
}
