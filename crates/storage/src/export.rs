//! "Download my data": the `exports` rows (one archive build each) and the reads an archive is made of.
//!
//! # What leaves the database
//! Every exported category is a fixed list of columns ([`ExportField`]), selected by name: a column that is
//! not listed is never read, so the secrets (`accounts.password_hash`, `channels.sealed_token`,
//! `provider_keys.sealed_key`, `api_tokens.token_hash`, `sessions`) cannot end up in an archive by a
//! `SELECT *`. The same lists document the archive's format (the README inside is generated from them), so
//! the documentation cannot drift from what is written.
//!
//! # Bounded memory
//! Large tables are read in pages by keyset (`(order column, id) > cursor`), so an account with a million
//! messages is exported a few thousand rows at a time. Messages are read per batch of conversations (one
//! query when the batch is small, which it nearly always is) or per conversation in pages.
//!
//! # Claiming work on several nodes
//! A build is claimed with a conditional `UPDATE … WHERE status = 'pending'` whose row count says who won,
//! the same on both databases. While an export runs, `ready_at` holds its lease (when it was claimed or last
//! heartbeat); a `running` row whose lease is older than [`EXPORT_LEASE_MS`] belonged to a node that crashed
//! and is claimed again. At `ready`, `ready_at` becomes the finish time.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A `running` export whose lease is older than this is considered abandoned (its node crashed) and is
/// claimed again. Builders renew the lease while they work ([`Store::touch_export`]).
pub const EXPORT_LEASE_MS: i64 = 10 * 60 * 1000;

/// One row of an exported category: column name → JSON value. Times are unix milliseconds here; the
/// archive writer turns them into RFC 3339 text (see [`FieldKind::Time`]).
pub type ExportRow = serde_json::Map<String, serde_json::Value>;

/// Where an export is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    Pending,
    Running,
    Ready,
    Failed,
}

impl ExportStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "ready" => Self::Ready,
            // Anything unknown is treated as failed: never offered for download.
            _ => Self::Failed,
        }
    }
}

/// An export as stored. The link token's hash is deliberately not part of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Export {
    pub id: String,
    pub account_id: AccountId,
    pub status: ExportStatus,
    /// The archive's size once ready.
    pub size_bytes: Option<i64>,
    /// Why the build failed (short, no data).
    pub error: Option<String>,
    pub created_at: i64,
    /// When the archive was ready. While `running`, the build's lease (see the module docs).
    pub ready_at: Option<i64>,
    /// Ready: when the link stops working and the archive is deleted. Before: the deadline after which an
    /// export that never finished is purged.
    pub expires_at: i64,
}

const EXPORT_COLUMNS: &str =
    "id, account_id, status, size_bytes, error, created_at, ready_at, expires_at";

