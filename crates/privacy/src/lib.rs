//! Privacy: the deletion engine and Meta's deauthorize / data-deletion callbacks (external-apis.md §6).
//!
//! One function per scope deletes everything of that scope in one place and returns a **receipt**: what was
//! deleted (rows per category), when, why and by which path, with the subject as a keyed hash only, so the
//! operator can prove compliance without keeping the personal data. Every function is idempotent: running it
//! again deletes nothing more and still returns a receipt.
//!
//! Scopes here: an account (every path: the owner, the API, the operator, an emailed request), a channel
//! (Disconnect), a Meta user (every channel that user connected: the deauthorize and data-deletion
//! callbacks); the end user of a channel is the channel service's (`ChannelService::delete_end_user`).

pub mod export;
pub mod requests;
pub mod signed_request;

use mtdesk_channels::{ChannelError, ChannelService};
use mtdesk_domain::{AccountId, ChannelId, now_ms};
use mtdesk_storage::accounts::DeletedRows;
use mtdesk_storage::{DeletionRequest, FileStore, Receipt, StorageError, Store};
use signed_request::SignedRequestError;
use std::time::{Duration, Instant};

/// How a deletion was asked for (recorded on its receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPath {
    Dashboard,
    Api,
    MetaDeauthorize,
    MetaDataDeletion,
    Operator,
    EmailedRequest,
}

