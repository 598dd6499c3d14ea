//! The Graph API client: sends (external-apis.md §2.3, §3.3 path A, §4.2), WhatsApp mark-read (§4.2),
//! webhook subscriptions (§4.2, §5.1 step 6), Facebook Login (§5.1), token introspection (§5.2), and
//! error classification (§2.4, §4.3).
//!
//! Secrets never leave in an error: reqwest errors lose their URL (it holds `access_token`), and every
//! error message is scrubbed of the tokens and app secret of its call before it is returned.

use crate::signature::appsecret_proof;
use rand::RngExt;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout_at};
use url::Url;

/// Meta's Graph host (external-apis.md, conventions).
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.facebook.com";
/// The Instagram Login API host (external-apis.md §3, path B).
pub const DEFAULT_INSTAGRAM_BASE: &str = "https://graph.instagram.com";
/// The Graph API version the docs show (external-apis.md, conventions); a setting, not a constant.
pub const DEFAULT_VERSION: &str = "v25.0";
/// The Page webhook fields we subscribe to (external-apis.md §5.1 step 6).
pub const PAGE_SUBSCRIBED_FIELDS: &str =
    "messages,messaging_postbacks,message_echoes,message_deliveries,message_reads";
/// The most pages of `/me/accounts` followed (a loop guard; a person rarely manages more).
const MAX_PAGES: usize = 10;
/// The largest Graph answer read; our calls get a few KB at most.
const MAX_BODY: usize = 1 << 20;
/// Error messages from Meta are cut to this many chars.
const MAX_MESSAGE: usize = 500;

// ---------------------------------------------------------------------------------------------------
// Config

/// Where and how to call the Graph API. `Debug` hides the app secret.
#[derive(Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com` or a fake's base (`MTDESK_GRAPH_API_BASE`); may carry a path prefix.
    pub graph_base: String,
    /// `https://graph.instagram.com` (Instagram Login, path B) or a fake's base.
    pub instagram_base: String,
    /// Graph API version path segment, e.g. `v25.0`.
    pub version: String,
    pub app_id: String,
    pub app_secret: String,
    /// Add `appsecret_proof` (external-apis.md §2.3) to every call made with a user/page/system token.
    pub use_appsecret_proof: bool,
    pub connect_timeout: Duration,
    /// Bound of one whole call, retries and waits included.
    pub total_timeout: Duration,
    /// Attempts per call for transient and rate-limit errors (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubled per retry, with jitter.
    pub base_backoff: Duration,
}

impl GraphConfig {
    /// Defaults: version `v25.0`, connect 5 s, total 20 s, 3 attempts, 200 ms backoff, no
    /// `appsecret_proof`. `instagram_base` is `https://graph.instagram.com` when `graph_base` is Meta's
    /// own host, else the same as `graph_base` (one fake serves all hosts, external-apis.md conventions).
    pub fn new(
        graph_base: impl Into<String>,
        app_id: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        let graph_base = graph_base.into();
        let instagram_base = if graph_base.trim().trim_end_matches('/') == DEFAULT_GRAPH_BASE {
            DEFAULT_INSTAGRAM_BASE.to_string()
        } else {
            graph_base.clone()
        };
        Self {
            graph_base,
            instagram_base,
            version: DEFAULT_VERSION.into(),
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            use_appsecret_proof: false,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
        }
    }
}

impl fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphConfig")
            .field("graph_base", &self.graph_base)
            .field("instagram_base", &self.instagram_base)
            .field("version", &self.version)
            .field("app_id", &self.app_id)
            .field("app_secret", &"[redacted]")
            .field("use_appsecret_proof", &self.use_appsecret_proof)
            .field("connect_timeout", &self.connect_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("base_backoff", &self.base_backoff)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------------
// Results

/// A message Meta accepted (not yet delivered: that comes as a status webhook, external-apis.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// `message_id` (Messenger/Instagram) or `messages[0].id` (WhatsApp wamid).
    pub message_id: String,
}

/// Who a send goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTarget<'a> {
    /// `POST {graph_base}/{v}/{page_id}/messages`, Page token in the query (external-apis.md §2.3).
    Messenger { page_id: &'a str },
    /// Instagram path A: the same call as Messenger, on the Page linked to the IG account (§3, §3.3).
    Instagram { page_id: &'a str },
    /// `POST {graph_base}/{v}/{phone_number_id}/messages`, `Authorization: Bearer` (§4.2).
    WhatsApp { phone_number_id: &'a str },
}

/// `debug_token`'s `data` (external-apis.md §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub is_valid: bool,
    pub app_id: String,
    /// `USER`, `PAGE`, `APP`, `SYSTEM_USER`…
    pub token_type: String,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    /// Epoch seconds; 0 = never (Page tokens from a long-lived user token, §5.1 step 5).
    pub expires_at: i64,
}

/// A token from `oauth/access_token` (external-apis.md §5.1 steps 3–4). `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub access_token: String,
    /// Seconds; `None` when Meta sent none.
    pub expires_in: Option<i64>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// `GET /me?fields=id,name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaUser {
    pub id: String,
    pub name: Option<String>,
}

/// One Page from `/me/accounts` (external-apis.md §5.1 step 5). `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct PageAccount {
    pub id: String,
    pub name: String,
    /// The Page token (empty when Meta sent none, e.g. no task on the Page).
    pub access_token: String,
    /// `MESSAGING`, `MODERATE`, … — sending needs `MESSAGING` (§2.3).
    pub tasks: Vec<String>,
    /// The linked Instagram professional account id (path A, §3.1).
    pub instagram_business_account: Option<String>,
}

impl fmt::Debug for PageAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageAccount")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("access_token", &"[redacted]")
            .field("tasks", &self.tasks)
            .field(
                "instagram_business_account",
                &self.instagram_business_account,
            )
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------------
// Errors