fn export_from(r: &AnyRow) -> Result<Export, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(Export {
        id: r.try_get("id")?,
        account_id: AccountId::from_db(r.try_get("account_id")?),
        status: ExportStatus::parse(&status),
        size_bytes: r.try_get("size_bytes")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        ready_at: r.try_get("ready_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

impl Store {
    /// Records a requested export (`pending`). Refused with `Conflict { field: "export" }` while the account
    /// already has one pending or running: the check and the insert run in one transaction that writes
    /// first (a no-op update of the account row), which takes PostgreSQL's row lock and SQLite's write lock,
    /// so two simultaneous requests cannot both pass. `NotFound` when the account does not exist.
    pub async fn create_export(
        &self,
        account: &AccountId,
        id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<Export> {
        let mut tx = self.pool().begin().await?;
        let locked = sqlx::query("UPDATE accounts SET updated_at = updated_at WHERE id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if locked == 0 {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        }
        let busy: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM exports WHERE account_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(account.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if busy > 0 {
            tx.rollback().await?;
            return Err(StorageError::Conflict { field: "export" });
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO exports (id, account_id, status, token_hash, created_at, expires_at)
             VALUES ($1, $2, 'pending', $3, $4, $5) RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(id)
        .bind(account.as_str())
        .bind(token_hash)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let export = export_from(&row)?;
        tx.commit().await?;
        Ok(export)
    }

    /// Claims the oldest export waiting to be built (`pending`, or `running` with a lease older than
    /// [`EXPORT_LEASE_MS`]) and marks it `running` with a fresh lease. Safe on several nodes: the claim is
    /// a conditional update, and only the node whose update changed the row gets it. `None` when nothing
    /// is waiting.
    pub async fn claim_export(&self) -> Result<Option<Export>> {
        // A few rounds: losing a race to another node means trying the next candidate.
        for _ in 0..8 {
            let now = now_ms();
            let stale = now - EXPORT_LEASE_MS;
            let candidate = sqlx::query(
                "SELECT id FROM exports
                 WHERE status = 'pending' OR (status = 'running' AND ready_at < $1)
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(stale)
            .fetch_optional(self.pool())
            .await?;
            let Some(candidate) = candidate else {
                return Ok(None);
            };
            let id: String = candidate.try_get("id")?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE exports SET status = 'running', ready_at = $2, error = NULL
                 WHERE id = $1 AND (status = 'pending' OR (status = 'running' AND ready_at < $3))
                 RETURNING {EXPORT_COLUMNS}"
            )))
            .bind(&id)
            .bind(now)
            .bind(stale)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = row {
                return Ok(Some(export_from(&row)?));
            }
        }
        Ok(None)
    }

    /// Renews a running build's lease, so a long build is not taken for a crashed one.
    pub async fn touch_export(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE exports SET ready_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a running export ready: its size, `ready_at` = now and the link's expiry. `NotFound` when the
    /// row is gone (the account was deleted, or the export purged, while it was being built).
    pub async fn export_ready(&self, id: &str, size_bytes: i64, expires_at: i64) -> Result<Export> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE exports SET status = 'ready', size_bytes = $2, ready_at = $3, expires_at = $4, error = NULL
             WHERE id = $1 AND status = 'running' RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(id)
        .bind(size_bytes)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(export_from(&r)?),
            None => Err(StorageError::NotFound),
        }
    }

    /// Marks an export failed with a short reason (cut to 300 characters). Its expiry stays the build
    /// deadline, so the row is purged like any other.
    pub async fn export_failed(&self, id: &str, error: &str) -> Result<()> {
        let error: String = error.chars().take(300).collect();
        let n = sqlx::query(
            "UPDATE exports SET status = 'failed', error = $2, ready_at = NULL WHERE id = $1 AND status <> 'ready'",
        )
        .bind(id)
        .bind(error)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// One export of `account`; another account's id is `NotFound`.
    pub async fn find_export(&self, account: &AccountId, id: &str) -> Result<Export> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1 AND account_id = $2"
        )))
        .bind(id)
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(export_from(&row)?)
    }

    /// The account's exports, newest first (at most 20; expired ones are purged within minutes).
    pub async fn list_exports(&self, account: &AccountId) -> Result<Vec<Export>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT 20"
        )))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(export_from).collect::<Result<_, _>>()?)
    }

    /// The export a link token opens: the row with this id whose `token_hash` matches (SHA-256 of the
    /// token, hex), whatever its status, so the caller can tell "expired" (410) from "unknown" (404) with
    /// one rule for links and signed-in owners alike. A wrong token is `NotFound`.
    pub async fn find_export_by_token(&self, id: &str, token_hash: &str) -> Result<Export> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1 AND token_hash = $2"
        )))
        .bind(id)
        .bind(token_hash)
        .fetch_one(self.pool())
        .await?;
        Ok(export_from(&row)?)
    }

    /// Exports whose expiry has passed (ready links after 24 hours, and builds that never finished by their
    /// deadline): `(export id, account id)`, at most 500 per call.
    pub async fn expired_exports(&self, now: i64) -> Result<Vec<(String, AccountId)>> {
        let rows = sqlx::query(
            "SELECT id, account_id FROM exports WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT 500",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("id")?,
                    AccountId::from_db(r.try_get("account_id")?),
                ))
            })
            .collect()
    }

    /// Deletes an export's row. Idempotent: returns whether a row was deleted.
    pub async fn delete_export(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM exports WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The archive's contents.

/// How a column is turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Int,
    Real,
    /// Stored as 0/1: `true` / `false`.
    Bool,
    /// Unix milliseconds in the database; RFC 3339 UTC text in the archive.
    Time,
    /// Text holding JSON, exported as that JSON (as text if it does not parse).
    Json,
}

/// One exported column: its name (in the database and in the archive), kind and meaning.
#[derive(Debug, Clone, Copy)]
pub struct ExportField {
    pub name: &'static str,
    pub kind: FieldKind,
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: FieldKind, doc: &'static str) -> ExportField {
    ExportField { name, kind, doc }
}

use FieldKind::{Bool, Int, Json, Real, Text, Time};

