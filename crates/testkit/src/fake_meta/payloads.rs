//! Webhook bodies in Meta's shapes (external-apis.md §1.3, §2.2, §3.2, §4.1). `*_item` builders return
//! one `entry[].messaging[]` item so tests can batch them; the others return whole bodies.

use super::now_ms;
use serde_json::{Value, json};

fn id(v: &str) -> Value {
    json!({ "id": v })
}

/// An `app_id` as Meta sends it in echoes: a number when it is one.
fn app_id_value(app_id: &str) -> Value {
    app_id
        .parse::<u64>()
        .map_or_else(|_| json!(app_id), |n| json!(n))
}

fn entry_time(items: &[Value]) -> i64 {
    items
        .iter()
        .filter_map(|i| i.get("timestamp").and_then(Value::as_i64))
        .max()
        .unwrap_or_else(now_ms)
}

fn wrap(object: &str, entries: &[(&str, Vec<Value>)]) -> Value {
    let entry: Vec<Value> = entries
        .iter()
        .map(|(account, items)| {
            json!({ "id": account, "time": entry_time(items), "messaging": items })
        })
        .collect();
    json!({ "object": object, "entry": entry })
}

// ---------------------------------------------------------------------------------------------
// Messenger (§2.2): `object: "page"`.

/// A customer's text message to the Page (§2.2).
pub fn messenger_text_item(
    page_id: &str,
    psid: &str,
    mid: &str,
    text: &str,
    timestamp_ms: i64,
) -> Value {
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": timestamp_ms,
            "message": { "mid": mid, "text": text } })
}

/// `{"object":"page","entry":[…]}` holding one customer text message.
pub fn messenger_text(
    page_id: &str,
    psid: &str,
    mid: &str,
    text: &str,
    timestamp_ms: i64,
) -> Value {
    messenger_event(
        page_id,
        messenger_text_item(page_id, psid, mid, text, timestamp_ms),
    )
}

/// One messaging item wrapped in a `page` body; `entry[].time` = the item's timestamp.
pub fn messenger_event(page_id: &str, event: Value) -> Value {
    wrap("page", &[(page_id, vec![event])])
}

/// Several entries (one per Page), each with several items: a batched delivery (§1.3).
pub fn messenger_batch(entries: &[(&str, Vec<Value>)]) -> Value {
    wrap("page", entries)
}

/// Our own send echoed back (`is_echo`, sender = Page, §2.2). An `app_id` other than ours means a
/// human replied from the Page inbox; `None` = no `app_id` (e.g. sent from the Business Suite).
pub fn messenger_echo_item(
    page_id: &str,
    psid: &str,
    mid: &str,
    text: &str,
    app_id: Option<&str>,
    timestamp_ms: i64,
) -> Value {
    let mut message = json!({ "mid": mid, "is_echo": true, "text": text });
    if let Some(app) = app_id {
        message["app_id"] = app_id_value(app);
    }
    json!({ "sender": id(page_id), "recipient": id(psid), "timestamp": timestamp_ms,
            "message": message })
}

/// [`messenger_echo_item`] at the current time, wrapped.
pub fn messenger_echo(
    page_id: &str,
    psid: &str,
    mid: &str,
    text: &str,
    app_id: Option<&str>,
) -> Value {
    messenger_event(
        page_id,
        messenger_echo_item(page_id, psid, mid, text, app_id, now_ms()),
    )
}

/// A button tap (`postback {title, payload, mid}`, §2.2).
pub fn messenger_postback_item(
    page_id: &str,
    psid: &str,
    mid: &str,
    title: &str,
    payload: &str,
    timestamp_ms: i64,
) -> Value {
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": timestamp_ms,
            "postback": { "title": title, "payload": payload, "mid": mid } })
}

/// [`messenger_postback_item`], wrapped.
pub fn messenger_postback(
    page_id: &str,
    psid: &str,
    mid: &str,
    title: &str,
    payload: &str,
    timestamp_ms: i64,
) -> Value {
    messenger_event(
        page_id,
        messenger_postback_item(page_id, psid, mid, title, payload, timestamp_ms),
    )
}