/// What the caller should do about a failed call (external-apis.md §2.4, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The token is dead (190, 102, subcodes 458–467): mark the channel "reconnect needed", stop, notify.
    TokenInvalid,
    /// Outside the messaging window (10/2018065, WhatsApp 131047): don't retry; mark the window closed.
    OutsideWindow,
    /// Rate limited (4, 17, 32, 613, 80001–80014, 130429, 131056): back off this tenant, retry later.
    RateLimited,
    /// Temporary (1200, 2, 131000, 131016, 131057, `is_transient`, HTTP 5xx/408, network, timeout).
    Transient,
    /// This user can't be reached (551, 10/2018108, 200/1545041, 131026): permanent for the user.
    UserUnavailable,
    /// Permission / app / setup problem (0, 3, 10, 200–299, 131005, 131030): the owner must fix config.
    Config,
    /// Anything else (100, 368, 131008, 131009, 131031, 131051, 132xxx, …): don't retry.
    Permanent,
}

impl ErrorClass {
    /// Stable snake_case name for storage and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::TokenInvalid => "token_invalid",
            ErrorClass::OutsideWindow => "outside_window",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Transient => "transient",
            ErrorClass::UserUnavailable => "user_unavailable",
            ErrorClass::Config => "config",
            ErrorClass::Permanent => "permanent",
        }
    }

    /// Whether trying the same call again later can succeed (`Transient`, `RateLimited`).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::RateLimited)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a Graph error by `code`/`error_subcode` (never by message text), then by `is_transient`,
/// then by HTTP status (external-apis.md §2.4, §4.3). No status at all means no answer: a network
/// error or timeout, hence `Transient`.
pub fn classify(
    code: Option<i64>,
    subcode: Option<i64>,
    http_status: Option<u16>,
    is_transient: bool,
) -> ErrorClass {
    use ErrorClass::*;
    // §2.4: 190 with subcodes 458 app removed, 459 checkpoint, 460 password changed, 463 expired,
    // 464 unconfirmed, 467 invalid; 102 is the legacy session-key error.
    const TOKEN_SUBCODES: [i64; 6] = [458, 459, 460, 463, 464, 467];
    match (code, subcode) {
        (Some(190 | 102), _) => return TokenInvalid,
        (_, Some(s)) if TOKEN_SUBCODES.contains(&s) => return TokenInvalid,
        (Some(10), Some(2018065)) | (Some(131047), _) => return OutsideWindow,
        (Some(551 | 131026), _) | (Some(10), Some(2018108)) | (Some(200), Some(1545041)) => {
            return UserUnavailable;
        }
        // 80001–80014: Business Use Case rate limits (Page, Instagram, WhatsApp BUC…), like 80007.
        (Some(4 | 17 | 32 | 613 | 130429 | 131056 | 80001..=80014), _) => return RateLimited,
        (Some(1200 | 2 | 131000 | 131016 | 131057), _) => return Transient,
        _ => {}
    }
    if is_transient {
        return Transient;
    }
    match code {
        Some(0 | 3 | 10 | 131005 | 131030 | 200..=299) => Config,
        Some(_) if http_status.is_some_and(|s| s >= 500) => Transient,
        Some(_) => Permanent,
        None => match http_status {
            None | Some(408) => Transient,
            Some(s) if s >= 500 => Transient,
            Some(429) => RateLimited,
            Some(_) => Permanent,
        },
    }
}

/// A failed Graph call. `Display` is a sentence with the code/subcode; neither `Display` nor `Debug`
/// ever contains an access token or the app secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// `None` when no HTTP answer came (network error, timeout) or the call was refused locally.
    pub http_status: Option<u16>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    /// Meta's `error.message` (plus `error_data.details` when present), or our own description.
    pub message: String,
    pub fbtrace_id: Option<String>,
    /// Meta's `is_transient` flag.
    pub is_transient: bool,
    pub class: ErrorClass,
}

impl GraphError {
    /// An error decided here, without an HTTP answer.
    fn local(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            http_status: None,
            code: None,
            subcode: None,
            message: message.into(),
            fbtrace_id: None,
            is_transient: false,
            class,
        }
    }

    /// A 2xx answer we can't use.
    fn unexpected(status: u16, what: &str) -> Self {
        Self {
            http_status: Some(status),
            ..Self::local(
                ErrorClass::Permanent,
                format!("The Graph API's answer has no {what}."),
            )
        }
    }

    /// The error of a non-2xx answer (external-apis.md §2.4 shape; Instagram's flat
    /// `{error_type, code, error_message}` too, §5.3). A body that is not a Graph error (an HTML 502
    /// from a proxy) still gives an error with the status.
    fn from_answer(status: u16, body: &[u8]) -> Self {
        let v: Option<Value> = serde_json::from_slice(body).ok();
        let err = v
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.is_object());
        if let Some(e) = err {
            let code = int(e.get("code"));
            let subcode = int(e.get("error_subcode"));
            let is_transient = e.get("is_transient").and_then(Value::as_bool) == Some(true);
            let mut message = jstr(e.get("message")).unwrap_or_else(|| "(no message)".into());
            if let Some(d) = e.get("error_data").and_then(|d| jstr(d.get("details"))) {
                message = format!("{message} — {d}");
            }
            return Self {
                http_status: Some(status),
                code,
                subcode,
                message: truncate(&message),
                fbtrace_id: jstr(e.get("fbtrace_id")),
                is_transient,
                class: classify(code, subcode, Some(status), is_transient),
            };
        }
        if let Some(m) = v.as_ref().and_then(|v| jstr(v.get("error_message"))) {
            let code = v.as_ref().and_then(|v| int(v.get("code")));
            return Self {
                http_status: Some(status),
                code,
                message: truncate(&m),
                class: classify(code, None, Some(status), false),
                ..Self::local(ErrorClass::Permanent, "")
            };
        }
        Self {
            http_status: Some(status),
            class: classify(None, None, Some(status), false),
            ..Self::local(
                ErrorClass::Permanent,
                format!("The Graph API answered HTTP {status} without a Graph error body."),
            )
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        // The URL holds `access_token=`: drop it before anything formats the error.
        let e = e.without_url();
        let class = if e.is_builder() {
            ErrorClass::Config
        } else {
            ErrorClass::Transient
        };
        let what = if e.is_connect() {
            "Could not connect to the Graph API"
        } else if e.is_timeout() {
            "The Graph API timed out"
        } else {
            "The Graph API call failed"
        };
        Self::local(class, format!("{what}: {}", error_chain(&e)))
    }

    fn timeout(total: Duration) -> Self {
        Self::local(
            ErrorClass::Transient,
            format!(
                "The Graph API gave no complete answer within {} ms.",
                total.as_millis()
            ),
        )
    }

    /// Whether the same call may succeed later (see [`ErrorClass::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }

    /// Replaces every occurrence of a secret in the message.
    fn scrubbed(mut self, secrets: &[&str]) -> Self {
        for s in secrets.iter().filter(|s| s.len() >= 6) {
            if self.message.contains(s) {
                self.message = self.message.replace(s, "[redacted]");
            }
        }
        self
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut parts = Vec::new();
        if let Some(s) = self.http_status {
            parts.push(format!("HTTP {s}"));
        }
        match (self.code, self.subcode) {
            (Some(c), Some(s)) => parts.push(format!("code {c}/{s}")),
            (Some(c), None) => parts.push(format!("code {c}")),
            (None, Some(s)) => parts.push(format!("subcode {s}")),
            (None, None) => {}
        }
        parts.push(self.class.as_str().to_string());
        if let Some(t) = &self.fbtrace_id {
            parts.push(format!("fbtrace_id {t}"));
        }
        write!(f, " ({})", parts.join(", "))
    }
}

