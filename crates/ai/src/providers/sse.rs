//! Reading a streamed chat completion (external-apis.md §7.1 "Streaming"): `text/event-stream` framing,
//! then the meaning of each `data:` payload.

use super::error::{self, ProviderError};
use super::quirks::{self, ThinkFilter};
use super::{ErrorKind, Provider, StreamEvent, Usage};
use serde_json::Value;

/// Splits a byte stream into the `data` payloads of its events.
///
/// Per §7.1: `:` comment lines are skipped (OpenRouter's `: OPENROUTER PROCESSING`, keep-alives), lines
/// may end in `\r\n`, and reads may split a line (even a UTF-8 character) anywhere — bytes are buffered
/// until a whole line is there. Several `data:` lines of one event are joined with `\n`; a blank line
/// ends the event. Other fields (`event:`, `id:`, `retry:`) are ignored.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds the next read; returns the payloads of the events it completes.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, &mut out);
            start = end + 1;
        }
        self.buf.drain(..start);
        out
    }

    /// The end of the body: a last event without its blank line still counts.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
            self.line(&line, &mut out);
        }
        out.extend(self.data.take());
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<String>) {
        if line.is_empty() {
            out.extend(self.data.take());
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

/// What one payload meant.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Keep reading.
    More,
    /// The stream is over: the last item has been produced.
    End,
}

/// Turns chunk payloads into [`StreamEvent`]s: content deltas (reasoning stripped for MiniMax), the
/// `finish_reason`, the usage chunk (`choices: []`), `[DONE]`, and errors sent as events (§7.2
/// OpenRouter mid-stream `error` object; §7.5 MiniMax `base_resp`).
#[derive(Debug)]
pub(crate) struct StreamInterpreter {
    think: Option<ThinkFilter>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    emitted: bool,
}

impl StreamInterpreter {
    pub(crate) fn new(provider: Provider) -> Self {
        Self {
            think: quirks::strips_think(provider).then(ThinkFilter::default),
            finish_reason: None,
            usage: None,
            emitted: false,
        }
    }

    /// Interprets one `data` payload, pushing what it produces onto `out`.
    pub(crate) fn on_data(
        &mut self,
        data: &str,
        out: &mut Vec<Result<StreamEvent, ProviderError>>,
    ) -> Step {
        let data = data.trim();
        if data == "[DONE]" {
            self.done(out);
            return Step::End;
        }
        if data.is_empty() {
            return Step::More;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                out.push(Err(ProviderError::new(
                    ErrorKind::Malformed,
                    Some(200),
                    "The stream contained a chunk that is not valid JSON.",
                )));
                return Step::End;
            }
        };
        // §7.2: an error after streaming began is an event with an `error` object; HTTP stays 200.
        if v.get("error").is_some_and(Value::is_object) {
            let message = error::message_in(&v)
                .unwrap_or_else(|| "The provider reported an error mid-answer.".into());
            out.push(Err(ProviderError::new(
                ErrorKind::StreamCut,
                Some(200),
                message,
            )));
            return Step::End;
        }
        // §7.5: a MiniMax native error. Before any text it is an ordinary error (bad key…); after, a cut.
        if let Some((code, msg)) = error::minimax_base_resp(&v) {
            let kind = if self.emitted {
                ErrorKind::StreamCut
            } else {
                quirks::kind_for_minimax_code(code)
            };
            out.push(Err(ProviderError::new(
                kind,
                Some(200),
                format!("{msg} (MiniMax code {code})"),
            )));
            return Step::End;
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(u));
        }
        if let Some(choice) = v.pointer("/choices/0") {
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                self.delta(text, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                if reason == "error" {
                    out.push(Err(ProviderError::new(
                        ErrorKind::StreamCut,
                        Some(200),
                        "The provider reported an error mid-answer.",
                    )));
                    return Step::End;
                }
                self.finish_reason = Some(reason.to_string());
            }
        }
        Step::More
    }

    /// The body ended. Complete only if a `finish_reason` arrived (the usage chunk and `[DONE]` may be
    /// lost without losing text); otherwise the answer was cut.
    pub(crate) fn on_eof(&mut self, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        if self.finish_reason.is_some() {
            self.done(out);
        } else {
            out.push(Err(ProviderError::new(
                ErrorKind::StreamCut,
                Some(200),
                "The stream ended before the answer was complete.",
            )));
        }
    }

    fn delta(&mut self, text: &str, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        let visible = match &mut self.think {
            Some(f) => f.push(text),
            None => text.to_string(),
        };
        if !visible.is_empty() {
            self.emitted = true;
            out.push(Ok(StreamEvent::Delta(visible)));
        }
    }

    fn done(&mut self, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        if let Some(rest) = self.think.as_mut().map(ThinkFilter::finish)
            && !rest.is_empty()
        {
            out.push(Ok(StreamEvent::Delta(rest)));
        }
        out.push(Ok(StreamEvent::Done {
            usage: self.usage,
            finish_reason: self
                .finish_reason
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        }));
    }
}

/// `usage` as in §7.1; missing counts read as 0.
pub(crate) fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| {
        u.get(k)
            .and_then(Value::as_u64)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_skips_comments_accepts_crlf_and_buffers_split_reads() {
        let raw = ": OPENROUTER PROCESSING\r\n\r\ndata: {\"a\":\"é\"}\r\n\r\ndata: [DONE]\n\n";
        let bytes = raw.as_bytes();
        for split in 1..bytes.len() {
            let mut d = SseDecoder::default();
            let mut got = d.feed(&bytes[..split]);
            got.extend(d.feed(&bytes[split..]));
            got.extend(d.finish());
            assert_eq!(got, vec!["{\"a\":\"é\"}", "[DONE]"], "split at {split}");
        }
    }

    #[test]
    fn last_event_without_blank_line_is_still_delivered() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b"data: [DONE]").is_empty());
        assert_eq!(d.finish(), vec!["[DONE]"]);
    }

    #[test]
    fn interpreter_collects_deltas_finish_and_usage() {
        let mut i = StreamInterpreter::new(Provider::Openrouter);
        let mut out = Vec::new();
        for d in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Yes"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":42,"completion_tokens":7,"total_tokens":49}}"#,
        ] {
            assert_eq!(i.on_data(d, &mut out), Step::More);
        }
        assert_eq!(i.on_data("[DONE]", &mut out), Step::End);
        assert_eq!(
            out,
            vec![
                Ok(StreamEvent::Delta("Yes".into())),
                Ok(StreamEvent::Done {
                    usage: Some(Usage {
                        prompt_tokens: 42,
                        completion_tokens: 7
                    }),
                    finish_reason: "stop".into()
                })
            ]
        );
    }

    #[test]
    fn eof_without_finish_reason_is_a_cut_not_a_done() {
        let mut i = StreamInterpreter::new(Provider::Fireworks);
        let mut out = Vec::new();
        i.on_data(
            r#"{"choices":[{"index":0,"delta":{"content":"Half an"},"finish_reason":null}]}"#,
            &mut out,
        );
        i.on_eof(&mut out);
        assert!(matches!(out.last(), Some(Err(e)) if e.kind == ErrorKind::StreamCut));
    }
}
