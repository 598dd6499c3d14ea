//! HTML → main text with heading paths.

use scraper::{ElementRef, Html, Node, Selector};

use crate::sections::{SectionBuilder, collapse_whitespace};
use crate::{DocKind, Extracted};

/// Elements that never hold main content: scripts, styling, chrome and widgets.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form",
    "iframe", "head", "button", "select", "dialog", "canvas", "object", "embed", "math",
];
/// ARIA landmarks of page chrome.
const DROPPED_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "search",
    "complementary",
];
/// Elements that end the current paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "address",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "hr",
    "details",
    "summary",
    "body",
    "center",
    "fieldset",
    "hgroup",
];

/// Extracts the main text of an HTML page, split into sections at `h1`–`h6`.
///
/// Drops script, style, noscript, template, svg, nav, header, footer, aside, form, iframe (and
/// similar widgets), elements with `role` navigation/banner/contentinfo, and hidden elements.
/// When the page has `<main>`, `[role=main]` or `<article>`, only that is read. Whitespace is
/// collapsed; list items become `- item` lines and table rows `cell | cell` lines. The title is
/// `<title>`, else the first `h1`. Never fails: a page without text gives no sections.
pub fn html_to_document(html: &str) -> Extracted {
    let document = Html::parse_document(html);
    let mut walker = Walker::default();
    for root in content_roots(&document) {
        walker.element(root);
    }
    walker.paragraph_break();
    let title = select_first(&document, "title")
        .map(|t| collapse_whitespace(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty())
        .or(walker.first_h1);
    Extracted {
        kind: DocKind::Html,
        title,
        sections: walker.builder.finish(),
    }
}

/// `<main>` / `[role=main]` / the outermost `<article>`s, else `<body>`, else the whole tree.
fn content_roots(document: &Html) -> Vec<ElementRef<'_>> {
    for css in ["main", "[role=main]"] {
        if let Some(main) = select_first(document, css) {
            return vec![main];
        }
    }
    if let Ok(selector) = Selector::parse("article") {
        let articles: Vec<ElementRef<'_>> = document
            .select(&selector)
            .filter(|a| {
                !a.ancestors()
                    .filter_map(ElementRef::wrap)
                    .any(|p| p.value().name() == "article")
            })
            .collect();
        if !articles.is_empty() {
            return articles;
        }
    }
    vec![select_first(document, "body").unwrap_or_else(|| document.root_element())]
}

fn select_first<'a>(document: &'a Html, css: &str) -> Option<ElementRef<'a>> {
    let selector = Selector::parse(css).ok()?;
    document.select(&selector).next()
}

