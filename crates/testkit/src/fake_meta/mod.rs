//! A loopback fake of Meta's Graph API and a signed webhook sender (external-apis.md §1–5).
//!
//! [`FakeMeta`] is one axum server playing `graph.facebook.com`, `graph.instagram.com` and
//! `api.instagram.com` at once (external-apis.md, "Meta hosts"): point every Meta base URL setting at
//! [`FakeMeta::base_url`]. Graph paths need a `/vNN.N/` prefix (any version); the Instagram Login token
//! endpoints of §5.3 do not have one. It follows the fake specs §2.5 (Messenger), §3.4 (Instagram),
//! §4.4 (WhatsApp) and §5.5 (OAuth): tokens, per-user 24 h windows, text limits and error JSON (§2.4,
//! §4.3). It records every request and every successful send, and a FIFO script ([`GraphBehavior`])
//! makes the next send fail, stall or answer HTML.
//!
//! [`WebhookSender`] plays Meta's side of the webhook (§1.1–1.5): it signs the exact bytes it sends
//! with `X-Hub-Signature-256`, escapes non-ASCII like Meta, and remembers non-200 answers as "would
//! retry". The `messenger_*`, `instagram_*` and `whatsapp_*` builders return bodies in Meta's shapes
//! (§2.2, §3.2, §4.1).
//!
//! ```ignore
//! let meta = FakeMeta::start("1234", "test_app_secret").await;
//! meta.add_page("110000000000001", "Acme", "EAAB-page", Some("17841400000000000"));
//! let hook = WebhookSender::new(&format!("{app}/webhooks/meta"), "test_app_secret").tracking(&meta);
//! hook.post(&messenger_text("110000000000001", "7000000000000001", "m_1", "Hi", now_ms())).await;
//! meta.push(GraphBehavior::Error { http_status: 400, code: 613, subcode: None, is_transient: false,
//!                                  retry_after: None });
//! let sent = meta.wait_for_sends(1, Duration::from_secs(5)).await;
//! ```

mod payloads;
mod sender;
mod server;

pub use payloads::*;
pub use sender::{
    SignatureMode, WebhookSender, appsecret_proof, hmac_sha1_hex, meta_json,
    meta_json_escaped_slashes, meta_signature,
};

use axum::Router;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The messaging window for free-form replies: 24 h after the user's last message (§2.3, §3.3, §4.2).
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// How long `tag: "HUMAN_AGENT"` may answer after the user's last message: 7 days (§2.3, §3.3).
pub const HUMAN_AGENT_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `expires_in` of the user tokens the fake issues (§5.1 steps 3–4, §5.3 step 3).
pub const LONG_LIVED_EXPIRES_IN: i64 = 5_183_944;
/// Messenger's text limit in characters (§2.3, §2.5).
pub const MESSENGER_TEXT_MAX_CHARS: usize = 2000;
/// Instagram's text limit in UTF-8 bytes (§3.3, §3.4).
pub const INSTAGRAM_TEXT_MAX_BYTES: usize = 1000;
/// WhatsApp's `text.body` limit in characters (§4.2, §4.4).
pub const WHATSAPP_TEXT_MAX_CHARS: usize = 4096;

/// Milliseconds since the Unix epoch, now. Webhook timestamps count as the user's last message time
/// (see [`FakeMeta::note_inbound_from`]): build inbound bodies with this to keep the window open.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the fake does with the next message send (`POST …/messages` carrying a message, a WhatsApp
/// template or media — not sender actions nor WhatsApp mark-read), FIFO. The token is checked first,
/// so a script entry is only used by an authenticated send. With an empty script sends are answered
/// by the rules.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphBehavior {
    /// Answer by the rules (a no-op slot in the script).
    Ok,
    /// A Graph error (§2.4 shape; on WhatsApp numbers the §4.3 shape with `error_data`), with
    /// `error_subcode` if given, `is_transient: true` if set, and `Retry-After: <secs>` if given.
    Error {
        http_status: u16,
        code: i64,
        subcode: Option<i64>,
        is_transient: bool,
        retry_after: Option<u32>,
    },
    /// This HTTP status with an HTML body, as Meta's front ends answer on outages.
    Status(u16),
    /// Wait this long before answering, then answer by the rules.
    Stall(Duration),
}

