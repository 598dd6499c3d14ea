//! MT Desk's HTTP layer: the JSON API under `/api/v1`, `/healthz`, `/metrics`, and the plumbing the
//! dashboard shares (state, authentication, CSRF, errors, security headers).
//!
//! Handlers are thin: parse into domain types, call one function in [`services`] or the store, map the
//! result. Every route that touches account data takes the account from the token and passes it to the
//! store, which scopes every query by it: another account's id is a 404, never data.

pub mod api;
pub mod auth;
pub mod csv_import;
pub mod error;
pub mod extract;
pub mod knowledge;
pub mod meta_callbacks;
pub mod metrics;
pub mod services;
pub mod stripe_webhook;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mtdesk_storage::{FileStore, Store};
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;

pub use auth::PasswordParams;
pub use error::{ApiError, ApiResult};

/// What the web layer needs from the configuration, parsed once by the binary.
#[derive(Clone)]
pub struct WebConfig {
    /// Where users reach the service, e.g. `https://desk.example.com` (no trailing slash).
    pub public_url: String,
    /// Who runs this instance, as the Privacy Policy and Data Deletion pages name it.
    pub operator_name: String,
    /// Where people send privacy and deletion requests (`MTDESK_PRIVACY_EMAIL`).
    pub privacy_email: Option<String>,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    /// The instance secret (from `MTDESK_SECRET_KEY` or the generated key file): keys the CSRF HMAC.
    pub secret_key: Vec<u8>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub password: PasswordParams,
    pub session_ttl: Duration,
    /// Failed logins allowed per account and per IP within `throttle_window`.
    pub throttle_per_account: usize,
    pub throttle_per_ip: usize,
    pub throttle_window: Duration,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("public_url", &self.public_url)
            .field("secure_cookies", &self.secure_cookies)
            .field("secret_key", &"<redacted>")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub files: FileStore,
    /// Answers messages (retrieval, providers, fallback chain) and knows the provider endpoints.
    pub answerer: mtdesk_ai::Answerer,
    /// Knowledge sources, retrieval and the ingestion worker's wake-up.
    pub knowledge: knowledge::KnowledgeState,
    /// Meta channels: webhooks, connect/disconnect, replies, the inbox.
    pub channels: mtdesk_channels::ChannelService,
    /// The deletion engine (receipts) and Meta's deauthorize / data-deletion callbacks.
    pub privacy: mtdesk_privacy::Engine,
    /// The durable email outbox (delivered over SMTP when configured, see [`AppState::with_mailer`]).
    pub outbox: mtdesk_email::Outbox,
    /// "Download my data": requests, builds (the worker in `mtdesk::serve`), downloads and purges exports.
    pub exporter: mtdesk_privacy::export::Exporter,
    pub config: Arc<WebConfig>,
    pub throttle: Arc<auth::LoginThrottle>,
    pub metrics: Arc<metrics::Metrics>,
    /// A hash of a random password with the current parameters: verified against when an email is
    /// unknown, so a failed login costs the same either way.
    pub dummy_hash: String,
    /// Stripe billing (external-apis.md §8): `None` when `MTDESK_STRIPE_SECRET_KEY` is not set (billing
    /// off). Set with [`AppState::with_billing`].
    pub stripe: Option<Arc<mtdesk_billing::stripe::StripeBilling>>,
    /// How plans are assigned (billing on or off, `MTDESK_DEFAULT_PLAN`): every limit check and meter
    /// goes through it (`mtdesk_billing::limits`).
    pub plans: mtdesk_billing::plans::PlanPolicy,
}

