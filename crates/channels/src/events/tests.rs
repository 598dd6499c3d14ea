use super::*;
use serde_json::json;

fn parse_json(v: &Value) -> Vec<Event> {
    parse(v.to_string().as_bytes()).expect("parses")
}

fn inbound(e: &Event) -> &Inbound {
    match e {
        Event::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn status(e: &Event) -> &StatusUpdate {
    match e {
        Event::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn reason(e: &Event) -> &str {
    match e {
        Event::Ignored { reason, .. } => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

// ---- §2.2 Messenger -------------------------------------------------------------------------------

/// The example payload of external-apis.md §2.2, byte for byte.
const MESSENGER_EXAMPLE: &str = r#"{ "object": "page", "entry": [{ "id": "110000000000001", "time": 1735700000123, "messaging": [
  { "sender": {"id": "7000000000000001"}, "recipient": {"id": "110000000000001"}, "timestamp": 1735700000001,
    "message": { "mid": "m_AbC123", "text": "Do you ship to Canada?" } },
  { "sender": {"id": "7000000000000002"}, "recipient": {"id": "110000000000001"}, "timestamp": 1735700000050,
    "postback": { "title": "Get Started", "payload": "GET_STARTED", "mid": "m_Def456" } } ] }] }"#;

#[test]
fn messenger_reference_example_gives_a_text_and_a_postback() {
    let events = parse(MESSENGER_EXAMPLE.as_bytes()).expect("parses");
    assert_eq!(
        events,
        vec![
            Event::Message(Inbound {
                platform: Platform::Messenger,
                account_id: "110000000000001".into(),
                waba_id: None,
                user_id: "7000000000000001".into(),
                user_phone: None,
                user_name: None,
                message_id: "m_AbC123".into(),
                timestamp_ms: 1735700000001,
                text: Some("Do you ship to Canada?".into()),
                payload: None,
                kind: InboundKind::Text,
                attachments: vec![],
                reply_to: None,
            }),
            Event::Message(Inbound {
                platform: Platform::Messenger,
                account_id: "110000000000001".into(),
                waba_id: None,
                user_id: "7000000000000002".into(),
                user_phone: None,
                user_name: None,
                message_id: "m_Def456".into(),
                timestamp_ms: 1735700000050,
                text: Some("Get Started".into()),
                payload: Some("GET_STARTED".into()),
                kind: InboundKind::Postback,
                attachments: vec![],
                reply_to: None,
            }),
        ]
    );
}

fn page_body(items: Value) -> Value {
    json!({"object": "page", "entry": [{"id": "P1", "time": 1, "messaging": items}]})
}

#[test]
fn messenger_batched_entries_across_two_pages_are_all_returned_in_order() {
    let body = json!({"object": "page", "entry": [
        {"id": "P1", "time": 1, "messaging": [
            {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 10, "message": {"mid": "m1", "text": "a"}},
            {"sender": {"id": "U2"}, "recipient": {"id": "P1"}, "timestamp": 11, "message": {"mid": "m2", "text": "b"}}
        ]},
        {"id": "P2", "time": 2, "messaging": [
            {"sender": {"id": "U3"}, "recipient": {"id": "P2"}, "timestamp": 12, "message": {"mid": "m3", "text": "c"}}
        ]}
    ]});
    let got: Vec<(String, String, String)> = parse_json(&body)
        .iter()
        .map(inbound)
        .map(|m| {
            (
                m.account_id.clone(),
                m.user_id.clone(),
                m.message_id.clone(),
            )
        })
        .collect();
    let want = [("P1", "U1", "m1"), ("P1", "U2", "m2"), ("P2", "U3", "m3")]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want);
}

#[test]
fn messenger_echoes_keep_our_side_as_account_and_the_app_id_when_present() {
    let cases = [
        (json!(263902037430900u64), Some("263902037430900")),
        (json!("999"), Some("999")),
        (Value::Null, None),
    ];
    for (app_id, want) in cases {
        let mut message =
            json!({"is_echo": true, "mid": "m_echo", "text": "hello", "metadata": "x"});
        if !app_id.is_null() {
            message["app_id"] = app_id;
        }
        let body = page_body(json!([
            {"sender": {"id": "P1"}, "recipient": {"id": "U1"}, "timestamp": 5, "message": message}
        ]));
        assert_eq!(
            parse_json(&body),
            vec![Event::Echo {
                platform: Platform::Messenger,
                account_id: "P1".into(),
                user_id: "U1".into(),
                message_id: "m_echo".into(),
                app_id: want.map(str::to_string),
                text: Some("hello".into()),
                timestamp_ms: 5,
            }]
        );
    }
}

#[test]
fn messenger_quick_reply_keeps_text_and_payload() {
    let body = page_body(
        json!([{"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1,
        "message": {"mid": "m1", "text": "Yes please", "quick_reply": {"payload": "YES"},
                    "reply_to": {"mid": "m0"}}}]),
    );
    let events = parse_json(&body);
    let m = inbound(&events[0]);
    assert_eq!(m.kind, InboundKind::QuickReply);
    assert_eq!(m.text.as_deref(), Some("Yes please"));
    assert_eq!(m.payload.as_deref(), Some("YES"));
    assert_eq!(m.reply_to.as_deref(), Some("m0"));
}

#[test]
fn messenger_attachments_without_text_are_attachment_messages() {
    let body = page_body(
        json!([{"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1,
        "message": {"mid": "m1", "attachments": [
            {"type": "image", "payload": {"url": "https://cdn/1.jpg"}},
            {"type": "fallback", "title": "A link", "payload": {"url": "https://x"}},
            {"payload": {}}
        ]}}]),
    );
    let events = parse_json(&body);
    let m = inbound(&events[0]);
    assert_eq!(m.kind, InboundKind::Attachment);
    assert_eq!(m.text, None);
    let kinds: Vec<&str> = m.attachments.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["image", "fallback", "unknown"]);
    assert_eq!(m.attachments[0].url.as_deref(), Some("https://cdn/1.jpg"));
    assert_eq!(m.attachments[1].caption.as_deref(), Some("A link"));
}