/// The account row, without its password hash.
pub const PROFILE_FIELDS: &[ExportField] = &[
    f("id", Text, "Account id (UUID)."),
    f("email", Text, "Sign-in and contact email."),
    f("name", Text, "Your name."),
    f("company", Text, "Company name."),
    f(
        "age_confirmed_at",
        Time,
        "When you confirmed being 16 or older.",
    ),
    f(
        "retention_days",
        Int,
        "How long messages are kept, in days (null: the default, 365).",
    ),
    f(
        "analytics_consent",
        Bool,
        "Product-analytics consent: true accepted, false declined, null never asked.",
    ),
    f(
        "analytics_consent_at",
        Time,
        "When the consent answer was given.",
    ),
    f("created_at", Time, "When the account was created."),
    f("updated_at", Time, "Last profile change."),
];

/// Messages, nested in their conversation.
pub const MESSAGE_FIELDS: &[ExportField] = &[
    f("id", Text, "Message id (UUID)."),
    f(
        "role",
        Text,
        "`user` (the end user), `assistant` (the chatbot) or `owner` (you, replying yourself).",
    ),
    f("content", Text, "The text."),
    f("created_at", Time, "When it was received or sent."),
    f(
        "channel_id",
        Text,
        "The channel it came through (null for the API and the test chat).",
    ),
    f(
        "platform_message_id",
        Text,
        "Meta's message id (mid / wamid), channel messages only.",
    ),
    f(
        "reply_to",
        Text,
        "For a reply: the id of the message it answers.",
    ),
    f(
        "delivery",
        Text,
        "Channel replies: pending, sent, delivered, read, failed or not_sent.",
    ),
    f(
        "note",
        Text,
        "Why a reply was not sent, or a delivery error.",
    ),
    f(
        "attachments",
        Json,
        "Attachments' metadata (type, URL or media id, caption).",
    ),
    f(
        "sources",
        Json,
        "For an answer: the knowledge it used (titles, URLs).",
    ),
];

/// A category exported row by row, read in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportTable {
    Chatbots,
    QaPairs,
    Sources,
    SourcePages,
    Conversations,
    Answers,
    Channels,
    ProviderKeys,
    ApiTokens,
    AnalyticsEvents,
}

impl ExportTable {
    pub const ALL: [ExportTable; 10] = [
        Self::Chatbots,
        Self::QaPairs,
        Self::Sources,
        Self::SourcePages,
        Self::Conversations,
        Self::Answers,
        Self::Channels,
        Self::ProviderKeys,
        Self::ApiTokens,
        Self::AnalyticsEvents,
    ];

    /// The database table.
    pub fn table(&self) -> &'static str {
        match self {
            Self::Chatbots => "chatbots",
            Self::QaPairs => "qa_pairs",
            Self::Sources => "sources",
            Self::SourcePages => "source_pages",
            Self::Conversations => "conversations",
            Self::Answers => "answers",
            Self::Channels => "channels",
            Self::ProviderKeys => "provider_keys",
            Self::ApiTokens => "api_tokens",
            Self::AnalyticsEvents => "usage_events",
        }
    }

    /// The time column pages are ordered by (then `id`).
    pub fn order_by(&self) -> &'static str {
        match self {
            Self::SourcePages => "fetched_at",
            _ => "created_at",
        }
    }

    /// The exported columns. Secrets are simply not listed (see the module docs).
    pub fn fields(&self) -> &'static [ExportField] {
        match self {
            Self::Chatbots => CHATBOT_FIELDS,
            Self::QaPairs => QA_PAIR_FIELDS,
            Self::Sources => SOURCE_FIELDS,
            Self::SourcePages => SOURCE_PAGE_FIELDS,
            Self::Conversations => CONVERSATION_FIELDS,
            Self::Answers => ANSWER_FIELDS,
            Self::Channels => CHANNEL_FIELDS,
            Self::ProviderKeys => PROVIDER_KEY_FIELDS,
            Self::ApiTokens => API_TOKEN_FIELDS,
            Self::AnalyticsEvents => ANALYTICS_EVENT_FIELDS,
        }
    }
}

