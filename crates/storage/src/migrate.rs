//! Paired migrations, embedded in the binary and applied by `mtdesk migrate` and at start-up.
//!
//! sqlx's own `Migrator` needs one directory per database type; we keep one list of versions with the SQL
//! for each backend side by side, so a version can never exist for one database and not the other. Each
//! migration runs in its own transaction (DDL is transactional on both databases). The checksum of each
//! applied migration is recorded; editing a migration after it was applied stops start-up instead of
//! silently diverging.

use crate::{Backend, Result, StorageError, Store};
use anyhow::Context;
use sqlx::{Acquire, Row};

/// One schema version with its SQL for both databases.
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Every migration, in order. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        description: "answering",
        sqlite: include_str!("../migrations/sqlite/0002_answering.sql"),
        postgres: include_str!("../migrations/postgres/0002_answering.sql"),
    },
    Migration {
        version: 3,
        description: "knowledge",
        sqlite: include_str!("../migrations/sqlite/0003_knowledge.sql"),
        postgres: include_str!("../migrations/postgres/0003_knowledge.sql"),
    },
    Migration {
        version: 4,
        description: "channels",
        sqlite: include_str!("../migrations/sqlite/0004_channels.sql"),
        postgres: include_str!("../migrations/postgres/0004_channels.sql"),
    },
    Migration {
        version: 5,
        description: "privacy",
        sqlite: include_str!("../migrations/sqlite/0005_privacy.sql"),
        postgres: include_str!("../migrations/postgres/0005_privacy.sql"),
    },
    Migration {
        version: 6,
        description: "outbox_requests",
        sqlite: include_str!("../migrations/sqlite/0006_outbox_requests.sql"),
        postgres: include_str!("../migrations/postgres/0006_outbox_requests.sql"),
    },
    Migration {
        version: 7,
        description: "billing",
        sqlite: include_str!("../migrations/sqlite/0007_billing.sql"),
        postgres: include_str!("../migrations/postgres/0007_billing.sql"),
    },
];

/// FNV-1a, 64 bit: enough to notice an edited file, no dependency.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in sql.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Arbitrary constant for `pg_advisory_lock`, so two nodes starting at once migrate one after the other.
const PG_LOCK_KEY: i64 = 0x6d74_6465_736b;

pub(crate) async fn run(store: &Store) -> Result<Vec<i64>> {
    let mut conn = store.pool().acquire().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_pending(store.backend(), &mut conn).await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(backend: Backend, conn: &mut sqlx::AnyConnection) -> Result<Vec<i64>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS _migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query("SELECT version, checksum FROM _migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("version")?,
                    r.try_get::<String, _>("checksum")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let sum = checksum(sql);
        if let Some((_, recorded)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *recorded != sum {
                return Err(StorageError::Config(format!(
                    "migration {} ({}) was changed after it was applied; migrations are append-only",
                    m.version, m.description
                )));
            }
            continue;
        }
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("applying migration {} ({})", m.version, m.description))?;
        sqlx::query("INSERT INTO _migrations (version, description, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(m.version)
            .bind(m.description)
            .bind(sum)
            .bind(mtdesk_domain::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            description = m.description,
            "applied migration"
        );
        done.push(m.version);
    }
    if let Some(newest) = applied.last()
        && newest.0 > MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
    {
        return Err(StorageError::Config(format!(
            "the database is at schema version {}, newer than this binary knows; upgrade mtdesk",
            newest.0
        )));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_paired_and_ordered() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "versions must increase");
            last = m.version;
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
        // Every SQL file on disk is in the list, for both databases, with the same version numbers.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for side in ["sqlite", "postgres"] {
            let mut versions: Vec<i64> = std::fs::read_dir(dir.join(side))
                .expect("migrations dir")
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.split('_').next()?.parse().ok())
                .collect();
            versions.sort();
            let listed: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
            assert_eq!(
                versions, listed,
                "{side} migrations on disk differ from MIGRATIONS"
            );
        }
    }
}
