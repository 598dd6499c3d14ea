//! Knowledge-base vocabulary: source kinds and states, re-sync schedules, crawl limits, the embedder choice.

use crate::DomainError;

/// Where a source's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    File,
    Url,
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Url => "url",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "file" => Some(Self::File),
            "url" => Some(Self::Url),
            _ => None,
        }
    }
}

/// Where a source is in its ingestion. `Ready` and `Failed` are final until the next (re-)sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    Queued,
    Extracting,
    Embedding,
    Ready,
    Failed,
}

impl SourceStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Extracting => "extracting",
            Self::Embedding => "embedding",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "extracting" => Self::Extracting,
            "embedding" => Self::Embedding,
            "ready" => Self::Ready,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Still being worked on (the dashboard keeps polling).
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Queued | Self::Extracting | Self::Embedding)
    }
}

/// How often a website source is crawled again by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncSchedule {
    #[default]
    Manual,
    Daily,
    Weekly,
}

impl SyncSchedule {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "" | "manual" => Ok(Self::Manual),
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            other => Err(DomainError::invalid(
                "sync_schedule",
                format!("must be manual, daily or weekly (got {other:?})"),
            )),
        }
    }

    /// The period in milliseconds, `None` for manual.
    pub fn period_ms(&self) -> Option<i64> {
        match self {
            Self::Manual => None,
            Self::Daily => Some(24 * 3600 * 1000),
            Self::Weekly => Some(7 * 24 * 3600 * 1000),
        }
    }
}

/// The user's crawl limits for a website source, checked against the operator's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrawlLimits {
    pub max_pages: u32,
    pub max_depth: u32,
}

impl CrawlLimits {
    pub const DEFAULT_PAGES: u32 = 50;
    pub const DEFAULT_DEPTH: u32 = 2;
    pub const MAX_PAGES: u32 = 1000;
    pub const MAX_DEPTH: u32 = 10;

    pub fn parse(max_pages: Option<i64>, max_depth: Option<i64>) -> Result<Self, DomainError> {
        let pages = max_pages.unwrap_or(i64::from(Self::DEFAULT_PAGES));
        if !(1..=i64::from(Self::MAX_PAGES)).contains(&pages) {
            return Err(DomainError::invalid(
                "max_pages",
                format!("must be between 1 and {}", Self::MAX_PAGES),
            ));
        }
        let depth = max_depth.unwrap_or(i64::from(Self::DEFAULT_DEPTH));
        if !(0..=i64::from(Self::MAX_DEPTH)).contains(&depth) {
            return Err(DomainError::invalid(
                "max_depth",
                format!("must be between 0 and {}", Self::MAX_DEPTH),
            ));
        }
        Ok(Self {
            max_pages: pages as u32,
            max_depth: depth as u32,
        })
    }
}

/// Which embedder makes a chatbot's vectors. Stored as text in `chatbots.embedding`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EmbeddingChoice {
    /// all-MiniLM-L6-v2 in process (English-first), no key needed.
    #[default]
    Local,
    /// OpenRouter's `/embeddings` with this model (the way to a multilingual model).
    OpenRouter(String),
    /// No vectors: retrieval runs on the lexical leg alone.
    None,
}

impl EmbeddingChoice {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        match s {
            "" | "local" => Ok(Self::Local),
            "none" => Ok(Self::None),
            _ => match s.strip_prefix("openrouter:") {
                Some(model)
                    if !model.trim().is_empty()
                        && model.len() <= 200
                        && !model.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    Ok(Self::OpenRouter(model.trim().to_string()))
                }
                _ => Err(DomainError::invalid(
                    "embedding",
                    "must be local, none or openrouter:<model> (e.g. openrouter:openai/text-embedding-3-small)",
                )),
            },
        }
    }

    pub fn to_db(&self) -> String {
        match self {
            Self::Local => "local".into(),
            Self::OpenRouter(m) => format!("openrouter:{m}"),
            Self::None => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_choices_round_trip_and_bad_ones_are_refused() {
        for s in ["local", "none", "openrouter:openai/text-embedding-3-small"] {
            let c = EmbeddingChoice::parse(s).expect("valid");
            assert_eq!(c.to_db(), s);
        }
        for bad in ["openrouter:", "openrouter:a b", "minimax", "local2"] {
            assert!(EmbeddingChoice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crawl_limits_are_bounded() {
        assert_eq!(
            CrawlLimits::parse(None, None).expect("defaults"),
            CrawlLimits {
                max_pages: 50,
                max_depth: 2
            }
        );
        assert!(CrawlLimits::parse(Some(0), None).is_err());
        assert!(CrawlLimits::parse(Some(1001), None).is_err());
        assert!(CrawlLimits::parse(None, Some(-1)).is_err());
        assert!(CrawlLimits::parse(None, Some(11)).is_err());
    }

    #[test]
    fn schedules_parse() {
        assert_eq!(
            SyncSchedule::parse("weekly").ok(),
            Some(SyncSchedule::Weekly)
        );
        assert!(SyncSchedule::parse("hourly").is_err());
        assert_eq!(SyncSchedule::Daily.period_ms(), Some(86_400_000));
    }
}