const CHATBOT_FIELDS: &[ExportField] = &[
    f("id", Text, "Chatbot id (UUID)."),
    f("name", Text, "Name."),
    f("instructions", Text, "Instructions given to the AI model."),
    f(
        "provider",
        Text,
        "Main AI provider (e.g. openrouter, offline).",
    ),
    f("model", Text, "Main model."),
    f("temperature", Real, "Sampling temperature."),
    f("max_tokens", Int, "Longest answer, in tokens."),
    f(
        "fallback_reply",
        Text,
        "What the chatbot says when it cannot answer.",
    ),
    f(
        "fallback_chain",
        Text,
        "Providers tried after the main one, one `provider model` per line.",
    ),
    f(
        "knowledge_only",
        Bool,
        "Whether it answers only from your knowledge.",
    ),
    f(
        "embedding",
        Text,
        "Embeddings used for knowledge search (local, openrouter:<model>, none).",
    ),
    f("created_at", Time, "Created."),
    f("updated_at", Time, "Last changed."),
];

const QA_PAIR_FIELDS: &[ExportField] = &[
    f("id", Text, "Q&A pair id (UUID)."),
    f("chatbot_id", Text, "Its chatbot (see chatbots.json)."),
    f("question", Text, "Question."),
    f("answer", Text, "Answer."),
    f("position", Int, "Order within the chatbot."),
    f("created_at", Time, "Created."),
    f("updated_at", Time, "Last changed."),
];

const SOURCE_FIELDS: &[ExportField] = &[
    f("id", Text, "Source id (UUID)."),
    f("chatbot_id", Text, "Its chatbot."),
    f(
        "kind",
        Text,
        "`file` (uploaded document) or `url` (website).",
    ),
    f("name", Text, "File name or website address as given."),
    f("doc_type", Text, "Detected document type (files)."),
    f("byte_size", Int, "Size of the uploaded file, in bytes."),
    f("sha256", Text, "SHA-256 of the uploaded file, hex."),
    f(
        "status",
        Text,
        "queued, extracting, embedding, ready or failed.",
    ),
    f("error", Text, "Why processing failed."),
    f("chunk_count", Int, "Passages indexed for search."),
    f("max_pages", Int, "Websites: most pages crawled."),
    f("max_depth", Int, "Websites: deepest link level followed."),
    f("sync_schedule", Text, "manual, daily or weekly re-sync."),
    f("next_sync_at", Time, "Next scheduled re-sync."),
    f("last_synced_at", Time, "Last completed sync."),
    f("created_at", Time, "Added."),
    f("updated_at", Time, "Last changed."),
];

const SOURCE_PAGE_FIELDS: &[ExportField] = &[
    f("id", Text, "Page record id (UUID)."),
    f("source_id", Text, "The website source (see sources.json)."),
    f("url", Text, "Page address."),
    f("status", Text, "ok, skipped or failed."),
    f("detail", Text, "Why it was skipped or failed."),
    f("title", Text, "Page title."),
    f("content_hash", Text, "Hash of the extracted text."),
    f("fetched_at", Time, "When it was fetched."),
];

const CONVERSATION_FIELDS: &[ExportField] = &[
    f("id", Text, "Conversation id (UUID)."),
    f("chatbot_id", Text, "The chatbot that answered."),
    f(
        "channel",
        Text,
        "Where it happened: api, test (the dashboard's test chat), messenger, instagram, whatsapp.",
    ),
    f(
        "channel_id",
        Text,
        "The connected channel (see channels.json), if any.",
    ),
    f(
        "contact_id",
        Text,
        "The end user's platform id (PSID, IGSID, WhatsApp id), channel conversations only.",
    ),
    f(
        "contact_name",
        Text,
        "The end user's name as the platform gave it.",
    ),
    f("contact_phone", Text, "WhatsApp: the end user's number."),
    f(
        "mode",
        Text,
        "`bot`, or `human` while you have taken it over.",
    ),
    f(
        "last_inbound_at",
        Time,
        "The end user's last message (starts Meta's 24-hour window).",
    ),
    f("created_at", Time, "Started."),
    f("updated_at", Time, "Last activity."),
];

const ANSWER_FIELDS: &[ExportField] = &[
    f("id", Text, "Answer record id (UUID)."),
    f("chatbot_id", Text, "The chatbot."),
    f("conversation_id", Text, "The conversation."),
    f("question", Text, "The question answered."),
    f("answer", Text, "The answer given."),
    f(
        "provider",
        Text,
        "The provider that answered (offline: no AI).",
    ),
    f("model", Text, "The model that answered."),
    f("latency_ms", Int, "Time to answer, in milliseconds."),
    f(
        "prompt_tokens",
        Int,
        "Prompt tokens, as the provider counted.",
    ),
    f(
        "completion_tokens",
        Int,
        "Answer tokens, as the provider counted.",
    ),
    f(
        "from_knowledge",
        Bool,
        "Whether the answer used your knowledge.",
    ),
    f("answered", Bool, "False when the fallback reply was sent."),
    f("top_score", Real, "Best knowledge match score."),
    f("retrieval", Json, "Knowledge candidates and their scores."),
    f(
        "fallbacks",
        Json,
        "Providers tried before the one that answered, and why they failed.",
    ),
    f(
        "resolved_at",
        Time,
        "When you marked an unanswered question resolved.",
    ),
    f("created_at", Time, "When it was answered."),
];