#[test]
fn messenger_postback_without_mid_gets_a_stable_synthetic_id() {
    let body = page_body(
        json!([{"sender": {"id": "U9"}, "recipient": {"id": "P1"}, "timestamp": 1735700000050u64,
        "postback": {"title": "Get Started", "payload": "GET_STARTED"}}]),
    );
    let first = parse_json(&body);
    assert_eq!(inbound(&first[0]).message_id, "postback:U9:1735700000050");
    assert_eq!(parse_json(&body), first, "redelivery gives the same id");
}

#[test]
fn messenger_delivery_gives_one_status_per_mid_and_read_gives_a_watermark() {
    let body = page_body(json!([
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 100,
         "delivery": {"mids": ["m_a", "m_b"], "watermark": 90}},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 101,
         "delivery": {"watermark": 95}},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 102,
         "read": {"watermark": 99}}
    ]));
    let events = parse_json(&body);
    assert_eq!(events.len(), 4);
    let a = status(&events[0]);
    assert_eq!(
        (
            a.message_id.as_deref(),
            a.status,
            a.timestamp_ms,
            a.user_id.as_deref()
        ),
        (Some("m_a"), DeliveryState::Delivered, 90, Some("U1"))
    );
    assert_eq!(status(&events[1]).message_id.as_deref(), Some("m_b"));
    assert_eq!(reason(&events[2]), "delivery without mids");
    let r = status(&events[3]);
    assert_eq!(
        (
            r.message_id.as_deref(),
            r.status,
            r.timestamp_ms,
            r.account_id.as_str()
        ),
        (None, DeliveryState::Read, 99, "P1")
    );
}