impl DeletionPath {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Api => "api",
            Self::MetaDeauthorize => "meta_deauthorize",
            Self::MetaDataDeletion => "meta_data_deletion",
            Self::Operator => "operator",
            Self::EmailedRequest => "emailed_request",
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
    /// A bad input (→ 422).
    #[error(transparent)]
    Invalid(#[from] mtdesk_domain::DomainError),
    /// The request's state does not allow this (→ 409), in words.
    #[error("{0}")]
    Refused(String),
    /// Rendering or queueing a mail failed.
    #[error(transparent)]
    Email(mtdesk_email::EmailError),
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

impl From<mtdesk_email::EmailError> for PrivacyError {
    fn from(e: mtdesk_email::EmailError) -> Self {
        match e {
            mtdesk_email::EmailError::Storage(s) => s.into(),
            other => PrivacyError::Email(other),
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

/// How long contact-form messages are kept (365 days).
pub const CONTACT_RETENTION_MS: i64 = 365 * 86_400_000;

/// The deletion engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    channels: ChannelService,
    files: FileStore,
    hash_key: [u8; 32],
    mail: Option<Mail>,
    /// Billing hook (Stripe, external-apis.md §8): cancels the account's subscription before its data
    /// goes. Set by the binary when billing is configured; `None` otherwise.
    cancel_subscription: Option<CancelSubscription>,
}

/// Cancels a Stripe subscription by id (billing hook of [`Engine`]): `Err` with a message when Stripe
/// could not be told. A plain closure so this crate does not depend on the billing crate.
pub type CancelSubscription = std::sync::Arc<
    dyn Fn(
            String,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// How the engine sends its mails: the outbox, the site the mails name, and the operator's address for
/// deadline warnings.
#[derive(Clone)]
pub struct Mail {
    pub outbox: mtdesk_email::Outbox,
    pub site: mtdesk_email::Site,
    pub operator: Option<String>,
}

/// What an account deletion removed, and who to confirm it to.
#[derive(Debug, Clone)]
pub struct AccountDeletion {
    pub receipt: Receipt,
    pub deleted: DeletedRows,
    /// The chatbots that were deleted: callers drop their in-memory indexes.
    pub chatbots: Vec<mtdesk_domain::ChatbotId>,
    /// The address and name the confirmation goes to (the account row is gone).
    pub email: String,
    pub name: String,
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
    pub fn new(
        store: Store,
        channels: ChannelService,
        files: FileStore,
        secret_key: &[u8],
    ) -> Self {
        let hash_key = mtdesk_channels::service::receipt_key(secret_key);
        Self {
            store,
            channels,
            files,
            hash_key,
            mail: None,
            cancel_subscription: None,
        }
    }

    /// Billing hook: account deletion first cancels the account's Stripe subscription with `cancel`.
    /// Billing (Stripe) is configured on this instance.
    pub fn billing_enabled(&self) -> bool {
        self.cancel_subscription.is_some()
    }

    pub fn with_subscription_canceller(mut self, cancel: CancelSubscription) -> Self {
        self.cancel_subscription = Some(cancel);
        self
    }

    /// Sends confirmations, acknowledgements and warnings through `mail` (queued in the outbox; delivered
    /// once SMTP is configured).
    pub fn with_mail(mut self, mail: Mail) -> Self {
        self.mail = Some(mail);
        self
    }

    pub fn mail(&self) -> Option<&Mail> {
        self.mail.as_ref()
    }

    /// Deletes an account and everything it owns: Meta stops sending its channels' messages first; the
    /// account is marked (sessions and tokens end at once, a crash resumes from the mark); its large
    /// tables go in short batches (see [`delete_in_batches`]); the rest in one transaction, which also
    /// strips the daily aggregates of its ids; then its files (originals, exports). Returns the receipt.
    /// Idempotent for a marked account; `NotFound` once it is gone. The owner gets a confirmation email
    /// with the receipt's summary.
    pub async fn delete_account(
        &self,
        id: &AccountId,
        path: &str,
    ) -> Result<AccountDeletion, PrivacyError> {
        let done = self.delete_account_quietly(id, path).await?;
        if let Some(mail) = &self.mail {
            let counts: Vec<(String, u64)> = done
                .receipt
                .counts
                .iter()
                .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                .collect();
            let rendered = mtdesk_email::messages::account_deleted(
                &mail.site,
                &done.name,
                &counts,
                done.receipt.kept.as_deref(),
                &done.receipt.id,
                done.receipt.completed_at.unwrap_or_else(now_ms),
            )?;
            // Not tied to the account (it is gone): the row and its address go once the mail is sent.
            if let Err(e) = mail.outbox.enqueue(None, &done.email, rendered).await {
                tracing::warn!(error = %e, "queueing the deletion confirmation failed");
            }
        }
        Ok(done)
    }

    /// [`Engine::delete_account`] without the confirmation email (an emailed request confirms itself).
    pub async fn delete_account_quietly(
        &self,
        id: &AccountId,
        path: &str,
    ) -> Result<AccountDeletion, PrivacyError> {
        let started = now_ms();
        let account = self.store.find_account(id).await?;
        // Billing hook: the subscription is cancelled at Stripe before anything is deleted, so a deleted
        // account is never charged again. If Stripe cannot be told, the deletion stops here (nothing
        // deleted yet) and can be retried; the invoices stay, detached, in the final transaction.
        let billing = match &self.cancel_subscription {
            Some(_) => Some(self.store.billing_state(id).await?),
            None => None,
        };
        // A subscription Stripe already ended needs no cancelling.
        if let Some(cancel) = &self.cancel_subscription
            && let Some(billing) = billing
            && billing.status != "canceled"
            && let Some(subscription) = billing.stripe_subscription_id
        {
            cancel(subscription).await.map_err(|e| {
                PrivacyError::Refused(format!(
                    "the subscription could not be cancelled at Stripe, so the account was not deleted yet; try again later ({e})"
                ))
            })?;
        }
        let chatbots = self
            .store
            .list_chatbots(id)
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect();
        // Invoices stay for tax law (detached in the final transaction): the receipt says so.
        let invoices = self.store.list_invoices(id).await?.len();
        let mut deleted = self.store.mark_account_deleting(id, path).await?;
        // Meta stops sending this account's channels' messages (their rows go below).
        self.channels.release_account(id).await;
        for (table, _) in mtdesk_storage::catalogue::BATCHED_TABLES {
            let n = delete_in_batches(&self.store, id, table).await?;
            deleted.tables.push(((*table).to_string(), n));
        }
        // Files (originals, exports) go while the mark still exists: a crash here is resumed, and
        // the final transaction below removes the mark only once nothing else is left.
        self.files
            .delete_account(id)
            .map_err(|e| PrivacyError::Storage(StorageError::Other(anyhow_io(e))))?;
        let rest = self.store.delete_account(id).await?;
        for (table, n) in rest.tables {
            match deleted.tables.iter_mut().find(|(t, _)| *t == table) {
                Some((_, m)) => *m += n,
                None => deleted.tables.push((table, n)),
            }
        }
        // What the owner sent through the contact page goes with the account.
        let contacts = self.store.delete_contacts_by_email(&account.email).await?;
        if contacts > 0 {
            deleted
                .tables
                .push(("contact_messages".to_string(), contacts));
        }
        tracing::info!(account.id = %id, rows = deleted.total(), path, "account deleted");
        let kept = (invoices > 0).then(|| {
            format!(
                "{invoices} invoice{} (number, amount, currency, date, billing name and country), for the \
                 period tax law requires, no longer linked to the account",
                if invoices == 1 { "" } else { "s" }
            )
        });
        let counts: Vec<(&str, u64)> = deleted
            .tables
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        let receipt = self
            .store
            .insert_receipt(
                "account",
                path,
                &self.subject_hash("account", id.as_str()),
                &counts,
                kept.as_deref(),
                started,
            )
            .await?;
        Ok(AccountDeletion {
            receipt,
            deleted,
            chatbots,
            email: account.email,
            name: account.name,
        })
    }

    /// Finishes account deletions a crash or an error interrupted (at start-up and then hourly).
    pub async fn resume_account_deletions(&self) -> Result<Vec<AccountDeletion>, PrivacyError> {
        let mut done = Vec::new();
        for (id, path, _) in self.store.accounts_being_deleted().await? {
            tracing::info!(account.id = %id, "resuming an interrupted account deletion");
            match self.delete_account(&id, &path).await {
                Ok(d) => done.push(d),
                Err(PrivacyError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
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
        // Contact-form messages are kept 12 months too (privacy policy, "Contact").
        total += self
            .store
            .purge_contacts(now - CONTACT_RETENTION_MS)
            .await?;
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

    /// Undeliverable mails about no (longer existing) account older than 7 days are deleted. Returns how
    /// many.
    pub async fn purge_stale_mail(&self, now: i64) -> Result<u64, PrivacyError> {
        Ok(self.store.purge_orphan_mails(now - 7 * 86_400_000).await?)
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

fn anyhow_io(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("deleting the account's files")
}

/// Rows per transaction when deleting an account's large tables: about 10k on PostgreSQL (row locks only).
/// SQLite has one writer lock, so there the batch adapts to take about [`SQLITE_BATCH_TARGET`] and the
/// engine pauses briefly between batches: waiting webhook writes get the lock in between.
const BATCH_MAX: i64 = 10_000;
const SQLITE_BATCH_TARGET: Duration = Duration::from_millis(15);
const SQLITE_PAUSE: Duration = Duration::from_millis(3);

/// Deletes every row of `table` that belongs to the account, batch by batch. Returns the rows deleted.
pub async fn delete_in_batches(
    store: &Store,
    id: &AccountId,
    table: &str,
) -> Result<u64, StorageError> {
    let sqlite = store.backend() == mtdesk_storage::Backend::Sqlite;
    let mut batch = if sqlite { 2_000 } else { BATCH_MAX };
    let mut total = 0;
    let mut since_checkpoint = 0u64;
    loop {
        let t = Instant::now();
        let n = store.delete_account_batch(id, table, batch).await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
        if sqlite {
            let took = t.elapsed();
            if took > SQLITE_BATCH_TARGET && batch > 500 {
                batch /= 2;
            } else if took < SQLITE_BATCH_TARGET / 2 && batch < BATCH_MAX {
                batch = (batch * 2).min(BATCH_MAX);
            }
            since_checkpoint += n;
            if since_checkpoint >= 50_000 {
                store.checkpoint_passive().await;
                since_checkpoint = 0;
            }
            tokio::time::sleep(SQLITE_PAUSE).await;
        }
    }
}