impl std::error::Error for GraphError {}

// ---------------------------------------------------------------------------------------------------
// Client

/// The Graph API client. Cheap to clone (one connection pool); keep one per process.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: GraphConfig,
    /// A client that could not be built is reported by every call (as `Config`), not by `new`.
    http: Result<reqwest::Client, String>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// How a call authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// No token (`oauth/access_token` carries `client_secret` in its own query).
    None,
    /// `access_token=` in the query (Messenger, Facebook Login; external-apis.md §2.3).
    Query(&'a str),
    /// `Authorization: Bearer` (WhatsApp, §4.2).
    Bearer(&'a str),
    /// The app token `{app-id}|{app-secret}` in the query (§5.2).
    App,
}

/// A failed attempt and the server's `Retry-After`, if any.
struct Failure {
    err: GraphError,
    retry_after: Option<Duration>,
}

impl From<GraphError> for Failure {
    fn from(err: GraphError) -> Self {
        Self {
            err,
            retry_after: None,
        }
    }
}

impl GraphClient {
    /// Builds the HTTP client (connect timeout, no redirects: a token is never sent to another host).
    /// Installs ring as the process-wide rustls provider if none is installed (reqwest is built with
    /// `rustls-no-provider`).
    pub fn new(cfg: GraphConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mtdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("Could not set up the HTTP client: {}", error_chain(&e)));
        Self {
            inner: Arc::new(Inner { cfg, http }),
        }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// Sends one text message (external-apis.md §2.3 Messenger, §3.3 Instagram path A, §4.2 WhatsApp).
    /// The text must already fit the platform's limit ([`crate::split_message`]).
    ///
    /// - Messenger/Instagram: `POST {graph_base}/{v}/{page_id}/messages?access_token=…` with
    ///   `{"recipient":{"id"},"messaging_type":"RESPONSE","message":{"text"}}` → `message_id`.
    /// - WhatsApp: Bearer, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+<digits>",
    ///   "type":"text","text":{"preview_url":false,"body"}}` → `messages[0].id`. A BSUID recipient
    ///   (`CC.xxx`, §4.1) is sent as `"recipient"` instead of `"to"` (§4.2).
    ///
    /// Transient and rate-limit errors are retried inside the call (so a 5xx after Meta accepted the
    /// message can, rarely, duplicate it); everything else returns at once.
    #[tracing::instrument(skip_all, fields(target = target_name(&target)))]
    pub async fn send_text(
        &self,
        target: SendTarget<'_>,
        access_token: &str,
        recipient: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        match target {
            SendTarget::Messenger { page_id } | SendTarget::Instagram { page_id } => {
                let body = json!({
                    "recipient": {"id": recipient},
                    "messaging_type": "RESPONSE",
                    "message": {"text": text},
                });
                self.page_send(page_id, access_token, &body).await
            }
            SendTarget::WhatsApp { phone_number_id } => {
                let (key, to) = whatsapp_recipient(recipient).ok_or_else(|| {
                    GraphError::local(
                        ErrorClass::Permanent,
                        "The WhatsApp recipient is neither a phone number nor a BSUID.",
                    )
                })?;
                let mut body = json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "type": "text",
                    "text": {"preview_url": false, "body": text},
                });
                if let Some(o) = body.as_object_mut() {
                    o.insert(key.to_string(), Value::String(to));
                }
                let url = self.url(&[phone_number_id, "messages"], &[])?;
                let v = self
                    .send(Method::POST, url, Auth::Bearer(access_token), Some(&body))
                    .await?;
                let id = v
                    .pointer("/messages/0/id")
                    .and_then(|i| jstr(Some(i)))
                    .ok_or_else(|| GraphError::unexpected(200, "messages[0].id"))?;
                Ok(SentMessage { message_id: id })
            }
        }
    }

    /// Like [`GraphClient::send_text`] for Messenger/Instagram, but with `messaging_type: MESSAGE_TAG`
    /// and `tag: HUMAN_AGENT`: a *human's* reply 24 h–7 d after the user's last message (external-apis.md
    /// §2.3, §3.3). Never for bot replies. WhatsApp has no such tag (only templates outside the window,
    /// §4.2): refused locally.
    #[tracing::instrument(skip_all, fields(target = target_name(&target)))]
    pub async fn send_human_agent(
        &self,
        target: SendTarget<'_>,
        access_token: &str,
        recipient: &str,
        text: &str,
    ) -> Result<SentMessage, GraphError> {
        match target {
            SendTarget::Messenger { page_id } | SendTarget::Instagram { page_id } => {
                let body = json!({
                    "recipient": {"id": recipient},
                    "messaging_type": "MESSAGE_TAG",
                    "tag": "HUMAN_AGENT",
                    "message": {"text": text},
                });
                self.page_send(page_id, access_token, &body).await
            }
            SendTarget::WhatsApp { .. } => Err(GraphError::local(
                ErrorClass::Permanent,
                "WhatsApp has no HUMAN_AGENT tag: outside the 24 h window only templates can be sent.",
            )),
        }
    }

    /// Marks an inbound WhatsApp message read (external-apis.md §4.2):
    /// `{"messaging_product":"whatsapp","status":"read","message_id":wamid}` → `{"success": true}`.
    #[tracing::instrument(skip_all)]
    pub async fn mark_read_whatsapp(
        &self,
        phone_number_id: &str,
        access_token: &str,
        wamid: &str,
    ) -> Result<(), GraphError> {
        let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        let url = self.url(&[phone_number_id, "messages"], &[])?;
        let v = self
            .send(Method::POST, url, Auth::Bearer(access_token), Some(&body))
            .await?;
        success(&v)
    }

    /// `GET /{v}/debug_token?input_token=…&access_token={app-id}|{app-secret}` (external-apis.md §5.2).
    /// An invalid token is `Ok` with `is_valid: false`.
    #[tracing::instrument(skip_all)]
    pub async fn debug_token(&self, input_token: &str) -> Result<TokenInfo, GraphError> {
        let url = self.url(&["debug_token"], &[("input_token", input_token)])?;
        let v = self
            .send_scrubbing(Method::GET, url, Auth::App, None, &[input_token])
            .await?;
        let d = v
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| GraphError::unexpected(200, "data"))?;
        Ok(TokenInfo {
            is_valid: d.get("is_valid").and_then(Value::as_bool) == Some(true),
            app_id: id_of(d.get("app_id")).unwrap_or_default(),
            token_type: jstr(d.get("type")).unwrap_or_default(),
            user_id: id_of(d.get("user_id")),
            scopes: strings(d.get("scopes")),
            expires_at: int(d.get("expires_at")).unwrap_or(0),
        })
    }

    /// `GET /{v}/{id}?fields=…` with the token in the query; the raw JSON answer.
    #[tracing::instrument(skip_all)]
    pub async fn get_object(
        &self,
        id: &str,
        fields: &str,
        access_token: &str,
    ) -> Result<Value, GraphError> {
        let query: &[(&str, &str)] = if fields.is_empty() {
            &[]
        } else {
            &[("fields", fields)]
        };
        let url = self.url(&[id], query)?;
        self.send(Method::GET, url, Auth::Query(access_token), None)
            .await
    }

    /// Subscribes our app to a Page's webhooks (external-apis.md §5.1 step 6):
    /// `POST /{v}/{page-id}/subscribed_apps?subscribed_fields=messages,messaging_postbacks,
    /// message_echoes,message_deliveries,message_reads&access_token={page token}`. Also what re-enables
    /// a Page Meta unsubscribed after an hour of failures (§1.4).
    #[tracing::instrument(skip_all)]
    pub async fn subscribe_page(&self, page_id: &str, page_token: &str) -> Result<(), GraphError> {
        let url = self.url(
            &[page_id, "subscribed_apps"],
            &[("subscribed_fields", PAGE_SUBSCRIBED_FIELDS)],
        )?;
        let v = self
            .send(Method::POST, url, Auth::Query(page_token), None)
            .await?;
        success(&v)
    }

    /// `DELETE /{v}/{page-id}/subscribed_apps` (external-apis.md §5.1 step 6), on disconnect.
    #[tracing::instrument(skip_all)]
    pub async fn unsubscribe_page(
        &self,
        page_id: &str,
        page_token: &str,
    ) -> Result<(), GraphError> {
        let url = self.url(&[page_id, "subscribed_apps"], &[])?;
        let v = self
            .send(Method::DELETE, url, Auth::Query(page_token), None)
            .await?;
        success(&v)
    }

    /// `POST /{v}/{waba-id}/subscribed_apps` with Bearer (external-apis.md §4.2, last bullet).
    #[tracing::instrument(skip_all)]
    pub async fn subscribe_waba(
        &self,
        waba_id: &str,
        access_token: &str,
    ) -> Result<(), GraphError> {
        let url = self.url(&[waba_id, "subscribed_apps"], &[])?;
        let v = self
            .send(Method::POST, url, Auth::Bearer(access_token), None)
            .await?;
        success(&v)
    }

    /// `DELETE /{v}/{waba-id}/subscribed_apps` with Bearer (external-apis.md §4.2, last bullet).
    #[tracing::instrument(skip_all)]
    pub async fn unsubscribe_waba(
        &self,
        waba_id: &str,
        access_token: &str,
    ) -> Result<(), GraphError> {
        let url = self.url(&[waba_id, "subscribed_apps"], &[])?;
        let v = self
            .send(Method::DELETE, url, Auth::Bearer(access_token), None)
            .await?;
        success(&v)
    }

    /// Facebook Login code → user token (external-apis.md §5.1 step 3):
    /// `GET /{v}/oauth/access_token?client_id=…&redirect_uri=…&client_secret=…&code=…`. `redirect_uri`
    /// must equal the dialog's; an empty one is left out (WhatsApp Embedded Signup, §5.4).
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<AccessToken, GraphError> {
        let cfg = self.config();
        let mut query = vec![("client_id", cfg.app_id.as_str())];
        if !redirect_uri.is_empty() {
            query.push(("redirect_uri", redirect_uri));
        }
        query.push(("client_secret", cfg.app_secret.as_str()));
        query.push(("code", code));
        let url = self.url(&["oauth", "access_token"], &query)?;
        let v = self
            .send_scrubbing(Method::GET, url, Auth::None, None, &[code])
            .await?;
        access_token(&v)
    }

    /// Short-lived → long-lived (~60 days) user token (external-apis.md §5.1 step 4):
    /// `GET /{v}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret&fb_exchange_token`.
    #[tracing::instrument(skip_all)]
    pub async fn long_lived_user_token(
        &self,
        short_token: &str,
    ) -> Result<AccessToken, GraphError> {
        let cfg = self.config();
        let url = self.url(
            &["oauth", "access_token"],
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", cfg.app_id.as_str()),
                ("client_secret", cfg.app_secret.as_str()),
                ("fb_exchange_token", short_token),
            ],
        )?;
        let v = self
            .send_scrubbing(Method::GET, url, Auth::None, None, &[short_token])
            .await?;
        access_token(&v)
    }

    /// `GET /{v}/me?fields=id,name`.
    #[tracing::instrument(skip_all)]
    pub async fn me(&self, user_token: &str) -> Result<MetaUser, GraphError> {
        let url = self.url(&["me"], &[("fields", "id,name")])?;
        let v = self
            .send(Method::GET, url, Auth::Query(user_token), None)
            .await?;
        Ok(MetaUser {
            id: id_of(v.get("id")).ok_or_else(|| GraphError::unexpected(200, "id"))?,
            name: jstr(v.get("name")),
        })
    }

    /// The Pages the user manages, with Page tokens (external-apis.md §5.1 step 5):
    /// `GET /{v}/me/accounts?fields=id,name,access_token,tasks,instagram_business_account`. Follows
    /// `paging.next` while there is one, at most 10 pages. A `next` on another host than `graph_base` is
    /// not called (it would get our token): its `paging.cursors.after` is used on our base instead.
    #[tracing::instrument(skip_all)]
    pub async fn list_pages(&self, user_token: &str) -> Result<Vec<PageAccount>, GraphError> {
        const FIELDS: &str = "id,name,access_token,tasks,instagram_business_account";
        let first = self.url(&["me", "accounts"], &[("fields", FIELDS)])?;
        let mut url = first.clone();
        let mut pages = Vec::new();
        for _ in 0..MAX_PAGES {
            let v = self
                .send(Method::GET, url.clone(), Auth::Query(user_token), None)
                .await?;
            let data = v.get("data").and_then(Value::as_array);
            for p in data.map_or(&[][..], Vec::as_slice) {
                let Some(id) = id_of(p.get("id")) else {
                    continue;
                };
                pages.push(PageAccount {
                    id,
                    name: jstr(p.get("name")).unwrap_or_default(),
                    access_token: jstr(p.get("access_token")).unwrap_or_default(),
                    tasks: strings(p.get("tasks")),
                    instagram_business_account: p
                        .get("instagram_business_account")
                        .and_then(|a| id_of(a.get("id"))),
                });
            }
            if data.is_none_or(Vec::is_empty) {
                break;
            }
            // No `next` = the last page (`cursors.after` is present even then).
            let paging = v.get("paging");
            let Some(next) = paging.and_then(|p| jstr(p.get("next"))) else {
                break;
            };
            let same_host = Url::parse(&next)
                .ok()
                .filter(|n| n.origin() == first.origin())
                .map(without_auth_params);
            let after = paging
                .and_then(|p| p.get("cursors"))
                .and_then(|c| jstr(c.get("after")));
            url = match (same_host, after) {
                (Some(n), _) => n,
                (None, Some(after)) => {
                    let mut u = first.clone();
                    u.query_pairs_mut().append_pair("after", &after);
                    u
                }
                (None, None) => break,
            };
        }
        Ok(pages)
    }

    /// The Facebook Login dialog URL (external-apis.md §5.1 step 1):
    /// `{dialog_base}/{v}/dialog/oauth?client_id=…&redirect_uri=…&state=…&scope=a,b&response_type=code`,
    /// every value URL-encoded. No `scope` when `scopes` is empty.
    pub fn oauth_dialog_url(
        &self,
        dialog_base: &str,
        redirect_uri: &str,
        state: &str,
        scopes: &[&str],
    ) -> String {
        let cfg = self.config();
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &cfg.app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(","));
        }
        q.append_pair("response_type", "code");
        format!(
            "{}/{}/dialog/oauth?{}",
            dialog_base.trim().trim_end_matches('/'),
            version(cfg),
            q.finish()
        )
    }

    /// Revokes our app's permissions for a user, on account deletion (external-apis.md §5.1 step 7):
    /// `DELETE /{v}/{user-id}/permissions` → `{"success": true}`.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_permissions(
        &self,
        user_id: &str,
        user_token: &str,
    ) -> Result<(), GraphError> {
        let url = self.url(&[user_id, "permissions"], &[])?;
        let v = self
            .send(Method::DELETE, url, Auth::Query(user_token), None)
            .await?;
        success(&v)
    }

    // ---- plumbing ------------------------------------------------------------------------------

    /// Messenger / Instagram path A send (external-apis.md §2.3).
    async fn page_send(
        &self,
        page_id: &str,
        access_token: &str,
        body: &Value,
    ) -> Result<SentMessage, GraphError> {
        let url = self.url(&[page_id, "messages"], &[])?;
        let v = self
            .send(Method::POST, url, Auth::Query(access_token), Some(body))
            .await?;
        let id =
            jstr(v.get("message_id")).ok_or_else(|| GraphError::unexpected(200, "message_id"))?;
        Ok(SentMessage { message_id: id })
    }

    /// `{graph_base}/{version}/{segments…}?{query}`; each segment is percent-encoded, so an id can't
    /// change the path. Empty segments are refused.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, GraphError> {
        let cfg = self.config();
        if segments.iter().any(|s| s.trim().is_empty()) {
            return Err(GraphError::local(
                ErrorClass::Permanent,
                "An id in the Graph API path is empty.",
            ));
        }
        let bad_base = || {
            GraphError::local(
                ErrorClass::Config,
                format!(
                    "The Graph API base URL {:?} is not a usable http(s) URL.",
                    cfg.graph_base
                ),
            )
        };
        let mut url = Url::parse(cfg.graph_base.trim()).map_err(|_| bad_base())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_base());
        }
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url.path_segments_mut().map_err(|_| bad_base())?;
            path.pop_if_empty().push(version(cfg));
            for s in segments {
                path.push(s.trim());
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        self.send_scrubbing(method, url, auth, body, &[]).await
    }

    /// Runs one call with retries (see [`GraphClient::retrying`]) and scrubs the call's secrets, plus
    /// `extra` (codes, input tokens), from any error.
    async fn send_scrubbing(
        &self,
        method: Method,
        url: Url,
        auth: Auth<'_>,
        body: Option<&Value>,
        extra: &[&str],
    ) -> Result<Value, GraphError> {
        let cfg = self.config();
        let mut url = url;
        let app_token = format!("{}|{}", cfg.app_id, cfg.app_secret);
        let token = match auth {
            Auth::None => None,
            Auth::Query(t) | Auth::Bearer(t) => Some(t),
            Auth::App => Some(app_token.as_str()),
        };
        if let (Auth::Query(_) | Auth::App, Some(t)) = (auth, token) {
            url.query_pairs_mut().append_pair("access_token", t);
        }
        let proof = match auth {
            Auth::Query(t) | Auth::Bearer(t) if cfg.use_appsecret_proof => {
                Some(appsecret_proof(cfg.app_secret.as_bytes(), t))
            }
            _ => None,
        };
        if let Some(p) = &proof {
            url.query_pairs_mut().append_pair("appsecret_proof", p);
        }
        let bearer = match auth {
            Auth::Bearer(t) => Some(t),
            _ => None,
        };
        let mut secrets: Vec<&str> = vec![cfg.app_secret.as_str(), app_token.as_str()];
        secrets.extend(token);
        secrets.extend(proof.as_deref());
        secrets.extend(extra.iter().copied());
        // Query values appear percent-encoded in some messages.
        let encoded: Vec<String> = secrets
            .iter()
            .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect())
            .collect();
        secrets.extend(encoded.iter().map(String::as_str));
        self.retrying(&method, &url, bearer, body)
            .await
            .map_err(|e| e.scrubbed(&secrets))
    }

    /// Attempts the call until it succeeds, fails with a class that is not retryable, `max_attempts`
    /// is reached, or the next wait would pass the total timeout. Waits: `Retry-After` when sent
    /// (capped at the total timeout), else exponential backoff from `base_backoff` with jitter.
    async fn retrying(
        &self,
        method: &Method,
        url: &Url,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let cfg = self.config();
        let http = self
            .inner
            .http
            .as_ref()
            .map_err(|m| GraphError::local(ErrorClass::Config, m.clone()))?;
        let deadline = Instant::now() + cfg.total_timeout;
        let max = cfg.max_attempts.max(1);
        let mut n = 0;
        loop {
            n += 1;
            let failure = match timeout_at(deadline, attempt(http, method, url, bearer, body)).await
            {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(f)) => f,
                Err(_) => GraphError::timeout(cfg.total_timeout).into(),
            };
            if !failure.err.is_retryable() || n >= max {
                return Err(failure.err);
            }
            let delay = backoff(cfg, n, failure.retry_after);
            if Instant::now() + delay >= deadline {
                return Err(failure.err);
            }
            tracing::warn!(
                class = failure.err.class.as_str(),
                status = ?failure.err.http_status,
                code = ?failure.err.code,
                attempt = n,
                delay_ms = delay.as_millis() as u64,
                "Graph API call failed, retrying"
            );
            sleep(delay).await;
        }
    }
}

