//! Per-account provider API keys (bring your own key), stored sealed. The clear key is never stored,
//! listed or logged; only a hint (its last 4 characters) is shown.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, Provider, now_ms};
use sqlx::Row;

/// A stored key as listed: never the key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderKey {
    pub provider: Provider,
    pub hint: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Stores (or replaces) the account's sealed key for a provider.
    pub async fn upsert_provider_key(
        &self,
        account: &AccountId,
        provider: Provider,
        sealed: &str,
        hint: &str,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO provider_keys (id, account_id, provider, sealed_key, hint, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (account_id, provider) DO UPDATE SET sealed_key = $4, hint = $5, updated_at = $6",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account.as_str())
        .bind(provider.as_str())
        .bind(sealed)
        .bind(hint)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn list_provider_keys(&self, account: &AccountId) -> Result<Vec<ProviderKey>> {
        let rows = sqlx::query(
            "SELECT provider, hint, created_at, updated_at FROM provider_keys WHERE account_id = $1 ORDER BY provider",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .filter_map(|r| {
                let provider: String = r.try_get("provider").ok()?;
                Some(Ok(ProviderKey {
                    provider: Provider::parse(&provider).ok()?,
                    hint: r.try_get("hint").ok()?,
                    created_at: r.try_get("created_at").ok()?,
                    updated_at: r.try_get("updated_at").ok()?,
                }))
            })
            .collect()
    }

    /// The sealed key of the account for `provider`, if any.
    pub async fn find_sealed_provider_key(
        &self,
        account: &AccountId,
        provider: Provider,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT sealed_key FROM provider_keys WHERE account_id = $1 AND provider = $2",
        )
        .bind(account.as_str())
        .bind(provider.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("sealed_key")).transpose()?)
    }

    pub async fn delete_provider_key(&self, account: &AccountId, provider: Provider) -> Result<()> {
        let n = sqlx::query("DELETE FROM provider_keys WHERE account_id = $1 AND provider = $2")
            .bind(account.as_str())
            .bind(provider.as_str())
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
