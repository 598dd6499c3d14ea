//! "Download my data": a background build writes a ZIP of everything the account has (JSON files in a
//! documented format, a README inside, the original uploaded documents), available for 24 hours through
//! a link, then deleted.
//!
//! # The link token is derived, not stored
//! The token in the download link is `HMAC-SHA256(key derived from the instance secret, export id)`, hex.
//! The database keeps only its SHA-256 (`exports.token_hash`, for the lookup), so a database leak opens no
//! archive; and since the server can compute the token again at any time, the worker can hand it to the
//! "export ready" email after the build ([`FinishedExport::token`]) without anything secret being stored in
//! between. A link dies with its export: after 24 hours the row and the file are deleted. Rotating the
//! instance secret invalidates every outstanding link.
//!
//! # Expiry
//! At request time `expires_at` is a build deadline (creation + 24 h): an export that never finishes is
//! purged then. When the archive is ready, `expires_at` is set to ready + 24 h: the link is valid for 24
//! hours from when it can first be used. [`Exporter::purge_expired`] deletes the file and then the row.
//!
//! # Bounded memory
//! Rows are read in pages of [`PAGE`] (messages per batch of conversations), turned into JSON and handed to
//! a blocking thread that owns the ZIP writer through a small bounded channel, so neither the async workers
//! nor memory depend on the account's size. Each entry is deflated as it streams.

use mtdesk_domain::{AccountId, Month, SourceId, now_ms};
use mtdesk_storage::export::{
    Export, ExportCursor, ExportField, ExportRow, ExportStatus, ExportTable, FieldKind,
    MESSAGE_FIELDS, PROFILE_FIELDS,
};
use mtdesk_storage::{FileStore, StorageError, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// How long a ready archive can be downloaded.
pub const LINK_TTL_MS: i64 = 24 * 3600 * 1000;
/// Rows per database read (messages, answer records, Q&A pairs…).
pub const PAGE: i64 = 5_000;
/// Conversations per batch; their messages are read together when they are at most [`PAGE`].
const CONVERSATION_BATCH: i64 = 200;
/// Exports an account may request within 24 hours: each is a full copy of its data on disk.
pub const MAX_EXPORTS_PER_DAY: usize = 5;
/// How often a build renews its lease (see `mtdesk_storage::export::EXPORT_LEASE_MS`).
const HEARTBEAT: Duration = Duration::from_secs(60);
/// Bytes gathered before they are handed to the writer thread.
const CHUNK: usize = 256 * 1024;

/// Why an export could not be requested, built or downloaded.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No such export for this account, or a wrong link token (→ 404).
    #[error("not found")]
    NotFound,
    /// The account already has an export pending or running (→ 409).
    #[error(
        "an export of your data is already being prepared; it will be listed with its download link when it is ready"
    )]
    InProgress,
    /// Too many exports within 24 hours (→ 429 with Retry-After).
    #[error("at most {MAX_EXPORTS_PER_DAY} exports can be requested within 24 hours")]
    TooMany { retry_after_secs: u64 },
    /// Still being built (→ 409).
    #[error("the export is not ready yet")]
    NotReady,
    /// The build failed; a new export can be requested (→ 409).
    #[error("this export failed ({0}); please request a new one")]
    Failed(String),
    /// The link's 24 hours are over; the archive is deleted (→ 410).
    #[error("this download link has expired; please request a new export")]
    Expired,
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ExportError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ExportError::NotFound,
            StorageError::Conflict { field: "export" } => ExportError::InProgress,
            other => ExportError::Storage(other),
        }
    }
}

/// Who asks for a download: the signed-in owner (API token or dashboard session) or a holder of the
/// emailed link.
#[derive(Debug, Clone, Copy)]
pub enum DownloadBy<'a> {
    Owner(&'a AccountId),
    LinkToken(&'a str),
}

/// A ready archive to stream.
#[derive(Debug, Clone)]
pub struct Download {
    pub export: Export,
    pub path: PathBuf,
    /// `mtdesk-export-<ready date>.zip`.
    pub file_name: String,
}

/// An archive that became ready in [`Exporter::run_pending`]: what the "export ready" email needs. The
/// token is computed again from the export id (see the module docs); nothing secret was stored.
#[derive(Debug, Clone)]
pub struct FinishedExport {
    pub account_id: AccountId,
    pub export_id: String,
    pub size_bytes: i64,
    pub expires_at: i64,
    pub token: String,
}

impl FinishedExport {
    /// The download link's path and query; prefix it with the public URL.
    pub fn link_path(&self) -> String {
        link_path(&self.export_id, &self.token)
    }
}

/// `/api/v1/account/export/{id}/download?token=…`: the link that works without signing in.
pub fn link_path(export_id: &str, token: &str) -> String {
    format!("/api/v1/account/export/{export_id}/download?token={token}")
}

/// Requests, builds, serves and purges exports. Cheap to clone; clones share the worker's wake-up.
#[derive(Clone)]
pub struct Exporter {
    store: Store,
    files: FileStore,
    link_key: [u8; 32],
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut out = [0u8; 32];
    if let Ok(mut m) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) {
        for p in parts {
            m.update(p);
        }
        out.copy_from_slice(&m.finalize().into_bytes());
    }
    out
}