/// A text-less message with one attachment (`kind`: `image`, `audio`, `video`, `file`, `reel`,
/// `fallback`, …; §2.2).
pub fn messenger_attachment_item(
    page_id: &str,
    psid: &str,
    mid: &str,
    kind: &str,
    url: &str,
    timestamp_ms: i64,
) -> Value {
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": timestamp_ms,
            "message": { "mid": mid, "attachments": [{ "type": kind, "payload": { "url": url } }] } })
}

/// [`messenger_attachment_item`] at the current time, wrapped.
pub fn messenger_attachment(page_id: &str, psid: &str, mid: &str, kind: &str, url: &str) -> Value {
    messenger_event(
        page_id,
        messenger_attachment_item(page_id, psid, mid, kind, url, now_ms()),
    )
}

/// A delivery receipt (`delivery {mids, watermark}`, §2.2); empty `mids` leaves the key out, as
/// Meta may.
pub fn messenger_delivery_item(page_id: &str, psid: &str, mids: &[&str], watermark: i64) -> Value {
    let mut delivery = json!({ "watermark": watermark });
    if !mids.is_empty() {
        delivery["mids"] = json!(mids);
    }
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": watermark,
            "delivery": delivery })
}

/// A read receipt (`read {watermark}`, §2.2).
pub fn messenger_read_item(page_id: &str, psid: &str, watermark: i64) -> Value {
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": watermark,
            "read": { "watermark": watermark } })
}

/// A reaction (`reaction {mid, action, reaction, emoji}`, §2.2); `action` = `react` / `unreact`.
pub fn messenger_reaction_item(
    page_id: &str,
    psid: &str,
    mid: &str,
    emoji: &str,
    action: &str,
    timestamp_ms: i64,
) -> Value {
    json!({ "sender": id(psid), "recipient": id(page_id), "timestamp": timestamp_ms,
            "reaction": { "mid": mid, "action": action, "reaction": "love", "emoji": emoji } })
}

// ---------------------------------------------------------------------------------------------
// Instagram (§3.2): `object: "instagram"`, same skeleton; `entry[].id` = the IG account id.

/// A customer's text DM to the IG account.
pub fn instagram_text_item(ig_id: &str, igsid: &str, mid: &str, text: &str, ts: i64) -> Value {
    json!({ "sender": id(igsid), "recipient": id(ig_id), "timestamp": ts,
            "message": { "mid": mid, "text": text } })
}

/// [`instagram_text_item`], wrapped.
pub fn instagram_text(ig_id: &str, igsid: &str, mid: &str, text: &str, ts: i64) -> Value {
    instagram_event(ig_id, instagram_text_item(ig_id, igsid, mid, text, ts))
}

/// One item wrapped in an `instagram` body.
pub fn instagram_event(ig_id: &str, event: Value) -> Value {
    wrap("instagram", &[(ig_id, vec![event])])
}

/// Several IG accounts' items in one body.
pub fn instagram_batch(entries: &[(&str, Vec<Value>)]) -> Value {
    wrap("instagram", entries)
}

/// Our own send echoed on the `messages` field (`is_echo`, sender = the IG account, §3.2).
pub fn instagram_echo_item(ig_id: &str, igsid: &str, mid: &str, text: &str, ts: i64) -> Value {
    json!({ "sender": id(ig_id), "recipient": id(igsid), "timestamp": ts,
            "message": { "mid": mid, "text": text, "is_echo": true } })
}

/// [`instagram_echo_item`], wrapped.
pub fn instagram_echo(ig_id: &str, igsid: &str, mid: &str, text: &str, ts: i64) -> Value {
    instagram_event(ig_id, instagram_echo_item(ig_id, igsid, mid, text, ts))
}

/// A story mention: a text-less message with a `story_mention` attachment (§3.2).
pub fn instagram_story_mention_item(
    ig_id: &str,
    igsid: &str,
    mid: &str,
    url: &str,
    ts: i64,
) -> Value {
    json!({ "sender": id(igsid), "recipient": id(ig_id), "timestamp": ts,
            "message": { "mid": mid,
                         "attachments": [{ "type": "story_mention", "payload": { "url": url } }] } })
}

/// [`instagram_story_mention_item`], wrapped.
pub fn instagram_story_mention(ig_id: &str, igsid: &str, mid: &str, url: &str, ts: i64) -> Value {
    instagram_event(
        ig_id,
        instagram_story_mention_item(ig_id, igsid, mid, url, ts),
    )
}

