//! Single-use links sent by email: address verification (24 h), password reset (1 h) and the undo of an
//! email change (sent to the old address, 7 days).
//!
//! Only the SHA-256 of a link's 256-bit random secret is stored, so a database leak cannot be replayed as
//! a link. A link is spent by one conditional `UPDATE … SET used_at … WHERE used_at IS NULL AND
//! expires_at > now`: of two concurrent uses exactly one changes the row, the other finds it used. What the
//! link does (verify the address, set the password, restore the address) happens in the same transaction,
//! so a failure leaves the link usable and nothing half-written.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;

/// What a link is for (the `purpose` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Confirms the address in `data` (24 h).
    Verify,
    /// Sets a new password (1 h).
    Reset,
    /// Restores the previous address in `data` after an email change (7 days).
    UndoEmail,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Verify => "verify",
            LinkPurpose::Reset => "reset",
            LinkPurpose::UndoEmail => "undo_email",
        }
    }

    /// How long a link of this purpose works.
    pub fn ttl_ms(self) -> i64 {
        match self {
            LinkPurpose::Verify => 24 * 3_600_000,
            LinkPurpose::Reset => 3_600_000,
            LinkPurpose::UndoEmail => 7 * 24 * 3_600_000,
        }
    }
}

/// A link to store: the hash of its secret, what it is for and its data (an address).
#[derive(Debug, Clone)]
pub struct NewEmailLink {
    pub id_hash: String,
    pub purpose: LinkPurpose,
    pub data: Option<String>,
}

/// A link found by its hash, used or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLink {
    pub account_id: AccountId,
    pub data: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Why a link cannot be used (see [`Store::find_email_link`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Usable,
    Used,
    Expired,
}

impl EmailLink {
    pub fn state(&self, now: i64) -> LinkState {
        if self.used_at.is_some() {
            LinkState::Used
        } else if self.expires_at <= now {
            LinkState::Expired
        } else {
            LinkState::Usable
        }
    }
}

/// The result of spending a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUse<T> {
    /// The link was valid and is now spent; its effect is committed.
    Done(T),
    /// Already used (or superseded: a newer reset, an email change).
    Used,
    Expired,
    /// No such link (or one made for another purpose).
    Unknown,
}