impl Exporter {
    /// `secret_key` is the instance secret; link tokens are keyed with a key derived from it.
    pub fn new(store: Store, files: FileStore, secret_key: &[u8]) -> Self {
        Self {
            store,
            files,
            link_key: hmac(secret_key, &[b"mtdesk export links v1"]),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The download token of an export: HMAC(link key, id), hex (64 characters).
    pub fn link_token(&self, export_id: &str) -> String {
        hex(&hmac(&self.link_key, &[export_id.as_bytes()]))
    }

    /// Resolves when an export was requested since the last call (or at once if one was meanwhile): the
    /// worker waits on this between its rounds.
    pub async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Requests an export of `account` (pending) and wakes the worker. Returns the export and its link
    /// token. Refused while one is pending or running, and after [`MAX_EXPORTS_PER_DAY`] in 24 hours.
    pub async fn request(&self, account: &AccountId) -> Result<(Export, String), ExportError> {
        let now = now_ms();
        let recent: Vec<i64> = self
            .store
            .list_exports(account)
            .await?
            .iter()
            .map(|e| e.created_at)
            .filter(|t| *t > now - LINK_TTL_MS)
            .collect();
        if recent.len() >= MAX_EXPORTS_PER_DAY {
            let oldest = recent.iter().min().copied().unwrap_or(now);
            let wait_ms = (oldest + LINK_TTL_MS - now).max(1_000);
            return Err(ExportError::TooMany {
                retry_after_secs: u64::try_from(wait_ms / 1000).unwrap_or(1),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let token = self.link_token(&id);
        let export = self
            .store
            .create_export(account, &id, &sha256_hex(&token), now + LINK_TTL_MS)
            .await?;
        tracing::info!(account.id = %account, export.id = %id, "data export requested");
        self.wake.notify_one();
        Ok((export, token))
    }

    /// The account's exports, newest first.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<Export>, ExportError> {
        Ok(self.store.list_exports(account).await?)
    }

    /// Whether `export` can be downloaded now (ready, link not expired).
    pub fn downloadable(export: &Export, now: i64) -> bool {
        export.status == ExportStatus::Ready && export.expires_at > now
    }

    /// Opens a ready archive for download. Unknown ids, another account's ids and wrong tokens are
    /// `NotFound`; a pending or running build is `NotReady`; an expired link (or a vanished file) is
    /// `Expired`.
    pub async fn open_download(
        &self,
        id: &str,
        by: DownloadBy<'_>,
        now: i64,
    ) -> Result<Download, ExportError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ExportError::NotFound);
        }
        let export = match by {
            DownloadBy::Owner(account) => self.store.find_export(account, id).await?,
            DownloadBy::LinkToken(token) => {
                if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ExportError::NotFound);
                }
                self.store
                    .find_export_by_token(id, &sha256_hex(&token.to_ascii_lowercase()))
                    .await?
            }
        };
        match export.status {
            ExportStatus::Pending | ExportStatus::Running => return Err(ExportError::NotReady),
            ExportStatus::Failed => {
                return Err(ExportError::Failed(
                    export
                        .error
                        .clone()
                        .unwrap_or_else(|| "unknown error".into()),
                ));
            }
            ExportStatus::Ready => {}
        }
        if export.expires_at <= now {
            return Err(ExportError::Expired);
        }
        let path = self.files.export_path(&export.account_id, &export.id)?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(ExportError::Expired);
        }
        let file_name = format!(
            "mtdesk-export-{}.zip",
            day(export.ready_at.unwrap_or(export.created_at))
        );
        Ok(Download {
            export,
            path,
            file_name,
        })
    }

    /// Builds every waiting export, one at a time (claimed so that two nodes never build the same one);
    /// a build that fails is marked `failed` with a short reason. Returns the archives that became ready:
    /// **this is where the "export ready" email is to be queued** (by the caller, for each of them).
    pub async fn run_pending(&self) -> Result<Vec<FinishedExport>, ExportError> {
        let mut finished = Vec::new();
        while let Some(export) = self.store.claim_export().await? {
            let started = std::time::Instant::now();
            match self.build(&export).await {
                Ok(Some(done)) => {
                    tracing::info!(
                        account.id = %done.account_id,
                        export.id = %done.export_id,
                        bytes = done.size_bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "data export ready"
                    );
                    finished.push(done);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(
                        account.id = %export.account_id,
                        export.id = %export.id,
                        error = %e,
                        "data export failed"
                    );
                    self.discard(&export.account_id, &export.id).await;
                    match self
                        .store
                        .export_failed(&export.id, failure_reason(&e))
                        .await
                    {
                        Ok(()) => {}
                        Err(StorageError::NotFound) => {
                            self.forget_if_deleted(&export.account_id).await
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(finished)
    }

    async fn build(&self, export: &Export) -> Result<Option<FinishedExport>, ExportError> {
        let path = self.files.export_path(&export.account_id, &export.id)?;
        let store = self.store.clone();
        let id = export.id.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(e) = store.touch_export(&id).await {
                    tracing::warn!(error = %e, "renewing a data export's lease failed");
                }
            }
        });
        let built = build_export(&self.store, &self.files, &export.account_id, &path).await;
        heartbeat.abort();
        let size = i64::try_from(built?).unwrap_or(i64::MAX);
        match self
            .store
            .export_ready(&export.id, size, now_ms() + LINK_TTL_MS)
            .await
        {
            Ok(ready) => Ok(Some(FinishedExport {
                token: self.link_token(&ready.id),
                account_id: ready.account_id,
                export_id: ready.id,
                size_bytes: size,
                expires_at: ready.expires_at,
            })),
            // The row went while we built (account deleted, export purged): so does the archive.
            Err(StorageError::NotFound) => {
                self.discard(&export.account_id, &export.id).await;
                self.forget_if_deleted(&export.account_id).await;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn discard(&self, account: &AccountId, id: &str) {
        if let Err(e) = self.files.delete_export_file(account, id) {
            tracing::error!(export.id = %id, error = %e, "removing a data export's file failed");
        }
    }

    /// After a build raced an account deletion: the directory the build may have created goes too.
    async fn forget_if_deleted(&self, account: &AccountId) {
        if let Err(StorageError::NotFound) = self.store.find_account(account).await
            && let Err(e) = self.files.delete_account(account)
        {
            tracing::error!(account.id = %account, error = %e, "removing a deleted account's files failed");
        }
    }

    /// Deletes every export whose expiry has passed: the file first, then the row (a crash in between
    /// leaves a row whose file is already gone, deleted at the next run). Returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<usize, ExportError> {
        let mut purged = 0;
        loop {
            let batch = self.store.expired_exports(now).await?;
            let full = batch.len() >= 500;
            let mut stuck = 0;
            for (id, account) in batch {
                // One unremovable file must not keep every other expired archive on disk.
                if let Err(e) = self.files.delete_export_file(&account, &id) {
                    tracing::error!(export.id = %id, error = %e, "deleting an expired export's file failed");
                    stuck += 1;
                    continue;
                }
                if self.store.delete_export(&id).await? {
                    purged += 1;
                }
            }
            if !full || stuck > 0 {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(exports = purged, "expired data exports deleted");
        }
        Ok(purged)
    }
}

/// What a failed export shows its owner: short, and never a path or a piece of data.
fn failure_reason(e: &ExportError) -> &'static str {
    match e {
        ExportError::NotFound => "the account no longer exists",
        ExportError::Io(_) | ExportError::Zip(_) => {
            "the archive could not be written on the server"
        }
        ExportError::Storage(_) => "the data could not be read from the database",
        _ => "an unexpected error",
    }
}

/// `2026-03-05` (UTC) of a unix-ms time.
fn day(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| "export".into())
}

/// RFC 3339 UTC text of a unix-ms time, e.g. `2026-03-05T14:03:09.123Z`.
pub fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

/// Turns a row read from the store into its archive form: times as RFC 3339 text.
fn finish_row(fields: &[ExportField], row: &mut ExportRow) {
    for field in fields.iter().filter(|f| f.kind == FieldKind::Time) {
        if let Some(v) = row.get_mut(field.name)
            && let Some(ms) = v.as_i64()
        {
            *v = rfc3339(ms).map_or(Value::Null, Value::String);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The archive.

/// Writes the whole archive of `account` to `out_path` (a temporary name first, renamed when complete,
/// so a half-written archive is never served). Returns its size in bytes. `NotFound` when the account
/// does not exist (nothing is written then).
pub async fn build_export(
    store: &Store,
    files: &FileStore,
    account: &AccountId,
    out_path: &Path,
) -> Result<u64, ExportError> {
    let profile = store.export_profile(account).await?;
    let dir = out_path
        .parent()
        .ok_or_else(|| std::io::Error::other("export path has no directory"))?;
    tokio::fs::create_dir_all(dir).await?;
    let stem = out_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{stem}.{}.partial",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    let mut zip = ZipSink::create(tmp.clone());
    let written = async {
        write_archive(store, files, account, profile, &mut zip).await?;
        zip.finish().await
    }
    .await;
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            zip.abort().await;
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if let Err(e) = tokio::fs::rename(&tmp, out_path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e.into());
    }
    Ok(size)
}

/// What the README reports per file.
struct Counts(Vec<(&'static str, u64)>);

async fn write_archive(
    store: &Store,
    files: &FileStore,
    account: &AccountId,
    mut profile: ExportRow,
    zip: &mut ZipSink,
) -> Result<(), ExportError> {
    let generated_at = now_ms();
    let mut counts = Counts(Vec::new());

    finish_row(PROFILE_FIELDS, &mut profile);
    zip.start("profile.json", false).await?;
    zip.put(&json_pretty(&Value::Object(profile))).await?;
    counts.0.push(("profile.json", 1));

    for (file, table) in [
        ("chatbots.json", ExportTable::Chatbots),
        ("qa_pairs.json", ExportTable::QaPairs),
        ("source_pages.json", ExportTable::SourcePages),
        ("channels.json", ExportTable::Channels),
        ("provider_keys.json", ExportTable::ProviderKeys),
        ("api_tokens.json", ExportTable::ApiTokens),
        ("analytics_events.json", ExportTable::AnalyticsEvents),
    ] {
        let n = write_rows(store, account, zip, file, table, |_| {}).await?;
        counts.0.push((file, n));
    }

    // The originals first (each its own entry), then sources.json saying where each one is.
    let (originals, copied) = write_originals(store, files, account, zip).await?;
    counts.0.push(("sources/", copied));
    let n = write_rows(
        store,
        account,
        zip,
        "sources.json",
        ExportTable::Sources,
        |row| {
            let id = row.get("id").and_then(Value::as_str).unwrap_or("");
            let (file, note) = match originals.get(id) {
                Some(Some(path)) => (Value::String(path.clone()), Value::Null),
                Some(None) => (
                    Value::Null,
                    Value::String(
                        "the original file was not found on the server; its extracted text is no longer available either"
                            .into(),
                    ),
                ),
                None => (Value::Null, Value::Null),
            };
            row.insert("original_file".into(), file);
            row.insert("original_note".into(), note);
        },
    )
    .await?;
    counts.0.push(("sources.json", n));

    let (conversations, messages) = write_conversations(store, account, zip).await?;
    counts.0.push(("conversations.jsonl", conversations));
    counts.0.push(("(messages)", messages));

    let (answers, usage) = write_answers(store, account, zip).await?;
    counts.0.push(("answers.jsonl", answers));
    zip.start("usage.json", false).await?;
    zip.put(&json_pretty(&usage.to_json())).await?;
    counts.0.push(("usage.json", usage.months.len() as u64));

    // Billing: the subscription state and every invoice (the Stripe customer and subscription ids are
    // references to the person's records at Stripe, so they are theirs too).
    let state = store.billing_state(account).await?;
    let invoices = store.list_invoices(account).await?;
    let billing = serde_json::json!({
        "plan_id": state.plan_id,
        "billing_status": state.status,
        "stripe_customer_id": state.stripe_customer_id,
        "stripe_subscription_id": state.stripe_subscription_id,
        "grace_until": state.grace_until.and_then(rfc3339),
        "invoices": invoices.iter().map(|i| serde_json::json!({
            "number": i.number,
            "stripe_invoice_id": i.stripe_invoice_id,
            "status": i.status,
            "amount_cents": i.amount_cents,
            "currency": i.currency,
            "billing_name": i.billing_name,
            "billing_country": i.billing_country,
            "hosted_url": i.hosted_url,
            "issued_at": rfc3339(i.issued_at),
        })).collect::<Vec<_>>(),
    });
    zip.start("billing.json", false).await?;
    zip.put(&json_pretty(&billing)).await?;
    counts.0.push(("billing.json", invoices.len() as u64));

    // Sign-in devices (their labels and times; the keyed hash that recognises them is not data about
    // the person) and the messages sent from the account's address through the contact page.
    let devices = store.list_devices(account).await?;
    let devices_json: Vec<Value> = devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "label": d.label,
                "first_seen_at": rfc3339(d.first_seen_at),
                "last_seen_at": rfc3339(d.last_seen_at),
            })
        })
        .collect();
    zip.start("devices.json", false).await?;
    zip.put(&json_pretty(&Value::Array(devices_json))).await?;
    counts.0.push(("devices.json", devices.len() as u64));
    let owner = store.find_account(account).await?;
    let contacts = store.list_contacts_by_email(&owner.email).await?;
    let contacts_json: Vec<Value> = contacts
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "email": c.email,
                "topic": c.topic,
                "message": c.message,
                "sent_at": rfc3339(c.created_at),
            })
        })
        .collect();
    zip.start("contact_messages.json", false).await?;
    zip.put(&json_pretty(&Value::Array(contacts_json))).await?;
    counts
        .0
        .push(("contact_messages.json", contacts.len() as u64));

    zip.start("README.md", false).await?;
    zip.put(readme(account, generated_at, &counts).as_bytes())
        .await?;
    Ok(())
}

