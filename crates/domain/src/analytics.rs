//! Analytics numbers, computed from the anonymized daily aggregates (`daily_stats`), never from messages:
//! the periods one may ask for, summing rows, answer rates, latency percentiles from the stored histogram,
//! filling a day series, and the cost estimate per provider.
//!
//! Everything here is pure so the dashboard, the JSON API and the CSV export show the same numbers.

use crate::DomainError;
use serde::Serialize;

/// The periods the analytics page offers, in days (ending today, UTC, inclusive).
pub const PERIODS: [i64; 3] = [7, 30, 90];

/// Upper bounds (ms) of the latency histogram's buckets; a tenth bucket counts everything above the last.
/// Must equal `mtdesk_storage::stats::LATENCY_BUCKETS_MS` (a storage test checks it).
pub const LATENCY_BOUNDS_MS: [i64; 9] = [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800];

/// The channels a conversation can be counted under (`daily_stats.channel`), with their labels.
pub const CHANNELS: [(&str, &str); 6] = [
    ("messenger", "Messenger"),
    ("instagram", "Instagram"),
    ("whatsapp", "WhatsApp"),
    ("api", "API"),
    ("test", "Test chat"),
    ("unknown", "Unknown"),
];

/// Parses the `days` filter: 7, 30 or 90 (30 when empty).
pub fn parse_days(raw: Option<&str>) -> Result<i64, DomainError> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(30);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|d| PERIODS.contains(d))
        .ok_or_else(|| DomainError::invalid("days", "must be 7, 30 or 90"))
}

/// Parses the `channel` filter: one of [`CHANNELS`], or none when empty.
pub fn parse_channel(raw: Option<&str>) -> Result<Option<&'static str>, DomainError> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(None);
    }
    CHANNELS
        .iter()
        .find(|(k, _)| *k == raw)
        .map(|(k, _)| Some(*k))
        .ok_or_else(|| {
            DomainError::invalid(
                "channel",
                "must be one of messenger, instagram, whatsapp, api, test, unknown",
            )
        })
}

/// The label of a channel key ("whatsapp" → "WhatsApp").
pub fn channel_label(key: &str) -> &str {
    CHANNELS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, l)| *l)
        .unwrap_or(key)
}

/// Estimated list prices in USD per 1M tokens (prompt, completion) of each provider's usual model. The
/// one place prices live; shown as an **estimate** (the real bill depends on the model and the provider's
/// current prices). `None`: no price known (a self-hosted OpenAI-compatible server); its tokens are
/// reported as unpriced.
pub fn price_per_million(provider: &str) -> Option<(f64, f64)> {
    match provider {
        "offline" => Some((0.0, 0.0)),
        // OpenRouter: a small general model such as gpt-4o-mini.
        "openrouter" => Some((0.15, 0.60)),
        // Fireworks serverless, Llama 3.1 8B class.
        "fireworks" => Some((0.20, 0.20)),
        "minimax" => Some((0.30, 1.20)),
        // Moonshot Kimi K2.
        "moonshot" => Some((0.60, 2.50)),
        _ => None,
    }
}

/// What one or more `daily_stats` rows add up to. Every field is a plain sum, so rows combine in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub conversations: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    pub answered: i64,
    pub from_knowledge: i64,
    pub fallbacks: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms_sum: i64,
    /// Answers per latency bucket (see [`LATENCY_BOUNDS_MS`]; the last is "above 12.8 s").
    pub latency: [i64; 10],
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.conversations += o.conversations;
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.answered += o.answered;
        self.from_knowledge += o.from_knowledge;
        self.fallbacks += o.fallbacks;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.latency_ms_sum += o.latency_ms_sum;
        for (a, b) in self.latency.iter_mut().zip(o.latency.iter()) {
            *a += b;
        }
    }
}

/// One aggregate row as stored: a day, channel and provider (empty for rows that only count
/// conversations and inbound messages) with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    pub day: i64,
    pub channel: String,
    pub provider: String,
    pub counts: Counts,
}

/// A latency percentile read from the histogram: the upper bound of the bucket it falls in ("≤ 400 ms"),
/// or `None` for the open last bucket ("> 12.8 s").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyBound {
    pub le_ms: Option<i64>,
}

impl LatencyBound {
    /// "≤ 400 ms", "≤ 1.6 s", "> 12.8 s".
    pub fn label(&self) -> String {
        match self.le_ms {
            Some(ms) => format!("≤ {}", format_ms(ms)),
            None => format!("> {}", format_ms(LATENCY_BOUNDS_MS[8])),
        }
    }
}

