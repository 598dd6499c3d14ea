//! Read side of the analytics page: the account's `daily_stats` rows of a period (written by
//! [`crate::stats`]), and its most frequent unanswered questions.
//!
//! The numbers come only from the daily aggregates, never from scanning messages: the aggregates survive
//! the retention purge, and a 90-day page of an account with millions of messages reads at most
//! days × channels × providers × chatbots small rows through the `(account_id, …)` index.

use crate::{Result, StorageError, Store};
use mtdesk_domain::analytics::{Counts, StatsRow};
use mtdesk_domain::{AccountId, ChatbotId};
use sqlx::Row;

/// How many of the period's latest answers the unanswered-questions list looks at.
pub const TOP_QUESTIONS_SCAN: i64 = 20_000;

/// An unanswered question asked (with the same text) `count` times in the period.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopQuestion {
    pub question: String,
    pub count: i64,
    pub last_asked_at: i64,
}

/// Which rows to read: one account, optionally one of its chatbots and one channel.
#[derive(Debug, Clone, Copy)]
pub struct StatsFilter<'a> {
    pub account: &'a AccountId,
    pub chatbot: Option<&'a ChatbotId>,
    pub channel: Option<&'a str>,
}

impl StatsFilter<'_> {
    /// The optional conditions as SQL (numbered from `$first`), in the order [`Self::bind`] binds them.
    fn conditions(&self, chatbot_col: &str, channel_col: &str, first: usize) -> String {
        let mut sql = String::new();
        let mut n = first;
        if self.chatbot.is_some() {
            sql.push_str(&format!(" AND {chatbot_col} = ${n}"));
            n += 1;
        }
        if self.channel.is_some() {
            sql.push_str(&format!(" AND {channel_col} = ${n}"));
        }
        sql
    }

    fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        if let Some(b) = self.chatbot {
            q = q.bind(b.as_str().to_string());
        }
        if let Some(c) = self.channel {
            q = q.bind(c.to_string());
        }
        q
    }
}

impl Store {
    /// The filter's `daily_stats` rows of days `from_day..=to_day`, summed over chatbots, one per day,
    /// channel and provider, ordered by day.
    pub async fn stats_rows(
        &self,
        f: &StatsFilter<'_>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<StatsRow>> {
        let sums = [
            "conversations",
            "messages_in",
            "messages_out",
            "answered",
            "from_knowledge",
            "fallbacks",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms_sum",
        ]
        .iter()
        .chain(crate::stats::LATENCY_COLUMNS.iter())
        .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
        let sql = format!(
            "SELECT day, channel, provider, {sums} FROM daily_stats
             WHERE account_id = $1 AND day >= $2 AND day <= $3{}
             GROUP BY day, channel, provider ORDER BY day, channel, provider",
            f.conditions("chatbot_id", "channel", 4)
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.account.as_str().to_string())
            .bind(from_day)
            .bind(to_day);
        let rows = f.bind(q).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let mut latency = [0i64; 10];
                for (slot, col) in latency.iter_mut().zip(crate::stats::LATENCY_COLUMNS) {
                    *slot = r.try_get(col)?;
                }
                Ok(StatsRow {
                    day: r.try_get("day")?,
                    channel: r.try_get("channel")?,
                    provider: r.try_get("provider")?,
                    counts: Counts {
                        conversations: r.try_get("conversations")?,
                        messages_in: r.try_get("messages_in")?,
                        messages_out: r.try_get("messages_out")?,
                        answered: r.try_get("answered")?,
                        from_knowledge: r.try_get("from_knowledge")?,
                        fallbacks: r.try_get("fallbacks")?,
                        prompt_tokens: r.try_get("prompt_tokens")?,
                        completion_tokens: r.try_get("completion_tokens")?,
                        latency_ms_sum: r.try_get("latency_ms_sum")?,
                        latency,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }

    /// The most frequent unresolved questions of `[from_ms, to_ms)` that got the fallback reply or only a
    /// weak knowledge match (below `weak_score`): the same rule as [`Store::list_unanswered`], grouped by
    /// the question's text. Reads the answer records, so it only covers what the retention keeps, and
    /// only the latest [`TOP_QUESTIONS_SCAN`] answers of the period, so the page costs the same for an
    /// account with millions of answers.
    pub async fn top_unanswered(
        &self,
        f: &StatsFilter<'_>,
        from_ms: i64,
        to_ms: i64,
        weak_score: f64,
        limit: i64,
    ) -> Result<Vec<TopQuestion>> {
        let join = if f.channel.is_some() {
            " JOIN conversations c ON c.id = a.conversation_id"
        } else {
            ""
        };
        let sql = format!(
            "SELECT x.question, CAST(COUNT(*) AS BIGINT) AS n, MAX(x.created_at) AS last_at
             FROM (SELECT a.question, a.created_at, a.answered, a.top_score, a.resolved_at
                   FROM answers a{join}
                   WHERE a.account_id = $1 AND a.created_at >= $2 AND a.created_at < $3{}
                   ORDER BY a.created_at DESC LIMIT $6) x
             WHERE x.resolved_at IS NULL AND (x.answered = 0 OR x.top_score IS NULL OR x.top_score < $4)
             GROUP BY x.question ORDER BY n DESC, last_at DESC LIMIT $5",
            f.conditions("a.chatbot_id", "c.channel", 7)
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.account.as_str().to_string())
            .bind(from_ms)
            .bind(to_ms)
            .bind(weak_score)
            .bind(limit)
            .bind(TOP_QUESTIONS_SCAN);
        let rows = f.bind(q).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(TopQuestion {
                    question: r.try_get("question")?,
                    count: r.try_get("n")?,
                    last_asked_at: r.try_get("last_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StorageError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_bounds_match_the_domain_s() {
        assert_eq!(
            crate::stats::LATENCY_BUCKETS_MS,
            mtdesk_domain::analytics::LATENCY_BOUNDS_MS
        );
        assert_eq!(crate::stats::LATENCY_COLUMNS.len(), 10);
    }

    #[test]
    fn optional_conditions_are_numbered_in_bind_order() {
        let account = AccountId::from_db("a".into());
        let bot = ChatbotId::from_db("b".into());
        let both = StatsFilter {
            account: &account,
            chatbot: Some(&bot),
            channel: Some("api"),
        };
        assert_eq!(
            both.conditions("chatbot_id", "channel", 4),
            " AND chatbot_id = $4 AND channel = $5"
        );
        let channel_only = StatsFilter {
            chatbot: None,
            ..both
        };
        assert_eq!(
            channel_only.conditions("x", "c.channel", 6),
            " AND c.channel = $6"
        );
    }
}
