//! Plans (operator data, `mtdesk admin plan …`), an account's billing state as far as limits need it, and
//! the usage counts limits are checked against.
//!
//! A limit of -1 means unlimited. Exactly one plan has `is_default = 1`: [`Store::upsert_plan`] moves the
//! flag in one transaction, and [`Store::delete_plan`] refuses the default plan and plans accounts are on.
//! Which plan applies to an account is decided in `mtdesk_billing::plans` (it depends on whether billing is
//! on); this module only reads and writes rows.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A plan row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// Slug: `free`, `starter`, `pro`, `unlimited`, or the operator's own.
    pub id: String,
    pub name: String,
    /// The Stripe Price a subscription to this plan uses; `None`: not purchasable.
    pub stripe_price_id: Option<String>,
    pub price_cents: i64,
    pub currency: String,
    /// Chatbots an account may have; -1 = unlimited.
    pub max_chatbots: i64,
    /// Answered messages per calendar month (UTC); -1 = unlimited.
    pub max_messages_month: i64,
    /// Knowledge storage in bytes (uploaded files and crawled text); -1 = unlimited.
    pub max_storage_bytes: i64,
    /// Connected channels; -1 = unlimited.
    pub max_channels: i64,
    pub is_default: bool,
    /// Order in lists (the pricing table).
    pub position: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A plan to create or replace (`mtdesk admin plan set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlan {
    pub id: String,
    pub name: String,
    pub stripe_price_id: Option<String>,
    pub price_cents: i64,
    pub currency: String,
    pub max_chatbots: i64,
    pub max_messages_month: i64,
    pub max_storage_bytes: i64,
    pub max_channels: i64,
    /// Make this the default plan (the previous default loses the flag). `false` never removes the flag
    /// from the current default: there is always exactly one.
    pub is_default: bool,
    pub position: i64,
}

/// The billing columns of an account that decide its plan (written by the Stripe webhook handling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBilling {
    pub plan_id: Option<String>,
    /// none, active, trialing, past_due, unpaid, canceled.
    pub billing_status: String,
    pub grace_until: Option<i64>,
}

/// What an account uses, as counted for its plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageCounts {
    pub chatbots: i64,
    pub channels: i64,
    /// Uploaded files (their size) plus the text crawled from websites.
    pub storage_bytes: i64,
    /// Answered messages (the fallback reply does not count) in the month asked for.
    pub messages: i64,
}

const COLUMNS: &str = "id, name, stripe_price_id, price_cents, currency, max_chatbots, max_messages_month, \
     max_storage_bytes, max_channels, is_default, position, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Plan, sqlx::Error> {
    Ok(Plan {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        stripe_price_id: r.try_get("stripe_price_id")?,
        price_cents: r.try_get("price_cents")?,
        currency: r.try_get("currency")?,
        max_chatbots: r.try_get("max_chatbots")?,
        max_messages_month: r.try_get("max_messages_month")?,
        max_storage_bytes: r.try_get("max_storage_bytes")?,
        max_channels: r.try_get("max_channels")?,
        is_default: r.try_get::<i64, _>("is_default")? != 0,
        position: r.try_get("position")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The SQL of the text crawled for an account's website sources (chars of the stored chunks).
const STORAGE_SQL: &str =
    "(SELECT CAST(COALESCE(SUM(byte_size), 0) AS BIGINT) FROM sources WHERE account_id = $1)
     + (SELECT CAST(COALESCE(SUM(LENGTH(c.text)), 0) AS BIGINT) FROM chunks c
          JOIN sources s ON s.id = c.source_id
        WHERE c.account_id = $1 AND s.kind = 'url')";

impl Store {
    /// Every plan, in `position` order.
    pub async fn list_plans(&self) -> Result<Vec<Plan>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plans ORDER BY position, id"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn find_plan(&self, id: &str) -> Result<Plan> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plans WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&r)?)
    }

    /// The plan marked default (the plan of accounts without a paid subscription while billing is on).
    pub async fn find_default_plan(&self) -> Result<Plan> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plans WHERE is_default = 1 ORDER BY id LIMIT 1"
        )))
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&r)?)
    }

    /// The plan a Stripe Price belongs to (for subscription webhooks).
    pub async fn find_plan_by_price(&self, stripe_price_id: &str) -> Result<Plan> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM plans WHERE stripe_price_id = $1"
        )))
        .bind(stripe_price_id)
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&r)?)
    }

    /// Creates or replaces a plan (keeping its `created_at`). With `is_default`, the flag moves to it in the
    /// same transaction. A price id used by another plan is [`StorageError::Conflict`] on `stripe_price_id`.
    pub async fn upsert_plan(&self, p: &NewPlan) -> Result<Plan> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let result = sqlx::query(
            "INSERT INTO plans (id, name, stripe_price_id, price_cents, currency, max_chatbots, max_messages_month,
                 max_storage_bytes, max_channels, is_default, position, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $11)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, stripe_price_id = excluded.stripe_price_id,
                 price_cents = excluded.price_cents, currency = excluded.currency,
                 max_chatbots = excluded.max_chatbots, max_messages_month = excluded.max_messages_month,
                 max_storage_bytes = excluded.max_storage_bytes, max_channels = excluded.max_channels,
                 position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.stripe_price_id)
        .bind(p.price_cents)
        .bind(&p.currency)
        .bind(p.max_chatbots)
        .bind(p.max_messages_month)
        .bind(p.max_storage_bytes)
        .bind(p.max_channels)
        .bind(p.position)
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = result {
            return Err(match StorageError::from(e) {
                StorageError::Conflict { .. } => StorageError::Conflict {
                    field: "stripe_price_id",
                },
                other => other,
            });
        }
        if p.is_default {
            sqlx::query("UPDATE plans SET is_default = CASE WHEN id = $1 THEN 1 ELSE 0 END")
                .bind(&p.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.find_plan(&p.id).await
    }

    /// Accounts whose `plan_id` is this plan (whatever their billing status).
    pub async fn count_accounts_on_plan(&self, id: &str) -> Result<i64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM accounts WHERE plan_id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }

    /// Deletes a plan. Refused with [`StorageError::Conflict`] (`field` = `is_default` or `plan_id`) for
    /// the default plan and for a plan an account is on; the check and the delete are one statement, so an
    /// account moved onto the plan meanwhile cannot be left pointing at nothing.
    pub async fn delete_plan(&self, id: &str) -> Result<()> {
        let plan = self.find_plan(id).await?;
        if plan.is_default {
            return Err(StorageError::Conflict {
                field: "is_default",
            });
        }
        let n = sqlx::query(
            "DELETE FROM plans WHERE id = $1 AND is_default = 0
               AND NOT EXISTS (SELECT 1 FROM accounts WHERE plan_id = $1)",
        )
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::Conflict { field: "plan_id" });
        }
        Ok(())
    }

    /// The billing columns that decide the account's plan.
    pub async fn find_account_billing(&self, account: &AccountId) -> Result<AccountBilling> {
        let r =
            sqlx::query("SELECT plan_id, billing_status, grace_until FROM accounts WHERE id = $1")
                .bind(account.as_str())
                .fetch_one(self.pool())
                .await?;
        Ok(AccountBilling {
            plan_id: r.try_get("plan_id")?,
            billing_status: r.try_get("billing_status")?,
            grace_until: r.try_get("grace_until")?,
        })
    }

    /// Everything the account uses, with the answered messages of days `[from_day, to_day)` (days since
    /// 1970-01-01 UTC, see `stats::day_of`). Messages come from `daily_stats`, written in the same
    /// transaction as each answer, so this is exactly what answering recorded (and survives the retention
    /// purge of the answers themselves).
    pub async fn usage_counts(
        &self,
        account: &AccountId,
        from_day: i64,
        to_day: i64,
    ) -> Result<UsageCounts> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT COUNT(*) FROM chatbots WHERE account_id = $1) AS chatbots,
                    (SELECT COUNT(*) FROM channels WHERE account_id = $1) AS channels,
                    {STORAGE_SQL} AS storage_bytes,
                    (SELECT CAST(COALESCE(SUM(answered), 0) AS BIGINT) FROM daily_stats
                      WHERE account_id = $1 AND day >= $2 AND day < $3) AS messages"
        )))
        .bind(account.as_str())
        .bind(from_day)
        .bind(to_day)
        .fetch_one(self.pool())
        .await?;
        Ok(UsageCounts {
            chatbots: r.try_get("chatbots")?,
            channels: r.try_get("channels")?,
            storage_bytes: r.try_get("storage_bytes")?,
            messages: r.try_get("messages")?,
        })
    }

    /// Knowledge storage in use (see [`UsageCounts::storage_bytes`]).
    pub async fn storage_bytes(&self, account: &AccountId) -> Result<i64> {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {STORAGE_SQL} AS n")))
            .bind(account.as_str())
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }

    /// Text held by one source's chunks (what a re-crawl replaces).
    pub async fn source_text_bytes(&self, source: &mtdesk_domain::SourceId) -> Result<i64> {
        let n: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(LENGTH(text)), 0) AS BIGINT) AS n FROM chunks WHERE source_id = $1",
        )
        .bind(source.as_str())
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(n)
    }

    /// Chatbots of the account.
    pub async fn count_chatbots(&self, account: &AccountId) -> Result<i64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM chatbots WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n)
    }

    /// Connected channels of the account, and whether one of them is `kind` with `platform_id` as its
    /// own id or its Page (a reconnect, which adds no channel).
    pub async fn count_channels_for_connect(
        &self,
        account: &AccountId,
        kind: &str,
        platform_id: &str,
    ) -> Result<(i64, bool)> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n,
                    CAST(COALESCE(SUM(CASE WHEN kind = $2 AND (external_id = $3 OR page_id = $3) THEN 1 ELSE 0 END), 0) AS BIGINT) AS same
             FROM channels WHERE account_id = $1",
        )
        .bind(account.as_str())
        .bind(kind)
        .bind(platform_id)
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get("n")?, r.try_get::<i64, _>("same")? > 0))
    }

    /// The hot path of answering: the account's billing columns, the message limits of its own plan and
    /// of `fallback_plan` (`None`: the default plan), in one query. The caller decides which applies.
    pub async fn message_limits(
        &self,
        account: &AccountId,
        fallback_plan: Option<&str>,
    ) -> Result<MessageLimits> {
        let r = sqlx::query(
            "SELECT a.plan_id, a.billing_status, a.grace_until,
                    p.name AS own_name, p.max_messages_month AS own_limit,
                    f.id AS fallback_id, f.name AS fallback_name, f.max_messages_month AS fallback_limit
             FROM accounts a
             LEFT JOIN plans p ON p.id = a.plan_id
             LEFT JOIN plans f ON f.id = (CASE WHEN $2 = '' THEN
                     (SELECT d.id FROM plans d WHERE d.is_default = 1 ORDER BY d.id LIMIT 1) ELSE $2 END)
             WHERE a.id = $1",
        )
        .bind(account.as_str())
        .bind(fallback_plan.unwrap_or(""))
        .fetch_one(self.pool())
        .await?;
        let own = match (
            r.try_get::<Option<String>, _>("own_name")?,
            r.try_get::<Option<i64>, _>("own_limit")?,
        ) {
            (Some(name), Some(limit)) => Some((name, limit)),
            _ => None,
        };
        let fallback = match (
            r.try_get::<Option<String>, _>("fallback_id")?,
            r.try_get::<Option<String>, _>("fallback_name")?,
            r.try_get::<Option<i64>, _>("fallback_limit")?,
        ) {
            (Some(id), Some(name), Some(limit)) => Some((id, name, limit)),
            _ => None,
        };
        Ok(MessageLimits {
            billing: AccountBilling {
                plan_id: r.try_get("plan_id")?,
                billing_status: r.try_get("billing_status")?,
                grace_until: r.try_get("grace_until")?,
            },
            own,
            fallback,
        })
    }

    /// Answered messages of the account in days `[from_day, to_day)`.
    pub async fn answered_messages(
        &self,
        account: &AccountId,
        from_day: i64,
        to_day: i64,
    ) -> Result<i64> {
        let n: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(answered), 0) AS BIGINT) AS n FROM daily_stats
             WHERE account_id = $1 AND day >= $2 AND day < $3",
        )
        .bind(account.as_str())
        .bind(from_day)
        .bind(to_day)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(n)
    }

    /// Records that the owner is told about reaching the message limit in `month` (`2026-12`). True for
    /// exactly one caller per account and month, however many answers race: the conditional UPDATE is
    /// atomic on both databases.
    pub async fn claim_limit_notice(&self, account: &AccountId, month: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE accounts SET limit_notice_month = $2
             WHERE id = $1 AND (limit_notice_month IS NULL OR limit_notice_month <> $2)",
        )
        .bind(account.as_str())
        .bind(month)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

/// What [`Store::message_limits`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLimits {
    pub billing: AccountBilling,
    /// The account's own plan (name, monthly limit), when `plan_id` names an existing plan.
    pub own: Option<(String, i64)>,
    /// The fallback plan (id, name, monthly limit), when it exists.
    pub fallback: Option<(String, String, i64)>,
}
