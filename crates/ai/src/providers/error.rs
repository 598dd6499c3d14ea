//! What went wrong calling a provider, in terms a caller can act on (external-apis.md §7.1–§7.5 errors).

use super::Provider;
use super::quirks;
use serde_json::Value;
use std::fmt;

/// The longest provider message kept, in characters.
const MESSAGE_MAX: usize = 300;

/// What kind of failure: decides whether to retry, fall back, or tell the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 401/403: the key was refused (MiniMax `base_resp` 1004; Fireworks 412, account suspended).
    BadKey,
    /// 402 (Moonshot: 403; MiniMax: 1008): no credits or balance left.
    NoCredits,
    /// 400/404/422 and other 4xx: e.g. an unknown model. Permanent; retrying won't help.
    InvalidRequest,
    /// 429 (MiniMax 1002), still after all retries.
    RateLimited,
    /// 5xx or 408 (MiniMax 1000/1001), still after all retries.
    Unavailable,
    /// Our own time limit ran out (total, first byte or idle gap).
    Timeout,
    /// Could not connect, or the connection broke before an answer arrived.
    Network,
    /// The provider answered with a body we cannot read.
    Malformed,
    /// A stream ended without `[DONE]`/`finish_reason`, or the provider sent an error event mid-stream.
    StreamCut,
    /// No key, no base URL, or a provider that is not called over HTTP (`Offline`).
    NotConfigured,
}

impl ErrorKind {
    /// True for transient failures the client retries by itself (408, 429, 5xx, network errors before
    /// any answer arrived). `Timeout` is not retried: the time budget is spent. `StreamCut` is not either:
    /// part of the answer may already have been shown.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Network
        )
    }

    /// Plain words for the dashboard, safe to show to the chatbot's owner.
    pub fn owner_message(&self) -> &'static str {
        match self {
            ErrorKind::BadKey => "The API key was refused by the provider.",
            ErrorKind::NoCredits => "The provider account has run out of credits or balance.",
            ErrorKind::InvalidRequest => {
                "The provider rejected the request. Check the model name and settings."
            }
            ErrorKind::RateLimited => "The provider is limiting how fast we can send requests.",
            ErrorKind::Unavailable => "The provider is temporarily unavailable.",
            ErrorKind::Timeout => "The provider took too long to answer.",
            ErrorKind::Network => "The provider could not be reached.",
            ErrorKind::Malformed => "The provider sent an answer that could not be read.",
            ErrorKind::StreamCut => "The provider stopped in the middle of the answer.",
            ErrorKind::NotConfigured => {
                "The provider is not set up: an API key or address is missing."
            }
        }
    }

    /// A stable snake_case code, for logs and API bodies.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::BadKey => "bad_key",
            ErrorKind::NoCredits => "no_credits",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::Malformed => "malformed",
            ErrorKind::StreamCut => "stream_cut",
            ErrorKind::NotConfigured => "not_configured",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call. `message` is the provider's own message (or ours when it sent none), capped
/// at 300 characters with the API key replaced by `[redacted]`: safe to log and to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}: {message}", status_suffix(.status))]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The HTTP status, when there was a response (MiniMax native errors: 200).
    pub status: Option<u16>,
    pub message: String,
    /// How many HTTP requests were made before giving up.
    pub attempts: u32,
}

