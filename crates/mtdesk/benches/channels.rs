//! Meta webhook benchmarks (a bench binary: `cargo bench -p mtdesk --bench channels`). Needs `wrk`
//! (`apt-get install wrk`). Loopback only, every run bounded in time.
//!
//! Throughput, one run, all against 127.0.0.1 with the same wrk settings, as ratios of (a):
//! - (a) ceiling: a bare axum handler answering 200;
//! - (b) ours, signature check only: a bare axum handler running `mtdesk_http::webhooks::check` (the
//!   `X-Hub-Signature-256` HMAC over the raw body and the JSON well-formedness check of the real handler);
//! - (c) ours, the real server (`mtdesk serve`'s router with every layer) with signature check and durable
//!   enqueue (group commit), on SQLite and on PostgreSQL. Afterwards the stored events are counted: every
//!   acknowledged event must be in the database.
//!
//! wrk signs nothing itself: a generated Lua script cycles through pre-signed distinct bodies.
//!
//! Latency: webhook → reply at the fake Graph API at a fixed 100 messages/s (offline answerer, Q&A
//! knowledge, the real server with its channel workers), p50/p99 of (send received at the fake − webhook
//! POST started), after 50 warm-up messages at the same rate that are not measured.
//!
//! PostgreSQL: `MTDESK_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), skipped
//! when unreachable.

#[path = "common/mod.rs"]
mod common;
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use common::{percentile, scratch_postgres, temp_dir};
use mtdesk::settings::Settings;
use mtdesk_testkit::fake_meta::{self as meta, FakeMeta, WebhookSender};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const APP_ID: &str = "424242";
const APP_SECRET: &str = "bench_app_secret";
const WRK_SECONDS: u64 = 6;
const WRK_THREADS: usize = 1;
const WRK_CONNECTIONS: usize = 256;
const BODIES: usize = 5_000;
const LATENCY_MESSAGES: usize = 300;
const LATENCY_RATE: u64 = 100;
/// Sent first at the same rate and not measured (cold caches, first statement preparations).
const WARMUP_MESSAGES: usize = 50;

/// A Messenger text webhook body exactly as the server receives it, with its signature.
fn signed_bodies(page_id: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let body = meta::meta_json(&meta::messenger_text(
                page_id,
                &format!("7{:015}", i),
                &format!("m_bench_{i}_{}", uuid::Uuid::new_v4().simple()),
                "Do you ship to Canada? I would like to order two pairs of the blue ones.",
                1_735_700_000_000 + i as i64,
            ));
            let sig = meta::meta_signature(APP_SECRET.as_bytes(), body.as_bytes());
            (body, sig)
        })
        .collect()
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A wrk script cycling through the signed bodies; each thread starts at its own offset.
fn wrk_script(dir: &std::path::Path, bodies: &[(String, String)]) -> std::path::PathBuf {
    let mut lua = String::from("local bodies = {\n");
    for (b, _) in bodies {
        lua.push_str(&lua_string(b));
        lua.push_str(",\n");
    }
    lua.push_str("}\nlocal sigs = {\n");
    for (_, s) in bodies {
        lua.push_str(&lua_string(s));
        lua.push_str(",\n");
    }
    lua.push_str(
        "}\nlocal i = 0\nlocal n = #bodies\n\
         function setup(thread) thread:set(\"offset\", math.random(n)) end\n\
         function init(args) i = offset or 0 end\n\
         function request()\n  i = i % n + 1\n  return wrk.format(\"POST\", \"/webhooks/meta\", \
         {[\"Content-Type\"] = \"application/json\", [\"X-Hub-Signature-256\"] = sigs[i]}, bodies[i])\nend\n",
    );
    let path = dir.join("signed.lua");
    std::fs::write(&path, lua).expect("write the wrk script");
    path
}

struct WrkResult {
    rps: f64,
    requests: u64,
    non_2xx: u64,
    errors: String,
}

