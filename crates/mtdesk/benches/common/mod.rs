//! Helpers the benches share (included with `#[path = "common/mod.rs"] mod common;`; not a bench target).
//! Not every bench uses every helper.
#![allow(dead_code)]

/// A fresh directory under the system temp dir, named `mtdesk-bench-<tag>-<uuid>`.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mtdesk-bench-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A new, empty database on the PostgreSQL server of `MTDESK_BENCH_DATABASE_URL` (default the local
/// server); `None` when it cannot be reached, and the bench skips PostgreSQL.
pub async fn scratch_postgres() -> Option<String> {
    let admin = std::env::var("MTDESK_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .ok()?;
    let name = format!("mtdesk_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .ok()?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string())?;
    Some(format!("{base}/{name}"))
}

/// The nearest-rank percentile `p` (0–1) of sorted values; 0 when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