const CHANNEL_FIELDS: &[ExportField] = &[
    f("id", Text, "Channel id (UUID)."),
    f("chatbot_id", Text, "The chatbot answering on it."),
    f("kind", Text, "messenger, instagram or whatsapp."),
    f(
        "external_id",
        Text,
        "Page id, Instagram account id or WhatsApp phone number id.",
    ),
    f("page_id", Text, "The Facebook Page (Messenger, Instagram)."),
    f("waba_id", Text, "WhatsApp Business Account id."),
    f(
        "name",
        Text,
        "Page name, Instagram username or display phone number.",
    ),
    f("meta_user_id", Text, "The Facebook user who connected it."),
    f("status", Text, "connected or needs_reconnect."),
    f("paused", Bool, "Whether the chatbot is paused on it."),
    f("show_sources", Bool, "Whether answers name their source."),
    f("last_event_at", Time, "Last message received."),
    f("last_reply_at", Time, "Last reply sent."),
    f("last_error", Text, "Last delivery or connection error."),
    f("last_error_at", Time, "When it happened."),
    f("created_at", Time, "Connected."),
    f("updated_at", Time, "Last changed."),
];

const PROVIDER_KEY_FIELDS: &[ExportField] = &[
    f("id", Text, "Key record id (UUID)."),
    f("provider", Text, "The AI provider the key is for."),
    f(
        "hint",
        Text,
        "The key's last 4 characters, as the dashboard shows them.",
    ),
    f("created_at", Time, "Added."),
    f("updated_at", Time, "Last replaced."),
];

const API_TOKEN_FIELDS: &[ExportField] = &[
    f("id", Text, "Token id (UUID)."),
    f("name", Text, "The name you gave it."),
    f("prefix", Text, "The token's first characters."),
    f("created_at", Time, "Created."),
    f("last_used_at", Time, "Last used."),
];

const ANALYTICS_EVENT_FIELDS: &[ExportField] = &[
    f("id", Text, "Event id (UUID)."),
    f("event", Text, "What was used."),
    f("created_at", Time, "When."),
];

/// Where the next page starts: the last row's order value and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    pub at: i64,
    pub id: String,
}

/// One page of rows, and the cursor for the next (`None` after the last page).
#[derive(Debug, Clone)]
pub struct ExportPage {
    pub rows: Vec<ExportRow>,
    pub next: Option<ExportCursor>,
}

