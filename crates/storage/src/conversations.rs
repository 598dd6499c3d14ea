//! Conversations, their messages, and one record per answer (how it was produced).

use crate::{Result, StorageError, Store};
use mtdesk_domain::{AccountId, AnswerId, ChatbotId, ConversationId, now_ms};
use sqlx::Row;

/// A message of a conversation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub created_at: i64,
}

/// Everything recorded about one answer.
#[derive(Debug, Clone)]
pub struct NewAnswer {
    pub question: String,
    pub answer: String,
    pub provider: String,
    pub model: String,
    pub latency_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub from_knowledge: bool,
    /// False when the fallback reply was sent.
    pub answered: bool,
    pub top_score: Option<f64>,
    /// JSON: the retrieval candidates and scores.
    pub retrieval: String,
    /// JSON: each provider tried before the one that answered, and why it failed.
    pub fallbacks: String,
    /// The stored inbound channel message this answers (see `Store::record_inbound`): the customer's
    /// message is not stored again, and the reply is stored on the channel, `pending` delivery.
    pub inbound: Option<String>,
    /// JSON: the knowledge the answer used, shown in the transcript.
    pub sources: Option<String>,
}

/// A stored answer record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnswerRecord {
    pub id: AnswerId,
    pub conversation_id: ConversationId,
    pub question: String,
    pub answer: String,
    pub provider: String,
    pub model: String,
    pub latency_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub from_knowledge: bool,
    pub answered: bool,
    pub top_score: Option<f64>,
    pub fallbacks: String,
    pub created_at: i64,
}

/// Usage of one provider and model in a period.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageRow {
    pub provider: String,
    pub model: String,
    pub answers: i64,
    pub unanswered: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// A question the bot could not answer well (fallback reply, or weak retrieval), not yet resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnansweredQuestion {
    pub answer_id: AnswerId,
    pub question: String,
    pub top_score: Option<f64>,
    pub fallbacks: String,
    pub created_at: i64,
}

