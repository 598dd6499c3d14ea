//! A fake Stripe, following external-apis.md §8.5: the API endpoints MT Desk calls, and a webhook sender
//! that signs events like Stripe does (§8.4).
//!
//! - Bodies are decoded as bracket forms (`line_items[0][price]=…` → nested objects, §8.1).
//! - `Authorization: Bearer sk_test_…` equal to the configured key, else 401 `invalid_request_error`.
//! - `POST /v1/checkout/sessions`: requires `mode`, `success_url` and known `line_items` prices → a
//!   `cs_test_*` session whose `url` is on this loopback server (§8.2).
//! - `POST /v1/billing_portal/sessions`: an unknown `customer` → 404 `resource_missing` (§8.3).
//! - `DELETE /v1/subscriptions/{id}`: cancels; unknown → 404 `resource_missing`.
//! - Idempotency (§8.1): the same `Idempotency-Key` with the same method, path and parameters replays the
//!   stored response; with other parameters → 400 `idempotency_error`. Scripted failures
//!   ([`FakeStripe::fail_next`]) are answered before execution and, like Stripe's 429s, not stored.
//! - Every request is recorded for assertions ([`FakeStripe::requests`]).
//! - Control: [`FakeStripe::complete_checkout`] creates the customer and subscription and POSTs signed
//!   `checkout.session.completed`, `customer.subscription.updated` and `invoice.paid` to the app's
//!   `/webhooks/stripe`, with [`Delivery`] options (stale or future `t`, wrong secret, two `v1`,
//!   duplicates, reversed order); [`FakeStripe::send_subscription_deleted`] and
//!   [`FakeStripe::send_payment_failed`] send the others.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::task::JoinHandle;

/// The billing name and country on every invoice the fake sends.
pub const BILLING_NAME: &str = "Lee Shoes GmbH";
pub const BILLING_COUNTRY: &str = "DE";

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeStripeConfig {
    /// The key to expect (`sk_test_…`).
    pub secret_key: String,
    /// The endpoint secret (`whsec_…`) the app verifies with: events are signed with it.
    pub webhook_secret: String,
    /// Known prices and their amounts in cents (USD).
    pub prices: Vec<(String, i64)>,
}

impl FakeStripeConfig {
    /// `sk_test_fake`, `whsec_fake_secret`, and the seeded plans' prices (`price_starter` 19.00,
    /// `price_pro` 99.00).
    pub fn new() -> Self {
        Self {
            secret_key: "sk_test_fake".into(),
            webhook_secret: "whsec_fake_secret".into(),
            prices: vec![("price_starter".into(), 1900), ("price_pro".into(), 9900)],
        }
    }
}

impl Default for FakeStripeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeRequest {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    /// The decoded form pairs, in order (`("line_items[0][price]", "price_starter")`).
    pub form: Vec<(String, String)>,
    /// The raw body as sent.
    pub raw_body: String,
}

impl StripeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The value of the form key `key` (brackets included), if sent.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How a webhook delivery is signed (§8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Signing {
    /// `t` = now, one correct `v1`.
    #[default]
    Valid,
    /// `t` 301 s … in the past (beyond the 300 s tolerance), correctly signed.
    Stale,
    /// `t` 400 s in the future, correctly signed.
    Future,
    /// Signed with another secret.
    WrongSecret,
    /// Two `v1`: one from an old secret, then the right one (a secret roll).
    TwoV1,
    /// Only a `v0` (the right HMAC, but a scheme that must be ignored).
    V0Only,
    /// No `Stripe-Signature` header.
    Missing,
}

/// Options of a webhook delivery run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    pub signing: Signing,
    /// Send every event twice.
    pub duplicate: bool,
    /// Send the events in reverse order.
    pub reversed: bool,
}

/// What [`FakeStripe::complete_checkout`] created and how the app answered each delivery.
#[derive(Debug, Clone)]
pub struct Completed {
    pub customer: String,
    pub subscription: String,
    pub invoice: String,
    /// The events as sent (before reversing/duplicating), in Stripe's order.
    pub events: Vec<Value>,
    /// (status, body) of each POST to the app, in the order sent.
    pub responses: Vec<(u16, String)>,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    form: Value,
    customer: Option<String>,
    customer_email: Option<String>,
    price: String,
}

