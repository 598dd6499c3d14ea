//! The channel service: connect and disconnect channels, process stored webhook events, send replies, and
//! let the owner take a conversation over. The HTTP handlers and the dashboard call these functions; the
//! worker tasks of `mtdesk serve` run [`ChannelService::run_worker`].

use crate::graph::{ErrorClass, GraphClient, GraphConfig, GraphError, SendTarget};
use crate::queue::WebhookQueue;
use crate::{Event, Inbound, InboundKind, Platform, StatusUpdate};
use mtdesk_domain::channel::{self as rules, Window};
use mtdesk_domain::end_user::{self, Lang};
use mtdesk_domain::{
    AccountId, ChannelId, ChannelKind, ChannelStatus, ChatbotId, ConversationId, ConversationMode,
    now_ms,
};
use mtdesk_storage::channels::{REPLY_JOB, TEXT_ONLY_JOB};
use mtdesk_storage::{
    Channel, ChannelUpdate, Job, NewChannel, NewInbound, NewOutbound, Recorded, Sealer,
    StorageError, Store,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The reply sent to a message without text (a photo, a voice note, a sticker).
pub const TEXT_ONLY_REPLY: &str =
    "Thanks for your message! I can only read text, so could you type your question?";

/// Default lease of a claimed webhook event or reply job; a worker that dies loses it and another node
/// takes over.
const REPLY_LEASE_MS: i64 = 120_000;
/// Raw events one worker claims at a time: few, so a burst spreads over every worker (and node) instead
/// of queueing behind one.
const EVENT_BATCH: i64 = 4;
/// Idle poll: another node may have stored events.
const POLL: Duration = Duration::from_millis(500);
/// A reply whose send failed transiently is retried after this times the attempt number.
const RETRY_MS: i64 = 5_000;
/// A raw event whose processing failed (the database was away) is retried after this.
const EVENT_RETRY_MS: i64 = 5_000;
/// A delivery status for a message not recorded yet is looked at again this often, this much later.
const STATUS_RETRIES: i64 = 3;
const STATUS_RETRY_MS: i64 = 2_000;
/// A raw event that failed this often is dropped (it is logged; Meta's copy is gone too by then).
const EVENT_MAX_ATTEMPTS: i64 = 10;

/// Meta settings as the service needs them.
#[derive(Clone, Default)]
pub struct MetaConfig {
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    /// e.g. `https://graph.facebook.com`.
    pub graph_base: String,
    pub instagram_base: String,
    pub version: String,
    /// Where the Facebook Login dialog lives (`https://www.facebook.com`).
    pub dialog_base: String,
    /// Add `appsecret_proof` to Page-token calls (§2.3; needed when the app requires it).
    pub appsecret_proof: bool,
    /// How long a claimed event or reply stays with its worker before another takes it over (a worker
    /// that died); 0 = the default, 2 minutes.
    pub lease_ms: i64,
    /// The operator's own phrases for "delete my data", next to the built-in ones in six languages.
    pub delete_phrases: Vec<String>,
}

impl MetaConfig {
    fn lease(&self) -> i64 {
        if self.lease_ms > 0 {
            self.lease_ms
        } else {
            REPLY_LEASE_MS
        }
    }
}

impl std::fmt::Debug for MetaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaConfig")
            .field("app_id", &self.app_id)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "<redacted>"),
            )
            .field("graph_base", &self.graph_base)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Why a channel operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Meta channels need `MTDESK_META_APP_ID` and `MTDESK_META_APP_SECRET`.
    #[error(
        "Meta channels are not configured on this server (MTDESK_META_APP_ID and MTDESK_META_APP_SECRET)"
    )]
    NotConfigured,
    /// A field is wrong; the message names what to fix.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(mtdesk_domain::DomainError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Meta refused or could not be reached; the message says what to do.
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ChannelError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ChannelError::NotFound,
            other => ChannelError::Storage(other),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ChannelError {
    ChannelError::Invalid(mtdesk_domain::DomainError::invalid(field, message))
}

/// A request to connect a channel with a pasted token (or one picked after Facebook Login).
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub kind: ChannelKind,
    pub chatbot_id: ChatbotId,
    pub page_id: Option<String>,
    pub instagram_account_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub access_token: String,
    /// The Facebook user who granted access, when known from the login (else read from `debug_token`).
    pub meta_user_id: Option<String>,
}

struct Inner {
    /// Keys the subject hashes of deletion receipts (see [`subject_hash`]).
    receipt_key: [u8; 32],
    store: Store,
    /// The worker's store: commits that need not wait for the disk (see `Store::for_background_work`).
    work: Store,
    sealer: Sealer,
    answerer: mtdesk_ai::Answerer,
    meta: MetaConfig,
    graph: Option<GraphClient>,
    queue: WebhookQueue,
    wake: Arc<Notify>,
}

/// The channel service. Cheap to clone.
#[derive(Clone)]
pub struct ChannelService {
    inner: Arc<Inner>,
}

/// The key deletion receipts hash their subjects with, derived from the instance secret.
pub fn receipt_key(secret_key: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut key = [0u8; 32];
    if let Ok(mut m) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret_key) {
        m.update(b"mtdesk deletion receipts v1");
        key.copy_from_slice(&m.finalize().into_bytes());
    }
    key
}

/// HMAC-SHA256(key, "scope:id") in hex: how a receipt names its subject without keeping it.
pub fn subject_hash(key: &[u8; 32], scope: &str, id: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(scope.as_bytes());
            m.update(b":");
            m.update(id.as_bytes());
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Err(_) => String::new(),
    }
}

/// Job kinds that send a fixed text: the deletion dialogue, per language.
const SAY_CONFIRM: &str = "channel_say_confirm_";
const SAY_KEPT: &str = "channel_say_kept_";

/// The owner string channel tokens are sealed to: stable across reconnects.
fn token_owner(kind: ChannelKind, external_id: &str) -> String {
    format!("channel:{}:{external_id}", kind.as_str())
}

