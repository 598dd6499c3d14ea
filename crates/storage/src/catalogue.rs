//! What the database holds, read from its own catalogue: the basis of provable deletion.

use crate::{Backend, Result, StorageError, Store, dialect};
use sqlx::Row;

/// Every table that holds an account's data, with the column naming the account, children before
/// parents. Account deletion deletes from each of these in this order, in one transaction.
///
/// Adding a table? Put it here (or in [`SYSTEM_TABLES`] / [`DERIVED_TABLES`] with a reason). The deletion
/// test fails on any table in the catalogue that is in none of the three lists.
pub const ACCOUNT_TABLES: &[(&str, &str)] = &[
    ("outbox", "account_id"),
    ("email_links", "account_id"),
    ("known_devices", "account_id"),
    ("exports", "account_id"),
    ("usage_events", "account_id"),
    ("jobs", "account_id"),
    ("chunks", "account_id"),
    ("source_pages", "account_id"),
    ("sources", "account_id"),
    ("answers", "account_id"),
    ("messages", "account_id"),
    ("conversations", "account_id"),
    ("channels", "account_id"),
    ("qa_pairs", "account_id"),
    ("chatbots", "account_id"),
    ("provider_keys", "account_id"),
    ("api_tokens", "account_id"),
    ("sessions", "account_id"),
    ("accounts", "id"),
];

/// The large tables of an account, deleted first in short batches (see `Store::delete_account_batch`),
/// children before parents; each has an `id` primary key and an index on its account column. The final
/// transaction then deletes the rest of [`ACCOUNT_TABLES`].
pub const BATCHED_TABLES: &[(&str, &str)] = &[
    ("answers", "account_id"),
    ("messages", "account_id"),
    ("chunks", "account_id"),
    ("source_pages", "account_id"),
    ("jobs", "account_id"),
    ("usage_events", "account_id"),
    ("conversations", "account_id"),
];

/// Tables that never hold an account's data.
pub const SYSTEM_TABLES: &[&str] = &[
    // Schema versions and checksums.
    "_migrations",
    // Raw Meta webhook bodies between the 200 and their processing (seconds): the owning account is known
    // only after routing, and each row is deleted once processed or dropped (see storage::channels).
    "webhook_events",
    // Proof of deletions: scope, path, counts and a keyed hash of the subject, never the subject itself.
    "deletion_receipts",
    // Meta data-deletion requests: confirmation code, status and the subject's keyed hash.
    "data_deletion_requests",
    // Deletion requests received by email: the requester's address and name only until the confirmation
    // is queued (then cleared), afterwards a keyed hash and what was deleted.
    "privacy_requests",
    // The sub-processor checklist of each executed request (processor id, status, who ticked it).
    "privacy_request_tasks",
    // The policy's sub-processors and their deletion instructions (operator data).
    "subprocessors",
    // Anonymized daily counts per chatbot, channel and day: no text, no end-user id; on account deletion
    // their account and chatbot ids are set to NULL in the deleting transaction.
    "daily_stats",
    // Plans and their limits (operator data).
    "plans",
    // Ids of Stripe webhook events already processed (deduplication), pruned after 30 days.
    "stripe_events",
    // Invoices kept for tax law: on account deletion detached (account_id NULL) and stripped to number,
    // amount, currency, date, billing name and country.
    "invoices",
    // Messages from the public contact page (name, email, text) for the operator, purged after 12
    // months; not tied to an account.
    "contact_messages",
];

/// Tables maintained by the database itself from an [`ACCOUNT_TABLES`] table, cleared by triggers when
/// the source rows go (SQLite's FTS5 index over `qa_pairs` and its shadow tables). They are still scanned
/// for traces by the deletion test.
pub const DERIVED_TABLES: &[&str] = &[
    "qa_pairs_fts",
    "qa_pairs_fts_config",
    "qa_pairs_fts_content",
    "qa_pairs_fts_data",
    "qa_pairs_fts_docsize",
    "qa_pairs_fts_idx",
];

/// Every table in the database, from the catalogue (not from our lists).
pub async fn list_tables(store: &Store) -> Result<Vec<String>> {
    let sql = match store.backend() {
        Backend::Sqlite => dialect::sqlite::LIST_TABLES,
        Backend::Postgres => dialect::postgres::LIST_TABLES,
    };
    let rows = sqlx::query(sql).fetch_all(store.pool()).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?)
}

/// The columns of `table`, from the catalogue.
pub async fn list_columns(store: &Store, table: &str) -> Result<Vec<String>> {
    check_identifier(table)?;
    let sql = match store.backend() {
        Backend::Sqlite => dialect::sqlite::list_columns(table),
        Backend::Postgres => dialect::postgres::list_columns(table),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?)
}

/// One place where a value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub table: String,
    pub column: String,
    pub needle: String,
    pub rows: i64,
}

/// Scans every column of every table in the catalogue for each needle (an account id, an email, a marker
/// word) as a substring of the column's text form. Used to prove that a deletion left no trace.
pub async fn find_traces(store: &Store, needles: &[&str]) -> Result<Vec<Trace>> {
    let mut out = Vec::new();
    for table in list_tables(store).await? {
        for column in list_columns(store, &table).await? {
            check_identifier(&column)?;
            for needle in needles {
                let sql = match store.backend() {
                    // instr on blobs compares bytes, so binary FTS segments are scanned too.
                    Backend::Sqlite => format!(
                        "SELECT COUNT(*) AS n FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS BLOB), CAST($1 AS BLOB)) > 0"
                    ),
                    Backend::Postgres => format!(
                        "SELECT COUNT(*) AS n FROM \"{table}\" WHERE strpos({}, $1) > 0",
                        dialect::postgres::as_text(&column)
                    ),
                };
                let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(*needle)
                    .fetch_one(store.pool())
                    .await?
                    .try_get("n")?;
                if n > 0 {
                    out.push(Trace {
                        table: table.clone(),
                        column: column.clone(),
                        needle: (*needle).to_string(),
                        rows: n,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Rows per table whose `account_id` column (or `accounts.id`) equals `account`, for every table in the
/// catalogue that has such a column.
pub async fn rows_referencing_account(store: &Store, account: &str) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for table in list_tables(store).await? {
        let columns = list_columns(store, &table).await?;
        let column = if table == "accounts" {
            "id"
        } else if columns.iter().any(|c| c == "account_id") {
            "account_id"
        } else {
            continue;
        };
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM \"{table}\" WHERE \"{column}\" = $1"
        )))
        .bind(account)
        .fetch_one(store.pool())
        .await?
        .try_get("n")?;
        out.push((table, n));
    }
    Ok(out)
}

/// Tables in the catalogue that are in none of the classification lists.
pub async fn unclassified_tables(store: &Store) -> Result<Vec<String>> {
    Ok(list_tables(store)
        .await?
        .into_iter()
        .filter(|t| {
            !ACCOUNT_TABLES.iter().any(|(a, _)| a == t)
                && !SYSTEM_TABLES.contains(&t.as_str())
                && !DERIVED_TABLES.contains(&t.as_str())
        })
        .collect())
}

/// Catalogue names are interpolated into SQL, so anything but a plain identifier is refused.
fn check_identifier(name: &str) -> Result<()> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StorageError::Other(anyhow::anyhow!(
            "unexpected identifier {name:?} in catalogue"
        )))
    }
}
