//! The HTTP client shared by every provider (external-apis.md §7.1 wire format, §7.2–§7.5 quirks).

use super::error::{self, ProviderError};
use super::quirks;
use super::sse::{self, SseDecoder, Step, StreamInterpreter};
use super::{
    ChatMessage, ChatRequest, ChatResponse, ErrorKind, Provider, ProviderConfig, StreamEvent,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout_at};

/// Items buffered between the reading task and the consumer of a stream.
const STREAM_BUFFER: usize = 64;

/// Calls LLM providers. Cheap to clone; keep one for the whole process so connections are pooled.
#[derive(Clone)]
pub struct LlmClient {
    /// One `reqwest::Client` per connect timeout in use (a connect timeout is per client in reqwest).
    http: Arc<Mutex<Vec<(Duration, reqwest::Client)>>>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient").finish_non_exhaustive()
    }
}

impl Default for LlmClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A failed attempt, with the provider's `Retry-After` if it sent one.
struct Failure {
    err: ProviderError,
    retry_after: Option<Duration>,
}

impl From<ProviderError> for Failure {
    fn from(err: ProviderError) -> Self {
        Self {
            err,
            retry_after: None,
        }
    }
}

/// A stream that has started: either a real event stream with its first bytes, or a server that ignored
/// `"stream": true` and sent one JSON answer, already turned into events.
enum Opened {
    Sse { resp: Response, first: Vec<u8> },
    Whole(Vec<Result<StreamEvent, ProviderError>>),
}