fn platform_of(kind: ChannelKind) -> Platform {
    match kind {
        ChannelKind::Messenger => Platform::Messenger,
        ChannelKind::Instagram => Platform::Instagram,
        ChannelKind::Whatsapp => Platform::WhatsApp,
    }
}

fn kind_of(p: Platform) -> ChannelKind {
    match p {
        Platform::Messenger => ChannelKind::Messenger,
        Platform::Instagram => ChannelKind::Instagram,
        Platform::WhatsApp => ChannelKind::Whatsapp,
    }
}

/// What the owner reads about a Graph error (never a token).
fn describe(e: &GraphError) -> String {
    match e.class {
        ErrorClass::TokenInvalid => format!(
            "Meta no longer accepts this channel's access token ({e}); connect it again on the Deploy page"
        ),
        ErrorClass::OutsideWindow => {
            "not sent: more than 24 hours since the customer's last message (Meta's messaging window)"
                .to_string()
        }
        _ => e.to_string(),
    }
}

impl ChannelService {
    /// Starts the webhook writer on the current runtime. `secret_key` is the instance secret that seals the
    /// channel tokens.
    pub fn new(
        store: Store,
        work: Store,
        secret_key: &[u8],
        answerer: mtdesk_ai::Answerer,
        meta: MetaConfig,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let graph = match (&meta.app_id, &meta.app_secret) {
            (Some(id), Some(secret)) if !secret.is_empty() => {
                let mut cfg = GraphConfig::new(&meta.graph_base, id, secret);
                cfg.instagram_base = meta.instagram_base.clone();
                if !meta.version.is_empty() {
                    cfg.version = meta.version.clone();
                }
                cfg.use_appsecret_proof = meta.appsecret_proof;
                Some(GraphClient::new(cfg))
            }
            _ => None,
        };
        Self {
            inner: Arc::new(Inner {
                queue: WebhookQueue::start(store.clone(), wake.clone()),
                sealer: Sealer::new(secret_key, "channel-tokens"),
                receipt_key: receipt_key(secret_key),
                store,
                work,
                answerer,
                meta,
                graph,
                wake,
            }),
        }
    }

    pub fn meta(&self) -> &MetaConfig {
        &self.inner.meta
    }

    /// Whether channels can be connected and webhooks accepted (app id and secret set).
    pub fn configured(&self) -> bool {
        self.inner.graph.is_some()
    }

    pub fn graph(&self) -> Result<&GraphClient, ChannelError> {
        self.inner.graph.as_ref().ok_or(ChannelError::NotConfigured)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The app secret that keys webhook signatures; `None` refuses every webhook.
    pub fn app_secret(&self) -> Option<&[u8]> {
        self.inner
            .meta
            .app_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::as_bytes)
    }

    /// Commits a verified webhook body; returns once it is durable.
    pub async fn enqueue(&self, body: Vec<u8>) -> Result<(), String> {
        self.inner.queue.enqueue(body).await
    }

    /// Seals a token to a channel identity (also used for the short-lived Facebook Login hand-off).
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    // ---- connect / disconnect -------------------------------------------------------------------