/// A text reply to our story (`reply_to.story {url, id}`, §3.2).
pub fn instagram_story_reply_item(
    ig_id: &str,
    igsid: &str,
    mid: &str,
    text: &str,
    story_url: &str,
    story_id: &str,
    ts: i64,
) -> Value {
    json!({ "sender": id(igsid), "recipient": id(ig_id), "timestamp": ts,
            "message": { "mid": mid, "text": text,
                         "reply_to": { "story": { "url": story_url, "id": story_id } } } })
}

/// [`instagram_story_reply_item`], wrapped.
pub fn instagram_story_reply(
    ig_id: &str,
    igsid: &str,
    mid: &str,
    text: &str,
    story_url: &str,
    story_id: &str,
    ts: i64,
) -> Value {
    instagram_event(
        ig_id,
        instagram_story_reply_item(ig_id, igsid, mid, text, story_url, story_id, ts),
    )
}

// ---------------------------------------------------------------------------------------------
// WhatsApp (§4.1): `object: "whatsapp_business_account"`, `changes[].field: "messages"`.

/// A `contacts[]` item: `wa_id` and/or the BSUID `user_id` (username-only users have no `wa_id`).
pub fn whatsapp_contact(wa_id: Option<&str>, bsuid: Option<&str>, name: &str) -> Value {
    let mut c = json!({ "profile": { "name": name } });
    if let Some(w) = wa_id {
        c["wa_id"] = json!(w);
    }
    if let Some(b) = bsuid {
        c["user_id"] = json!(b);
    }
    c
}

/// A `messages[]` text item: `from` (wa_id) and/or `from_user_id` (BSUID); `timestamp` is a string
/// of epoch seconds (§1.3).
pub fn whatsapp_text_message(
    from: Option<&str>,
    from_user_id: Option<&str>,
    wamid: &str,
    text: &str,
    ts_secs: i64,
) -> Value {
    let mut m = json!({ "id": wamid, "timestamp": ts_secs.to_string(), "type": "text",
                        "text": { "body": text } });
    if let Some(f) = from {
        m["from"] = json!(f);
    }
    if let Some(u) = from_user_id {
        m["from_user_id"] = json!(u);
    }
    m
}

/// A `messages` change with these `contacts` and `messages`, for number `phone_number_id`.
pub fn whatsapp_messages(
    waba_id: &str,
    phone_number_id: &str,
    display_phone: &str,
    contacts: Vec<Value>,
    messages: Vec<Value>,
) -> Value {
    whatsapp_change(
        waba_id,
        json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": display_phone, "phone_number_id": phone_number_id },
            "contacts": contacts,
            "messages": messages,
        }),
    )
}

fn whatsapp_change(waba_id: &str, value: Value) -> Value {
    json!({ "object": "whatsapp_business_account",
            "entry": [{ "id": waba_id, "changes": [{ "field": "messages", "value": value }] }] })
}

/// A customer's text message (§4.1 sample shape, without BSUID).
#[allow(clippy::too_many_arguments)]
pub fn whatsapp_text(
    waba_id: &str,
    phone_number_id: &str,
    display_phone: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    text: &str,
    ts_secs: i64,
) -> Value {
    whatsapp_messages(
        waba_id,
        phone_number_id,
        display_phone,
        vec![whatsapp_contact(Some(wa_id), None, name)],
        vec![whatsapp_text_message(
            Some(wa_id),
            None,
            wamid,
            text,
            ts_secs,
        )],
    )
}

/// A customer's text message carrying a BSUID (`contacts[].user_id`, `from_user_id`), with or
/// without `wa_id`/`from` (username-only users, §4.1).
#[allow(clippy::too_many_arguments)]
pub fn whatsapp_text_bsuid(
    waba_id: &str,
    phone_number_id: &str,
    display_phone: &str,
    wa_id: Option<&str>,
    bsuid: &str,
    name: &str,
    wamid: &str,
    text: &str,
    ts_secs: i64,
) -> Value {
    whatsapp_messages(
        waba_id,
        phone_number_id,
        display_phone,
        vec![whatsapp_contact(wa_id, Some(bsuid), name)],
        vec![whatsapp_text_message(
            wa_id,
            Some(bsuid),
            wamid,
            text,
            ts_secs,
        )],
    )
}