/// How a WhatsApp free-form send outside the 24 h window fails (§4.3: "synchronously, as a `failed`
/// status, or both"; §4.4: configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowMode {
    /// `400` with code 131047 in the §4.3 shape (the default).
    #[default]
    SyncError,
    /// `200` with a `wamid`, and a `failed` status webhook (errors `[131047]`) queued for
    /// [`FakeMeta::pending_status_webhooks`]. Such a send is not in [`FakeMeta::sends`].
    AcceptThenFailStatus,
}

/// A message the fake accepted (HTTP 200 with an id).
#[derive(Debug, Clone, PartialEq)]
pub struct SentRecord {
    /// `"messenger"`, `"instagram"` or `"whatsapp"`.
    pub platform: String,
    /// The request path, version included: `/v25.0/110000000000001/messages`.
    pub path: String,
    /// The Page id (Messenger), the IG professional account id (Instagram, both paths) or the
    /// `phone_number_id` (WhatsApp).
    pub account_id: String,
    /// PSID / IGSID / WhatsApp `to` as digits (no `+`) or the BSUID of a `recipient` send.
    pub recipient: String,
    /// `message.text` / `text.body`; for attachments, media and templates the caption or `""`
    /// (see `body`).
    pub text: String,
    pub messaging_type: Option<String>,
    pub tag: Option<String>,
    /// The access token used (query or Bearer).
    pub token: String,
    pub appsecret_proof: Option<String>,
    /// The id returned: `m_<n>`, `aWdf<n>` or `wamid.OUT<n>`.
    pub message_id: String,
    pub at: Instant,
    /// The whole JSON request body.
    pub body: Value,
}

/// A sender action (`typing_on`, `mark_seen`, …) the fake accepted (§2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct SenderActionRecord {
    pub platform: String,
    pub account_id: String,
    pub recipient: String,
    pub action: String,
}