fn json_pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_else(|_| b"null".to_vec());
    out.push(b'\n');
    out
}

fn json_line(v: &ExportRow) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// One category as `file`: a JSON array (one object per line) for `.json`, JSON Lines for `.jsonl`.
/// `edit` sees each row before its times are formatted (unix ms). Returns the row count.
async fn write_rows(
    store: &Store,
    account: &AccountId,
    zip: &mut ZipSink,
    file: &'static str,
    table: ExportTable,
    mut edit: impl FnMut(&mut ExportRow),
) -> Result<u64, ExportError> {
    let lines = file.ends_with(".jsonl");
    zip.start(file, lines).await?;
    if !lines {
        zip.put(b"[").await?;
    }
    let mut count = 0u64;
    let mut after: Option<ExportCursor> = None;
    loop {
        let page = store
            .export_page(table, account, after.as_ref(), PAGE)
            .await?;
        for mut row in page.rows {
            edit(&mut row);
            finish_row(table.fields(), &mut row);
            if lines {
                zip.put(&json_line(&row)).await?;
                zip.put(b"\n").await?;
            } else {
                zip.put(if count == 0 { b"\n" } else { b",\n" }).await?;
                zip.put(&json_line(&row)).await?;
            }
            count += 1;
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    if !lines {
        zip.put(if count == 0 { b"]\n" } else { b"\n]\n" }).await?;
    }
    Ok(count)
}

/// A source's original file name made safe as the last part of an archive path: no directories, no
/// control characters, no leading dots.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        "original".into()
    } else {
        cleaned.to_string()
    }
}