#[test]
fn messenger_reactions_referrals_and_unknown_items_are_ignored_with_a_reason() {
    let cases = [
        (
            json!({"reaction": {"reaction": "love", "emoji": "❤", "action": "react", "mid": "m1"}}),
            "reaction",
        ),
        (
            json!({"referral": {"ref": "x", "source": "SHORTLINK", "type": "OPEN_THREAD"}}),
            "referral",
        ),
        (json!({"optin": {"ref": "x"}}), "optin"),
        (json!({"something_new": {}}), "unknown messaging event"),
    ];
    for (extra, want) in cases {
        let mut item = json!({"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1});
        if let (Some(o), Some(e)) = (item.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let events = parse_json(&page_body(json!([item])));
        assert_eq!(
            events,
            vec![Event::Ignored {
                platform: Platform::Messenger,
                account_id: "P1".into(),
                reason: want.into()
            }],
            "{want}"
        );
    }
}

#[test]
fn messenger_standby_and_feed_changes_are_ignored() {
    let body = json!({"object": "page", "entry": [{"id": "P1", "time": 1,
        "standby": [{"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1, "message": {"mid": "m", "text": "x"}}],
        "changes": [{"field": "feed", "value": {}}]}]});
    let reasons: Vec<String> = parse_json(&body)
        .iter()
        .map(|e| reason(e).to_string())
        .collect();
    assert_eq!(reasons, ["standby", "field feed"]);
}

// ---- §3.2 Instagram ------------------------------------------------------------------------------

/// The example payload of external-apis.md §3.2.
const INSTAGRAM_EXAMPLE: &str = r#"{ "object": "instagram", "entry": [{ "id": "17841400000000000", "time": 1735700000999, "messaging": [
  { "sender": {"id": "990000000000001"}, "recipient": {"id": "17841400000000000"}, "timestamp": 1735700000900,
    "message": { "mid": "aWdfZAG1", "attachments": [ { "type": "story_mention",
      "payload": { "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1" } } ] } },
  { "sender": {"id": "990000000000002"}, "recipient": {"id": "17841400000000000"}, "timestamp": 1735700000950,
    "message": { "mid": "aWdfZAG2", "text": "Is this still on sale?",
      "reply_to": { "story": { "url": "https://lookaside.fbsbx.com/…", "id": "18000000000000001" } } } } ] }] }"#;

#[test]
fn instagram_reference_example_gives_a_story_mention_and_a_story_reply() {
    let events = parse(INSTAGRAM_EXAMPLE.as_bytes()).expect("parses");
    assert_eq!(events.len(), 2);
    let mention = inbound(&events[0]);
    assert_eq!(mention.platform, Platform::Instagram);
    assert_eq!(mention.account_id, "17841400000000000");
    assert_eq!(mention.user_id, "990000000000001");
    assert_eq!(mention.message_id, "aWdfZAG1");
    assert_eq!(mention.timestamp_ms, 1735700000900);
    assert_eq!(mention.kind, InboundKind::Attachment);
    assert_eq!(
        mention.text, None,
        "a text-less story mention starts no LLM turn"
    );
    assert_eq!(
        mention.attachments,
        vec![Attachment {
            kind: "story_mention".into(),
            url: Some("https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1".into()),
            media_id: None,
            caption: None,
            mime_type: None,
            filename: None,
        }]
    );
    let reply = inbound(&events[1]);
    assert_eq!(reply.kind, InboundKind::Text);
    assert_eq!(reply.text.as_deref(), Some("Is this still on sale?"));
    assert_eq!(reply.reply_to, None);
    assert_eq!(reply.attachments.len(), 1);
    assert_eq!(reply.attachments[0].kind, "story_reply");
    assert_eq!(
        reply.attachments[0].media_id.as_deref(),
        Some("18000000000000001")
    );
    assert_eq!(
        reply.attachments[0].url.as_deref(),
        Some("https://lookaside.fbsbx.com/…")
    );
}

fn ig_body(message: Value) -> Value {
    json!({"object": "instagram", "entry": [{"id": "IG1", "time": 1, "messaging": [
        {"sender": {"id": "S1"}, "recipient": {"id": "IG1"}, "timestamp": 7, "message": message}
    ]}]})
}

#[test]
fn instagram_message_flags_and_shapes_map_to_kinds() {
    let cases = [
        (
            json!({"mid": "a", "is_deleted": true}),
            InboundKind::Deleted,
        ),
        (
            json!({"mid": "a", "is_unsupported": true}),
            InboundKind::Unsupported,
        ),
        (
            json!({"mid": "a", "text": "hi", "quick_reply": {"payload": "P"}}),
            InboundKind::QuickReply,
        ),
        (
            json!({"mid": "a", "text": "hi", "reply_to": {"mid": "b"}}),
            InboundKind::Text,
        ),
        (
            json!({"mid": "a", "attachments": [{"type": "ig_reel", "payload": {"url": "u"}}]}),
            InboundKind::Attachment,
        ),
        (
            json!({"mid": "a", "attachments": [{"type": "share", "payload": {"url": "u"}}]}),
            InboundKind::Attachment,
        ),
        (json!({"mid": "a"}), InboundKind::Unsupported),
    ];
    for (message, want) in cases {
        let events = parse_json(&ig_body(message.clone()));
        assert_eq!(inbound(&events[0]).kind, want, "{message}");
    }
    let events = parse_json(&ig_body(
        json!({"mid": "a", "text": "hi", "reply_to": {"mid": "b"}}),
    ));
    assert_eq!(inbound(&events[0]).reply_to.as_deref(), Some("b"));
}

#[test]
fn instagram_echoes_are_echoes_with_or_without_app_id() {
    for (msg, app) in [
        (
            json!({"mid": "e1", "is_echo": true, "text": "ours", "app_id": 1234}),
            Some("1234"),
        ),
        (json!({"mid": "e1", "is_echo": true, "text": "ours"}), None),
    ] {
        let body = json!({"object": "instagram", "entry": [{"id": "IG1", "time": 1, "messaging": [
            {"sender": {"id": "IG1"}, "recipient": {"id": "S1"}, "timestamp": 7, "message": msg}]}]});
        assert_eq!(
            parse_json(&body),
            vec![Event::Echo {
                platform: Platform::Instagram,
                account_id: "IG1".into(),
                user_id: "S1".into(),
                message_id: "e1".into(),
                app_id: app.map(str::to_string),
                text: Some("ours".into()),
                timestamp_ms: 7,
            }]
        );
    }
}

#[test]
fn instagram_seen_reaction_and_postback() {
    let body = json!({"object": "instagram", "entry": [{"id": "IG1", "time": 1, "messaging": [
        {"sender": {"id": "S1"}, "recipient": {"id": "IG1"}, "timestamp": 8, "read": {"mid": "out1"}},
        {"sender": {"id": "S1"}, "recipient": {"id": "IG1"}, "timestamp": 9,
         "reaction": {"mid": "out1", "action": "react", "reaction": "love", "emoji": "❤"}},
        {"sender": {"id": "S1"}, "recipient": {"id": "IG1"}, "timestamp": 10,
         "postback": {"mid": "pb1", "title": "Prices", "payload": "PRICES"}}
    ]}]});
    let events = parse_json(&body);
    let seen = status(&events[0]);
    assert_eq!(
        (seen.message_id.as_deref(), seen.status, seen.timestamp_ms),
        (Some("out1"), DeliveryState::Read, 8)
    );
    assert_eq!(reason(&events[1]), "reaction");
    let pb = inbound(&events[2]);
    assert_eq!(
        (
            pb.message_id.as_str(),
            pb.kind,
            pb.text.as_deref(),
            pb.payload.as_deref()
        ),
        ("pb1", InboundKind::Postback, Some("Prices"), Some("PRICES"))
    );
}

// ---- §4.1 WhatsApp -------------------------------------------------------------------------------

/// The example payload of external-apis.md §4.1.
const WHATSAPP_EXAMPLE: &str = r#"{ "object": "whatsapp_business_account", "entry": [{ "id": "100000000000001", "changes": [{ "field": "messages",
  "value": { "messaging_product": "whatsapp",
    "metadata": { "display_phone_number": "15550001111", "phone_number_id": "200000000000002" },
    "contacts": [{ "profile": {"name": "Ana Test"}, "wa_id": "15550002222", "user_id": "US.10000000000000000001" }],
    "messages": [{ "from": "15550002222", "from_user_id": "US.10000000000000000001",
      "id": "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ=", "timestamp": "1735700000",
      "type": "text", "text": { "body": "What are your opening hours?" } }] } }] }] }"#;

