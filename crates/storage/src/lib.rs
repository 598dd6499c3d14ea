//! The Store: MT Desk's one source of truth, on SQLite (embedded default) or PostgreSQL (multi-node).
//!
//! # Why one `Store` over sqlx's `Any` driver, not two copies of every query
//! The product has dozens of tables and will grow more. Writing each query twice (one per backend) doubles
//! the places a deletion can be forgotten. Almost all our SQL is portable when we stick to a common subset:
//! `$1` placeholders (SQLite accepts them), text UUID ids, integer unix-millisecond timestamps, 0/1 integers
//! for booleans, `ON CONFLICT`, `RETURNING`. That shared SQL runs through one `AnyPool`. Only the true
//! differences sit behind the backend split in [`dialect`]: full-text search (FTS5 vs `tsvector`), reading the
//! catalogue, and per-connection settings (SQLite's WAL, busy timeout, foreign keys, secure delete).
//! Migrations are paired files (`migrations/sqlite`, `migrations/postgres`) with the same versions; a test
//! checks the pairing and the storage conformance tests run the same assertions on both databases.
//!
//! # Deletion is provable
//! [`catalogue::ACCOUNT_TABLES`] lists every table that holds an account's data. Account deletion deletes from
//! each in one transaction, and the deletion test lists every table in the database catalogue and fails on a
//! table that is neither in that list nor in [`catalogue::SYSTEM_TABLES`], so a new table cannot be
//! forgotten.

pub mod accounts;
pub mod analytics;
pub mod billing;
pub mod catalogue;
pub mod channels;
pub mod chatbots;
pub mod contact;
pub mod conversations;
pub mod devices;
mod dialect;
pub mod email_links;
pub mod export;
pub mod files;
pub mod jobs;
pub mod knowledge;
mod migrate;
pub mod outbox;
pub mod plans;
pub mod privacy;
pub mod provider_keys;
pub mod qa;
pub mod requests;
pub mod sealed;
pub mod sessions;
pub mod stats;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection};

pub use accounts::Account;
pub use channels::{
    Channel, ChannelUpdate, DeliveryApplied, InboxConversation, NewChannel, NewInbound,
    NewOutbound, Recorded, ReplyWork, StoredReply, TranscriptMessage, WebhookEvent,
};
pub use chatbots::Chatbot;
pub use conversations::{AnswerRecord, Message, NewAnswer, UnansweredQuestion, UsageRow};
pub use files::FileStore;
pub use jobs::Job;
pub use knowledge::{IndexChunk, NewChunk, NewSource, Source, SourcePage};
pub use migrate::{MIGRATIONS, Migration};
pub use outbox::{NewMail, OutboxMail};
pub use plans::{AccountBilling, MessageLimits, NewPlan, Plan, UsageCounts};
pub use privacy::{DeletionRequest, Receipt, RetentionPreview};
pub use provider_keys::ProviderKey;
pub use qa::{QaMatch, QaPair};
pub use requests::{NewPrivacyRequest, PrivacyRequest, RequestTask, Subprocessor};
pub use sealed::{SealError, Sealer};
pub use tokens::ApiToken;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors a caller can act on. "No row" is [`StorageError::NotFound`], a unique violation is
/// [`StorageError::Conflict`] naming the field, everything else is [`StorageError::Other`].
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// The database URL or the database itself is unusable (bad scheme, missing directory, unreachable).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StorageError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // PostgreSQL names the constraint; SQLite only says "UNIQUE constraint failed: t.col".
                let what = db.constraint().unwrap_or(db.message()).to_string();
                let field = if what.contains("email_normalized") {
                    "email"
                } else if what.contains("token_hash") {
                    "token"
                } else {
                    "id"
                };
                StorageError::Conflict { field }
            }
            other => StorageError::Other(anyhow::Error::new(other)),
        }
    }
}

/// A parsed `MTDESK_DATABASE_URL`. Only the schemes we support are accepted: a typo is an error, never a
/// new empty database somewhere unexpected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path/to/file.sqlite` (relative) or `sqlite:///abs/path.sqlite`, also `sqlite:path`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, passed to the driver as is.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.starts_with(':') || path.contains('?') {
                return Err(StorageError::Config(format!(
                    "unsupported SQLite URL {raw:?}: give a file path, e.g. sqlite://data/mtdesk.sqlite"
                )));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = raw.split(':').next().unwrap_or("");
        Err(StorageError::Config(format!(
            "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL without any password, for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let user_part = &u[s + 3..at];
                    let user = user_part.split(':').next().unwrap_or("");
                    format!("{}{}@{}", &u[..s + 3], user, &u[at + 1..])
                }
                _ => u.clone(),
            },
        }
    }
}

