//! Long answers → pieces that fit one platform message each: Messenger 2000 characters
//! (external-apis.md §2.3), Instagram 1000 UTF-8 bytes (§3.3), WhatsApp 4096 characters (§4.2).
//! The sender posts the pieces in order, awaiting each (§2.3).

use crate::Platform;

/// A text limit of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many Unicode scalar values (`char`s).
    Chars(usize),
    /// At most this many bytes of UTF-8.
    Bytes(usize),
}

/// The text limit of one message on `p`: Messenger `Chars(2000)` (external-apis.md §2.3), Instagram
/// `Bytes(1000)` (§3.3, secondary source), WhatsApp `Chars(4096)` (§4.2).
pub fn limit_for(p: Platform) -> Limit {
    match p {
        Platform::Messenger => Limit::Chars(2000),
        Platform::Instagram => Limit::Bytes(1000),
        Platform::WhatsApp => Limit::Chars(4096),
    }
}

/// Splits `text` into pieces that each fit `limit`.
///
/// Cuts, in order of preference: after a line break, after a sentence end (`.`, `!`, `?`, `…` followed
/// by whitespace; `。！？` anywhere), at whitespace, else a hard cut on a `char` boundary. A border in
/// the second half of the allowed window is preferred over a better kind of border early in it, so
/// pieces don't come out tiny.
///
/// Guarantees: no piece exceeds the limit, no piece is empty or starts/ends with whitespace, and the
/// pieces joined with the whitespace that was at each cut give back `text` (minus its leading and
/// trailing whitespace). A whitespace-only text gives no pieces. A limit too small for any character
/// is raised to the minimum that holds one (`Chars(1)`, `Bytes(4)`).
pub fn split_message(text: &str, limit: Limit) -> Vec<String> {
    let limit = match limit {
        Limit::Chars(n) => Limit::Chars(n.max(1)),
        Limit::Bytes(n) => Limit::Bytes(n.max(4)),
    };
    let mut pieces = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let max_end = window_end(rest, limit);
        if max_end >= rest.trim_end().len() {
            pieces.push(rest.trim_end().to_string());
            break;
        }
        let cut = best_cut(rest, max_end).unwrap_or(max_end);
        let piece = rest[..cut].trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_string());
        }
        rest = rest[cut..].trim_start();
    }
    pieces
}

/// The largest byte index `e` such that `rest[..e]` fits `limit` (always ≥ one char).
fn window_end(rest: &str, limit: Limit) -> usize {
    match limit {
        Limit::Chars(n) => rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i),
        Limit::Bytes(n) => {
            if n >= rest.len() {
                return rest.len();
            }
            let mut e = n;
            while !rest.is_char_boundary(e) {
                e -= 1;
            }
            e
        }
    }
}

