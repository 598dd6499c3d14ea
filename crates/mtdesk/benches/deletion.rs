//! Account deletion at scale (a bench binary: `cargo bench -p mtdesk --bench deletion`). Loopback only,
//! bounded in rows and time.
//!
//! On SQLite and on PostgreSQL (`MTDESK_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, skipped when unreachable), in one run:
//! - three accounts: V (deleted by the engine), R (deleted by a raw `DELETE`, the baseline) each with
//!   `MESSAGES` messages in `CONVERSATIONS` conversations and `CHUNKS` knowledge chunks (1,536-byte
//!   embeddings), and K (kept) with `MESSAGES` old messages, so the tables hold 3 × `MESSAGES` rows;
//! - the baseline: `DELETE FROM messages/chunks/conversations WHERE account_id = R`, one statement each;
//! - ours: `Engine::delete_account(V)` (batches, then the final transaction, files, receipt);
//! - webhook ingest latency (signed `POST /webhooks/meta` at a fixed `RATE` per second against the real
//!   server, durable enqueue) while idle, and while the engine deletes V: p50 / p99;
//! - the retention purge rate: K's messages are older than 12 months; `purge_expired` deletes them.
//!
//! Goals (issue 8): ours ≤ 1.5× the raw `DELETE`; ingest p99 during the deletion ≤ 3× idle.

#[path = "common/mod.rs"]
mod common;
use common::{percentile, scratch_postgres, temp_dir};
use mtdesk::settings::Settings;
use mtdesk_testkit::fake_meta as meta;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const APP_SECRET: &str = "bench_app_secret";
const MESSAGES: i64 = 1_000_000;
const CONVERSATIONS: i64 = 1_000;
const CHUNKS: i64 = 100_000;
const RATE: u64 = 200;
const IDLE_SECONDS: u64 = 5;

