//! Dashboard sessions. Only a SHA-256 of the cookie value is stored, so a database leak cannot be replayed
//! as a login.

use crate::{Result, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;

impl Store {
    pub async fn insert_session(
        &self,
        id_hash: &str,
        account: &AccountId,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (id_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id_hash)
            .bind(account.as_str())
            .bind(now_ms())
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The account a live session belongs to. Expired sessions are not found.
    pub async fn find_session_account(&self, id_hash: &str) -> Result<AccountId> {
        let row =
            sqlx::query("SELECT account_id FROM sessions WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash)
                .bind(now_ms())
                .fetch_one(self.pool())
                .await?;
        Ok(AccountId::from_db(row.try_get("account_id")?))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session of an account except `keep` (after a password change, other devices are logged
    /// out). Returns how many ended.
    pub async fn delete_other_sessions(
        &self,
        account: &AccountId,
        keep: Option<&str>,
    ) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id_hash <> $2")
            .bind(account.as_str())
            .bind(keep.unwrap_or(""))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Removes expired sessions of every account.
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n)
    }
}