/// Copies every uploaded file's original to `sources/<source id>/<file name>`. Returns, per file source,
/// its path in the archive (`None` when the original is missing on disk), and how many were copied.
async fn write_originals(
    store: &Store,
    files: &FileStore,
    account: &AccountId,
    zip: &mut ZipSink,
) -> Result<(HashMap<String, Option<String>>, u64), ExportError> {
    let mut originals = HashMap::new();
    let mut copied = 0;
    let mut after: Option<ExportCursor> = None;
    loop {
        let page = store
            .export_page(ExportTable::Sources, account, after.as_ref(), PAGE)
            .await?;
        for row in &page.rows {
            if row.get("kind").and_then(Value::as_str) != Some("file") {
                continue;
            }
            let (Some(id), Some(name)) = (
                row.get("id").and_then(Value::as_str),
                row.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let archive_path = format!("sources/{id}/{}", safe_file_name(name));
            let on_disk = files.source_path(account, &SourceId::from_db(id.to_string()));
            let found = zip.copy_file(archive_path.clone(), on_disk).await?;
            if found {
                copied += 1;
            } else {
                tracing::warn!(source.id = %id, "a source's original is missing; noted in the export");
            }
            originals.insert(id.to_string(), found.then_some(archive_path));
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    Ok((originals, copied))
}

/// `conversations.jsonl`: one conversation per line with its `messages` array, written message by
/// message so that even one enormous conversation is never held whole. Returns (conversations, messages).
async fn write_conversations(
    store: &Store,
    account: &AccountId,
    zip: &mut ZipSink,
) -> Result<(u64, u64), ExportError> {
    zip.start("conversations.jsonl", true).await?;
    let (mut conversations, mut messages) = (0u64, 0u64);
    let mut after: Option<ExportCursor> = None;
    loop {
        let page = store
            .export_page(
                ExportTable::Conversations,
                account,
                after.as_ref(),
                CONVERSATION_BATCH,
            )
            .await?;
        let ids: Vec<String> = page
            .rows
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        // Usually one query for the whole batch; a batch with very long conversations is read per
        // conversation, page by page.
        let mut grouped: Option<HashMap<String, Vec<ExportRow>>> = store
            .export_messages_of(account, &ids, PAGE)
            .await?
            .map(|rows| {
                let mut map: HashMap<String, Vec<ExportRow>> = HashMap::new();
                for (conversation, row) in rows {
                    map.entry(conversation).or_default().push(row);
                }
                map
            });
        for mut conversation in page.rows {
            let id = conversation
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            finish_row(ExportTable::Conversations.fields(), &mut conversation);
            // `{…fields…, "messages": [` — the object is closed after its messages.
            let mut head = json_line(&conversation);
            head.pop();
            head.extend_from_slice(br#","messages":["#);
            zip.put(&head).await?;
            let mut first = true;
            let mut write_message = async |zip: &mut ZipSink, mut m: ExportRow| {
                finish_row(MESSAGE_FIELDS, &mut m);
                if !first {
                    zip.put(b",").await?;
                }
                first = false;
                zip.put(&json_line(&m)).await
            };
            match grouped.as_mut() {
                Some(map) => {
                    for m in map.remove(&id).unwrap_or_default() {
                        write_message(zip, m).await?;
                        messages += 1;
                    }
                }
                None => {
                    let mut cursor: Option<ExportCursor> = None;
                    loop {
                        let page = store
                            .export_conversation_messages(account, &id, cursor.as_ref(), PAGE)
                            .await?;
                        for m in page.rows {
                            write_message(zip, m).await?;
                            messages += 1;
                        }
                        match page.next {
                            Some(c) => cursor = Some(c),
                            None => break,
                        }
                    }
                }
            }
            zip.put(b"]}\n").await?;
            conversations += 1;
        }
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    Ok((conversations, messages))
}

/// Answer records summed per month (UTC) and per provider and model.
#[derive(Default)]
struct Usage {
    months: BTreeMap<String, BTreeMap<(String, String), Totals>>,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    answers: i64,
    unanswered: i64,
    from_knowledge: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.answers += o.answers;
        self.unanswered += o.unanswered;
        self.from_knowledge += o.from_knowledge;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }

    fn to_json(self) -> serde_json::Map<String, Value> {
        let Value::Object(map) = json!({
            "answers": self.answers,
            "unanswered": self.unanswered,
            "from_knowledge": self.from_knowledge,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }) else {
            return serde_json::Map::new();
        };
        map
    }
}

impl Usage {
    /// Counts one answer record (still with unix-ms times).
    fn add(&mut self, row: &ExportRow) {
        let int = |k: &str| row.get(k).and_then(Value::as_i64).unwrap_or(0);
        let flag = |k: &str| row.get(k).and_then(Value::as_bool).unwrap_or(false);
        let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let month = Month::of_ms(int("created_at")).to_string();
        let t = self
            .months
            .entry(month)
            .or_default()
            .entry((text("provider"), text("model")))
            .or_default();
        t.add(&Totals {
            answers: 1,
            unanswered: i64::from(!flag("answered")),
            from_knowledge: i64::from(flag("from_knowledge")),
            prompt_tokens: int("prompt_tokens"),
            completion_tokens: int("completion_tokens"),
        });
    }

    fn to_json(&self) -> Value {
        let months: Vec<Value> = self
            .months
            .iter()
            .map(|(month, models)| {
                let mut total = Totals::default();
                let by_model: Vec<Value> = models
                    .iter()
                    .map(|((provider, model), t)| {
                        total.add(t);
                        let mut m = t.to_json();
                        m.insert("provider".into(), Value::String(provider.clone()));
                        m.insert("model".into(), Value::String(model.clone()));
                        Value::Object(m)
                    })
                    .collect();
                let mut m = total.to_json();
                m.insert("month".into(), Value::String(month.clone()));
                m.insert("by_model".into(), Value::Array(by_model));
                Value::Object(m)
            })
            .collect();
        json!({ "months": months })
    }
}

/// `answers.jsonl`, summing usage on the way.
async fn write_answers(
    store: &Store,
    account: &AccountId,
    zip: &mut ZipSink,
) -> Result<(u64, Usage), ExportError> {
    let mut usage = Usage::default();
    let n = write_rows(
        store,
        account,
        zip,
        "answers.jsonl",
        ExportTable::Answers,
        |row| usage.add(row),
    )
    .await?;
    Ok((n, usage))
}

// ---------------------------------------------------------------------------------------------------------
// The README inside the archive, generated from the same field lists the export reads.

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Int => "integer",
        FieldKind::Real => "number",
        FieldKind::Bool => "boolean",
        FieldKind::Time => "time (RFC 3339, UTC)",
        FieldKind::Json => "JSON",
    }
}

fn field_table(out: &mut String, fields: &[ExportField], extra: &[(&str, &str, &str)]) {
    out.push_str("| Field | Type | Meaning |\n|---|---|---|\n");
    for f in fields {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            f.name,
            kind_name(f.kind),
            f.doc
        ));
    }
    for (name, kind, doc) in extra {
        out.push_str(&format!("| `{name}` | {kind} | {doc} |\n"));
    }
    out.push('\n');
}