impl LlmClient {
    /// Also installs ring as the process-wide rustls provider if none is installed yet (reqwest is built
    /// with `rustls-no-provider` and would panic without one); an existing choice is left alone.
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Non-streaming chat (external-apis.md §7.1), with retries on 408/429/5xx and network errors (never
    /// on other 4xx), bounded exponential backoff with jitter, `Retry-After` honoured. The whole call,
    /// retries included, is bounded by `cfg.timeouts.total`.
    #[tracing::instrument(skip_all, fields(provider = cfg.provider.as_str()))]
    pub async fn chat(
        &self,
        cfg: &ProviderConfig,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let deadline = Instant::now() + cfg.timeouts.total;
        preflight(cfg).map_err(|e| e.sanitised(cfg.key()))?;
        check_model(&req.model).map_err(|e| e.sanitised(cfg.key()))?;
        let http = &self.http(cfg)?;
        let body = &chat_body(cfg, req, false);
        let model = req.model.as_str();
        let (mut resp, attempts) = self
            .retrying(cfg, deadline, || self.chat_once(http, cfg, body, model))
            .await?;
        resp.attempts = attempts;
        Ok(resp)
    }

    /// Streaming chat (`"stream": true`, `"stream_options": {"include_usage": true}`; external-apis.md
    /// §7.1 "Streaming"). Retries happen only before the first byte of the body. The receiver yields
    /// `Delta`s then exactly one `Done`; if the stream is cut (no `finish_reason`/`[DONE]`, a mid-stream
    /// error event, a dropped connection, the idle or total timeout), the last item is an `Err`
    /// (`StreamCut`/`Timeout`) and no `Done` is sent. Dropping the receiver closes the connection.
    #[tracing::instrument(skip_all, fields(provider = cfg.provider.as_str()))]
    pub async fn chat_stream(
        &self,
        cfg: &ProviderConfig,
        req: &ChatRequest,
    ) -> Result<mpsc::Receiver<Result<StreamEvent, ProviderError>>, ProviderError> {
        let deadline = Instant::now() + cfg.timeouts.total;
        preflight(cfg).map_err(|e| e.sanitised(cfg.key()))?;
        check_model(&req.model).map_err(|e| e.sanitised(cfg.key()))?;
        let http = &self.http(cfg)?;
        let body = &chat_body(cfg, req, true);
        let model = req.model.as_str();
        let (opened, attempts) = self
            .retrying(cfg, deadline, || {
                self.open_stream(http, cfg, body, model, deadline)
            })
            .await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let key = cfg.key().map(str::to_string);
        match opened {
            Opened::Whole(events) => {
                for ev in events {
                    let ev = ev.map_err(|e| e.sanitised(key.as_deref()).with_attempts(attempts));
                    // The buffer is larger than a whole answer's two events, so this cannot fail.
                    let _ = tx.try_send(ev);
                }
            }
            Opened::Sse { resp, first } => {
                let pump = Pump {
                    provider: cfg.provider,
                    key,
                    idle: cfg.timeouts.idle,
                    total: cfg.timeouts.total,
                    deadline,
                    attempts,
                };
                tokio::spawn(pump.run(resp, first, tx));
            }
        }
        Ok(rx)
    }

    /// `GET {base}/models` → the model ids, sorted (external-apis.md §7.2, §7.4, §7.5). Fireworks
    /// documents no such endpoint (§7.3): it is tried anyway and a 404 yields an empty list.
    #[tracing::instrument(skip_all, fields(provider = cfg.provider.as_str()))]
    pub async fn list_models(&self, cfg: &ProviderConfig) -> Result<Vec<String>, ProviderError> {
        let deadline = Instant::now() + cfg.timeouts.total;
        preflight(cfg).map_err(|e| e.sanitised(cfg.key()))?;
        let http = &self.http(cfg)?;
        let (models, _) = self
            .retrying(cfg, deadline, || self.models_once(http, cfg))
            .await?;
        Ok(models)
    }

    /// A cheap check of the key, returning a sentence for the owner. Uses `GET /models` where the provider
    /// has it and it checks the key (Moonshot, MiniMax, OpenAI-compatible); otherwise a one-token chat with
    /// `model` (Fireworks; OpenRouter when a model is given, because OpenRouter's model list is public and
    /// accepts any key — without a model it falls back to the list and says the key is unproven).
    #[tracing::instrument(skip_all, fields(provider = cfg.provider.as_str()))]
    pub async fn test_key(
        &self,
        cfg: &ProviderConfig,
        model: Option<&str>,
    ) -> Result<String, ProviderError> {
        preflight(cfg).map_err(|e| e.sanitised(cfg.key()))?;
        let provider = cfg.provider;
        let model = model.map(str::trim).filter(|m| !m.is_empty());
        let list_checks_key = quirks::models_endpoint_checks_key(provider);
        if quirks::documents_models_endpoint(provider) && (list_checks_key || model.is_none()) {
            let n = self.list_models(cfg).await?.len();
            let count = if n == 1 {
                "1 model".to_string()
            } else {
                format!("{n} models")
            };
            return Ok(match (cfg.key().is_some(), list_checks_key) {
                (true, true) => format!("The key works: {count} available."),
                (false, _) => format!("The server answered: {count} available."),
                (true, false) => format!(
                    "{} answered: {count} available. It lists models without checking the key, so \
                     choose a model and test again to be sure the key works.",
                    provider.label()
                ),
            });
        }
        let Some(model) = model else {
            return Err(ProviderError::not_configured(format!(
                "Choose a model first: {} can only check a key with a one-token test message.",
                provider.label()
            )));
        };
        let req = ChatRequest {
            model: model.to_string(),
            messages: vec![ChatMessage::user("Hi")],
            // Valid for every provider (MiniMax wants (0, 1]); irrelevant for one token.
            temperature: 1.0,
            max_tokens: 1,
        };
        self.chat(cfg, &req).await?;
        Ok(format!("The key works: {model} answered a test message."))
    }

    fn http(&self, cfg: &ProviderConfig) -> Result<reqwest::Client, ProviderError> {
        let connect = cfg.timeouts.connect;
        let mut cache = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = cache.iter().find(|(d, _)| *d == connect) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            // Never follow a redirect with the key; a moved server is a configuration problem.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mtdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ProviderError::new(
                    ErrorKind::Network,
                    None,
                    format!("Could not set up the HTTP client: {e}"),
                )
            })?;
        cache.push((connect, client.clone()));
        Ok(client)
    }

    /// Runs `attempt` until it succeeds, fails for good, `max_attempts` is reached or the next wait would
    /// pass `deadline`. Each attempt is also cut at `deadline`. Every error leaving here is sanitised.
    async fn retrying<T, F, Fut>(
        &self,
        cfg: &ProviderConfig,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<(T, u32), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let max = cfg.retry.max_attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            let result = match timeout_at(deadline, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(total_timeout(cfg.timeouts.total).into()),
            };
            let failure = match result {
                Ok(v) => return Ok((v, n)),
                Err(f) => f,
            };
            let give_up = |f: Failure| Err(f.err.sanitised(cfg.key()).with_attempts(n));
            if !failure.err.kind.is_retryable() || n >= max {
                return give_up(failure);
            }
            let delay = cfg.retry.delay(n, failure.retry_after);
            if Instant::now() + delay >= deadline {
                return give_up(failure);
            }
            tracing::warn!(
                kind = %failure.err.kind,
                status = ?failure.err.status,
                attempt = n,
                delay_ms = delay.as_millis() as u64,
                "provider call failed, retrying"
            );
            sleep(delay).await;
        }
    }

    /// One `POST /chat/completions` without streaming.
    async fn chat_once(
        &self,
        http: &reqwest::Client,
        cfg: &ProviderConfig,
        body: &Value,
        model: &str,
    ) -> Result<ChatResponse, Failure> {
        let resp = request(http, cfg, Method::POST, "chat/completions")
            .header(ACCEPT, "application/json")
            .json(body)
            .send()
            .await
            .map_err(from_reqwest)?;
        let (status, retry_after) = (resp.status().as_u16(), retry_after(resp.headers()));
        let bytes = resp.bytes().await.map_err(from_reqwest)?;
        if !(200..300).contains(&status) {
            return Err(Failure {
                err: error::from_http_status(cfg.provider, status, &bytes),
                retry_after,
            });
        }
        Ok(parse_completion(cfg.provider, status, &bytes, model)?)
    }

    /// Opens a stream: sends the request and waits for the first bytes of the body, within
    /// `first_byte`. Errors up to that point are ordinary (retryable) failures.
    async fn open_stream(
        &self,
        http: &reqwest::Client,
        cfg: &ProviderConfig,
        body: &Value,
        model: &str,
        deadline: Instant,
    ) -> Result<Opened, Failure> {
        let first_byte = cfg.timeouts.first_byte;
        let open = async {
            let mut resp = request(http, cfg, Method::POST, "chat/completions")
                .header(ACCEPT, "text/event-stream")
                .json(body)
                .send()
                .await
                .map_err(from_reqwest)?;
            let (status, retry_after) = (resp.status().as_u16(), retry_after(resp.headers()));
            let is_json = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.contains("json"));
            if !(200..300).contains(&status) || is_json {
                let bytes = resp.bytes().await.map_err(from_reqwest)?;
                if !(200..300).contains(&status) {
                    return Err(Failure {
                        err: error::from_http_status(cfg.provider, status, &bytes),
                        retry_after,
                    });
                }
                // A JSON body to a streaming request: an error (MiniMax `base_resp`…) or a server that
                // ignored `stream`. Either way nothing was shown yet, so this is still retryable.
                let r = parse_completion(cfg.provider, status, &bytes, model)?;
                let mut events = Vec::new();
                if !r.content.is_empty() {
                    events.push(Ok(StreamEvent::Delta(r.content)));
                }
                events.push(Ok(StreamEvent::Done {
                    usage: r.usage,
                    finish_reason: r.finish_reason,
                }));
                return Ok(Opened::Whole(events));
            }
            let first = resp.chunk().await.map_err(from_reqwest)?;
            Ok(Opened::Sse {
                resp,
                first: first.map(|b| b.to_vec()).unwrap_or_default(),
            })
        };
        let limit = (Instant::now() + first_byte).min(deadline);
        match timeout_at(limit, open).await {
            Ok(r) => r,
            Err(_) if limit >= deadline => Err(total_timeout(cfg.timeouts.total).into()),
            Err(_) => Err(ProviderError::new(
                ErrorKind::Timeout,
                None,
                format!(
                    "The provider sent nothing within {}.",
                    human_duration(first_byte)
                ),
            )
            .into()),
        }
    }

    /// One `GET /models`.
    async fn models_once(
        &self,
        http: &reqwest::Client,
        cfg: &ProviderConfig,
    ) -> Result<Vec<String>, Failure> {
        let resp = request(http, cfg, Method::GET, "models")
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(from_reqwest)?;
        let (status, retry_after) = (resp.status().as_u16(), retry_after(resp.headers()));
        let bytes = resp.bytes().await.map_err(from_reqwest)?;
        if status == 404 && !quirks::documents_models_endpoint(cfg.provider) {
            return Ok(Vec::new());
        }
        if !(200..300).contains(&status) {
            return Err(Failure {
                err: error::from_http_status(cfg.provider, status, &bytes),
                retry_after,
            });
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| malformed("model list"))?;
        if let Some(e) = error::from_ok_body(cfg.provider, status, &v) {
            return Err(e.into());
        }
        let list = v
            .get("data")
            .unwrap_or(&v)
            .as_array()
            .ok_or_else(|| malformed("model list"))?;
        let mut ids: Vec<String> = list
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// Reads an event stream after its first bytes and forwards events to the receiver.
struct Pump {
    provider: Provider,
    key: Option<String>,
    idle: Duration,
    total: Duration,
    deadline: Instant,
    attempts: u32,
}

impl Pump {
    async fn run(
        self,
        mut resp: Response,
        first: Vec<u8>,
        tx: mpsc::Sender<Result<StreamEvent, ProviderError>>,
    ) {
        let mut decoder = SseDecoder::default();
        let mut interp = StreamInterpreter::new(self.provider);
        let mut out = Vec::new();
        let mut ended = feed(&mut decoder, &mut interp, &first, &mut out);
        loop {
            for item in out.drain(..) {
                let item = item.map_err(|e| {
                    e.sanitised(self.key.as_deref())
                        .with_attempts(self.attempts)
                });
                if tx.send(item).await.is_err() {
                    return; // Receiver gone: dropping `resp` closes the connection.
                }
            }
            if ended {
                return;
            }
            let limit = (Instant::now() + self.idle).min(self.deadline);
            let next = tokio::select! {
                r = timeout_at(limit, resp.chunk()) => r,
                _ = tx.closed() => return,
            };
            ended = true;
            match next {
                Err(_) => {
                    let message = if limit >= self.deadline {
                        format!(
                            "The answer was not complete within {}.",
                            human_duration(self.total)
                        )
                    } else {
                        format!(
                            "The provider went silent for {} mid-answer.",
                            human_duration(self.idle)
                        )
                    };
                    out.push(Err(ProviderError::new(
                        ErrorKind::Timeout,
                        Some(200),
                        message,
                    )));
                }
                Ok(Err(e)) => out.push(Err(ProviderError::new(
                    ErrorKind::StreamCut,
                    Some(200),
                    format!("The connection dropped mid-answer: {}", error_chain(&e)),
                ))),
                Ok(Ok(None)) => {
                    let mut finished = false;
                    for data in decoder.finish() {
                        if interp.on_data(&data, &mut out) == Step::End {
                            finished = true;
                            break;
                        }
                    }
                    if !finished {
                        interp.on_eof(&mut out);
                    }
                }
                Ok(Ok(Some(bytes))) => {
                    ended = feed(&mut decoder, &mut interp, &bytes, &mut out);
                }
            }
        }
    }
}

/// Feeds bytes through the decoder and interpreter; true once the stream is over.
fn feed(
    decoder: &mut SseDecoder,
    interp: &mut StreamInterpreter,
    bytes: &[u8],
    out: &mut Vec<Result<StreamEvent, ProviderError>>,
) -> bool {
    decoder
        .feed(bytes)
        .iter()
        .any(|data| interp.on_data(data, out) == Step::End)
}

/// Refuses configs that cannot be called: `Offline`, no base URL, no key where one is required.
fn preflight(cfg: &ProviderConfig) -> Result<(), ProviderError> {
    if cfg.provider == Provider::Offline {
        return Err(ProviderError::not_configured(
            "The offline answerer is not an HTTP provider.",
        ));
    }
    if cfg.base_url.trim().is_empty() {
        return Err(ProviderError::not_configured(format!(
            "No base URL is set for {}.",
            cfg.provider.label()
        )));
    }
    if quirks::requires_key(cfg.provider) && cfg.key().is_none() {
        return Err(ProviderError::not_configured(format!(
            "No API key is set for {}.",
            cfg.provider.label()
        )));
    }
    Ok(())
}

fn check_model(model: &str) -> Result<(), ProviderError> {
    if model.trim().is_empty() {
        return Err(ProviderError::not_configured("No model is chosen."));
    }
    Ok(())
}

/// A request to `{base}/{path}` with `Authorization: Bearer <key>` when there is a key
/// (external-apis.md §7.1) and the provider's extra headers (§7.2).
fn request(
    http: &reqwest::Client,
    cfg: &ProviderConfig,
    method: Method,
    path: &str,
) -> RequestBuilder {
    let url = format!("{}/{path}", cfg.base_url.trim().trim_end_matches('/'));
    let mut rb = http.request(method, url);
    if let Some(key) = cfg.key() {
        rb = rb.bearer_auth(key.trim());
    }
    for (name, value) in quirks::extra_headers(cfg) {
        rb = rb.header(name, value);
    }
    rb
}

/// The JSON body of `POST /chat/completions` (external-apis.md §7.1; `max_completion_tokens` for MiniMax,
/// §7.5).
fn chat_body(cfg: &ProviderConfig, req: &ChatRequest, stream: bool) -> Value {
    let mut body = json!({
        "model": req.model.trim(),
        "messages": req.messages,
        "temperature": req.temperature,
        "stream": stream,
    });
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            quirks::max_tokens_field(cfg.provider).to_string(),
            json!(req.max_tokens),
        );
        if stream {
            obj.insert(
                "stream_options".to_string(),
                json!({ "include_usage": true }),
            );
        }
    }
    body
}