/// One HTTP exchange. A 2xx body with an `error` object is an error too.
async fn attempt(
    http: &reqwest::Client,
    method: &Method,
    url: &Url,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let mut rb = http
        .request(method.clone(), url.clone())
        .header(ACCEPT, "application/json");
    if let Some(t) = bearer {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let mut resp = rb.send().await.map_err(GraphError::from_reqwest)?;
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(GraphError::from_reqwest)? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(GraphError {
                http_status: Some(status),
                ..GraphError::local(
                    ErrorClass::Permanent,
                    "The Graph API's answer is larger than 1 MiB.",
                )
            }
            .into());
        }
        bytes.extend_from_slice(&chunk);
    }
    if !(200..300).contains(&status) {
        return Err(Failure {
            err: GraphError::from_answer(status, &bytes),
            retry_after,
        });
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| GraphError {
        http_status: Some(status),
        ..GraphError::local(
            ErrorClass::Permanent,
            format!("The Graph API answered HTTP {status} with a body that is not JSON."),
        )
    })?;
    if v.get("error").is_some_and(Value::is_object) {
        return Err(Failure {
            err: GraphError::from_answer(status, &bytes),
            retry_after,
        });
    }
    Ok(v)
}

fn backoff(cfg: &GraphConfig, failed: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(cfg.total_timeout);
    }
    let exp = 2u32.saturating_pow(failed.saturating_sub(1).min(16));
    let full = cfg.base_backoff.saturating_mul(exp).min(cfg.total_timeout);
    let half = full / 2;
    let spread = u64::try_from(full.saturating_sub(half).as_millis()).unwrap_or(u64::MAX);
    let jitter = if spread == 0 {
        0
    } else {
        rand::rng().random_range(0..=spread)
    };
    half + Duration::from_millis(jitter)
}