    /// Connects a channel after checking the token and ids at the Graph API (§5.1, §5.2), subscribes the
    /// app to its webhooks, and stores the token sealed.
    pub async fn connect(
        &self,
        account: &AccountId,
        req: ConnectRequest,
    ) -> Result<Channel, ChannelError> {
        let graph = self.graph()?;
        let token = rules::access_token(&req.access_token).map_err(ChannelError::Invalid)?;
        let id = |field: &'static str, v: &Option<String>| -> Result<String, ChannelError> {
            rules::platform_id(field, v.as_deref().unwrap_or("")).map_err(ChannelError::Invalid)
        };
        // Every id is checked before anything is asked of Meta.
        match req.kind {
            ChannelKind::Messenger | ChannelKind::Instagram => {
                id("page_id", &req.page_id)?;
                if req
                    .instagram_account_id
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty())
                {
                    id("instagram_account_id", &req.instagram_account_id)?;
                }
            }
            ChannelKind::Whatsapp => {
                id("phone_number_id", &req.phone_number_id)?;
                id("waba_id", &req.waba_id)?;
            }
        }
        // The chatbot must be the account's before anything is asked of Meta.
        self.inner
            .store
            .find_chatbot(account, &req.chatbot_id)
            .await
            .map_err(|e| match e {
                StorageError::NotFound => invalid("chatbot_id", "no such chatbot"),
                other => ChannelError::Storage(other),
            })?;
        let upstream = |what: &str, e: GraphError| {
            ChannelError::Upstream(format!("Meta refused {what}: {}", e))
        };
        let info = graph
            .debug_token(&token)
            .await
            .map_err(|e| upstream("the token check", e))?;
        if !info.is_valid
            || self
                .inner
                .meta
                .app_id
                .as_deref()
                .is_some_and(|ours| !info.app_id.is_empty() && info.app_id != ours)
        {
            return Err(invalid(
                "access_token",
                "Meta says this token is not valid (expired, revoked or mistyped)",
            ));
        }
        let meta_user_id = req.meta_user_id.clone().or(info.user_id.clone());
        let new = match req.kind {
            ChannelKind::Messenger => {
                let page_id = id("page_id", &req.page_id)?;
                let page = graph
                    .get_object(&page_id, "id,name", &token)
                    .await
                    .map_err(|e| upstream("the Page lookup", e))?;
                let name = page["name"].as_str().unwrap_or(&page_id).to_string();
                graph
                    .subscribe_page(&page_id, &token)
                    .await
                    .map_err(|e| upstream("the webhook subscription", e))?;
                NewChannel {
                    chatbot_id: req.chatbot_id.clone(),
                    kind: req.kind,
                    external_id: page_id.clone(),
                    page_id: Some(page_id.clone()),
                    waba_id: None,
                    name,
                    sealed_token: self
                        .inner
                        .sealer
                        .seal(&token, &token_owner(req.kind, &page_id)),
                    meta_user_id,
                }
            }
            ChannelKind::Instagram => {
                let page_id = id("page_id", &req.page_id)?;
                let page = graph
                    .get_object(&page_id, "id,name,instagram_business_account", &token)
                    .await
                    .map_err(|e| upstream("the Page lookup", e))?;
                let Some(ig) = page["instagram_business_account"]["id"].as_str() else {
                    return Err(invalid(
                        "page_id",
                        "this Page has no Instagram professional account linked (link it in the Page's settings)",
                    ));
                };
                if let Some(given) = &req.instagram_account_id
                    && given.trim() != ig
                {
                    return Err(invalid(
                        "instagram_account_id",
                        format!(
                            "the Page is linked to Instagram account {ig}, not {}",
                            given.trim()
                        ),
                    ));
                }
                let profile = graph.get_object(ig, "username,name", &token).await.ok();
                let name = profile
                    .as_ref()
                    .and_then(|p| p["username"].as_str())
                    .map(|u| format!("@{u}"))
                    .unwrap_or_else(|| ig.to_string());
                graph
                    .subscribe_page(&page_id, &token)
                    .await
                    .map_err(|e| upstream("the webhook subscription", e))?;
                NewChannel {
                    chatbot_id: req.chatbot_id.clone(),
                    kind: req.kind,
                    external_id: ig.to_string(),
                    page_id: Some(page_id),
                    waba_id: None,
                    name,
                    sealed_token: self.inner.sealer.seal(&token, &token_owner(req.kind, ig)),
                    meta_user_id,
                }
            }
            ChannelKind::Whatsapp => {
                let phone_id = id("phone_number_id", &req.phone_number_id)?;
                let waba = id("waba_id", &req.waba_id)?;
                let number = graph
                    .get_object(&phone_id, "id,display_phone_number,verified_name", &token)
                    .await
                    .map_err(|e| upstream("the phone number lookup", e))?;
                let display = number["display_phone_number"]
                    .as_str()
                    .unwrap_or(&phone_id)
                    .to_string();
                let name = match number["verified_name"].as_str() {
                    Some(v) => format!("{v} ({display})"),
                    None => display,
                };
                graph
                    .subscribe_waba(&waba, &token)
                    .await
                    .map_err(|e| upstream("the webhook subscription", e))?;
                NewChannel {
                    chatbot_id: req.chatbot_id.clone(),
                    kind: req.kind,
                    external_id: phone_id.clone(),
                    page_id: None,
                    waba_id: Some(waba),
                    name,
                    sealed_token: self
                        .inner
                        .sealer
                        .seal(&token, &token_owner(req.kind, &phone_id)),
                    meta_user_id,
                }
            }
        };
        match self.inner.store.upsert_channel(account, &new).await {
            Ok(c) => Ok(c),
            Err(StorageError::Conflict { .. }) => Err(ChannelError::Conflict(format!(
                "this {} is already connected to another MT Desk account",
                match req.kind {
                    ChannelKind::Messenger => "Page",
                    ChannelKind::Instagram => "Instagram account",
                    ChannelKind::Whatsapp => "phone number",
                }
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The channel's token in clear (for a Graph call).
    fn token(&self, channel: &Channel, sealed: &str) -> Result<String, ChannelError> {
        self.inner
            .sealer
            .open(sealed, &token_owner(channel.kind, &channel.external_id))
            .map_err(|e| ChannelError::Upstream(format!("the channel's token cannot be read: {e}")))
    }

    /// Disconnects a channel: deletes its token, ids, names, conversations and messages (one
    /// transaction), then unsubscribes the app at Meta where the API allows (best effort: the data is gone
    /// either way).
    pub async fn disconnect(
        &self,
        account: &AccountId,
        id: &ChannelId,
    ) -> Result<(Channel, Vec<(&'static str, u64)>), ChannelError> {
        let channel = self.inner.store.find_channel(account, id).await?;
        let sealed = self.inner.store.find_channel_secret(id).await?;
        let token = self.token(&channel, &sealed).ok();
        let (removed, counts) = self.inner.store.delete_channel(account, id).await?;
        if let Some(token) = token {
            // Another channel of the same Page (Messenger + Instagram) keeps the Page's subscription.
            let page_shared = match &removed.page_id {
                Some(page) => self.page_still_used(account, page).await,
                None => false,
            };
            self.unsubscribe(&removed, &token, page_shared).await;
        }
        Ok((removed, counts))
    }

    /// Unsubscribes the app from every channel of an account at Meta, before the account is deleted
    /// (the rows go with the account's single deletion transaction). Best effort: failures are logged.
    pub async fn release_account(&self, account: &AccountId) {
        let channels = match self.inner.store.list_channels(account).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "listing channels to unsubscribe failed");
                return;
            }
        };
        let mut pages_done: Vec<String> = Vec::new();
        for c in &channels {
            let Ok(sealed) = self.inner.store.find_channel_secret(&c.id).await else {
                continue;
            };
            let Ok(token) = self.token(c, &sealed) else {
                continue;
            };
            let page_done = c.page_id.as_ref().is_some_and(|p| pages_done.contains(p));
            self.unsubscribe(c, &token, page_done).await;
            if let Some(p) = &c.page_id {
                pages_done.push(p.clone());
            }
        }
    }

    /// Removes the app's webhook subscription for a channel (§5.1 step 6 `DELETE`, §4.2 WABA), unless
    /// `page_shared` (the Page still serves another channel). Best effort, with the Graph client's timeouts.
    async fn unsubscribe(&self, channel: &Channel, token: &str, page_shared: bool) {
        let Some(graph) = &self.inner.graph else {
            return;
        };
        let result = match channel.kind {
            ChannelKind::Messenger | ChannelKind::Instagram => match &channel.page_id {
                Some(page) if !page_shared => graph.unsubscribe_page(page, token).await,
                _ => Ok(()),
            },
            ChannelKind::Whatsapp => match &channel.waba_id {
                Some(waba) => graph.unsubscribe_waba(waba, token).await,
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!(channel.id = %channel.id, error = %e, "unsubscribing at Meta failed; the channel's data is deleted anyway");
        }
    }

    async fn page_still_used(&self, account: &AccountId, page: &str) -> bool {
        self.inner
            .store
            .list_channels(account)
            .await
            .map(|cs| cs.iter().any(|c| c.page_id.as_deref() == Some(page)))
            .unwrap_or(false)
    }

    pub async fn update(
        &self,
        account: &AccountId,
        id: &ChannelId,
        u: &ChannelUpdate,
    ) -> Result<Channel, ChannelError> {
        match self.inner.store.update_channel(account, id, u).await {
            Err(StorageError::NotFound) if u.chatbot_id.is_some() => {
                // Either the channel or the chatbot is not the account's: say which.
                self.inner.store.find_channel(account, id).await?;
                Err(invalid("chatbot_id", "no such chatbot"))
            }
            other => Ok(other?),
        }
    }

    // ---- owner replies and take-over ----------------------------------------------------------------

    /// Takes a conversation over (the bot pauses for it) or hands it back.
    pub async fn set_mode(
        &self,
        account: &AccountId,
        conversation: &ConversationId,
        mode: ConversationMode,
    ) -> Result<(), ChannelError> {
        Ok(self
            .inner
            .store
            .set_conversation_mode(account, conversation, mode)
            .await?)
    }

    /// Sends the owner's reply through the conversation's channel: inside the 24-hour window as a normal
    /// response, 24 h – 7 days on Messenger/Instagram with the `HUMAN_AGENT` tag (§2.3, §3.3), never after.
    pub async fn send_owner_reply(
        &self,
        account: &AccountId,
        conversation: &ConversationId,
        text: &str,
    ) -> Result<String, ChannelError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("text", "the reply is empty"));
        }
        if text.chars().count() > 4000 {
            return Err(invalid("text", "at most 4,000 characters per reply"));
        }
        let conv = self
            .inner
            .store
            .find_inbox_conversation(account, conversation)
            .await?;
        let Some(channel_id) = conv.channel_id.clone() else {
            return Err(ChannelError::Conflict(
                "this conversation is not on a channel; replies go only to Messenger, Instagram or WhatsApp".into(),
            ));
        };
        let channel = self.inner.store.find_channel(account, &channel_id).await?;
        if channel.status == ChannelStatus::NeedsReconnect {
            return Err(ChannelError::Conflict(format!(
                "{} needs to be connected again before replies can be sent",
                channel.name
            )));
        }
        let window = rules::window(channel.kind, conv.last_inbound_at, now_ms());
        if window == Window::Closed {
            return Err(ChannelError::Conflict(
                "the customer's last message is too old: Meta does not allow replies outside its messaging window".into(),
            ));
        }
        let graph = self.graph()?;
        let sealed = self.inner.store.find_channel_secret(&channel.id).await?;
        let token = self.token(&channel, &sealed)?;
        let contact = recipient(
            channel.kind,
            conv.contact_phone.as_deref(),
            conv.contact_id.as_deref().unwrap_or_default(),
        );
        let mut first_id = None;
        for piece in crate::split_message(text, crate::limit_for(platform_of(channel.kind))) {
            let sent = if window == Window::HumanAgentOnly {
                graph
                    .send_human_agent(target(&channel), &token, &contact, &piece)
                    .await
            } else {
                graph
                    .send_text(target(&channel), &token, &contact, &piece)
                    .await
            };
            match sent {
                Ok(m) => {
                    first_id.get_or_insert(m.message_id);
                }
                Err(e) => {
                    if e.class == ErrorClass::TokenInvalid {
                        self.inner
                            .store
                            .mark_channel_needs_reconnect(&channel.id, &describe(&e))
                            .await?;
                    }
                    let note = describe(&e);
                    self.inner
                        .store
                        .record_outbound(
                            account,
                            &channel.id,
                            conversation,
                            &NewOutbound {
                                role: "owner",
                                content: text,
                                reply_to: None,
                                delivery: "failed",
                                note: Some(&note),
                                platform_message_id: None,
                            },
                        )
                        .await?;
                    return Err(ChannelError::Upstream(format!(
                        "Meta did not accept the reply: {}",
                        e
                    )));
                }
            }
        }
        let id = self
            .inner
            .store
            .record_outbound(
                account,
                &channel.id,
                conversation,
                &NewOutbound {
                    role: "owner",
                    content: text,
                    reply_to: None,
                    delivery: "sent",
                    note: None,
                    platform_message_id: first_id.as_deref(),
                },
            )
            .await?;
        Ok(id)
    }

    // ---- the worker ------------------------------------------------------------------------------

    /// Wakes the workers (new events or jobs on this node).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// One worker: processes stored webhook events and reply jobs until the process ends. `mtdesk serve`
    /// runs a few of them; other nodes run their own on the same database.
    pub async fn run_worker(self) {
        loop {
            let worked = match self.step().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::error!(error = %e, "channel worker step failed");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            } else {
                // Let another worker share the wake-up.
                self.inner.wake.notify_one();
            }
        }
    }

    /// Runs everything that can run now: stored events first (they create the replies), then the replies.
    /// Returns how many items were handled. Tests call it until it returns 0.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.step().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    async fn step(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        let events = self
            .inner
            .store
            .claim_webhook_events(EVENT_BATCH, self.inner.meta.lease())
            .await?;
        for e in &events {
            n += 1;
            match self.process_event(&e.body).await {
                Ok(Processed::Done) => self.inner.work.delete_webhook_event(&e.id).await?,
                Ok(Processed::StatusAhead) if e.attempts < STATUS_RETRIES => {
                    // A delivery status overtook the bookkeeping of its send: try again shortly.
                    self.inner
                        .store
                        .fail_webhook_event(
                            &e.id,
                            "a delivery status arrived before its message was recorded",
                            now_ms() + STATUS_RETRY_MS,
                        )
                        .await?;
                }
                Ok(Processed::StatusAhead) => self.inner.work.delete_webhook_event(&e.id).await?,
                Err(err) if e.attempts >= EVENT_MAX_ATTEMPTS => {
                    tracing::error!(event.id = %e.id, error = %err, "dropping a webhook event that failed {} times", e.attempts);
                    self.inner.work.delete_webhook_event(&e.id).await?;
                }
                Err(err) => {
                    tracing::warn!(event.id = %e.id, error = %err, "processing a webhook event failed; will retry");
                    self.inner
                        .store
                        .fail_webhook_event(&e.id, &err.to_string(), now_ms() + EVENT_RETRY_MS)
                        .await?;
                }
            }
        }
        // Replies: a few per step, so new events are not starved by a burst of replies.
        for _ in 0..8 {
            let Some(job) = self
                .inner
                .store
                .claim_channel_job(self.inner.meta.lease())
                .await?
            else {
                break;
            };
            n += 1;
            self.run_job(&job).await?;
        }
        Ok(n)
    }

    /// Processes one stored webhook body (already signature-checked when it was received). Idempotent:
    /// messages are deduplicated, statuses applied monotonically.
    async fn process_event(&self, body: &[u8]) -> anyhow::Result<Processed> {
        let mut events = match crate::parse(body) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "a signed webhook body could not be read; dropped");
                return Ok(Processed::Done);
            }
        };
        let mut outcome = Processed::Done;
        // Meta does not guarantee order (§1.4): handle messages in the order they were written.
        events.sort_by_key(|e| match e {
            Event::Message(m) => m.timestamp_ms,
            Event::Echo { timestamp_ms, .. } => *timestamp_ms,
            Event::Status(s) => s.timestamp_ms,
            Event::Ignored { .. } => 0,
        });
        for event in events {
            match event {
                Event::Message(m) => self.inbound(m).await?,
                Event::Echo {
                    platform,
                    account_id,
                    user_id,
                    message_id,
                    app_id,
                    text,
                    ..
                } => {
                    self.echo(platform, &account_id, &user_id, &message_id, app_id, text)
                        .await?
                }
                Event::Status(s) => {
                    if self.status(s).await? == mtdesk_storage::DeliveryApplied::Unknown {
                        outcome = Processed::StatusAhead;
                    }
                }
                Event::Ignored {
                    platform,
                    account_id,
                    reason,
                } => {
                    tracing::debug!(platform = %platform, account = %account_id, reason = %reason, "webhook item ignored");
                }
            }
        }
        Ok(outcome)
    }

    async fn route(&self, platform: Platform, account_id: &str) -> anyhow::Result<Option<Channel>> {
        let channel = self
            .inner
            .store
            .find_channel_by_external(kind_of(platform), account_id)
            .await?;
        if channel.is_none() {
            tracing::info!(platform = %platform, recipient = %account_id, "webhook event for a recipient no channel is connected to; dropped");
        }
        Ok(channel)
    }

    async fn inbound(&self, m: Inbound) -> anyhow::Result<()> {
        let Some(channel) = self.route(m.platform, &m.account_id).await? else {
            return Ok(());
        };
        if m.kind == InboundKind::Deleted {
            // The customer unsent a message (Instagram): its text goes from the transcript too.
            self.inner
                .store
                .redact_inbound(&channel.id, &m.message_id)
                .await?;
            return Ok(());
        }
        let text = m.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        // "Delete my data", asked in the channel: confirm, then delete this end user's data here.
        let state = self
            .inner
            .work
            .conversation_state(&channel.id, &m.user_id)
            .await?;
        let mut after_record: Option<String> = None;
        let mut say: Option<String> = None;
        if let Some((conversation, Some(action))) = &state
            && let Some(code) = action.strip_prefix("delete:")
        {
            let lang = Lang::parse(code);
            match text.and_then(end_user::yes_no) {
                Some(true) => {
                    self.delete_end_user(&channel, conversation, &m, lang)
                        .await?;
                    return Ok(());
                }
                Some(false) => {
                    self.inner
                        .work
                        .set_pending_action(conversation, None)
                        .await?;
                    say = Some(format!("{SAY_KEPT}{}", lang.code()));
                }
                None => {
                    self.inner
                        .work
                        .set_pending_action(conversation, None)
                        .await?
                }
            }
        } else if let Some(lang) =
            text.and_then(|t| end_user::deletion_request(t, &self.inner.meta.delete_phrases))
        {
            say = Some(format!("{SAY_CONFIRM}{}", lang.code()));
            after_record = Some(format!("delete:{}", lang.code()));
        }
        let described: Vec<String> = m
            .attachments
            .iter()
            .map(|a| match (&a.caption, &a.filename) {
                (Some(c), _) => format!("[{}] {c}", a.kind),
                (None, Some(f)) => format!("[{}] {f}", a.kind),
                _ => format!("[{}]", a.kind),
            })
            .collect();
        let content = match (text, m.kind) {
            (_, InboundKind::Deleted) => "[the customer unsent a message]".to_string(),
            (Some(t), _) => t.to_string(),
            (None, InboundKind::Unsupported) => "[a message type the platform cannot show]".into(),
            (None, _) if !described.is_empty() => described.join("\n"),
            (None, _) => "[an empty message]".into(),
        };
        // A story mention without text is not a question (§3.2); an unsent message needs no answer; a
        // message without text gets the polite "I can only read text".
        let story_only = text.is_none()
            && !m.attachments.is_empty()
            && m.attachments.iter().all(|a| a.kind == "story_mention");
        let reply = match m.kind {
            _ if say.is_some() => say,
            InboundKind::Deleted => None,
            _ if text.is_some() => Some(REPLY_JOB.to_string()),
            _ if story_only => None,
            _ => Some(TEXT_ONLY_JOB.to_string()),
        };
        let attachments = (!m.attachments.is_empty())
            .then(|| serde_json::to_string(&m.attachments).ok())
            .flatten();
        let recorded = self
            .inner
            .store
            .record_inbound(
                &channel,
                &NewInbound {
                    contact_id: m.user_id.clone(),
                    contact_name: m.user_name.clone(),
                    contact_phone: m.user_phone.clone(),
                    platform_message_id: m.message_id.clone(),
                    content,
                    attachments,
                    reply,
                },
            )
            .await?;
        match recorded {
            Recorded::Duplicate => {
                tracing::debug!(channel.id = %channel.id, "redelivered message ignored");
            }
            Recorded::New {
                reply_queued,
                conversation_id,
                ..
            } => {
                if let Some(action) = &after_record {
                    self.inner
                        .work
                        .set_pending_action(&conversation_id, Some(action))
                        .await?;
                }
                if reply_queued {
                    self.inner.wake.notify_one();
                }
            }
        }
        Ok(())
    }

    async fn echo(
        &self,
        platform: Platform,
        account_id: &str,
        user_id: &str,
        message_id: &str,
        app_id: Option<String>,
        text: Option<String>,
    ) -> anyhow::Result<()> {
        let ours = match (&app_id, &self.inner.meta.app_id) {
            (Some(echo_app), Some(our_app)) => echo_app == our_app,
            // Without an app id we cannot tell: treat it as ours (never pause on a guess).
            _ => true,
        };
        if ours {
            return Ok(());
        }
        let Some(channel) = self.route(platform, account_id).await? else {
            return Ok(());
        };
        // A person answered from the Page inbox: the bot steps back for this conversation.
        if let Some((c, _)) = self
            .inner
            .store
            .conversation_state(&channel.id, user_id)
            .await?
        {
            self.inner
                .store
                .set_conversation_mode(&channel.account_id, &c, ConversationMode::Human)
                .await?;
            let content = text.unwrap_or_else(|| "[sent from the Page inbox]".into());
            let stored = self
                .inner
                .store
                .record_outbound(
                    &channel.account_id,
                    &channel.id,
                    &c,
                    &NewOutbound {
                        role: "owner",
                        content: &content,
                        reply_to: None,
                        delivery: "sent",
                        note: Some("sent by a person from the Page inbox; the bot paused for this conversation"),
                        platform_message_id: Some(message_id),
                    },
                )
                .await;
            match stored {
                Ok(_) | Err(StorageError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn status(&self, s: StatusUpdate) -> anyhow::Result<mtdesk_storage::DeliveryApplied> {
        use mtdesk_storage::DeliveryApplied;
        let Some(channel) = self.route(s.platform, &s.account_id).await? else {
            return Ok(DeliveryApplied::Unchanged);
        };
        match &s.message_id {
            Some(mid) => {
                let note = s.error.as_ref().map(|e| {
                    let what = e
                        .details
                        .clone()
                        .or(e.message.clone())
                        .or(e.title.clone())
                        .unwrap_or_default();
                    match e.code {
                        Some(131047) => "not delivered: more than 24 hours since the customer's last message (Meta's messaging window)".to_string(),
                        Some(code) => format!("not delivered (code {code}): {what}"),
                        None => format!("not delivered: {what}"),
                    }
                });
                Ok(self
                    .inner
                    .store
                    .apply_delivery_status(&channel.id, mid, s.status.as_str(), note.as_deref())
                    .await?)
            }
            None => {
                // A read watermark: every reply sent up to that moment is read (§2.2).
                if let Some(user) = &s.user_id
                    && s.timestamp_ms > 0
                {
                    self.inner
                        .store
                        .apply_read_watermark(&channel.id, user, s.timestamp_ms)
                        .await?;
                }
                Ok(DeliveryApplied::Applied)
            }
        }
    }

    async fn run_job(&self, job: &Job) -> anyhow::Result<()> {
        let fixed: Option<&'static str> = match job.kind.as_str() {
            REPLY_JOB => None,
            TEXT_ONLY_JOB => Some(TEXT_ONLY_REPLY),
            k if k.starts_with(SAY_CONFIRM) => Some(end_user::confirm_question(Lang::parse(
                &k[SAY_CONFIRM.len()..],
            ))),
            k if k.starts_with(SAY_KEPT) => {
                Some(end_user::kept_notice(Lang::parse(&k[SAY_KEPT.len()..])))
            }
            other => {
                tracing::error!(kind = %other, "unknown channel job kind; dropped");
                self.inner.work.complete_job(job).await?;
                return Ok(());
            }
        };
        // The job stays ours while it runs: its lease is renewed, so a slow model or a slow Graph API
        // never lets another worker take it over and answer a second time. Only a worker that died loses it.
        let lease = self.inner.meta.lease();
        let renew = {
            let store = self.inner.work.clone();
            let job = job.clone();
            tokio::spawn(async move {
                let every = Duration::from_millis((lease / 3).max(200) as u64);
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = store.extend_job_lease(&job, lease).await {
                        tracing::warn!(error = %e, "renewing a reply job's lease failed");
                    }
                }
            })
        };
        let result = self.reply(&job.payload, fixed).await;
        renew.abort();
        let failure = match result {
            Ok(()) => {
                self.inner.work.complete_job(job).await?;
                return Ok(());
            }
            Err(ReplyError::Retry(msg)) => msg,
            Err(ReplyError::Other(e)) => format!("{e:#}"),
        };
        tracing::warn!(job.id = %job.id, attempt = job.attempts, error = %failure, "a reply failed; will retry");
        self.inner
            .store
            .fail_job(job, &failure, RETRY_MS * job.attempts)
            .await?;
        if job.attempts >= job.max_attempts {
            match self.inner.work.find_reply(&job.payload).await {
                Ok(Some(reply)) => {
                    self.inner
                        .store
                        .set_delivery(&reply.id, "failed", Some(&failure), None)
                        .await?;
                }
                Ok(None) => {
                    // Nothing was stored: the transcript still says the message went unanswered.
                    if let Ok(work) = self.inner.work.find_reply_work(&job.payload).await {
                        self.note_unanswered(&work, &format!("not answered: {failure}"))
                            .await?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The end user confirmed: their conversation, messages, answer records and platform id on this channel
    /// are deleted (with a receipt), then they are told, in their language, without storing anything new.
    async fn delete_end_user(
        &self,
        channel: &Channel,
        conversation: &ConversationId,
        m: &Inbound,
        lang: Lang,
    ) -> anyhow::Result<()> {
        let started = now_ms();
        // A deletion is something the customer is told is done: committed durably.
        let counts = self
            .inner
            .store
            .delete_end_user(&channel.id, conversation)
            .await?;
        let subject = subject_hash(
            &self.inner.receipt_key,
            "end_user",
            &format!("{}:{}", channel.id, m.user_id),
        );
        self.inner
            .store
            .insert_receipt("end_user", "channel", &subject, &counts, None, started)
            .await?;
        tracing::info!(channel.id = %channel.id, "an end user's data was deleted at their request in the channel");
        let (Some(graph), Ok(sealed)) = (
            &self.inner.graph,
            self.inner.store.find_channel_secret(&channel.id).await,
        ) else {
            return Ok(());
        };
        let Ok(token) = self.token(channel, &sealed) else {
            return Ok(());
        };
        let to = recipient(channel.kind, m.user_phone.as_deref(), &m.user_id);
        if let Err(e) = graph
            .send_text(target(channel), &token, &to, end_user::deleted_notice(lang))
            .await
        {
            tracing::warn!(channel.id = %channel.id, error = %e, "telling the end user their data was deleted failed");
        }
        Ok(())
    }

    /// Records in the transcript that a message got no reply, and why.
    async fn note_unanswered(
        &self,
        work: &mtdesk_storage::ReplyWork,
        why: &str,
    ) -> Result<(), StorageError> {
        match self
            .inner
            .store
            .record_outbound(
                &work.channel.account_id,
                &work.channel.id,
                &work.conversation_id,
                &NewOutbound {
                    role: "assistant",
                    content: "(no reply)",
                    reply_to: Some(&work.message_id),
                    delivery: "not_sent",
                    note: Some(why),
                    platform_message_id: None,
                },
            )
            .await
        {
            Ok(_) | Err(StorageError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Answers one inbound message and sends the answer. Idempotent: a retried job sends the reply it
    /// stored before instead of answering again, and does nothing once the reply was sent.
    async fn reply(&self, inbound_id: &str, fixed: Option<&'static str>) -> Result<(), ReplyError> {
        let store = &self.inner.work;
        let work = match store.find_reply_work(inbound_id).await {
            Ok(w) => w,
            // Disconnected or deleted since: nothing to answer.
            Err(StorageError::NotFound) => return Ok(()),
            Err(e) => return Err(ReplyError::Other(e.into())),
        };
        let channel = &work.channel;
        let existing = store.find_reply(inbound_id).await.map_err(other)?;
        let pending = match &existing {
            Some(r) => match r.delivery.as_deref() {
                Some("pending") | Some("sending") => true,
                // Sent, delivered, failed, not sent: done.
                _ => return Ok(()),
            },
            None => false,
        };
        // Reasons not to send at all, each said in the transcript.
        let refusal = if channel.status == ChannelStatus::NeedsReconnect {
            Some("not sent: Meta refused this channel's token; connect it again on the Deploy page")
        } else if channel.paused {
            Some("not sent: the bot is paused on this channel")
        } else if work.mode == ConversationMode::Human {
            Some("not sent: you took this conversation over")
        } else if rules::window(channel.kind, work.last_inbound_at, now_ms()) != Window::Open {
            // Meta's window (§2.3, §3.3, §4.2), checked before any model is asked.
            Some(
                "not sent: more than 24 hours since the customer's last message (Meta's messaging window)",
            )
        } else {
            None
        };
        if let Some(why) = refusal {
            match &existing {
                Some(r) => store
                    .set_delivery(&r.id, "not_sent", Some(why), None)
                    .await
                    .map_err(other)?,
                None => self.note_unanswered(&work, why).await.map_err(other)?,
            }
            return Ok(());
        }
        let reply = match existing {
            Some(r) if pending => r,
            Some(_) => return Ok(()),
            None => {
                if let Some(fixed) = fixed {
                    let stored = store
                        .record_outbound(
                            &channel.account_id,
                            &channel.id,
                            &work.conversation_id,
                            &NewOutbound {
                                role: "assistant",
                                content: fixed,
                                reply_to: Some(inbound_id),
                                delivery: "pending",
                                note: None,
                                platform_message_id: None,
                            },
                        )
                        .await;
                    match stored {
                        Ok(id) => mtdesk_storage::StoredReply {
                            id,
                            content: fixed.to_string(),
                            delivery: Some("pending".into()),
                        },
                        // Another worker stored it first; it sends it.
                        Err(StorageError::Conflict { .. }) => return Ok(()),
                        Err(e) => return Err(other(e)),
                    }
                } else {
                    let bot = store
                        .find_chatbot(&channel.account_id, &channel.chatbot_id)
                        .await
                        .map_err(other)?;
                    let answered = self
                        .inner
                        .answerer
                        .answer(
                            &bot,
                            mtdesk_ai::AnswerRequest {
                                message: &work.content,
                                conversation: Some(work.conversation_id.clone()),
                                channel: channel.kind.as_str(),
                                inbound: Some(inbound_id),
                            },
                            None,
                        )
                        .await;
                    let answer = match answered {
                        Ok(a) => a,
                        Err(mtdesk_ai::AnswerError::Storage(StorageError::Conflict { .. })) => {
                            return Ok(());
                        }
                        Err(e) => return Err(ReplyError::Other(e.into())),
                    };
                    let mut stored = store
                        .find_reply(inbound_id)
                        .await
                        .map_err(other)?
                        .ok_or_else(|| {
                            ReplyError::Other(anyhow::anyhow!("the answer was not stored"))
                        })?;
                    if channel.show_sources
                        && let Some(line) = source_line(&answer)
                    {
                        stored.content = format!("{}\n\n{line}", stored.content);
                        store
                            .set_reply_content(&stored.id, &stored.content)
                            .await
                            .map_err(other)?;
                    }
                    stored
                }
            }
        };
        // One sender: `pending` → `sending`. A reply found in `sending` belongs to a worker that died
        // mid-send (a live one keeps its lease): it is sent again (at least once, never lost).
        if reply.delivery.as_deref() == Some("pending")
            && !store.claim_reply_send(&reply.id).await.map_err(other)?
        {
            return Ok(());
        }
        let Some(graph) = &self.inner.graph else {
            store
                .set_delivery(
                    &reply.id,
                    "not_sent",
                    Some("not sent: Meta channels are not configured on this server"),
                    None,
                )
                .await
                .map_err(other)?;
            return Ok(());
        };
        let token = match self.token(channel, &work.sealed_token) {
            Ok(t) => t,
            Err(e) => {
                let msg = e.to_string();
                store
                    .mark_channel_needs_reconnect(&channel.id, &msg)
                    .await
                    .map_err(other)?;
                store
                    .set_delivery(&reply.id, "failed", Some(&msg), None)
                    .await
                    .map_err(other)?;
                return Ok(());
            }
        };
        let to = recipient(
            channel.kind,
            work.contact_phone.as_deref(),
            &work.contact_id,
        );
        let mut first_id: Option<String> = None;
        let pieces =
            crate::split_message(&reply.content, crate::limit_for(platform_of(channel.kind)));
        for piece in &pieces {
            match graph.send_text(target(channel), &token, &to, piece).await {
                Ok(m) => {
                    if first_id.is_none() {
                        // Recorded at once, so a fast delivery status finds it.
                        store
                            .set_delivery(&reply.id, "sending", None, Some(&m.message_id))
                            .await
                            .map_err(other)?;
                    }
                    first_id.get_or_insert(m.message_id);
                }
                Err(e) => {
                    let note = describe(&e);
                    match e.class {
                        ErrorClass::TokenInvalid => {
                            store
                                .mark_channel_needs_reconnect(&channel.id, &note)
                                .await
                                .map_err(other)?;
                        }
                        ErrorClass::Transient | ErrorClass::RateLimited if first_id.is_none() => {
                            store
                                .record_channel_error(&channel.id, &note)
                                .await
                                .map_err(other)?;
                            return Err(ReplyError::Retry(note));
                        }
                        _ => {
                            store
                                .record_channel_error(&channel.id, &note)
                                .await
                                .map_err(other)?;
                        }
                    }
                    let state = if e.class == ErrorClass::OutsideWindow {
                        "not_sent"
                    } else {
                        "failed"
                    };
                    store
                        .set_delivery(&reply.id, state, Some(&note), first_id.as_deref())
                        .await
                        .map_err(other)?;
                    return Ok(());
                }
            }
        }
        let note = (pieces.len() > 1).then(|| format!("sent in {} parts", pieces.len()));
        store
            .set_delivery(&reply.id, "sent", note.as_deref(), first_id.as_deref())
            .await
            .map_err(other)?;
        Ok(())
    }
}

/// What processing a stored webhook body came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Processed {
    Done,
    /// A delivery status named a message not recorded yet.
    StatusAhead,
}

enum ReplyError {
    /// Worth another attempt later (Meta was down or rate-limited us).
    Retry(String),
    Other(anyhow::Error),
}

fn other(e: StorageError) -> ReplyError {
    ReplyError::Other(e.into())
}

/// Whom to send to: on WhatsApp the customer's number when known (`to`, §4.2), a BSUID only for
/// username-only users; elsewhere the platform-scoped id.
fn recipient(kind: ChannelKind, phone: Option<&str>, user_id: &str) -> String {
    match (kind, phone) {
        (ChannelKind::Whatsapp, Some(p)) if !p.is_empty() => p.to_string(),
        _ => user_id.to_string(),
    }
}

fn target(c: &Channel) -> SendTarget<'_> {
    match c.kind {
        ChannelKind::Messenger => SendTarget::Messenger {
            page_id: c.page_id.as_deref().unwrap_or(&c.external_id),
        },
        ChannelKind::Instagram => SendTarget::Instagram {
            page_id: c.page_id.as_deref().unwrap_or(&c.external_id),
        },
        ChannelKind::Whatsapp => SendTarget::WhatsApp {
            phone_number_id: &c.external_id,
        },
    }
}

/// The "Source:" line a channel can add to answers that came from the knowledge base (issue: AI answering).
fn source_line(a: &mtdesk_ai::Answer) -> Option<String> {
    use mtdesk_ai::AnswerSource;
    if !matches!(
        a.source,
        AnswerSource::Knowledge | AnswerSource::Excerpt | AnswerSource::QaPair
    ) {
        return None;
    }
    // The offline excerpt already ends with its own source line.
    if a.source == AnswerSource::Excerpt {
        return None;
    }
    let titles: Vec<&str> = a
        .sources
        .iter()
        .filter(|s| s.kind == "chunk")
        .map(|s| s.title.as_str())
        .take(2)
        .collect();
    if titles.is_empty() {
        return None;
    }
    Some(format!("Source: {}", titles.join("; ")))
}