/// A customer's image (`image {id, mime_type, sha256, caption?}`, §4.1).
#[allow(clippy::too_many_arguments)]
pub fn whatsapp_image(
    waba_id: &str,
    phone_number_id: &str,
    display_phone: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    media_id: &str,
    mime_type: &str,
    caption: Option<&str>,
    ts_secs: i64,
) -> Value {
    let mut image = json!({ "id": media_id, "mime_type": mime_type,
                            "sha256": "ZmFrZS1zaGEyNTYtb2YtdGhlLW1lZGlh" });
    if let Some(c) = caption {
        image["caption"] = json!(c);
    }
    let msg = json!({ "from": wa_id, "id": wamid, "timestamp": ts_secs.to_string(),
                      "type": "image", "image": image });
    whatsapp_messages(
        waba_id,
        phone_number_id,
        display_phone,
        vec![whatsapp_contact(Some(wa_id), None, name)],
        vec![msg],
    )
}

/// The §4.3 `details` of 131047.
pub fn whatsapp_window_details() -> &'static str {
    "More than 24 hours have passed since the recipient last replied to the sender number."
}

/// One `statuses[]` item (§4.1): `pricing` on `sent`/`delivered`/`read`; `failed` with `error =
/// (code, title)` gets `errors[{code, title, message, error_data.details}]`. A BSUID recipient
/// (`CC.xxx`) goes in `recipient_user_id`, digits in `recipient_id`.
pub fn whatsapp_status_item(
    wamid: &str,
    status: &str,
    recipient: &str,
    ts_secs: i64,
    error: Option<(i64, &str)>,
) -> Value {
    let mut s = json!({ "id": wamid, "status": status, "timestamp": ts_secs.to_string() });
    if recipient.contains('.') {
        s["recipient_user_id"] = json!(recipient);
    } else {
        s["recipient_id"] = json!(recipient);
    }
    if status != "failed" {
        s["pricing"] = json!({ "billable": true, "pricing_model": "PMP", "category": "service" });
    }
    if let Some((code, title)) = error {
        let details = if code == 131047 {
            whatsapp_window_details().to_string()
        } else {
            title.to_string()
        };
        s["errors"] = json!([{ "code": code, "title": title, "message": title,
                               "error_data": { "details": details } }]);
    }
    s
}

/// A `messages` change carrying only `statuses`.
pub fn whatsapp_statuses(
    waba_id: &str,
    phone_number_id: &str,
    display_phone: &str,
    statuses: Vec<Value>,
) -> Value {
    whatsapp_change(
        waba_id,
        json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": display_phone, "phone_number_id": phone_number_id },
            "statuses": statuses,
        }),
    )
}

/// A status webhook for one of our sends (§4.1). `display_phone_number` is left empty: receivers
/// identify the number by `phone_number_id` (use [`whatsapp_statuses`] to set it).
pub fn whatsapp_status(
    waba_id: &str,
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    recipient: &str,
    ts_secs: i64,
    error: Option<(i64, &str)>,
) -> Value {
    whatsapp_statuses(
        waba_id,
        phone_number_id,
        "",
        vec![whatsapp_status_item(
            wamid, status, recipient, ts_secs, error,
        )],
    )
}

/// The same body with entries, and the items inside each (`messaging`, `changes`, `messages`,
/// `statuses`), in reverse order: "order is not guaranteed" (§1.4, §1.5).
pub fn reversed(body: &Value) -> Value {
    let mut out = body.clone();
    if let Some(entries) = out.get_mut("entry").and_then(Value::as_array_mut) {
        entries.reverse();
        for e in entries.iter_mut() {
            for key in ["messaging", "changes"] {
                if let Some(a) = e.get_mut(key).and_then(Value::as_array_mut) {
                    a.reverse();
                }
            }
            if let Some(changes) = e.get_mut("changes").and_then(Value::as_array_mut) {
                for c in changes.iter_mut() {
                    for key in ["messages", "statuses"] {
                        if let Some(a) = c
                            .get_mut("value")
                            .and_then(|v| v.get_mut(key))
                            .and_then(Value::as_array_mut)
                        {
                            a.reverse();
                        }
                    }
                }
            }
        }
    }
    out
}
