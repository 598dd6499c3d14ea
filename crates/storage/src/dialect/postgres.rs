//! PostgreSQL specifics: tsvector search and the catalogue.

/// Top Q&A candidates by `ts_rank` over the generated `search` column (question weighted A, answer B).
pub(crate) const QA_SEARCH: &str =
    "SELECT q.id, q.chatbot_id, q.question, q.answer, q.created_at, q.updated_at,
        CAST(ts_rank(q.search, to_tsquery('english', $1)) AS DOUBLE PRECISION) AS score
    FROM qa_pairs q
    WHERE q.search @@ to_tsquery('english', $1) AND q.chatbot_id = $2 AND q.account_id = $3
    ORDER BY score DESC LIMIT $4";

/// tsquery syntax: any of the words. The words are alphanumeric only, so nothing can break the syntax.
pub(crate) fn match_expr(terms: &[String]) -> String {
    terms.join(" | ")
}

pub(crate) const LIST_TABLES: &str =
    "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name";

pub(crate) fn list_columns(table: &str) -> String {
    format!(
        "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
    )
}

pub(crate) fn as_text(col: &str) -> String {
    format!("CAST(\"{col}\" AS TEXT)")
}
