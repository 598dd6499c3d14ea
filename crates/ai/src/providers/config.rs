//! Where and how to call one provider.

use super::Provider;
use std::fmt;
use std::time::Duration;

/// Where and how to call one provider.
///
/// `Debug` prints `api_key` as `[redacted]`, so a config can be logged or put in a panic message safely.
#[derive(Clone)]
pub struct ProviderConfig {
    pub provider: Provider,
    /// E.g. `https://openrouter.ai/api/v1`; the client appends `/chat/completions` and `/models`.
    pub base_url: String,
    /// Required for every hosted provider; optional for `OpenaiCompat` (no `Authorization` header then).
    pub api_key: Option<String>,
    /// OpenRouter only: sent as `HTTP-Referer` for app attribution (external-apis.md §7.2).
    pub site_url: Option<String>,
    /// OpenRouter only: sent as `X-Title` (external-apis.md §7.2). Empty = not sent.
    pub app_name: String,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl ProviderConfig {
    /// A config with the default timeouts and retry policy, and `MT Desk` as the OpenRouter app name.
    pub fn new(provider: Provider, base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            provider,
            base_url: base_url.into(),
            api_key,
            site_url: None,
            app_name: "MT Desk".into(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }

    /// The key, if one is set and not blank.
    pub(crate) fn key(&self) -> Option<&str> {
        self.api_key.as_deref().filter(|k| !k.trim().is_empty())
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("site_url", &self.site_url)
            .field("app_name", &self.app_name)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The public base URL of each hosted provider (external-apis.md §7.2–§7.5; Moonshot and MiniMax also
/// have China endpoints, `https://api.moonshot.cn/v1` and `https://api.minimaxi.com/v1`). `None` for
/// `Offline` and `OpenaiCompat`, whose address only the owner knows.
pub fn default_base_url(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Openrouter => Some("https://openrouter.ai/api/v1"),
        Provider::Fireworks => Some("https://api.fireworks.ai/inference/v1"),
        Provider::Moonshot => Some("https://api.moonshot.ai/v1"),
        Provider::Minimax => Some("https://api.minimax.io/v1"),
        Provider::Offline | Provider::OpenaiCompat => None,
    }
}

/// Time limits of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connection set-up.
    pub connect: Duration,
    /// The whole call, retries and backoff included; for a stream, until its last event.
    pub total: Duration,
    /// Streaming: the longest wait for the first byte of the body (per attempt).
    pub first_byte: Duration,
    /// Streaming: the longest gap between two chunks once the body has started.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(60),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

/// Retries of transient failures (408, 429, 5xx, network; external-apis.md §7.1): exponential backoff from
/// `base_delay`, capped at `max_delay`, with jitter (each delay is drawn from its upper half). A
/// `Retry-After: <seconds>` header replaces the computed delay, capped at `2 × max_delay` so a provider
/// cannot park a customer's answer for minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests in all, the first included; 0 is treated as 1.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed + 1`, after `failed` attempts failed.
    pub(crate) fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        use rand::RngExt;
        if let Some(ra) = retry_after.filter(|d| !d.is_zero()) {
            return ra.min(self.max_delay.saturating_mul(2));
        }
        let exp = 2u32.saturating_pow(failed.saturating_sub(1).min(20));
        let full = self.base_delay.saturating_mul(exp).min(self.max_delay);
        let half = full / 2;
        let jitter_ms = full.saturating_sub(half).as_millis() as u64;
        let jitter = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_stays_under_max_delay() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(9, None) <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped_at_twice_max_delay() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn debug_output_of_a_config_hides_the_key() {
        let c = ProviderConfig::new(
            Provider::Openrouter,
            "http://x",
            Some("sk-secret-123".into()),
        );
        let s = format!("{c:?}");
        assert!(!s.contains("sk-secret-123"), "{s}");
        assert!(s.contains("[redacted]"));
    }
}