impl AppState {
    /// Must run inside a Tokio runtime (the channel service starts its webhook writer).
    // Each part is built once by the binary's wiring and handed over here; a parameter struct would only
    // rename the list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        files: FileStore,
        config: WebConfig,
        ai: mtdesk_ai::AiConfig,
        knowledge: knowledge::KnowledgeState,
        meta: mtdesk_channels::MetaConfig,
        channel_work_store: Store,
        plans: mtdesk_billing::plans::PlanPolicy,
    ) -> anyhow::Result<Self> {
        let dummy_hash = config.password.hash_blocking(&auth::random_hex(16))?;
        let sealer = mtdesk_storage::Sealer::new(&config.secret_key, "provider-keys");
        let limiter = mtdesk_billing::limits::MessageLimiter::new(
            store.clone(),
            plans.clone(),
            mtdesk_email::Site {
                name: config.operator_name.clone(),
                public_url: config.public_url.clone(),
            },
        );
        let answerer = mtdesk_ai::Answerer::new(store.clone(), sealer, ai)
            .with_knowledge(knowledge.knowledge.clone())
            .with_limits(limiter);
        let channels = mtdesk_channels::ChannelService::new(
            store.clone(),
            channel_work_store,
            &config.secret_key,
            answerer.clone(),
            meta,
        );
        let privacy = mtdesk_privacy::Engine::new(
            store.clone(),
            channels.clone(),
            files.clone(),
            &config.secret_key,
        );
        let outbox = mtdesk_email::Outbox::new(
            store.clone(),
            mtdesk_email::Mailer::parse(None, &default_from(&config))?,
        );
        let privacy = privacy.with_mail(mail_context(&outbox, &config));
        Ok(Self {
            answerer,
            channels,
            privacy,
            outbox,
            exporter: mtdesk_privacy::export::Exporter::new(
                store.clone(),
                files.clone(),
                &config.secret_key,
            ),
            knowledge,
            store,
            files,
            throttle: Arc::new(auth::LoginThrottle::new(
                config.throttle_window,
                config.throttle_per_account,
                config.throttle_per_ip,
            )),
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            dummy_hash,
            stripe: None,
            plans,
        })
    }

    /// Delivers mail with `mailer` (from `MTDESK_SMTP_URL` and the From address); without it mails wait in
    /// the outbox.
    pub fn with_mailer(mut self, mailer: mtdesk_email::Mailer) -> Self {
        self.outbox = mtdesk_email::Outbox::new(self.store.clone(), mailer);
        self.privacy = self
            .privacy
            .clone()
            .with_mail(mail_context(&self.outbox, &self.config));
        self
    }
}

impl AppState {
    /// Turns billing on (external-apis.md §8): checkout, portal and webhooks use `stripe`, and account
    /// deletion cancels the account's subscription at Stripe first.
    pub fn with_billing(mut self, stripe: mtdesk_billing::stripe::StripeBilling) -> Self {
        let client = stripe.client.clone();
        self.privacy = self.privacy.clone().with_subscription_canceller(Arc::new(
            move |subscription: String| {
                let client = client.clone();
                Box::pin(async move {
                    client
                        .cancel_subscription(&subscription)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            },
        ));
        self.stripe = Some(Arc::new(stripe));
        self
    }
}

/// The whole application: API, health, metrics, plus the `pages` router (the dashboard), with the
/// layers every response gets: metrics, body limit, security headers, panic catching, tracing.
pub fn app(state: AppState, pages: Router<AppState>) -> Router {
    let metrics = state.metrics.clone();
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .nest("/api/v1", api::router())
        .merge(webhooks::router())
        .merge(meta_callbacks::router())
        .merge(stripe_webhook::router())
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!("request", method = %req.method(), path = %redacted_path(req.uri().path()))
                },
            ),
        )
        .with_state(state)
}

/// The request path as logged: never a query string (export links carry a token there), and the secret of
/// the emailed links (`/verify-email/…`, `/reset-password/…`, `/undo-email/…`) replaced by `…`.
pub fn redacted_path(path: &str) -> String {
    for prefix in ["/verify-email/", "/reset-password/", "/undo-email/"] {
        if path.starts_with(prefix) {
            return format!("{prefix}…");
        }
    }
    path.chars().take(200).collect()
}

/// Headers on every response: a strict CSP (no inline scripts, no framing), nosniff, no referrer leaks.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// `GET /healthz`: 200 when the database answers, 503 when it does not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable", "database": "unreachable"})),
            )
                .into_response()
        }
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The From address when `MTDESK_MAIL_FROM` is not set: `no-reply@` the public URL's host.
pub fn default_from(config: &WebConfig) -> String {
    let host = url::Url::parse(&config.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| h.contains('.') && h.bytes().any(|b| b.is_ascii_alphabetic()))
        .unwrap_or_else(|| "localhost.localdomain".into());
    format!("MT Desk <no-reply@{host}>")
}

fn mail_context(outbox: &mtdesk_email::Outbox, config: &WebConfig) -> mtdesk_privacy::Mail {
    mtdesk_privacy::Mail {
        outbox: outbox.clone(),
        site: mtdesk_email::Site {
            name: config.operator_name.clone(),
            public_url: config.public_url.clone(),
        },
        operator: config.privacy_email.clone(),
    }
}