#[derive(Debug, Clone)]
struct Subscription {
    customer: String,
    price: String,
    metadata: Value,
    status: String,
}

struct Stored {
    fingerprint: String,
    status: u16,
    body: Value,
}

struct Shared {
    cfg: FakeStripeConfig,
    base: Mutex<String>,
    requests: Mutex<Vec<StripeRequest>>,
    idempotency: Mutex<HashMap<String, Stored>>,
    sessions: Mutex<HashMap<String, Session>>,
    session_order: Mutex<Vec<String>>,
    customers: Mutex<Vec<String>>,
    subscriptions: Mutex<HashMap<String, Subscription>>,
    fail: Mutex<VecDeque<u16>>,
    webhook_url: Mutex<Option<String>>,
    counter: AtomicU64,
}

impl Shared {
    fn next_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{prefix}_{}{n:06}", uuid_fragment())
    }
}

fn uuid_fragment() -> String {
    // Unique across fakes in one test run without a uuid dependency: the time in ns, base 36.
    let mut n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        % 36u128.pow(8);
    let mut s = String::new();
    for _ in 0..8 {
        let d = (n % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    s
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake Stripe; stops when dropped.
pub struct FakeStripe {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `v1` = hex HMAC-SHA256(secret, "{t}.{body}") (§8.4).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Decodes a bracket form (§8.1) into nested objects: `a[b][0]=x` → `{"a":{"b":{"0":"x"}}}`.
pub fn decode_form(pairs: &[(String, String)]) -> Value {
    let mut root = Map::new();
    for (key, value) in pairs {
        let mut parts: Vec<String> = Vec::new();
        let (head, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        parts.push(head.to_string());
        for seg in rest.split('[').skip(1) {
            parts.push(seg.trim_end_matches(']').to_string());
        }
        let mut node = &mut root;
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                node.insert(part.clone(), Value::String(value.clone()));
            } else {
                let entry = node
                    .entry(part.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry {
                    Value::Object(m) => node = m,
                    _ => break,
                }
            }
        }
    }
    Value::Object(root)
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> (u16, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://docs.stripe.com/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    (status.as_u16(), json!({"error": e}))
}

impl FakeStripe {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(cfg: FakeStripeConfig) -> FakeStripe {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Arc::new(Shared {
            cfg,
            base: Mutex::new(String::new()),
            requests: Mutex::new(Vec::new()),
            idempotency: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            session_order: Mutex::new(Vec::new()),
            customers: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(HashMap::new()),
            fail: Mutex::new(VecDeque::new()),
            webhook_url: Mutex::new(None),
            counter: AtomicU64::new(0),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let (addr, server) = crate::spawn_server(router).await;
        *lock(&shared.base) = format!("http://{addr}");
        FakeStripe {
            addr,
            shared,
            server,
            http: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:PORT`: set as `MTDESK_STRIPE_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &FakeStripeConfig {
        &self.shared.cfg
    }

    /// Where signed events go: the app's `…/webhooks/stripe`.
    pub fn set_webhook_url(&self, url: &str) {
        *lock(&self.shared.webhook_url) = Some(url.to_string());
    }

    /// The next API request is answered with `status` (429 or 5xx, Stripe's error shape) before it runs.
    pub fn fail_next(&self, status: u16) {
        lock(&self.shared.fail).push_back(status);
    }

    /// Every API request received so far, in order (refused ones included).
    pub fn requests(&self) -> Vec<StripeRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to `path` (e.g. `/v1/checkout/sessions`).
    pub fn requests_to(&self, path: &str) -> Vec<StripeRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// A known customer (as if created in Stripe's dashboard): the portal accepts it.
    pub fn add_customer(&self, id: &str) {
        lock(&self.shared.customers).push(id.to_string());
    }

    /// The status of a subscription the fake created (`active`, `canceled`), `None` if unknown.
    pub fn subscription_status(&self, id: &str) -> Option<String> {
        lock(&self.shared.subscriptions)
            .get(id)
            .map(|s| s.status.clone())
    }

    /// The id of the last Checkout Session created.
    pub fn last_session_id(&self) -> Option<String> {
        lock(&self.shared.session_order).last().cloned()
    }

    /// A `Stripe-Signature` header value for `body` signed at `t` with the configured secret.
    pub fn signature_header(&self, body: &[u8], t: i64) -> String {
        format!(
            "t={t},v1={}",
            sign(&self.shared.cfg.webhook_secret, t, body)
        )
    }

    /// The header for `body` as `signing` says (`None`: no header).
    pub fn header_for(&self, body: &[u8], signing: Signing) -> Option<String> {
        let secret = &self.shared.cfg.webhook_secret;
        let now = now_secs();
        match signing {
            Signing::Valid => Some(self.signature_header(body, now)),
            Signing::Stale => Some(self.signature_header(body, now - 301 - 5)),
            Signing::Future => Some(self.signature_header(body, now + 400)),
            Signing::WrongSecret => Some(format!(
                "t={now},v1={}",
                sign("whsec_not_the_right_one", now, body)
            )),
            Signing::TwoV1 => Some(format!(
                "t={now},v1={},v1={}",
                sign("whsec_previous_secret", now, body),
                sign(secret, now, body)
            )),
            Signing::V0Only => Some(format!("t={now},v0={}", sign(secret, now, body))),
            Signing::Missing => None,
        }
    }

    /// POSTs `body` to the webhook URL with `signature` as the `Stripe-Signature` header (none if
    /// `None`). Returns the app's status and body.
    pub async fn post_raw(&self, body: &[u8], signature: Option<String>) -> (u16, String) {
        let url = lock(&self.shared.webhook_url)
            .clone()
            .expect("set_webhook_url first");
        let mut rb = self
            .http
            .post(url)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(s) = signature {
            rb = rb.header("Stripe-Signature", s);
        }
        let resp = rb.send().await.expect("webhook POST");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Signs (per `signing`) and POSTs one event.
    pub async fn post_event(&self, event: &Value, signing: Signing) -> (u16, String) {
        let body = serde_json::to_vec(event).expect("event JSON");
        let header = self.header_for(&body, signing);
        self.post_raw(&body, header).await
    }

    /// An event envelope (§8.4) around `object`, created at `created` (unix seconds).
    pub fn event(&self, kind: &str, created: i64, object: Value) -> Value {
        let mut e = json!({
            "id": self.shared.next_id("evt"),
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created,
            "type": kind,
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": self.shared.next_id("req"), "idempotency_key": null},
            "data": {"object": object},
        });
        if kind.ends_with(".updated") {
            e["data"]["previous_attributes"] = json!({"status": "incomplete"});
        }
        e
    }

    fn subscription_object(&self, id: &str, sub: &Subscription) -> Value {
        let now = now_secs();
        json!({
            "id": id,
            "object": "subscription",
            "customer": sub.customer,
            "status": sub.status,
            "cancel_at_period_end": false,
            "metadata": sub.metadata,
            "items": {"object": "list", "data": [{
                "id": self.shared.next_id("si"),
                "object": "subscription_item",
                "price": {"id": sub.price, "object": "price", "currency": "usd"},
                "quantity": 1,
                "current_period_start": now,
                "current_period_end": now + 30 * 86_400,
            }]},
        })
    }

    fn invoice_object(&self, id: &str, sub_id: &str, sub: &Subscription, status: &str) -> Value {
        let amount = self
            .shared
            .cfg
            .prices
            .iter()
            .find(|(p, _)| *p == sub.price)
            .map(|(_, a)| *a)
            .unwrap_or(0);
        let paid = status == "paid";
        json!({
            "id": id,
            "object": "invoice",
            "customer": sub.customer,
            "status": status,
            "number": format!("MTD-{}", &id[id.len().saturating_sub(6)..]),
            "amount_due": amount,
            "amount_paid": if paid { amount } else { 0 },
            "currency": "usd",
            "created": now_secs(),
            "customer_name": BILLING_NAME,
            "customer_address": {"country": BILLING_COUNTRY},
            "hosted_invoice_url": format!("{}/invoice/{id}", self.base_url()),
            "attempt_count": 1,
            "next_payment_attempt": if paid { Value::Null } else { json!(now_secs() + 3 * 86_400) },
            // basil (§8.4): the subscription link moved under `parent`.
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": sub_id,
                "metadata": sub.metadata,
            }},
        })
    }

    /// Pays the Checkout Session `session_id`: creates (or reuses) the customer and the subscription and
    /// POSTs signed `checkout.session.completed`, `customer.subscription.updated` and `invoice.paid` (one
    /// second apart in `created`) to the webhook URL, as `delivery` says.
    pub async fn complete_checkout(&self, session_id: &str, delivery: Delivery) -> Completed {
        let session = lock(&self.shared.sessions)
            .get(session_id)
            .cloned()
            .expect("a Checkout Session created through the API");
        let customer = session
            .customer
            .clone()
            .unwrap_or_else(|| self.shared.next_id("cus"));
        {
            let mut customers = lock(&self.shared.customers);
            if !customers.contains(&customer) {
                customers.push(customer.clone());
            }
        }
        let subscription_id = self.shared.next_id("sub");
        let sub = Subscription {
            customer: customer.clone(),
            price: session.price.clone(),
            metadata: session.form["subscription_data"]["metadata"].clone(),
            status: "active".into(),
        };
        lock(&self.shared.subscriptions).insert(subscription_id.clone(), sub.clone());
        let invoice = self.shared.next_id("in");
        let t0 = now_secs() - 10;
        let completed = json!({
            "id": session.id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "customer": customer,
            "customer_email": session.customer_email,
            "subscription": subscription_id,
            "client_reference_id": session.form["client_reference_id"],
            "metadata": session.form["metadata"],
            "livemode": false,
        });
        let events = vec![
            self.event("checkout.session.completed", t0, completed),
            self.event(
                "customer.subscription.updated",
                t0 + 1,
                self.subscription_object(&subscription_id, &sub),
            ),
            self.event(
                "invoice.paid",
                t0 + 2,
                self.invoice_object(&invoice, &subscription_id, &sub, "paid"),
            ),
        ];
        let responses = self.deliver(&events, delivery).await;
        Completed {
            customer,
            subscription: subscription_id,
            invoice,
            events,
            responses,
        }
    }

    async fn deliver(&self, events: &[Value], delivery: Delivery) -> Vec<(u16, String)> {
        let mut order: Vec<&Value> = events.iter().collect();
        if delivery.reversed {
            order.reverse();
        }
        let mut responses = Vec::new();
        for e in order {
            let times = if delivery.duplicate { 2 } else { 1 };
            for _ in 0..times {
                responses.push(self.post_event(e, delivery.signing).await);
            }
        }
        responses
    }

    /// The subscription ended (cancelled in the portal, or unpaid for good): POSTs a signed
    /// `customer.subscription.deleted` (`created` now) and marks it canceled here.
    pub async fn send_subscription_deleted(
        &self,
        subscription_id: &str,
        signing: Signing,
    ) -> (u16, String) {
        let sub = {
            let mut subs = lock(&self.shared.subscriptions);
            let sub = subs
                .get_mut(subscription_id)
                .expect("a subscription of this fake");
            sub.status = "canceled".into();
            sub.clone()
        };
        let event = self.event(
            "customer.subscription.deleted",
            now_secs(),
            self.subscription_object(subscription_id, &sub),
        );
        self.post_event(&event, signing).await
    }

    /// A renewal payment failed: POSTs a signed `invoice.payment_failed` for `invoice_id` (a new invoice
    /// when `None`; pass the same id again for a retried attempt of the same invoice). Returns the invoice
    /// id and the app's answer.
    pub async fn send_payment_failed(
        &self,
        subscription_id: &str,
        invoice_id: Option<&str>,
        signing: Signing,
    ) -> (String, (u16, String)) {
        let sub = lock(&self.shared.subscriptions)
            .get(subscription_id)
            .cloned()
            .expect("a subscription of this fake");
        let invoice = invoice_id
            .map(str::to_string)
            .unwrap_or_else(|| self.shared.next_id("in"));
        let event = self.event(
            "invoice.payment_failed",
            now_secs(),
            self.invoice_object(&invoice, subscription_id, &sub, "open"),
        );
        let answer = self.post_event(&event, signing).await;
        (invoice, answer)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let raw = String::from_utf8_lossy(&bytes).to_string();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    lock(&shared.requests).push(StripeRequest {
        method: method.to_string(),
        path: path.clone(),
        headers: header_map(&parts.headers),
        form: form.clone(),
        raw_body: raw,
    });
    // The hosted Checkout page: a "Pay" button; paying sends the browser to the session's success_url
    // with `{CHECKOUT_SESSION_ID}` filled in, as Stripe does. The webhooks follow separately (the test
    // sends them with `complete_checkout`), as Stripe's come asynchronously.
    if let Some(id) = path.strip_prefix("/checkout/") {
        let session = lock(&shared.sessions).get(id).cloned();
        let Some(session) = session else {
            return (StatusCode::NOT_FOUND, Html("no such Checkout Session")).into_response();
        };
        if method == Method::POST {
            let to = session.form["success_url"]
                .as_str()
                .unwrap_or("/")
                .replace("{CHECKOUT_SESSION_ID}", id);
            return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
        }
        return Html(format!(
            "<!doctype html><title>Fake Stripe Checkout</title><h1>Pay for {price}</h1>\
             <form method=\"post\" action=\"/checkout/{id}\"><button id=\"pay\" type=\"submit\">Pay</button></form>",
            price = session.price
        ))
        .into_response();
    }
    // Loopback pages standing in for Stripe's portal and invoice pages.
    if method == Method::GET && !path.starts_with("/v1/") {
        return Html(format!(
            "<!doctype html><title>Fake Stripe</title><p>{path}</p>"
        ))
        .into_response();
    }
    let (status, body) = api(&shared, &parts.headers, &method, &path, &form);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn api(
    shared: &Shared,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    form: &[(String, String)],
) -> (u16, Value) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = auth.strip_prefix("Bearer ").unwrap_or("");
    if !key.starts_with("sk_test_") || key != shared.cfg.secret_key {
        let message = if key.is_empty() {
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".to_string()
        } else {
            "Invalid API Key provided.".to_string()
        };
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            &message,
            None,
        );
    }
    if let Some(status) = lock(&shared.fail).pop_front() {
        let kind = if status == 429 {
            "invalid_request_error"
        } else {
            "api_error"
        };
        let code = (status == 429).then_some("rate_limit");
        return stripe_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            kind,
            code,
            "Scripted failure of the fake Stripe server.",
            None,
        );
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut sorted = form.to_vec();
    sorted.sort();
    let fingerprint = format!("{method} {path} {sorted:?}");
    if let Some(k) = &idempotency_key {
        if k.len() > 255 {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                "Idempotency-Key is longer than 255 characters.",
                None,
            );
        }
        if let Some(stored) = lock(&shared.idempotency).get(k) {
            if stored.fingerprint == fingerprint {
                return (stored.status, stored.body.clone());
            }
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                None,
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."
                ),
                None,
            );
        }
    }
    let (status, body) = execute(shared, method, path, form);
    if let Some(k) = idempotency_key
        && *method != Method::GET
    {
        lock(&shared.idempotency).insert(
            k,
            Stored {
                fingerprint,
                status,
                body: body.clone(),
            },
        );
    }
    (status, body)
}

fn execute(
    shared: &Shared,
    method: &Method,
    path: &str,
    form: &[(String, String)],
) -> (u16, Value) {
    let params = decode_form(form);
    let s = |v: &Value| v.as_str().map(str::to_string);
    match (method.clone(), path) {
        (Method::POST, "/v1/checkout/sessions") => {
            let Some(mode) = s(&params["mode"]) else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: mode.",
                    Some("mode"),
                );
            };
            if mode != "subscription" && mode != "payment" && mode != "setup" {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_invalid_string"),
                    "Invalid mode.",
                    Some("mode"),
                );
            }
            if s(&params["success_url"]).is_none() {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: success_url.",
                    Some("success_url"),
                );
            }
            let Some(price) = s(&params["line_items"]["0"]["price"]) else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: line_items[0][price].",
                    Some("line_items[0][price]"),
                );
            };
            if !shared.cfg.prices.iter().any(|(p, _)| *p == price) {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such price: '{price}'"),
                    Some("line_items[0][price]"),
                );
            }
            let customer = s(&params["customer"]);
            if let Some(c) = &customer
                && !lock(&shared.customers).contains(c)
            {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such customer: '{c}'"),
                    Some("customer"),
                );
            }
            let id = shared.next_id("cs_test");
            let url = format!("{}/checkout/{id}", lock(&shared.base));
            lock(&shared.session_order).push(id.clone());
            lock(&shared.sessions).insert(
                id.clone(),
                Session {
                    id: id.clone(),
                    form: params.clone(),
                    customer: customer.clone(),
                    customer_email: s(&params["customer_email"]),
                    price,
                },
            );
            (
                200,
                json!({
                    "id": id,
                    "object": "checkout.session",
                    "mode": mode,
                    "status": "open",
                    "payment_status": "unpaid",
                    "url": url,
                    "customer": customer,
                    "subscription": null,
                    "client_reference_id": params["client_reference_id"],
                    "metadata": params.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    "expires_at": now_secs() + 86_400,
                    "livemode": false,
                }),
            )
        }
        (Method::POST, "/v1/billing_portal/sessions") => {
            let Some(customer) = s(&params["customer"]) else {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: customer.",
                    Some("customer"),
                );
            };
            if !lock(&shared.customers).contains(&customer) {
                return stripe_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such customer: '{customer}'"),
                    Some("customer"),
                );
            }
            let id = shared.next_id("bps");
            (
                200,
                json!({
                    "id": id,
                    "object": "billing_portal.session",
                    "customer": customer,
                    "url": format!("{}/portal/{id}", lock(&shared.base)),
                    "return_url": params["return_url"],
                    "livemode": false,
                }),
            )
        }
        (Method::DELETE, p) if p.starts_with("/v1/subscriptions/") => {
            let id = &p["/v1/subscriptions/".len()..];
            let mut subs = lock(&shared.subscriptions);
            match subs.get_mut(id) {
                Some(sub) if sub.status != "canceled" => {
                    sub.status = "canceled".into();
                    (
                        200,
                        json!({"id": id, "object": "subscription", "status": "canceled", "customer": sub.customer}),
                    )
                }
                _ => stripe_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such subscription: '{id}'"),
                    Some("id"),
                ),
            }
        }
        (Method::GET, p) if p.starts_with("/v1/checkout/sessions/") => {
            let id = &p["/v1/checkout/sessions/".len()..];
            match lock(&shared.sessions).get(id) {
                Some(sess) => (
                    200,
                    json!({"id": sess.id, "object": "checkout.session", "status": "open", "customer": sess.customer}),
                ),
                None => stripe_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("resource_missing"),
                    &format!("No such checkout.session: '{id}'"),
                    Some("session"),
                ),
            }
        }
        _ => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            None,
            &format!("Unrecognized request URL ({method}: {path})."),
            None,
        ),
    }
}

fn header_map(h: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in h {
        let v = v.to_str().unwrap_or("").to_string();
        out.entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_forms_decode_into_nested_objects() {
        let pairs = vec![
            ("mode".to_string(), "subscription".to_string()),
            (
                "line_items[0][price]".to_string(),
                "price_starter".to_string(),
            ),
            (
                "subscription_data[metadata][account_id]".to_string(),
                "a1".to_string(),
            ),
        ];
        let v = decode_form(&pairs);
        assert_eq!(v["mode"], "subscription");
        assert_eq!(v["line_items"]["0"]["price"], "price_starter");
        assert_eq!(v["subscription_data"]["metadata"]["account_id"], "a1");
    }

    #[test]
    fn the_fake_signs_the_reference_vector() {
        assert_eq!(
            sign(
                "whsec_test_secret",
                1_700_000_000,
                br#"{"id":"evt_test_1","object":"event","type":"invoice.paid"}"#
            ),
            "3e3e661992c26c45d9105cbea450acc1a34f8c6dbafbd891f858c6fd9054fe3e"
        );
    }
}