struct Server {
    base: String,
    state: mtdesk_http::AppState,
    db_url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn server(pg: Option<String>) -> anyhow::Result<Server> {
    let dir = temp_dir("del");
    let mut vars = BTreeMap::new();
    vars.insert("MTDESK_DATA_DIR".to_string(), dir.display().to_string());
    vars.insert(
        "MTDESK_SECRET_KEY".to_string(),
        "bench-secret-key-0123456789abcdef0123456789".to_string(),
    );
    vars.insert("MTDESK_META_APP_ID".into(), "424242".into());
    vars.insert("MTDESK_META_APP_SECRET".into(), APP_SECRET.into());
    vars.insert("MTDESK_LOG".into(), "warn".into());
    let db_url = pg.unwrap_or_else(|| format!("sqlite://{}", dir.join("mtdesk.sqlite").display()));
    vars.insert("MTDESK_DATABASE_URL".into(), db_url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mtdesk::build_state(&settings).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = state.clone();
    // No channel workers: the webhook events stay queued (only the ingest path is measured).
    tokio::spawn(async move {
        let _ = mtdesk::serve(s, None, 0, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Server {
        base: format!("http://{addr}"),
        state,
        db_url,
        _shutdown: tx,
    })
}

async fn account(state: &mtdesk_http::AppState, tag: &str) -> anyhow::Result<(String, String)> {
    let new = mtdesk_domain::NewAccount::parse(
        "Bench Owner",
        &format!("{tag}-{}@bench.example", uuid::Uuid::new_v4().simple()),
        "Bench Co",
        "correct horse battery",
        true,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = state.store.insert_account(&new, "not-a-real-hash").await?;
    let settings = mtdesk_domain::ChatbotDraft {
        name: Some("Bench bot"),
        ..Default::default()
    }
    .apply(&mtdesk_domain::ChatbotSettings::defaults())
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bot = state.store.insert_chatbot(&account.id, &settings).await?;
    Ok((account.id.to_string(), bot.id.to_string()))
}

/// `SELECT x FROM <0..n>` for the backend.
fn series(pg: bool, n: i64) -> String {
    if pg {
        format!("SELECT x FROM generate_series(0, {}) AS x", n - 1)
    } else {
        format!(
            "SELECT x FROM (WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < {}) SELECT x FROM s)",
            n - 1
        )
    }
}

/// Fills an account: conversations, `messages` messages created at `t0 + i` ms, and (with `chunks`) a
/// source with that many chunks.
async fn fill(
    conn: &mut sqlx::AnyConnection,
    pg: bool,
    account: &str,
    bot: &str,
    t0: i64,
    chunks: bool,
) -> anyhow::Result<()> {
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    run(format!(
        "INSERT INTO conversations (id, account_id, chatbot_id, channel, created_at, updated_at)
         SELECT '{account}-c' || x, '{account}', '{bot}', 'web', {t0}, {t0} FROM ({}) AS s",
        series(pg, CONVERSATIONS)
    ))
    .execute(&mut *conn)
    .await?;
    run(format!(
        "INSERT INTO messages (id, account_id, conversation_id, role, content, created_at)
         SELECT '{account}-m' || x, '{account}', '{account}-c' || (x % {CONVERSATIONS}), 'user',
            'Hello, do you ship to Canada? I would like two pairs of the blue ones, order ' || x, {t0} + x
         FROM ({}) AS s",
        series(pg, MESSAGES)
    ))
    .execute(&mut *conn)
    .await?;
    if chunks {
        let now = mtdesk_domain::now_ms();
        run(format!(
            "INSERT INTO sources (id, account_id, chatbot_id, kind, name, status, created_at, updated_at)
             VALUES ('{account}-s', '{account}', '{bot}', 'file', 'guide.md', 'ready', {now}, {now})"
        ))
        .execute(&mut *conn)
        .await?;
        let blob = if pg {
            "decode(repeat('3f', 1536), 'hex')"
        } else {
            "randomblob(1536)"
        };
        run(format!(
            "INSERT INTO chunks (id, account_id, chatbot_id, source_id, position, title, heading, text, text_hash,
                embedding, embed_model, created_at)
             SELECT '{account}-k' || x, '{account}', '{bot}', '{account}-s', x, 'Guide', 'Shipping',
                'We ship to Canada within five business days; returns are free for 30 days. Part ' || x,
                'h' || x, {blob}, 'all-MiniLM-L6-v2', {now}
             FROM ({}) AS s",
            series(pg, CHUNKS)
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Sends signed webhook POSTs at `RATE`/s until `stop` is set (or `limit` passed); returns sorted
/// latencies in ms. Every request must be acknowledged with 200.
async fn ingest_load(
    base: &str,
    stop: Arc<std::sync::atomic::AtomicBool>,
    limit: Duration,
) -> Vec<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/webhooks/meta");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < limit {
        tick.tick().await;
        i += 1;
        let body = meta::meta_json(&meta::messenger_text(
            "1000000000001",
            &format!("7{:015}", i),
            &format!("m_del_{i}_{}", uuid::Uuid::new_v4().simple()),
            "Do you ship to Canada?",
            1_735_700_000_000 + i as i64,
        ));
        let sig = meta::meta_signature(APP_SECRET.as_bytes(), body.as_bytes());
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await;
            let status = match &resp {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("{e}"),
            };
            (status, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut out = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for t in tasks {
        match t.await {
            Ok((status, ms)) if status == "200" => out.push(ms),
            Ok((status, ms)) => failed.push(format!("{status} after {ms:.0} ms")),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        println!(
            "  NOT ACKNOWLEDGED: {} requests: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    }
    out.sort_by(f64::total_cmp);
    out
}

async fn run(label: &str, pg: Option<String>) -> anyhow::Result<()> {
    let is_pg = pg.is_some();
    let s = server(pg).await?;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&s.db_url).await?;
    let now = mtdesk_domain::now_ms();
    let two_years_ago = now - 2 * 365 * 86_400_000;
    let t = Instant::now();
    let (v, v_bot) = account(&s.state, "victim").await?;
    let (r, r_bot) = account(&s.state, "raw").await?;
    let (k, k_bot) = account(&s.state, "kept").await?;
    fill(&mut conn, is_pg, &v, &v_bot, now - 86_400_000, true).await?;
    fill(&mut conn, is_pg, &r, &r_bot, now - 86_400_000, true).await?;
    fill(&mut conn, is_pg, &k, &k_bot, two_years_ago, false).await?;
    if is_pg {
        sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
    }
    println!(
        "[{label}] filled 3 × {MESSAGES} messages, 2 × {CHUNKS} chunks in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Idle ingest latency.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle = ingest_load(&s.base, stop.clone(), Duration::from_secs(IDLE_SECONDS)).await;

    // Baseline: the same rows of R, raw DELETE statements.
    let t = Instant::now();
    let mut raw_rows = 0;
    for table in ["chunks", "messages", "conversations"] {
        raw_rows += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE account_id = $1"
        )))
        .bind(&r)
        .execute(&mut conn)
        .await?
        .rows_affected();
    }
    let raw = t.elapsed().as_secs_f64();

    // Ours, with the webhook load running.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let base = s.base.clone();
        let stop = stop.clone();
        tokio::spawn(async move { ingest_load(&base, stop, Duration::from_secs(120)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let done = s
        .state
        .privacy
        .delete_account(&mtdesk_domain::AccountId::from_db(v.clone()), "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ours = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = load.await?;
    let left: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM messages WHERE account_id = $1")
            .bind(&v)
            .fetch_one(&mut conn)
            .await?,
        "n",
    )?;
    assert_eq!(left, 0);

    // Retention: K's messages are two years old.
    let t = Instant::now();
    let purged = s
        .state
        .privacy
        .purge_expired(mtdesk_domain::now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let purge = t.elapsed().as_secs_f64();

    let (i50, i99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (d50, d99) = (percentile(&during, 0.5), percentile(&during, 0.99));
    println!(
        "[{label}] raw DELETE of {raw_rows} rows: {raw:.2} s | engine delete_account ({} rows): {ours:.2} s | ratio {:.2}× (goal ≤ 1.5×)",
        done.deleted.total(),
        ours / raw
    );
    println!(
        "[{label}] webhook ingest at {RATE}/s: idle p50 {i50:.1} ms p99 {i99:.1} ms ({} requests) | during deletion p50 {d50:.1} ms p99 {d99:.1} ms ({} requests) | p99 ratio {:.2}× (goal ≤ 3×)",
        idle.len(),
        during.len(),
        d99 / i99
    );
    println!(
        "[{label}] retention purge: {purged} rows in {purge:.2} s = {:.0} rows/s",
        purged as f64 / purge
    );
    let _ = k;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if want("sqlite") {
        run("sqlite", None).await?;
    }
    if want("postgres") {
        match scratch_postgres().await {
            Some(url) => run("postgres", Some(url)).await?,
            None => println!("[postgres] skipped: no server at MTDESK_BENCH_DATABASE_URL"),
        }
    }
    Ok(())
}