/// Handle to the database. Cheap to clone (the pool is reference-counted).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects without migrating. A SQLite file is created only when its directory exists (so a typo in a
    /// path is an error); if connecting fails after creating it, the new file is removed again.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match url {
            DatabaseUrl::Sqlite(path) => {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(StorageError::Config(format!(
                        "the directory {} for the SQLite database does not exist (check MTDESK_DATABASE_URL)",
                        dir.display()
                    )));
                }
                let existed = path.exists();
                let result = Self::connect_sqlite(path).await;
                if result.is_err() && !existed {
                    remove_sqlite_files(path);
                }
                result
            }
            DatabaseUrl::Postgres(u) => {
                let opts: AnyConnectOptions = u
                    .parse()
                    .map_err(|e| StorageError::Config(format!("invalid PostgreSQL URL: {e}")))?;
                let opts = opts.disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    // Connections are opened ahead of the first requests, not by them.
                    .min_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(|e| {
                        StorageError::Config(format!(
                            "cannot connect to PostgreSQL at {}: {e}",
                            url.redacted()
                        ))
                    })?;
                Ok(Self {
                    pool,
                    backend: Backend::Postgres,
                })
            }
        }
    }

    /// The store for background work whose commits need not wait for the disk: on PostgreSQL a second pool
    /// with `synchronous_commit = off` (a crash can lose the last few milliseconds of such commits, never
    /// corrupt anything; the work they record is idempotent and is redone). Only for the channel worker's
    /// processing of events that are already durable: never for deletions or anything a user was told is
    /// done. On SQLite (WAL, `synchronous = NORMAL`) commits do not wait for the disk anyway: the same store.
    pub async fn for_background_work(&self, url: &DatabaseUrl) -> Result<Store> {
        match (url, self.backend) {
            (DatabaseUrl::Postgres(u), Backend::Postgres) => {
                let opts: AnyConnectOptions = u
                    .parse()
                    .map_err(|e| StorageError::Config(format!("invalid PostgreSQL URL: {e}")))?;
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .min_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::query("SET synchronous_commit = off")
                                .execute(conn)
                                .await
                                .map(|_| ())
                        })
                    })
                    .connect_with(opts.disable_statement_logging())
                    .await
                    .map_err(|e| {
                        StorageError::Config(format!(
                            "cannot connect to PostgreSQL at {}: {e}",
                            url.redacted()
                        ))
                    })?;
                Ok(Self {
                    pool,
                    backend: Backend::Postgres,
                })
            }
            _ => Ok(self.clone()),
        }
    }

    async fn connect_sqlite(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let opts: AnyConnectOptions = url
            .parse()
            .map_err(|e| StorageError::Config(format!("invalid SQLite path: {e}")))?;
        let opts = opts.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            // SQLite has one writer; a few readers in WAL mode are plenty for the embedded default.
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move { dialect::sqlite::configure(conn).await })
            })
            .connect_with(opts)
            .await
            .map_err(|e| {
                StorageError::Config(format!(
                    "cannot open SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// Connects and applies every pending migration.
    pub async fn open(url: &DatabaseUrl) -> Result<Self> {
        let store = Self::connect(url).await?;
        if let Err(e) = store.migrate().await {
            if let DatabaseUrl::Sqlite(path) = url
                && store.is_empty_database().await
            {
                store.pool.close().await;
                remove_sqlite_files(path);
            }
            return Err(e);
        }
        Ok(store)
    }

    /// Applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        migrate::run(self).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for `GET /healthz`.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(StorageError::from)?;
        conn.ping().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn is_empty_database(&self) -> bool {
        catalogue::list_tables(self)
            .await
            .map(|t| t.is_empty())
            .unwrap_or(false)
    }
}

fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_parsed_or_refused() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.sqlite").ok(),
            Some(DatabaseUrl::Sqlite("data/x.sqlite".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.sqlite").ok(),
            Some(DatabaseUrl::Sqlite("/tmp/x.sqlite".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:x.sqlite").ok(),
            Some(DatabaseUrl::Sqlite("x.sqlite".into()))
        );
        assert!(DatabaseUrl::parse("postgres://u@h/db").is_ok());
        assert!(DatabaseUrl::parse("postgresql://u@h/db").is_ok());
        for bad in [
            "mysql://u@h/db",
            "sqlte://x.sqlite",
            "x.sqlite",
            "",
            "sqlite::memory:",
            "sqlite://",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn redacted_url_hides_the_password() {
        let u = DatabaseUrl::parse("postgres://bob:s3cret@db.example:5432/app").expect("valid");
        assert_eq!(u.redacted(), "postgres://bob@db.example:5432/app");
    }
}
