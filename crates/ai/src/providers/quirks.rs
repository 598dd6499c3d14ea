//! Where the providers differ from the common OpenAI dialect (external-apis.md §7.2–§7.5).

use super::{ErrorKind, Provider, ProviderConfig};

/// Whether the provider needs an API key. OpenAI-compatible servers (Ollama, vLLM, llama.cpp) often run
/// without one; we then send no `Authorization` header at all.
pub(crate) fn requires_key(provider: Provider) -> bool {
    !matches!(provider, Provider::OpenaiCompat)
}

/// The request field for the answer length: MiniMax prefers `max_completion_tokens`
/// (external-apis.md §7.5), everyone else takes `max_tokens` (§7.1).
pub(crate) fn max_tokens_field(provider: Provider) -> &'static str {
    match provider {
        Provider::Minimax => "max_completion_tokens",
        _ => "max_tokens",
    }
}

/// MiniMax M2 models put their reasoning in `<think>…</think>` inside `content` (external-apis.md §7.5).
pub(crate) fn strips_think(provider: Provider) -> bool {
    matches!(provider, Provider::Minimax)
}

/// Whether `GET {base}/models` is documented (§7.2 OpenRouter, §7.4 Moonshot, §7.5 MiniMax; OpenAI-
/// compatible servers all serve it). §7.3 lists none for Fireworks.
pub(crate) fn documents_models_endpoint(provider: Provider) -> bool {
    !matches!(provider, Provider::Fireworks | Provider::Offline)
}

/// OpenRouter's `GET /models` is public: it answers whatever the key (external-apis.md §7.2 lists it
/// without auth), so it cannot prove a key works.
pub(crate) fn models_endpoint_checks_key(provider: Provider) -> bool {
    !matches!(provider, Provider::Openrouter)
}

/// Extra headers: OpenRouter's optional `HTTP-Referer` and `X-Title` app attribution (§7.2).
pub(crate) fn extra_headers(cfg: &ProviderConfig) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if cfg.provider == Provider::Openrouter {
        if let Some(site) = cfg.site_url.as_deref().filter(|s| !s.trim().is_empty()) {
            h.push(("HTTP-Referer", site.trim().to_string()));
        }
        if !cfg.app_name.trim().is_empty() {
            h.push(("X-Title", cfg.app_name.trim().to_string()));
        }
    }
    h
}

/// Statuses whose meaning differs by provider; `None` = the common rule of §7.1.
pub(crate) fn kind_for_status(provider: Provider, status: u16) -> Option<ErrorKind> {
    match (provider, status) {
        // §7.4: Moonshot's 403 means insufficient balance, not a bad key.
        (Provider::Moonshot, 403) => Some(ErrorKind::NoCredits),
        // §7.2: OpenRouter's 403 is a moderation/guardrail refusal of the input; the key is fine.
        (Provider::Openrouter, 403) => Some(ErrorKind::InvalidRequest),
        // §7.3: Fireworks 412 = account suspended; the owner must act on the account, as for a bad key.
        (Provider::Fireworks, 412) => Some(ErrorKind::BadKey),
        _ => None,
    }
}

/// MiniMax native `base_resp.status_code`s (external-apis.md §7.5): 1000 unknown, 1001 timeout,
/// 1002 rate limit, 1004 auth, 1008 balance (unverified). Anything else is treated as a permanent
/// request error.
pub(crate) fn kind_for_minimax_code(code: i64) -> ErrorKind {
    match code {
        1000 | 1001 => ErrorKind::Unavailable,
        1002 => ErrorKind::RateLimited,
        1004 => ErrorKind::BadKey,
        1008 => ErrorKind::NoCredits,
        _ => ErrorKind::InvalidRequest,
    }
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Removes `<think>…</think>` blocks from text that arrives in pieces (external-apis.md §7.5), so that
/// no reasoning is ever emitted, even when a tag is split across two stream chunks. Whitespace right
/// after a block (and at the very start) is dropped too, so the answer doesn't begin with blank lines.
#[derive(Debug)]
pub(crate) struct ThinkFilter {
    pending: String,
    inside: bool,
    trim_leading: bool,
}

impl Default for ThinkFilter {
    fn default() -> Self {
        Self {
            pending: String::new(),
            inside: false,
            trim_leading: true,
        }
    }
}

impl ThinkFilter {
    /// Feeds the next piece; returns the visible text it completes (possibly empty).
    pub(crate) fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        let mut out = String::new();
        loop {
            if self.inside {
                if let Some(i) = self.pending.find(CLOSE) {
                    self.pending.drain(..i + CLOSE.len());
                    self.inside = false;
                    self.trim_leading = true;
                    continue;
                }
                // Drop the reasoning, keeping only what could be the start of `</think>`.
                let keep = partial_tag_suffix(&self.pending, CLOSE);
                self.pending.drain(..self.pending.len() - keep);
                break;
            }
            if let Some(i) = self.pending.find(OPEN) {
                let visible: String = self.pending.drain(..i).collect();
                self.emit(&visible, &mut out);
                self.pending.drain(..OPEN.len());
                self.inside = true;
                continue;
            }
            let keep = partial_tag_suffix(&self.pending, OPEN);
            let visible: String = self.pending.drain(..self.pending.len() - keep).collect();
            self.emit(&visible, &mut out);
            break;
        }
        out
    }

    /// The end of the text: flushes a held-back partial tag; an unterminated block is dropped.
    pub(crate) fn finish(&mut self) -> String {
        let mut out = String::new();
        if !self.inside {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest, &mut out);
        }
        self.pending.clear();
        out
    }

    fn emit(&mut self, text: &str, out: &mut String) {
        let text = if self.trim_leading {
            text.trim_start()
        } else {
            text
        };
        if !text.is_empty() {
            self.trim_leading = false;
            out.push_str(text);
        }
    }
}

/// Strips `<think>…</think>` from a complete text.
pub(crate) fn strip_think(text: &str) -> String {
    let mut f = ThinkFilter::default();
    let mut out = f.push(text);
    out.push_str(&f.finish());
    out
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag` (ASCII, so a char boundary).
fn partial_tag_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&k| s.ends_with(&tag[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_block_is_stripped_from_a_whole_text() {
        assert_eq!(
            strip_think("<think>\nreasoning here\n</think>\n\nYes, we ship."),
            "Yes, we ship."
        );
        assert_eq!(strip_think("No tags at all."), "No tags at all.");
        assert_eq!(strip_think("<think>never closed"), "");
        assert_eq!(strip_think("a < b and c"), "a < b and c");
    }

    #[test]
    fn think_block_split_across_pieces_emits_no_reasoning() {
        let text =
            "<think>\nThe user asks about Canada.\n</think>\n\nYes, we ship to Canada. <b>ok</b>";
        for size in 1..12 {
            let chars: Vec<char> = text.chars().collect();
            let mut f = ThinkFilter::default();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                let piece: String = piece.iter().collect();
                let got = f.push(&piece);
                assert!(!got.contains("Canada.\n"), "reasoning leaked: {got:?}");
                out.push_str(&got);
            }
            out.push_str(&f.finish());
            assert_eq!(
                out, "Yes, we ship to Canada. <b>ok</b>",
                "piece size {size}"
            );
        }
    }
}
