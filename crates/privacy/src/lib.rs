//! Privacy: the deletion engine and Meta's deauthorize / data-deletion callbacks (external-apis.md §6).
//!
//! One function per scope deletes everything of that scope in one place and returns a **receipt**: what was
//! deleted (rows per category), when, why and by which path, with the subject as a keyed hash only, so the
//! operator can prove compliance without keeping the personal data. Every function is idempotent: running it
//! again deletes nothing more and still returns a receipt.
//!
//! Scopes here: a channel (Disconnect), a Meta user (every channel that user connected: the deauthorize and
//! data-deletion callbacks). Account deletion goes through `mtdesk_http::services::delete_account`, which
//! unsubscribes the account's channels at Meta first and deletes every table in one transaction.

pub mod signed_request;

use mtdesk_channels::{ChannelError, ChannelService};
use mtdesk_domain::{AccountId, ChannelId, now_ms};
use mtdesk_storage::{DeletionRequest, Receipt, StorageError, Store};
use signed_request::SignedRequestError;

/// How a deletion was asked for (recorded on its receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPath {
    Dashboard,
    Api,
    MetaDeauthorize,
    MetaDataDeletion,
    Operator,
}

impl DeletionPath {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Api => "api",
            Self::MetaDeauthorize => "meta_deauthorize",
            Self::MetaDataDeletion => "meta_data_deletion",
            Self::Operator => "operator",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("not found")]
    NotFound,
    /// The callback's `signed_request` was refused (→ 400); nothing changed.
    #[error(transparent)]
    SignedRequest(#[from] SignedRequestError),
    /// Meta callbacks need the app secret (→ 403); nothing changed.
    #[error("Meta callbacks are not configured on this server (no MTDESK_META_APP_SECRET)")]
    NotConfigured,
    #[error(transparent)]
    Channel(ChannelError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for PrivacyError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => PrivacyError::NotFound,
            other => PrivacyError::Storage(other),
        }
    }
}

impl From<ChannelError> for PrivacyError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::NotFound => PrivacyError::NotFound,
            other => PrivacyError::Channel(other),
        }
    }
}

/// The deletion engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    channels: ChannelService,
    hash_key: [u8; 32],
}

/// A confirmation code: 20 random alphanumeric characters (§6.3: alphanumeric, unique).
pub fn confirmation_code() -> String {
    use rand::RngExt;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| A[rng.random_range(0..A.len())] as char)
        .collect()
}

impl Engine {
    /// `secret_key` is the instance secret; subject hashes are keyed with a key derived from it, so they
    /// cannot be reversed by guessing ids without the secret.
    pub fn new(store: Store, channels: ChannelService, secret_key: &[u8]) -> Self {
        let hash_key = mtdesk_channels::service::receipt_key(secret_key);
        Self {
            store,
            channels,
            hash_key,
        }
    }

    /// HMAC-SHA256(key, "scope:id"), hex: how receipts name their subject.
    pub fn subject_hash(&self, scope: &str, id: &str) -> String {
        mtdesk_channels::service::subject_hash(&self.hash_key, scope, id)
    }

    /// Disconnects one channel: its token, ids, names, conversations, messages and end users' ids go;
    /// the app is unsubscribed at Meta.
    pub async fn delete_channel(
        &self,
        account: &AccountId,
        id: &ChannelId,
        path: DeletionPath,
    ) -> Result<Receipt, PrivacyError> {
        let started = now_ms();
        let (channel, counts) = self.channels.disconnect(account, id).await?;
        tracing::info!(channel.id = %channel.id, path = path.as_str(), "channel disconnected and its data deleted");
        Ok(self
            .store
            .insert_receipt(
                "channel",
                path.as_str(),
                &self.subject_hash("channel", id.as_str()),
                &counts,
                None,
                started,
            )
            .await?)
    }