#[test]
fn whatsapp_reference_example_keys_on_the_bsuid() {
    let events = parse(WHATSAPP_EXAMPLE.as_bytes()).expect("parses");
    assert_eq!(
        events,
        vec![Event::Message(Inbound {
            platform: Platform::WhatsApp,
            account_id: "200000000000002".into(),
            waba_id: Some("100000000000001".into()),
            user_id: "US.10000000000000000001".into(),
            user_phone: Some("15550002222".into()),
            user_name: Some("Ana Test".into()),
            message_id: "wamid.HBgLMTU1NTAwMDIyMjIVAgASGBQ=".into(),
            timestamp_ms: 1735700000000,
            text: Some("What are your opening hours?".into()),
            payload: None,
            kind: InboundKind::Text,
            attachments: vec![],
            reply_to: None,
        })]
    );
}

fn wa_body(value: Value) -> Value {
    let mut v = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"}});
    if let (Some(o), Some(extra)) = (v.as_object_mut(), value.as_object()) {
        o.extend(extra.clone());
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [
        {"field": "messages", "value": v}]}]})
}

fn wa_message(fields: Value) -> Value {
    let mut m = json!({"from": "15550002222", "id": "wamid.IN1", "timestamp": "1735700000"});
    if let (Some(o), Some(extra)) = (m.as_object_mut(), fields.as_object()) {
        o.extend(extra.clone());
    }
    wa_body(
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "15550002222"}], "messages": [m]}),
    )
}

