//! Foundation benchmarks (a bench binary, run with `cargo bench -p mtdesk --bench foundation`).
//!
//! 1. Login cost: `services::log_in` (DB lookup + Argon2id verify) with the production parameters, to check
//!    that one login takes 50–250 ms on this machine.
//! 2. `GET /api/v1/chatbots` throughput against the real server on loopback, SQLite vs PostgreSQL, in one
//!    run, reported as requests/second and as the PostgreSQL/SQLite ratio. PostgreSQL is used when
//!    `MTDESK_BENCH_DATABASE_URL` (a server URL whose database may be used to create a scratch database)
//!    is set, default `postgres://postgres@127.0.0.1:5432/test`; skipped if unreachable.
//!
//! Bounded: a fixed number of requests, loopback only.

use mtdesk::settings::Settings;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
const LOGINS: usize = 15;
const REQUESTS: usize = 4_000;
const CONCURRENCY: usize = 16;
const CHATBOTS: usize = 20;

struct Server {
    base: String,
    token: String,
    state: mtdesk_http::AppState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(vars: BTreeMap<String, String>) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mtdesk::build_state(&settings).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let s = state.clone();
    tokio::spawn(async move {
        let _ = mtdesk::serve(s, None, 0, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    let new =
        mtdesk_domain::NewAccount::parse("Bench", "bench@example.com", "Bench Co", PASSWORD, true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = mtdesk_http::services::sign_up(&state, new)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, token) = mtdesk_http::services::create_token(&state, &account.id, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for i in 0..CHATBOTS {
        let settings = mtdesk_domain::ChatbotDraft {
            name: Some(&format!("Bot {i}")),
            ..Default::default()
        }
        .apply(&mtdesk_domain::ChatbotSettings::defaults())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        state.store.insert_chatbot(&account.id, &settings).await?;
    }
    Ok(Server {
        base: format!("http://{addr}"),
        token,
        state,
        _shutdown: tx,
    })
}

fn base_vars(dir: &std::path::Path) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("MTDESK_DATA_DIR".to_string(), dir.display().to_string());
    v.insert(
        "MTDESK_SECRET_KEY".to_string(),
        "bench-secret-key-0123456789abcdef0123456789".to_string(),
    );
    v
}

async fn login_cost(server: &Server) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::new();
    for _ in 0..LOGINS {
        let t = Instant::now();
        mtdesk_http::services::log_in(&server.state, "bench@example.com", PASSWORD, "127.0.0.1")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms)
}

async fn throughput(server: &Server) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let url = format!("{}/api/v1/chatbots", server.base);
    // Warm up connections and caches.
    for _ in 0..100 {
        client
            .get(&url)
            .bearer_auth(&server.token)
            .send()
            .await?
            .error_for_status()?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, token) = (client.clone(), url.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..REQUESTS / CONCURRENCY {
                let resp = client.get(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                resp.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(REQUESTS as f64 / started.elapsed().as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("mtdesk-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;

    let mut vars = base_vars(&dir);
    vars.insert(
        "MTDESK_DATABASE_URL".into(),
        format!("sqlite://{}", dir.join("bench.sqlite").display()),
    );
    let sqlite = start(vars).await?;
    let params = sqlite.state.config.password;
    let ms = login_cost(&sqlite).await?;
    println!(
        "login (Argon2id m={} KiB, t={}, p={}): median {:.1} ms, min {:.1} ms, max {:.1} ms over {} logins",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        median(&ms),
        ms[0],
        ms[ms.len() - 1],
        LOGINS
    );
    let sqlite_rps = throughput(&sqlite).await?;
    println!(
        "GET /api/v1/chatbots ({CHATBOTS} bots) on SQLite: {sqlite_rps:.0} req/s ({REQUESTS} requests, concurrency {CONCURRENCY})"
    );

    let admin = std::env::var("MTDESK_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("mtdesk_bench_{}", uuid::Uuid::new_v4().simple());
    match tokio::time::timeout(
        Duration::from_secs(5),
        <sqlx::AnyConnection as sqlx::Connection>::connect(&admin),
    )
    .await
    {
        Ok(Ok(mut conn)) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            let url = format!(
                "{}/{name}",
                admin.rsplit_once('/').map(|(s, _)| s).unwrap_or(&admin)
            );
            let mut vars = base_vars(&dir);
            vars.insert("MTDESK_DATABASE_URL".into(), url);
            let result = async {
                let pg = start(vars).await?;
                let rps = throughput(&pg).await?;
                pg.state.store.close().await;
                Ok::<_, anyhow::Error>(rps)
            }
            .await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
            let pg_rps = result?;
            println!(
                "GET /api/v1/chatbots ({CHATBOTS} bots) on PostgreSQL: {pg_rps:.0} req/s ({REQUESTS} requests, concurrency {CONCURRENCY})"
            );
            println!("ratio PostgreSQL/SQLite: {:.2}", pg_rps / sqlite_rps);
        }
        _ => println!("PostgreSQL at {admin} unreachable: skipped"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