fn wrk(url: &str, script: &std::path::Path) -> WrkResult {
    let out = std::process::Command::new("wrk")
        .args([
            "-t",
            &WRK_THREADS.to_string(),
            "-c",
            &WRK_CONNECTIONS.to_string(),
            "-d",
            &format!("{WRK_SECONDS}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let num = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .and_then(|v| v.parse().ok())
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    WrkResult {
        rps: num("Requests/sec").unwrap_or(0.0),
        requests,
        non_2xx: num("Non-2xx or 3xx responses").unwrap_or(0.0) as u64,
        errors: text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .unwrap_or("")
            .trim()
            .to_string(),
    }
}

async fn serve_router(router: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/webhooks/meta"), task)
}

struct Real {
    base: String,
    state: mtdesk_http::AppState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn real_server(
    db_url: Option<String>,
    fake: Option<&FakeMeta>,
    workers: Option<usize>,
) -> anyhow::Result<Real> {
    let dir = temp_dir("webhooks");
    let mut vars = BTreeMap::new();
    vars.insert("MTDESK_DATA_DIR".to_string(), dir.display().to_string());
    vars.insert(
        "MTDESK_SECRET_KEY".to_string(),
        "bench-secret-key-0123456789abcdef0123456789".to_string(),
    );
    vars.insert("MTDESK_META_APP_ID".into(), APP_ID.into());
    vars.insert("MTDESK_META_APP_SECRET".into(), APP_SECRET.into());
    vars.insert("MTDESK_LOG".into(), "warn".into());
    if let Some(f) = fake {
        vars.insert("MTDESK_GRAPH_API_BASE".into(), f.base_url());
    }
    if let Some(url) = db_url {
        vars.insert("MTDESK_DATABASE_URL".into(), url);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mtdesk::build_state(&settings).await?;
    let workers = workers.unwrap_or(settings.meta.workers);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = state.clone();
    tokio::spawn(async move {
        let _ = mtdesk::serve(s, None, workers, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Real {
        base: format!("http://{addr}"),
        state,
        _shutdown: tx,
    })
}

/// Webhook → reply at the fake Graph API at a fixed rate; returns sorted latencies in ms.
async fn reply_latency(db_url: Option<String>) -> anyhow::Result<Vec<f64>> {
    let fake = FakeMeta::start(APP_ID, APP_SECRET).await;
    // The product's default worker count for this database (MTDESK_CHANNEL_WORKERS unset).
    let server = real_server(db_url, Some(&fake), None).await?;
    let state = &server.state;
    let new = mtdesk_domain::NewAccount::parse(
        "Bench",
        "bench@example.com",
        "Bench Co",
        "correct horse battery",
        true,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = mtdesk_http::services::sign_up(state, new)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = mtdesk_domain::ChatbotDraft {
        name: Some("Bench bot"),
        ..Default::default()
    }
    .apply(&mtdesk_domain::ChatbotSettings::defaults())
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bot = state.store.insert_chatbot(&account.id, &settings).await?;
    let pairs: Vec<mtdesk_domain::QaPairInput> = (0..200)
        .map(|i| {
            mtdesk_domain::QaPairInput::parse(
                &format!("Do you ship to country number {i}?"),
                &format!("Yes, we ship to country {i} in {} days.", i % 9 + 1),
            )
        })
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    state
        .store
        .insert_qa_pairs(&account.id, &bot.id, &pairs)
        .await?;
    let page_id = "110000000000777";
    let token = "EAAB-bench-page-token";
    fake.add_page(page_id, "Bench Page", token, None);
    state
        .channels
        .connect(
            &account.id,
            mtdesk_channels::ConnectRequest {
                kind: mtdesk_domain::ChannelKind::Messenger,
                chatbot_id: bot.id.clone(),
                page_id: Some(page_id.into()),
                instagram_account_id: None,
                phone_number_id: None,
                waba_id: None,
                access_token: token.into(),
                meta_user_id: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sender = std::sync::Arc::new(
        WebhookSender::new(&format!("{}/webhooks/meta", server.base), APP_SECRET).tracking(&fake),
    );
    // Warm-up at the same rate, not measured: the first messages pay for cold caches, the first
    // statement preparations on each pooled connection and the chatbot's index build.
    let mut every = tokio::time::interval(Duration::from_millis(1000 / LATENCY_RATE));
    for i in 0..WARMUP_MESSAGES {
        every.tick().await;
        let body = meta::messenger_text(
            page_id,
            &format!("9{:015}", i),
            &format!("m_warm_{i}"),
            &format!("Do you ship to country number {}?", i % 200),
            meta::now_ms(),
        );
        let r = sender.post(&body).await;
        anyhow::ensure!(r.status() == 200, "warm-up webhook refused");
    }
    let warm = fake
        .wait_for_sends(WARMUP_MESSAGES, Duration::from_secs(60))
        .await;
    anyhow::ensure!(warm.len() == WARMUP_MESSAGES, "warm-up replies missing");
    let started = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, Instant>::new()));
    let mut tasks = Vec::new();
    for i in 0..LATENCY_MESSAGES {
        every.tick().await;
        let psid = format!("7{:015}", i);
        let body = meta::messenger_text(
            page_id,
            &psid,
            &format!("m_lat_{i}"),
            &format!("Do you ship to country number {}?", i % 200),
            meta::now_ms(),
        );
        let sender = sender.clone();
        let started = started.clone();
        tasks.push(tokio::spawn(async move {
            started
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(psid, Instant::now());
            let r = sender.post(&body).await;
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sends = fake
        .wait_for_sends(WARMUP_MESSAGES + LATENCY_MESSAGES, Duration::from_secs(60))
        .await;
    anyhow::ensure!(
        sends.len() == WARMUP_MESSAGES + LATENCY_MESSAGES,
        "only {} of {LATENCY_MESSAGES} replies arrived",
        sends.len().saturating_sub(WARMUP_MESSAGES)
    );
    let sends: Vec<_> = sends
        .into_iter()
        .filter(|s| s.recipient.starts_with('7'))
        .collect();
    let started = started.lock().unwrap_or_else(|p| p.into_inner());
    let mut ms: Vec<f64> = sends
        .iter()
        .filter_map(|s| {
            started
                .get(&s.recipient)
                .map(|t0| s.at.duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    // Where the tail sits in the run (warm-up or steady state): the slowest messages by send order.
    let mut by_order: Vec<(usize, f64)> = sends
        .iter()
        .filter_map(|s| {
            let i: usize = s.recipient.get(1..)?.parse().ok()?;
            started
                .get(&s.recipient)
                .map(|t0| (i, s.at.duration_since(*t0).as_secs_f64() * 1000.0))
        })
        .collect();
    by_order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let slowest: Vec<String> = by_order
        .iter()
        .take(5)
        .map(|(i, t)| format!("#{i} {t:.0} ms"))
        .collect();
    println!("  slowest messages (send order): {}", slowest.join(", "));
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = temp_dir("webhooks");
    let page_id = "110000000000001";
    let bodies = signed_bodies(page_id, BODIES);
    let script = wrk_script(&dir, &bodies);
    println!(
        "Meta webhook throughput: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, {BODIES} distinct pre-signed bodies of ~{} bytes",
        bodies[0].0.len()
    );

    // (a) the ceiling.
    let (url, a_task) =
        serve_router(Router::new().route("/webhooks/meta", post(|| async { "EVENT_RECEIVED" })))
            .await;
    let a = wrk(&url, &script);
    a_task.abort();
    println!(
        "(a) plain axum 200:                      {:>9.0} req/s  ({} requests, {} non-2xx) {}",
        a.rps, a.requests, a.non_2xx, a.errors
    );

    // (b) signature check and parse, no storage.
    let (url, b_task) = serve_router(Router::new().route(
        "/webhooks/meta",
        post(|headers: HeaderMap, body: Bytes| async move {
            match mtdesk_http::webhooks::check(Some(APP_SECRET.as_bytes()), &headers, &body) {
                mtdesk_http::webhooks::Verdict::Reject(r) => r,
                _ => mtdesk_http::webhooks::acknowledged(),
            }
            .into_response()
        }),
    ))
    .await;
    let b = wrk(&url, &script);
    b_task.abort();
    println!(
        "(b) signature check + parse:             {:>9.0} req/s  = {:.2}× (a)  ({} non-2xx) {}",
        b.rps,
        b.rps / a.rps,
        b.non_2xx,
        b.errors
    );

    // (c) the real server: signature check + durable enqueue (group commit), no workers running so every
    // stored event can be counted afterwards.
    let mut backends: Vec<(&str, Option<String>)> = vec![("SQLite", None)];
    match scratch_postgres().await {
        Some(url) => backends.push(("PostgreSQL", Some(url))),
        None => println!("(PostgreSQL unreachable: skipped)"),
    }
    for (name, url) in &backends {
        let server = real_server(url.clone(), None, Some(0)).await?;
        let c = wrk(&format!("{}/webhooks/meta", server.base), &script);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stored = server.state.store.count_webhook_events().await?;
        let acknowledged = c.requests.saturating_sub(c.non_2xx);
        println!(
            "(c) real server, durable enqueue, {name:<10}: {:>7.0} req/s  = {:.2}× (a)  ({} acknowledged, {} stored, lost: {}) {}",
            c.rps,
            c.rps / a.rps,
            acknowledged,
            stored,
            if (stored as u64) >= acknowledged {
                "none"
            } else {
                "SOME"
            },
            c.errors
        );
    }

    // Webhook → reply latency at a fixed rate.
    for (name, url) in &backends {
        let url = match url {
            // A fresh database for this run.
            Some(_) => scratch_postgres().await,
            None => None,
        };
        let started = Instant::now();
        let ms = reply_latency(url).await?;
        println!(
            "webhook → reply at the fake Graph API, {LATENCY_RATE} msg/s × {LATENCY_MESSAGES}, {name:<10}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({:.1} s)",
            percentile(&ms, 0.50),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0),
            started.elapsed().as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