fn is_dropped(element: ElementRef<'_>) -> bool {
    let e = element.value();
    if DROPPED.contains(&e.name()) {
        return true;
    }
    if e.attr("role")
        .is_some_and(|r| DROPPED_ROLES.contains(&r.trim().to_ascii_lowercase().as_str()))
    {
        return true;
    }
    if e.attr("hidden").is_some() || e.attr("aria-hidden") == Some("true") {
        return true;
    }
    e.attr("style").is_some_and(|s| {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        s.to_ascii_lowercase().contains("display:none")
    })
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Text of an element with whitespace collapsed, skipping dropped descendants. Block-level
/// children and `<br>` separate words; inline ones (`Re<b>fund</b>s`) do not.
fn inline_text(element: ElementRef<'_>) -> String {
    fn collect(element: ElementRef<'_>, out: &mut String) {
        for child in element.children() {
            match child.value() {
                Node::Text(text) => out.push_str(text),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child)
                        && !is_dropped(child)
                    {
                        let name = child.value().name();
                        let separate = BLOCKS.contains(&name)
                            || matches!(name, "br" | "li" | "tr" | "td" | "th" | "pre")
                            || heading_level(name).is_some();
                        if separate {
                            out.push(' ');
                        }
                        collect(child, out);
                        if separate {
                            out.push(' ');
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    collect(element, &mut out);
    collapse_whitespace(&out)
}

#[derive(Default)]
struct Walker {
    builder: SectionBuilder,
    /// Finished lines of the current paragraph.
    lines: Vec<String>,
    /// The line being built from inline text.
    line: String,
    /// `- ` or `N. ` waiting for the first text of a list item.
    marker: Option<String>,
    list_depth: usize,
    first_h1: Option<String>,
}

impl Walker {
    fn element(&mut self, element: ElementRef<'_>) {
        if is_dropped(element) {
            return;
        }
        let name = element.value().name();
        if let Some(level) = heading_level(name) {
            let text = inline_text(element);
            self.paragraph_break();
            if level == 1 && self.first_h1.is_none() && !text.is_empty() {
                self.first_h1 = Some(text.clone());
            }
            self.builder.heading(level, &text);
            return;
        }
        match name {
            "br" => self.line_break(),
            "ul" | "ol" | "menu" => self.list(element, name == "ol"),
            "li" => {
                self.line_break();
                self.children(element);
                self.line_break();
            }
            "table" => self.table(element),
            "pre" => {
                self.paragraph_break();
                let text: String = element.text().collect();
                for line in text.trim_matches('\n').lines() {
                    self.lines.push(line.trim_end().to_owned());
                }
                self.paragraph_break();
            }
            _ if BLOCKS.contains(&name) => {
                self.block_break();
                self.children(element);
                self.block_break();
            }
            _ => self.children(element),
        }
    }

    fn children(&mut self, element: ElementRef<'_>) {
        for child in element.children() {
            match child.value() {
                Node::Text(text) => self.inline(text),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.element(child);
                    }
                }
                _ => {}
            }
        }
    }

    /// Appends inline text; whitespace is collapsed when the line ends, so runs that meet across
    /// element boundaries come out as one space.
    fn inline(&mut self, text: &str) {
        self.line.push_str(text);
    }

    fn line_break(&mut self) {
        let line = collapse_whitespace(&std::mem::take(&mut self.line));
        if !line.is_empty() {
            let marker = self.marker.take().unwrap_or_default();
            self.lines.push(format!("{marker}{line}"));
        }
    }

    /// Inside a list a block (`<p>` in `<li>`) only breaks the line, so the list stays one
    /// paragraph.
    fn block_break(&mut self) {
        if self.list_depth > 0 {
            self.line_break();
        } else {
            self.paragraph_break();
        }
    }

    fn paragraph_break(&mut self) {
        self.line_break();
        if !self.lines.is_empty() {
            self.builder
                .paragraph(&std::mem::take(&mut self.lines).join("\n"));
        }
    }

    /// One `- item` (or `1. item`) line per item; a nested list continues the same paragraph.
    fn list(&mut self, list: ElementRef<'_>, ordered: bool) {
        self.block_break();
        self.list_depth += 1;
        let mut number = 0;
        for child in list.children() {
            let Some(item) = ElementRef::wrap(child) else {
                if let Node::Text(text) = child.value() {
                    self.inline(text);
                }
                continue;
            };
            if item.value().name() != "li" {
                self.element(item);
                continue;
            }
            if is_dropped(item) {
                continue;
            }
            number += 1;
            self.line_break();
            let indent = "  ".repeat(self.list_depth - 1);
            self.marker = Some(if ordered {
                format!("{indent}{number}. ")
            } else {
                format!("{indent}- ")
            });
            self.children(item);
            self.line_break();
            self.marker = None;
        }
        self.list_depth -= 1;
        self.block_break();
    }

    /// A caption line, then one `cell | cell` line per row.
    fn table(&mut self, table: ElementRef<'_>) {
        self.paragraph_break();
        for part in table.child_elements() {
            match part.value().name() {
                "caption" => self.lines.push(inline_text(part)),
                "tr" => self.row(part),
                "thead" | "tbody" | "tfoot" => {
                    for row in part.child_elements().filter(|r| r.value().name() == "tr") {
                        self.row(row);
                    }
                }
                _ => {}
            }
        }
        self.lines.retain(|l| !l.is_empty());
        self.paragraph_break();
    }

    fn row(&mut self, row: ElementRef<'_>) {
        if is_dropped(row) {
            return;
        }
        let cells: Vec<String> = row
            .child_elements()
            .filter(|c| matches!(c.value().name(), "td" | "th"))
            .map(inline_text)
            .collect();
        if cells.iter().any(|c| !c.is_empty()) {
            self.lines.push(cells.join(" | "));
        }
    }
}
