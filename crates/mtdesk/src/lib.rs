//! The `mtdesk` binary's wiring: settings → store → state → router → server. No business logic here.

pub mod operator;
pub mod plans_cli;
pub mod settings;

use anyhow::Context;
use mtdesk_http::{AppState, WebConfig};
use mtdesk_storage::{DatabaseUrl, FileStore, Store};
use settings::Settings;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;

/// Opens the database and applies pending migrations. With the default SQLite location the data
/// directory is created first; an explicit SQLite URL must point into an existing directory.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    ensure_default_data_dir(settings)?;
    Store::open(&settings.database_url)
        .await
        .with_context(|| format!("opening the database {}", settings.database_url.redacted()))
}

/// Connects without migrating (for `mtdesk migrate`, which reports what it applies).
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    ensure_default_data_dir(settings)?;
    Store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening the database {}", settings.database_url.redacted()))
}

fn ensure_default_data_dir(settings: &Settings) -> anyhow::Result<()> {
    if settings.database_is_default {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    Ok(())
}

/// The instance secret: `MTDESK_SECRET_KEY`, or the key in `<data dir>/secret_key`, generated (mode 0600)
/// on first start. Returns the key and whether it was just generated.
pub fn load_or_create_secret(settings: &Settings) -> anyhow::Result<(Vec<u8>, bool)> {
    if let Some(k) = &settings.secret_key {
        return Ok((k.expose().as_bytes().to_vec(), false));
    }
    let path = settings.data_dir.join("secret_key");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok((s.trim().as_bytes().to_vec(), false)),
        Ok(_) => anyhow::bail!(
            "{} is shorter than 32 characters; delete it to generate a new key, or set MTDESK_SECRET_KEY",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let key = mtdesk_http::auth::random_hex(32);
    write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok((key.into_bytes(), true))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

pub fn web_config(settings: &Settings, secret_key: Vec<u8>) -> WebConfig {
    WebConfig {
        public_url: settings.public_url.clone(),
        operator_name: settings.operator_name.clone(),
        privacy_email: settings.privacy_email.clone(),
        secure_cookies: settings.secure_cookies(),
        secret_key,
        max_body_bytes: settings.max_body_bytes,
        password: settings.password,
        session_ttl: Duration::from_secs(14 * 24 * 3600),
        throttle_per_account: 5,
        throttle_per_ip: 30,
        throttle_window: Duration::from_secs(15 * 60),
    }
}

/// Everything `serve` needs, from settings: database (migrated), secret, state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let store = open_store(settings).await?;
    let (secret, generated) = load_or_create_secret(settings)?;
    if generated {
        tracing::warn!(
            path = %settings.data_dir.join("secret_key").display(),
            "MTDESK_SECRET_KEY is not set: generated a new secret key into the data directory (mode 0600); keep it with your backups"
        );
    }
    let files = FileStore::new(&settings.data_dir);
    let config = web_config(settings, secret);
    let knowledge = knowledge_state(settings, store.clone());
    let work = store
        .for_background_work(&settings.database_url)
        .await
        .context("opening the channel worker's database connections")?;
    let from = settings
        .mail_from
        .clone()
        .unwrap_or_else(|| mtdesk_http::default_from(&config));
    let mailer = mtdesk_email::Mailer::parse(settings.smtp_url.as_ref().map(|s| s.expose()), &from)
        .context("MTDESK_SMTP_URL / MTDESK_MAIL_FROM")?;
    let state = AppState::new(
        store,
        files,
        config,
        ai_config(settings),
        knowledge,
        meta_config(settings),
        work,
        plan_policy(settings),
    )?
    .with_mailer(mailer);
    state
        .plans
        .check(&state.store)
        .await
        .map_err(|e| anyhow::anyhow!("plans: {e}"))?;
    Ok(match stripe_billing(settings)? {
        Some(stripe) => state.with_billing(stripe),
        None => state,
    })
}

/// How plans are assigned: billing is on with `MTDESK_STRIPE_SECRET_KEY`; without it every account is on
/// `MTDESK_DEFAULT_PLAN` (checked to exist at start-up by `build_state`).
pub fn plan_policy(settings: &Settings) -> mtdesk_billing::plans::PlanPolicy {
    mtdesk_billing::plans::PlanPolicy {
        billing_enabled: settings.stripe.secret_key.is_some(),
        default_plan: settings.default_plan.clone(),
    }
}

/// Stripe billing from settings (external-apis.md §8): `None` without `MTDESK_STRIPE_SECRET_KEY` (billing
/// off; `Settings::disabled_features` says so at start-up). Without `MTDESK_STRIPE_WEBHOOK_SECRET` the
/// webhook endpoint refuses every delivery.
pub fn stripe_billing(
    settings: &Settings,
) -> anyhow::Result<Option<mtdesk_billing::stripe::StripeBilling>> {
    let s = &settings.stripe;
    let Some(key) = &s.secret_key else {
        return Ok(None);
    };
    let mut cfg = mtdesk_billing::stripe::StripeConfig::new(&s.api_base, key.expose());
    if s.api_base.starts_with("http://127.0.0.1") || s.api_base.starts_with("http://localhost") {
        // A loopback fake (tests, local development): retry at once instead of waiting seconds.
        cfg.initial_backoff = Duration::from_millis(20);
    }
    let client =
        mtdesk_billing::stripe::StripeClient::new(cfg).context("MTDESK_STRIPE_API_BASE")?;
    Ok(Some(mtdesk_billing::stripe::StripeBilling {
        client,
        webhook_secret: s.webhook_secret.as_ref().map(|w| w.expose().to_string()),
    }))
}

/// Meta app settings for the channel service.
pub fn meta_config(settings: &Settings) -> mtdesk_channels::MetaConfig {
    let m = &settings.meta;
    mtdesk_channels::MetaConfig {
        app_id: m.app_id.clone(),
        app_secret: m.app_secret.as_ref().map(|s| s.expose().to_string()),
        verify_token: m.verify_token.as_ref().map(|s| s.expose().to_string()),
        graph_base: m.graph_api_base.trim_end_matches('/').to_string(),
        instagram_base: m.instagram_api_base.trim_end_matches('/').to_string(),
        version: m.graph_api_version.clone(),
        dialog_base: m.dialog_base.trim_end_matches('/').to_string(),
        appsecret_proof: m.appsecret_proof,
        lease_ms: (m.lease_secs * 1000) as i64,
        delete_phrases: m.delete_phrases.clone(),
    }
}

/// Embedders from settings: the local model (when this build has it and its files are there) and
/// OpenRouter embeddings (when a key is configured).
pub fn embedders(settings: &Settings) -> mtdesk_knowledge::embed::Embedders {
    let remote = settings
        .providers
        .iter()
        .find(|p| p.env_name == "OPENROUTER")
        .and_then(|p| match (&p.api_key, &p.base_url) {
            (Some(k), Some(base)) => Some(mtdesk_knowledge::embed::RemoteConfig {
                base_url: base.clone(),
                api_key: k.expose().to_string(),
                site_url: Some(settings.public_url.clone()),
                app_name: "MT Desk".into(),
            }),
            _ => None,
        });
    mtdesk_knowledge::embed::Embedders::load(Some(settings.model_dir.clone()), remote)
}

pub fn knowledge_state(
    settings: &Settings,
    store: Store,
) -> mtdesk_http::knowledge::KnowledgeState {
    let embedders = embedders(settings);
    mtdesk_http::knowledge::KnowledgeState {
        knowledge: mtdesk_knowledge::Knowledge::new(store, embedders),
        wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        max_upload_bytes: settings.max_upload_bytes,
        max_files_per_chatbot: settings.max_files_per_chatbot,
    }
}

/// Crawl settings from the operator's configuration.
pub fn crawl_config(settings: &Settings) -> mtdesk_crawler::CrawlConfig {
    mtdesk_crawler::CrawlConfig {
        per_host_delay: Duration::from_millis(settings.crawl_delay_ms),
        address_policy: if settings.allow_private_urls {
            mtdesk_crawler::AddressPolicy::AllowPrivate
        } else {
            mtdesk_crawler::AddressPolicy::PublicOnly
        },
        ..Default::default()
    }
}

/// The ingestion side: runs knowledge jobs for this state.
pub fn ingestor(settings: &Settings, state: &AppState) -> mtdesk_knowledge::ingest::Ingestor {
    mtdesk_knowledge::ingest::Ingestor {
        store: state.store.clone(),
        files: state.files.clone(),
        embedders: state.knowledge.knowledge.embedders().clone(),
        crawl: crawl_config(settings),
        limits: mtdesk_extract::Limits {
            max_bytes: settings.max_upload_bytes,
            ..Default::default()
        },
        progress: None,
        storage_budget: Some(storage_budget(state)),
    }
}

/// The crawl's page-by-page check of the plan's knowledge storage (see `mtdesk_billing::limits`).
fn storage_budget(state: &AppState) -> mtdesk_knowledge::ingest::StorageBudget {
    let (store, policy) = (state.store.clone(), state.plans.clone());
    std::sync::Arc::new(move |account, source| {
        let (store, policy) = (store.clone(), policy.clone());
        Box::pin(async move {
            match mtdesk_billing::limits::crawl_budget(
                &store,
                &policy,
                &account,
                &source,
                mtdesk_domain::now_ms(),
            )
            .await
            {
                Ok(b) => b,
                Err(e) => {
                    // The crawl goes on: a database hiccup must not fail the source; the next write
                    // fails anyway if the database is really gone.
                    tracing::warn!(error = %e, "reading the plan's storage budget failed");
                    None
                }
            }
        })
    })
}

/// Provider endpoints and instance keys from `MTDESK_<PROVIDER>_*`.
pub fn ai_config(settings: &Settings) -> mtdesk_ai::AiConfig {
    use mtdesk_domain::Provider;
    let endpoints = settings
        .providers
        .iter()
        .filter_map(|p| {
            let provider = match p.env_name {
                "OPENROUTER" => Provider::Openrouter,
                "FIREWORKS" => Provider::Fireworks,
                "MINIMAX" => Provider::Minimax,
                "MOONSHOT" => Provider::Moonshot,
                "OPENAI_COMPAT" => Provider::OpenaiCompat,
                _ => return None,
            };
            Some(mtdesk_ai::Endpoint {
                provider,
                base_url: p.base_url.clone(),
                api_key: p.api_key.as_ref().map(|k| k.expose().to_string()),
            })
        })
        .collect();
    mtdesk_ai::AiConfig {
        endpoints,
        site_url: Some(settings.public_url.clone()),
        app_name: "MT Desk".into(),
        timeouts: Default::default(),
        retry: Default::default(),
    }
}

/// The whole router: API, health, metrics and dashboard.
pub fn router(state: AppState) -> axum::Router {
    mtdesk_http::app(state, mtdesk_dashboard::router())
}

/// Logs what is configured and what is off, once.
pub fn log_startup(settings: &Settings) {
    tracing::info!(
        database = %settings.database_url.redacted(),
        data_dir = %settings.data_dir.display(),
        public_url = %settings.public_url,
        "starting MT Desk"
    );
    if matches!(settings.database_url, DatabaseUrl::Sqlite(_)) {
        tracing::info!(
            "storage: embedded SQLite (set MTDESK_DATABASE_URL=postgres://… for several nodes)"
        );
    }
    for v in &settings.unknown_vars {
        tracing::warn!(variable = %v, "unknown MTDESK_ variable ignored (typo?)");
    }
    for line in settings.disabled_features() {
        tracing::info!("{line}");
    }
}

/// "Your data is ready": the link (valid until the export expires) to the account's address. The mail is
/// tied to the account, so deleting the account deletes it too if it was not sent yet.
async fn export_ready_mail(
    state: &AppState,
    done: &mtdesk_privacy::export::FinishedExport,
) -> anyhow::Result<()> {
    let account = state.store.find_account(&done.account_id).await?;
    let link = format!(
        "{}{}",
        state.config.public_url.trim_end_matches('/'),
        done.link_path()
    );
    let site = mtdesk_email::Site {
        name: state.config.operator_name.clone(),
        public_url: state.config.public_url.clone(),
    };
    let rendered =
        mtdesk_email::messages::export_ready(&site, &account.name, &link, done.expires_at)?;
    state
        .outbox
        .enqueue(Some(&account.id), &account.email, rendered)
        .await?;
    Ok(())
}

/// Logs how retrieval will work on this node (once, at start-up).
pub fn log_knowledge(state: &AppState) {
    let e = state.knowledge.knowledge.embedders();
    match e.local_missing() {
        None => tracing::info!(
            "knowledge: local embeddings (all-MiniLM-L6-v2) loaded; hybrid retrieval on"
        ),
        Some(why) => tracing::warn!(
            "knowledge: no local embedding model ({why}); chatbots using it search with the lexical leg only. Run scripts/fetch-model"
        ),
    }
    if e.has_remote() {
        tracing::info!("knowledge: OpenRouter embeddings available");
    }
}

/// Serves until `shutdown` resolves, with a periodic clean-up of expired sessions and, given an
/// ingestor, the knowledge worker; `channel_workers` channel worker tasks (0 in tests that drain the
/// queue themselves).
pub async fn serve(
    state: AppState,
    ingestor: Option<mtdesk_knowledge::ingest::Ingestor>,
    channel_workers: usize,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut channel_tasks: Vec<_> = (0..channel_workers)
        .map(|_| tokio::spawn(state.channels.clone().run_worker()))
        .collect();
    if channel_workers > 0 {
        // Meta data-deletion requests a crash interrupted are finished first thing; then the retention
        // purge runs every hour (each run deletes what expired since, in small batches).
        let privacy = state.privacy.clone();
        let knowledge = state.knowledge.knowledge.clone();
        let billing_store = state.store.clone();
        channel_tasks.push(tokio::spawn(async move {
            match privacy.resume_pending().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(requests = n, "resumed interrupted data-deletion requests"),
                Err(e) => tracing::error!(error = %e, "resuming data-deletion requests failed"),
            }
            match privacy.resume_account_deletions().await {
                Ok(done) if done.is_empty() => {}
                Ok(done) => {
                    for d in &done {
                        for bot in &d.chatbots {
                            knowledge.forget(bot);
                        }
                    }
                    tracing::info!(
                        accounts = done.len(),
                        "finished interrupted account deletions"
                    )
                }
                Err(e) => tracing::error!(error = %e, "resuming account deletions failed"),
            }
            if let Err(e) = privacy.resume_requests().await {
                tracing::error!(error = %e, "confirming executed deletion requests failed");
            }
            // Hourly: the retention purge and the deadline check of emailed deletion requests (each
            // request is in the operator's warning at most once a day).
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let now = mtdesk_domain::now_ms();
                match privacy.resume_account_deletions().await {
                    Ok(done) => {
                        for d in &done {
                            for bot in &d.chatbots {
                                knowledge.forget(bot);
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "finishing account deletions failed"),
                }
                // Mails about no (longer existing) account that could not be sent within a week are
                // dropped: the outbox must not keep a deleted person's address for ever.
                match privacy.purge_stale_mail(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        mails = n,
                        "dropped undeliverable mails about deleted accounts"
                    ),
                    Err(e) => tracing::error!(error = %e, "dropping stale mails failed"),
                }
                if let Err(e) = privacy.purge_expired(now).await {
                    tracing::error!(error = %e, "the retention purge failed");
                }
                if let Err(e) = privacy.warn_deadlines(now).await {
                    tracing::error!(error = %e, "checking deletion request deadlines failed");
                }
                // Billing: ids of processed Stripe events are kept 30 days for deduplication (Stripe
                // retries for up to 3 days, external-apis.md §8.4).
                if let Err(e) = billing_store
                    .prune_stripe_events(now - 30 * 24 * 3600 * 1000)
                    .await
                {
                    tracing::error!(error = %e, "pruning processed Stripe event ids failed");
                }
            }
        }));
    }
    // Email delivery (a no-op loop without SMTP: mails wait in the outbox).
    let (mail_stop, mail_stopped) = tokio::sync::oneshot::channel::<()>();
    let mailer = tokio::spawn(state.outbox.clone().run(async move {
        let _ = mail_stopped.await;
    }));
    // The background worker (ingestion, scheduled re-syncs). Tests pass `None` and run jobs themselves.
    let worker = ingestor.map(|ingestor| {
        tokio::spawn(mtdesk_knowledge::worker::run(
            ingestor,
            state.knowledge.knowledge.clone(),
            state.knowledge.wake.clone(),
        ))
    });
    let store = state.store.clone();
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match store.delete_expired_sessions().await {
                Ok(n) if n > 0 => tracing::info!(sessions = n, "removed expired sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "removing expired sessions failed"),
            }
        }
    });
    // "Download my data": builds requested exports (at once when a request wakes it, else every 2 s; claims
    // make it safe on several nodes) and deletes expired archives every minute.
    let exporter = state.exporter.clone();
    let mail_state = state.clone();
    let exports = tokio::spawn(async move {
        let mut last_purge: Option<std::time::Instant> = None;
        loop {
            match exporter.run_pending().await {
                Ok(finished) => {
                    for done in finished {
                        tracing::debug!(export.id = %done.export_id, "data export ready");
                        if let Err(e) = export_ready_mail(&mail_state, &done).await {
                            tracing::warn!(error = %e, "queueing the export-ready mail failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "building data exports failed"),
            }
            if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                if let Err(e) = exporter.purge_expired(mtdesk_domain::now_ms()).await {
                    tracing::error!(error = %e, "deleting expired data exports failed");
                }
                last_purge = Some(std::time::Instant::now());
            }
            tokio::select! {
                () = exporter.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
    sweeper.abort();
    exports.abort();
    let _ = mail_stop.send(());
    let _ = mailer.await;
    if let Some(w) = worker {
        w.abort();
    }
    for t in channel_tasks {
        t.abort();
    }
    result
}