#[test]
fn whatsapp_identity_prefers_bsuid_and_falls_back_to_wa_id() {
    // Phone only (before BSUIDs): user_id = wa_id.
    let events = parse_json(&wa_message(json!({"type": "text", "text": {"body": "hi"}})));
    let m = inbound(&events[0]);
    assert_eq!(
        (
            m.user_id.as_str(),
            m.user_phone.as_deref(),
            m.user_name.as_deref()
        ),
        ("15550002222", Some("15550002222"), Some("Ana"))
    );

    // Username user: BSUID without wa_id/from; the name is matched by user_id.
    let body = wa_body(json!({
        "contacts": [{"profile": {"name": "Bo", "username": "bo"}, "user_id": "US.13491208655302741918"}],
        "messages": [{"from_user_id": "US.13491208655302741918", "id": "wamid.IN2", "timestamp": "1735700001",
                      "type": "text", "text": {"body": "hello"}}]}));
    let events = parse_json(&body);
    let m = inbound(&events[0]);
    assert_eq!(
        (
            m.user_id.as_str(),
            m.user_phone.as_deref(),
            m.user_name.as_deref(),
            m.timestamp_ms
        ),
        ("US.13491208655302741918", None, Some("Bo"), 1735700001000)
    );

    // BSUID only in contacts[], message has `from`: the contact's user_id wins.
    let body = wa_body(json!({
        "contacts": [{"profile": {"name": "Cy"}, "wa_id": "15550003333", "user_id": "BR.abc123"}],
        "messages": [{"from": "15550003333", "id": "wamid.IN3", "timestamp": "1", "type": "text", "text": {"body": "oi"}}]}));
    let events = parse_json(&body);
    let m = inbound(&events[0]);
    assert_eq!(
        (m.user_id.as_str(), m.user_phone.as_deref()),
        ("BR.abc123", Some("15550003333"))
    );

    // No sender at all: ignored, not a panic.
    let body =
        wa_body(json!({"messages": [{"id": "wamid.X", "type": "text", "text": {"body": "?"}}]}));
    assert_eq!(
        reason(&parse_json(&body)[0]),
        "message without id or sender"
    );
}

#[test]
fn whatsapp_message_types_map_to_text_kind_and_attachments() {
    struct Case {
        fields: Value,
        kind: InboundKind,
        text: Option<&'static str>,
        payload: Option<&'static str>,
        attachment: Option<&'static str>,
    }
    let cases = [
        Case {
            fields: json!({"type": "image", "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x", "caption": "Is this in stock?"}}),
            kind: InboundKind::Attachment,
            text: Some("Is this in stock?"),
            payload: None,
            attachment: Some("image"),
        },
        Case {
            fields: json!({"type": "document", "document": {"id": "MEDIA2", "mime_type": "application/pdf", "filename": "a.pdf"}}),
            kind: InboundKind::Attachment,
            text: None,
            payload: None,
            attachment: Some("document"),
        },
        Case {
            fields: json!({"type": "sticker", "sticker": {"id": "MEDIA3", "mime_type": "image/webp"}}),
            kind: InboundKind::Attachment,
            text: None,
            payload: None,
            attachment: Some("sticker"),
        },
        Case {
            fields: json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Opening hours"}}}),
            kind: InboundKind::QuickReply,
            text: Some("Opening hours"),
            payload: Some("b1"),
            attachment: None,
        },
        Case {
            fields: json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "l2", "title": "Prices", "description": "d"}}}),
            kind: InboundKind::QuickReply,
            text: Some("Prices"),
            payload: Some("l2"),
            attachment: None,
        },
        Case {
            fields: json!({"type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}}),
            kind: InboundKind::QuickReply,
            text: Some("Stop promotions"),
            payload: Some("STOP"),
            attachment: None,
        },
        Case {
            fields: json!({"type": "location", "location": {"latitude": 48.5, "longitude": 2.25, "name": "Shop", "address": "1 Main St"}}),
            kind: InboundKind::Attachment,
            text: None,
            payload: None,
            attachment: Some("location"),
        },
        Case {
            fields: json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Dee"}}]}),
            kind: InboundKind::Attachment,
            text: None,
            payload: None,
            attachment: Some("contacts"),
        },
        Case {
            fields: json!({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]}),
            kind: InboundKind::Unsupported,
            text: None,
            payload: None,
            attachment: None,
        },
        Case {
            fields: json!({"type": "order", "order": {"catalog_id": "1"}}),
            kind: InboundKind::Unsupported,
            text: None,
            payload: None,
            attachment: None,
        },
    ];
    for c in cases {
        let events = parse_json(&wa_message(c.fields.clone()));
        let m = inbound(&events[0]);
        assert_eq!(m.kind, c.kind, "{}", c.fields);
        assert_eq!(m.text.as_deref(), c.text, "{}", c.fields);
        assert_eq!(m.payload.as_deref(), c.payload, "{}", c.fields);
        assert_eq!(
            m.attachments.first().map(|a| a.kind.as_str()),
            c.attachment,
            "{}",
            c.fields
        );
    }
}

