//! Accounts: the tenant row every other row hangs from.

use crate::{Result, Store, catalogue};
use mtdesk_domain::{AccountId, AccountUpdate, NewAccount, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An account as stored. `password_hash` is an Argon2id PHC string; it never leaves the server.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    pub name: String,
    pub company: String,
    pub password_hash: String,
    pub age_confirmed_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Consent to product-usage analytics: `None` not asked yet (nothing is collected), `Some(false)`
    /// declined or withdrawn, `Some(true)` accepted.
    pub analytics_consent: Option<bool>,
    /// Holds the operator role (`mtdesk admin operator grant`).
    pub operator: bool,
    /// When the owner opened the link of the verification mail sent to the current address; `None` until
    /// then, and again after an email change. Unverified accounts can build but not connect a channel or
    /// pay.
    pub email_verified_at: Option<i64>,
}

impl Account {
    /// Whether the current address is verified.
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

const COLUMNS: &str =
    "id, email, name, company, password_hash, age_confirmed_at, created_at, updated_at,
    analytics_consent, operator_since, email_verified_at";

fn from_row(r: &AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: AccountId::from_db(r.try_get("id")?),
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        company: r.try_get("company")?,
        password_hash: r.try_get("password_hash")?,
        age_confirmed_at: r.try_get("age_confirmed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        analytics_consent: r
            .try_get::<Option<i64>, _>("analytics_consent")?
            .map(|v| v != 0),
        operator: r.try_get::<Option<i64>, _>("operator_since")?.is_some(),
        email_verified_at: r.try_get("email_verified_at")?,
    })
}

/// What one account deletion removed, table by table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeletedRows {
    pub tables: Vec<(String, u64)>,
}

