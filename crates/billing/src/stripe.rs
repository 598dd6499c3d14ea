//! A thin Stripe client on reqwest (external-apis.md §8.1–§8.3).
//!
//! - Base URL from `MTDESK_STRIPE_API_BASE` (tests point it at the fake in the testkit), `Authorization:
//!   Bearer <secret key>`, a pinned `Stripe-Version` so a change of the account's default API version
//!   never changes the shapes we read (§8.1).
//! - Bodies are `application/x-www-form-urlencoded` with bracket keys (`line_items[0][price]=…`), every
//!   value URL-encoded (§8.1).
//! - Every POST (and DELETE) carries an `Idempotency-Key` (UUID v4). 429, 5xx and connection failures are
//!   retried with exponential backoff **with the same key**, so a retry of a request Stripe already
//!   executed replays its first response instead of creating a second session (§8.1).
//! - Failures are typed from Stripe's error body `{"error":{"type","code","message","param"}}` (§8.1).

use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The API version every request pins (§8.1, §8.4: the basil shapes are what the webhook code reads).
pub const STRIPE_VERSION: &str = "2025-03-31.basil";

/// How the client is set up.
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or a fake's loopback URL (no trailing slash needed).
    pub api_base: String,
    /// `sk_live_…` / `sk_test_…` (or a restricted `rk_…` key).
    pub secret_key: String,
    /// Retries after the first attempt on 429, 5xx and connection failures.
    pub max_retries: u32,
    /// The wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl StripeConfig {
    /// Defaults: 3 retries starting at 500 ms, a 20 s timeout.
    pub fn new(api_base: &str, secret_key: &str) -> Self {
        Self {
            api_base: api_base.trim_end_matches('/').to_string(),
            secret_key: secret_key.to_string(),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(20),
        }
    }
}

/// A failed Stripe call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error body (§8.1). `kind` is its `type` (`invalid_request_error`,
    /// `api_error`, `card_error`, `idempotency_error`, …), `code` e.g. `resource_missing`.
    #[error("Stripe refused the request ({status} {kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Api {
        status: u16,
        kind: String,
        code: Option<String>,
        message: String,
        param: Option<String>,
    },
    /// Stripe could not be reached (after the retries).
    #[error("could not reach Stripe: {0}")]
    Transport(String),
    /// Stripe answered 2xx with a body we cannot read.
    #[error("unexpected answer from Stripe: {0}")]
    Decode(String),
}

impl StripeError {
    /// `resource_missing` (404): the object does not exist (e.g. an already deleted subscription).
    pub fn is_resource_missing(&self) -> bool {
        matches!(self, StripeError::Api { code: Some(c), .. } if c == "resource_missing")
    }
}

/// A form body with bracket keys, in insertion order (§8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` (`key` may hold brackets: `metadata[account_id]`).
    pub fn push(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// `application/x-www-form-urlencoded`: keys and values percent-encoded (brackets become `%5B`/`%5D`,
    /// `{CHECKOUT_SESSION_ID}` becomes `%7BCHECKOUT_SESSION_ID%7D`, which Stripe decodes before it
    /// substitutes the placeholder).
    pub fn encode(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// What a Checkout Session for a subscription needs (§8.2).
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The plan's Stripe price (`price_…`).
    pub price_id: String,
    /// Where Stripe sends the buyer after paying; may contain the literal `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    pub cancel_url: String,
    /// Our account id: `client_reference_id`, `metadata[account_id]` and
    /// `subscription_data[metadata][account_id]`, so every later event can be tied to the account.
    pub account_id: String,
    /// Our plan id, also put into both metadata objects (`plan_id`).
    pub plan_id: String,
    /// The account's Stripe customer once it has one (`customer=`); else its email (`customer_email=`,
    /// first purchase).
    pub customer: Option<String>,
    pub customer_email: String,
}

impl CheckoutRequest {
    /// The exact form of §8.2.
    pub fn form(&self) -> Form {
        let mut form = Form::new()
            .push("mode", "subscription")
            .push("line_items[0][price]", &self.price_id)
            .push("line_items[0][quantity]", "1")
            .push("success_url", &self.success_url)
            .push("cancel_url", &self.cancel_url)
            .push("client_reference_id", &self.account_id);
        form = match &self.customer {
            Some(c) => form.push("customer", c),
            None => form.push("customer_email", &self.customer_email),
        };
        form.push("metadata[account_id]", &self.account_id)
            .push("metadata[plan_id]", &self.plan_id)
            .push("subscription_data[metadata][account_id]", &self.account_id)
            .push("subscription_data[metadata][plan_id]", &self.plan_id)
    }
}

/// A created Checkout Session: redirect the buyer to `url` (§8.2).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// A created Customer Portal session: redirect to `url`; short-lived, create one per click (§8.3).
#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
}