/// `Retry-After` in seconds; the HTTP-date form is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// A `paging.next` URL without its `access_token`/`appsecret_proof`: we add ours.
fn without_auth_params(mut url: Url) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    url
}

/// `{"success": true}`, or the string `"true"` of Meta's sample (external-apis.md §5.1 step 6).
fn success(v: &Value) -> Result<(), GraphError> {
    match v.get("success") {
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::String(s)) if s == "true" => Ok(()),
        _ => Err(GraphError::unexpected(200, "\"success\": true")),
    }
}

fn access_token(v: &Value) -> Result<AccessToken, GraphError> {
    Ok(AccessToken {
        access_token: jstr(v.get("access_token"))
            .ok_or_else(|| GraphError::unexpected(200, "access_token"))?,
        expires_in: int(v.get("expires_in")),
    })
}

/// `("to", "+<digits>")` for a phone number (with or without `+`), `("recipient", bsuid)` for a BSUID
/// `CC.<alnum>` (external-apis.md §4.1, §4.2).
fn whatsapp_recipient(r: &str) -> Option<(&'static str, String)> {
    let t = r.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(("to", format!("+{digits}")));
    }
    let (cc, rest) = t.split_once('.')?;
    let bsuid = cc.len() == 2
        && cc.bytes().all(|b| b.is_ascii_uppercase())
        && !rest.is_empty()
        && rest.len() <= 64
        && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    bsuid.then(|| ("recipient", t.to_string()))
}

