//! A fake LLM provider speaking the OpenAI chat dialect, following external-apis.md §7.6.
//!
//! One loopback server per test, configured as one provider: it checks the Bearer key (else 401 in that
//! provider's error shape), knows a list of models (else 404, OpenRouter 400, naming the model), answers
//! deterministically (keyed by the last user message), streams with `:` keep-alives over several TCP
//! writes with a usage chunk and `data: [DONE]`, and can be scripted to fail, stall or cut a stream.
//!
//! ```ignore
//! let fake = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some("sk-test"))).await;
//! fake.push(Behavior::Status { code: 429, retry_after: Some(1) });
//! // … call fake.base_url() …
//! assert_eq!(fake.requests().len(), 2);
//! ```

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mtdesk_domain::Provider;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The path prefix of every endpoint: `base_url()` ends with it.
pub const PREFIX: &str = "/v1";

/// Pause between two TCP writes of a streamed answer, so the client really gets several reads.
const WRITE_GAP: Duration = Duration::from_millis(3);

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Whose dialect to speak: error shapes (§7.2 OpenRouter numeric `code`, §7.5 MiniMax `base_resp`,
    /// §7.4 Moonshot `{message,type}`), MiniMax `<think>` blocks, OpenRouter's processing comments.
    pub provider: Provider,
    /// The key to expect as `Authorization: Bearer <key>`; `None` = no check (OpenAI-compatible servers).
    pub api_key: Option<String>,
    /// The models it serves; empty = it accepts any model name.
    pub models: Vec<String>,
}

impl FakeConfig {
    /// A fake for `provider` expecting `api_key`, serving `fake-model` and `fake-model-large`.
    pub fn new(provider: Provider, api_key: Option<&str>) -> Self {
        Self {
            provider,
            api_key: api_key.map(str::to_string),
            models: vec!["fake-model".into(), "fake-model-large".into()],
        }
    }
}

/// What the fake does with the next request (to any endpoint). When the script is empty it answers
/// normally.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// Answer normally.
    Reply,
    /// Fail with this status in the provider's error shape, with `Retry-After: <secs>` if given. MiniMax
    /// native codes (≥ 1000, e.g. 1004) are sent as HTTP 200 with `base_resp` (§7.5).
    Status { code: u16, retry_after: Option<u32> },
    /// Wait this long before sending anything (slow first byte), then answer normally.
    Stall(Duration),
    /// Stream a few chunks, then drop the connection without `finish_reason` or `[DONE]`. Non-streaming:
    /// half a JSON body, then the connection drops.
    CutStream,
    /// Stream a few chunks, then an OpenRouter-style error event (`error` object, `finish_reason:
    /// "error"`, §7.2) while HTTP stays 200. Non-streaming: a 200 body holding only the `error` object.
    MidStreamError,
    /// HTTP 200 with a body that is not valid JSON (streaming: a `data:` line that is not JSON).
    Malformed,
    /// Stream a few chunks, go silent this long, then finish normally (exercises idle timeouts).
    PauseMidStream(Duration),
}

/// The message of the mid-stream error event sent by [`Behavior::MidStreamError`].
pub const MID_STREAM_ERROR_MESSAGE: &str = "Upstream provider disconnected mid-answer";

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, prefix included: `/v1/chat/completions`.
    pub path: String,
    /// Lowercased names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, `Value::Null` when there was none or it was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

struct Shared {
    cfg: FakeConfig,
    script: Mutex<VecDeque<Behavior>>,
    requests: Mutex<Vec<RecordedRequest>>,
    replies: Mutex<HashMap<String, String>>,
}