/// Reads a `chat.completion` body (external-apis.md §7.1), or the error a 2xx body may carry (§7.2,
/// §7.5).
fn parse_completion(
    provider: Provider,
    status: u16,
    bytes: &[u8],
    requested_model: &str,
) -> Result<ChatResponse, ProviderError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| malformed("answer"))?;
    if let Some(e) = error::from_ok_body(provider, status, &v) {
        return Err(e);
    }
    let choice = v.pointer("/choices/0").ok_or_else(|| malformed("answer"))?;
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    if finish_reason == "error" {
        return Err(ProviderError::new(
            ErrorKind::Unavailable,
            Some(status),
            "The provider reported an error instead of an answer.",
        ));
    }
    let raw = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let content = if quirks::strips_think(provider) {
        quirks::strip_think(raw)
    } else {
        raw.to_string()
    };
    Ok(ChatResponse {
        content,
        model: v
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(requested_model)
            .to_string(),
        usage: v
            .get("usage")
            .filter(|u| u.is_object())
            .map(sse::parse_usage),
        finish_reason,
        attempts: 0,
    })
}

fn malformed(what: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Malformed,
        Some(200),
        format!("The provider's {what} is not in the expected JSON shape."),
    )
}

fn total_timeout(total: Duration) -> ProviderError {
    ProviderError::new(
        ErrorKind::Timeout,
        None,
        format!("No complete answer within {}.", human_duration(total)),
    )
}

fn human_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `Retry-After` in seconds (external-apis.md §7.1); the HTTP-date form is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

fn from_reqwest(e: reqwest::Error) -> Failure {
    let kind = if e.is_builder() {
        ErrorKind::NotConfigured
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    ProviderError::new(kind, None, error_chain(&e)).into()
}

/// The error and its causes, e.g. `error sending request for url (…): connection refused`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