#[test]
fn whatsapp_image_with_caption_keeps_media_fields() {
    let events = parse_json(&wa_message(json!({"type": "image",
        "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x", "caption": "Price?"},
        "context": {"from": "15550001111", "id": "wamid.OUT0"}})));
    let m = inbound(&events[0]);
    assert_eq!(
        m.attachments,
        vec![Attachment {
            kind: "image".into(),
            url: None,
            media_id: Some("MEDIA1".into()),
            caption: Some("Price?".into()),
            mime_type: Some("image/jpeg".into()),
            filename: None,
        }]
    );
    assert_eq!(m.reply_to.as_deref(), Some("wamid.OUT0"));
    let events = parse_json(&wa_message(json!({"type": "location",
        "location": {"latitude": 48.5, "longitude": 2.25, "name": "Shop", "address": "1 Main St"}})));
    assert_eq!(
        inbound(&events[0]).attachments[0].caption.as_deref(),
        Some("Shop, 1 Main St (48.5, 2.25)")
    );
}

#[test]
fn whatsapp_reaction_and_system_messages_are_ignored() {
    let events = parse_json(&wa_message(json!({"type": "reaction",
        "reaction": {"message_id": "wamid.OUT1", "emoji": "👍"}})));
    assert_eq!(
        events,
        vec![Event::Ignored {
            platform: Platform::WhatsApp,
            account_id: "PN1".into(),
            reason: "reaction".into()
        }]
    );
    let events = parse_json(&wa_message(json!({"type": "system",
        "system": {"type": "user_changed_number", "body": "x"}})));
    assert_eq!(reason(&events[0]), "system user_changed_number");
}