impl DeletedRows {
    pub fn total(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    pub fn count(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

impl Store {
    /// Inserts a new account. Two sign-ups with the same email (any case) race on a unique index: exactly
    /// one wins, the other gets `Conflict { field: "email" }`.
    pub async fn insert_account(&self, new: &NewAccount, password_hash: &str) -> Result<Account> {
        let now = now_ms();
        let account = Account {
            id: AccountId::new(),
            email: new.email.as_str().to_string(),
            name: new.name.as_str().to_string(),
            company: new.company.as_str().to_string(),
            password_hash: password_hash.to_string(),
            age_confirmed_at: now,
            created_at: now,
            updated_at: now,
            analytics_consent: None,
            operator: false,
            email_verified_at: None,
        };
        sqlx::query(
            "INSERT INTO accounts (id, email, email_normalized, name, company, password_hash, age_confirmed_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(account.id.as_str())
        .bind(&account.email)
        .bind(new.email.normalized())
        .bind(&account.name)
        .bind(&account.company)
        .bind(&account.password_hash)
        .bind(account.age_confirmed_at)
        .bind(account.created_at)
        .bind(account.updated_at)
        .execute(self.pool())
        .await?;
        Ok(account)
    }

    pub async fn find_account(&self, id: &AccountId) -> Result<Account> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    /// Looks an account up by email, case-insensitively.
    pub async fn find_account_by_email(&self, email: &str) -> Result<Account> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts WHERE email_normalized = $1 AND deleting_since IS NULL"
        )))
        .bind(email.trim().to_lowercase())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    /// Applies a profile correction; fields left `None` keep their value. A changed address is no longer
    /// verified (`email_verified_at` becomes NULL in the same statement).
    pub async fn update_account(&self, id: &AccountId, update: &AccountUpdate) -> Result<Account> {
        self.update_account_with_links(id, update, &[]).await
    }

    /// [`Store::update_account`] and the insertion of `links` (the verification link for a new address,
    /// the undo link to the old one) in one transaction: either the change and its links exist, or
    /// neither. Pending verification links of the account are invalidated when the address changes.
    pub async fn update_account_with_links(
        &self,
        id: &AccountId,
        update: &AccountUpdate,
        links: &[crate::email_links::NewEmailLink],
    ) -> Result<Account> {
        let current = self.find_account(id).await?;
        let email = update
            .email
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or(current.email.clone());
        let name = update
            .name
            .as_ref()
            .map(|n| n.as_str())
            .unwrap_or(&current.name);
        let company = update
            .company
            .as_ref()
            .map(|c| c.as_str())
            .unwrap_or(&current.company);
        let normalized = email.to_lowercase();
        let changes_email = normalized != current.email.to_lowercase();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE accounts SET email = $2, email_normalized = $3, name = $4, company = $5, updated_at = $6,
                email_verified_at = CASE WHEN email_normalized = $3 THEN email_verified_at ELSE NULL END
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(&email)
        .bind(&normalized)
        .bind(name)
        .bind(company)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let account = from_row(&row)?;
        if changes_email {
            sqlx::query(
                "UPDATE email_links SET used_at = $2 WHERE account_id = $1 AND purpose = 'verify' AND used_at IS NULL",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for link in links {
            crate::email_links::insert_link(&mut tx, id, link, now).await?;
        }
        tx.commit().await?;
        Ok(account)
    }

    /// Marks the account's current address as verified (or not, with `None`): the operator vouches for
    /// accounts made with `mtdesk admin account create`, and tests use it.
    pub async fn set_email_verified(&self, id: &AccountId, at: Option<i64>) -> Result<()> {
        let n = sqlx::query("UPDATE accounts SET email_verified_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(at)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(crate::StorageError::NotFound);
        }
        Ok(())
    }

    pub async fn update_password_hash(&self, id: &AccountId, hash: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(hash)
                .bind(now_ms())
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(crate::StorageError::NotFound);
        }
        Ok(())
    }

    /// Grants (or revokes) the operator role: the privacy page and deletion requests.
    pub async fn set_operator(&self, id: &AccountId, operator: bool) -> Result<()> {
        let n = sqlx::query("UPDATE accounts SET operator_since = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(operator.then(now_ms))
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(crate::StorageError::NotFound);
        }
        Ok(())
    }

    /// Whether the account holds the operator role.
    pub async fn is_operator(&self, id: &AccountId) -> Result<bool> {
        let row = sqlx::query("SELECT operator_since FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("operator_since")?.is_some())
    }

    /// Like [`Store::find_account_by_email`], also finding an account whose deletion has started (an
    /// emailed request must finish it, not report "no data").
    pub async fn find_account_by_email_any(&self, email: &str) -> Result<Account> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts WHERE email_normalized = $1"
        )))
        .bind(email.trim().to_lowercase())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    /// Records the account's choice about product-usage analytics. Declining or withdrawing deletes every
    /// usage event collected so far, in the same transaction.
    pub async fn set_analytics_consent(&self, id: &AccountId, consent: bool) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE accounts SET analytics_consent = $2, analytics_consent_at = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(i64::from(consent))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(crate::StorageError::NotFound);
        }
        let removed = if consent {
            0
        } else {
            sqlx::query("DELETE FROM usage_events WHERE account_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        tx.commit().await?;
        Ok(removed)
    }

    /// Records a product-usage event, only while the account's consent is given (checked in the same
    /// statement, so a withdrawal racing with a page view never lets one through). Returns whether it
    /// was recorded.
    pub async fn record_usage_event(&self, id: &AccountId, event: &str) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO usage_events (id, account_id, event, created_at)
             SELECT $1, id, $3, $4 FROM accounts WHERE id = $2 AND analytics_consent = 1",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(id.as_str())
        .bind(event)
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Usage events of the account, per event name (for the account page and the export).
    pub async fn usage_event_counts(&self, id: &AccountId) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT event, CAST(COUNT(*) AS BIGINT) AS n FROM usage_events WHERE account_id = $1
             GROUP BY event ORDER BY event",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("event")?, r.try_get("n")?)))
            .collect()
    }

    /// First step of an account deletion: marks the account (a crash resumes from the mark, see
    /// [`Store::accounts_being_deleted`]) and ends its sessions and API tokens in one transaction, so nothing
    /// of it is served while its rows go. Keeps the first mark's time and path when called again.
    pub async fn mark_account_deleting(&self, id: &AccountId, path: &str) -> Result<DeletedRows> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE accounts SET deleting_since = COALESCE(deleting_since, $2),
                deleting_path = COALESCE(deleting_path, $3) WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now_ms())
        .bind(path)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(crate::StorageError::NotFound);
        }
        let mut deleted = DeletedRows::default();
        for table in ["sessions", "api_tokens"] {
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE account_id = $1"
            )))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted.tables.push((table.to_string(), n));
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Accounts whose deletion was started and not finished (a crash): (id, path, started at).
    pub async fn accounts_being_deleted(&self) -> Result<Vec<(AccountId, String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, deleting_path, deleting_since FROM accounts WHERE deleting_since IS NOT NULL ORDER BY deleting_since",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    AccountId::from_db(r.try_get("id")?),
                    r.try_get::<Option<String>, _>("deleting_path")?
                        .unwrap_or_else(|| "operator".into()),
                    r.try_get::<Option<i64>, _>("deleting_since")?.unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Deletes up to `limit` rows of `table` (one of [`catalogue::BATCHED_TABLES`]) that belong to the
    /// account, in one short transaction: a large account goes in many of these, so no single write holds
    /// SQLite's writer lock long enough to stall the webhooks. Returns the rows deleted (0: none left).
    pub async fn delete_account_batch(
        &self,
        id: &AccountId,
        table: &str,
        limit: i64,
    ) -> Result<u64> {
        let column = catalogue::BATCHED_TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                crate::StorageError::Other(anyhow::anyhow!("{table} is not deleted in batches"))
            })?;
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {column} = $1 LIMIT $2)"
        )))
        .bind(id.as_str())
        .bind(limit)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// Deletes the account and every row that belongs to it, in one transaction, table by table in the
    /// order of [`catalogue::ACCOUNT_TABLES`] (children first). Files are the caller's next step
    /// ([`crate::FileStore::delete_account`]), after the commit.
    pub async fn delete_account(&self, id: &AccountId) -> Result<DeletedRows> {
        let mut tx = self.pool().begin().await?;
        let mut deleted = DeletedRows::default();
        for (table, column) in catalogue::ACCOUNT_TABLES {
            let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {column} = $1"
            )))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            deleted.tables.push(((*table).to_string(), n));
        }
        // The anonymized daily aggregates stay, without their account and chatbot ids (the totals of
        // the instance stay right; nothing links them to anyone).
        sqlx::query(
            "UPDATE daily_stats SET account_id = NULL, chatbot_id = NULL WHERE account_id = $1",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        // Billing (external-apis.md §8): invoices stay for tax law, detached from the account and without
        // the link to Stripe's hosted page; number, amount, currency, date, billing name and country remain.
        sqlx::query(
            "UPDATE invoices SET account_id = NULL, hosted_url = NULL WHERE account_id = $1",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if deleted.count("accounts") == 0 {
            tx.rollback().await?;
            return Err(crate::StorageError::NotFound);
        }
        tx.commit().await?;
        self.after_bulk_delete().await;
        Ok(deleted)
    }

    /// SQLite: copies the write-ahead log back into the database without waiting for anyone (PASSIVE), so a
    /// long run of deletion batches does not grow the WAL — and the final TRUNCATE checkpoint stays short.
    /// A no-op on PostgreSQL.
    pub async fn checkpoint_passive(&self) {
        if self.backend() == crate::Backend::Sqlite
            && let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(self.pool())
                .await
        {
            tracing::debug!(error = %e, "passive checkpoint failed");
        }
    }

    /// Backend hygiene after a large deletion (see `dialect::sqlite::AFTER_DELETE`). Failure here does not
    /// undo the committed deletion, so it is logged, not returned.
    pub(crate) async fn after_bulk_delete(&self) {
        if self.backend() == crate::Backend::Sqlite {
            for sql in crate::dialect::sqlite::AFTER_DELETE {
                if let Err(e) = sqlx::raw_sql(*sql).execute(self.pool()).await {
                    tracing::warn!(error = %e, "post-deletion maintenance failed");
                }
            }
        }
    }
}
