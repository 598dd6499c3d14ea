//! API tokens for `Authorization: Bearer`. The secret is shown once at creation; only its SHA-256 is kept.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, TokenId, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A token as listed: never the secret, only a short prefix to recognise it by.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn from_row(r: &AnyRow) -> Result<ApiToken, sqlx::Error> {
    Ok(ApiToken {
        id: TokenId::from_db(r.try_get("id")?),
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    pub async fn insert_token(
        &self,
        account: &AccountId,
        name: &str,
        token_hash: &str,
        prefix: &str,
    ) -> Result<ApiToken> {
        let t = ApiToken {
            id: TokenId::new(),
            name: name.to_string(),
            prefix: prefix.to_string(),
            created_at: now_ms(),
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, account_id, name, token_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.id.as_str())
        .bind(account.as_str())
        .bind(&t.name)
        .bind(token_hash)
        .bind(&t.prefix)
        .bind(t.created_at)
        .execute(self.pool())
        .await?;
        Ok(t)
    }

    pub async fn list_tokens(&self, account: &AccountId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_tokens WHERE account_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Finds the account owning a token hash and records the use (at most once a minute, to spare writes).
    pub async fn authenticate_token(&self, token_hash: &str) -> Result<AccountId> {
        let row = sqlx::query(
            "SELECT id, account_id, last_used_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_one(self.pool())
        .await?;
        let now = now_ms();
        let last: Option<i64> = row.try_get("last_used_at")?;
        if last.is_none_or(|l| now - l > 60_000) {
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(self.pool())
                .await?;
        }
        Ok(AccountId::from_db(row.try_get("account_id")?))
    }

    pub async fn delete_token(&self, account: &AccountId, id: &TokenId) -> Result<()> {
        let n = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND account_id = $2")
            .bind(id.as_str())
            .bind(account.as_str())
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
