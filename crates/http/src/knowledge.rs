//! Adding and removing knowledge sources: the one implementation behind the API and the dashboard.
//!
//! An upload is checked (size, type detected from the content), its original written under the data dir,
//! then its row and ingestion job committed together; the worker is woken. A URL is checked for syntax and
//! accepted at once; everything about the site (DNS, private addresses, robots, errors) is found by the
//! crawl and shown in the source's status.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::Multipart;
use axum::http::StatusCode;
use mtdesk_domain::{
    AccountId, ChatbotId, CrawlLimits, DomainError, SourceId, SourceKind, SyncSchedule,
};
use mtdesk_storage::{NewSource, Source, StorageError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Notify;

/// The knowledge side of the app state.
#[derive(Clone)]
pub struct KnowledgeState {
    pub knowledge: mtdesk_knowledge::Knowledge,
    /// Notified when work is queued, so this node's worker starts at once.
    pub wake: Arc<Notify>,
    pub max_upload_bytes: usize,
    pub max_files_per_chatbot: usize,
}

/// Why one uploaded file was refused (the others carry on).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FileError {
    pub file: String,
    pub error: String,
}

/// What an upload did: the sources created and the files refused.
#[derive(Debug)]
pub struct Uploaded {
    pub sources: Vec<Source>,
    pub errors: Vec<FileError>,
}

/// Reads every file field of a multipart upload, each checked on its own: one bad file does not stop
/// the others. At most ten times the per-file limit is read per request.
pub async fn upload(
    state: &AppState,
    account: &mtdesk_domain::AccountId,
    bot: &ChatbotId,
    mut mp: Multipart,
) -> Result<Uploaded, ApiError> {
    let max = state.knowledge.max_upload_bytes;
    // At most this much is read per request, whatever the number of files.
    let total_cap = max.saturating_mul(10);
    let mut total = 0usize;
    let mut out = Uploaded {
        sources: Vec::new(),
        errors: Vec::new(),
    };
    let mut plan_limit: Option<String> = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge(
                    "the upload is larger than the server's limit per request; send fewer files at once".into(),
                ));
            }
            Err(e) => return Err(ApiError::BadRequest(e.body_text())),
        };
        let Some(name) = field.file_name().map(str::to_string) else {
            continue; // a plain form field
        };
        let mut field = field;
        let mut bytes = Vec::new();
        let mut too_big = false;
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    total += c.len();
                    if total > total_cap {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "the upload is larger than {} per request; send fewer files at once",
                            human_bytes(total_cap)
                        )));
                    }
                    if too_big {
                        continue;
                    }
                    if bytes.len() + c.len() > max {
                        too_big = true;
                        bytes = Vec::new();
                    } else {
                        bytes.extend_from_slice(&c);
                    }
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(ApiError::PayloadTooLarge(
                        "the upload is larger than the server's limit per request; send fewer files at once".into(),
                    ));
                }
                Err(e) => return Err(ApiError::BadRequest(e.body_text())),
            }
        }
        if too_big {
            out.errors.push(FileError {
                file: name,
                error: format!("larger than the {} limit per file", human_bytes(max)),
            });
            continue;
        }
        match add_file(state, account, bot, &name, bytes).await {
            Ok(s) => out.sources.push(s),
            // Over the plan's storage: this file is refused; a smaller one after it may still fit.
            Err(ApiError::PlanLimit(m)) => {
                out.errors.push(FileError {
                    file: name,
                    error: m.clone(),
                });
                plan_limit = Some(m);
            }
            Err(e @ (ApiError::Validation(_) | ApiError::PayloadTooLarge(_))) => {
                out.errors.push(FileError {
                    file: name,
                    error: match e {
                        ApiError::Validation(d) => d.message,
                        other => other.to_string(),
                    },
                })
            }
            Err(e) => return Err(e),
        }
    }
    // Nothing stored because of the plan: the request as a whole is refused by the plan (403).
    if let Some(m) = plan_limit
        && out.sources.is_empty()
    {
        return Err(ApiError::PlanLimit(m));
    }
    Ok(out)
}

/// Checks and stores one uploaded file, queueing its ingestion.
pub async fn add_file(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Source, ApiError> {
    let name = clean_file_name(name);
    let k = &state.knowledge;
    if bytes.len() > k.max_upload_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "{name} is larger than the {} limit",
            human_bytes(k.max_upload_bytes)
        )));
    }
    let kind = mtdesk_extract::detect(&bytes, Some(&name))
        .map_err(|e| ApiError::Validation(DomainError::invalid("file", format!("{name}: {e}"))))?;
    let files = state.store.count_sources(bot, SourceKind::File).await?;
    if files as usize >= k.max_files_per_chatbot {
        return Err(ApiError::Validation(DomainError::invalid(
            "file",
            format!(
                "this chatbot already has {files} files, the most allowed ({}); delete some first",
                k.max_files_per_chatbot
            ),
        )));
    }
    mtdesk_billing::limits::check_storage(
        &state.store,
        &state.plans,
        account,
        bytes.len() as i64,
        mtdesk_domain::now_ms(),
    )
    .await?;
    let id = SourceId::new();
    let files_store = state.files.clone();
    let (acc, sid) = (account.clone(), id.clone());
    let sha = hex(&Sha256::digest(&bytes));
    let size = bytes.len() as i64;
    tokio::task::spawn_blocking(move || files_store.write_source(&acc, &sid, &bytes))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("writing the upload: {e}")))?;
    let new = NewSource {
        id: id.clone(),
        kind: SourceKind::File,
        name,
        doc_type: Some(kind.as_str().to_string()),
        byte_size: size,
        sha256: Some(sha),
        max_pages: 0,
        max_depth: 0,
        sync_schedule: SyncSchedule::Manual,
    };
    match state.store.insert_source(account, bot, &new).await {
        Ok(s) => {
            k.wake.notify_one();
            Ok(s)
        }
        Err(e) => {
            let _ = state.files.delete_source(account, &id);
            Err(e.into())
        }
    }
}

