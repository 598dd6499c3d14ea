//! Chatbots. Every query is scoped by account: a chatbot id of another account is simply not found.

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, ChainLink, ChatbotId, ChatbotSettings, Provider, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone)]
pub struct Chatbot {
    pub id: ChatbotId,
    pub account_id: AccountId,
    pub settings: ChatbotSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_id, name, instructions, provider, model, temperature, fallback_reply, knowledge_only, max_tokens, fallback_chain, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Chatbot, sqlx::Error> {
    let provider: String = r.try_get("provider")?;
    Ok(Chatbot {
        id: ChatbotId::from_db(r.try_get("id")?),
        account_id: AccountId::from_db(r.try_get("account_id")?),
        settings: ChatbotSettings {
            name: r.try_get("name")?,
            instructions: r.try_get("instructions")?,
            // A provider name this binary does not know (written by a newer version) falls back to offline.
            provider: Provider::parse(&provider).unwrap_or_default(),
            model: r.try_get("model")?,
            temperature: r.try_get("temperature")?,
            fallback_reply: r.try_get("fallback_reply")?,
            knowledge_only: r.try_get::<i64, _>("knowledge_only")? != 0,
            max_tokens: u32::try_from(r.try_get::<i64, _>("max_tokens")?).unwrap_or(512),
            // Stored by this code, so it parses; a row written by a newer version degrades to no chain.
            fallback_chain: ChainLink::parse_lines(&r.try_get::<String, _>("fallback_chain")?)
                .unwrap_or_default(),
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_chatbot(
        &self,
        account: &AccountId,
        s: &ChatbotSettings,
    ) -> Result<Chatbot> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO chatbots ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING {COLUMNS}"
        )))
        .bind(ChatbotId::new().as_str())
        .bind(account.as_str())
        .bind(&s.name)
        .bind(&s.instructions)
        .bind(s.provider.as_str())
        .bind(&s.model)
        .bind(s.temperature)
        .bind(&s.fallback_reply)
        .bind(i64::from(s.knowledge_only))
        .bind(i64::from(s.max_tokens))
        .bind(ChainLink::to_lines(&s.fallback_chain))
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    pub async fn list_chatbots(&self, account: &AccountId) -> Result<Vec<Chatbot>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM chatbots WHERE account_id = $1 ORDER BY created_at, id"
        )))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn find_chatbot(&self, account: &AccountId, id: &ChatbotId) -> Result<Chatbot> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM chatbots WHERE id = $1 AND account_id = $2"
        )))
        .bind(id.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    /// A chatbot by id alone, for operator commands (never for requests, which are scoped by account).
    pub async fn find_chatbot_any(&self, id: &ChatbotId) -> Result<Chatbot> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM chatbots WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    pub async fn update_chatbot(
        &self,
        account: &AccountId,
        id: &ChatbotId,
        s: &ChatbotSettings,
    ) -> Result<Chatbot> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE chatbots SET name = $3, instructions = $4, provider = $5, model = $6, temperature = $7,
                fallback_reply = $8, knowledge_only = $9, max_tokens = $10, fallback_chain = $11, updated_at = $12
             WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
        )))
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(&s.name)
        .bind(&s.instructions)
        .bind(s.provider.as_str())
        .bind(&s.model)
        .bind(s.temperature)
        .bind(&s.fallback_reply)
        .bind(i64::from(s.knowledge_only))
        .bind(i64::from(s.max_tokens))
        .bind(ChainLink::to_lines(&s.fallback_chain))
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(from_row(&row)?)
    }

    /// Deletes a chatbot with its Q&A pairs, conversations, messages and answer records, in one transaction.
    /// Deletes a chatbot and everything it holds, in one transaction. Returns the ids of the knowledge
    /// sources deleted with it, so the caller removes their files (read in the same transaction: an upload
    /// racing the deletion cannot be missed).
    pub async fn delete_chatbot(
        &self,
        account: &AccountId,
        id: &ChatbotId,
    ) -> Result<Vec<mtdesk_domain::SourceId>> {
        let mut tx = self.pool().begin().await?;
        // A write first (SQLite's lock), and the chatbot's own row must be the account's.
        let n = sqlx::query(
            "UPDATE chatbots SET updated_at = updated_at WHERE id = $1 AND account_id = $2",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        }
        // The chatbot's daily aggregates stay with the account (its totals stay right), without the
        // chatbot's id.
        sqlx::query(
            "UPDATE daily_stats SET chatbot_id = NULL WHERE chatbot_id = $1 AND account_id = $2",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        let sources: Vec<mtdesk_domain::SourceId> =
            sqlx::query("SELECT id FROM sources WHERE chatbot_id = $1 AND account_id = $2")
                .bind(id.as_str())
                .bind(account.as_str())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| {
                    r.try_get::<String, _>("id")
                        .map(mtdesk_domain::SourceId::from_db)
                })
                .collect::<Result<_, _>>()?;
        for sql in [
            // Jobs have no foreign key to the chatbot (a failed job would otherwise keep its error text).
            "DELETE FROM jobs WHERE chatbot_id = $1 AND account_id = $2",
            "DELETE FROM chunks WHERE chatbot_id = $1 AND account_id = $2",
            "DELETE FROM source_pages WHERE account_id = $2 AND source_id IN (SELECT id FROM sources WHERE chatbot_id = $1)",
            "DELETE FROM sources WHERE chatbot_id = $1 AND account_id = $2",
            "DELETE FROM answers WHERE chatbot_id = $1 AND account_id = $2",
            "DELETE FROM messages WHERE account_id = $2 AND conversation_id IN (SELECT id FROM conversations WHERE chatbot_id = $1)",
            "DELETE FROM conversations WHERE chatbot_id = $1 AND account_id = $2",
            "DELETE FROM qa_pairs WHERE chatbot_id = $1 AND account_id = $2",
        ] {
            sqlx::query(sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM chatbots WHERE id = $1 AND account_id = $2")
            .bind(id.as_str())
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        }
        tx.commit().await?;
        Ok(sources)
    }
}
