//! Fixtures are generated in code: a tiny PDF writer, DOCX built with zip's writer.

use std::io::Write;
use std::time::Duration;

use super::*;

// ---------------------------------------------------------------------------------------------
// Fixture builders
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct PdfSpec<'a> {
    /// Lines of text per page; an empty page has no text operators (like a scan).
    pages: Vec<Vec<&'a str>>,
    title: Option<&'a str>,
    encrypted: bool,
}

fn pdf_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('(', "\\(")
        .replace(')', "\\)")
}

/// Writes a minimal valid PDF 1.4: standard Helvetica, one content stream per page, and a
/// correct xref table (byte offsets of every object).
fn build_pdf(spec: &PdfSpec<'_>) -> Vec<u8> {
    let page_count = spec.pages.len();
    // 1 catalog, 2 pages, 3 font, then (page, contents) pairs, then info and encrypt.
    let first_page = 4;
    let info_id = first_page + 2 * page_count;
    let encrypt_id = info_id + 1;
    let kids: Vec<String> = (0..page_count)
        .map(|i| format!("{} 0 R", first_page + 2 * i))
        .collect();

    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {page_count} >>",
            kids.join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
    ];
    for (i, lines) in spec.pages.iter().enumerate() {
        let mut content = String::new();
        if !lines.is_empty() {
            content.push_str("BT\n/F1 12 Tf\n72 720 Td\n");
            for (j, line) in lines.iter().enumerate() {
                if j > 0 {
                    content.push_str("0 -16 Td\n");
                }
                content.push_str(&format!("({}) Tj\n", pdf_escape(line)));
            }
            content.push_str("ET");
        }
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            first_page + 2 * i + 1
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    objects.push(format!(
        "<< /Title ({}) /Producer (mtdesk tests) >>",
        pdf_escape(spec.title.unwrap_or(""))
    ));
    if spec.encrypted {
        // RC4 40-bit standard security handler with made-up /O and /U: no password opens it.
        objects.push(format!(
            "<< /Filter /Standard /V 1 /R 2 /Length 40 /P -3904 /O <{o}> /U <{u}> >>",
            o = "a1".repeat(32),
            u = "b2".repeat(32)
        ));
    }

    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref_offset = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n", objects.len() + 1).as_bytes());
    out.extend_from_slice(b"0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let mut trailer = format!(
        "/Size {} /Root 1 0 R /Info {info_id} 0 R",
        objects.len() + 1
    );
    if spec.encrypted {
        let id = "0123456789abcdef0123456789abcdef";
        trailer.push_str(&format!(" /Encrypt {encrypt_id} 0 R /ID [<{id}> <{id}>]"));
    }
    out.extend_from_slice(
        format!("trailer\n<< {trailer} >>\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes(),
    );
    out
}

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const MC_NS: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).expect("start zip entry");
        writer.write_all(data).expect("write zip entry");
    }
    writer.finish().expect("finish zip").into_inner()
}

/// A DOCX with `body` (WordprocessingML paragraphs/tables) as the document body.
fn build_docx(body: &str, styles: Option<&str>) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="{W_NS}" xmlns:mc="{MC_NS}"><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    let content_types = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"#;
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", content_types.as_bytes()),
        ("word/document.xml", document.as_bytes()),
    ];
    let styles_xml;
    if let Some(styles) = styles {
        styles_xml =
            format!(r#"<?xml version="1.0"?><w:styles xmlns:w="{W_NS}">{styles}</w:styles>"#);
        entries.push(("word/styles.xml", styles_xml.as_bytes()));
    }
    zip_of(&entries)
}

fn para(style: Option<&str>, runs: &str) -> String {
    let ppr = style
        .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
        .unwrap_or_default();
    format!("<w:p>{ppr}{runs}</w:p>")
}

