//! Deletion requests received by email: their scope and the policy's deadlines (acknowledge within two
//! business days, complete within 30 days).

use crate::DomainError;

const DAY_MS: i64 = 86_400_000;

/// What a request asks to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestScope {
    /// The whole account and everything in it.
    All,
    /// Only the data that came from Meta: every connected channel with its conversations and end-user ids.
    Meta,
    /// Something else, described in words; the operator carries it out and records what was done.
    Other,
}

impl RequestScope {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "meta" | "meta data only" | "meta-only" | "meta_only" => Ok(Self::Meta),
            "other" => Ok(Self::Other),
            _ => Err(DomainError::invalid(
                "scope",
                "must be \"all\", \"meta\" (Meta data only) or \"other\" (with a description)",
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Meta => "meta",
            Self::Other => "other",
        }
    }

    /// How the scope reads in mails and pages.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::All => "your account and all its data",
            Self::Meta => {
                "the data we received from Meta (connected Pages, Instagram and WhatsApp accounts, their conversations and end-user ids)"
            }
            Self::Other => "the data described in your request",
        }
    }
}

/// `ms` plus `n` business days (Saturdays and Sundays skipped, UTC). A request received on a weekend
/// counts from the next Monday.
pub fn add_business_days(ms: i64, n: u32) -> i64 {
    // 1970-01-01 was a Thursday: weekday index with Monday = 0.
    let weekday = |t: i64| (t.div_euclid(DAY_MS) + 3).rem_euclid(7);
    let mut t = ms;
    let mut left = n;
    while left > 0 {
        t += DAY_MS;
        if weekday(t) < 5 {
            left -= 1;
        }
    }
    t
}

/// When a request received at `received_ms` must be acknowledged and completed.
pub fn deadlines(received_ms: i64) -> (i64, i64) {
    (add_business_days(received_ms, 2), received_ms + 30 * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-04 is a Friday, 12:00 UTC.
    const FRIDAY_NOON: i64 = 1_796_385_600_000;

    #[test]
    fn business_days_skip_weekends() {
        // Friday + 2 business days = Tuesday.
        assert_eq!(add_business_days(FRIDAY_NOON, 2), FRIDAY_NOON + 4 * DAY_MS);
        // Monday + 2 = Wednesday.
        let monday = FRIDAY_NOON + 3 * DAY_MS;
        assert_eq!(add_business_days(monday, 2), monday + 2 * DAY_MS);
        // Saturday + 2 = Tuesday; Sunday + 2 = Tuesday.
        assert_eq!(
            add_business_days(FRIDAY_NOON + DAY_MS, 2),
            FRIDAY_NOON + 4 * DAY_MS
        );
        assert_eq!(
            add_business_days(FRIDAY_NOON + 2 * DAY_MS, 2),
            FRIDAY_NOON + 4 * DAY_MS
        );
        assert_eq!(add_business_days(FRIDAY_NOON, 0), FRIDAY_NOON);
    }

    #[test]
    fn deadlines_are_two_business_days_and_thirty_days() {
        let (ack, due) = deadlines(FRIDAY_NOON);
        assert_eq!(ack, FRIDAY_NOON + 4 * DAY_MS);
        assert_eq!(due, FRIDAY_NOON + 30 * DAY_MS);
    }

    #[test]
    fn scopes() {
        assert_eq!(
            RequestScope::parse(" ALL ").map(|s| s.as_str()).ok(),
            Some("all")
        );
        assert_eq!(
            RequestScope::parse("Meta data only").ok(),
            Some(RequestScope::Meta)
        );
        assert!(RequestScope::parse("everything").is_err());
    }
}
