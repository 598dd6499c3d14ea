//! Q&A pairs and their full-text search.

use crate::{Backend, Result, StorageError, Store, dialect};
use mtdesk_domain::{AccountId, ChatbotId, QaPairId, QaPairInput, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, serde::Serialize)]
pub struct QaPair {
    pub id: QaPairId,
    pub chatbot_id: ChatbotId,
    pub question: String,
    pub answer: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A full-text candidate with the backend's relevance score (higher is better; scale differs by backend,
/// so callers compare candidates with each other, not scores across databases).
#[derive(Debug, Clone)]
pub struct QaMatch {
    pub pair: QaPair,
    pub score: f64,
}

const COLUMNS: &str = "id, chatbot_id, question, answer, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<QaPair, sqlx::Error> {
    Ok(QaPair {
        id: QaPairId::from_db(r.try_get("id")?),
        chatbot_id: ChatbotId::from_db(r.try_get("chatbot_id")?),
        question: r.try_get("question")?,
        answer: r.try_get("answer")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Inserts pairs in one transaction: all or nothing. The chatbot must belong to the account.
    pub async fn insert_qa_pairs(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        pairs: &[QaPairInput],
    ) -> Result<Vec<QaPair>> {
        let mut tx = self.pool().begin().await?;
        // A write first: it checks ownership and takes SQLite's write lock at once. A transaction that
        // reads first and writes later can fail with "database is locked" when another writer commits
        // in between (no busy wait is possible then).
        let owned = sqlx::query(
            "UPDATE chatbots SET updated_at = updated_at WHERE id = $1 AND account_id = $2",
        )
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if owned == 0 {
            return Err(StorageError::NotFound);
        }
        let now = now_ms();
        let last: i64 = sqlx::query(
            "SELECT COALESCE(MAX(position), 0) AS p FROM qa_pairs WHERE chatbot_id = $1",
        )
        .bind(chatbot.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("p")?;
        let mut out = Vec::with_capacity(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO qa_pairs (id, account_id, chatbot_id, question, answer, position, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
            )))
            .bind(QaPairId::new().as_str())
            .bind(account.as_str())
            .bind(chatbot.as_str())
            .bind(&p.question)
            .bind(&p.answer)
            .bind(last + 1 + i as i64)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            out.push(from_row(&row)?);
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn list_qa_pairs(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
    ) -> Result<Vec<QaPair>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM qa_pairs WHERE chatbot_id = $1 AND account_id = $2 ORDER BY position, id"
        )))
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn count_qa_pairs(&self, account: &AccountId, chatbot: &ChatbotId) -> Result<i64> {
        let n = sqlx::query(
            "SELECT COUNT(*) AS n FROM qa_pairs WHERE chatbot_id = $1 AND account_id = $2",
        )
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok(n)
    }

    pub async fn find_qa_pair(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &QaPairId,
    ) -> Result<QaPair> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM qa_pairs WHERE id = $1 AND chatbot_id = $2 AND account_id = $3"
        )))
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    pub async fn update_qa_pair(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &QaPairId,
        p: &QaPairInput,
    ) -> Result<QaPair> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE qa_pairs SET question = $4, answer = $5, updated_at = $6
             WHERE id = $1 AND chatbot_id = $2 AND account_id = $3 RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .bind(&p.question)
        .bind(&p.answer)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    pub async fn delete_qa_pair(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &QaPairId,
    ) -> Result<()> {
        let n = sqlx::query(
            "DELETE FROM qa_pairs WHERE id = $1 AND chatbot_id = $2 AND account_id = $3",
        )
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Full-text candidates for `terms` (already sanitised words, see `mtdesk_domain::text::content_terms`),
    /// best first. Empty `terms` match nothing.
    pub async fn search_qa_pairs(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<QaMatch>> {
        let terms: Vec<String> = terms
            .iter()
            .filter(|t| !t.is_empty() && t.chars().all(char::is_alphanumeric))
            .cloned()
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, expr) = match self.backend() {
            Backend::Sqlite => (
                dialect::sqlite::QA_SEARCH,
                dialect::sqlite::match_expr(&terms),
            ),
            Backend::Postgres => (
                dialect::postgres::QA_SEARCH,
                dialect::postgres::match_expr(&terms),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(expr)
            .bind(chatbot.as_str())
            .bind(account.as_str())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QaMatch {
                    pair: from_row(r)?,
                    score: r.try_get("score")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }
}