/// Adds a website source; the crawl runs later.
pub async fn add_url(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
    url: &str,
    limits: CrawlLimits,
    schedule: SyncSchedule,
) -> Result<Source, ApiError> {
    let parsed = mtdesk_crawler::parse_source_url(url)
        .map_err(|e| ApiError::Validation(DomainError::invalid("url", e.to_string())))?;
    // A website's size is known only after its crawl: refused once the plan's storage is full.
    mtdesk_billing::limits::check_storage(
        &state.store,
        &state.plans,
        account,
        0,
        mtdesk_domain::now_ms(),
    )
    .await?;
    let new = NewSource {
        id: SourceId::new(),
        kind: SourceKind::Url,
        name: parsed.to_string(),
        doc_type: None,
        byte_size: 0,
        sha256: None,
        max_pages: i64::from(limits.max_pages),
        max_depth: i64::from(limits.max_depth),
        sync_schedule: schedule,
    };
    let s = state.store.insert_source(account, bot, &new).await?;
    state.knowledge.wake.notify_one();
    Ok(s)
}

/// Deletes a source: its rows (chunks, vectors, pages, jobs) in one transaction, its original file, and
/// this node's cached index of the chatbot (other nodes see the version move).
pub async fn delete_source(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
    id: &SourceId,
) -> Result<(), ApiError> {
    state.store.delete_source(account, bot, id).await?;
    state
        .files
        .delete_source(account, id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("removing the source file: {e}")))?;
    state.knowledge.knowledge.forget(bot);
    Ok(())
}

/// Deletes a chatbot with everything it holds: rows (sources, chunks, Q&A, conversations… by cascade in
/// one statement), the originals of its uploaded files, and this node's cached index.
pub async fn delete_chatbot(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
) -> Result<(), ApiError> {
    // A chatbot that answers a channel stays until the channel is moved to another chatbot or
    // disconnected: deleting it would silently leave customers without answers.
    let channels = state.store.channels_of_chatbot(account, bot).await?;
    if !channels.is_empty() {
        return Err(ApiError::Busy(format!(
            "this chatbot answers {}; move it to another chatbot or disconnect it on the Deploy page first",
            channels.join(", ")
        )));
    }
    let sources = state.store.delete_chatbot(account, bot).await?;
    for id in &sources {
        state
            .files
            .delete_source(account, id)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("removing a source file: {e}")))?;
    }
    state.knowledge.knowledge.forget(bot);
    Ok(())
}

/// Sets how often a website source is re-synced by itself. Files never change: only `manual`.
pub async fn set_schedule(
    state: &AppState,
    account: &AccountId,
    bot: &ChatbotId,
    id: &SourceId,
    schedule: SyncSchedule,
) -> Result<Source, ApiError> {
    let source = state.store.find_source(account, bot, id).await?;
    if source.kind == SourceKind::File && schedule != SyncSchedule::Manual {
        return Err(DomainError::invalid(
            "sync_schedule",
            "only website sources are re-synced on a schedule (an uploaded file does not change)",
        )
        .into());
    }
    Ok(state
        .store
        .update_source_schedule(account, bot, id, schedule)
        .await?)
}

/// Queues a re-sync by hand. 409 when one is already queued or running.
pub async fn resync(state: &AppState, account: &AccountId, id: &SourceId) -> Result<(), ApiError> {
    match state.store.queue_source_sync(account, id).await {
        Ok(true) => {
            state.knowledge.wake.notify_one();
            Ok(())
        }
        Ok(false) => Err(ApiError::Busy(
            "this source is already queued or being processed".into(),
        )),
        Err(StorageError::NotFound) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Keeps the last path component, without control characters, at most 200 characters.
fn clean_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let s: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.trim().is_empty() {
        "upload".into()
    } else {
        s.trim().to_string()
    }
}

pub fn human_bytes(n: usize) -> String {
    if n >= 1024 * 1024 {
        format!("{} MB", n / (1024 * 1024))
    } else if n >= 1024 {
        format!("{} KB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\docs\\a.pdf"), "a.pdf");
        assert_eq!(clean_file_name("a\u{0}b.txt"), "ab.txt");
        assert_eq!(clean_file_name(""), "upload");
    }
}