/// The Stripe client. Cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    cfg: Arc<StripeConfig>,
    http: reqwest::Client,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl StripeClient {
    /// Installs ring as the process-wide rustls provider if none is installed (reqwest is built with
    /// `rustls-no-provider`).
    pub fn new(cfg: StripeConfig) -> Result<Self, StripeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mtdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                StripeError::Transport(format!("could not set up the HTTP client: {e}"))
            })?;
        Ok(Self {
            cfg: Arc::new(cfg),
            http,
        })
    }

    pub fn config(&self) -> &StripeConfig {
        &self.cfg
    }

    /// `POST /v1/checkout/sessions` (§8.2).
    pub async fn create_checkout_session(
        &self,
        req: &CheckoutRequest,
    ) -> Result<CheckoutSession, StripeError> {
        let body = self
            .send(
                reqwest::Method::POST,
                "/v1/checkout/sessions",
                Some(req.form()),
            )
            .await?;
        serde_json::from_value(body).map_err(|e| StripeError::Decode(e.to_string()))
    }

    /// `POST /v1/billing_portal/sessions` with `customer` and `return_url` (§8.3).
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<PortalSession, StripeError> {
        let form = Form::new()
            .push("customer", customer)
            .push("return_url", return_url);
        let body = self
            .send(
                reqwest::Method::POST,
                "/v1/billing_portal/sessions",
                Some(form),
            )
            .await?;
        serde_json::from_value(body).map_err(|e| StripeError::Decode(e.to_string()))
    }

    /// `DELETE /v1/subscriptions/{id}`: cancels at once (account deletion). A subscription Stripe no
    /// longer knows (`resource_missing`) counts as cancelled: returns `Ok(false)`.
    pub async fn cancel_subscription(&self, subscription_id: &str) -> Result<bool, StripeError> {
        let path = format!(
            "/v1/subscriptions/{}",
            url::form_urlencoded::byte_serialize(subscription_id.as_bytes()).collect::<String>()
        );
        match self.send(reqwest::Method::DELETE, &path, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_resource_missing() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One call with retries (§8.1): 429, 5xx and connection failures are retried with exponential
    /// backoff and the same `Idempotency-Key`; any other status is final.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<Form>,
    ) -> Result<Value, StripeError> {
        let url = format!("{}{}", self.cfg.api_base, path);
        let key = (method != reqwest::Method::GET).then(|| uuid::Uuid::new_v4().to_string());
        let body = form.map(|f| f.encode());
        let mut attempt = 0u32;
        loop {
            let mut rb = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.cfg.secret_key)
                .header("Stripe-Version", STRIPE_VERSION);
            if let Some(k) = &key {
                rb = rb.header("Idempotency-Key", k);
            }
            if let Some(b) = &body {
                rb = rb
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(b.clone());
            }
            let err = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return serde_json::from_str(&text)
                            .map_err(|e| StripeError::Decode(e.to_string()));
                    }
                    let err = api_error(status, &text);
                    if status != 429 && status < 500 {
                        return Err(err);
                    }
                    err
                }
                Err(e) => StripeError::Transport(error_chain(&e)),
            };
            if attempt >= self.cfg.max_retries {
                return Err(err);
            }
            let wait = self
                .cfg
                .initial_backoff
                .saturating_mul(1 << attempt.min(10));
            tracing::warn!(error = %err, attempt, path, "Stripe call failed; retrying with the same idempotency key");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Stripe's error body (§8.1) → a typed error; a body that is not one still yields the status.
fn api_error(status: u16, text: &str) -> StripeError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let e = &v["error"];
    let s = |k: &str| e[k].as_str().map(str::to_string);
    StripeError::Api {
        status,
        kind: s("type").unwrap_or_else(|| "api_error".into()),
        code: s("code"),
        message: s("message").unwrap_or_else(|| format!("HTTP {status}")),
        param: s("param"),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Billing as the app runs it: the client (when `MTDESK_STRIPE_SECRET_KEY` is set) and the webhook
/// endpoint secret (`MTDESK_STRIPE_WEBHOOK_SECRET`; without it webhooks are refused, never accepted
/// unverified).
#[derive(Clone)]
pub struct StripeBilling {
    pub client: StripeClient,
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for StripeBilling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeBilling")
            .field("client", &self.client)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_form_uses_brackets_and_encodes_the_placeholder() {
        let req = CheckoutRequest {
            price_id: "price_starter".into(),
            success_url:
                "https://desk.example.com/account/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}"
                    .into(),
            cancel_url: "https://desk.example.com/account/billing".into(),
            account_id: "acc 42".into(),
            plan_id: "starter".into(),
            customer: None,
            customer_email: "ann+x@example.com".into(),
        };
        let encoded = req.form().encode();
        assert!(encoded.starts_with("mode=subscription&line_items%5B0%5D%5Bprice%5D=price_starter&line_items%5B0%5D%5Bquantity%5D=1&"), "{encoded}");
        assert!(
            encoded.contains("session_id%3D%7BCHECKOUT_SESSION_ID%7D"),
            "{encoded}"
        );
        assert!(encoded.contains("customer_email=ann%2Bx%40example.com"));
        assert!(encoded.contains("metadata%5Baccount_id%5D=acc+42"));
        assert!(encoded.contains("subscription_data%5Bmetadata%5D%5Baccount_id%5D=acc+42"));
        assert!(!encoded.contains("customer="));
        let with_customer = CheckoutRequest {
            customer: Some("cus_1".into()),
            ..req
        };
        let encoded = with_customer.form().encode();
        assert!(encoded.contains("&customer=cus_1&"));
        assert!(!encoded.contains("customer_email"));
    }

    #[test]
    fn error_bodies_are_typed() {
        let e = api_error(
            404,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'","param":"customer"}}"#,
        );
        assert!(e.is_resource_missing());
        assert!(e.to_string().contains("No such customer"));
        let e = api_error(502, "<html>bad gateway</html>");
        assert!(matches!(e, StripeError::Api { status: 502, .. }));
        assert!(!e.is_resource_missing());
    }
}