#[test]
fn whatsapp_statuses_become_status_updates() {
    let body = wa_body(json!({"statuses": [
        {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1735700100", "recipient_id": "15550002222",
         "pricing": {"billable": true, "pricing_model": "PMP", "category": "service"}},
        {"id": "wamid.OUT2", "status": "read", "timestamp": "1735700200", "recipient_id": "15550002222",
         "recipient_user_id": "US.1"},
        {"id": "wamid.OUT3", "status": "failed", "timestamp": "1735700300", "recipient_id": "15550002222",
         "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                     "error_data": {"details": "More than 24 hours have passed"}}]},
        {"id": "wamid.OUT4", "status": "played", "timestamp": "1735700400", "recipient_id": "15550002222"},
        {"id": "wamid.OUT5", "status": "sent", "timestamp": "1735700500", "recipient_id": "15550002222"},
        {"id": "wamid.OUT6", "status": "deleted", "timestamp": "1"}
    ]}));
    let events = parse_json(&body);
    assert_eq!(
        status(&events[0]),
        &StatusUpdate {
            platform: Platform::WhatsApp,
            account_id: "PN1".into(),
            user_id: Some("15550002222".into()),
            message_id: Some("wamid.OUT1".into()),
            status: DeliveryState::Delivered,
            timestamp_ms: 1735700100000,
            error: None,
        }
    );
    assert_eq!(status(&events[1]).user_id.as_deref(), Some("US.1"));
    assert_eq!(status(&events[1]).status, DeliveryState::Read);
    let failed = status(&events[2]);
    assert_eq!(failed.status, DeliveryState::Failed);
    let err = failed.error.as_ref().expect("error");
    assert_eq!(err.code, Some(131047));
    assert_eq!(err.title.as_deref(), Some("Re-engagement message"));
    assert_eq!(
        err.details.as_deref(),
        Some("More than 24 hours have passed")
    );
    assert_eq!(err.class(), ErrorClass::OutsideWindow);
    assert_eq!(status(&events[3]).status, DeliveryState::Played);
    assert_eq!(status(&events[4]).status, DeliveryState::Sent);
    assert_eq!(reason(&events[5]), "status deleted");
}

#[test]
fn whatsapp_value_errors_alone_are_ignored_and_other_fields_too() {
    let body = wa_body(json!({"errors": [{"code": 130429, "title": "Rate limit hit"}]}));
    assert_eq!(
        parse_json(&body),
        vec![Event::Ignored {
            platform: Platform::WhatsApp,
            account_id: "PN1".into(),
            reason: "errors 130429".into()
        }]
    );
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [
        {"field": "account_update", "value": {"event": "PARTNER_ADDED"}}]}]});
    assert_eq!(
        parse_json(&body),
        vec![Event::Ignored {
            platform: Platform::WhatsApp,
            account_id: "WABA1".into(),
            reason: "field account_update".into()
        }]
    );
}

// ---- envelope, robustness ------------------------------------------------------------------------