/// The best cut position in `(0, max_end]` of `rest` (which starts with a non-whitespace char), or
/// `None` for a hard cut.
fn best_cut(rest: &str, max_end: usize) -> Option<usize> {
    // The last candidate of each kind; every position is a char boundary. The char at `max_end` is
    // visited too (it is not in the piece, but whitespace there is a border at `max_end`).
    let mut line = None;
    let mut sentence = None;
    let mut space = None;
    let mut prev: Option<char> = None;
    for (i, c) in rest.char_indices() {
        if i > max_end {
            break;
        }
        if i > 0 {
            if c == '\n' {
                line = Some(i);
            }
            if c.is_whitespace() {
                space = Some(i);
                if matches!(prev, Some('.' | '!' | '?' | '…')) {
                    sentence = Some(i);
                }
            }
            if matches!(prev, Some('。' | '！' | '？')) {
                sentence = Some(i);
            }
        }
        prev = Some(c);
    }
    let half = max_end / 2;
    let kinds = [line, sentence, space];
    kinds
        .iter()
        .flatten()
        .find(|&&p| p >= half)
        .or_else(|| kinds.iter().flatten().next())
        .copied()
        .filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(piece: &str, limit: Limit) -> bool {
        match limit {
            Limit::Chars(n) => piece.chars().count() <= n,
            Limit::Bytes(n) => piece.len() <= n,
        }
    }

    /// Checks every guarantee of [`split_message`] and returns the pieces.
    fn check(text: &str, limit: Limit) -> Vec<String> {
        let pieces = split_message(text, limit);
        let mut cursor = 0;
        for p in &pieces {
            assert!(fits(p, limit), "piece over {limit:?}: {p:?}");
            assert!(!p.is_empty(), "empty piece");
            assert_eq!(p.trim(), p, "untrimmed piece");
            let at = text[cursor..]
                .find(p.as_str())
                .map(|i| i + cursor)
                .unwrap_or_else(|| panic!("piece {p:?} not found in order"));
            assert!(
                text[cursor..at].chars().all(char::is_whitespace),
                "non-whitespace dropped before {p:?}: {:?}",
                &text[cursor..at]
            );
            cursor = at + p.len();
        }
        assert!(
            text[cursor..].chars().all(char::is_whitespace),
            "tail dropped"
        );
        pieces
    }

    #[test]
    fn platform_limits_follow_the_reference() {
        assert_eq!(limit_for(Platform::Messenger), Limit::Chars(2000));
        assert_eq!(limit_for(Platform::Instagram), Limit::Bytes(1000));
        assert_eq!(limit_for(Platform::WhatsApp), Limit::Chars(4096));
    }

    #[test]
    fn short_or_empty_texts() {
        let cases: [(&str, Limit, &[&str]); 6] = [
            ("", Limit::Chars(10), &[]),
            ("   \n\t ", Limit::Chars(10), &[]),
            ("Hello.", Limit::Chars(10), &["Hello."]),
            ("  Hello.  ", Limit::Chars(6), &["Hello."]),
            ("exactly10!", Limit::Chars(10), &["exactly10!"]),
            ("exactly10!", Limit::Bytes(10), &["exactly10!"]),
        ];
        for (text, limit, want) in cases {
            assert_eq!(check(text, limit), want, "{text:?} {limit:?}");
        }
    }

    #[test]
    fn cuts_prefer_lines_then_sentences_then_spaces_then_hard() {
        let cases: [(&str, Limit, &[&str]); 8] = [
            (
                "First sentence here. Second one is here.",
                Limit::Chars(25),
                &["First sentence here.", "Second one is here."],
            ),
            (
                "Is it? Yes! It is… Really.",
                Limit::Chars(12),
                &["Is it? Yes!", "It is…", "Really."],
            ),
            (
                "Line one, no period\nline two also none",
                Limit::Chars(25),
                &["Line one, no period", "line two also none"],
            ),
            (
                "no sentence borders in this long text",
                Limit::Chars(16),
                &["no sentence", "borders in this", "long text"],
            ),
            ("abcdefghij", Limit::Chars(4), &["abcd", "efgh", "ij"]),
            // A decimal point is not a sentence end.
            (
                "Pi is 3.14159 roughly. OK",
                Limit::Chars(22),
                &["Pi is 3.14159 roughly.", "OK"],
            ),
            // An early sentence end loses to a late space.
            (
                "Hi. this part has many words in it",
                Limit::Chars(24),
                &["Hi. this part has many", "words in it"],
            ),
            // An early sentence end beats a hard cut.
            (
                "Hi. abcdefghijklmnopqrstuvwxyz",
                Limit::Chars(20),
                &["Hi.", "abcdefghijklmnopqrst", "uvwxyz"],
            ),
        ];
        for (text, limit, want) in cases {
            assert_eq!(check(text, limit), want, "{text:?} {limit:?}");
        }
    }

    #[test]
    fn byte_limits_never_cut_inside_a_character() {
        let cases: [(&str, usize); 5] = [
            ("😀😀😀😀😀😀😀😀😀😀", 10),
            ("日本語のテキストです。次の文です。三番目の文。", 20),
            ("Grüße aus Köln! Ça va? Ünïcödé everywhere… ok", 12),
            ("a😀b😀c😀d😀e😀f😀", 7),
            ("👨‍👩‍👧‍👦 family emoji sequence 👨‍👩‍👧‍👦", 9),
        ];
        for (text, n) in cases {
            let pieces = check(text, Limit::Bytes(n));
            assert!(!pieces.is_empty());
        }
        // CJK sentence ends are borders even without a following space.
        assert_eq!(
            check("日本語です。次の文です。", Limit::Bytes(20)),
            ["日本語です。", "次の文です。"]
        );
    }

    #[test]
    fn realistic_long_answers_fit_every_platform() {
        let paragraph = "Thanks for asking! We ship to Canada within 5–7 business days. \
                         Customs fees may apply, and we can't predict them exactly… \
                         Would you like the tracking link? 😀 日本にも発送します。\n";
        let text = paragraph.repeat(60);
        for p in Platform::ALL {
            let limit = limit_for(p);
            let pieces = check(&text, limit);
            assert!(pieces.len() > 1, "{p:?}");
            for piece in &pieces[..pieces.len() - 1] {
                let last = piece.chars().last();
                assert!(
                    matches!(last, Some('.' | '!' | '?' | '…' | '。' | '😀')),
                    "{p:?} piece ends mid-sentence: …{:?}",
                    piece.chars().rev().take(10).collect::<String>()
                );
            }
        }
    }

    #[test]
    fn tiny_limits_are_raised_to_hold_one_character() {
        assert_eq!(split_message("ab", Limit::Chars(0)), ["a", "b"]);
        assert_eq!(split_message("😀😀", Limit::Bytes(0)), ["😀", "😀"]);
        assert_eq!(split_message("😀é", Limit::Bytes(1)), ["😀", "é"]);
        assert_eq!(check("😀é", Limit::Bytes(4)), ["😀", "é"]);
    }
}
