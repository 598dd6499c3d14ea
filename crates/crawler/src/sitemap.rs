//! Sitemap parsing (sitemaps.org protocol 0.9): `<urlset>` pages and `<sitemapindex>` files, both
//! listing URLs in `<loc>` elements.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

/// A parsed sitemap file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sitemap {
    /// `<urlset>`: page URLs.
    Pages(Vec<String>),
    /// `<sitemapindex>`: URLs of further sitemap files.
    Index(Vec<String>),
}

/// Parses a sitemap, keeping at most `max_locs` `<loc>` values (as written, trimmed). `None` when
/// the document is not a sitemap — e.g. an HTML "soft 404" served for `/sitemap.xml`. Malformed XML
/// after some `<loc>`s keeps what was read.
pub(crate) fn parse(xml: &[u8], max_locs: usize) -> Option<Sitemap> {
    let text = String::from_utf8_lossy(xml);
    let mut reader = Reader::from_str(text.trim_start_matches('\u{feff}'));
    let mut is_index = None;
    let mut in_loc = false;
    let mut loc = String::new();
    let mut locs = Vec::new();
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, "sitemap XML is malformed; keeping the URLs read so far");
                break;
            }
        };
        match event {
            Event::Start(el) => {
                let name = el.local_name();
                match (is_index, name.as_ref()) {
                    (None, "urlset") => is_index = Some(false),
                    (None, "sitemapindex") => is_index = Some(true),
                    (None, _) => return None, // the root element is something else
                    (Some(_), "loc") => {
                        in_loc = true;
                        loc.clear();
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_loc => loc.push_str(&t.xml10_content()),
            Event::CData(t) if in_loc => loc.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_loc => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    loc.push(c);
                } else if let Some(s) = resolve_predefined_entity(&r) {
                    loc.push_str(s);
                }
            }
            Event::End(el) if in_loc && el.local_name().as_ref() == "loc" => {
                in_loc = false;
                let value = loc.trim();
                if !value.is_empty() {
                    locs.push(value.to_owned());
                    if locs.len() >= max_locs {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    match is_index? {
        true => Some(Sitemap::Index(locs)),
        false => Some(Sitemap::Pages(locs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlset_locs_are_read_with_entities_and_cdata() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc> https://example.com/a?x=1&amp;y=2 </loc><lastmod>2024-01-01</lastmod></url>
  <url><loc><![CDATA[https://example.com/b]]></loc></url>
  <url><loc>https://example.com/caf&#233;</loc></url>
  <url><loc></loc></url>
</urlset>"#;
        assert_eq!(
            parse(xml, 100),
            Some(Sitemap::Pages(vec![
                "https://example.com/a?x=1&y=2".to_owned(),
                "https://example.com/b".to_owned(),
                "https://example.com/café".to_owned(),
            ]))
        );
    }

    #[test]
    fn sitemap_index_is_recognised_with_a_namespace_prefix() {
        let xml = br#"<sm:sitemapindex xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sm:sitemap><sm:loc>https://example.com/s1.xml</sm:loc></sm:sitemap>
  <sm:sitemap><sm:loc>https://example.com/s2.xml</sm:loc></sm:sitemap>
</sm:sitemapindex>"#;
        assert_eq!(
            parse(xml, 100),
            Some(Sitemap::Index(vec![
                "https://example.com/s1.xml".to_owned(),
                "https://example.com/s2.xml".to_owned(),
            ]))
        );
    }

    #[test]
    fn loc_count_is_bounded() {
        let mut xml = String::from("<urlset>");
        for i in 0..1000 {
            xml.push_str(&format!("<url><loc>https://example.com/{i}</loc></url>"));
        }
        xml.push_str("</urlset>");
        match parse(xml.as_bytes(), 10) {
            Some(Sitemap::Pages(locs)) => assert_eq!(locs.len(), 10),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn html_soft_404_is_not_a_sitemap() {
        assert_eq!(
            parse(b"<!DOCTYPE html><html><body>Not found</body></html>", 10),
            None
        );
        assert_eq!(parse(b"", 10), None);
    }
}
