//! Anonymized daily aggregates (`daily_stats`): counts per chatbot, channel, provider and day, written in
//! the same transaction as the rows they count. They hold no text and no end-user id, so they survive the
//! retention purge; account deletion keeps them with their account and chatbot ids set to NULL.

use sqlx::AnyConnection;

/// Upper bounds (ms) of the latency histogram's buckets; the last column counts everything above.
pub const LATENCY_BUCKETS_MS: [i64; 9] = [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800];
/// The histogram's columns, in bucket order (the last is "above 12.8 s").
pub const LATENCY_COLUMNS: [&str; 10] = [
    "lat_50",
    "lat_100",
    "lat_200",
    "lat_400",
    "lat_800",
    "lat_1600",
    "lat_3200",
    "lat_6400",
    "lat_12800",
    "lat_max",
];

/// What one event adds to its day's row.
#[derive(Debug, Clone, Default)]
pub struct Bump {
    pub conversations: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    pub answered: i64,
    pub from_knowledge: i64,
    pub fallbacks: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// An answer's latency: added to the sum and counted in its histogram bucket.
    pub latency_ms: Option<i64>,
}

/// Days since 1970-01-01 (UTC) of a time in ms.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The histogram bucket of a latency.
pub fn latency_bucket(ms: i64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Adds `b` to the row of (account, chatbot, channel, provider, day). `channel` is given as SQL text: a
/// bound value (`$4`) or a sub-select of the conversation's channel when the caller does not know it.
pub(crate) async fn bump(
    conn: &mut AnyConnection,
    account: &str,
    chatbot: &str,
    channel: Channel<'_>,
    provider: &str,
    at_ms: i64,
    b: &Bump,
) -> sqlx::Result<()> {
    let mut hist = [0i64; 10];
    if let Some(ms) = b.latency_ms {
        hist[latency_bucket(ms)] = 1;
    }
    let (channel_sql, channel_value) = match channel {
        Channel::Name(n) => ("$4", n),
        Channel::OfConversation(id) => (
            "COALESCE((SELECT channel FROM conversations WHERE id = $4), 'unknown')",
            id,
        ),
    };
    let cols = LATENCY_COLUMNS.join(", ");
    let updates = [
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
    .chain(LATENCY_COLUMNS.iter())
    .map(|c| format!("{c} = daily_stats.{c} + excluded.{c}"))
    .collect::<Vec<_>>()
    .join(", ");
    let sql = format!(
        "INSERT INTO daily_stats (id, account_id, chatbot_id, channel, provider, day, conversations, messages_in,
            messages_out, answered, from_knowledge, fallbacks, prompt_tokens, completion_tokens, latency_ms_sum, {cols})
         VALUES ($1, $2, $3, {channel_sql}, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
            $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
         ON CONFLICT (account_id, chatbot_id, channel, provider, day) DO UPDATE SET {updates}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account.to_string())
        .bind(chatbot.to_string())
        .bind(channel_value.to_string())
        .bind(provider.to_string())
        .bind(day_of(at_ms))
        .bind(b.conversations)
        .bind(b.messages_in)
        .bind(b.messages_out)
        .bind(b.answered)
        .bind(b.from_knowledge)
        .bind(b.fallbacks)
        .bind(b.prompt_tokens)
        .bind(b.completion_tokens)
        .bind(b.latency_ms.unwrap_or(0));
    for h in hist {
        q = q.bind(h);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Which channel a bump counts under.
pub(crate) enum Channel<'a> {
    Name(&'a str),
    OfConversation(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(50), 0);
        assert_eq!(latency_bucket(51), 1);
        assert_eq!(latency_bucket(12_800), 8);
        assert_eq!(latency_bucket(12_801), 9);
        assert_eq!(day_of(86_400_000 * 3 + 5), 3);
        assert_eq!(day_of(-1), -1);
    }
}