fn readme(account: &AccountId, generated_at: i64, counts: &Counts) -> String {
    let count = |file: &str| {
        counts
            .0
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let mut s = String::new();
    s.push_str(&format!(
        "# Your MT Desk data\n\n\
         Everything MT Desk holds for account `{account}`, exported at {}.\n\n\
         ## Format\n\n\
         - Text files are UTF-8 JSON. A `.json` file holds one JSON value (the lists: an array with one \
         object per line). A `.jsonl` file is [JSON Lines](https://jsonlines.org/): one JSON object per \
         line, for the files that can be large.\n\
         - Times are RFC 3339 text in UTC, e.g. `2026-03-05T14:03:09.123Z`.\n\
         - Ids are UUIDs; records refer to each other by them (`chatbot_id` → `chatbots.json`, \
         `conversation_id` → `conversations.jsonl`, `channel_id` → `channels.json`, `source_id` → \
         `sources.json`).\n\
         - A field without a value is `null`.\n\
         - Not included, on purpose: your password (only a hash is kept, and not exported), API tokens and AI \
         provider keys (only their name, prefix or last 4 characters), Meta access tokens of your channels, and \
         sign-in sessions. The passages your documents were split into for search are derived from the \
         originals included here and are not exported separately.\n\n\
         ## Files\n\n\
         | File | Records | What |\n|---|---|---|\n",
        rfc3339(generated_at).unwrap_or_default()
    ));
    for (file, what) in [
        ("profile.json", "Your account (one object)."),
        ("chatbots.json", "Your chatbots and their settings."),
        ("qa_pairs.json", "The Q&A pairs of every chatbot."),
        (
            "sources.json",
            "Knowledge sources: uploaded documents and websites.",
        ),
        (
            "sources/",
            "The original uploaded files: `sources/<source id>/<file name>`.",
        ),
        ("source_pages.json", "Every page a website crawl met."),
        (
            "conversations.jsonl",
            "Conversations, each with its messages.",
        ),
        (
            "answers.jsonl",
            "One record per answer: the question, the answer, provider, model, tokens, latency.",
        ),
        (
            "usage.json",
            "Answers and tokens per month (UTC) and per provider and model, summed from answers.jsonl.",
        ),
        (
            "channels.json",
            "Connected Messenger, Instagram and WhatsApp channels (no access tokens).",
        ),
        (
            "provider_keys.json",
            "Your own AI provider keys: provider and last 4 characters only.",
        ),
        ("api_tokens.json", "Your API tokens: name and prefix only."),
        (
            "analytics_events.json",
            "Product-usage events, recorded only while you consent.",
        ),
        (
            "billing.json",
            "Your plan, subscription state and invoices (count: invoices). Empty when this server does not charge.",
        ),
        (
            "devices.json",
            "The browsers you signed in from, as we recognise them for new sign-in notices.",
        ),
        (
            "contact_messages.json",
            "Messages sent from your address through the contact page (kept 12 months).",
        ),
    ] {
        s.push_str(&format!("| `{file}` | {} | {what} |\n", count(file)));
    }
    s.push_str(&format!(
        "\nThe conversations hold {} messages in all.\n\n## Fields\n\n",
        count("(messages)")
    ));

    s.push_str("### profile.json\n\n");
    field_table(&mut s, PROFILE_FIELDS, &[]);
    for (file, table, extra) in [
        ("chatbots.json", ExportTable::Chatbots, &[][..]),
        ("qa_pairs.json", ExportTable::QaPairs, &[]),
        (
            "sources.json",
            ExportTable::Sources,
            &[
                (
                    "original_file",
                    "text",
                    "Uploaded files: where the original is in this archive (null for websites, or when the original is missing).",
                ),
                (
                    "original_note",
                    "text",
                    "Why an uploaded file's original is not included.",
                ),
            ][..],
        ),
        ("source_pages.json", ExportTable::SourcePages, &[]),
    ] {
        s.push_str(&format!("### {file}\n\n"));
        field_table(&mut s, table.fields(), extra);
    }
    s.push_str("### conversations.jsonl\n\nOne line per conversation:\n\n");
    field_table(
        &mut s,
        ExportTable::Conversations.fields(),
        &[(
            "messages",
            "array",
            "Its messages, oldest first, with the fields below.",
        )],
    );
    s.push_str("Each message:\n\n");
    field_table(&mut s, MESSAGE_FIELDS, &[]);
    s.push_str("### answers.jsonl\n\nOne line per answer:\n\n");
    field_table(&mut s, ExportTable::Answers.fields(), &[]);
    s.push_str(
        "### usage.json\n\n\
         `{\"months\": [...]}`, oldest month first. Each month: `month` (`YYYY-MM`, UTC), `answers`, \
         `unanswered` (the fallback reply was sent), `from_knowledge`, `prompt_tokens`, `completion_tokens`, \
         and `by_model`: the same counts per `provider` and `model`. Months whose answer records were \
         purged by your retention setting are not counted.\n\n",
    );
    for (file, table) in [
        ("channels.json", ExportTable::Channels),
        ("provider_keys.json", ExportTable::ProviderKeys),
        ("api_tokens.json", ExportTable::ApiTokens),
        ("analytics_events.json", ExportTable::AnalyticsEvents),
    ] {
        s.push_str(&format!("### {file}\n\n"));
        field_table(&mut s, table.fields(), &[]);
    }
    s.push_str(
        "### billing.json\n\n\
         An object: `plan_id` (null: the default plan), `billing_status` (none, active, trialing, past_due, \
         unpaid, canceled), `stripe_customer_id` and `stripe_subscription_id` (your records at Stripe), \
         `grace_until` (after a failed payment), and `invoices`: each with `number`, `stripe_invoice_id`, \
         `status`, `amount_cents`, `currency`, `billing_name`, `billing_country`, `hosted_url` (Stripe's \
         invoice page) and `issued_at`.\n\n\
         ### devices.json\n\n\
         A list: `label` (e.g. \"Firefox on Linux\"), `first_seen_at`, `last_seen_at`.\n\n\
         ### contact_messages.json\n\n\
         A list: `name`, `email`, `topic` (support, billing, privacy), `message`, `sent_at`.\n",
    );
    s
}

// ---------------------------------------------------------------------------------------------------------
// The ZIP writer: a blocking thread owning the file, fed through a bounded channel.

enum Cmd {
    /// A new entry; `large` allows it to exceed 4 GiB (ZIP64).
    Start(String, bool),
    Data(Vec<u8>),
    /// A file on disk as a new entry; answers whether the file existed.
    Copy {
        name: String,
        from: PathBuf,
        found: oneshot::Sender<bool>,
    },
    Finish,
}

struct ZipSink {
    tx: Option<mpsc::Sender<Cmd>>,
    thread: Option<tokio::task::JoinHandle<Result<u64, ExportError>>>,
    buf: Vec<u8>,
}

impl ZipSink {
    fn create(path: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let thread = tokio::task::spawn_blocking(move || write_zip(&path, rx));
        Self {
            tx: Some(tx),
            thread: Some(thread),
            buf: Vec::with_capacity(CHUNK),
        }
    }

    async fn send(&mut self, cmd: Cmd) -> Result<(), ExportError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(cmd).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.failure().await)
        }
    }

    /// The writer thread stopped: its error.
    async fn failure(&mut self) -> ExportError {
        self.tx = None;
        match self.thread.take() {
            Some(handle) => match handle.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => std::io::Error::other("the archive was closed early").into(),
                Err(e) => std::io::Error::other(format!("the archive writer stopped: {e}")).into(),
            },
            None => std::io::Error::other("the archive writer stopped").into(),
        }
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        if !self.buf.is_empty() {
            let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.send(Cmd::Data(data)).await?;
        }
        Ok(())
    }

    async fn start(&mut self, name: &str, large: bool) -> Result<(), ExportError> {
        self.flush().await?;
        self.send(Cmd::Start(name.to_string(), large)).await
    }

    async fn put(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn copy_file(&mut self, name: String, from: PathBuf) -> Result<bool, ExportError> {
        self.flush().await?;
        let (found, answer) = oneshot::channel();
        self.send(Cmd::Copy { name, from, found }).await?;
        match answer.await {
            Ok(found) => Ok(found),
            Err(_) => Err(self.failure().await),
        }
    }

    /// Completes the archive (central directory, fsync); returns its size.
    async fn finish(&mut self) -> Result<u64, ExportError> {
        self.flush().await?;
        self.send(Cmd::Finish).await?;
        self.tx = None;
        match self.thread.take() {
            Some(handle) => handle
                .await
                .map_err(|e| std::io::Error::other(format!("the archive writer stopped: {e}")))?,
            None => Err(std::io::Error::other("the archive writer stopped").into()),
        }
    }

    /// Stops the writer without completing the archive and waits for it to let go of the file.
    async fn abort(&mut self) {
        self.tx = None;
        if let Some(handle) = self.thread.take() {
            let _ = handle.await;
        }
    }
}