fn column_list(fields: &[ExportField], prefix: &str) -> String {
    fields
        .iter()
        .map(|f| format!("{prefix}{}", f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_to_json(r: &AnyRow, fields: &[ExportField]) -> Result<ExportRow, sqlx::Error> {
    use serde_json::Value;
    let mut out = ExportRow::new();
    for field in fields {
        let value = match field.kind {
            Text => r
                .try_get::<Option<String>, _>(field.name)?
                .map_or(Value::Null, Value::String),
            Json => r
                .try_get::<Option<String>, _>(field.name)?
                .map_or(Value::Null, |s| {
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                }),
            Int | Time => r
                .try_get::<Option<i64>, _>(field.name)?
                .map_or(Value::Null, Value::from),
            Real => r
                .try_get::<Option<f64>, _>(field.name)?
                .map_or(Value::Null, Value::from),
            Bool => r
                .try_get::<Option<i64>, _>(field.name)?
                .map_or(Value::Null, |n| Value::Bool(n != 0)),
        };
        out.insert(field.name.to_string(), value);
    }
    Ok(out)
}

/// The cursor after `row`, read from its (still unix-ms) order column and id.
fn cursor_after(row: &ExportRow, order_by: &str) -> Option<ExportCursor> {
    Some(ExportCursor {
        at: row.get(order_by)?.as_i64()?,
        id: row.get("id")?.as_str()?.to_string(),
    })
}

fn page_of(rows: Vec<ExportRow>, limit: i64, order_by: &str) -> ExportPage {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next = if full {
        rows.last().and_then(|r| cursor_after(r, order_by))
    } else {
        None
    };
    ExportPage { rows, next }
}

impl Store {
    /// The account's profile ([`PROFILE_FIELDS`]; never the password hash).
    pub async fn export_profile(&self, account: &AccountId) -> Result<ExportRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM accounts WHERE id = $1",
            column_list(PROFILE_FIELDS, "")
        )))
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(row_to_json(&row, PROFILE_FIELDS)?)
    }

    /// One page of `table`'s rows of `account`, ordered by ([`ExportTable::order_by`], id), starting after
    /// `after`. Times are unix milliseconds.
    pub async fn export_page(
        &self,
        table: ExportTable,
        account: &AccountId,
        after: Option<&ExportCursor>,
        limit: i64,
    ) -> Result<ExportPage> {
        let order = table.order_by();
        // The first page starts below every value (the order columns are NOT NULL).
        let (at, id) = after.map_or((i64::MIN, ""), |c| (c.at, c.id.as_str()));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM {tbl} WHERE account_id = $1 AND {order} >= $2 AND ({order} > $2 OR id > $3)
             ORDER BY {order}, id LIMIT $4",
            cols = column_list(table.fields(), ""),
            tbl = table.table(),
        )))
        .bind(account.as_str())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|r| row_to_json(r, table.fields()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(rows, limit, order))
    }

    /// The messages of several conversations of `account` at once, as `(conversation id, message)` ordered
    /// by conversation, time and id; `None` when they are more than `limit` (then read each conversation
    /// with [`Store::export_conversation_messages`]). One query for the usual batch of short conversations.
    pub async fn export_messages_of(
        &self,
        account: &AccountId,
        conversations: &[String],
        limit: i64,
    ) -> Result<Option<Vec<(String, ExportRow)>>> {
        if conversations.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let placeholders = (0..conversations.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        // Scoped by the account through the conversations table, so the planner still walks messages by
        // their conversation index.
        let sql = format!(
            "SELECT m.conversation_id AS conversation_id, {cols} FROM messages m
             WHERE m.conversation_id IN (SELECT c.id FROM conversations c WHERE c.account_id = $1 AND c.id IN ({placeholders}))
             ORDER BY m.conversation_id, m.created_at, m.id LIMIT $2",
            cols = column_list(MESSAGE_FIELDS, "m."),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account.as_str())
            .bind(limit.saturating_add(1));
        for c in conversations {
            query = query.bind(c.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit {
            return Ok(None);
        }
        let out = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("conversation_id")?,
                    row_to_json(r, MESSAGE_FIELDS)?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Some(out))
    }

    /// One page of one conversation's messages, ordered by (created_at, id), after `after`.
    pub async fn export_conversation_messages(
        &self,
        account: &AccountId,
        conversation: &str,
        after: Option<&ExportCursor>,
        limit: i64,
    ) -> Result<ExportPage> {
        let (at, id) = after.map_or((i64::MIN, ""), |c| (c.at, c.id.as_str()));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM messages
             WHERE conversation_id = $2 AND account_id = $1 AND created_at >= $3 AND (created_at > $3 OR id > $4)
             ORDER BY created_at, id LIMIT $5",
            column_list(MESSAGE_FIELDS, "")
        )))
        .bind(account.as_str())
        .bind(conversation)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|r| row_to_json(r, MESSAGE_FIELDS))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(rows, limit, "created_at"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns that hold secrets are never exported, whatever is added to the lists later.
    #[test]
    fn no_secret_column_is_exported() {
        const SECRETS: [&str; 5] = [
            "password_hash",
            "sealed_token",
            "sealed_key",
            "token_hash",
            "id_hash",
        ];
        let all = ExportTable::ALL
            .iter()
            .flat_map(|t| t.fields())
            .chain(PROFILE_FIELDS)
            .chain(MESSAGE_FIELDS);
        for field in all {
            assert!(
                !SECRETS.contains(&field.name),
                "{} must never be exported",
                field.name
            );
        }
    }

    #[test]
    fn every_page_is_ordered_by_an_exported_time_column() {
        for t in ExportTable::ALL {
            let order = t
                .fields()
                .iter()
                .find(|f| f.name == t.order_by())
                .map(|f| f.kind);
            assert_eq!(order, Some(FieldKind::Time), "{}", t.table());
            assert!(t.fields().iter().any(|f| f.name == "id"), "{}", t.table());
        }
    }
}
