//! A verified webhook body → normalised [`Event`]s (external-apis.md §1.3 envelope, §2.2 Messenger,
//! §3.2 Instagram, §4.1 WhatsApp).
//!
//! The parser is total: any byte string gives `Ok` or a [`ParseError`], never a panic. A field of the
//! wrong type is treated as absent; an item that lacks what it needs to be useful (a message id, a
//! sender) becomes [`Event::Ignored`] with a reason, so one odd item never drops the rest of a batch.
//! Unknown keys are ignored. Memory is bounded by the body: serde_json's tree plus copies of its strings
//! (deep nesting stops at serde_json's recursion limit with an error).

use crate::Platform;
use crate::graph::{ErrorClass, classify};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a body could not be read at all. Either way the handler should still answer `200` if the
/// signature was valid (external-apis.md §1.2), and keep the raw body for inspection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON (or nested deeper than serde_json's recursion limit). The message gives the position,
    /// never the content.
    #[error("the webhook body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but the top level is not an object.
    #[error("the webhook body is JSON but not an object")]
    NotAnObject,
}

/// One normalised webhook event. Serialised with a `"type"` tag (`message`, `echo`, `status`, `ignored`)
/// so it can be stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Something the customer sent (a message or a postback).
    Message(Inbound),
    /// Our own send echoed back (Messenger `is_echo`, external-apis.md §2.2; Instagram `is_echo`, §3.2).
    /// Echoes never trigger the bot. `app_id` is `Some` when Meta sent one: an echo whose `app_id` is not
    /// our app means a human replied from the Page inbox (pause the bot).
    Echo {
        platform: Platform,
        /// Our side (Page id / IG account id): the echo's `sender.id`, else `entry[].id`.
        account_id: String,
        /// The customer's PSID / IGSID: the echo's `recipient.id`.
        user_id: String,
        message_id: String,
        app_id: Option<String>,
        text: Option<String>,
        timestamp_ms: i64,
    },
    /// A delivery state of one of our messages: WhatsApp `statuses[]` (§4.1); Messenger `delivery` (one
    /// per `mids[]` entry) and `read` (watermark: `message_id` is `None`, §2.2); Instagram
    /// `messaging_seen` (`read.mid`, §3.2).
    Status(StatusUpdate),
    /// Recognised, needs no action (reactions, referrals, typing, standby, unsupported fields, items
    /// missing a required id). `reason` is short and safe to log: never message text.
    Ignored {
        platform: Platform,
        account_id: String,
        reason: String,
    },
}

/// A message or postback from a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub platform: Platform,
    /// Routing key of our channel: Messenger Page id and Instagram professional account id
    /// (`recipient.id`, else `entry[].id`); WhatsApp `metadata.phone_number_id`.
    pub account_id: String,
    /// WhatsApp only: the WABA id (`entry[].id`).
    pub waba_id: Option<String>,
    /// The customer: PSID / IGSID (`sender.id`); WhatsApp: the BSUID (`from_user_id` /
    /// `contacts[].user_id`) when present, else `wa_id`/`from` (external-apis.md §4.1).
    pub user_id: String,
    /// WhatsApp `from` (digits, no `+`), or the matching `contacts[].wa_id`: data only, not an identity.
    pub user_phone: Option<String>,
    /// WhatsApp `contacts[].profile.name`, matched by `wa_id` or `user_id`.
    pub user_name: Option<String>,
    /// `mid` / wamid: the dedupe key (external-apis.md §1.4). A postback without `mid` gets the stable
    /// synthetic id `postback:<sender>:<timestamp>`.
    pub message_id: String,
    /// Epoch ms (WhatsApp's string seconds × 1000); 0 when missing or unreadable.
    pub timestamp_ms: i64,
    /// The user content that may start an LLM turn: the text, a quick reply's text, a postback title,
    /// WhatsApp `text.body`, an interactive reply's title, `button.text`, or a media caption.
    pub text: Option<String>,
    /// Quick reply / postback / button payload, or an interactive reply's `id`.
    pub payload: Option<String>,
    pub kind: InboundKind,
    pub attachments: Vec<Attachment>,
    /// The message this one replies to: Messenger/Instagram `reply_to.mid`, WhatsApp `context.id`. (An
    /// Instagram reply to our story is an attachment of kind `story_reply` instead.)
    pub reply_to: Option<String>,
}