impl Store {
    /// Starts a conversation of `chatbot` on `channel` (`test`, `api`, later the Meta channels).
    pub async fn create_conversation(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        channel: &str,
    ) -> Result<ConversationId> {
        let id = ConversationId::new();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "INSERT INTO conversations (id, account_id, chatbot_id, channel, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $5 WHERE EXISTS (SELECT 1 FROM chatbots WHERE id = $3 AND account_id = $2)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(chatbot.as_str())
        .bind(channel)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StorageError::NotFound);
        }
        crate::stats::bump(
            &mut tx,
            account.as_str(),
            chatbot.as_str(),
            crate::stats::Channel::Name(channel),
            "",
            now,
            &crate::stats::Bump {
                conversations: 1,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Checks that the conversation belongs to this account's chatbot.
    pub async fn find_conversation(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &ConversationId,
    ) -> Result<()> {
        sqlx::query(
            "SELECT id FROM conversations WHERE id = $1 AND chatbot_id = $2 AND account_id = $3",
        )
        .bind(id.as_str())
        .bind(chatbot.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(())
    }

    /// The last `limit` messages of a conversation, oldest first.
    pub async fn recent_messages(
        &self,
        account: &AccountId,
        conversation: &ConversationId,
        limit: i64,
    ) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT id, role, content, created_at FROM messages WHERE conversation_id = $1 AND account_id = $2
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(conversation.as_str())
        .bind(account.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(Message {
                    id: r.try_get("id")?,
                    role: r.try_get("role")?,
                    content: r.try_get("content")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.reverse();
        Ok(out)
    }

    /// Stores a complete exchange in one transaction: the customer's message, the reply, and the answer
    /// record. Called only once an answer is complete, so a cut stream never leaves a partial answer.
    pub async fn record_exchange(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        conversation: &ConversationId,
        a: &NewAnswer,
    ) -> Result<AnswerId> {
        let mut tx = self.pool().begin().await?;
        // A write first, so SQLite takes the write lock at once (see `insert_qa_pairs`).
        sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
            .bind(conversation.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        // Messages are ordered by time; two exchanges within one millisecond must still keep their order.
        let last: i64 = sqlx::query(
            "SELECT COALESCE(MAX(created_at), 0) AS t FROM messages WHERE conversation_id = $1",
        )
        .bind(conversation.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("t")?;
        let now = now_ms().max(last + 1);
        match &a.inbound {
            None => {
                for (role, content, at) in [
                    ("user", &a.question, now),
                    ("assistant", &a.answer, now + 1),
                ] {
                    sqlx::query(
                        "INSERT INTO messages (id, account_id, conversation_id, role, content, created_at, sources)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(account.as_str())
                    .bind(conversation.as_str())
                    .bind(role)
                    .bind(content)
                    .bind(at)
                    .bind(if role == "assistant" { a.sources.clone() } else { None })
                    .execute(&mut *tx)
                    .await?;
                }
            }
            Some(inbound) => {
                let inserted = sqlx::query(
                    "INSERT INTO messages (id, account_id, conversation_id, role, content, created_at, channel_id,
                        reply_to, delivery, sources)
                     SELECT $1, $2, $3, 'assistant', $4, $5, channel_id, id, 'pending', $6 FROM messages
                     WHERE id = $7 AND conversation_id = $3
                     ON CONFLICT (reply_to) DO NOTHING",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(account.as_str())
                .bind(conversation.as_str())
                .bind(&a.answer)
                .bind(now + 1)
                .bind(&a.sources)
                .bind(inbound)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    // Another worker stored the reply to this message first (or the message is gone).
                    tx.rollback().await?;
                    return Err(StorageError::Conflict { field: "reply" });
                }
                sqlx::query("UPDATE conversations SET last_message = $2 WHERE id = $1")
                    .bind(conversation.as_str())
                    .bind(crate::channels::preview(&a.answer))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let id = AnswerId::new();
        // top_score travels as text and is CAST in SQL: sqlx 0.9's Any driver sends a NULL f64 as a
        // float4 parameter, so PostgreSQL would cache the statement with float4 and refuse the next
        // non-NULL (float8) bind ("incorrect binary data format").
        sqlx::query(
            "INSERT INTO answers (id, account_id, chatbot_id, conversation_id, question, answer, provider, model, latency_ms,
                prompt_tokens, completion_tokens, from_knowledge, answered, top_score, retrieval, fallbacks, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CAST($14 AS DOUBLE PRECISION), $15, $16, $17)",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(chatbot.as_str())
        .bind(conversation.as_str())
        .bind(&a.question)
        .bind(&a.answer)
        .bind(&a.provider)
        .bind(&a.model)
        .bind(a.latency_ms)
        .bind(a.prompt_tokens)
        .bind(a.completion_tokens)
        .bind(i64::from(a.from_knowledge))
        .bind(i64::from(a.answered))
        .bind(a.top_score.map(|s| s.to_string()))
        .bind(&a.retrieval)
        .bind(&a.fallbacks)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::stats::bump(
            &mut tx,
            account.as_str(),
            chatbot.as_str(),
            crate::stats::Channel::OfConversation(conversation.as_str()),
            &a.provider,
            now,
            &crate::stats::Bump {
                // A channel's inbound message was counted when it arrived (`record_inbound`).
                messages_in: i64::from(a.inbound.is_none()),
                messages_out: 1,
                answered: i64::from(a.answered),
                from_knowledge: i64::from(a.from_knowledge),
                fallbacks: i64::from(!a.answered),
                prompt_tokens: a.prompt_tokens,
                completion_tokens: a.completion_tokens,
                latency_ms: Some(a.latency_ms),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn find_answer(&self, account: &AccountId, id: &AnswerId) -> Result<AnswerRecord> {
        let r = sqlx::query(
            "SELECT id, conversation_id, question, answer, provider, model, latency_ms, prompt_tokens, completion_tokens,
                    from_knowledge, answered, top_score, fallbacks, created_at
             FROM answers WHERE id = $1 AND account_id = $2",
        )
        .bind(id.as_str())
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(AnswerRecord {
            id: AnswerId::from_db(r.try_get("id")?),
            conversation_id: ConversationId::from_db(r.try_get("conversation_id")?),
            question: r.try_get("question")?,
            answer: r.try_get("answer")?,
            provider: r.try_get("provider")?,
            model: r.try_get("model")?,
            latency_ms: r.try_get("latency_ms")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            from_knowledge: r.try_get::<i64, _>("from_knowledge")? != 0,
            answered: r.try_get::<i64, _>("answered")? != 0,
            top_score: r.try_get("top_score")?,
            fallbacks: r.try_get("fallbacks")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// Answers and tokens per provider and model between `from_ms` (inclusive) and `to_ms` (exclusive).
    pub async fn usage(
        &self,
        account: &AccountId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT provider, model, COUNT(*) AS answers,
                    CAST(SUM(CASE WHEN answered = 0 THEN 1 ELSE 0 END) AS BIGINT) AS unanswered,
                    CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                    CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens
             FROM answers WHERE account_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY provider, model ORDER BY provider, model",
        )
        .bind(account.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    provider: r.try_get("provider")?,
                    model: r.try_get("model")?,
                    answers: r.try_get("answers")?,
                    unanswered: r.try_get("unanswered")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// Unresolved questions of a chatbot that got the fallback reply or weak retrieval (below
    /// `weak_score`), newest first.
    pub async fn list_unanswered(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        weak_score: f64,
        limit: i64,
    ) -> Result<Vec<UnansweredQuestion>> {
        let rows = sqlx::query(
            "SELECT id, question, top_score, fallbacks, created_at FROM answers
             WHERE account_id = $1 AND chatbot_id = $2 AND resolved_at IS NULL
               AND (answered = 0 OR top_score IS NULL OR top_score < $3)
             ORDER BY created_at DESC, id LIMIT $4",
        )
        .bind(account.as_str())
        .bind(chatbot.as_str())
        .bind(weak_score)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnansweredQuestion {
                    answer_id: AnswerId::from_db(r.try_get("id")?),
                    question: r.try_get("question")?,
                    top_score: r.try_get("top_score")?,
                    fallbacks: r.try_get("fallbacks")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// Marks an unanswered question handled (e.g. turned into a Q&A pair). Already resolved or another
    /// chatbot's answer: `NotFound`.
    pub async fn resolve_answer(
        &self,
        account: &AccountId,
        chatbot: &ChatbotId,
        id: &AnswerId,
    ) -> Result<()> {
        let n = sqlx::query("UPDATE answers SET resolved_at = $4 WHERE id = $1 AND chatbot_id = $2 AND account_id = $3 AND resolved_at IS NULL")
            .bind(id.as_str())
            .bind(chatbot.as_str())
            .bind(account.as_str())
            .bind(now_ms())
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