    /// Every channel a Facebook user connected (in any account): disconnected with all their data.
    /// Idempotent: with nothing left, the receipt counts zero rows.
    pub async fn delete_meta_user(
        &self,
        meta_user_id: &str,
        path: DeletionPath,
    ) -> Result<Receipt, PrivacyError> {
        let started = now_ms();
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        for c in self.store.find_channels_by_meta_user(meta_user_id).await? {
            match self.channels.disconnect(&c.account_id, &c.id).await {
                Ok((_, n)) => counts.extend(n),
                // Removed meanwhile (another node, the owner): nothing left to delete.
                Err(ChannelError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if counts.is_empty() {
            counts.push(("channels", 0));
        }
        Ok(self
            .store
            .insert_receipt(
                "meta_user",
                path.as_str(),
                &self.subject_hash("meta_user", meta_user_id),
                &counts,
                None,
                started,
            )
            .await?)
    }

    fn app_secret(&self) -> Result<&[u8], PrivacyError> {
        self.channels
            .app_secret()
            .ok_or(PrivacyError::NotConfigured)
    }

    /// `POST /meta/deauthorize` (§6.2): the user removed the app; every channel they connected is
    /// disconnected and its data deleted.
    pub async fn meta_deauthorize(&self, signed_request: &str) -> Result<Receipt, PrivacyError> {
        let secret = self.app_secret()?;
        let req = signed_request::verify(secret, signed_request)?;
        self.delete_meta_user(&req.user_id, DeletionPath::MetaDeauthorize)
            .await
    }

    /// `POST /meta/data-deletion` (§6.3): records the request with a new confirmation code, then deletes
    /// (the status page follows it). Each call gets its own code; a repeated request deletes nothing more.
    pub async fn meta_data_deletion(
        &self,
        signed_request: &str,
    ) -> Result<DeletionRequest, PrivacyError> {
        let secret = self.app_secret()?;
        let req = signed_request::verify(secret, signed_request)?;
        let code = confirmation_code();
        let request = self
            .store
            .insert_deletion_request(
                &code,
                &self.subject_hash("meta_user", &req.user_id),
                &req.user_id,
            )
            .await?;
        self.run_request(&request).await?;
        Ok(self.store.find_deletion_request(&code).await?)
    }

    async fn run_request(&self, request: &DeletionRequest) -> Result<(), PrivacyError> {
        let Some(subject) = &request.subject else {
            return Ok(());
        };
        self.store
            .set_deletion_request_status(&request.confirmation_code, "in_progress", None)
            .await?;
        let receipt = self
            .delete_meta_user(subject, DeletionPath::MetaDataDeletion)
            .await?;
        self.store
            .set_deletion_request_status(&request.confirmation_code, "completed", Some(&receipt.id))
            .await?;
        Ok(())
    }

    /// Finishes data-deletion requests a crash interrupted (called at start-up). Returns how many.
    pub async fn resume_pending(&self) -> Result<usize, PrivacyError> {
        let pending = self.store.pending_deletion_requests().await?;
        for r in &pending {
            self.run_request(r).await?;
        }
        Ok(pending.len())
    }

    /// The retention purge (daily in production): messages and answer records older than their account's
    /// retention (12 months unless the account chose less), in batches of `BATCH` rows per transaction, then
    /// the conversations left empty. One receipt for the run when anything was purged. Returns rows purged.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, PrivacyError> {
        const BATCH: i64 = 10_000;
        let started = now_ms();
        let mut total = 0;
        loop {
            let n = self.store.purge_expired_batch(now, BATCH).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        if total > 0 {
            self.store
                .insert_receipt(
                    "retention",
                    "retention",
                    &self.subject_hash("retention", &now.to_string()),
                    &[("messages_and_records", total)],
                    None,
                    started,
                )
                .await?;
            tracing::info!(rows = total, "retention purge removed expired messages");
        }
        Ok(total)
    }

    /// The public status of a data-deletion request, with its receipt when completed.
    pub async fn deletion_status(
        &self,
        code: &str,
    ) -> Result<(DeletionRequest, Option<Receipt>), PrivacyError> {
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PrivacyError::NotFound);
        }
        let request = self.store.find_deletion_request(code).await?;
        let receipt = match &request.receipt_id {
            Some(id) => Some(self.store.find_receipt(id).await?),
            None => None,
        };
        Ok((request, receipt))
    }
}