/// What an [`Inbound`] is, for deciding whether to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    /// Free text (attachments may come with it).
    Text,
    /// A quick reply, WhatsApp interactive `button_reply`/`list_reply`, or a template `button`.
    QuickReply,
    /// A Messenger/Instagram postback (a button the bot sent).
    Postback,
    /// Media or another attachment without text of its own (`text` may hold a caption).
    Attachment,
    /// Instagram `is_deleted`: the user unsent an earlier message.
    Deleted,
    /// Something the platform could not render for us (Instagram `is_unsupported`, WhatsApp
    /// `unsupported`, orders, unknown types).
    Unsupported,
}

/// An attachment of an inbound message. `kind` is the platform's own type name: `image`, `audio`,
/// `video`, `file`, `fallback`, `share`, `story_mention`, `ig_reel`, `reel`, `document`, `sticker`,
/// `location`, `contacts`, or `story_reply` (an Instagram reply to our story: `url` and `media_id` =
/// the story's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    /// Messenger/Instagram `payload.url` (an expiring CDN URL: fetch at once), WhatsApp location `url`.
    pub url: Option<String>,
    /// WhatsApp media id (download via `GET /{v}/{media-id}`, external-apis.md §4.1).
    pub media_id: Option<String>,
    pub caption: Option<String>,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
}

/// A delivery state change of a message we sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub platform: Platform,
    pub account_id: String,
    /// The customer (BSUID when present, else `recipient_id`; PSID / IGSID on Messenger/Instagram).
    pub user_id: Option<String>,
    /// The message the state is about; `None` for a Messenger `read` watermark, which covers every
    /// message sent before `timestamp_ms`.
    pub message_id: Option<String>,
    pub status: DeliveryState,
    /// Epoch ms. Messenger/Instagram: the `watermark` when present, else the event `timestamp`.
    pub timestamp_ms: i64,
    /// WhatsApp `failed` statuses: the first of `errors[]` (external-apis.md §4.1, §4.3).
    pub error: Option<GraphErrorSummary>,
}

/// An error attached to a status (WhatsApp `statuses[].errors[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorSummary {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    /// `error_data.details`.
    pub details: Option<String>,
}

impl GraphErrorSummary {
    /// The same classification as a synchronous send error (external-apis.md §4.3: the same error may
    /// come either way).
    pub fn class(&self) -> ErrorClass {
        classify(self.code, None, None, false)
    }
}

/// A delivery state (WhatsApp `status`, Messenger `delivery`/`read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    /// Voice note listened to (WhatsApp).
    Played,
    /// Terminal: nothing replaces it.
    Failed,
}

impl DeliveryState {
    /// The wire / storage name: `sent`, `delivered`, `read`, `played`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Played => "played",
            DeliveryState::Failed => "failed",
        }
    }

    /// The inverse of [`DeliveryState::as_str`].
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "sent" => DeliveryState::Sent,
            "delivered" => DeliveryState::Delivered,
            "read" => DeliveryState::Read,
            "played" => DeliveryState::Played,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }

    /// Order for monotonic application (external-apis.md §4.1: `read` may come without `delivered`,
    /// and duplicates/reordering happen, §1.4): sent 1 < delivered 2 < read 3 < played 4 < failed 5.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Sent => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Read => 3,
            DeliveryState::Played => 4,
            DeliveryState::Failed => 5,
        }
    }

    /// Whether `self` should replace the stored `current` state: only a higher rank does, and nothing
    /// replaces `failed`.
    pub fn supersedes(self, current: Option<DeliveryState>) -> bool {
        match current {
            None => true,
            Some(DeliveryState::Failed) => false,
            Some(c) => self.rank() > c.rank(),
        }
    }
}