fn status_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl ProviderError {
    pub(crate) fn new(kind: ErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            message: message.into(),
            attempts: 0,
        }
    }

    pub(crate) fn not_configured(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotConfigured, None, message)
    }

    /// Caps the message and removes the key from it. Applied to every error before it leaves the client.
    pub(crate) fn sanitised(mut self, key: Option<&str>) -> Self {
        self.message = sanitise(&self.message, key);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

/// Replaces every occurrence of `key` with `[redacted]` (before capping, so no fragment survives), turns
/// control characters into spaces and caps the result at [`MESSAGE_MAX`] characters.
pub(crate) fn sanitise(message: &str, key: Option<&str>) -> String {
    let mut s = message.to_string();
    if let Some(k) = key.map(str::trim).filter(|k| !k.is_empty()) {
        s = s.replace(k, "[redacted]");
    }
    let s: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MESSAGE_MAX {
        let mut cut: String = s.chars().take(MESSAGE_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

/// Maps an HTTP error status to a kind (external-apis.md §7.1 "Errors", with the provider specifics of
/// §7.2–§7.4 applied by [`quirks::kind_for_status`]).
pub(crate) fn kind_for_status(provider: Provider, status: u16) -> ErrorKind {
    if let Some(kind) = quirks::kind_for_status(provider, status) {
        return kind;
    }
    match status {
        401 | 403 => ErrorKind::BadKey,
        402 => ErrorKind::NoCredits,
        408 => ErrorKind::Unavailable,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::InvalidRequest,
        300..=399 => ErrorKind::NotConfigured,
        _ => ErrorKind::Malformed,
    }
}

/// The error for a non-2xx response: the kind from the status, the message from the body in any of the
/// shapes of §7.1–§7.5 (`error.message`, MiniMax `base_resp.status_msg`, a bare `message`/`detail`).
pub(crate) fn from_http_status(provider: Provider, status: u16, body: &[u8]) -> ProviderError {
    let kind = kind_for_status(provider, status);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| message_in(&v))
        .or_else(|| plain_text_message(body))
        .unwrap_or_else(|| format!("HTTP {status} without an explanation"));
    ProviderError::new(kind, Some(status), message)
}

/// An error carried by a 2xx JSON body: an `error` object (OpenAI/OpenRouter shape) or a MiniMax
/// `base_resp` with a non-zero `status_code` (external-apis.md §7.5). `None` if the body is not an error.
pub(crate) fn from_ok_body(provider: Provider, status: u16, v: &Value) -> Option<ProviderError> {
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        let code_status = err
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..=599).contains(c));
        let kind = code_status
            .map(|c| kind_for_status(provider, c))
            .unwrap_or(ErrorKind::Unavailable);
        let message = message_in(v).unwrap_or_else(|| "The provider reported an error.".into());
        return Some(ProviderError::new(kind, Some(status), message));
    }
    let (code, msg) = minimax_base_resp(v)?;
    Some(ProviderError::new(
        quirks::kind_for_minimax_code(code),
        Some(status),
        format!("{msg} (MiniMax code {code})"),
    ))
}

/// A non-zero MiniMax `base_resp` (external-apis.md §7.5): `(status_code, status_msg)`.
pub(crate) fn minimax_base_resp(v: &Value) -> Option<(i64, String)> {
    let br = v.get("base_resp")?;
    let code = br.get("status_code")?.as_i64()?;
    if code == 0 {
        return None;
    }
    let msg = br
        .get("status_msg")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string();
    Some((code, msg))
}

/// The human message inside an error body, whichever shape it has.
pub(crate) fn message_in(v: &Value) -> Option<String> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match v.get("error") {
        Some(Value::Object(e)) => s(e.get("message")),
        Some(Value::String(m)) => Some(m.clone()),
        _ => None,
    }
    .or_else(|| s(v.pointer("/base_resp/status_msg")))
    .or_else(|| s(v.get("message")))
    .or_else(|| s(v.get("detail")))
    .filter(|m| !m.trim().is_empty())
}

/// A short non-JSON body (e.g. a proxy's `Bad Gateway`), unless it is an HTML page.
fn plain_text_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') || text.starts_with('{') {
        return None;
    }
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_redacts_the_key_and_caps_the_length() {
        let long = format!("bad key sk-abc {}", "x".repeat(1000));
        let s = sanitise(&long, Some("sk-abc"));
        assert!(!s.contains("sk-abc"));
        assert!(s.contains("[redacted]"));
        assert_eq!(s.chars().count(), MESSAGE_MAX);
    }

    #[test]
    fn openrouter_numeric_code_and_openai_string_code_both_yield_the_message() {
        let e = from_http_status(
            Provider::Openrouter,
            402,
            br#"{"error":{"code":402,"message":"Insufficient credits","metadata":{}}}"#,
        );
        assert_eq!(e.kind, ErrorKind::NoCredits);
        assert_eq!(e.message, "Insufficient credits");
        let e = from_http_status(
            Provider::Fireworks,
            401,
            br#"{"error":{"message":"Invalid key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::BadKey);
        assert_eq!(e.message, "Invalid key");
    }

    #[test]
    fn provider_specific_statuses_map_to_the_right_kind() {
        assert_eq!(
            kind_for_status(Provider::Moonshot, 403),
            ErrorKind::NoCredits
        );
        assert_eq!(
            kind_for_status(Provider::Openrouter, 403),
            ErrorKind::InvalidRequest
        );
        assert_eq!(kind_for_status(Provider::Fireworks, 412), ErrorKind::BadKey);
        assert_eq!(
            kind_for_status(Provider::OpenaiCompat, 404),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            kind_for_status(Provider::OpenaiCompat, 408),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind_for_status(Provider::Minimax, 503),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn minimax_base_resp_codes_map_to_kinds() {
        let v: Value = serde_json::json!({"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}});
        let e = from_ok_body(Provider::Minimax, 200, &v).expect("error");
        assert_eq!(e.kind, ErrorKind::NoCredits);
        let ok: Value = serde_json::json!({"base_resp":{"status_code":0,"status_msg":"success"}});
        assert!(from_ok_body(Provider::Minimax, 200, &ok).is_none());
    }
}