fn run(text: &str) -> String {
    format!(r#"<w:r><w:t xml:space="preserve">{text}</w:t></w:r>"#)
}

fn table(rows: &[&[&str]]) -> String {
    let rows: String = rows
        .iter()
        .map(|cells| {
            let cells: String = cells
                .iter()
                .map(|c| format!("<w:tc><w:tcPr/>{}</w:tc>", para(None, &run(c))))
                .collect();
            format!("<w:tr>{cells}</w:tr>")
        })
        .collect();
    format!("<w:tbl><w:tblPr/>{rows}</w:tbl>")
}

fn paths(doc: &Extracted) -> Vec<Vec<String>> {
    doc.sections
        .iter()
        .map(|s| s.heading_path.clone())
        .collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn extract_default(bytes: &[u8], filename: &str) -> Result<Extracted, ExtractError> {
    extract_blocking(bytes, Some(filename), &Limits::default())
}

// ---------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------

#[test]
fn pdf_magic_wins_over_a_misleading_extension() {
    let pdf = build_pdf(&PdfSpec {
        pages: vec![vec!["hello"]],
        ..PdfSpec::default()
    });
    assert_eq!(
        detect(&pdf, Some("notes.txt")).expect("detect"),
        DocKind::Pdf
    );
    assert_eq!(detect(&pdf, None).expect("detect"), DocKind::Pdf);
}

#[test]
fn png_bytes_named_pdf_are_unsupported_and_the_message_says_png() {
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01";
    let err = extract_default(png, "invoice.pdf").expect_err("a PNG is not a PDF");
    assert!(matches!(err, ExtractError::Unsupported(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("looks like a PNG image, not a PDF"),
        "{err}"
    );
}

#[test]
fn known_binary_formats_are_named_in_the_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xFF\xD8\xFF\xE0\x00\x10JFIF", "JPEG"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"\x7FELF\x02\x01\x01\x00", "ELF"),
        (b"\x1F\x8B\x08\x00\x00\x00", "gzip"),
    ];
    for (bytes, name) in cases {
        let err = detect(bytes, None).expect_err("binary is unsupported");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn unknown_binary_with_nul_bytes_is_unsupported() {
    let err = detect(b"\x01\x02\x00\x00garbage\x00", Some("data.txt")).expect_err("binary");
    assert!(matches!(err, ExtractError::Unsupported(_)), "{err:?}");
    assert!(
        err.to_string().contains("binary data, not a text file"),
        "{err}"
    );
}

#[test]
fn a_plain_zip_is_unsupported_and_an_xlsx_is_named() {
    let plain = zip_of(&[("readme.txt", b"hello")]);
    let err = detect(&plain, Some("docs.zip")).expect_err("zip is unsupported");
    assert!(matches!(err, ExtractError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("a ZIP archive"), "{err}");

    let xlsx = zip_of(&[("xl/workbook.xml", b"<workbook/>")]);
    let err = detect(&xlsx, Some("prices.docx")).expect_err("xlsx is unsupported");
    assert!(err.to_string().contains("Excel workbook"), "{err}");
    assert!(err.to_string().contains("not a DOCX"), "{err}");
}

#[test]
fn a_zip_with_word_document_xml_is_docx_whatever_its_name() {
    let docx = build_docx(&para(None, &run("hi")), None);
    assert_eq!(
        detect(&docx, Some("file.bin")).expect("detect"),
        DocKind::Docx
    );
}

#[test]
fn html_is_sniffed_from_content_case_insensitively() {
    let html = b"\n  <!DOCTYPE HTML><HTML><body><p>x</p></body></HTML>";
    assert_eq!(
        detect(html, Some("page.txt")).expect("detect"),
        DocKind::Html
    );
    assert_eq!(
        detect(b"<head><title>t</title></head>", None).expect("detect"),
        DocKind::Html
    );
    // Prose that merely mentions a tag is not HTML.
    assert_eq!(
        detect(b"Put scripts before the <body> tag.", None).expect("detect"),
        DocKind::Txt
    );
}

#[test]
fn text_formats_follow_the_extension() {
    let text = b"a;b\n1;2\n";
    assert_eq!(detect(text, Some("x.csv")).expect("detect"), DocKind::Csv);
    assert_eq!(
        detect(text, Some("x.MD")).expect("detect"),
        DocKind::Markdown
    );
    assert_eq!(
        detect(text, Some("x.markdown")).expect("detect"),
        DocKind::Markdown
    );
    assert_eq!(detect(text, Some("x.htm")).expect("detect"), DocKind::Html);
    assert_eq!(detect(text, Some("x.txt")).expect("detect"), DocKind::Txt);
    assert_eq!(detect(text, Some("x.log")).expect("detect"), DocKind::Txt);
    assert_eq!(detect(text, None).expect("detect"), DocKind::Txt);
}

#[test]
fn a_text_file_without_extension_but_with_headings_is_markdown() {
    let text = b"# Guide\n\nSome text.\n\n## Setup\n\nMore.";
    assert_eq!(
        detect(text, Some("README")).expect("detect"),
        DocKind::Markdown
    );
    assert_eq!(
        detect(text, Some("notes.txt")).expect("detect"),
        DocKind::Txt
    );
    assert_eq!(
        detect(b"#hashtag is not a heading", None).expect("detect"),
        DocKind::Txt
    );
}

#[test]
fn text_content_named_pdf_is_unsupported() {
    let err = detect(b"just some words", Some("report.pdf")).expect_err("not a PDF");
    assert!(err.to_string().contains("plain text, not a PDF"), "{err}");
}

#[test]
fn empty_and_whitespace_only_files_are_empty() {
    for bytes in [&b""[..], b"  \n\t\r\n  ", b"\xEF\xBB\xBF \n"] {
        let err = extract_default(bytes, "empty.txt").expect_err("empty");
        assert!(matches!(err, ExtractError::Empty), "{bytes:?}: {err:?}");
    }
}

#[test]
fn oversize_input_is_too_large_before_any_parsing() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    // Garbage that would be Unsupported if it were parsed.
    let bytes = vec![0u8; 2048];
    let err = extract_blocking(&bytes, Some("big.pdf"), &limits).expect_err("too large");
    assert!(
        matches!(
            err,
            ExtractError::TooLarge {
                size: 2048,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit is 1 KB"), "{err}");
    // Exactly at the limit is fine.
    let ok = vec![b'a'; 1024];
    extract_blocking(&ok, Some("ok.txt"), &limits).expect("at the limit");
}

// ---------------------------------------------------------------------------------------------
// Text decoding
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_text_honours_utf16_boms() {
    let text = "Grüße – ok";
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(decode_text(&le), text);
    assert_eq!(decode_text(&be), text);
}

#[test]
fn utf16_text_files_are_extracted_not_rejected_as_binary() {
    let text = "First paragraph.\r\n\r\nSecond paragraph.";
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let doc = extract_default(&le, "notes.txt").expect("utf-16 text");
    assert_eq!(doc.kind, DocKind::Txt);
    assert_eq!(
        doc.sections[0].text,
        "First paragraph.\n\nSecond paragraph."
    );
}

#[test]
fn decode_text_falls_back_to_windows_1252_for_invalid_utf8() {
    assert_eq!(decode_text(b"Caf\xE9 cr\xE8me \x80 5"), "Café crème € 5");
}

#[test]
fn decode_text_strips_the_utf8_bom_and_keeps_valid_utf8() {
    assert_eq!(decode_text("\u{feff}héllo".as_bytes()), "héllo");
    assert_eq!(decode_text("héllo".as_bytes()), "héllo");
}

#[test]
fn decode_text_keeps_utf8_when_only_the_last_character_is_cut() {
    let bytes = "naïve €".as_bytes();
    let cut = &bytes[..bytes.len() - 1];
    assert_eq!(decode_text(cut), "naïve \u{fffd}");
}

#[test]
fn windows_1252_text_file_is_extracted() {
    let doc = extract_default(b"Cr\xE8me br\xFBl\xE9e\n\nD\xE9licieux", "menu.txt").expect("text");
    assert_eq!(doc.sections[0].text, "Crème brûlée\n\nDélicieux");
}

#[test]
fn html_in_a_declared_legacy_charset_is_decoded_with_it() {
    let html =
        b"<html><head><meta charset=\"iso-8859-15\"></head><body><p>Prix: 5 \xA4</p></body></html>";
    let doc = extract_default(html, "page.html").expect("html");
    assert_eq!(doc.sections[0].text, "Prix: 5 €");
}

// ---------------------------------------------------------------------------------------------
// TXT, Markdown, CSV
// ---------------------------------------------------------------------------------------------

#[test]
fn txt_keeps_paragraphs_and_lines() {
    let doc = extract_default(
        b"Line one\r\nline two\r\n\r\n\r\n  \r\nNext para  \n",
        "a.txt",
    )
    .expect("txt");
    assert_eq!(doc.kind, DocKind::Txt);
    assert_eq!(doc.title, None);
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].text, "Line one\nline two\n\nNext para");
    assert_eq!(doc.sections[0].page, None);
}

#[test]
fn markdown_sections_carry_the_full_heading_path() {
    let md = "\
Intro before any heading.

# Guide

Welcome.

## Install

### Linux

Run the script.

```sh
# not a heading
make install
```

Usage
=====

A setext level-1 heading above.

Config
------

Edit the file.
";
    let doc = extract_default(md.as_bytes(), "guide.md").expect("markdown");
    assert_eq!(doc.kind, DocKind::Markdown);
    assert_eq!(doc.title.as_deref(), Some("Guide"));
    assert_eq!(
        paths(&doc),
        vec![
            path(&[]),
            path(&["Guide"]),
            path(&["Guide", "Install", "Linux"]),
            path(&["Usage"]),
            path(&["Usage", "Config"]),
        ]
    );
    assert_eq!(
        doc.sections[2].text,
        "Run the script.\n\n```sh\n# not a heading\nmake install\n```"
    );
    assert_eq!(doc.sections[4].text, "Edit the file.");
}

#[test]
fn markdown_front_matter_gives_the_title_and_is_not_content() {
    let md = "---\ntitle: \"Returns policy\"\nlayout: page\n---\n\n## Refunds\n\nWithin 30 days.\n";
    let doc = extract_default(md.as_bytes(), "returns.md").expect("markdown");
    assert_eq!(doc.title.as_deref(), Some("Returns policy"));
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].heading_path, path(&["Refunds"]));
    assert_eq!(doc.sections[0].text, "Within 30 days.");
}

#[test]
fn markdown_closing_hashes_are_removed_from_headings() {
    assert_eq!(markdown::atx_heading("## Title ##"), Some((2, "Title")));
    assert_eq!(markdown::atx_heading("# C# tips"), Some((1, "C# tips")));
    assert_eq!(markdown::atx_heading("    # indented code"), None);
    assert_eq!(markdown::atx_heading("####### seven"), None);
}

#[test]
fn csv_with_semicolons_and_ragged_rows_becomes_column_value_paragraphs() {
    let csv = "Product;Price;Notes\nWidget;4,50 €;\"Blue; large\"\nGadget;10\nThing;1;x;extra\n\n";
    let doc = extract_default(csv.as_bytes(), "prices.csv").expect("csv");
    assert_eq!(doc.kind, DocKind::Csv);
    assert_eq!(
        doc.sections[0].text,
        "Product: Widget\nPrice: 4,50 €\nNotes: Blue; large\n\n\
         Product: Gadget\nPrice: 10\n\n\
         Product: Thing\nPrice: 1\nNotes: x\ncolumn 4: extra"
    );
}

#[test]
fn csv_delimiter_is_sniffed_among_comma_semicolon_and_tab() {
    assert_eq!(plain_delimiter("a,b,c\n1,2,3\n"), b',');
    assert_eq!(plain_delimiter("a;b;c\n1,5;2;3\n"), b';');
    assert_eq!(plain_delimiter("a\tb\n1\t2\n"), b'\t');
    assert_eq!(plain_delimiter("\"x,y\";b\n1;2\n"), b';');
    assert_eq!(plain_delimiter("single column\nvalue\n"), b',');
}

fn plain_delimiter(text: &str) -> u8 {
    plain::sniff_delimiter(text)
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

const PAGE: &str = r#"<!doctype html>
<html><head><title> Acme  Help </title><style>body{color:red}</style>
<script>var x = "script text";</script></head>
<body>
<header><a href="/">Acme</a> site banner</header>
<nav><ul><li>Home</li><li>Pricing</li></ul></nav>
<div role="navigation">Breadcrumbs</div>
<h1>Help centre</h1>
<p>Welcome   to
   the <b>help</b> centre. Re<b>fund</b>s are <i>fast</i>.</p>
<h2>Orders</h2>
<p>Track your order.</p>
<ul><li>Open <em>Orders</em></li><li>Pick one<ul><li>nested item</li></ul></li></ul>
<h3>Refunds</h3>
<table><tr><th>Case</th><th>Re<b>fund</b></th></tr><tr><td>Damaged</td><td>Full</td></tr></table>
<p hidden>hidden text</p>
<h2>Contact</h2>
<p>Mail us.<br>Or call.</p>
<aside>Related links</aside>
<form><label>Search</label><input name="q"></form>
<noscript>Enable JS</noscript>
<footer>© Acme footer</footer>
<script>console.log("more script")</script>
</body></html>"#;

#[test]
fn html_drops_chrome_and_scripts_and_keeps_heading_paths() {
    let doc = html_to_document(PAGE);
    assert_eq!(doc.kind, DocKind::Html);
    assert_eq!(doc.title.as_deref(), Some("Acme Help"));
    assert_eq!(
        paths(&doc),
        vec![
            path(&["Help centre"]),
            path(&["Help centre", "Orders"]),
            path(&["Help centre", "Orders", "Refunds"]),
            path(&["Help centre", "Contact"]),
        ]
    );
    assert_eq!(
        doc.sections[0].text,
        "Welcome to the help centre. Refunds are fast."
    );
    assert_eq!(
        doc.sections[1].text,
        "Track your order.\n\n- Open Orders\n- Pick one\n  - nested item"
    );
    assert_eq!(doc.sections[2].text, "Case | Refund\nDamaged | Full");
    assert_eq!(doc.sections[3].text, "Mail us.\nOr call.");
    let all: String = doc.sections.iter().map(|s| s.text.as_str()).collect();
    for dropped in [
        "script",
        "banner",
        "Pricing",
        "Breadcrumbs",
        "hidden",
        "Related",
        "Search",
        "Enable JS",
        "footer",
        "color",
    ] {
        assert!(!all.contains(dropped), "{dropped} leaked into {all:?}");
    }
}

#[test]
fn html_prefers_main_content_and_falls_back_to_the_first_h1_for_the_title() {
    let html = r#"<html><body><div class="sidebar"><h2>Popular</h2><p>Other posts</p></div>
<main><h1>Shipping</h1><p>We ship worldwide.</p><ol><li>Pack</li><li>Send</li></ol></main></body></html>"#;
    let doc = html_to_document(html);
    assert_eq!(doc.title.as_deref(), Some("Shipping"));
    assert_eq!(doc.sections.len(), 1);
    assert_eq!(doc.sections[0].heading_path, path(&["Shipping"]));
    assert_eq!(
        doc.sections[0].text,
        "We ship worldwide.\n\n1. Pack\n2. Send"
    );
}

#[test]
fn html_uses_articles_when_there_is_no_main() {
    let html = r#"<body><div>Cookie banner text</div>
<article><h2>First</h2><p>One</p></article><article><h2>Second</h2><p>Two</p></article></body>"#;
    let doc = html_to_document(html);
    assert_eq!(paths(&doc), vec![path(&["First"]), path(&["Second"])]);
    assert_eq!(doc.sections[1].text, "Two");
}

#[test]
fn html_upload_is_extracted_through_the_public_entry_point() {
    let doc = extract_default(PAGE.as_bytes(), "help.html").expect("html");
    assert_eq!(doc.kind, DocKind::Html);
    assert_eq!(doc.sections.len(), 4);
}

#[test]
fn html_with_only_chrome_is_empty() {
    let html = b"<html><body><nav>Menu</nav><script>x()</script></body></html>";
    let err = extract_default(html, "page.html").expect_err("no main text");
    assert!(matches!(err, ExtractError::Empty), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------------------

#[test]
fn pdf_gives_one_section_per_page_with_its_number() {
    let pdf = build_pdf(&PdfSpec {
        pages: vec![
            vec!["Opening hours", "Monday to Friday (9-17)"],
            vec![],
            vec!["Returns within 30 days"],
        ],
        title: Some("Store guide"),
        encrypted: false,
    });
    let doc = extract_default(&pdf, "guide.pdf").expect("pdf");
    assert_eq!(doc.kind, DocKind::Pdf);
    assert_eq!(doc.title.as_deref(), Some("Store guide"));
    let pages: Vec<Option<u32>> = doc.sections.iter().map(|s| s.page).collect();
    assert_eq!(pages, vec![Some(1), Some(3)], "{doc:#?}");
    assert!(doc.sections.iter().all(|s| s.heading_path.is_empty()));
    let first = &doc.sections[0].text;
    assert!(first.contains("Opening hours"), "{first:?}");
    assert!(first.contains("Monday to Friday (9-17)"), "{first:?}");
    assert!(
        !first.contains("Returns"),
        "page 3 text leaked into page 1: {first:?}"
    );
    assert!(
        doc.sections[1].text.contains("Returns within 30 days"),
        "{doc:#?}"
    );
}

#[test]
fn encrypted_pdf_is_reported_as_encrypted() {
    let pdf = build_pdf(&PdfSpec {
        pages: vec![vec!["secret"]],
        encrypted: true,
        ..PdfSpec::default()
    });
    let err = extract_default(&pdf, "secret.pdf").expect_err("encrypted");
    assert!(matches!(err, ExtractError::Encrypted), "{err:?}");
    assert!(err.to_string().contains("remove the password"), "{err}");
}

#[test]
fn garbage_after_the_pdf_magic_is_corrupt() {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x01));
    let err = extract_default(&bytes, "broken.pdf").expect_err("corrupt");
    assert!(matches!(err, ExtractError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn pdf_without_a_text_layer_is_empty_and_says_so() {
    let pdf = build_pdf(&PdfSpec {
        pages: vec![vec![], vec![]],
        ..PdfSpec::default()
    });
    let err = extract_default(&pdf, "scan.pdf").expect_err("no text");
    assert!(matches!(err, ExtractError::Empty), "{err:?}");
    assert!(err.to_string().contains("no text layer"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// DOCX
// ---------------------------------------------------------------------------------------------

/// `Berschrift2` is how German Word names Heading 2; styles.xml maps it back.
const STYLES: &str = r#"<w:style w:type="paragraph" w:styleId="Berschrift2"><w:name w:val="heading 2"/></w:style>
<w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>"#;

fn sample_docx() -> Vec<u8> {
    let body = [
        para(Some("Title"), &run("Acme Handbook")),
        para(None, &run("Preface text.")),
        para(Some("Heading1"), &run("Returns")),
        // A tab-stop definition in pPr must not become text; a run tab must.
        format!(
            r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>{}<w:r><w:tab/></w:r>{}</w:p>"#,
            run("Within"),
            run("30 days.")
        ),
        para(None, &format!("{}{}", run("Refunds &amp; exchanges"), run(" are free."))),
        para(Some("Berschrift2"), &run("Costs")),
        table(&[&["Region", "Price"], &["EU", "5 &#8364;"]]),
        // A text box as Word writes it: once for new readers, once in the fallback.
        format!(
            r#"<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><w:txbxContent>{box_p}</w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent>{box_p}</w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r>{}</w:p>"#,
            run("Free shipping."),
            box_p = para(None, &run("Boxed note")),
        ),
        para(Some("Heading1"), &run("Contact")),
        para(None, &format!(r#"{}<w:r><w:br/></w:r>{}"#, run("Call us"), run("Mon-Fri"))),
        para(None, ""),
    ]
    .concat();
    build_docx(&body, Some(STYLES))
}

#[test]
fn docx_keeps_title_heading_paths_paragraphs_and_tables() {
    let doc = extract_default(&sample_docx(), "handbook.docx").expect("docx");
    assert_eq!(doc.kind, DocKind::Docx);
    assert_eq!(doc.title.as_deref(), Some("Acme Handbook"));
    assert_eq!(
        paths(&doc),
        vec![
            path(&[]),
            path(&["Returns"]),
            path(&["Returns", "Costs"]),
            path(&["Contact"]),
        ]
    );
    assert_eq!(doc.sections[0].text, "Preface text.");
    assert_eq!(
        doc.sections[1].text,
        "Within\t30 days.\n\nRefunds & exchanges are free."
    );
    assert_eq!(
        doc.sections[2].text,
        "Region | Price\nEU | 5 €\n\nBoxed note Free shipping."
    );
    assert_eq!(doc.sections[3].text, "Call us\nMon-Fri");
}

#[test]
fn docx_zip_bomb_is_refused_by_declared_size() {
    // 1 MiB of repeated text compresses to about a kilobyte.
    let filler = para(None, &run(&"all work and no play ".repeat(50_000)));
    let bomb = build_docx(&filler, None);
    assert!(
        bomb.len() < 20_000,
        "fixture should be small: {}",
        bomb.len()
    );
    let limits = Limits {
        max_unzipped_bytes: 64 * 1024,
        ..Limits::default()
    };
    let err = extract_blocking(&bomb, Some("bomb.docx"), &limits).expect_err("bomb");
    assert!(matches!(err, ExtractError::ZipBomb), "{err:?}");
    // The same file is fine under the default limits.
    extract_blocking(&bomb, Some("bomb.docx"), &Limits::default()).expect("within limits");
}

#[test]
fn docx_with_a_lying_size_header_is_stopped_while_inflating() {
    let filler = para(None, &run(&"all work and no play ".repeat(50_000)));
    let mut bomb = build_docx(&filler, None);
    // Claim 100 bytes in both the local and the central header of word/document.xml.
    let name = b"word/document.xml";
    for (signature, size_at, name_len_at, name_at) in [
        (b"PK\x03\x04", 22usize, 26usize, 30usize),
        (b"PK\x01\x02", 24, 28, 46),
    ] {
        let mut patched = false;
        for start in 0..bomb.len().saturating_sub(name_at + name.len()) {
            if &bomb[start..start + 4] != signature {
                continue;
            }
            let name_len =
                u16::from_le_bytes([bomb[start + name_len_at], bomb[start + name_len_at + 1]]);
            if usize::from(name_len) == name.len()
                && &bomb[start + name_at..start + name_at + name.len()] == name
            {
                bomb[start + size_at..start + size_at + 4].copy_from_slice(&100u32.to_le_bytes());
                patched = true;
            }
        }
        assert!(patched, "fixture header not found");
    }
    let limits = Limits {
        max_unzipped_bytes: 64 * 1024,
        ..Limits::default()
    };
    // Our `.take()` cap would stop it at 64 KiB + 1; zip 9 already stops at the declared size
    // and reports the lie as an I/O error. Either way nothing near 1 MiB is inflated.
    let err = extract_blocking(&bomb, Some("liar.docx"), &limits).expect_err("bomb");
    assert!(
        matches!(err, ExtractError::ZipBomb | ExtractError::Corrupt(_)),
        "{err:?}"
    );
}

#[test]
fn docx_with_too_many_entries_is_refused() {
    let document = format!(
        r#"<w:document xmlns:w="{W_NS}"><w:body>{}</w:body></w:document>"#,
        para(None, &run("hi"))
    );
    let names: Vec<String> = (0..20).map(|i| format!("word/media/{i}.xml")).collect();
    let mut entries: Vec<(&str, &[u8])> = vec![("word/document.xml", document.as_bytes())];
    entries.extend(names.iter().map(|n| (n.as_str(), &b"x"[..])));
    let docx = zip_of(&entries);
    let limits = Limits {
        max_zip_entries: 10,
        ..Limits::default()
    };
    let err = extract_blocking(&docx, Some("many.docx"), &limits).expect_err("too many");
    assert!(matches!(err, ExtractError::ZipBomb), "{err:?}");
    extract_blocking(&docx, Some("many.docx"), &Limits::default()).expect("default limits");
}

#[test]
fn docx_with_broken_xml_is_corrupt() {
    let docx = zip_of(&[("word/document.xml", b"<w:document><w:body><w:p></w:body>")]);
    let err = extract_default(&docx, "broken.docx").expect_err("corrupt");
    assert!(matches!(err, ExtractError::Corrupt(_)), "{err:?}");
}

#[test]
fn docx_headings_without_styles_xml_use_the_style_id() {
    let body = [
        para(Some("Heading1"), &run("A")),
        para(Some("Heading3"), &run("B")),
        para(None, &run("text")),
    ]
    .concat();
    let doc = extract_default(&build_docx(&body, None), "x.docx").expect("docx");
    assert_eq!(paths(&doc), vec![path(&["A", "B"])]);
    assert_eq!(doc.title, None);
}

// ---------------------------------------------------------------------------------------------
// Async guard
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn extract_runs_off_the_async_thread_and_returns_the_document() {
    let doc = extract(
        b"Hello there.".to_vec(),
        Some("a.txt".to_owned()),
        Limits::default(),
    )
    .await
    .expect("txt");
    assert_eq!(doc.sections[0].text, "Hello there.");
}

#[tokio::test]
async fn extract_checks_the_size_limit_too() {
    let limits = Limits {
        max_bytes: 4,
        ..Limits::default()
    };
    let err = extract(b"12345".to_vec(), None, limits)
        .await
        .expect_err("too large");
    assert!(matches!(err, ExtractError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_panicking_parser_becomes_a_panicked_error_not_a_crash() {
    let err = run_guarded(Duration::from_secs(5), || panic!("parser bug"))
        .await
        .expect_err("panic");
    assert!(matches!(err, ExtractError::Panicked), "{err:?}");
}

#[tokio::test]
async fn a_hanging_parser_becomes_a_timeout() {
    let started = std::time::Instant::now();
    let err = run_guarded(Duration::from_millis(50), || {
        std::thread::sleep(Duration::from_millis(800));
        Err(ExtractError::Empty)
    })
    .await
    .expect_err("timeout");
    assert!(matches!(err, ExtractError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "did not wait for the hang"
    );
}

#[test]
fn doc_kind_names_and_mime_types_are_stable() {
    let kinds = [
        (DocKind::Pdf, "pdf", "application/pdf"),
        (
            DocKind::Docx,
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (DocKind::Txt, "txt", "text/plain"),
        (DocKind::Markdown, "markdown", "text/markdown"),
        (DocKind::Html, "html", "text/html"),
        (DocKind::Csv, "csv", "text/csv"),
    ];
    for (kind, name, mime) in kinds {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.mime(), mime);
    }
}