/// A request the fake received, rejected ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, version included.
    pub path: String,
    /// Decoded query parameters (the last one wins when repeated).
    pub query: BTreeMap<String, String>,
    /// The query string as received.
    pub raw_query: String,
    /// Lowercased names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, `Value::Null` when there was none or it was not JSON (see `raw_body`).
    pub body: Value,
    /// The body as text (form bodies of §5.3 are here).
    pub raw_body: String,
    /// The HTTP status returned; `0` while the answer is still pending (a stall the client gave up on).
    pub status: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub name: String,
    pub token: String,
    pub ig_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    pub pages: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct WaNumber {
    pub waba_id: String,
    pub display_phone: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub(crate) struct IgProfile {
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct IgLogin {
    pub username: String,
    /// The app-scoped `id` of `GET /me`, which differs from `user_id` (§3.1).
    pub app_scoped_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Media {
    pub mime_type: String,
    pub bytes: Vec<u8>,
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A Page token (never expires, §5.1 step 5).
    Page(String),
    /// A Facebook user token.
    User(String),
    /// A WhatsApp system-user token; the numbers it may use are those registered with it.
    SystemUser(String),
    /// An Instagram User token of path B (§3, §5.3).
    IgLogin(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub issued_at_ms: i64,
    /// `None` = never expires.
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Code {
    /// The Facebook user id (§5.1) or IG user id (§5.3) it belongs to.
    pub owner: String,
    pub redirect_uri: String,
    pub used: bool,
}

pub(crate) struct State {
    pub pages: BTreeMap<String, Page>,
    pub users: BTreeMap<String, User>,
    pub tokens: HashMap<String, Token>,
    pub revoked: HashSet<String>,
    pub codes: HashMap<String, Code>,
    pub ig_codes: HashMap<String, Code>,
    pub numbers: BTreeMap<String, WaNumber>,
    pub ig_profiles: BTreeMap<String, IgProfile>,
    pub ig_logins: BTreeMap<String, IgLogin>,
    pub media: HashMap<String, Media>,
    pub last_inbound: HashMap<String, i64>,
    /// IGSID → the IG professional account it talks to.
    pub ig_users: HashMap<String, String>,
    pub script: VecDeque<GraphBehavior>,
    pub window_mode: WindowMode,
    pub require_proof: bool,
    pub ig_code_flat: bool,
    pub echo_webhooks: bool,
    pub auto_statuses: Vec<String>,
    pub system_user_type: String,
    pub sends: Vec<SentRecord>,
    pub sender_actions: Vec<SenderActionRecord>,
    pub requests: Vec<RecordedRequest>,
    /// Subscribed object id → its `subscribed_fields`, in subscription order.
    pub subscriptions: Vec<(String, Vec<String>)>,
    pub mark_reads: Vec<String>,
    pub pending: Vec<Value>,
    pub outbound_ids: HashSet<String>,
    pub next_id: u64,
}

impl State {
    pub fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_token(&mut self, token: &str, kind: TokenKind, expires_at_ms: Option<i64>) {
        self.revoked.remove(token);
        self.tokens.insert(
            token.to_string(),
            Token {
                kind,
                issued_at_ms: now_ms(),
                expires_at_ms,
            },
        );
    }
}

pub(crate) struct Shared {
    pub app_id: String,
    pub app_secret: String,
    pub base: Mutex<String>,
    pub state: Mutex<State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn app_token(&self) -> String {
        format!("{}|{}", self.app_id, self.app_secret)
    }

    /// Walks a webhook body and sets the last-inbound time of every user message in it (§1.3, §2.2,
    /// §3.2, §4.1): Messenger/Instagram `message` (not echoes), `postback`, `referral`; WhatsApp
    /// `messages[]` (by `from` and `from_user_id`). Instagram senders are also registered as IGSIDs of
    /// `entry[].id`. Times come from the events (ms; WhatsApp seconds × 1000).
    pub fn note_inbound(&self, body: &Value) {
        let mut st = self.lock();
        let object = body.get("object").and_then(Value::as_str).unwrap_or("");
        let entries = body
            .get("entry")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for entry in &entries {
            let account = entry.get("id").and_then(Value::as_str).unwrap_or("");
            match object {
                "page" | "instagram" => {
                    let items = entry.get("messaging").and_then(Value::as_array);
                    for item in items.into_iter().flatten() {
                        let from_user = item.get("postback").is_some()
                            || item.get("referral").is_some()
                            || item.get("message").is_some_and(|m| {
                                m.get("is_echo").and_then(Value::as_bool) != Some(true)
                            });
                        let Some(sender) = item.pointer("/sender/id").and_then(Value::as_str)
                        else {
                            continue;
                        };
                        if !from_user || sender == account {
                            continue;
                        }
                        let ts = item
                            .get("timestamp")
                            .and_then(Value::as_i64)
                            .unwrap_or_else(now_ms);
                        let last = st.last_inbound.entry(sender.to_string()).or_insert(ts);
                        *last = (*last).max(ts);
                        if object == "instagram" {
                            st.ig_users.insert(sender.to_string(), account.to_string());
                        }
                    }
                }
                "whatsapp_business_account" => {
                    let changes = entry.get("changes").and_then(Value::as_array);
                    for change in changes.into_iter().flatten() {
                        let msgs = change.pointer("/value/messages").and_then(Value::as_array);
                        for m in msgs.into_iter().flatten() {
                            let ts = m
                                .get("timestamp")
                                .and_then(|t| {
                                    t.as_str()
                                        .and_then(|s| s.parse::<i64>().ok())
                                        .or_else(|| t.as_i64())
                                })
                                .map(|s| s * 1000)
                                .unwrap_or_else(now_ms);
                            for key in ["from", "from_user_id"] {
                                if let Some(who) = m.get(key).and_then(Value::as_str) {
                                    let last = st.last_inbound.entry(who.to_string()).or_insert(ts);
                                    *last = (*last).max(ts);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake of Meta's Graph API (all three hosts); stops when dropped.
pub struct FakeMeta {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeMeta {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeMeta {
    /// Starts the fake on `127.0.0.1:0` for the Meta app `app_id` / `app_secret` (the OAuth client
    /// credentials, the `debug_token` app token and the `appsecret_proof` key).
    pub async fn start(app_id: &str, app_secret: &str) -> FakeMeta {
        let shared = Arc::new(Shared {
            app_id: app_id.to_string(),
            app_secret: app_secret.to_string(),
            base: Mutex::new(String::new()),
            state: Mutex::new(State {
                pages: BTreeMap::new(),
                users: BTreeMap::new(),
                tokens: HashMap::new(),
                revoked: HashSet::new(),
                codes: HashMap::new(),
                ig_codes: HashMap::new(),
                numbers: BTreeMap::new(),
                ig_profiles: BTreeMap::new(),
                ig_logins: BTreeMap::new(),
                media: HashMap::new(),
                last_inbound: HashMap::new(),
                ig_users: HashMap::new(),
                script: VecDeque::new(),
                window_mode: WindowMode::default(),
                require_proof: false,
                ig_code_flat: false,
                echo_webhooks: false,
                auto_statuses: Vec::new(),
                system_user_type: "SYSTEM_USER".into(),
                sends: Vec::new(),
                sender_actions: Vec::new(),
                requests: Vec::new(),
                subscriptions: Vec::new(),
                mark_reads: Vec::new(),
                pending: Vec::new(),
                outbound_ids: HashSet::new(),
                next_id: 0,
            }),
        });
        let router = Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (addr, server) = crate::spawn_server(router).await;
        *lock(&shared.base) = format!("http://{addr}");
        FakeMeta {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, without a version: the base of all three Meta hosts.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    /// `{app_id}|{app_secret}`, the app token `debug_token` wants (§5.2).
    pub fn app_token(&self) -> String {
        self.shared.app_token()
    }

    /// A Facebook Page with its never-expiring Page token (§5.1 step 5) and, optionally, its linked
    /// IG professional account (path A, §3). The IG account's profile defaults to the Page's name and
    /// a username derived from it (see [`FakeMeta::set_instagram_profile`]).
    pub fn add_page(
        &self,
        page_id: &str,
        name: &str,
        page_token: &str,
        instagram_account_id: Option<&str>,
    ) {
        let mut st = self.shared.lock();
        st.pages.insert(
            page_id.to_string(),
            Page {
                name: name.to_string(),
                token: page_token.to_string(),
                ig_id: instagram_account_id.map(str::to_string),
            },
        );
        st.add_token(page_token, TokenKind::Page(page_id.to_string()), None);
        if let Some(ig) = instagram_account_id {
            st.ig_profiles
                .entry(ig.to_string())
                .or_insert_with(|| IgProfile {
                    username: name.to_lowercase().replace(' ', "_"),
                    name: name.to_string(),
                });
        }
    }

    /// The `username`/`name` of a path-A IG account (`GET /{ig-id}?fields=username,name`).
    pub fn set_instagram_profile(&self, ig_account_id: &str, username: &str, name: &str) {
        self.shared.lock().ig_profiles.insert(
            ig_account_id.to_string(),
            IgProfile {
                username: username.to_string(),
                name: name.to_string(),
            },
        );
    }

    /// A Facebook user managing `pages` (`/me`, `/me/accounts`, `debug_token` type `USER`); its token
    /// is long-lived (60 days from now).
    pub fn add_user(&self, user_id: &str, name: &str, user_token: &str, pages: &[&str]) {
        let mut st = self.shared.lock();
        st.users.insert(
            user_id.to_string(),
            User {
                name: name.to_string(),
                pages: pages.iter().map(|p| p.to_string()).collect(),
            },
        );
        let exp = now_ms() + LONG_LIVED_EXPIRES_IN * 1000;
        st.add_token(user_token, TokenKind::User(user_id.to_string()), Some(exp));
    }

    /// An OAuth code for `user_id` (§5.1 step 3, §5.5): single use, and the exchange must carry the
    /// same `redirect_uri` (an empty one here = the exchange must send none or an empty one, as in
    /// WhatsApp Embedded Signup, §5.4).
    pub fn issue_code(&self, code: &str, user_id: &str, redirect_uri: &str) {
        self.shared.lock().codes.insert(
            code.to_string(),
            Code {
                owner: user_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                used: false,
            },
        );
    }

    /// A Business Login for Instagram code (§5.3 step 2) for an account added with
    /// [`FakeMeta::add_instagram_login_account`]: single use, same `redirect_uri`.
    pub fn issue_instagram_code(&self, code: &str, ig_user_id: &str, redirect_uri: &str) {
        self.shared.lock().ig_codes.insert(
            code.to_string(),
            Code {
                owner: ig_user_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                used: false,
            },
        );
    }

    /// A WhatsApp business number of `waba_id`, usable with the system-user `token` (Bearer, §4.2).
    /// One token may serve several numbers.
    pub fn add_whatsapp_number(
        &self,
        phone_number_id: &str,
        waba_id: &str,
        display_phone: &str,
        token: &str,
    ) {
        let mut st = self.shared.lock();
        st.numbers.insert(
            phone_number_id.to_string(),
            WaNumber {
                waba_id: waba_id.to_string(),
                display_phone: display_phone.to_string(),
                token: token.to_string(),
            },
        );
        let known = st
            .tokens
            .get(token)
            .is_some_and(|t| matches!(t.kind, TokenKind::SystemUser(_)));
        if !known {
            let id = format!("6100000000{:05}", st.next());
            st.add_token(token, TokenKind::SystemUser(id), None);
        }
    }

    /// An Instagram professional account connected by Business Login for Instagram (path B, §3, §5.3)
    /// with its Instagram User token (60 days from now). `ig_user_id` is the `user_id` / `entry[].id`.
    pub fn add_instagram_login_account(&self, ig_user_id: &str, username: &str, token: &str) {
        let mut st = self.shared.lock();
        let app_scoped_id = format!("26000000{:08}", st.next());
        st.ig_logins.insert(
            ig_user_id.to_string(),
            IgLogin {
                username: username.to_string(),
                app_scoped_id,
            },
        );
        let exp = now_ms() + LONG_LIVED_EXPIRES_IN * 1000;
        st.add_token(token, TokenKind::IgLogin(ig_user_id.to_string()), Some(exp));
    }

    /// Sets when a token was issued and when it expires (`None` = never): for the refresh rules of
    /// §5.3 step 4 and expiry (expired tokens fail like revoked ones, code 190/463).
    pub fn set_token_times(&self, token: &str, issued_at_ms: i64, expires_at_ms: Option<i64>) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.issued_at_ms = issued_at_ms;
            t.expires_at_ms = expires_at_ms;
        }
    }

    /// Every later call with `token` fails with code 190, subcode 463 (§5.5 control; 401 on WhatsApp,
    /// 400 elsewhere); `debug_token` reports it `is_valid: false`.
    pub fn revoke_token(&self, token: &str) {
        self.shared.lock().revoked.insert(token.to_string());
    }

    /// Media a WhatsApp user "sent": `GET /{v}/{media_id}` (Bearer of any WhatsApp number) gives its
    /// metadata and a download URL on this fake, which needs the same Bearer (§4.1).
    pub fn add_media(&self, media_id: &str, mime_type: &str, bytes: &[u8]) {
        self.shared.lock().media.insert(
            media_id.to_string(),
            Media {
                mime_type: mime_type.to_string(),
                bytes: bytes.to_vec(),
            },
        );
    }

    /// Sets the time of the user's last message (epoch ms) — the 24 h window clock of a PSID, IGSID,
    /// `wa_id` or BSUID. A user never seen is unknown: Messenger/Instagram sends to them fail with
    /// 100/2018001, WhatsApp free-form sends with 131047.
    pub fn set_last_inbound(&self, platform_user_id: &str, at_ms: i64) {
        self.shared
            .lock()
            .last_inbound
            .insert(platform_user_id.to_string(), at_ms);
    }

    /// Like [`FakeMeta::set_last_inbound`], also registering `igsid` as an Instagram user of
    /// `ig_account_id`, so Page sends to it count as Instagram (path A) and get Instagram's limits.
    pub fn set_last_inbound_instagram(&self, ig_account_id: &str, igsid: &str, at_ms: i64) {
        let mut st = self.shared.lock();
        st.last_inbound.insert(igsid.to_string(), at_ms);
        st.ig_users
            .insert(igsid.to_string(), ig_account_id.to_string());
    }

    /// Sets last-inbound times from a webhook body (every user message in it; times from the events)
    /// and registers Instagram senders as IGSIDs. Call it before posting the body, or use
    /// [`WebhookSender::tracking`], which does it for every body it sends.
    pub fn note_inbound_from(&self, body: &Value) {
        self.shared.note_inbound(body);
    }

    /// Queues what to do with the next message send (see [`GraphBehavior`]).
    pub fn push(&self, b: GraphBehavior) {
        self.shared.lock().script.push_back(b);
    }

    /// How WhatsApp free-form sends outside the window fail (§4.4).
    pub fn whatsapp_window_mode(&self, m: WindowMode) {
        self.shared.lock().window_mode = m;
    }

    /// When on, calls without `appsecret_proof` fail with code 100 (§2.3: "needed only if the app
    /// requires it"). A wrong proof fails in any case.
    pub fn require_appsecret_proof(&self, on: bool) {
        self.shared.lock().require_proof = on;
    }

    /// When on, `POST /oauth/access_token` (§5.3 step 2) answers the flat shape instead of the
    /// documented `{"data":[…]}` wrapper (§5.5 "switch for flat").
    pub fn instagram_code_response_flat(&self, on: bool) {
        self.shared.lock().ig_code_flat = on;
    }

    /// When on, every accepted Messenger/Instagram send queues its echo webhook (`is_echo: true`,
    /// `app_id` = ours, §2.2, §3.2) for [`FakeMeta::pending_status_webhooks`].
    pub fn echo_webhooks(&self, on: bool) {
        self.shared.lock().echo_webhooks = on;
    }

    /// Statuses (`sent`, `delivered`, `read`) to queue as webhooks for every accepted WhatsApp send
    /// (§4.1, §4.4), e.g. `&["sent", "delivered"]`; empty (the default) = none.
    pub fn whatsapp_auto_statuses(&self, statuses: &[&str]) {
        self.shared.lock().auto_statuses = statuses.iter().map(|s| s.to_string()).collect();
    }

    /// The `type` `debug_token` reports for WhatsApp system-user tokens: `"SYSTEM_USER"` by default
    /// (§5.2 calls it unverified; set `"USER"` to test the other reading).
    pub fn system_user_token_type(&self, t: &str) {
        self.shared.lock().system_user_type = t.to_string();
    }

    /// Takes the webhook bodies the fake produced for the test to deliver (with [`WebhookSender`]):
    /// WhatsApp `failed` statuses of [`WindowMode::AcceptThenFailStatus`], auto statuses and echoes,
    /// in order. The queue is emptied.
    pub fn pending_status_webhooks(&self) -> Vec<Value> {
        std::mem::take(&mut self.shared.lock().pending)
    }

    /// Every accepted send, in order.
    pub fn sends(&self) -> Vec<SentRecord> {
        self.shared.lock().sends.clone()
    }

    /// Every accepted sender action (typing, mark_seen), in order.
    pub fn sender_actions(&self) -> Vec<SenderActionRecord> {
        self.shared.lock().sender_actions.clone()
    }

    /// Every request received, in order, rejected ones included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Page, WABA and IG account ids currently subscribed (`POST …/subscribed_apps` adds, `DELETE`
    /// removes), in subscription order.
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared
            .lock()
            .subscriptions
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The `subscribed_fields` of a current subscription.
    pub fn subscribed_fields(&self, id: &str) -> Option<Vec<String>> {
        self.shared
            .lock()
            .subscriptions
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, f)| f.clone())
    }

    /// WhatsApp wamids marked read (`status: "read"`, §4.2), in order.
    pub fn mark_reads(&self) -> Vec<String> {
        self.shared.lock().mark_reads.clone()
    }

    /// Waits until at least `n` sends were accepted or `timeout` passed; returns the sends so far.
    pub async fn wait_for_sends(&self, n: usize, timeout: Duration) -> Vec<SentRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let sends = self.sends();
            if sends.len() >= n || Instant::now() >= deadline {
                return sends;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}
