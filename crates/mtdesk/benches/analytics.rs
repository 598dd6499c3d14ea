//! The Analytics page at scale (a bench binary: `cargo bench -p mtdesk --bench analytics`). Loopback only.
//!
//! On SQLite and on PostgreSQL (`MTDESK_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, skipped when unreachable), in one run:
//! - one account with 2 chatbots and `CONVERSATIONS` conversations over Messenger, Instagram and WhatsApp,
//!   `MESSAGES` messages (default 1,000,000; `MTDESK_BENCH_MESSAGES` to change) spread evenly over the last
//!   90 days, half customer messages and half answers, one answer record per answer (10 % fallbacks), and
//!   the matching `daily_stats` rows computed from those messages (as the write path would have bumped
//!   them: one inbound row and one answer row per day, chatbot and channel);
//! - ours: `GET /analytics?days=90` (the dashboard page with a session cookie: aggregates, top unanswered
//!   questions, three SVG charts, tables), `REQUESTS` times in a row, and the JSON API the same way;
//! - the baseline: the same daily counts by scanning the raw messages of the 90 days (`GROUP BY` day).
//!
//! Goal (issue: analytics): p95 of the page ≤ 100 ms on both databases.

#[path = "common/mod.rs"]
mod common;
use common::{percentile, scratch_postgres, temp_dir};
use mtdesk::settings::Settings;
use std::collections::BTreeMap;
use std::time::Instant;

const CONVERSATIONS: i64 = 10_000;
const REQUESTS: usize = 50;
const SCANS: usize = 20;
const DAY_MS: i64 = 86_400_000;
const PASSWORD: &str = "correct horse battery";