fn zip_time_now() -> zip::DateTime {
    let now = time::OffsetDateTime::now_utc();
    u16::try_from(now.year())
        .ok()
        .and_then(|y| {
            zip::DateTime::from_date_and_time(
                y,
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// The writer thread: runs the commands in order; ends with the archive's size at `Finish`, or an error
/// (the channel closing without `Finish` is an abort).
fn write_zip(path: &Path, mut rx: mpsc::Receiver<Cmd>) -> Result<u64, ExportError> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::with_capacity(CHUNK, file));
    let modified = zip_time_now();
    let options = |large: bool| {
        SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(modified)
            .unix_permissions(0o644)
            .large_file(large)
    };
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Start(name, large) => zip.start_file(name, options(large))?,
            Cmd::Data(bytes) => zip.write_all(&bytes)?,
            Cmd::Copy { name, from, found } => match std::fs::File::open(&from) {
                Ok(mut src) => {
                    let large = src.metadata()?.len() > 0xF000_0000;
                    zip.start_file(name, options(large))?;
                    std::io::copy(&mut src, &mut zip)?;
                    let _ = found.send(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = found.send(false);
                }
                Err(e) => return Err(e.into()),
            },
            Cmd::Finish => {
                let mut out = zip.finish()?;
                out.flush()?;
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                return Ok(file.metadata()?.len());
            }
        }
    }
    Err(std::io::Error::other("the archive was abandoned").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_leave_their_folder() {
        assert_eq!(safe_file_name("guide.pdf"), "guide.pdf");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Users\\ann\\notes.txt"), "notes.txt");
        assert_eq!(safe_file_name(".."), "original");
        assert_eq!(safe_file_name(".hidden"), "hidden");
        assert_eq!(safe_file_name("a\u{0}b\nc.md"), "abc.md");
        assert_eq!(safe_file_name(""), "original");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_741_183_389_123).as_deref(),
            Some("2025-03-05T14:03:09.123Z")
        );
        assert_eq!(day(1_741_183_389_123), "2025-03-05");
    }

    #[test]
    fn link_tokens_are_keyed_and_per_export() {
        let key_a = hmac(b"secret a", &[b"mtdesk export links v1"]);
        let key_b = hmac(b"secret b", &[b"mtdesk export links v1"]);
        let t = hex(&hmac(&key_a, &[b"id-1"]));
        assert_eq!(t.len(), 64);
        assert_ne!(t, hex(&hmac(&key_a, &[b"id-2"])));
        assert_ne!(t, hex(&hmac(&key_b, &[b"id-1"])));
    }

    #[test]
    fn usage_is_summed_per_month_and_model() {
        let mut u = Usage::default();
        for (ms, answered) in [(1_741_183_389_123_i64, true), (1_741_183_389_124, false)] {
            let Value::Object(row) = json!({
                "created_at": ms, "provider": "openrouter", "model": "m", "answered": answered,
                "from_knowledge": true, "prompt_tokens": 10, "completion_tokens": 5,
            }) else {
                unreachable!()
            };
            u.add(&row);
        }
        let v = u.to_json();
        assert_eq!(v["months"][0]["month"], "2025-03");
        assert_eq!(v["months"][0]["answers"], 2);
        assert_eq!(v["months"][0]["unanswered"], 1);
        assert_eq!(v["months"][0]["by_model"][0]["prompt_tokens"], 20);
    }
}