/// A running fake provider; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLlm {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(cfg: FakeConfig) -> FakeLlm {
        let shared = Arc::new(Shared {
            cfg,
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            replies: Mutex::new(HashMap::new()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let (addr, server) = crate::spawn_server(router).await;
        FakeLlm {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/v1`: the client appends `/chat/completions` and `/models`.
    pub fn base_url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &FakeConfig {
        &self.shared.cfg
    }

    /// Queues what to do with the next request not yet scripted.
    pub fn push(&self, behavior: Behavior) {
        lock(&self.shared.script).push_back(behavior);
    }

    /// Answer `text` when the last user message is `message` (instead of `Echo: <message>`).
    pub fn reply_to(&self, message: &str, text: &str) {
        lock(&self.shared.replies).insert(message.to_string(), text.to_string());
    }

    /// The visible answer the fake gives to `last_user_message` (MiniMax reasoning not included).
    pub fn expected_reply(&self, last_user_message: &str) -> String {
        self.shared.reply_for(last_user_message)
    }

    /// Every request received so far, in order (rejected ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to `/chat/completions`.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn reply_for(&self, last_user: &str) -> String {
        lock(&self.replies)
            .get(last_user)
            .cloned()
            .unwrap_or_else(|| format!("Echo: {last_user}"))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: header_map(&parts.headers),
        body: json_body.clone(),
    });
    let provider = shared.cfg.provider;

    if let Some(expected) = &shared.cfg.api_key {
        let got = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != format!("Bearer {expected}") {
            let presented = got.strip_prefix("Bearer ").unwrap_or(got);
            // Echo the presented key, as some providers do, so clients must redact it.
            let msg = if presented.is_empty() {
                "You didn't provide an API key.".to_string()
            } else {
                format!("Incorrect API key provided: {presented}")
            };
            let code = if provider == Provider::Minimax {
                1004
            } else {
                401
            };
            return error_response(provider, code, &msg, None);
        }
    }

    let behavior = lock(&shared.script).pop_front().unwrap_or(Behavior::Reply);
    match &behavior {
        Behavior::Status { code, retry_after } => {
            return error_response(
                provider,
                *code,
                &status_message(provider, *code),
                *retry_after,
            );
        }
        Behavior::Stall(d) => tokio::time::sleep(*d).await,
        _ => {}
    }

    match (parts.method, path.strip_prefix(PREFIX).unwrap_or("")) {
        (Method::POST, "/chat/completions") => chat(&shared, &json_body, behavior).await,
        (Method::GET, "/models") => models(&shared, behavior),
        (Method::POST, "/embeddings") => embeddings(&shared, &json_body, behavior),
        _ => error_response(provider, 404, &format!("No route for {path}"), None),
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// `GET /models` in the OpenAI list shape. Fireworks documents none (§7.3), so its fake answers 404.
fn models(shared: &Shared, behavior: Behavior) -> Response {
    let provider = shared.cfg.provider;
    if provider == Provider::Fireworks {
        return error_response(provider, 404, "Not found", None);
    }
    if behavior == Behavior::Malformed {
        return malformed_body();
    }
    let data: Vec<Value> = shared
        .cfg
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1735700000, "owned_by": "fake"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Dimensions of the fake's embeddings (§7.6: OpenRouter's text-embedding-3-small has 1536).
pub const EMBEDDING_DIMS: usize = 1536;

/// A deterministic embedding (§7.6): lower-cased words hashed into buckets, normalised. Texts that share
/// words get similar vectors, so vector search over the fake behaves sensibly in tests.
pub fn fake_embedding(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; EMBEDDING_DIMS];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in w.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        v[(h % EMBEDDING_DIMS as u64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v[0] = 1.0;
    }
    v
}

/// `POST /embeddings` (§7.1): `{"model", "input": [..]}` → OpenAI list shape with `index` and `usage`.
fn embeddings(shared: &Shared, body: &Value, behavior: Behavior) -> Response {
    let provider = shared.cfg.provider;
    if behavior == Behavior::Malformed {
        return malformed_body();
    }
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return error_response(provider, 400, "`model` is required.", None);
    };
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return error_response(provider, 400, "`input` is required.", None),
    };
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev() // out of order on purpose: clients must sort by `index`
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_embedding(t)}))
        .collect();
    axum::Json(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

/// `POST /chat/completions` (§7.1).
async fn chat(shared: &Shared, body: &Value, behavior: Behavior) -> Response {
    let provider = shared.cfg.provider;
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return error_response(provider, 400, "`model` is required.", None);
    };
    if !shared.cfg.models.is_empty() && !shared.cfg.models.iter().any(|m| m == model) {
        let code = if provider == Provider::Openrouter {
            400
        } else {
            404
        };
        let msg = format!("The model `{model}` does not exist or you do not have access to it.");
        return error_response(provider, code, &msg, None);
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return error_response(provider, 400, "`messages` is required.", None);
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content").and_then(Value::as_str))
        .unwrap_or("");
    let prompt_tokens: usize = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.split_whitespace().count())
        .sum();
    let mut answer = shared.reply_for(last_user);
    let mut finish = "stop";
    let limit = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    if let Some(limit) = limit.map(|l| l as usize)
        && answer.split_whitespace().count() > limit
    {
        answer = answer
            .split_whitespace()
            .take(limit)
            .collect::<Vec<_>>()
            .join(" ");
        finish = "length";
    }
    let completion_tokens = answer.split_whitespace().count();
    let content = if provider == Provider::Minimax {
        format!(
            "<think>\nThe customer wrote {} words. I should answer briefly and politely.\n</think>\n\n{answer}",
            last_user.split_whitespace().count()
        )
    } else {
        answer
    };
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let reply = Reply {
        provider,
        model: model.to_string(),
        content,
        finish,
        usage,
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = provider == Provider::Openrouter
            || body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
        return stream(reply, include_usage, behavior);
    }
    match behavior {
        Behavior::Malformed => malformed_body(),
        Behavior::MidStreamError => axum::Json(json!({
            "error": {"code": 502, "message": MID_STREAM_ERROR_MESSAGE, "metadata": {}}
        }))
        .into_response(),
        Behavior::CutStream => {
            let full = reply.completion().to_string();
            let half = full.as_bytes()[..full.len() / 2].to_vec();
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(half))).await;
                tokio::time::sleep(WRITE_GAP).await;
                let _ = tx.send(Err(cut())).await;
            });
            json_response(StatusCode::OK, body)
        }
        _ => axum::Json(reply.completion()).into_response(),
    }
}

struct Reply {
    provider: Provider,
    model: String,
    content: String,
    finish: &'static str,
    usage: Value,
}

impl Reply {
    fn completion(&self) -> Value {
        let mut v = json!({
            "id": "gen-fake-1",
            "object": "chat.completion",
            "created": 1735700000,
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": self.finish,
                         "message": {"role": "assistant", "content": self.content}}],
            "usage": self.usage,
        });
        if self.provider == Provider::Minimax
            && let Some(o) = v.as_object_mut()
        {
            o.insert(
                "base_resp".into(),
                json!({"status_code": 0, "status_msg": "success"}),
            );
        }
        v
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": "gen-fake-1",
            "object": "chat.completion.chunk",
            "created": 1735700000,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }
}

/// A streamed answer (§7.1 "Streaming"): a `:` comment, a role chunk, content in pieces of a few
/// characters (each event split over two TCP writes, so clients must buffer), a finish chunk, a usage
/// chunk with `choices: []`, `data: [DONE]`. Moonshot and Fireworks fakes end lines with `\r\n` to
/// exercise that path of the clients' parsers.
fn stream(reply: Reply, include_usage: bool, behavior: Behavior) -> Response {
    let nl = match reply.provider {
        Provider::Moonshot | Provider::Fireworks => "\r\n",
        _ => "\n",
    };
    let event = |v: &Value| format!("data: {v}{nl}{nl}");
    let comment = match reply.provider {
        Provider::Openrouter => ": OPENROUTER PROCESSING",
        _ => ": keep-alive",
    };
    let chars: Vec<char> = reply.content.chars().collect();
    let pieces: Vec<String> = chars.chunks(6).map(|c| c.iter().collect()).collect();

    // Each inner Vec is one event; its parts are separate writes.
    let mut head: Vec<Vec<String>> = vec![
        vec![format!("{comment}{nl}{nl}")],
        vec![event(
            &reply.chunk(json!({"role": "assistant", "content": ""}), None),
        )],
    ];
    let mut body_events: Vec<Vec<String>> = pieces
        .iter()
        .map(|p| split_in_two(&event(&reply.chunk(json!({"content": p}), None))))
        .collect();
    let mut tail: Vec<Vec<String>> = vec![vec![event(&reply.chunk(json!({}), Some(reply.finish)))]];
    if include_usage {
        tail.push(vec![event(&json!({
            "id": "gen-fake-1", "object": "chat.completion.chunk", "created": 1735700000,
            "model": reply.model, "choices": [], "usage": reply.usage,
        }))]);
    }
    tail.push(vec![format!("data: [DONE]{nl}{nl}")]);

    let early = body_events.len().min(2);
    let (ending, pause): (Ending, Option<Duration>) = match behavior {
        Behavior::CutStream => (Ending::Drop, None),
        Behavior::MidStreamError => (Ending::ErrorEvent, None),
        Behavior::Malformed => (Ending::Garbage, None),
        Behavior::PauseMidStream(d) => (Ending::Normal, Some(d)),
        _ => (Ending::Normal, None),
    };
    head.extend(body_events.drain(..early));
    let mid_error = event(&json!({
        "id": "gen-fake-1", "object": "chat.completion.chunk", "created": 1735700000,
        "model": reply.model,
        "error": {"code": 502, "message": MID_STREAM_ERROR_MESSAGE},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }));

    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let send = |s: String| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(WRITE_GAP).await;
                tx.send(Ok(Bytes::from(s))).await.is_ok()
            }
        };
        for part in head.into_iter().flatten() {
            if !send(part).await {
                return;
            }
        }
        match ending {
            Ending::Drop => {
                let _ = tx.send(Err(cut())).await;
                return;
            }
            Ending::ErrorEvent => {
                let _ = send(mid_error).await;
                return;
            }
            Ending::Garbage => {
                let _ = send(format!("data: {{\"choices\": [{{\"delta\": {nl}{nl}")).await;
                return;
            }
            Ending::Normal => {}
        }
        if let Some(d) = pause {
            tokio::time::sleep(d).await;
        }
        for part in body_events.into_iter().chain(tail).flatten() {
            if !send(part).await {
                return;
            }
        }
    });
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

enum Ending {
    Normal,
    Drop,
    ErrorEvent,
    Garbage,
}

fn split_in_two(s: &str) -> Vec<String> {
    // Split on a byte boundary that may fall inside a UTF-8 character is not possible with String, so
    // split at the nearest char boundary at or before the middle.
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid -= 1;
    }
    vec![s[..mid].to_string(), s[mid..].to_string()]
}

type Chunk = Result<Bytes, std::io::Error>;

/// A response body fed through a channel: every message is written separately; an `Err` makes the
/// server drop the connection mid-body.
fn channel_body() -> (mpsc::Sender<Chunk>, Body) {
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, Body::from_stream(stream))
}

fn cut() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake: stream cut")
}

fn json_response(status: StatusCode, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn malformed_body() -> Response {
    json_response(
        StatusCode::OK,
        Body::from(r#"{"id": "gen-fake-1", "choices": [ {"index": 0, "message": "#),
    )
}

fn status_message(provider: Provider, code: u16) -> String {
    match (provider, code) {
        (_, 1000) => "unknown error".into(),
        (_, 1001) => "request timeout".into(),
        (_, 1002) => "rate limit exceeded".into(),
        (_, 1004) => "login fail: Please carefully check the API secret key".into(),
        (_, 1008) => "insufficient balance".into(),
        (_, 400) => "Bad request.".into(),
        (_, 401) => "Invalid authentication credentials.".into(),
        (_, 402) => "Insufficient credits. Add more using https://openrouter.ai/credits".into(),
        (Provider::Moonshot, 403) => "Your account balance is insufficient.".into(),
        (_, 403) => "Forbidden.".into(),
        (_, 404) => "Not found.".into(),
        (_, 408) => "Request timed out.".into(),
        (_, 429) => "Rate limit reached for requests.".into(),
        (_, 502) => "Bad gateway: the model is down or returned an invalid response.".into(),
        (_, 503) => "No provider is available for this model.".into(),
        (_, c) if c >= 500 => "The server had an error while processing your request.".into(),
        (_, c) => format!("Error {c}."),
    }
}

/// An error in `provider`'s shape: OpenRouter `{"error":{"code":<number>,"message","metadata"}}` (§7.2);
/// MiniMax native codes (≥ 1000) as HTTP 200 + `base_resp` (§7.5); Moonshot `{"error":{"message","type"}}`
/// (§7.4); otherwise the OpenAI shape with a string `code` (§7.1).
fn error_response(
    provider: Provider,
    code: u16,
    message: &str,
    retry_after: Option<u32>,
) -> Response {
    let (status, body) = if code >= 1000 {
        (
            StatusCode::OK,
            json!({"id": "", "choices": null,
                   "base_resp": {"status_code": code, "status_msg": message}}),
        )
    } else {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match provider {
            Provider::Openrouter => {
                json!({"error": {"code": code, "message": message, "metadata": {}}})
            }
            Provider::Moonshot => {
                json!({"error": {"message": message, "type": error_type(code)}})
            }
            _ => json!({"error": {"message": message, "type": error_type(code), "param": null,
                                  "code": error_code(code)}}),
        };
        (status, body)
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn error_type(code: u16) -> &'static str {
    match code {
        401 => "invalid_authentication_error",
        402 | 403 => "exceeded_current_quota_error",
        429 => "rate_limit_reached_error",
        c if c >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

fn error_code(code: u16) -> Value {
    match code {
        401 => json!("invalid_api_key"),
        404 => json!("model_not_found"),
        429 => json!("rate_limit_exceeded"),
        _ => Value::Null,
    }
}
