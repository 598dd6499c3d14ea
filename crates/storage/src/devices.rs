//! Devices an account has signed in from, for "new sign-in" notices. A device is a keyed hash of its
//! normalized User-Agent (computed by the caller with the instance secret), never the raw string; the
//! label ("Firefox on Linux") is what the notice and My Account show.

use crate::{Result, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;

/// A device as listed under My Account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub label: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
}

impl Store {
    /// Records a sign-in from `device_hash`. Returns `true` when the account had never used this device:
    /// the unique index decides, so two concurrent first sign-ins from one device report `true` once.
    pub async fn record_device(
        &self,
        account: &AccountId,
        device_hash: &str,
        label: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO known_devices (id, account_id, device_hash, label, first_seen_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (account_id, device_hash) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account.as_str())
        .bind(device_hash)
        .bind(label)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted > 0 {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE known_devices SET last_seen_at = $3 WHERE account_id = $1 AND device_hash = $2",
        )
        .bind(account.as_str())
        .bind(device_hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(false)
    }

    /// The account's devices, most recently used first.
    pub async fn list_devices(&self, account: &AccountId) -> Result<Vec<KnownDevice>> {
        let rows = sqlx::query(
            "SELECT label, first_seen_at, last_seen_at FROM known_devices WHERE account_id = $1
             ORDER BY last_seen_at DESC, id",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KnownDevice {
                    label: r.try_get("label")?,
                    first_seen_at: r.try_get("first_seen_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                })
            })
            .collect()
    }
}