/// Parses a webhook body that already passed [`crate::verify_signature`] (external-apis.md §1.3).
///
/// Dispatches on `object`: `page` → Messenger, `instagram` → Instagram, `whatsapp_business_account` →
/// WhatsApp; any other or missing `object` (`user`, `permissions`, …) → `Ok(vec![])`. Every entry and
/// every item is visited (batching, §1.3), in body order.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let top = v.as_object().ok_or(ParseError::NotAnObject)?;
    let platform = match top.get("object").and_then(Value::as_str) {
        Some("page") => Platform::Messenger,
        Some("instagram") => Platform::Instagram,
        Some("whatsapp_business_account") => Platform::WhatsApp,
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for entry in arr(top.get("entry")) {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        match platform {
            Platform::WhatsApp => whatsapp_entry(entry, &mut out),
            _ => messaging_entry(platform, entry, &mut out),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// Messenger and Instagram: entry[].messaging[] (external-apis.md §2.2, §3.2)

fn messaging_entry(platform: Platform, entry: &Map<String, Value>, out: &mut Vec<Event>) {
    let entry_id = id(entry.get("id"));
    for item in arr(entry.get("messaging")) {
        if let Some(item) = item.as_object() {
            messaging_item(platform, entry_id.as_deref(), item, out);
        }
    }
    // Handover protocol: events for threads another app controls (§1.3). Not ours to answer.
    for item in arr(entry.get("standby")) {
        let account = item
            .as_object()
            .and_then(|i| nested_id(i, "recipient"))
            .or_else(|| entry_id.clone());
        if let Some(account_id) = account {
            out.push(ignored(platform, account_id, "standby".into()));
        }
    }
    // Comments, mentions, feed (§1.3): not messaging.
    for change in arr(entry.get("changes")) {
        if let Some(account_id) = entry_id.clone() {
            let field = change.get("field").and_then(Value::as_str).unwrap_or("?");
            out.push(ignored(
                platform,
                account_id,
                format!("field {}", short(field)),
            ));
        }
    }
}

fn messaging_item(
    platform: Platform,
    entry_id: Option<&str>,
    item: &Map<String, Value>,
    out: &mut Vec<Event>,
) {
    let sender = nested_id(item, "sender");
    let recipient = nested_id(item, "recipient");
    let timestamp_ms = int(item.get("timestamp")).unwrap_or(0);
    let message = item.get("message").and_then(Value::as_object);

    // Echo: sender = our Page / IG account, recipient = the customer.
    if let Some(m) = message.filter(|m| m.get("is_echo").and_then(Value::as_bool) == Some(true)) {
        let Some(account_id) = sender.or_else(|| entry_id.map(str::to_string)) else {
            return;
        };
        match (recipient, string(m.get("mid"))) {
            (Some(user_id), Some(message_id)) => out.push(Event::Echo {
                platform,
                account_id,
                user_id,
                message_id,
                app_id: id(m.get("app_id")),
                text: string(m.get("text")),
                timestamp_ms,
            }),
            _ => out.push(ignored(
                platform,
                account_id,
                "echo without mid or recipient".into(),
            )),
        }
        return;
    }

    // Everything else: sender = the customer, recipient = our side.
    let Some(account_id) = recipient.or_else(|| entry_id.map(str::to_string)) else {
        return;
    };
    if let Some(m) = message {
        let (Some(user_id), Some(message_id)) = (sender, string(m.get("mid"))) else {
            out.push(ignored(
                platform,
                account_id,
                "message without mid or sender".into(),
            ));
            return;
        };
        out.push(Event::Message(messaging_message(
            platform,
            account_id,
            user_id,
            message_id,
            timestamp_ms,
            m,
        )));
    } else if let Some(p) = item.get("postback").and_then(Value::as_object) {
        let Some(user_id) = sender else {
            out.push(ignored(
                platform,
                account_id,
                "postback without sender".into(),
            ));
            return;
        };
        let message_id =
            string(p.get("mid")).unwrap_or_else(|| format!("postback:{user_id}:{timestamp_ms}"));
        out.push(Event::Message(Inbound {
            platform,
            account_id,
            waba_id: None,
            user_id,
            user_phone: None,
            user_name: None,
            message_id,
            timestamp_ms,
            text: string(p.get("title")),
            payload: string(p.get("payload")),
            kind: InboundKind::Postback,
            attachments: Vec::new(),
            reply_to: None,
        }));
    } else if let Some(d) = item.get("delivery").and_then(Value::as_object) {
        let at = int(d.get("watermark")).unwrap_or(timestamp_ms);
        let mids: Vec<String> = arr(d.get("mids"))
            .iter()
            .filter_map(|m| string(Some(m)))
            .collect();
        if mids.is_empty() {
            out.push(ignored(
                platform,
                account_id,
                "delivery without mids".into(),
            ));
            return;
        }
        for mid in mids {
            out.push(Event::Status(StatusUpdate {
                platform,
                account_id: account_id.clone(),
                user_id: sender.clone(),
                message_id: Some(mid),
                status: DeliveryState::Delivered,
                timestamp_ms: at,
                error: None,
            }));
        }
    } else if let Some(r) = item.get("read").and_then(Value::as_object) {
        out.push(Event::Status(StatusUpdate {
            platform,
            account_id,
            user_id: sender,
            // Instagram `messaging_seen` names the message; Messenger gives a watermark.
            message_id: string(r.get("mid")),
            status: DeliveryState::Read,
            timestamp_ms: int(r.get("watermark")).unwrap_or(timestamp_ms),
            error: None,
        }));
    } else {
        const KNOWN: [&str; 10] = [
            "reaction",
            "referral",
            "optin",
            "account_linking",
            "pass_thread_control",
            "take_thread_control",
            "request_thread_control",
            "app_roles",
            "policy_enforcement",
            "typing",
        ];
        let reason = KNOWN
            .iter()
            .find(|k| item.contains_key(**k))
            .map_or("unknown messaging event", |k| *k);
        out.push(ignored(platform, account_id, reason.into()));
    }
}

fn messaging_message(
    platform: Platform,
    account_id: String,
    user_id: String,
    message_id: String,
    timestamp_ms: i64,
    m: &Map<String, Value>,
) -> Inbound {
    let text = string(m.get("text"));
    let payload = m.get("quick_reply").and_then(|q| string(q.get("payload")));
    let mut attachments: Vec<Attachment> = arr(m.get("attachments"))
        .iter()
        .filter_map(Value::as_object)
        .map(|a| {
            let p = a.get("payload");
            Attachment {
                kind: string(a.get("type")).map_or_else(|| "unknown".into(), |t| short(&t)),
                url: p.and_then(|p| string(p.get("url"))),
                media_id: None,
                caption: string(a.get("title")),
                mime_type: None,
                filename: None,
            }
        })
        .collect();
    let reply = m.get("reply_to").and_then(Value::as_object);
    if let Some(story) = reply
        .and_then(|r| r.get("story"))
        .and_then(Value::as_object)
    {
        attachments.push(Attachment {
            kind: "story_reply".into(),
            url: string(story.get("url")),
            media_id: id(story.get("id")),
            caption: None,
            mime_type: None,
            filename: None,
        });
    }
    let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
    let kind = if flag("is_deleted") {
        InboundKind::Deleted
    } else if flag("is_unsupported") {
        InboundKind::Unsupported
    } else if payload.is_some() {
        InboundKind::QuickReply
    } else if text.is_some() {
        InboundKind::Text
    } else if !attachments.is_empty() {
        InboundKind::Attachment
    } else {
        InboundKind::Unsupported
    };
    Inbound {
        platform,
        account_id,
        waba_id: None,
        user_id,
        user_phone: None,
        user_name: None,
        message_id,
        timestamp_ms,
        text,
        payload,
        kind,
        attachments,
        reply_to: reply.and_then(|r| string(r.get("mid"))),
    }
}

// ---------------------------------------------------------------------------------------------------
// WhatsApp: entry[].changes[] (external-apis.md §4.1)

fn whatsapp_entry(entry: &Map<String, Value>, out: &mut Vec<Event>) {
    let p = Platform::WhatsApp;
    let waba_id = id(entry.get("id"));
    for change in arr(entry.get("changes")) {
        let Some(change) = change.as_object() else {
            continue;
        };
        let value = change.get("value").and_then(Value::as_object);
        let phone_number_id = value
            .and_then(|v| v.get("metadata"))
            .and_then(|m| id(m.get("phone_number_id")));
        let Some(account_id) = phone_number_id.clone().or_else(|| waba_id.clone()) else {
            continue;
        };
        let field = change.get("field").and_then(Value::as_str).unwrap_or("?");
        let Some(value) = value.filter(|_| field == "messages") else {
            out.push(ignored(p, account_id, format!("field {}", short(field))));
            continue;
        };
        if phone_number_id.is_none() {
            out.push(ignored(
                p,
                account_id,
                "messages without phone_number_id".into(),
            ));
            continue;
        }
        let contacts: Vec<Contact> = arr(value.get("contacts"))
            .iter()
            .map(|c| Contact {
                wa_id: string(c.get("wa_id")),
                user_id: string(c.get("user_id")),
                name: c.get("profile").and_then(|p| string(p.get("name"))),
            })
            .collect();
        for msg in arr(value.get("messages")) {
            if let Some(msg) = msg.as_object() {
                whatsapp_message(&account_id, waba_id.as_deref(), &contacts, msg, out);
            }
        }
        for st in arr(value.get("statuses")) {
            if let Some(st) = st.as_object() {
                whatsapp_status(&account_id, st, out);
            }
        }
        // App- or account-level errors (e.g. 130429): logged, no per-message action.
        let codes: Vec<String> = arr(value.get("errors"))
            .iter()
            .take(5)
            .map(|e| int(e.get("code")).map_or_else(|| "?".into(), |c| c.to_string()))
            .collect();
        if !codes.is_empty() {
            out.push(ignored(
                p,
                account_id,
                format!("errors {}", codes.join(",")),
            ));
        }
    }
}

struct Contact {
    wa_id: Option<String>,
    user_id: Option<String>,
    name: Option<String>,
}

fn whatsapp_message(
    account_id: &str,
    waba_id: Option<&str>,
    contacts: &[Contact],
    msg: &Map<String, Value>,
    out: &mut Vec<Event>,
) {
    let p = Platform::WhatsApp;
    let from = string(msg.get("from"));
    let from_user_id = string(msg.get("from_user_id"));
    let contact = contacts.iter().find(|c| {
        (from.is_some() && c.wa_id == from) || (from_user_id.is_some() && c.user_id == from_user_id)
    });
    let bsuid = from_user_id.or_else(|| contact.and_then(|c| c.user_id.clone()));
    let phone = from.or_else(|| contact.and_then(|c| c.wa_id.clone()));
    let (Some(user_id), Some(message_id)) =
        (bsuid.or_else(|| phone.clone()), string(msg.get("id")))
    else {
        out.push(ignored(
            p,
            account_id.into(),
            "message without id or sender".into(),
        ));
        return;
    };
    let ty = msg.get("type").and_then(Value::as_str).unwrap_or("");
    let body = msg.get(ty).and_then(Value::as_object);
    let field = |k: &str| body.and_then(|b| string(b.get(k)));
    let mut text = None;
    let mut payload = None;
    let mut attachments = Vec::new();
    let kind = match ty {
        "text" => {
            text = field("body");
            InboundKind::Text
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            text = field("caption");
            attachments.push(Attachment {
                kind: ty.into(),
                url: field("url"),
                media_id: field("id"),
                caption: field("caption"),
                mime_type: field("mime_type"),
                filename: field("filename"),
            });
            InboundKind::Attachment
        }
        "location" => {
            let place: Vec<String> = [field("name"), field("address")]
                .into_iter()
                .flatten()
                .collect();
            let coords = match (
                body.and_then(|b| b.get("latitude")).and_then(Value::as_f64),
                body.and_then(|b| b.get("longitude"))
                    .and_then(Value::as_f64),
            ) {
                (Some(la), Some(lo)) => Some(format!("{la}, {lo}")),
                _ => None,
            };
            let caption = match (place.is_empty(), coords) {
                (false, Some(c)) => Some(format!("{} ({c})", place.join(", "))),
                (false, None) => Some(place.join(", ")),
                (true, c) => c,
            };
            attachments.push(Attachment {
                kind: "location".into(),
                url: field("url"),
                media_id: None,
                caption,
                mime_type: None,
                filename: None,
            });
            InboundKind::Attachment
        }
        "contacts" => {
            let names: Vec<String> = arr(msg.get("contacts"))
                .iter()
                .filter_map(|c| c.get("name").and_then(|n| string(n.get("formatted_name"))))
                .take(20)
                .collect();
            attachments.push(Attachment {
                kind: "contacts".into(),
                url: None,
                media_id: None,
                caption: (!names.is_empty()).then(|| names.join(", ")),
                mime_type: None,
                filename: None,
            });
            InboundKind::Attachment
        }
        "interactive" => {
            let reply = body.and_then(|b| {
                ["button_reply", "list_reply"]
                    .iter()
                    .find_map(|k| b.get(*k).and_then(Value::as_object))
            });
            match reply {
                Some(r) => {
                    text = string(r.get("title"));
                    payload = string(r.get("id"));
                    InboundKind::QuickReply
                }
                None => InboundKind::Unsupported,
            }
        }
        "button" => {
            text = field("text");
            payload = field("payload");
            InboundKind::QuickReply
        }
        "reaction" => {
            out.push(ignored(p, account_id.into(), "reaction".into()));
            return;
        }
        "system" => {
            let sub = field("type").unwrap_or_else(|| "?".into());
            out.push(ignored(
                p,
                account_id.into(),
                format!("system {}", short(&sub)),
            ));
            return;
        }
        "request_welcome" => {
            out.push(ignored(p, account_id.into(), "request_welcome".into()));
            return;
        }
        // `unsupported`, `order`, and types newer than this parser: recorded, not answered.
        _ => InboundKind::Unsupported,
    };
    out.push(Event::Message(Inbound {
        platform: p,
        account_id: account_id.into(),
        waba_id: waba_id.map(str::to_string),
        user_id,
        user_phone: phone,
        user_name: contact.and_then(|c| c.name.clone()),
        message_id,
        timestamp_ms: seconds_to_ms(msg.get("timestamp")),
        text,
        payload,
        kind,
        attachments,
        reply_to: msg.get("context").and_then(|c| string(c.get("id"))),
    }));
}

fn whatsapp_status(account_id: &str, st: &Map<String, Value>, out: &mut Vec<Event>) {
    let p = Platform::WhatsApp;
    let raw = st.get("status").and_then(Value::as_str).unwrap_or("?");
    let Some(status) = DeliveryState::from_wire(raw) else {
        out.push(ignored(
            p,
            account_id.into(),
            format!("status {}", short(raw)),
        ));
        return;
    };
    let Some(message_id) = string(st.get("id")) else {
        out.push(ignored(p, account_id.into(), "status without id".into()));
        return;
    };
    let error = arr(st.get("errors")).first().map(|e| GraphErrorSummary {
        code: int(e.get("code")),
        title: string(e.get("title")),
        message: string(e.get("message")),
        details: e.get("error_data").and_then(|d| string(d.get("details"))),
    });
    out.push(Event::Status(StatusUpdate {
        platform: p,
        account_id: account_id.into(),
        user_id: string(st.get("recipient_user_id")).or_else(|| string(st.get("recipient_id"))),
        message_id: Some(message_id),
        status,
        timestamp_ms: seconds_to_ms(st.get("timestamp")),
        error,
    }));
}

// ---------------------------------------------------------------------------------------------------
// Tolerant field access: a wrong type is the same as absent.

fn ignored(platform: Platform, account_id: String, reason: String) -> Event {
    Event::Ignored {
        platform,
        account_id,
        reason,
    }
}

fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A non-empty string.
fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An id: a non-empty string, or an integer written as a number (e.g. `app_id`).
fn id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        other => string(Some(other)),
    }
}

/// `item[key].id`, as in `sender.id`.
fn nested_id(item: &Map<String, Value>, key: &str) -> Option<String> {
    item.get(key).and_then(|o| id(o.get("id")))
}

/// An integer: a JSON integer, or a string of digits.
fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// WhatsApp's string of epoch seconds → ms; 0 when missing or unreadable.
fn seconds_to_ms(v: Option<&Value>) -> i64 {
    int(v).map_or(0, |s| s.saturating_mul(1000))
}

/// A name from the body, bounded for a log reason.
fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

#[cfg(test)]
mod tests;