fn messages() -> i64 {
    std::env::var("MTDESK_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1_000)
        .unwrap_or(1_000_000)
}

struct Server {
    base: String,
    db_url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn server(pg: Option<String>) -> anyhow::Result<Server> {
    let dir = temp_dir("analytics");
    let mut vars = BTreeMap::new();
    vars.insert("MTDESK_DATA_DIR".to_string(), dir.display().to_string());
    vars.insert(
        "MTDESK_SECRET_KEY".to_string(),
        "bench-secret-key-0123456789abcdef0123456789".to_string(),
    );
    // Only the analytics page is measured; cheap hashing keeps the one login short.
    vars.insert("MTDESK_ARGON2_MEMORY_KIB".into(), "8192".into());
    vars.insert("MTDESK_ARGON2_ITERATIONS".into(), "1".into());
    vars.insert("MTDESK_LOG".into(), "warn".into());
    let db_url = pg.unwrap_or_else(|| format!("sqlite://{}", dir.join("mtdesk.sqlite").display()));
    vars.insert("MTDESK_DATABASE_URL".into(), db_url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    vars.insert("MTDESK_PUBLIC_URL".into(), format!("http://{addr}"));
    let settings = Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mtdesk::build_state(&settings).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = mtdesk::serve(state, None, 0, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Server {
        base: format!("http://{addr}"),
        db_url,
        _shutdown: tx,
    })
}

/// `SELECT x FROM <0..n>` for the backend.
fn series(pg: bool, n: i64) -> String {
    if pg {
        // BIGINT: `x * step` passes 2^31 (int4, generate_series' type for integer bounds).
        format!(
            "SELECT CAST(x AS BIGINT) AS x FROM generate_series(0, {}) AS x",
            n - 1
        )
    } else {
        format!(
            "SELECT x FROM (WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < {}) SELECT x FROM s)",
            n - 1
        )
    }
}

/// Conversations, messages, answer records and the daily aggregates of one account.
async fn fill(
    conn: &mut sqlx::AnyConnection,
    pg: bool,
    account: &str,
    bots: [&str; 2],
    t0: i64,
    n: i64,
) -> anyhow::Result<()> {
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    let [b0, b1] = bots;
    run(format!(
        "INSERT INTO conversations (id, account_id, chatbot_id, channel, created_at, updated_at)
         SELECT '{account}-c' || x, '{account}', CASE WHEN x % 2 = 0 THEN '{b0}' ELSE '{b1}' END,
            CASE x % 3 WHEN 0 THEN 'messenger' WHEN 1 THEN 'instagram' ELSE 'whatsapp' END, {t0}, {t0}
         FROM ({}) AS s",
        series(pg, CONVERSATIONS)
    ))
    .execute(&mut *conn)
    .await?;
    // Message x at t0 + x·(90 days / n): even x a customer message, odd x the answer to it.
    let step = 90 * DAY_MS / n;
    run(format!(
        "INSERT INTO messages (id, account_id, conversation_id, role, content, created_at)
         SELECT '{account}-m' || x, '{account}', '{account}-c' || ((x / 2) % {CONVERSATIONS}),
            CASE WHEN x % 2 = 0 THEN 'user' ELSE 'assistant' END,
            'Hello, do you ship to Canada? I would like two pairs of the blue ones, order ' || x, {t0} + x * {step}
         FROM ({}) AS s",
        series(pg, n)
    ))
    .execute(&mut *conn)
    .await?;
    run(format!(
        "INSERT INTO answers (id, account_id, chatbot_id, conversation_id, question, answer, provider, model,
            latency_ms, prompt_tokens, completion_tokens, from_knowledge, answered, top_score, retrieval, fallbacks,
            created_at)
         SELECT '{account}-a' || x, '{account}', CASE WHEN (x / 2) % 2 = 0 THEN '{b0}' ELSE '{b1}' END,
            '{account}-c' || ((x / 2) % {CONVERSATIONS}), 'Question number ' || (x % 997),
            'We ship to Canada within five business days.', 'openrouter', 'fake-model', 700, 800, 120,
            CASE WHEN x % 10 < 7 THEN 1 ELSE 0 END, CASE WHEN x % 10 = 9 THEN 0 ELSE 1 END,
            CASE WHEN x % 10 < 7 THEN 0.9 ELSE 0.1 END, '[]', '[]', {t0} + x * {step}
         FROM ({}) AS s WHERE x % 2 = 1",
        series(pg, n)
    ))
    .execute(&mut *conn)
    .await?;
    let grouped = |role: &str| {
        format!(
            "SELECT m.created_at / {DAY_MS} AS d, c.chatbot_id AS b, c.channel AS ch, COUNT(*) AS n
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.account_id = '{account}' AND m.role = '{role}'
             GROUP BY m.created_at / {DAY_MS}, c.chatbot_id, c.channel"
        )
    };
    run(format!(
        "INSERT INTO daily_stats (id, account_id, chatbot_id, channel, provider, day, conversations, messages_in)
         SELECT 'in-' || g.d || '-' || g.b || '-' || g.ch, '{account}', g.b, g.ch, '', g.d, g.n / 10, g.n
         FROM ({}) AS g",
        grouped("user")
    ))
    .execute(&mut *conn)
    .await?;
    run(format!(
        "INSERT INTO daily_stats (id, account_id, chatbot_id, channel, provider, day, messages_out, answered,
            from_knowledge, fallbacks, prompt_tokens, completion_tokens, latency_ms_sum, lat_400, lat_800, lat_1600)
         SELECT 'out-' || g.d || '-' || g.b || '-' || g.ch, '{account}', g.b, g.ch, 'openrouter', g.d, g.n,
            g.n - g.n / 10, g.n * 7 / 10, g.n / 10, g.n * 800, g.n * 120, g.n * 700,
            g.n / 2, g.n * 3 / 10, g.n - g.n / 2 - g.n * 3 / 10
         FROM ({}) AS g",
        grouped("assistant")
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The value of the first hidden `csrf` input of a page.
fn csrf_of(body: &str) -> anyhow::Result<String> {
    let at = body
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| anyhow::anyhow!("no csrf field"))?
        + "name=\"csrf\" value=\"".len();
    let end = body[at..]
        .find('"')
        .ok_or_else(|| anyhow::anyhow!("no end quote"))?;
    Ok(body[at..at + end].to_string())
}

async fn timed_gets(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    must_contain: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + 3 {
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let t = Instant::now();
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            status.is_success() && body.contains(must_contain),
            "GET {url}: {status}"
        );
        // The first three warm the caches and the connection.
        if i >= 3 {
            out.push(ms);
        }
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

async fn run(label: &str, pg: Option<String>) -> anyhow::Result<()> {
    let is_pg = pg.is_some();
    let n = messages();
    let s = server(pg).await?;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let email = format!("owner-{}@bench.example", uuid::Uuid::new_v4().simple());
    let signed_up: serde_json::Value = client
        .post(format!("{}/api/v1/account", s.base))
        .json(
            &serde_json::json!({"name": "Bench Owner", "email": email, "password": PASSWORD,
            "company": "Bench Co", "age_16_or_older": true}),
        )
        .send()
        .await?
        .json()
        .await?;
    let account = signed_up["account"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("sign-up failed: {signed_up}"))?
        .to_string();
    let token = signed_up["token"].as_str().unwrap_or_default().to_string();
    let mut bots = Vec::new();
    for name in ["Shop", "Support"] {
        let bot: serde_json::Value = client
            .post(format!("{}/api/v1/chatbots", s.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?
            .json()
            .await?;
        bots.push(bot["id"].as_str().unwrap_or_default().to_string());
    }
    let login_page = client
        .get(format!("{}/login", s.base))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_of(&login_page)?;
    let login = client
        .post(format!("{}/login", s.base))
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await?;
    anyhow::ensure!(login.status().is_redirection(), "login failed");

    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&s.db_url).await?;
    let now = mtdesk_domain::now_ms();
    let today = now.div_euclid(DAY_MS);
    let from_day = today - 89;
    let t = Instant::now();
    fill(
        &mut conn,
        is_pg,
        &account,
        [&bots[0], &bots[1]],
        now - 90 * DAY_MS + 1,
        n,
    )
    .await?;
    if is_pg {
        sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
    }
    let stats_rows: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM daily_stats WHERE account_id = $1")
            .bind(&account)
            .fetch_one(&mut conn)
            .await?,
        "n",
    )?;
    println!(
        "[{label}] filled {n} messages, {} answer records, {stats_rows} daily_stats rows in {:.1} s",
        n / 2,
        t.elapsed().as_secs_f64()
    );

    let page = timed_gets(
        &client,
        &format!("{}/analytics?days=90", s.base),
        None,
        "<svg class=\"chart\" id=\"chart-volume\"",
    )
    .await?;
    let api = timed_gets(
        &client,
        &format!("{}/api/v1/analytics?days=90", s.base),
        Some(&token),
        "\"daily\"",
    )
    .await?;

    // Baseline: the same daily counts from the raw messages.
    let scan_sql = format!(
        "SELECT created_at / {DAY_MS} AS d,
                CAST(SUM(CASE WHEN role = 'user' THEN 1 ELSE 0 END) AS BIGINT) AS messages_in,
                CAST(SUM(CASE WHEN role = 'assistant' THEN 1 ELSE 0 END) AS BIGINT) AS messages_out
         FROM messages WHERE account_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY created_at / {DAY_MS} ORDER BY d"
    );
    let mut scans = Vec::with_capacity(SCANS);
    let mut scanned_total = 0;
    for _ in 0..SCANS {
        let t = Instant::now();
        let rows = sqlx::query(sqlx::AssertSqlSafe(scan_sql.clone()))
            .bind(&account)
            .bind(from_day * DAY_MS)
            .bind((today + 1) * DAY_MS)
            .fetch_all(&mut conn)
            .await?;
        scans.push(t.elapsed().as_secs_f64() * 1000.0);
        scanned_total = rows
            .iter()
            .map(|r| {
                sqlx::Row::try_get::<i64, _>(r, "messages_in").unwrap_or(0)
                    + sqlx::Row::try_get::<i64, _>(r, "messages_out").unwrap_or(0)
            })
            .sum::<i64>();
    }
    scans.sort_by(f64::total_cmp);

    // The page's numbers are the scan's numbers.
    let v: serde_json::Value = client
        .get(format!("{}/api/v1/analytics?days=90", s.base))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let from_aggregates = v["totals"]["messages_in"].as_i64().unwrap_or(-1)
        + v["totals"]["answers"].as_i64().unwrap_or(-1);
    anyhow::ensure!(
        from_aggregates == scanned_total,
        "aggregates say {from_aggregates} messages, the scan {scanned_total}"
    );

    println!(
        "[{label}] GET /analytics?days=90 (page, session): p50 {:.1} ms p95 {:.1} ms max {:.1} ms ({REQUESTS} requests) | goal p95 ≤ 100 ms",
        percentile(&page, 0.5),
        percentile(&page, 0.95),
        page.last().copied().unwrap_or(0.0)
    );
    println!(
        "[{label}] GET /api/v1/analytics?days=90 (JSON): p50 {:.1} ms p95 {:.1} ms ({REQUESTS} requests)",
        percentile(&api, 0.5),
        percentile(&api, 0.95)
    );
    println!(
        "[{label}] raw scan of the messages (daily counts of {scanned_total} messages): p50 {:.1} ms p95 {:.1} ms ({SCANS} runs) | page/scan p95 ratio {:.3}",
        percentile(&scans, 0.5),
        percentile(&scans, 0.95),
        percentile(&page, 0.95) / percentile(&scans, 0.95)
    );
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