/// 400 → "400 ms", 1600 → "1.6 s", 12800 → "12.8 s".
pub fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The `p`-quantile (0 < p ≤ 1) of a latency histogram by the nearest-rank method: the bucket holding the
/// ⌈p·n⌉-th fastest answer, reported as that bucket's upper bound. `None` when there are no answers.
pub fn histogram_quantile(hist: &[i64; 10], p: f64) -> Option<LatencyBound> {
    let total: i64 = hist.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(LatencyBound {
                le_ms: LATENCY_BOUNDS_MS.get(i).copied(),
            });
        }
    }
    Some(LatencyBound { le_ms: None })
}

/// Totals of a group of rows with their derived numbers and the estimated cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub counts: Counts,
    /// Estimated cost in USD of the priced tokens (see [`price_per_million`]).
    pub cost_usd: f64,
    /// Tokens of providers without a known price (not in `cost_usd`).
    pub unpriced_tokens: i64,
}

impl Summary {
    /// Adds a row of `provider` (its tokens priced by that provider).
    pub fn add(&mut self, provider: &str, c: &Counts) {
        self.counts.add(c);
        match price_per_million(provider) {
            Some((p, q)) => {
                self.cost_usd +=
                    (c.prompt_tokens as f64 * p + c.completion_tokens as f64 * q) / 1_000_000.0
            }
            None => self.unpriced_tokens += c.prompt_tokens + c.completion_tokens,
        }
    }

    /// Answers sent (answered + fallback replies).
    pub fn answers(&self) -> i64 {
        self.counts.messages_out
    }

    /// Share of answers that were not the fallback reply (0..1), `None` without answers.
    pub fn answer_rate(&self) -> Option<f64> {
        ratio(self.counts.answered, self.answers())
    }

    /// Share of answers that came from the knowledge (Q&A pairs, documents), `None` without answers.
    pub fn knowledge_rate(&self) -> Option<f64> {
        ratio(self.counts.from_knowledge, self.answers())
    }

    /// Share of answers that were the fallback reply.
    pub fn fallback_rate(&self) -> Option<f64> {
        ratio(self.counts.fallbacks, self.answers())
    }

    /// Answers given without the knowledge (a model on its own), i.e. answered but not from knowledge.
    pub fn other_answered(&self) -> i64 {
        (self.counts.answered - self.counts.from_knowledge).max(0)
    }

    pub fn p50(&self) -> Option<LatencyBound> {
        histogram_quantile(&self.counts.latency, 0.5)
    }

    pub fn p95(&self) -> Option<LatencyBound> {
        histogram_quantile(&self.counts.latency, 0.95)
    }

    /// Mean answer latency in ms (exact: from the stored sum).
    pub fn mean_latency_ms(&self) -> Option<i64> {
        let n: i64 = self.counts.latency.iter().sum();
        (n > 0).then(|| self.counts.latency_ms_sum / n)
    }
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The analytics of one period: totals, one entry per day (days without traffic included, as zeros), and
/// per channel and per provider (busiest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from_day: i64,
    pub to_day: i64,
    pub totals: Summary,
    pub days: Vec<(i64, Summary)>,
    pub channels: Vec<(String, Summary)>,
    /// Only rows with a provider (those counting answers); the empty provider is left out.
    pub providers: Vec<(String, Summary)>,
}

impl Report {
    /// Sums `rows` (already filtered to `from_day..=to_day`; rows outside are ignored).
    pub fn build(from_day: i64, to_day: i64, rows: &[StatsRow]) -> Self {
        let mut totals = Summary::default();
        let mut per_day: Vec<(i64, Summary)> = Vec::new();
        let mut channels: Vec<(String, Summary)> = Vec::new();
        let mut providers: Vec<(String, Summary)> = Vec::new();
        fn slot<'a, K: PartialEq + Clone>(v: &'a mut Vec<(K, Summary)>, k: &K) -> &'a mut Summary {
            let i = match v.iter().position(|(x, _)| x == k) {
                Some(i) => i,
                None => {
                    v.push((k.clone(), Summary::default()));
                    v.len() - 1
                }
            };
            &mut v[i].1
        }
        for r in rows.iter().filter(|r| (from_day..=to_day).contains(&r.day)) {
            totals.add(&r.provider, &r.counts);
            slot(&mut per_day, &r.day).add(&r.provider, &r.counts);
            slot(&mut channels, &r.channel).add(&r.provider, &r.counts);
            if !r.provider.is_empty() {
                slot(&mut providers, &r.provider).add(&r.provider, &r.counts);
            }
        }
        let busiest = |a: &(String, Summary), b: &(String, Summary)| {
            let volume = |s: &Summary| s.counts.messages_in + s.counts.messages_out;
            volume(&b.1).cmp(&volume(&a.1)).then_with(|| a.0.cmp(&b.0))
        };
        channels.sort_by(busiest);
        providers.sort_by(busiest);
        Self {
            from_day,
            to_day,
            totals,
            days: fill_days(from_day, to_day, per_day),
            channels,
            providers,
        }
    }
}

