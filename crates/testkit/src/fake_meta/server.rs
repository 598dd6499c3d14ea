//! The request handler of [`super::FakeMeta`]: routing, token checks and the rules of §2.5, §3.4, §4.4
//! and §5.5 of external-apis.md, with errors in the §2.4 / §4.3 shapes.

use super::payloads::{
    instagram_echo, messenger_echo, whatsapp_status_item, whatsapp_statuses,
    whatsapp_window_details,
};
use super::sender::appsecret_proof;
use super::{
    Code, GraphBehavior, HUMAN_AGENT_WINDOW_MS, INSTAGRAM_TEXT_MAX_BYTES, LONG_LIVED_EXPIRES_IN,
    MESSENGER_TEXT_MAX_CHARS, RecordedRequest, SenderActionRecord, SentRecord, Shared, State,
    TokenKind, WHATSAPP_TEXT_MAX_CHARS, WINDOW_MS, WindowMode, now_ms,
};
use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `application` name `debug_token` reports (§5.2).
pub(crate) const APP_NAME: &str = "MT Desk (fake)";
/// The `verified_name` of every fake WhatsApp number.
const VERIFIED_NAME: &str = "MT Desk Test Business";
/// Page `tasks` in `/me/accounts` (§5.1 step 5).
const PAGE_TASKS: [&str; 6] = [
    "ADVERTISE",
    "ANALYZE",
    "CREATE_CONTENT",
    "MESSAGING",
    "MODERATE",
    "MANAGE",
];
/// Tags Messenger accepts with `MESSAGE_TAG` (§2.3); Instagram only takes `HUMAN_AGENT` (§3.3).
const MESSENGER_TAGS: [&str; 4] = [
    "HUMAN_AGENT",
    "ACCOUNT_UPDATE",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
];
/// Message `type`s WhatsApp accepts (§4.2); others → 131051 (§4.4).
const WHATSAPP_TYPES: [&str; 11] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

/// One parsed request.
struct Ctx {
    method: Method,
    path: String,
    /// The version segment (`v25.0`) when there was one.
    version: Option<String>,
    /// Path segments after the version.
    segs: Vec<String>,
    query: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    json: Value,
    /// The script was already consumed by this request (it stalled, now it answers).
    after_stall: bool,
}