fn target_name(t: &SendTarget<'_>) -> &'static str {
    match t {
        SendTarget::Messenger { .. } => "messenger",
        SendTarget::Instagram { .. } => "instagram",
        SendTarget::WhatsApp { .. } => "whatsapp",
    }
}

fn version(cfg: &GraphConfig) -> &str {
    let v = cfg.version.trim().trim_matches('/');
    if v.is_empty() { DEFAULT_VERSION } else { v }
}

fn jstr(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A string id, or an integer one.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        other => jstr(Some(other)),
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| jstr(Some(s))).collect())
        .unwrap_or_default()
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_MESSAGE).collect();
        t.push('…');
        t
    }
}

/// The error and its causes, e.g. `error sending request: connection refused`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_reference_tables() {
        use ErrorClass::*;
        // (code, subcode, http status, is_transient) → class; §2.4 then §4.3.
        type Case = (Option<i64>, Option<i64>, Option<u16>, bool, ErrorClass);
        let cases: &[Case] = &[
            // §2.4
            (Some(190), None, Some(400), false, TokenInvalid),
            (Some(190), Some(458), Some(400), false, TokenInvalid),
            (Some(190), Some(459), Some(401), false, TokenInvalid),
            (Some(190), Some(460), Some(400), false, TokenInvalid),
            (Some(190), Some(463), Some(400), false, TokenInvalid),
            (Some(190), Some(464), Some(400), false, TokenInvalid),
            (Some(190), Some(467), Some(400), false, TokenInvalid),
            (Some(102), None, Some(400), false, TokenInvalid),
            (Some(10), Some(2018065), Some(400), false, OutsideWindow),
            (Some(10), Some(2018108), Some(400), false, UserUnavailable),
            (Some(200), Some(1545041), Some(400), false, UserUnavailable),
            (Some(10), None, Some(400), false, Config),
            (Some(10), Some(2018028), Some(400), false, Config),
            (Some(200), None, Some(403), false, Config),
            (Some(230), None, Some(400), false, Config),
            (Some(299), None, Some(400), false, Config),
            (Some(551), Some(1545041), Some(400), false, UserUnavailable),
            (Some(551), None, Some(400), false, UserUnavailable),
            (Some(100), Some(2018001), Some(400), false, Permanent),
            (Some(100), Some(2018109), Some(400), false, Permanent),
            (Some(4), Some(2018022), Some(400), false, RateLimited),
            (Some(4), None, Some(400), false, RateLimited),
            (Some(17), None, Some(400), false, RateLimited),
            (Some(32), None, Some(400), false, RateLimited),
            (Some(613), None, Some(400), false, RateLimited),
            (Some(1200), None, Some(400), false, Transient),
            (Some(2), None, Some(400), false, Transient),
            (Some(9999), None, Some(400), true, Transient),
            (Some(368), None, Some(400), false, Permanent),
            // §4.3
            (Some(131047), None, Some(400), false, OutsideWindow),
            (Some(131026), None, Some(400), false, UserUnavailable),
            (Some(131051), None, Some(400), false, Permanent),
            (Some(131009), None, Some(400), false, Permanent),
            (Some(131008), None, Some(400), false, Permanent),
            (Some(100), None, Some(400), false, Permanent),
            (Some(131030), None, Some(400), false, Config),
            (Some(132000), None, Some(400), false, Permanent),
            (Some(132001), None, Some(400), false, Permanent),
            (Some(132015), None, Some(400), false, Permanent),
            (Some(130429), None, Some(400), false, RateLimited),
            (Some(131056), None, Some(400), false, RateLimited),
            (Some(80007), None, Some(400), false, RateLimited),
            (Some(131000), None, Some(500), false, Transient),
            (Some(131016), None, Some(503), false, Transient),
            (Some(131057), None, Some(400), false, Transient),
            (Some(131048), None, Some(400), false, Permanent),
            (Some(190), None, Some(401), false, TokenInvalid),
            (Some(0), None, Some(401), false, Config),
            (Some(3), None, Some(400), false, Config),
            (Some(131005), None, Some(403), false, Config),
            (Some(131031), None, Some(400), false, Permanent),
            (Some(131042), None, Some(400), false, Permanent),
            (Some(133010), None, Some(400), false, Permanent),
            // Codes win over is_transient for tokens; HTTP status only without a listed code.
            (Some(190), Some(463), Some(400), true, TokenInvalid),
            (Some(1), None, Some(500), false, Transient),
            (None, None, Some(500), false, Transient),
            (None, None, Some(502), false, Transient),
            (None, None, Some(408), false, Transient),
            (None, None, Some(429), false, RateLimited),
            (None, None, Some(404), false, Permanent),
            (None, None, Some(401), false, Permanent),
            (None, None, None, false, Transient),
        ];
        for &(code, sub, status, transient, want) in cases {
            assert_eq!(
                classify(code, sub, status, transient),
                want,
                "code {code:?} sub {sub:?} status {status:?} transient {transient}"
            );
        }
    }

    #[test]
    fn retryable_classes_are_transient_and_rate_limited_only() {
        use ErrorClass::*;
        for c in [
            TokenInvalid,
            OutsideWindow,
            RateLimited,
            Transient,
            UserUnavailable,
            Config,
            Permanent,
        ] {
            assert_eq!(
                c.is_retryable(),
                matches!(c, Transient | RateLimited),
                "{c}"
            );
            assert_eq!(
                serde_json::to_value(c).expect("serialise"),
                json!(c.as_str())
            );
        }
    }

    #[test]
    fn graph_error_bodies_are_read_into_fields() {
        let body = br#"{ "error": { "message": "(#551) This person isn't available right now.", "type": "OAuthException",
             "code": 551, "error_subcode": 1545041, "fbtrace_id": "AbCdEf123" } }"#;
        let e = GraphError::from_answer(400, body);
        assert_eq!(e.http_status, Some(400));
        assert_eq!((e.code, e.subcode), (Some(551), Some(1545041)));
        assert_eq!(e.fbtrace_id.as_deref(), Some("AbCdEf123"));
        assert_eq!(e.class, ErrorClass::UserUnavailable);
        assert_eq!(
            e.to_string(),
            "(#551) This person isn't available right now. (HTTP 400, code 551/1545041, \
             user_unavailable, fbtrace_id AbCdEf123)"
        );

        let wa = br#"{ "error": { "message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
  "error_data": { "messaging_product": "whatsapp",
                  "details": "More than 24 hours have passed since the recipient last replied to the sender number." },
  "fbtrace_id": "AbC123" } }"#;
        let e = GraphError::from_answer(400, wa);
        assert_eq!(e.class, ErrorClass::OutsideWindow);
        assert!(e.message.contains("More than 24 hours"), "{}", e.message);

        let html = GraphError::from_answer(502, b"<html><body>Bad Gateway</body></html>");
        assert_eq!(
            (html.http_status, html.code, html.class),
            (Some(502), None, ErrorClass::Transient)
        );
        assert!(html.to_string().contains("HTTP 502"));

        let flat = GraphError::from_answer(
            400,
            br#"{"error_type":"OAuthException","code":400,"error_message":"Matching code was not found or was already used"}"#,
        );
        assert_eq!(flat.class, ErrorClass::Permanent);
        assert!(flat.message.starts_with("Matching code"));

        let transient = GraphError::from_answer(
            400,
            br#"{"error":{"message":"x","code":9,"is_transient":true}}"#,
        );
        assert!(transient.is_transient && transient.is_retryable());
    }

    #[test]
    fn whatsapp_recipients_are_phone_numbers_or_bsuids() {
        let cases = [
            ("15550002222", Some(("to", "+15550002222"))),
            ("+15550002222", Some(("to", "+15550002222"))),
            (" 15550002222 ", Some(("to", "+15550002222"))),
            (
                "US.13491208655302741918",
                Some(("recipient", "US.13491208655302741918")),
            ),
            ("BR.abc123XYZ", Some(("recipient", "BR.abc123XYZ"))),
            ("", None),
            ("+", None),
            ("us.123", None),
            ("USA.123", None),
            ("US.", None),
            ("US.12-3", None),
            ("+1 555 000", None),
            ("1555000222233334444555", None),
        ];
        for (input, want) in cases {
            let got = whatsapp_recipient(input);
            assert_eq!(
                got.as_ref().map(|(k, v)| (*k, v.as_str())),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_honours_retry_after_capped_at_the_total_timeout() {
        let cfg = GraphConfig {
            base_backoff: Duration::from_millis(100),
            total_timeout: Duration::from_secs(2),
            ..GraphConfig::new("http://x", "1", "s")
        };
        for n in 1..=6u32 {
            let full = Duration::from_millis(100 * 2u64.pow(n - 1)).min(cfg.total_timeout);
            for _ in 0..20 {
                let d = backoff(&cfg, n, None);
                assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
            }
        }
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff(&cfg, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn config_defaults_and_redacted_debug() {
        let cfg = GraphConfig::new("https://graph.facebook.com/", "123", "super-secret-value");
        assert_eq!(cfg.instagram_base, DEFAULT_INSTAGRAM_BASE);
        assert_eq!(cfg.version, "v25.0");
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.total_timeout, Duration::from_secs(20));
        assert_eq!(cfg.max_attempts, 3);
        assert_eq!(cfg.base_backoff, Duration::from_millis(200));
        assert!(!cfg.use_appsecret_proof);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("super-secret-value"), "{dbg}");
        let client = GraphClient::new(cfg);
        assert!(!format!("{client:?}").contains("super-secret-value"));

        let fake = GraphConfig::new("http://127.0.0.1:9", "1", "s");
        assert_eq!(fake.instagram_base, "http://127.0.0.1:9");
    }

    #[test]
    fn urls_encode_ids_and_refuse_empty_ones() {
        let client = GraphClient::new(GraphConfig::new("http://127.0.0.1:9/prefix/", "1", "s"));
        let url = client
            .url(&["a/b?c", "messages"], &[("fields", "id,name")])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/v25.0/a%2Fb%3Fc/messages?fields=id%2Cname"
        );
        assert!(client.url(&["", "messages"], &[]).is_err());
        let bad = GraphClient::new(GraphConfig::new("not a url", "1", "s"));
        assert_eq!(
            bad.url(&["x"], &[]).map_err(|e| e.class),
            Err(ErrorClass::Config)
        );
    }

    #[test]
    fn oauth_dialog_url_is_encoded() {
        let client = GraphClient::new(GraphConfig::new(DEFAULT_GRAPH_BASE, "1234", "s"));
        assert_eq!(
            client.oauth_dialog_url(
                "https://www.facebook.com/",
                "https://desk.example.com/oauth/meta/callback?x=1&y=2",
                "csrf token/+=",
                &["pages_show_list", "pages_messaging"],
            ),
            "https://www.facebook.com/v25.0/dialog/oauth?client_id=1234\
             &redirect_uri=https%3A%2F%2Fdesk.example.com%2Foauth%2Fmeta%2Fcallback%3Fx%3D1%26y%3D2\
             &state=csrf+token%2F%2B%3D&scope=pages_show_list%2Cpages_messaging&response_type=code"
        );
        assert_eq!(
            client.oauth_dialog_url("https://www.facebook.com", "https://r", "s", &[]),
            "https://www.facebook.com/v25.0/dialog/oauth?client_id=1234&redirect_uri=https%3A%2F%2Fr\
             &state=s&response_type=code"
        );
    }

    #[test]
    fn secret_and_tokens_are_scrubbed_from_messages() {
        let e = GraphError::local(
            ErrorClass::Permanent,
            "bad token EAAB-page-token and secret app_secret_123, encoded EAAB%7Cx",
        )
        .scrubbed(&["EAAB-page-token", "app_secret_123", "EAAB%7Cx"]);
        assert_eq!(
            e.message,
            "bad token [redacted] and secret [redacted], encoded [redacted]"
        );
    }
}
