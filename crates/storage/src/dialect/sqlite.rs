//! SQLite specifics: connection settings, FTS5 search, catalogue, post-deletion hygiene.

use sqlx::AnyConnection;

/// Settings applied to every new connection.
/// - WAL: readers never block the writer (webhooks keep flowing while the dashboard reads).
/// - busy_timeout: a writer waits for the lock instead of failing at once.
/// - foreign_keys: SQLite leaves them off unless asked per connection.
/// - secure_delete: deleted rows are overwritten with zeros, so a deleted account is not recoverable from
///   free pages of the database file.
pub(crate) async fn configure(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "PRAGMA journal_mode = WAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA synchronous = NORMAL;",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Top Q&A candidates for a chatbot by BM25 over question (weight 3) and answer (weight 1).
/// `match_expr` is built from sanitised words only (see `qa::fts_terms`). FTS5's bm25 is "lower is better",
/// so it is negated to "higher is better" like PostgreSQL's rank.
///
/// The match runs first (a materialised CTE filtered on the FTS table's own chatbot column); joining
/// `qa_pairs` first would make SQLite probe the full-text index once per row of the chatbot (measured:
/// 430 ms per query at 10k pairs, see BENCHMARKS.md).
pub(crate) const QA_SEARCH: &str = "WITH m AS MATERIALIZED (
        SELECT rowid AS rid, -bm25(qa_pairs_fts, 3.0, 1.0) AS score FROM qa_pairs_fts
        WHERE qa_pairs_fts MATCH $1 AND chatbot_id = $2 AND account_id = $3
        ORDER BY bm25(qa_pairs_fts, 3.0, 1.0) LIMIT $4)
    SELECT q.id, q.chatbot_id, q.question, q.answer, q.created_at, q.updated_at, m.score AS score
    FROM m JOIN qa_pairs q ON q.rowid = m.rid
    ORDER BY m.score DESC";

/// FTS5 syntax: each word quoted, any of them may match.
pub(crate) fn match_expr(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Every table, including FTS5's shadow tables (they hold the indexed text too).
pub(crate) const LIST_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name";

pub(crate) fn list_columns(table: &str) -> String {
    format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
}

/// Used after an account is deleted: merges the FTS5 index so no segment keeps the deleted terms, and
/// checkpoints the WAL so the old pages leave the log file.
pub(crate) const AFTER_DELETE: &[&str] = &[
    "INSERT INTO qa_pairs_fts (qa_pairs_fts) VALUES ('optimize')",
    "PRAGMA wal_checkpoint(TRUNCATE)",
];