impl Ctx {
    /// A parameter from the query string, else from a form body.
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .or_else(|| self.form.get(name))
            .map(String::as_str)
    }

    /// The access token: `access_token` (query or form), else `Authorization: Bearer` (§2.3, §4.2).
    fn token(&self) -> Option<String> {
        if let Some(t) = self.param("access_token").filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
        let auth = self.headers.get("authorization")?;
        let (scheme, rest) = auth.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
            .then(|| rest.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn fields(&self) -> Option<Vec<String>> {
        self.param("fields").map(|f| {
            f.split(',')
                .map(|s| s.split('{').next().unwrap_or("").trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// A Graph API error (§2.4), or with `wa` the WhatsApp shape carrying `error_data` (§4.3).
#[derive(Debug)]
struct GraphErr {
    http: u16,
    code: i64,
    subcode: Option<i64>,
    message: String,
    transient: bool,
    wa: bool,
    details: Option<String>,
    retry_after: Option<u32>,
}

impl GraphErr {
    fn new(http: u16, code: i64, subcode: Option<i64>) -> Self {
        GraphErr {
            http,
            code,
            subcode,
            message: default_message(code, subcode),
            transient: false,
            wa: false,
            details: None,
            retry_after: None,
        }
    }

    fn bad(code: i64, message: impl Into<String>) -> Self {
        GraphErr::new(400, code, None).msg(message)
    }

    fn msg(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The §4.3 shape, with `details` (or the code's usual details).
    fn wa(mut self, details: Option<&str>) -> Self {
        self.wa = true;
        self.details = Some(
            details
                .map(str::to_string)
                .unwrap_or_else(|| default_wa_details(self.code)),
        );
        self
    }

    fn into_response(self, trace: usize) -> Response {
        let mut err = Map::new();
        err.insert("message".into(), json!(self.message));
        err.insert("type".into(), json!("OAuthException"));
        err.insert("code".into(), json!(self.code));
        if let Some(sub) = self.subcode {
            err.insert("error_subcode".into(), json!(sub));
        }
        if self.transient {
            err.insert("is_transient".into(), json!(true));
        }
        if self.wa {
            err.insert(
                "error_data".into(),
                json!({"messaging_product": "whatsapp", "details": self.details.unwrap_or_default()}),
            );
        }
        err.insert("fbtrace_id".into(), json!(format!("AFakeTrace{trace:06}")));
        let mut resp = json_response(self.http, &json!({ "error": Value::Object(err) }));
        let h = resp.headers_mut();
        if self.code == 190
            && let Ok(v) = HeaderValue::from_str(&format!(
                "OAuth \"Facebook Platform\" \"invalid_token\" \"{}\"",
                self.message.replace('"', "'")
            ))
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Meta-like messages for the codes of §2.4 and §4.3 (clients must branch on codes, never on these).
fn default_message(code: i64, subcode: Option<i64>) -> String {
    let s = match (code, subcode) {
        (190, Some(463)) => "Error validating access token: Session has expired.",
        (190, Some(460)) => {
            "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons."
        }
        (190, Some(458)) => {
            "Error validating access token: The user has not authorized application."
        }
        (190, _) => "Invalid OAuth access token - Cannot parse access token",
        (10, Some(2018065)) => {
            "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview"
        }
        (10, Some(2018108)) => "(#10) This person isn't receiving messages from you right now.",
        (10, Some(2018278)) => "(#10) This thread is owned by another app.",
        (10, _) => "(#10) Application does not have permission for this action",
        (551, _) => "(#551) This person isn't available right now.",
        (100, Some(2018001)) => "(#100) No matching user found",
        (100, Some(2018109)) => "(#100) Attachment size exceeds allowable limit",
        (100, Some(33)) => {
            "Unsupported request. Object does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        }
        (100, _) => "(#100) Invalid parameter",
        (2, _) => "An unexpected error has occurred. Please retry your request later.",
        (4, _) => "(#4) Application request limit reached",
        (17, _) => "(#17) User request limit reached",
        (32, _) => "(#32) Page request limit reached",
        (613, _) => "(#613) Calls to this api have exceeded the rate limit.",
        (1200, _) => "(#1200) Temporary send message failure. Please try again later",
        (368, _) => {
            "(#368) The action attempted has been deemed abusive or is otherwise disallowed"
        }
        (200, Some(1545041)) => "(#200) This person isn't available right now.",
        (200, _) => "(#200) Permissions error",
        (2500, _) => "Unknown path components",
        _ => {
            return wa_title(code).map_or_else(
                || format!("(#{code}) Fake Graph error"),
                |t| format!("(#{code}) {t}"),
            );
        }
    };
    s.to_string()
}

/// The WhatsApp error titles of §4.3.
pub(crate) fn wa_title(code: i64) -> Option<&'static str> {
    Some(match code {
        131047 => "Re-engagement message",
        130429 => "Rate limit hit",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        131026 => "Message undeliverable",
        131051 => "Unsupported message type",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131000 => "Something went wrong",
        131016 => "Service unavailable",
        131057 => "Account in maintenance mode",
        131030 => "Recipient phone number not in allowed list",
        131048 => "Spam rate limit hit",
        131031 => "Account has been locked",
        131042 => "Business eligibility payment issue",
        131005 => "Access denied",
        133010 => "Phone number not registered",
        80007 => "Rate limit issues",
        132000 => "Template param count mismatch",
        132001 => "Template does not exist",
        _ => return None,
    })
}

fn default_wa_details(code: i64) -> String {
    match code {
        131047 => whatsapp_window_details().to_string(),
        130429 => "Cloud API message throughput has been reached.".into(),
        131056 => "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.".into(),
        c => wa_title(c).unwrap_or("Fake WhatsApp error").to_string(),
    }
}

/// What to do after routing: answer now, or sleep and route again (a scripted stall).
enum Step {
    Done(Response),
    Stall(Duration),
}

type R = Result<Step, GraphErr>;

fn done(v: Value) -> R {
    Ok(Step::Done(json_response(200, &v)))
}

fn json_response(status: u16, v: &Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

/// What Meta's edge answers on an outage: an HTML page, not JSON.
fn html_response(status: u16) -> Response {
    let mut resp = Response::new(Body::from(
        "<!DOCTYPE html><html><head><title>Facebook | Error</title></head><body><h1>Sorry, something went wrong.</h1></body></html>",
    ));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

pub(crate) async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_form(&raw_query);
    let headers = header_map(&parts.headers);
    let raw_body = String::from_utf8_lossy(&bytes).into_owned();
    let json_body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let is_form = headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        parse_form(&raw_body)
    } else {
        BTreeMap::new()
    };
    let path = parts.uri.path().to_string();
    let mut segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let version = if segs.first().is_some_and(|s| is_version(s)) {
        Some(segs.remove(0))
    } else {
        None
    };
    let index = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            raw_query,
            headers: headers.clone(),
            body: json_body.clone(),
            raw_body,
            status: 0,
        });
        st.requests.len() - 1
    };
    let mut ctx = Ctx {
        method: parts.method,
        path,
        version,
        segs,
        query,
        form,
        headers,
        json: json_body,
        after_stall: false,
    };
    let resp = loop {
        let step = {
            let mut st = shared.lock();
            match route(&shared, &mut st, &ctx) {
                Ok(step) => step,
                Err(e) => Step::Done(e.into_response(index + 1)),
            }
        };
        match step {
            Step::Done(resp) => break resp,
            Step::Stall(d) => {
                tokio::time::sleep(d).await;
                ctx.after_stall = true;
            }
        }
    };
    if let Some(r) = shared.lock().requests.get_mut(index) {
        r.status = resp.status().as_u16();
    }
    resp
}

/// `v25.0`, `v9.0`: any `/vNN.N/` prefix is accepted ("Conventions").
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let mut it = rest.splitn(2, '.');
    let major = it.next().unwrap_or("");
    let minor = it.next().unwrap_or("");
    !major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

fn parse_form(s: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
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

fn route(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    let segs: Vec<&str> = ctx.segs.iter().map(String::as_str).collect();
    let m = &ctx.method;
    if ctx.version.is_none() {
        // §5.3: the Instagram Login token endpoints have no version; the media download URL is ours.
        return match (m, segs.as_slice()) {
            (&Method::POST, ["oauth", "access_token"]) => ig_code_exchange(shared, st, ctx),
            (&Method::GET, ["access_token"]) => ig_exchange(shared, st, ctx),
            (&Method::GET, ["refresh_access_token"]) => ig_refresh(shared, st, ctx),
            (&Method::GET, ["media-download", id]) => media_download(shared, st, ctx, id),
            _ => Err(unknown_path(ctx)),
        };
    }
    match (m, segs.as_slice()) {
        (&Method::GET, ["oauth", "access_token"]) => oauth_exchange(shared, st, ctx),
        (&Method::GET, ["debug_token"]) => debug_token(shared, st, ctx),
        (&Method::GET, ["me"]) => me(shared, st, ctx),
        (&Method::GET, ["me", "accounts"]) => me_accounts(shared, st, ctx),
        (&Method::POST, ["me", "messages"]) => {
            let (token, kind) = auth(shared, st, ctx, 400, true)?;
            match kind {
                TokenKind::Page(p) => send_messaging(shared, st, ctx, token, Acct::Page(p)),
                TokenKind::IgLogin(ig) => send_messaging(shared, st, ctx, token, Acct::IgLogin(ig)),
                _ => Err(GraphErr::new(400, 190, None)
                    .msg("A Page or Instagram access token is required to send messages")),
            }
        }
        (_, ["me", "subscribed_apps"]) => {
            let (_, kind) = auth(shared, st, ctx, 400, true)?;
            match kind {
                TokenKind::Page(p) => subscribed_apps(shared, st, ctx, &p, SubKind::Page),
                TokenKind::IgLogin(ig) => subscribed_apps(shared, st, ctx, &ig, SubKind::Instagram),
                _ => Err(GraphErr::bad(
                    100,
                    "(#100) Unsupported request on this node type",
                )),
            }
        }
        (&Method::POST, [id, "messages"]) => send_to(shared, st, ctx, id),
        (_, [id, "subscribed_apps"]) => subscribed_to(shared, st, ctx, id),
        (&Method::GET, [id, "phone_numbers"]) => phone_numbers(shared, st, ctx, id),
        (&Method::POST, [id, "register"]) => register(shared, st, ctx, id),
        (&Method::DELETE, [id, "permissions"]) => delete_permissions(shared, st, ctx, id),
        (&Method::GET, [id]) => object(shared, st, ctx, id),
        _ => Err(unknown_path(ctx)),
    }
}

fn unknown_path(ctx: &Ctx) -> GraphErr {
    let hint = if ctx.version.is_none() {
        " (the fake wants a /vNN.N/ prefix on Graph paths)"
    } else {
        ""
    };
    GraphErr::new(400, 2500, None).msg(format!(
        "Unknown path components: {} {}{hint}",
        ctx.method, ctx.path
    ))
}

fn unsupported(ctx: &Ctx, id: &str) -> GraphErr {
    GraphErr::new(400, 100, Some(33)).msg(format!(
        "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
        ctx.method.as_str().to_ascii_lowercase()
    ))
}

/// Checks the request's token (§2.4 code 190: missing/unknown → no subcode; revoked or expired →
/// 463, §5.5) and its `appsecret_proof` (§2.3), answering `http` (400, or 401 on WhatsApp, §4.4).
fn auth(
    shared: &Shared,
    st: &State,
    ctx: &Ctx,
    http: u16,
    check_proof: bool,
) -> Result<(String, TokenKind), GraphErr> {
    let Some(token) = ctx.token() else {
        return Err(GraphErr::new(http, 190, None).msg(
            "An active access token must be used to query information about the current user.",
        ));
    };
    let kind = token_kind(st, &token).map_err(|sub| GraphErr::new(http, 190, sub))?;
    if check_proof {
        match ctx.param("appsecret_proof") {
            Some(p) if p != appsecret_proof(shared.app_secret.as_bytes(), &token) => {
                return Err(GraphErr::bad(
                    100,
                    "Invalid appsecret_proof provided in the API argument",
                ));
            }
            None if st.require_proof => {
                return Err(GraphErr::bad(
                    100,
                    "API calls from the server require an appsecret_proof argument",
                ));
            }
            _ => {}
        }
    }
    Ok((token, kind))
}

/// The token's kind, or the 190 subcode it fails with (`None` = unknown token).
fn token_kind(st: &State, token: &str) -> Result<TokenKind, Option<i64>> {
    let t = st.tokens.get(token).ok_or(None)?;
    if st.revoked.contains(token) || t.expires_at_ms.is_some_and(|e| e <= now_ms()) {
        return Err(Some(463));
    }
    Ok(t.kind.clone())
}

/// The account a Messenger-style send speaks for.
enum Acct {
    /// A Page (Messenger, or Instagram path A for IGSIDs of its linked account).
    Page(String),
    /// An Instagram Login account (path B).
    IgLogin(String),
}

fn send_to(shared: &Shared, st: &mut State, ctx: &Ctx, id: &str) -> R {
    if st.numbers.contains_key(id) {
        return send_whatsapp(shared, st, ctx, id);
    }
    let (token, kind) = auth(shared, st, ctx, 400, true)?;
    if st.pages.contains_key(id) {
        if kind != TokenKind::Page(id.to_string()) {
            return Err(GraphErr::new(400, 190, None).msg(format!(
                "Invalid OAuth access token for Page {id}: use that Page's access token"
            )));
        }
        return send_messaging(shared, st, ctx, token, Acct::Page(id.to_string()));
    }
    if st.ig_logins.contains_key(id) {
        if kind != TokenKind::IgLogin(id.to_string()) {
            return Err(GraphErr::new(400, 190, None).msg(format!(
                "Invalid OAuth access token for Instagram account {id}"
            )));
        }
        return send_messaging(shared, st, ctx, token, Acct::IgLogin(id.to_string()));
    }
    Err(unsupported(ctx, id))
}

/// Pops the next scripted behaviour for a message send (not after a stall it already consumed).
fn scripted(st: &mut State, ctx: &Ctx, wa: bool) -> Result<Option<Step>, GraphErr> {
    if ctx.after_stall {
        return Ok(None);
    }
    match st.script.pop_front() {
        None | Some(GraphBehavior::Ok) => Ok(None),
        Some(GraphBehavior::Stall(d)) => Ok(Some(Step::Stall(d))),
        Some(GraphBehavior::Status(code)) => Ok(Some(Step::Done(html_response(code)))),
        Some(GraphBehavior::Error {
            http_status,
            code,
            subcode,
            is_transient,
            retry_after,
        }) => {
            let mut e = GraphErr::new(http_status, code, subcode);
            e.transient = is_transient;
            e.retry_after = retry_after;
            Err(if wa { e.wa(None) } else { e })
        }
    }
}

/// `POST /{page-id}/messages`, `/me/messages` (Messenger §2.3/§2.5, Instagram path A) and
/// `POST /{ig-id}/messages` (Instagram path B, §3.3/§3.4).
fn send_messaging(shared: &Shared, st: &mut State, ctx: &Ctx, token: String, acct: Acct) -> R {
    let body = &ctx.json;
    if !body.is_object() {
        return Err(GraphErr::bad(
            100,
            "(#100) The request body must be a JSON object",
        ));
    }
    let Some(recipient) = body
        .pointer("/recipient/id")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .filter(|r| !r.is_empty())
    else {
        return Err(GraphErr::bad(
            100,
            "(#100) The parameter recipient is required",
        ));
    };
    let message = body.get("message");
    let action = body.get("sender_action");
    if message.is_some() == action.is_some() {
        return Err(GraphErr::bad(
            100,
            "(#100) Must send either message or sender_action, not both",
        ));
    }
    if message.is_some()
        && let Some(step) = scripted(st, ctx, false)?
    {
        return Ok(step);
    }

    // Messenger or Instagram: by who the recipient is (an IGSID of the Page's linked account).
    let (instagram, account_id) = match &acct {
        Acct::Page(p) => {
            let linked = st.pages.get(p).and_then(|pg| pg.ig_id.clone());
            match st.ig_users.get(&recipient) {
                Some(ig) if Some(ig) == linked.as_ref() => (true, ig.clone()),
                Some(_) => return Err(GraphErr::new(400, 100, Some(2018001))),
                None => (false, p.clone()),
            }
        }
        Acct::IgLogin(ig) => match st.ig_users.get(&recipient) {
            Some(other) if other != ig => return Err(GraphErr::new(400, 100, Some(2018001))),
            _ => (true, ig.clone()),
        },
    };
    let platform = if instagram { "instagram" } else { "messenger" };
    let Some(last) = st.last_inbound.get(&recipient).copied() else {
        return Err(GraphErr::new(400, 100, Some(2018001)));
    };
    let age = now_ms() - last;

    if let Some(action) = action {
        let a = action.as_str().unwrap_or("");
        if !["typing_on", "typing_off", "mark_seen", "react", "unreact"].contains(&a) {
            return Err(GraphErr::bad(
                100,
                "(#100) Param sender_action must be one of {typing_on, typing_off, mark_seen, react, unreact}",
            ));
        }
        if age > WINDOW_MS {
            return Err(GraphErr::new(400, 10, Some(2018065)));
        }
        st.sender_actions.push(SenderActionRecord {
            platform: platform.into(),
            account_id,
            recipient: recipient.clone(),
            action: a.to_string(),
        });
        return done(json!({ "recipient_id": recipient }));
    }

    let Some(msg) = message.filter(|m| m.is_object()) else {
        return Err(GraphErr::bad(100, "(#100) Param message must be an object"));
    };
    let text = msg.get("text");
    let attachment = msg.get("attachment");
    match (text, attachment) {
        (Some(_), Some(_)) => {
            return Err(GraphErr::bad(
                100,
                "(#100) Only one of message[text] or message[attachment] may be set",
            ));
        }
        (None, None) => {
            return Err(GraphErr::bad(
                100,
                "(#100) Param message must contain text or attachment",
            ));
        }
        _ => {}
    }
    let mut sent_text = String::new();
    if let Some(text) = text {
        let Some(t) = text.as_str().filter(|t| !t.is_empty()) else {
            return Err(GraphErr::bad(
                100,
                "(#100) Param message[text] must be a non-empty UTF-8 encoded string",
            ));
        };
        if instagram && t.len() > INSTAGRAM_TEXT_MAX_BYTES {
            return Err(GraphErr::bad(
                100,
                format!(
                    "(#100) Length of param message[text] must be less than or equal to {INSTAGRAM_TEXT_MAX_BYTES} bytes"
                ),
            ));
        }
        if !instagram && t.chars().count() > MESSENGER_TEXT_MAX_CHARS {
            return Err(GraphErr::bad(
                100,
                format!(
                    "(#100) Length of param message[text] must be less than or equal to {MESSENGER_TEXT_MAX_CHARS}"
                ),
            ));
        }
        sent_text = t.to_string();
    }
    if let Some(att) = attachment
        && (att.get("type").and_then(Value::as_str).is_none() || att.get("payload").is_none())
    {
        return Err(GraphErr::bad(
            100,
            "(#100) Param message[attachment] needs a type and a payload",
        ));
    }
    if msg
        .get("metadata")
        .and_then(Value::as_str)
        .is_some_and(|m| m.chars().count() > 1000)
    {
        return Err(GraphErr::bad(
            100,
            "(#100) Length of param message[metadata] must be less than or equal to 1000",
        ));
    }
    if msg
        .get("quick_replies")
        .and_then(Value::as_array)
        .is_some_and(|q| q.len() > 13)
    {
        return Err(GraphErr::bad(
            100,
            "(#100) Param message[quick_replies] must have at most 13 items",
        ));
    }

    let messaging_type = body.get("messaging_type").and_then(Value::as_str);
    let tag = body.get("tag").and_then(Value::as_str);
    match messaging_type {
        None | Some("RESPONSE" | "UPDATE" | "MESSAGE_TAG") => {}
        Some(_) => {
            return Err(GraphErr::bad(
                100,
                "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}",
            ));
        }
    }
    if messaging_type == Some("MESSAGE_TAG") && tag.is_none() {
        return Err(GraphErr::bad(
            100,
            "(#100) Param tag is required with messaging_type MESSAGE_TAG",
        ));
    }
    if tag.is_some() && matches!(messaging_type, Some("RESPONSE" | "UPDATE")) {
        return Err(GraphErr::bad(
            100,
            "(#100) Param tag is only allowed with messaging_type MESSAGE_TAG",
        ));
    }
    let allowed = if instagram {
        &MESSENGER_TAGS[..1]
    } else {
        &MESSENGER_TAGS[..]
    };
    if let Some(t) = tag
        && !allowed.contains(&t)
    {
        return Err(GraphErr::bad(
            100,
            format!("(#100) Param tag must be one of {{{}}}", allowed.join(", ")),
        ));
    }
    // §2.3/§3.3: 24 h for RESPONSE/UPDATE, 7 days for HUMAN_AGENT; Messenger's other tags are not
    // window-bound (they restrict content instead).
    let window = match tag {
        None => WINDOW_MS,
        Some("HUMAN_AGENT") => HUMAN_AGENT_WINDOW_MS,
        Some(_) => i64::MAX,
    };
    if age > window {
        return Err(GraphErr::new(400, 10, Some(2018065)));
    }

    let n = st.next();
    let message_id = if instagram {
        format!("aWdf{n}")
    } else {
        format!("m_{n}")
    };
    st.outbound_ids.insert(message_id.clone());
    st.sends.push(SentRecord {
        platform: platform.into(),
        path: ctx.path.clone(),
        account_id: account_id.clone(),
        recipient: recipient.clone(),
        text: sent_text.clone(),
        messaging_type: messaging_type.map(str::to_string),
        tag: tag.map(str::to_string),
        token,
        appsecret_proof: ctx.param("appsecret_proof").map(str::to_string),
        message_id: message_id.clone(),
        at: Instant::now(),
        body: body.clone(),
    });
    if st.echo_webhooks {
        let echo = if instagram {
            instagram_echo(&account_id, &recipient, &message_id, &sent_text, now_ms())
        } else {
            messenger_echo(
                &account_id,
                &recipient,
                &message_id,
                &sent_text,
                Some(&shared.app_id),
            )
        };
        st.pending.push(echo);
    }
    done(json!({ "recipient_id": recipient, "message_id": message_id }))
}

/// `POST /{phone-number-id}/messages` (§4.2, §4.4).
fn send_whatsapp(shared: &Shared, st: &mut State, ctx: &Ctx, pnid: &str) -> R {
    let (token, _) = auth(shared, st, ctx, 401, true)?;
    let Some(number) = st.numbers.get(pnid).cloned() else {
        return Err(unsupported(ctx, pnid));
    };
    if number.token != token {
        return Err(GraphErr::new(401, 190, None).msg(format!(
            "Invalid OAuth access token for phone number {pnid}"
        )));
    }
    let body = &ctx.json;
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(
            GraphErr::bad(100, "(#100) The parameter messaging_product is required.")
                .wa(Some("messaging_product must be \"whatsapp\"")),
        );
    }
    if let Some(status) = body.get("status") {
        if status.as_str() != Some("read") {
            return Err(GraphErr::bad(100, "(#100) Param status must be \"read\"").wa(None));
        }
        let id = body.get("message_id").and_then(Value::as_str).unwrap_or("");
        // Any `wamid.` id the fake did not issue itself counts as an inbound message.
        if !id.starts_with("wamid.") || st.outbound_ids.contains(id) {
            return Err(GraphErr::new(400, 131009, None)
                .wa(Some("Invalid message_id: not a received message")));
        }
        st.mark_reads.push(id.to_string());
        return done(json!({ "success": true }));
    }
    if let Some(step) = scripted(st, ctx, true)? {
        return Ok(step);
    }

    // Recipient: `to` (digits, `+` optional) wins over `recipient` (a BSUID) (§4.2).
    let to = body
        .get("to")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let (input, recipient, is_phone) = match (to, body.get("recipient").and_then(Value::as_str)) {
        (Some(to), _) => {
            let digits: String = to.chars().filter(char::is_ascii_digit).collect();
            if digits.is_empty() {
                return Err(GraphErr::new(400, 131009, None).wa(Some("Invalid parameter: to")));
            }
            (to.to_string(), digits, true)
        }
        (None, Some(r)) if !r.is_empty() => (r.to_string(), r.to_string(), false),
        _ => {
            return Err(GraphErr::new(400, 131008, None).wa(Some("The parameter to is required.")));
        }
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    if !WHATSAPP_TYPES.contains(&kind) {
        return Err(GraphErr::new(400, 131051, None).wa(Some(&format!(
            "Message type {kind} is not currently supported."
        ))));
    }
    let Some(content) = body.get(kind).filter(|c| c.is_object() || c.is_array()) else {
        return Err(GraphErr::new(400, 131008, None)
            .wa(Some(&format!("The parameter {kind} is required."))));
    };
    let missing = |what: &str| {
        GraphErr::new(400, 131008, None).wa(Some(&format!("The parameter {what} is required.")))
    };
    let invalid = |what: &str| GraphErr::new(400, 131009, None).wa(Some(what));
    let mut sent_text = String::new();
    match kind {
        "text" => {
            let Some(b) = content
                .get("body")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
            else {
                return Err(missing("text['body']"));
            };
            if b.chars().count() > WHATSAPP_TEXT_MAX_CHARS {
                return Err(invalid(&format!(
                    "Param text['body'] must be at most {WHATSAPP_TEXT_MAX_CHARS} characters long."
                )));
            }
            sent_text = b.to_string();
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            if content.get("id").is_none() && content.get("link").is_none() {
                return Err(missing(&format!("{kind}['id'] or {kind}['link']")));
            }
            if let Some(c) = content.get("caption").and_then(Value::as_str) {
                if c.chars().count() > 1024 {
                    return Err(invalid(
                        "Param caption must be at most 1024 characters long.",
                    ));
                }
                sent_text = c.to_string();
            }
        }
        "template" => {
            if content.get("name").and_then(Value::as_str).is_none() {
                return Err(missing("template['name']"));
            }
            if content
                .pointer("/language/code")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(missing("template['language']['code']"));
            }
        }
        "reaction" | "interactive" | "location" => {
            let needed: &[&str] = match kind {
                "reaction" => &["message_id"],
                "interactive" => &["type"],
                _ => &["latitude", "longitude"],
            };
            if let Some(field) = needed.iter().find(|f| content.get(**f).is_none()) {
                return Err(missing(&format!("{kind}['{field}']")));
            }
        }
        _ => {}
    }

    let n = st.next();
    let wamid = format!("wamid.OUT{n}");
    let now_s = now_ms() / 1000;
    let open = st
        .last_inbound
        .get(&recipient)
        .is_some_and(|t| now_ms() - t <= WINDOW_MS);
    let contacts = if is_phone {
        json!([{ "input": input, "wa_id": recipient }])
    } else {
        json!([{ "input": input, "user_id": recipient }])
    };
    let answer = json!({
        "messaging_product": "whatsapp",
        "contacts": contacts,
        "messages": [{ "id": wamid }],
    });
    if kind != "template" && !open {
        match st.window_mode {
            WindowMode::SyncError => return Err(GraphErr::new(400, 131047, None).wa(None)),
            WindowMode::AcceptThenFailStatus => {
                st.outbound_ids.insert(wamid.clone());
                let item = whatsapp_status_item(
                    &wamid,
                    "failed",
                    &recipient,
                    now_s,
                    Some((131047, "Re-engagement message")),
                );
                st.pending.push(whatsapp_statuses(
                    &number.waba_id,
                    pnid,
                    &number.display_phone,
                    vec![item],
                ));
                return done(answer);
            }
        }
    }
    st.outbound_ids.insert(wamid.clone());
    st.sends.push(SentRecord {
        platform: "whatsapp".into(),
        path: ctx.path.clone(),
        account_id: pnid.to_string(),
        recipient: recipient.clone(),
        text: sent_text,
        messaging_type: None,
        tag: None,
        token,
        appsecret_proof: ctx.param("appsecret_proof").map(str::to_string),
        message_id: wamid.clone(),
        at: Instant::now(),
        body: body.clone(),
    });
    let statuses = st.auto_statuses.clone();
    for s in statuses {
        let item = whatsapp_status_item(&wamid, &s, &recipient, now_s, None);
        st.pending.push(whatsapp_statuses(
            &number.waba_id,
            pnid,
            &number.display_phone,
            vec![item],
        ));
    }
    done(answer)
}

/// What a `subscribed_apps` id is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SubKind {
    Page,
    Waba,
    Instagram,
}

fn subscribed_to(shared: &Shared, st: &mut State, ctx: &Ctx, id: &str) -> R {
    let is_waba = st.numbers.values().any(|n| n.waba_id == id);
    let http = if is_waba { 401 } else { 400 };
    let (token, kind) = auth(shared, st, ctx, http, true)?;
    if st.pages.contains_key(id) {
        if kind != TokenKind::Page(id.to_string()) {
            return Err(GraphErr::new(400, 190, None)
                .msg(format!("Invalid OAuth access token for Page {id}: subscribing needs that Page's access token")));
        }
        return subscribed_apps(shared, st, ctx, id, SubKind::Page);
    }
    if is_waba {
        if !st
            .numbers
            .values()
            .any(|n| n.waba_id == id && n.token == token)
        {
            return Err(GraphErr::new(401, 190, None).msg(format!(
                "Invalid OAuth access token for WhatsApp Business Account {id}"
            )));
        }
        return subscribed_apps(shared, st, ctx, id, SubKind::Waba);
    }
    if st.ig_logins.contains_key(id) {
        if kind != TokenKind::IgLogin(id.to_string()) {
            return Err(GraphErr::new(400, 190, None).msg(format!(
                "Invalid OAuth access token for Instagram account {id}"
            )));
        }
        return subscribed_apps(shared, st, ctx, id, SubKind::Instagram);
    }
    Err(unsupported(ctx, id))
}

/// `POST|GET|DELETE …/subscribed_apps` (§5.1 step 6, §4.2, §3 table) once the token is checked.
fn subscribed_apps(shared: &Shared, st: &mut State, ctx: &Ctx, id: &str, kind: SubKind) -> R {
    let current = st.subscriptions.iter().position(|(s, _)| s == id);
    match ctx.method {
        Method::POST => {
            let fields: Vec<String> = ctx
                .param("subscribed_fields")
                .or_else(|| ctx.json.get("subscribed_fields").and_then(Value::as_str))
                .unwrap_or("")
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
            if kind != SubKind::Waba && fields.is_empty() {
                return Err(GraphErr::bad(
                    100,
                    "(#100) The parameter subscribed_fields is required.",
                ));
            }
            match current {
                Some(i) => st.subscriptions[i].1 = fields,
                None => st.subscriptions.push((id.to_string(), fields)),
            }
            done(json!({ "success": true }))
        }
        Method::DELETE => {
            if let Some(i) = current {
                st.subscriptions.remove(i);
            }
            done(json!({ "success": true }))
        }
        Method::GET => {
            let Some(i) = current else {
                return done(json!({ "data": [] }));
            };
            let fields = st.subscriptions[i].1.clone();
            let item = match kind {
                SubKind::Waba => json!({ "whatsapp_business_api_data": {
                    "id": shared.app_id, "link": "https://www.facebook.com/games/?app_id=fake", "name": APP_NAME } }),
                _ => json!({ "id": shared.app_id, "name": APP_NAME, "subscribed_fields": fields }),
            };
            done(json!({ "data": [item] }))
        }
        _ => Err(unknown_path(ctx)),
    }
}

fn user_token_response(token: &str) -> R {
    done(
        json!({ "access_token": token, "token_type": "bearer", "expires_in": LONG_LIVED_EXPIRES_IN }),
    )
}

/// `GET /{v}/oauth/access_token`: code exchange (§5.1 step 3, §5.4) and `fb_exchange_token` (step 4),
/// following §5.5: codes are single use and need the same `redirect_uri`, else 400 code 100 (the
/// subcodes 36007/36008/36009 are Meta's as remembered, unverified).
fn oauth_exchange(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    if ctx.param("client_id") != Some(shared.app_id.as_str()) {
        return Err(GraphErr::bad(
            100,
            "Error validating application. Invalid application ID.",
        ));
    }
    if ctx.param("client_secret") != Some(shared.app_secret.as_str()) {
        return Err(GraphErr::bad(100, "Error validating client secret."));
    }
    if ctx.param("grant_type") == Some("fb_exchange_token") {
        let old = ctx.param("fb_exchange_token").unwrap_or("");
        let uid = match token_kind(st, old) {
            Ok(TokenKind::User(uid)) => uid,
            Ok(_) => {
                return Err(GraphErr::new(400, 190, None)
                    .msg("fb_exchange_token must be a user access token"));
            }
            Err(sub) => return Err(GraphErr::new(400, 190, sub)),
        };
        let n = st.next();
        let token = format!("EAAFlong{n:06}");
        st.add_token(
            &token,
            TokenKind::User(uid),
            Some(now_ms() + LONG_LIVED_EXPIRES_IN * 1000),
        );
        return user_token_response(&token);
    }
    let Some(code) = ctx.param("code") else {
        return Err(GraphErr::bad(100, "Missing code parameter."));
    };
    let redirect = ctx.param("redirect_uri").unwrap_or("");
    let owner = check_code(st.codes.get_mut(code), redirect)
        .map_err(|(sub, msg)| GraphErr::new(400, 100, Some(sub)).msg(msg))?;
    let n = st.next();
    let token = format!("EAAFshort{n:06}");
    st.add_token(
        &token,
        TokenKind::User(owner),
        Some(now_ms() + LONG_LIVED_EXPIRES_IN * 1000),
    );
    user_token_response(&token)
}

/// Spends a code if it exists, is unused and `redirect` matches; else the subcode and message.
fn check_code(code: Option<&mut Code>, redirect: &str) -> Result<String, (i64, &'static str)> {
    let Some(c) = code else {
        return Err((36007, "Invalid verification code format."));
    };
    if c.used {
        return Err((36009, "This authorization code has been used."));
    }
    if c.redirect_uri != redirect {
        return Err((
            36008,
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        ));
    }
    c.used = true;
    Ok(c.owner.clone())
}

/// `GET /{v}/debug_token` (§5.2). The app token must be `{app-id}|{app-secret}`.
fn debug_token(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    if ctx.token().as_deref() != Some(shared.app_token().as_str()) {
        return Err(GraphErr::new(400, 190, None)
            .msg("Invalid OAuth access token signature. debug_token needs the app token {app-id}|{app-secret}."));
    }
    let Some(input) = ctx.param("input_token").filter(|t| !t.is_empty()) else {
        return Err(GraphErr::bad(
            100,
            "(#100) The parameter input_token is required",
        ));
    };
    if input == shared.app_token() {
        return done(json!({ "data": {
            "app_id": shared.app_id, "type": "APP", "application": APP_NAME, "is_valid": true, "scopes": [] } }));
    }
    let Some(t) = st.tokens.get(input).cloned() else {
        return done(json!({ "data": {
            "error": { "code": 190, "message": "Invalid OAuth access token." },
            "is_valid": false, "scopes": [] } }));
    };
    let now = now_ms();
    let revoked = st.revoked.contains(input);
    let expired = t.expires_at_ms.is_some_and(|e| e <= now);
    let mut d = Map::new();
    d.insert("app_id".into(), json!(shared.app_id));
    d.insert("application".into(), json!(APP_NAME));
    d.insert(
        "data_access_expires_at".into(),
        json!(now / 1000 + 90 * 86_400),
    );
    d.insert(
        "expires_at".into(),
        json!(t.expires_at_ms.map_or(0, |e| e / 1000)),
    );
    d.insert("issued_at".into(), json!(t.issued_at_ms / 1000));
    d.insert("is_valid".into(), json!(!revoked && !expired));
    let page_scopes = [
        "pages_show_list",
        "pages_messaging",
        "pages_manage_metadata",
        "pages_read_engagement",
    ];
    let ig_scopes = ["instagram_basic", "instagram_manage_messages"];
    let (ty, scopes, granular, user_id): (String, Vec<&str>, Vec<Value>, Option<String>) =
        match &t.kind {
            TokenKind::Page(p) => {
                let has_ig = st.pages.get(p).is_some_and(|pg| pg.ig_id.is_some());
                let mut scopes = page_scopes.to_vec();
                if has_ig {
                    scopes.extend(ig_scopes);
                }
                d.insert("profile_id".into(), json!(p));
                let manager = st
                    .users
                    .iter()
                    .find(|(_, u)| u.pages.contains(p))
                    .map(|(id, _)| id.clone());
                let granular = scopes
                    .iter()
                    .map(|s| json!({ "scope": s, "target_ids": [p] }))
                    .collect();
                ("PAGE".into(), scopes, granular, manager)
            }
            TokenKind::User(uid) => {
                let pages: Vec<String> = st
                    .users
                    .get(uid)
                    .map(|u| u.pages.clone())
                    .unwrap_or_default();
                let has_ig = pages
                    .iter()
                    .any(|p| st.pages.get(p).is_some_and(|pg| pg.ig_id.is_some()));
                let mut scopes = page_scopes.to_vec();
                if has_ig {
                    scopes.extend(ig_scopes);
                }
                let granular = scopes
                    .iter()
                    .map(|s| json!({ "scope": s, "target_ids": pages }))
                    .collect();
                ("USER".into(), scopes, granular, Some(uid.clone()))
            }
            TokenKind::SystemUser(sid) => {
                let wabas: Vec<String> = st
                    .numbers
                    .values()
                    .filter(|n| n.token == input)
                    .map(|n| n.waba_id.clone())
                    .collect();
                let scopes = vec![
                    "whatsapp_business_management",
                    "whatsapp_business_messaging",
                ];
                let granular = scopes
                    .iter()
                    .map(|s| json!({ "scope": s, "target_ids": wabas }))
                    .collect();
                (
                    st.system_user_type.clone(),
                    scopes,
                    granular,
                    Some(sid.clone()),
                )
            }
            TokenKind::IgLogin(ig) => {
                // Unverified: debug_token is a graph.facebook.com call; IG Login tokens are shown as USER.
                let scopes = vec![
                    "instagram_business_basic",
                    "instagram_business_manage_messages",
                ];
                ("USER".into(), scopes, Vec::new(), Some(ig.clone()))
            }
        };
    d.insert("type".into(), json!(ty));
    d.insert("scopes".into(), json!(scopes));
    if !granular.is_empty() {
        d.insert("granular_scopes".into(), json!(granular));
    }
    if let Some(u) = user_id {
        d.insert("user_id".into(), json!(u));
    }
    if revoked || expired {
        d.insert(
            "error".into(),
            json!({
            "code": 190, "subcode": 463, "message": default_message(190, Some(463)) }),
        );
    }
    done(json!({ "data": Value::Object(d) }))
}

/// Keeps the requested `fields` (plus `id`) of `all`, or `default` when none were asked for.
fn pick(ctx: &Ctx, all: Vec<(&str, Value)>, default: &[&str]) -> Value {
    let wanted: Vec<String> = ctx
        .fields()
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    let mut out = Map::new();
    for (k, v) in all {
        if (k == "id" || wanted.iter().any(|w| w == k)) && !v.is_null() {
            out.insert(k.to_string(), v);
        }
    }
    Value::Object(out)
}

/// `GET /{v}/me`: a user's `id,name` (§5.1), a Page's, or path B's `user_id,username,id` (§3.1, §3.4).
fn me(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    let (_, kind) = auth(shared, st, ctx, 400, true)?;
    let v = match kind {
        TokenKind::User(uid) => {
            let name = st
                .users
                .get(&uid)
                .map(|u| u.name.clone())
                .unwrap_or_default();
            pick(
                ctx,
                vec![("id", json!(uid)), ("name", json!(name))],
                &["id", "name"],
            )
        }
        TokenKind::Page(p) => {
            let name = st
                .pages
                .get(&p)
                .map(|pg| pg.name.clone())
                .unwrap_or_default();
            pick(
                ctx,
                vec![("id", json!(p)), ("name", json!(name))],
                &["id", "name"],
            )
        }
        TokenKind::SystemUser(sid) => pick(
            ctx,
            vec![("id", json!(sid)), ("name", json!("MT Desk system user"))],
            &["id", "name"],
        ),
        TokenKind::IgLogin(ig) => {
            let acc = st.ig_logins.get(&ig).cloned();
            let username = acc.as_ref().map(|a| a.username.clone()).unwrap_or_default();
            let id = acc.map(|a| a.app_scoped_id).unwrap_or_else(|| ig.clone());
            pick(
                ctx,
                vec![
                    ("user_id", json!(ig)),
                    ("username", json!(username)),
                    ("name", json!(username)),
                    ("account_type", json!("BUSINESS")),
                    ("id", json!(id)),
                ],
                &["user_id", "username"],
            )
        }
    };
    done(v)
}

const CURSOR_PREFIX: &str = "QVFIUmFrZA";

/// `GET /{v}/me/accounts` (§5.1 step 5): the user's Pages with their tokens, `tasks` and
/// `instagram_business_account`, paged by `limit` (default 25) and `after`.
fn me_accounts(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    let (token, kind) = auth(shared, st, ctx, 400, true)?;
    let TokenKind::User(uid) = kind else {
        return Err(GraphErr::bad(
            100,
            "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
        ));
    };
    let pages: Vec<String> = st
        .users
        .get(&uid)
        .map(|u| {
            u.pages
                .iter()
                .filter(|p| st.pages.contains_key(*p))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let limit = ctx
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(25);
    let start = ctx
        .param("after")
        .and_then(|a| a.strip_prefix(CURSOR_PREFIX))
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(0, |i| i + 1);
    let end = (start + limit).min(pages.len());
    let data: Vec<Value> = pages
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .filter_map(|id| {
            let pg = st.pages.get(id)?;
            Some(pick(
                ctx,
                vec![
                    ("access_token", json!(pg.token)),
                    ("category", json!("Shopping & retail")),
                    (
                        "category_list",
                        json!([{ "id": "200600219953504", "name": "Shopping & retail" }]),
                    ),
                    ("name", json!(pg.name)),
                    ("id", json!(id)),
                    ("tasks", json!(PAGE_TASKS)),
                    (
                        "instagram_business_account",
                        pg.ig_id
                            .as_ref()
                            .map_or(Value::Null, |ig| json!({ "id": ig })),
                    ),
                ],
                &[
                    "access_token",
                    "category",
                    "category_list",
                    "name",
                    "id",
                    "tasks",
                ],
            ))
        })
        .collect();
    if data.is_empty() {
        return done(json!({ "data": [] }));
    }
    let mut paging = json!({ "cursors": {
        "before": format!("{CURSOR_PREFIX}{start}"),
        "after": format!("{CURSOR_PREFIX}{}", end - 1),
    }});
    if end < pages.len() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("access_token", &token);
        if let Some(f) = ctx.param("fields") {
            q.append_pair("fields", f);
        }
        q.append_pair("limit", &limit.to_string());
        q.append_pair("after", &format!("{CURSOR_PREFIX}{}", end - 1));
        let base = super::lock(&shared.base).clone();
        let version = ctx.version.clone().unwrap_or_default();
        paging["next"] = json!(format!("{base}/{version}/me/accounts?{}", q.finish()));
    }
    done(json!({ "data": data, "paging": paging }))
}

/// `GET /{v}/{id}`: a Page (§3.1 `instagram_business_account`), a WhatsApp number, an IG account
/// (path A with the linked Page's token, path B with its own), a WhatsApp media id (§4.1) or a user.
fn object(shared: &Shared, st: &mut State, ctx: &Ctx, id: &str) -> R {
    let is_wa = st.numbers.contains_key(id) || st.media.contains_key(id);
    let (token, kind) = auth(shared, st, ctx, if is_wa { 401 } else { 400 }, true)?;
    let manages = |page: &str| match &kind {
        TokenKind::Page(p) => p == page,
        TokenKind::User(u) => st
            .users
            .get(u)
            .is_some_and(|u| u.pages.iter().any(|p| p == page)),
        _ => false,
    };
    if let Some(pg) = st.pages.get(id) {
        if !manages(id) {
            return Err(unsupported(ctx, id));
        }
        return done(pick(
            ctx,
            vec![
                ("id", json!(id)),
                ("name", json!(pg.name)),
                ("category", json!("Shopping & retail")),
                (
                    "instagram_business_account",
                    pg.ig_id
                        .as_ref()
                        .map_or(Value::Null, |ig| json!({ "id": ig })),
                ),
            ],
            &["id", "name"],
        ));
    }
    if let Some(n) = st.numbers.get(id) {
        if n.token != token {
            return Err(unsupported(ctx, id));
        }
        return done(pick(
            ctx,
            vec![
                ("verified_name", json!(VERIFIED_NAME)),
                ("code_verification_status", json!("VERIFIED")),
                ("display_phone_number", json!(n.display_phone)),
                ("quality_rating", json!("GREEN")),
                ("platform_type", json!("CLOUD_API")),
                ("id", json!(id)),
            ],
            &[
                "verified_name",
                "code_verification_status",
                "display_phone_number",
                "quality_rating",
                "id",
            ],
        ));
    }
    if let Some(prof) = st.ig_profiles.get(id) {
        let linked_page = st
            .pages
            .iter()
            .find(|(_, p)| p.ig_id.as_deref() == Some(id))
            .map(|(k, _)| k.clone());
        if linked_page.is_some_and(|p| manages(&p)) {
            return done(pick(
                ctx,
                vec![
                    ("id", json!(id)),
                    ("username", json!(prof.username)),
                    ("name", json!(prof.name)),
                ],
                &["id"],
            ));
        }
    }
    if let Some(acc) = st.ig_logins.get(id) {
        if kind != TokenKind::IgLogin(id.to_string()) {
            return Err(unsupported(ctx, id));
        }
        return done(pick(
            ctx,
            vec![
                ("id", json!(id)),
                ("user_id", json!(id)),
                ("username", json!(acc.username)),
                ("name", json!(acc.username)),
            ],
            &["id"],
        ));
    }
    if let Some(media) = st.media.get(id) {
        if !matches!(kind, TokenKind::SystemUser(_)) {
            return Err(unsupported(ctx, id));
        }
        let base = super::lock(&shared.base).clone();
        use sha2::Digest;
        let sha = super::sender::hex_lower(&sha2::Sha256::digest(&media.bytes));
        return done(json!({
            "messaging_product": "whatsapp",
            "url": format!("{base}/media-download/{id}?ext=1"),
            "mime_type": media.mime_type,
            "sha256": sha,
            "file_size": media.bytes.len(),
            "id": id,
        }));
    }
    if let TokenKind::User(uid) = &kind
        && uid == id
    {
        let name = st
            .users
            .get(uid)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        return done(pick(
            ctx,
            vec![("id", json!(id)), ("name", json!(name))],
            &["id", "name"],
        ));
    }
    Err(unsupported(ctx, id))
}

/// `GET /media-download/{id}`: the fake's CDN URL; needs the same Bearer (§4.1).
fn media_download(_shared: &Shared, st: &mut State, ctx: &Ctx, id: &str) -> R {
    let token = ctx.token().unwrap_or_default();
    if !matches!(token_kind(st, &token), Ok(TokenKind::SystemUser(_))) {
        return Err(GraphErr::new(401, 190, None).msg("Media downloads need the Bearer token"));
    }
    let Some(media) = st.media.get(id) else {
        return Ok(Step::Done(html_response(404)));
    };
    let mut resp = Response::new(Body::from(media.bytes.clone()));
    if let Ok(v) = HeaderValue::from_str(&media.mime_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(Step::Done(resp))
}

/// `GET /{v}/{waba-id}/phone_numbers` (§5.4).
fn phone_numbers(shared: &Shared, st: &mut State, ctx: &Ctx, waba: &str) -> R {
    let (token, _) = auth(shared, st, ctx, 401, true)?;
    let numbers: Vec<Value> = st
        .numbers
        .iter()
        .filter(|(_, n)| n.waba_id == waba && n.token == token)
        .map(|(id, n)| {
            json!({
            "verified_name": VERIFIED_NAME, "code_verification_status": "VERIFIED",
            "display_phone_number": n.display_phone, "quality_rating": "GREEN", "id": id })
        })
        .collect();
    if numbers.is_empty() {
        return Err(unsupported(ctx, waba));
    }
    done(json!({ "data": numbers, "paging": { "cursors": {
        "before": format!("{CURSOR_PREFIX}0"), "after": format!("{CURSOR_PREFIX}{}", numbers.len() - 1) } } }))
}

/// `POST /{v}/{phone-number-id}/register` (§5.4) → `{"success": true}`.
fn register(shared: &Shared, st: &mut State, ctx: &Ctx, pnid: &str) -> R {
    let (token, _) = auth(shared, st, ctx, 401, true)?;
    if st.numbers.get(pnid).is_none_or(|n| n.token != token) {
        return Err(unsupported(ctx, pnid));
    }
    let pin_ok = ctx
        .json
        .get("pin")
        .and_then(Value::as_str)
        .or_else(|| ctx.param("pin"))
        .is_some_and(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()));
    if !pin_ok {
        return Err(GraphErr::bad(100, "(#100) Param pin must be 6 digits").wa(None));
    }
    done(json!({ "success": true }))
}

/// `DELETE /{v}/{user-id}/permissions` (§5.1 step 7): the user's tokens stop working (code 190).
fn delete_permissions(shared: &Shared, st: &mut State, ctx: &Ctx, id: &str) -> R {
    let (_, kind) = auth(shared, st, ctx, 400, true)?;
    if kind != TokenKind::User(id.to_string()) {
        return Err(unsupported(ctx, id));
    }
    let theirs: Vec<String> = st
        .tokens
        .iter()
        .filter(|(_, t)| t.kind == TokenKind::User(id.to_string()))
        .map(|(k, _)| k.clone())
        .collect();
    st.revoked.extend(theirs);
    done(json!({ "success": true }))
}

/// The Instagram Login error shape of §5.3 step 2.
fn ig_oauth_error(message: &str) -> R {
    Ok(Step::Done(json_response(
        400,
        &json!({ "error_type": "OAuthException", "code": 400, "error_message": message }),
    )))
}

/// `POST /oauth/access_token` on api.instagram.com (§5.3 step 2, §5.5): form body, single-use code,
/// same `redirect_uri`; `{"data":[…]}` unless [`super::FakeMeta::instagram_code_response_flat`].
fn ig_code_exchange(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    if ctx.param("client_id") != Some(shared.app_id.as_str()) {
        return ig_oauth_error("Invalid platform app");
    }
    if ctx.param("client_secret") != Some(shared.app_secret.as_str()) {
        return ig_oauth_error("Error validating client secret.");
    }
    if ctx.param("grant_type") != Some("authorization_code") {
        return ig_oauth_error("Invalid grant_type: authorization_code is required");
    }
    let code = ctx.param("code").unwrap_or("").trim_end_matches("#_");
    let redirect = ctx.param("redirect_uri").unwrap_or("");
    let owner = match check_code(st.ig_codes.get_mut(code), redirect) {
        Ok(o) => o,
        Err((36008, _)) => {
            return ig_oauth_error(
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            );
        }
        Err(_) => return ig_oauth_error("Matching code was not found or was already used"),
    };
    let n = st.next();
    let token = format!("IGQshort{n:06}");
    st.add_token(
        &token,
        TokenKind::IgLogin(owner.clone()),
        Some(now_ms() + 3_600_000),
    );
    let item = json!({
        "access_token": token, "user_id": owner,
        "permissions": "instagram_business_basic,instagram_business_manage_messages" });
    if st.ig_code_flat {
        done(item)
    } else {
        done(json!({ "data": [item] }))
    }
}

/// `GET /access_token?grant_type=ig_exchange_token` on graph.instagram.com (§5.3 step 3).
fn ig_exchange(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    if ctx.param("grant_type") != Some("ig_exchange_token") {
        return Err(GraphErr::bad(
            100,
            "(#100) grant_type must be ig_exchange_token",
        ));
    }
    if ctx.param("client_secret") != Some(shared.app_secret.as_str()) {
        return Err(GraphErr::bad(100, "Error validating client secret."));
    }
    let (_, kind) = auth(shared, st, ctx, 400, false)?;
    let TokenKind::IgLogin(ig) = kind else {
        return Err(GraphErr::new(400, 190, None).msg("An Instagram User access token is required"));
    };
    let n = st.next();
    let token = format!("IGQlong{n:06}");
    st.add_token(
        &token,
        TokenKind::IgLogin(ig),
        Some(now_ms() + LONG_LIVED_EXPIRES_IN * 1000),
    );
    user_token_response(&token)
}

/// `GET /refresh_access_token?grant_type=ig_refresh_token` (§5.3 step 4, §5.5): tokens under 24 h
/// old or expired → 400 code 190. The old token stays valid until it expires.
fn ig_refresh(shared: &Shared, st: &mut State, ctx: &Ctx) -> R {
    if ctx.param("grant_type") != Some("ig_refresh_token") {
        return Err(GraphErr::bad(
            100,
            "(#100) grant_type must be ig_refresh_token",
        ));
    }
    let (old, kind) = auth(shared, st, ctx, 400, false)?;
    let TokenKind::IgLogin(ig) = kind else {
        return Err(GraphErr::new(400, 190, None).msg("An Instagram User access token is required"));
    };
    let issued = st.tokens.get(&old).map_or(0, |t| t.issued_at_ms);
    if now_ms() - issued < WINDOW_MS {
        return Err(GraphErr::new(400, 190, None)
            .msg("Error validating access token: the token must be at least 24 hours old to be refreshed"));
    }
    let n = st.next();
    let token = format!("IGQlong{n:06}");
    st.add_token(
        &token,
        TokenKind::IgLogin(ig),
        Some(now_ms() + LONG_LIVED_EXPIRES_IN * 1000),
    );
    user_token_response(&token)
}