#[test]
fn envelopes_without_messaging_content_give_no_events() {
    let cases = [
        r#"{"object":"user","entry":[{"id":"1","changes":[{"field":"name"}]}]}"#,
        r#"{"object":"permissions","entry":[]}"#,
        r#"{"entry":[]}"#,
        r#"{"object":"page"}"#,
        r#"{"object":"page","entry":[]}"#,
        r#"{"object":"page","entry":{}}"#,
        r#"{"object":"page","entry":[1,"x",null,[]]}"#,
        r#"{"object":"whatsapp_business_account","entry":[]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}"#,
        r#"{"object":"instagram","entry":[{"id":"IG1","messaging":[]}]}"#,
    ];
    for body in cases {
        assert_eq!(parse(body.as_bytes()), Ok(vec![]), "{body}");
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_errors() {
    let deep = "[".repeat(100_000);
    let deep_obj = format!(
        "{{\"object\":\"page\",\"entry\":{}{}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    ) + "}";
    let cases: [(&[u8], bool); 8] = [
        (b"", true),
        (b"not json", true),
        (b"<html>502</html>", true),
        (b"{\"object\":\"page\"", true),
        (b"\xff\xfe{}", true),
        (deep.as_bytes(), true),
        (deep_obj.as_bytes(), true),
        (b"[]", false),
    ];
    for (body, not_json) in cases {
        match parse(body) {
            Err(ParseError::NotJson(_)) if not_json => {}
            Err(ParseError::NotAnObject) if !not_json => {}
            other => panic!(
                "{:?}: {other:?}",
                String::from_utf8_lossy(&body[..body.len().min(20)])
            ),
        }
    }
    assert_eq!(parse(b"42"), Err(ParseError::NotAnObject));
    assert_eq!(parse(b"null"), Err(ParseError::NotAnObject));
}

#[test]
fn wrong_field_types_skip_the_event_or_drop_the_field_without_panicking() {
    // Messenger: timestamp {} → 0, text 5 → None, mid as number → no mid → ignored.
    let body = page_body(json!([
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": {}, "message": {"mid": "m1", "text": 5}},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1, "message": {"mid": 12, "text": "x"}},
        {"sender": "U1", "recipient": {"id": "P1"}, "timestamp": 1, "message": {"mid": "m3", "text": "x"}},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "message": "text"},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "delivery": {"mids": "m1"}},
        {"sender": {"id": "U1"}, "recipient": [], "timestamp": "oops", "read": {"watermark": "x"}},
        {"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 1,
         "message": {"mid": "m7", "attachments": {"type": "image"}, "quick_reply": "x", "reply_to": 3}},
        "not an object",
        {"sender": {"id": "P1"}, "recipient": {"id": 4}, "message": {"is_echo": true, "mid": "e", "app_id": {}}}
    ]));
    let events = parse_json(&body);
    let m = inbound(&events[0]);
    assert_eq!(
        (m.timestamp_ms, m.text.as_deref(), m.kind),
        (0, None, InboundKind::Unsupported)
    );
    assert_eq!(reason(&events[1]), "message without mid or sender");
    assert_eq!(reason(&events[2]), "message without mid or sender");
    assert_eq!(reason(&events[3]), "unknown messaging event");
    assert_eq!(reason(&events[4]), "delivery without mids");
    // recipient [] → account falls back to entry.id; watermark "x" → event timestamp "oops" → 0.
    let r = status(&events[5]);
    assert_eq!((r.account_id.as_str(), r.timestamp_ms), ("P1", 0));
    let m = inbound(&events[6]);
    assert_eq!(
        (m.kind, m.attachments.len(), m.reply_to.as_deref()),
        (InboundKind::Unsupported, 0, None)
    );
    match &events[7] {
        Event::Echo {
            user_id, app_id, ..
        } => assert_eq!((user_id.as_str(), app_id.as_deref()), ("4", None)),
        other => panic!("{other:?}"),
    }
    assert_eq!(events.len(), 8);

    // WhatsApp: timestamp object → 0, text.body number → None, contacts not an array.
    let body = wa_body(json!({"contacts": "x", "messages": [
        {"from": "1555", "id": "wamid.A", "timestamp": {}, "type": "text", "text": {"body": 3}},
        {"from": "1555", "id": "wamid.B", "timestamp": "12", "type": 7},
        {"from": "1555", "id": "wamid.C", "timestamp": "12", "type": "image", "image": "x"}],
        "statuses": [{"id": "wamid.S", "status": "failed", "timestamp": [], "errors": [{"code": "x"}]}, 5]}));
    let events = parse_json(&body);
    let a = inbound(&events[0]);
    assert_eq!(
        (a.timestamp_ms, a.text.as_deref(), a.user_name.as_deref()),
        (0, None, None)
    );
    assert_eq!(inbound(&events[1]).kind, InboundKind::Unsupported);
    let c = inbound(&events[2]);
    assert_eq!(
        (c.kind, c.attachments[0].media_id.as_deref()),
        (InboundKind::Attachment, None)
    );
    let s = status(&events[3]);
    assert_eq!(
        (s.timestamp_ms, s.error.as_ref().and_then(|e| e.code)),
        (0, None)
    );
    assert_eq!(events.len(), 4);
}

#[test]
fn huge_timestamps_saturate_instead_of_overflowing() {
    let body = wa_message(
        json!({"timestamp": "9223372036854775807", "type": "text", "text": {"body": "x"}}),
    );
    assert_eq!(inbound(&parse_json(&body)[0]).timestamp_ms, i64::MAX);
}

#[test]
fn delivery_states_rank_monotonically_and_failed_is_terminal() {
    use DeliveryState::*;
    let cases = [
        (Delivered, None, true),
        (Delivered, Some(Sent), true),
        (Read, Some(Sent), true),
        (Delivered, Some(Read), false),
        (Read, Some(Read), false),
        (Played, Some(Read), true),
        (Failed, Some(Delivered), true),
        (Read, Some(Failed), false),
        (Failed, Some(Failed), false),
    ];
    for (new, current, want) in cases {
        assert_eq!(new.supersedes(current), want, "{new:?} over {current:?}");
    }
    for s in [Sent, Delivered, Read, Played, Failed] {
        assert_eq!(DeliveryState::from_wire(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).expect("serialise"),
            json!(s.as_str())
        );
    }
    assert_eq!(DeliveryState::from_wire("warning"), None);
}

#[test]
fn events_serialise_to_tagged_json_and_back() {
    let events = parse(WHATSAPP_EXAMPLE.as_bytes()).expect("parses");
    let json = serde_json::to_value(&events).expect("serialise");
    assert_eq!(json[0]["type"], "message");
    assert_eq!(json[0]["platform"], "whatsapp");
    assert_eq!(json[0]["kind"], "text");
    let back: Vec<Event> = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, events);
}