/// One entry per day of `from..=to` in order, taking the given values and `Default` for missing days.
pub fn fill_days<T: Default>(from: i64, to: i64, values: Vec<(i64, T)>) -> Vec<(i64, T)> {
    let mut values = values;
    values.sort_by_key(|(d, _)| *d);
    let mut it = values.into_iter().peekable();
    let mut out = Vec::with_capacity((to - from + 1).max(0) as usize);
    for day in from..=to {
        while it.peek().is_some_and(|(d, _)| *d < day) {
            it.next();
        }
        match it.peek() {
            Some((d, _)) if *d == day => {
                if let Some((_, v)) = it.next() {
                    out.push((day, v));
                }
            }
            _ => out.push((day, T::default())),
        }
    }
    out
}

/// The civil date (year, month, day) of a day number (days since 1970-01-01, UTC).
pub fn civil_date(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// "2026-03-05".
pub fn iso_date(day: i64) -> String {
    let (y, m, d) = civil_date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// "5 Mar".
pub fn short_date(day: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d) = civil_date(day);
    format!("{d} {}", MONTHS[(m as usize).saturating_sub(1) % 12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(v: [i64; 10]) -> [i64; 10] {
        v
    }

    #[test]
    fn quantiles_are_the_upper_bound_of_the_nearest_rank_bucket() {
        assert_eq!(histogram_quantile(&[0; 10], 0.5), None);
        // 10 answers: 4 ≤ 50 ms, 4 ≤ 400 ms, 1 ≤ 1.6 s, 1 above 12.8 s.
        let h = hist([4, 0, 0, 4, 0, 1, 0, 0, 0, 1]);
        let q = |p| histogram_quantile(&h, p).map(|b| b.le_ms);
        assert_eq!(q(0.4), Some(Some(50))); // rank 4
        assert_eq!(q(0.5), Some(Some(400))); // rank 5
        assert_eq!(q(0.8), Some(Some(400))); // rank 8
        assert_eq!(q(0.9), Some(Some(1600))); // rank 9
        assert_eq!(q(0.95), Some(None)); // rank 10: the open bucket
        assert_eq!(q(1.0), Some(None));
        // One answer: every quantile is its bucket.
        let one = hist([0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            histogram_quantile(&one, 0.5).and_then(|b| b.le_ms),
            Some(200)
        );
        assert_eq!(
            histogram_quantile(&one, 0.95).and_then(|b| b.le_ms),
            Some(200)
        );
        // 100 answers: 95 fast, 5 slow → p95 is still fast, p96 slow.
        let tail = hist([95, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(
            histogram_quantile(&tail, 0.95).and_then(|b| b.le_ms),
            Some(50)
        );
        assert_eq!(
            histogram_quantile(&tail, 0.96).and_then(|b| b.le_ms),
            Some(3200)
        );
    }

    #[test]
    fn latency_labels_read_well() {
        assert_eq!(LatencyBound { le_ms: Some(400) }.label(), "≤ 400 ms");
        assert_eq!(LatencyBound { le_ms: Some(1600) }.label(), "≤ 1.6 s");
        assert_eq!(LatencyBound { le_ms: Some(6400) }.label(), "≤ 6.4 s");
        assert_eq!(LatencyBound { le_ms: None }.label(), "> 12.8 s");
        assert_eq!(format_ms(2000), "2 s");
    }

    #[test]
    fn series_are_filled_with_zero_days_in_order() {
        let filled = fill_days(10, 14, vec![(13, 3), (10, 1), (99, 7), (2, 5)]);
        assert_eq!(filled, vec![(10, 1), (11, 0), (12, 0), (13, 3), (14, 0)]);
        assert_eq!(fill_days::<i64>(5, 4, vec![]), vec![]);
        assert_eq!(fill_days::<i64>(0, 0, vec![]), vec![(0, 0)]);
    }

    #[test]
    fn dates_of_day_numbers() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(20_152), "2025-03-05");
        assert_eq!(iso_date(19_782), "2024-02-29");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(short_date(20_152), "5 Mar");
        assert_eq!(short_date(20_088), "31 Dec");
    }

    #[test]
    fn periods_and_channels_parse() {
        assert_eq!(parse_days(None), Ok(30));
        assert_eq!(parse_days(Some("")), Ok(30));
        assert_eq!(parse_days(Some("7")), Ok(7));
        assert_eq!(parse_days(Some("90")), Ok(90));
        for bad in ["0", "8", "-7", "365", "seven", "7.0"] {
            assert_eq!(
                parse_days(Some(bad)).map_err(|e| e.field),
                Err("days"),
                "{bad}"
            );
        }
        assert_eq!(parse_channel(Some("whatsapp")), Ok(Some("whatsapp")));
        assert_eq!(parse_channel(Some("")), Ok(None));
        assert_eq!(
            parse_channel(Some("fax")).map_err(|e| e.field),
            Err("channel")
        );
        assert_eq!(channel_label("api"), "API");
    }

    fn row(day: i64, channel: &str, provider: &str, f: impl FnOnce(&mut Counts)) -> StatsRow {
        let mut counts = Counts::default();
        f(&mut counts);
        StatsRow {
            day,
            channel: channel.into(),
            provider: provider.into(),
            counts,
        }
    }

    #[test]
    fn reports_sum_rows_per_day_channel_and_provider_with_costs() {
        let rows = vec![
            row(100, "api", "", |c| {
                c.conversations = 2;
                c.messages_in = 1;
            }),
            row(100, "api", "openrouter", |c| {
                c.messages_in = 3;
                c.messages_out = 4;
                c.answered = 3;
                c.from_knowledge = 2;
                c.fallbacks = 1;
                c.prompt_tokens = 1_000_000;
                c.completion_tokens = 500_000;
                c.latency_ms_sum = 1000;
                c.latency = [0, 0, 0, 4, 0, 0, 0, 0, 0, 0];
            }),
            row(102, "whatsapp", "offline", |c| {
                c.messages_in = 10;
                c.messages_out = 10;
                c.answered = 10;
                c.from_knowledge = 10;
                c.latency = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            }),
            row(102, "whatsapp", "openai_compat", |c| {
                c.prompt_tokens = 7;
                c.completion_tokens = 3;
            }),
            // Outside the period.
            row(99, "api", "openrouter", |c| c.messages_out = 1000),
        ];
        let r = Report::build(100, 103, &rows);
        assert_eq!(r.totals.counts.conversations, 2);
        assert_eq!(r.totals.counts.messages_in, 14);
        assert_eq!(r.totals.answers(), 14);
        assert_eq!(r.totals.counts.answered, 13);
        assert_eq!(r.totals.other_answered(), 1);
        assert_eq!(r.totals.answer_rate(), Some(13.0 / 14.0));
        assert_eq!(r.totals.knowledge_rate(), Some(12.0 / 14.0));
        assert_eq!(r.totals.fallback_rate(), Some(1.0 / 14.0));
        // 1M prompt × $0.15 + 0.5M completion × $0.60 = $0.45; offline is free; openai_compat unpriced.
        assert!(
            (r.totals.cost_usd - 0.45).abs() < 1e-9,
            "{}",
            r.totals.cost_usd
        );
        assert_eq!(r.totals.unpriced_tokens, 10);
        assert_eq!(r.totals.p50().and_then(|b| b.le_ms), Some(50));
        assert_eq!(r.totals.p95().and_then(|b| b.le_ms), Some(400));
        assert_eq!(r.totals.mean_latency_ms(), Some(1000 / 14));
        assert_eq!(
            r.days
                .iter()
                .map(|(d, s)| (*d, s.answers()))
                .collect::<Vec<_>>(),
            vec![(100, 4), (101, 0), (102, 10), (103, 0)]
        );
        assert_eq!(
            r.channels
                .iter()
                .map(|(k, s)| (k.as_str(), s.counts.messages_in))
                .collect::<Vec<_>>(),
            vec![("whatsapp", 10), ("api", 4)]
        );
        assert_eq!(
            r.providers
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            vec!["offline", "openrouter", "openai_compat"]
        );
        assert_eq!(Summary::default().answer_rate(), None);
    }
}