pub(crate) async fn insert_link(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
    link: &NewEmailLink,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO email_links (id_hash, account_id, purpose, data, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&link.id_hash)
    .bind(account.as_str())
    .bind(link.purpose.as_str())
    .bind(link.data.as_deref())
    .bind(now)
    .bind(now + link.purpose.ttl_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Spends the link (the atomic conditional update) and returns its account and data, or `None` when it
/// is not usable.
async fn spend(
    conn: &mut sqlx::AnyConnection,
    id_hash: &str,
    purpose: LinkPurpose,
    now: i64,
) -> Result<Option<(AccountId, Option<String>)>> {
    let row = sqlx::query(
        "UPDATE email_links SET used_at = $3
         WHERE id_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING account_id, data",
    )
    .bind(id_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(r) => Ok(Some((
            AccountId::from_db(r.try_get("account_id")?),
            r.try_get("data")?,
        ))),
        None => Ok(None),
    }
}

impl Store {
    /// Stores a new link for the account.
    pub async fn insert_email_link(&self, account: &AccountId, link: &NewEmailLink) -> Result<()> {
        let mut conn = self.pool().acquire().await?;
        insert_link(&mut conn, account, link, now_ms()).await
    }

    /// The link with this hash and purpose, used or not (`NotFound` when there is none).
    pub async fn find_email_link(&self, id_hash: &str, purpose: LinkPurpose) -> Result<EmailLink> {
        let r = sqlx::query(
            "SELECT account_id, data, created_at, expires_at, used_at FROM email_links
             WHERE id_hash = $1 AND purpose = $2",
        )
        .bind(id_hash)
        .bind(purpose.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(EmailLink {
            account_id: AccountId::from_db(r.try_get("account_id")?),
            data: r.try_get("data")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
        })
    }

    /// Why a link that could not be spent failed: used, expired or unknown.
    async fn failed_use<T>(&self, id_hash: &str, purpose: LinkPurpose) -> Result<LinkUse<T>> {
        match self.find_email_link(id_hash, purpose).await {
            Ok(link) => Ok(match link.state(now_ms()) {
                LinkState::Expired => LinkUse::Expired,
                // Usable here means it was spent between our update and this read: used.
                LinkState::Used | LinkState::Usable => LinkUse::Used,
            }),
            Err(StorageError::NotFound) => Ok(LinkUse::Unknown),
            Err(e) => Err(e),
        }
    }

    /// The links of `purpose` created for the account after `since`: (how many, the oldest's and the
    /// newest's creation time). For throttling resends.
    pub async fn email_links_since(
        &self,
        account: &AccountId,
        purpose: LinkPurpose,
        since: i64,
    ) -> Result<(i64, Option<i64>, Option<i64>)> {
        let r = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(created_at) AS oldest, MAX(created_at) AS newest
             FROM email_links WHERE account_id = $1 AND purpose = $2 AND created_at > $3",
        )
        .bind(account.as_str())
        .bind(purpose.as_str())
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok((
            r.try_get("n")?,
            r.try_get::<Option<i64>, _>("oldest")?,
            r.try_get::<Option<i64>, _>("newest")?,
        ))
    }

    /// Spends a verification link: when the address it was sent to is still the account's, the account
    /// becomes verified (in the same transaction). A link for an address that is no longer the account's
    /// counts as used.
    pub async fn verify_email_with_link(&self, id_hash: &str) -> Result<LinkUse<AccountId>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let Some((account, address)) = spend(&mut tx, id_hash, LinkPurpose::Verify, now).await?
        else {
            tx.rollback().await?;
            return self.failed_use(id_hash, LinkPurpose::Verify).await;
        };
        let n = sqlx::query(
            "UPDATE accounts SET email_verified_at = COALESCE(email_verified_at, $2)
             WHERE id = $1 AND email_normalized = $3",
        )
        .bind(account.as_str())
        .bind(now)
        .bind(address.unwrap_or_default().to_lowercase())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(LinkUse::Used);
        }
        tx.commit().await?;
        Ok(LinkUse::Done(account))
    }

    /// Spends a password-reset link: stores `password_hash`, ends every session of the account and spends
    /// its other reset links, all in one transaction. API tokens stay (they are revoked one by one under
    /// My Account).
    pub async fn reset_password_with_link(
        &self,
        id_hash: &str,
        password_hash: &str,
    ) -> Result<LinkUse<AccountId>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let Some((account, _)) = spend(&mut tx, id_hash, LinkPurpose::Reset, now).await? else {
            tx.rollback().await?;
            return self.failed_use(id_hash, LinkPurpose::Reset).await;
        };
        sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(account.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE email_links SET used_at = $2 WHERE account_id = $1 AND purpose = 'reset' AND used_at IS NULL",
        )
        .bind(account.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LinkUse::Done(account))
    }

    /// Spends an undo link of an email change: the previous address (the link's data) is restored as
    /// verified, every session ends, and pending verification links (for the address being undone) are
    /// spent, in one transaction. `Conflict { field: "email" }` when another account took the address in
    /// the meantime (the link stays usable).
    pub async fn undo_email_change_with_link(
        &self,
        id_hash: &str,
    ) -> Result<LinkUse<(AccountId, String)>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let Some((account, previous)) =
            spend(&mut tx, id_hash, LinkPurpose::UndoEmail, now).await?
        else {
            tx.rollback().await?;
            return self.failed_use(id_hash, LinkPurpose::UndoEmail).await;
        };
        let previous = previous.unwrap_or_default();
        let restored = sqlx::query(
            "UPDATE accounts SET email = $2, email_normalized = $3, email_verified_at = $4, updated_at = $4
             WHERE id = $1",
        )
        .bind(account.as_str())
        .bind(&previous)
        .bind(previous.to_lowercase())
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = restored {
            tx.rollback().await?;
            return Err(e.into());
        }
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE email_links SET used_at = $2 WHERE account_id = $1 AND purpose = 'verify' AND used_at IS NULL",
        )
        .bind(account.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LinkUse::Done((account, previous)))
    }
}
